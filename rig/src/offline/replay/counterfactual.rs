//! Counterfactual replay: the same activity and onsets, the decisions another selector (policy,
//! objective or frozen core) would have made at the same points, and how its twin's predictions
//! compare with the live twin's.

use super::{ReplayError, ReplayReport};
use crate::backbone::frames::ActivityBuf;
use crate::config::Config;
use crate::stages::decide::design::DecisionMode;
use crate::stages::decide::{Decision, FrameBehaviour, Onset, Selector, build_selector};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to change when replaying: another selection policy, objective or frozen core turns
/// replay into a counterfactual — the same activity and onsets, the decisions another selector
/// would have made at the same points — and the report says how they differ from the live ones.
/// The live selector is replayed alongside, so the two twins' predictions can be compared.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub policy: Option<crate::config::Policy>,
    pub objective: Option<crate::stages::decide::design::Objective>,
    /// An fnn core from these weights instead of the session's `[twin]` core.
    pub twin: Option<TwinOverride>,
}

/// An fnn core for a counterfactual replay (the session's grid and pre-roll are kept).
#[derive(Debug, Clone)]
pub struct TwinOverride {
    /// Safetensors with fnn's state-dict names.
    pub weights: std::path::PathBuf,
    /// The network's config JSON; `None`: fnn's released network.
    pub config: Option<std::path::PathBuf>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.objective.is_none() && self.twin.is_none()
    }

    /// `cfg` with the overrides applied.
    pub(super) fn apply(&self, cfg: &Config) -> Config {
        let mut cfg = cfg.clone();
        if let Some(p) = self.policy {
            cfg.trials.policy = p;
        }
        if let Some(o) = self.objective {
            cfg.trials.design.objective = o;
        }
        if let Some(t) = &self.twin {
            cfg.twin.core = crate::config::CoreKind::Fnn;
            cfg.twin.weights = Some(t.weights.clone());
            cfg.twin.config = t.config.clone();
        }
        cfg
    }
}

/// How another policy's decisions differ from the live ones.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PolicyComparison {
    pub policy: String,
    pub decisions: u64,
    /// Decisions that chose the same stimulus as live.
    pub same_stimulus: u64,
    /// Decisions by mode (random, warmup, test, adaptive, fallback, late).
    pub modes: BTreeMap<String, u64>,
    /// Mean score of the alternative's adaptive choices (its own objective).
    pub mean_score: Option<f64>,
    /// The alternative's frozen core, when replaced (`--twin`): its weights file.
    pub twin: Option<String>,
    /// Imaging frames after the warm-up (from the onset of trial `warmup_trials`) on which
    /// both the live twin and the alternative predicted every cell; the correlations below
    /// are over these frames.
    pub prediction_frames: u64,
    /// Of those, each imaging plane's (every plane's cells are the twins' units).
    pub prediction_frames_per_plane: BTreeMap<u8, u64>,
    /// Median over cells of the correlation between the live twin's one-step-ahead prediction
    /// and the measured activity (`None` when a selector has no twin or no frame counted).
    pub live_prediction_cc: Option<f64>,
    /// The same for the alternative's twin.
    pub prediction_cc: Option<f64>,
    /// Median over cells of the correlation between the two twins' predictions.
    pub twins_prediction_cc: Option<f64>,
}

/// Streaming Pearson correlation (Welford co-moments), so a long session's per-cell series need
/// not be kept.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RunningCorr {
    n: f64,
    mx: f64,
    my: f64,
    cxx: f64,
    cyy: f64,
    cxy: f64,
}

impl RunningCorr {
    pub(super) fn push(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        let (dx, dy) = (x - self.mx, y - self.my);
        self.mx += dx / self.n;
        self.my += dy / self.n;
        self.cxx += dx * (x - self.mx);
        self.cyy += dy * (y - self.my);
        self.cxy += dx * (y - self.my);
    }

    /// NaN with fewer than two points or a constant series.
    pub(super) fn corr(&self) -> f64 {
        if self.n < 2.0 || self.cxx <= 0.0 || self.cyy <= 0.0 {
            return f64::NAN;
        }
        self.cxy / (self.cxx * self.cyy).sqrt()
    }
}

/// Per cell of every plane: live twin vs measured, alternative vs measured, live vs
/// alternative.
#[derive(Default)]
pub(super) struct PredictionAgreement {
    pub(super) frames: u64,
    /// Each plane's cells, and the frames counted for them.
    pub(super) planes: BTreeMap<u8, (u64, Vec<[RunningCorr; 3]>)>,
}

impl PredictionAgreement {
    pub(super) fn push(&mut self, plane: u8, measured: &[f32], live: &[f64], alt: &[f64]) {
        if live.len() != measured.len() || alt.len() != measured.len() {
            return;
        }
        let (frames, cells) = self.planes.entry(plane).or_default();
        if cells.len() != measured.len() {
            // The plane's population changed and both twins' readouts of it started again: so
            // does this.
            *cells = vec![[RunningCorr::default(); 3]; measured.len()];
            self.frames -= *frames;
            *frames = 0;
        }
        *frames += 1;
        self.frames += 1;
        for (((c, &y), &a), &b) in cells.iter_mut().zip(measured).zip(live).zip(alt) {
            if !(y.is_finite() && a.is_finite() && b.is_finite()) {
                continue;
            }
            c[0].push(a, f64::from(y));
            c[1].push(b, f64::from(y));
            c[2].push(a, b);
        }
    }

    /// The median over cells of correlation `k` (`None` when no cell has one).
    pub(super) fn median(&self, k: usize) -> Option<f64> {
        let m = crate::offline::design_bench::median(
            self.planes
                .values()
                .flat_map(|(_, cells)| cells.iter().map(|c| c[k].corr()))
                .collect(),
        );
        m.is_finite().then_some(m)
    }
}

/// The counterfactual selector replayed alongside the live one, and what it is compared on.
pub(super) struct Counterfactual {
    selector: Box<dyn Selector>,
    /// Its weights file, when `--twin` replaced the frozen core.
    twin: Option<String>,
    agreement: PredictionAgreement,
    scores: Vec<f64>,
}

impl Counterfactual {
    /// The selector the session's config with `overrides` builds.
    pub(super) fn new(cfg: &Config, overrides: &Overrides) -> Result<Counterfactual, ReplayError> {
        let mut c = overrides.apply(cfg);
        // The counterfactual selector's own twin refits would be taken when this machine
        // finishes them, not at logged trials: it keeps its twin frozen.
        c.trials.design.twin_refit_every = 0;
        let selector =
            build_selector(&c.decide_setup()).map_err(|e| ReplayError::Selector(e.to_string()))?;
        Ok(Counterfactual {
            selector,
            twin: overrides
                .twin
                .as_ref()
                .map(|t| t.weights.display().to_string()),
            agreement: PredictionAgreement::default(),
            scores: Vec::new(),
        })
    }

    pub(super) fn set_scan_offsets(&mut self, plane: u8, offsets_s: &[f64]) {
        self.selector.set_scan_offsets(plane, offsets_s.to_vec());
    }

    pub(super) fn onset(&mut self, o: &Onset) {
        self.selector.onset(o.trial, o.stimulus, o.t);
    }

    /// A frame, as the live selector observed it; past the warm-up both twins' predictions of
    /// it are compared with the measured activity.
    pub(super) fn observe(
        &mut self,
        activity: &ActivityBuf,
        behaviour: FrameBehaviour,
        live_prediction: Option<&[f64]>,
        past_warmup: bool,
    ) {
        self.selector.observe(activity, behaviour);
        if past_warmup
            && let (Some(live), Some(alt)) = (live_prediction, self.selector.prediction())
        {
            self.agreement
                .push(activity.frame.plane, activity.values(), live, alt);
        }
    }

    /// Its decision at the point of the live one.
    pub(super) fn decide(&mut self, live: &Decision, report: &mut ReplayReport) {
        let other = self
            .selector
            .decide(live.trial, live.mode == DecisionMode::Late);
        self.selector.prepare(live.trial + 1);
        let c = report
            .counterfactual
            .get_or_insert_with(|| PolicyComparison {
                policy: other.policy.clone(),
                twin: self.twin.clone(),
                ..PolicyComparison::default()
            });
        c.decisions += 1;
        c.same_stimulus += u64::from(other.stimulus == live.stimulus);
        let mode = serde_json::to_value(other.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *c.modes.entry(mode).or_insert(0) += 1;
        if let Some(s) = other.score {
            self.scores.push(s);
        }
    }

    /// Its mean score and both twins' prediction agreement, into the report.
    pub(super) fn finish(self, report: &mut ReplayReport) {
        let Some(c) = report.counterfactual.as_mut() else {
            return;
        };
        if !self.scores.is_empty() {
            c.mean_score = Some(self.scores.iter().sum::<f64>() / self.scores.len() as f64);
        }
        c.prediction_frames = self.agreement.frames;
        c.prediction_frames_per_plane = self
            .agreement
            .planes
            .iter()
            .map(|(plane, (frames, _))| (*plane, *frames))
            .collect();
        c.live_prediction_cc = self.agreement.median(0);
        c.prediction_cc = self.agreement.median(1);
        c.twins_prediction_cc = self.agreement.median(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CoreKind, Policy};
    use crate::stages::decide::design::Objective;

    #[test]
    fn a_twin_override_combines_with_policy_and_objective_and_keeps_the_grid() {
        let mut live = Config::default_sim();
        live.twin.grid_rows = 4;
        live.twin.preroll_frames = 3;
        let o = Overrides {
            policy: Some(Policy::Adaptive),
            objective: Some(Objective::Random),
            twin: Some(TwinOverride {
                weights: "w.safetensors".into(),
                config: Some("c.json".into()),
            }),
        };
        assert!(!o.is_empty());
        let alt = o.apply(&live);
        assert_eq!(alt.trials.design.objective, Objective::Random);
        assert_eq!(alt.twin.core, CoreKind::Fnn);
        assert_eq!(alt.twin.weights.as_deref(), Some("w.safetensors".as_ref()));
        assert_eq!(alt.twin.config.as_deref(), Some("c.json".as_ref()));
        assert_eq!((alt.twin.grid_rows, alt.twin.preroll_frames), (4, 3));
        assert_eq!(
            live.twin.core,
            CoreKind::Pretrained,
            "the live config is untouched"
        );
    }

    #[test]
    fn streaming_correlation_matches_the_two_pass_formula() {
        let x: Vec<f64> = (0..50)
            .map(|i| (i as f64 * 0.37).sin() * 3.0 + 100.0)
            .collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * v + (i as f64 * 1.3).cos())
            .collect();
        let mut c = RunningCorr::default();
        for (a, b) in x.iter().zip(&y) {
            c.push(*a, *b);
        }
        let want = twinloop_model::metrics::pearson(&x, &y).unwrap();
        assert!((c.corr() - want).abs() < 1e-12, "{} vs {want}", c.corr());
        let mut flat = RunningCorr::default();
        flat.push(1.0, 2.0);
        flat.push(1.0, 3.0);
        assert!(flat.corr().is_nan());
    }
}
