//! The benchmark's fixed settings (everything but seed, arm and record length), shared by
//! `twinloop bench inception` (flags) and the sweep's `inception_arm` jobs (`[inception]`),
//! and what one run needs built once: the pool, its display frames and the pretrained twin.

use super::{InceptionExperiment, RecordPolicy, TwinArm};
use crate::config::{Config, CoreKind, DEFAULT_SIM_TOML};
use crate::offline::design_bench::DisplayFrames;
use crate::stages::decide::default_pool;
use crate::stages::decide::design::CandidatePool;
use crate::stages::decide::design::DesignConfig;
use crate::stages::decide::design::twin_refit::{TwinRefitSetup, setup_for};
use crate::stages::decide::inception::InceptionConfig;
use crate::stages::decide::inception::config::MIN_LIBRARY;
use crate::vocab::section::Section;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Smallest library the benchmark screens (tests); below [`MIN_LIBRARY`] the results say so.
pub const BENCH_MIN_LIBRARY: u64 = 16;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BenchSettings {
    /// Cells per simulated mouse.
    pub neurons: usize,
    pub policy: RecordPolicy,
    /// Poisson repeats per verify stimulus (10-20, as `inception.verify_repeats`).
    pub repeats: u32,
    pub max_targets: u32,
    pub min_heldout_cc: f64,
    pub library_size: u64,
    pub mei_steps: u32,
    pub design_frames: u32,
    /// Optimiser steps of the design's twin fit.
    pub refit_steps: u32,
    /// The true optimum's search: starts refined and gradient steps each.
    pub optimum_starts: usize,
    pub optimum_steps: usize,
    /// An fnn twin from these weights instead of the embedded pretrained core (the record's
    /// pool core and the design's twin alike), its network config JSON beside it.
    pub weights: Option<PathBuf>,
    pub weights_config: Option<PathBuf>,
}

impl Default for BenchSettings {
    /// `configs/inception.toml`'s design sizes (what a 2-core CPU affords), 5 targets.
    fn default() -> Self {
        BenchSettings {
            neurons: 300,
            policy: RecordPolicy::Adaptive,
            repeats: 10,
            max_targets: 5,
            min_heldout_cc: 0.3,
            library_size: MIN_LIBRARY,
            mei_steps: 40,
            design_frames: 4,
            refit_steps: 10,
            optimum_starts: 4,
            optimum_steps: 300,
            weights: None,
            weights_config: None,
        }
    }
}

/// A bad setting: the field (snake_case) and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BadSetting {
    pub field: String,
    pub reason: String,
}

impl BenchSettings {
    /// The `[inception]` section the live design reads, for a record phase of `record_s`.
    pub fn inception(&self, record_s: f64) -> InceptionConfig {
        InceptionConfig {
            record_s,
            verify_repeats: self.repeats,
            min_heldout_cc: self.min_heldout_cc,
            max_targets: self.max_targets,
            library_size: self.library_size,
            mei_steps: self.mei_steps,
            design_frames: self.design_frames,
            ..InceptionConfig::default()
        }
    }

    /// Checks every field with the live section's validation (the library may be smaller, down
    /// to [`BENCH_MIN_LIBRARY`], for tests), and a record length.
    pub fn validate(&self, record_s: f64) -> Result<(), BadSetting> {
        let bad = |field: &str, reason: String| BadSetting {
            field: field.into(),
            reason,
        };
        if self.neurons == 0 {
            return Err(bad("neurons", "at least 1".into()));
        }
        if self.library_size < BENCH_MIN_LIBRARY {
            return Err(bad(
                "library_size",
                format!("at least {BENCH_MIN_LIBRARY} (a live session: {MIN_LIBRARY})"),
            ));
        }
        if self.refit_steps == 0 {
            return Err(bad("refit_steps", "at least 1".into()));
        }
        if self.weights_config.is_some() && self.weights.is_none() {
            return Err(bad("weights_config", "needs weights (an fnn twin)".into()));
        }
        if let Some(w) = self.weights.as_ref().filter(|w| !w.is_file()) {
            return Err(bad("weights", format!("{} is not a file", w.display())));
        }
        if self.optimum_starts == 0 || self.optimum_steps == 0 {
            return Err(bad("optimum_starts", "starts and steps at least 1".into()));
        }
        if !(record_s.is_finite() && record_s > 0.0 && record_s <= 24.0 * 3600.0) {
            return Err(bad(
                "record_min",
                format!("positive minutes, at most a day; got {} s", record_s),
            ));
        }
        let mut live = self.inception(record_s);
        live.library_size = live.library_size.max(MIN_LIBRARY);
        live.validate().map_err(|e| {
            let field = e.to_string();
            let name = [
                "verify_repeats",
                "min_heldout_cc",
                "max_targets",
                "mei_steps",
                "design_frames",
                "library_size",
                "record_s",
            ]
            .into_iter()
            .find(|f| field.contains(f))
            .map(|f| {
                if f == "verify_repeats" {
                    "repeats"
                } else if f == "record_s" {
                    "record_min"
                } else {
                    f
                }
            })
            .unwrap_or("inception");
            bad(name, e.to_string())
        })
    }

    /// The experiment for `arm` and `record_s` on the embedded simulated rig's timing.
    pub fn experiment(&self, cfg: &Config, arm: TwinArm, record_s: f64) -> InceptionExperiment {
        InceptionExperiment {
            neurons: self.neurons,
            record_s,
            policy: self.policy,
            arm,
            repeats: self.repeats,
            stimulus_s: cfg.trials.stimulus_s,
            gray_s: cfg.trials.gray_s,
            frame_rate_hz: cfg.imaging.frame_rate_hz,
            inception: self.inception(record_s),
            design: DesignConfig {
                twin_refit_steps: self.refit_steps,
                ..cfg.trials.design.clone()
            },
            optimum_starts: self.optimum_starts,
            optimum_steps: self.optimum_steps,
        }
    }
}

/// What every mouse of a run shares: the rig's config, the pool through the pretrained core
/// (the record phase's designer reads it), its display frames, and the pretrained twin the
/// design refits.
pub struct Shared {
    pub cfg: Config,
    pub pool: Arc<CandidatePool>,
    pub display: DisplayFrames,
    pub pretrained: TwinRefitSetup,
}

impl Shared {
    /// Builds them on the embedded simulated rig (`configs/sim.toml`) for `s`'s twin, the
    /// design's fit `s.refit_steps` long.
    pub fn build(s: &BenchSettings) -> anyhow::Result<Shared> {
        let mut cfg = Config::from_toml(DEFAULT_SIM_TOML, "(embedded sim.toml)")?;
        cfg.twin.core = CoreKind::Pretrained;
        if let Some(w) = &s.weights {
            cfg.twin.core = CoreKind::Fnn;
            cfg.twin.weights = Some(w.clone());
            cfg.twin.config = s.weights_config.clone();
        }
        let design = DesignConfig {
            twin_refit_every: 1,
            twin_refit_steps: s.refit_steps,
            ..cfg.trials.design.clone()
        };
        let pretrained = setup_for(&cfg.twin, &design)?
            .ok_or_else(|| anyhow::anyhow!("the pretrained core gave no twin to refit"))?;
        let pool = default_pool(&cfg.decide_setup())?;
        // Shown at the twin rate, as `bench loop` does: the pool's clips are what the mouse sees.
        let display =
            DisplayFrames::render(&pool, cfg.trials.stimulus_s, cfg.imaging.frame_rate_hz);
        Ok(Shared {
            cfg,
            pool: Arc::new(pool),
            display,
            pretrained,
        })
    }
}
