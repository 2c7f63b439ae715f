//! What the adaptive design had to repair or refuse, counted by the designer (a stage) and
//! published with the session's counters. Plain data here so every layer can carry it.

use serde::{Deserialize, Serialize};

/// Counts of what the designer had to repair or refuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesignCounts {
    /// Imaging frames the readouts learned from (frames with cells).
    pub frames: u64,
    /// Activity values the posterior could not take (non-finite, or an update that failed).
    pub values_skipped: u64,
    /// Activity values clipped as outliers (`trials.design.outlier_sd`).
    pub values_clipped: u64,
    /// Times a plane's cell count changed (its readouts restart).
    pub unit_count_changes: u64,
    /// Decisions that overran their time limit, upkeep included: adaptive ones became random
    /// (mode `late`); test, warm-up and random ones kept their stimulus, but their onset waited.
    pub late: u64,
    /// Trials made random because held-out accuracy stopped improving.
    pub fallback_trials: u64,
    /// Readout batch refits (placement and re-placement), and those that failed.
    pub refits: u64,
    pub refit_failures: u64,
    /// Twin refits (perspective, modulation, readouts) applied, and failed (old twin kept).
    pub twin_refits: u64,
    pub twin_refit_failures: u64,
}
