//! What a decision says: why this stimulus, its score, the alternatives, and the design's
//! counters.

use serde::{Deserialize, Serialize};

/// Why a trial got its stimulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    /// Uniform over the candidates (the random policy, or the design's random share).
    #[default]
    Random,
    /// Random while the receptive fields are located.
    Warmup,
    /// The next stimulus of the repeated test block.
    Test,
    /// Maximised the objective.
    Adaptive,
    /// Random because held-out accuracy stopped improving.
    Fallback,
    /// Random because scoring overran its deadline.
    Late,
}

/// One candidate's score, as logged beside a decision (`entry` is the pool index, which is
/// also the stimulus id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub entry: u32,
    pub score: f64,
}

impl Alternative {
    pub fn stimulus_id(&self) -> u32 {
        self.entry
    }
}

/// What the designer chose and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DesignChoice {
    pub entry: usize,
    pub mode: DecisionMode,
    /// The chosen stimulus's score (adaptive trials).
    pub score: Option<f64>,
    /// The best few candidates with their scores, best first (adaptive trials).
    pub alternatives: Vec<Alternative>,
}

/// Held-out accuracy after some trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccuracyPoint {
    pub trials: u64,
    /// Mean CC_norm over units with a defined CC_max, on the test block.
    pub cc_norm: f64,
    pub units: usize,
}

/// Counts of what the designer had to repair or refuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DesignCounts {
    pub frames: u64,
    pub values_skipped: u64,
    pub values_clipped: u64,
    pub unit_count_changes: u64,
    pub late: u64,
    pub fallback_trials: u64,
    pub refits: u64,
    pub refit_failures: u64,
    /// Twin refits (perspective, modulation, readouts) applied, and failed (old twin kept).
    pub twin_refits: u64,
    pub twin_refit_failures: u64,
}
