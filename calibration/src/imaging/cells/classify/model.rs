//! The ROI classifier: logistic regression on standardised, transformed features.
//!
//! `p(cell) = 1 / (1 + exp(-(b + sum_k c_k (x_k - mean_k) / sd_k)))` over the inputs
//! [`model_inputs`] makes from [`RoiFeatures`]. The coefficients live in `classifier.json`
//! next to this module, compiled in; `CLASSIFIER.md` says how they were trained and how to
//! train them again.

use super::features::RoiFeatures;
use crate::imaging::cells::CellsError;
use serde::{Deserialize, Serialize};

/// Names of the model inputs, in order.
pub const INPUT_NAMES: [&str; 9] = [
    "skew",
    "ln_peak_sd",
    "ln_trough_sd",
    "ln_npix_norm",
    "compact",
    "ln_aspect_ratio",
    "anatomy_z",
    "corr_z",
    "dark_rim",
];

/// The inputs the model weighs, from an ROI's features: heavy tails clipped so one odd ROI
/// cannot dominate, sizes and ratios on log scales.
pub fn model_inputs(f: &RoiFeatures) -> [f64; 9] {
    [
        f.skew.clamp(-2.0, 8.0),
        f.peak_sd.max(0.5).ln(),
        f.trough_sd.max(0.5).ln(),
        f.npix_norm.max(0.05).ln(),
        f.compact.clamp(0.8, 3.0),
        f.aspect_ratio.max(1.0).ln(),
        f.anatomy_z.clamp(-5.0, 30.0),
        f.corr_z.clamp(-5.0, 30.0),
        f.dark_rim.clamp(-10.0, 5.0),
    ]
}

/// A trained classifier, as saved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoiClassifier {
    /// Input names, as [`INPUT_NAMES`] (checked on load).
    pub inputs: Vec<String>,
    /// Mean of each input over the training set.
    pub mean: Vec<f64>,
    /// S.d. of each input over the training set.
    pub sd: Vec<f64>,
    /// Coefficient of each standardised input.
    pub coef: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
    /// How it was trained (generators, seeds, counts, training accuracy), for humans.
    pub trained_on: String,
}

const BUILT_IN: &str = include_str!("../classifier.json");

impl RoiClassifier {
    /// The classifier shipped with this crate (see `CLASSIFIER.md`).
    pub fn built_in() -> Result<RoiClassifier, CellsError> {
        RoiClassifier::from_json(BUILT_IN)
    }

    /// Parses and checks a saved classifier.
    pub fn from_json(text: &str) -> Result<RoiClassifier, CellsError> {
        let c: RoiClassifier = serde_json::from_str(text)
            .map_err(|e| CellsError::InvalidMasks(format!("ROI classifier JSON: {e}")))?;
        let k = INPUT_NAMES.len();
        if c.inputs != INPUT_NAMES || c.mean.len() != k || c.sd.len() != k || c.coef.len() != k {
            return Err(CellsError::InvalidMasks(format!(
                "ROI classifier: inputs must be {INPUT_NAMES:?} with {k} means, s.d.s and \
                 coefficients; retrain it (CLASSIFIER.md)"
            )));
        }
        if c.sd.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || c.mean.iter().chain(&c.coef).any(|v| !v.is_finite())
            || !c.intercept.is_finite()
        {
            return Err(CellsError::InvalidMasks(
                "ROI classifier: non-finite or non-positive s.d. values; retrain it".into(),
            ));
        }
        Ok(c)
    }

    /// Probability that the ROI is a soma.
    pub fn probability(&self, f: &RoiFeatures) -> f64 {
        let x = model_inputs(f);
        let z = self.intercept
            + x.iter()
                .zip(&self.mean)
                .zip(&self.sd)
                .zip(&self.coef)
                .map(|(((x, m), s), c)| c * (x - m) / s)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}
