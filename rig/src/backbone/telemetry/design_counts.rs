//! What the adaptive design had to repair or refuse, counted by the designer (a stage) and
//! published with the session's counters. Plain data here so every layer can carry it.

use serde::{Deserialize, Serialize};

/// Counts of what the designer had to repair or refuse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
