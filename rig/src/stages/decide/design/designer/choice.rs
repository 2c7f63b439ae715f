//! What a decision says: why this stimulus, its score, the alternatives, and the design's
//! counters (defined in `stages::decide::decision`, re-exported here).

pub use crate::stages::decide::decision::{
    AccuracyPoint, Alternative, DecisionMode, DesignChoice, DesignCounts,
};
