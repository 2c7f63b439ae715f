//! What the daemon counts and times: typed counters shared by every thread, and per-stage
//! latency histograms owned by the thread that records them (no locks on the hot path).

mod counters;
mod design_counts;
mod latency;

pub use counters::{Anomaly, Counters, CountersSnapshot, REJECT_LABELS};
pub use design_counts::DesignCounts;
pub use latency::{LatencyHist, LatencySummary};
