//! Deciding which stimulus comes next: the [`selector::Selector`] trait, the random control arm
//! and the adaptive design ([`design`]). The selector thread (`online`) fills a one-deep queue
//! the renderer takes from at each trial onset; replay drives the same selectors over a log.

pub mod config;
pub mod decision;
pub mod design;
pub mod inception;
pub mod selector;

pub use design::AdaptiveSelector;
pub use selector::{Decision, FrameBehaviour, Onset, RandomSelector, Selector};

pub use config::{CoreKind, DecideSetup, Policy, TrialsConfig, TwinSettings};

use std::sync::Arc;
use twinloop_model::energy_core::{EnergyCore, EnergyCoreConfig};
use twinloop_model::frozen_core::{FnnCore, FrozenCore};
use twinloop_stimulus::{Library, ViewGeometry};

/// The energy bank over the display view on a `grid` of `(rows, cols)` positions, its spatial
/// frequencies in cycles per view pixel chosen for the view's degrees per pixel (about 0.03 and
/// 0.06 cycles/deg, the middle of mouse V1's range).
pub fn core_config(view: &ViewGeometry, twin_hz: f64, grid: (usize, usize)) -> EnergyCoreConfig {
    let deg_per_px = (view.azimuth_deg.1 - view.azimuth_deg.0).abs() / view.width.max(1) as f64;
    EnergyCoreConfig {
        height: view.height,
        width: view.width,
        grid_rows: grid.0,
        grid_cols: grid.1,
        cycles_per_px: vec![(0.03 * deg_per_px).min(0.45), (0.06 * deg_per_px).min(0.45)],
        frame_rate_hz: twin_hz,
        ..EnergyCoreConfig::default()
    }
}

/// The frozen core `twin` names, over the display `view` at `twin_hz`: the energy bank, or an
/// fnn core loaded from its weights (on the CPU; the pool is built once, before the session).
/// A file that is missing or does not fit is an error naming the `[twin]` field and the fix.
pub fn build_core(
    twin: &TwinSettings,
    view: &ViewGeometry,
    twin_hz: f64,
) -> Result<Box<dyn FrozenCore>, design::PoolError> {
    let grid = (twin.grid_rows, twin.grid_cols);
    match twin.core {
        CoreKind::Energy => Ok(Box::new(
            EnergyCore::new(core_config(view, twin_hz, grid))
                .map_err(|e| design::PoolError::Core(e.to_string()))?,
        )),
        CoreKind::Pretrained => {
            let dev = twinloop_model::select_device(twinloop_model::DevicePreference::Cpu);
            let core = twinloop_model::pretrained::sim_twin(&dev)
                .and_then(|t| FnnCore::new(t, grid, twin.preroll_frames))
                .map_err(|e| {
                    design::PoolError::Twin(format!("the embedded pretrained twin: {e}"))
                })?;
            tracing::info!(core = %core.describe(), "frozen core loaded");
            Ok(Box::new(core))
        }
        CoreKind::Fnn => {
            let bad = |msg: String| design::PoolError::Twin(msg);
            let Some(weights) = twin.weights.as_deref() else {
                return Err(bad(
                    "twin.weights is required when twin.core = \"fnn\"; fix: give the path of the core's safetensors weights".into(),
                ));
            };
            if !weights.is_file() {
                return Err(bad(format!(
                    "twin.weights = {}: no such file; fix: give the path of an fnn safetensors file (model/scripts/convert_fnn.py makes one from fnn's PyTorch weights)",
                    weights.display()
                )));
            }
            if let Some(c) = twin.config.as_deref()
                && !c.is_file()
            {
                return Err(bad(format!(
                    "twin.config = {}: no such file; fix: give the network's config JSON, or leave twin.config out for fnn's released network",
                    c.display()
                )));
            }
            let dev = twinloop_model::select_device(twinloop_model::DevicePreference::Cpu);
            let core = FnnCore::from_files(weights, twin.config.as_deref(), grid, twin.preroll_frames, &dev)
                .map_err(|e| {
                    bad(format!(
                        "twin.weights = {} with twin.config = {}: {e}; fix: pass the config JSON the weights were made with (twin.config), or weights made for fnn's released network",
                        weights.display(),
                        twin.config
                            .as_deref()
                            .map_or("(fnn's released network)".into(), |c| c.display().to_string()),
                    ))
                })?;
            tracing::info!(core = %core.describe(), "frozen core loaded");
            Ok(Box::new(core))
        }
    }
}

/// The default candidate pool and test block for the display view, trial length and imaging
/// rate, rendered and passed through the frozen core.
pub fn default_pool(setup: &DecideSetup) -> Result<design::CandidatePool, design::PoolError> {
    let candidates = design::default_candidates();
    let tests = design::default_tests(candidates.len() as u32);
    let view = setup.view;
    let twin_hz = setup.frame_rate_hz;
    design::CandidatePool::build(
        candidates,
        tests,
        view,
        build_core(&setup.twin, &view, twin_hz)?,
        setup.trials.stimulus_s,
        twin_hz,
    )
}

/// The selector `trials.policy` names, with its candidate pool built (rendered and passed
/// through the `[twin]` frozen core once).
pub fn build_selector(setup: &DecideSetup) -> Result<Box<dyn Selector>, design::PoolError> {
    let trials = &setup.trials;
    match trials.policy {
        Policy::Random => Ok(Box::new(RandomSelector::new(
            Library {
                entries: design::default_candidates(),
            },
            setup.seed,
        ))),
        Policy::Adaptive => {
            let mut selector = AdaptiveSelector::new(
                Arc::new(default_pool(setup)?),
                trials.design.clone(),
                setup.seed,
                1.0 / setup.frame_rate_hz,
            )
            .with_planes(setup.planes);
            // Periodic rounds when `twin_refit_every > 0`; the final refit alone otherwise.
            let refits = design::DesignConfig {
                twin_refit_every: match trials.design.twin_refit_every {
                    0 if setup.twin.final_refit_steps > 0 => 1,
                    every => every,
                },
                ..trials.design.clone()
            };
            if let Some(refit_setup) = design::twin_refit::setup_for(&setup.twin, &refits)? {
                let mut refit = design::TwinRefit::new(refit_setup, trials.design.twin_refit_every);
                // The session's planned trials: a round that could not be taken before its end
                // is not launched (it would only hold the CPU). Replay builds the same.
                if let Some(n) = setup.planned_trials {
                    refit.set_horizon(n);
                }
                selector.set_twin_refit(refit);
            }
            let Some(inception) = &setup.inception else {
                return Ok(Box::new(selector));
            };
            // The design refits a twin even when the record phase refits none of its own.
            let every_once = design::DesignConfig {
                twin_refit_every: trials.design.twin_refit_every.max(1),
                ..trials.design.clone()
            };
            let fresh = design::twin_refit::setup_for(&setup.twin, &every_once)?;
            Ok(Box::new(inception::InceptionSelector::new(
                selector,
                inception.clone(),
                fresh,
                setup,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../model/fixtures")
            .join(name)
    }

    fn fnn_settings() -> TwinSettings {
        TwinSettings {
            core: CoreKind::Fnn,
            weights: Some(fixture("parity_weights.safetensors")),
            config: Some(fixture("parity_config.json")),
            grid_rows: 3,
            grid_cols: 5,
            preroll_frames: 2,
            save: true,
            ..TwinSettings::default()
        }
    }

    /// The reduced fnn network (fnn's PyTorch code, random weights) as the pool's core: one
    /// channel per stream's core output channel, on the configured grid, features finite.
    #[test]
    fn an_fnn_core_pool_has_a_channel_per_stream_output() {
        let net: twinloop_model::TwinConfig = twinloop_model::TwinConfig::from_json(
            &std::fs::read_to_string(fixture("parity_config.json")).unwrap(),
        )
        .unwrap();
        let view = ViewGeometry::default();
        let core = build_core(&fnn_settings(), &view, 30.0).unwrap();
        assert_eq!(
            core.channels(),
            net.streams * net.recurrent.out_channels,
            "{}",
            core.describe()
        );
        let candidates: Vec<_> = design::default_candidates().into_iter().take(3).collect();
        let tests = design::default_tests(3).into_iter().take(1).collect();
        let pool = design::CandidatePool::build(candidates, tests, view, core, 0.2, 30.0).unwrap();
        assert_eq!(pool.core().grid(), (3, 5));
        assert_eq!(pool.frames(), 6);
        let per_frame = 15 * net.streams * net.recurrent.out_channels;
        assert_eq!(pool.gray_map().len(), per_frame);
        for e in 0..pool.len() {
            for f in 0..pool.frames() {
                assert!(pool.feature_map(e, f).iter().all(|v| v.is_finite()));
            }
        }
        // Different stimuli give different features (the core reads the rendered clips).
        assert!(pool.feature_map(0, 5) != pool.feature_map(3, 5));
    }

    /// The embedded pretrained core builds from the binary alone (no files), with one channel
    /// per output channel of its core, and its features follow the stimulus.
    #[test]
    fn the_embedded_pretrained_core_needs_no_files() {
        let net = twinloop_model::pretrained::sim_config().unwrap();
        let settings = TwinSettings {
            core: CoreKind::Pretrained,
            weights: None,
            config: None,
            ..TwinSettings::default()
        };
        let view = ViewGeometry::default();
        let core = build_core(&settings, &view, 30.0).unwrap();
        assert_eq!(core.channels(), net.streams * net.recurrent.out_channels);
        let candidates: Vec<_> = design::default_candidates().into_iter().take(2).collect();
        let tests = design::default_tests(2).into_iter().take(1).collect();
        let pool = design::CandidatePool::build(candidates, tests, view, core, 0.2, 30.0).unwrap();
        assert!(pool.feature_map(0, 5) != pool.feature_map(2, 5));
    }

    #[test]
    fn a_missing_or_mismatched_fnn_core_is_named_with_the_fix() {
        let view = ViewGeometry::default();
        let mut s = fnn_settings();
        s.weights = Some(fixture("no_such.safetensors"));
        let e = build_core(&s, &view, 30.0).err().unwrap().to_string();
        assert!(
            e.contains("twin.weights") && e.contains("no_such") && e.contains("fix"),
            "{e}"
        );
        // The reduced network's weights under fnn's released config: shapes disagree.
        let mut s = fnn_settings();
        s.config = None;
        let e = build_core(&s, &view, 30.0).err().unwrap().to_string();
        assert!(
            e.contains("twin.weights") && e.contains("twin.config") && e.contains("fix"),
            "{e}"
        );
    }
}
