//! `[trials.design]`: the objective and the rules' settings, each checked.

use crate::vocab::section::{Invalid, MAX_WAIT_S};
use serde::{Deserialize, Serialize};

/// What the adaptive trials maximise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Expected information gain about the readouts (Lewi et al. 2009).
    InfoGain,
    /// Expected reduction of the predictive variance on the test block's stimuli.
    VarianceReduction,
    /// The predicted response, every unit weighted equally (most-exciting inputs).
    ResponseMax,
    /// No adaptive trials: the random baseline under the same rules.
    Random,
}

/// The design's settings (`[trials.design]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DesignConfig {
    pub objective: Objective,
    /// Share of the non-test trials after warm-up that are random, in [0, 1].
    pub random_share: f64,
    /// Every n-th trial shows the next test-block stimulus (0: no test block; then no CC_norm
    /// and no fallback).
    pub test_every: u32,
    /// Random trials at the start, for locating receptive fields.
    pub warmup_trials: u32,
    /// Largest share of adaptive trials any one stimulus kind may take, in (0, 1].
    pub kind_cap: f64,
    /// Readout positions are re-estimated (and moved units refitted) every this many trials.
    pub refit_every: u32,
    /// Test-block evaluations without improvement before falling back to random.
    pub patience: u32,
    /// Stimulus-to-activity delay, seconds.
    pub response_delay_s: f64,
    /// Prior variance of each readout weight.
    pub prior_var: f64,
    /// Random-walk variance added per second (slow drift of the readouts).
    pub process_noise_per_s: f64,
    /// Activity more than this many standard deviations above a cell's running mean is clipped
    /// there (an outlier must not blow the posterior up); the scale is each cell's own, so
    /// spikes, dF/F and raw fluorescence all work. Applies once a cell has 100 frames.
    pub outlier_sd: f32,
    /// Score every n-th frame of a clip (its Fisher weight scaled by n).
    pub score_stride: usize,
    /// Adaptive trials planned at once by greedy selection (the criterion is submodular).
    pub batch: usize,
    /// Threads for scoring.
    pub threads: usize,
    /// A decision slower than this is replaced by the random one (milliseconds; 0 = never).
    pub deadline_ms: f64,
    /// Imaging frames kept for batch refits.
    pub history_frames: usize,
    /// Every this many trials the twin itself (perspective, modulation, readouts) is refitted
    /// on a worker thread from everything kept so far, and the pool's features recomputed
    /// through it (`twin_refit.rs`; fnn cores only, 0 = off).
    pub twin_refit_every: u32,
    /// Optimiser steps of each twin refit (fixed, so a refit is deterministic).
    pub twin_refit_steps: u32,
    /// Score information gain on the f32 lane path (`model::design`, 4-13x faster than the f64
    /// reference, within 2e-5 relative). Missing from a config or manifest it is off, what
    /// sessions recorded before the lane path scored with (so they replay bit for bit);
    /// `Default` is on.
    #[serde(default)]
    pub fast_scoring: bool,
    /// With `fast_scoring`, information gain and `batch = 1`: score from the candidates'
    /// features cached between decisions (rebuilt when readouts move or the pool changes;
    /// `designer/cached.rs`), within 1e-6 of the uncached lane path. Missing from a config or
    /// manifest it is off (so sessions recorded before replay bit for bit); `Default` is on.
    #[serde(default)]
    pub feature_cache: bool,
    /// Hold the repeated test block out: its frames score CC_norm and nothing learns from them
    /// (posterior, receptive-field map, refit history). Missing from a config or manifest it is
    /// off, as sessions recorded before it learnt from the test block (so they replay bit for
    /// bit); `Default` and the shipped configs turn it on.
    #[serde(default)]
    pub hold_out_test_block: bool,
    /// Units whose CC_max on the test block is below this are left out of the held-out mean:
    /// CC_norm divides by CC_max, and a few noisy repeats can put CC_max just above zero (one
    /// unit then reached a CC_norm of 410,361 and set a best no later evaluation could beat, so
    /// the rule fell back to random trials). At 0.2 a unit's CC_norm is bounded by 5 · CC_abs.
    /// Missing from a config or manifest it is 0 (no floor: what sessions recorded before it
    /// computed, so they replay bit for bit); `Default` and the shipped configs use 0.2.
    #[serde(default)]
    pub min_cc_max: f64,
}

impl Default for DesignConfig {
    fn default() -> Self {
        DesignConfig {
            objective: Objective::InfoGain,
            random_share: 0.5,
            test_every: 5,
            warmup_trials: 16,
            kind_cap: 0.6,
            refit_every: 20,
            patience: 6,
            response_delay_s: 0.0,
            prior_var: 1.0,
            process_noise_per_s: 1e-5,
            outlier_sd: 20.0,
            score_stride: 6,
            batch: 1,
            threads: 1,
            deadline_ms: 1500.0,
            history_frames: 20_000,
            twin_refit_every: 40,
            twin_refit_steps: 60,
            fast_scoring: true,
            feature_cache: true,
            hold_out_test_block: true,
            min_cc_max: 0.2,
        }
    }
}

impl DesignConfig {
    /// Checks every field; the error names it and says what is allowed.
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |field: &str, value: String, what: &str| {
            Err(Invalid::new(format!("trials.design.{field}"), value, what))
        };
        if !(0.0..=1.0).contains(&self.random_share) {
            return bad(
                "random_share",
                self.random_share.to_string(),
                "must be in [0, 1]",
            );
        }
        if !(0.0..1.0).contains(&self.min_cc_max) {
            return bad(
                "min_cc_max",
                self.min_cc_max.to_string(),
                "must be in [0, 1) (0: every unit with a defined CC_max counts)",
            );
        }
        if !(self.kind_cap > 0.0 && self.kind_cap <= 1.0) {
            return bad("kind_cap", self.kind_cap.to_string(), "must be in (0, 1]");
        }
        if self.refit_every == 0 {
            return bad(
                "refit_every",
                self.refit_every.to_string(),
                "must be at least 1",
            );
        }
        if !(self.response_delay_s >= 0.0 && self.response_delay_s < 10.0) {
            return bad(
                "response_delay_s",
                self.response_delay_s.to_string(),
                "must be in [0, 10) seconds",
            );
        }
        if !(self.prior_var > 0.0 && self.prior_var.is_finite()) {
            return bad("prior_var", self.prior_var.to_string(), "must be positive");
        }
        if !(self.process_noise_per_s >= 0.0 && self.process_noise_per_s.is_finite()) {
            return bad(
                "process_noise_per_s",
                self.process_noise_per_s.to_string(),
                "must be non-negative",
            );
        }
        if self.outlier_sd.is_nan() || self.outlier_sd <= 0.0 {
            return bad(
                "outlier_sd",
                self.outlier_sd.to_string(),
                "must be positive",
            );
        }
        if self.score_stride == 0 || self.batch == 0 || self.threads == 0 {
            return bad(
                "score_stride/batch/threads",
                format!("{}/{}/{}", self.score_stride, self.batch, self.threads),
                "must be at least 1",
            );
        }
        if !(self.deadline_ms.is_finite() && (0.0..=MAX_WAIT_S * 1e3).contains(&self.deadline_ms)) {
            return bad(
                "deadline_ms",
                self.deadline_ms.to_string(),
                "must be non-negative milliseconds, at most a day (0 = no deadline)",
            );
        }
        // Threads are spawned and batches and histories allocated from these: bound them.
        let limits = [
            ("threads", self.threads, 256, "threads"),
            ("batch", self.batch, 1024, "trials"),
            ("score_stride", self.score_stride, 10_000, "frames"),
            ("history_frames", self.history_frames, 10_000_000, "frames"),
        ];
        for (field, v, max, unit) in limits {
            if v > max {
                return bad(
                    field,
                    v.to_string(),
                    &format!("must be at most {max} {unit}"),
                );
            }
        }
        if self.history_frames == 0 {
            return bad(
                "history_frames",
                self.history_frames.to_string(),
                "must be at least 1",
            );
        }
        if self.twin_refit_every > 0 && self.twin_refit_steps == 0 {
            return bad(
                "twin_refit_steps",
                self.twin_refit_steps.to_string(),
                "must be at least 1 (or set twin_refit_every = 0 to turn twin refits off)",
            );
        }
        Ok(())
    }
}
