//! The ROI classifier: is a candidate ROI a soma? Candidates found by detection are scored on
//! shape, brightness against their surround and activity ([`features`]), and a logistic model
//! ([`model`]) trained on labelled ROIs from two independent synthetic generators turns the
//! features into a probability; ROIs below the threshold (`classifier_threshold`) are
//! rejected, as suite2p's `iscell`. [`fit`] trains it again; see `CLASSIFIER.md`.

pub mod features;
pub mod fit;
pub mod model;

pub use features::RoiFeatures;
pub use model::{INPUT_NAMES, RoiClassifier};

/// One candidate ROI's verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoiVerdict {
    /// Its features.
    pub features: RoiFeatures,
    /// Probability that it is a soma.
    pub probability: f64,
    /// Whether it was kept (probability at least the threshold).
    pub is_cell: bool,
}
