//! The two-scale wiring analysis of Ding et al. (Nature 640:459, 2025): do neurons connect by
//! what they respond to (readout feature similarity) or by where they look (RF distance)?
//!
//! Per similarity measure m ∈ {feature cosine, RF distance} and projection type t:
//! - axonal scale: L_d ~ m × type + (1 | pre), Tweedie, log link;
//! - synaptic scale: synapses ~ m × type + offset(log L_d) + (1 | pre), Poisson.
//!
//! Only cells with CC_max > 0.4 and CC_abs > 0.2 (both ends of a pair) are used. The slope of m
//! within each type gets a Wald test; Benjamini–Hochberg runs over the types of one
//! (scale, measure) model. Tables: `analysis/SCHEMA.md`, read by [`table`].

mod analyze;
mod bins;
mod pair_features;
pub mod table;

pub use analyze::{Measure, ModelSummary, Scale, Slope, WiringOptions, WiringReport, analyze};
pub use bins::{DensityBin, DensityCurve, binned_density};
pub use pair_features::{cosine_similarity, rf_distance_deg};

/// One imaged cell's readout embedding (a row of the embeddings table).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Embedding {
    pub cell_id: u64,
    /// The twin core the readout belongs to; similarities across cores are meaningless.
    pub core_id: String,
    /// Standardised readout feature weights.
    pub features: Vec<f64>,
    /// Readout (receptive-field) position, degrees.
    pub azimuth_deg: f64,
    pub elevation_deg: f64,
    /// Prediction accuracy: correlation with responses, and normalised by its ceiling.
    pub cc_abs: f64,
    pub cc_max: f64,
    pub cell_type: String,
    pub area: String,
}

/// One proximity pair (a row of the pairs table).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub pre_id: u64,
    pub post_id: u64,
    /// Postsynaptic dendrite length within 5 µm of the presynaptic axon, µm (> 0).
    pub l_d_um: f64,
    pub synapses: u32,
    /// Projection type, e.g. `V1->HVA`.
    pub projection: String,
}
