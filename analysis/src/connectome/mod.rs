//! A simulated connectome with a planted wiring rule (issue #21): cells in a cortical slab over
//! three layers and two visual areas (V1 and a higher area with a retinotopic reversal at the
//! border), six cell types whose feature tuning depends on type and area, Gaussian axon and
//! dendrite clouds with an analytic co-travel length L_ij, and synapse counts
//!
//! N_ij ~ Poisson(ρ · L_ij · exp(β_f s_ij + β_r r_ij + u_i))
//!
//! with s_ij the true feature similarity (cosine, no receptive-field position in it), r_ij the
//! true RF distance in degrees and u_i ~ N(0, σ_u²) a per-presynaptic-cell effect. ρ is set so
//! that there are `unconnected_per_connected` proximity pairs without a synapse per pair with
//! one. The "imaged" side (what a twin would export) sees noisy features and RF positions, and a
//! fraction of cells are mis-co-registered (their embedding belongs to another cell).
//!
//! Features here are synthetic. [`plant`] runs the same rule on given cells and features: the
//! rig's simulated mouse (`rig/src/sim/connectome.rs`) plants it from its cells' true tuning,
//! and a fitted twin's readouts stand in for the embeddings (`twinloop analyze twin-chain`).

mod geometry;
mod plant;
mod simulate;

pub use geometry::{Area, Cell, CellType, co_travel_length_um};
pub use plant::{Planted, misregister, plant};
pub use simulate::{SIMULATED_CORE, simulate};

use crate::wiring::{Embedding, Pair};

/// Knobs of the simulated connectome; `Default` is the setting with the feature rule.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectomeConfig {
    /// Cells in the slab (all can be postsynaptic).
    pub n_cells: usize,
    /// Proofread presynaptic cells (the issue: 100–250).
    pub n_presynaptic: usize,
    /// Dimension of the readout feature-weight vectors.
    pub feature_dim: usize,
    /// β_f, per unit of cosine similarity.
    pub beta_feature: f64,
    /// β_r, per degree of RF distance.
    pub beta_rf_per_deg: f64,
    /// SD of the per-presynaptic-cell effect u_i.
    pub presynaptic_sd: f64,
    /// Proximity pairs without a synapse per pair with one (MICrONS: about 34).
    pub unconnected_per_connected: f64,
    /// Fraction of cells whose embedding belongs to another cell (the issue: 5–10%).
    pub coregistration_error: f64,
    /// SD of the noise added to each true feature weight in the exported embedding (twin error).
    pub readout_noise: f64,
    /// SD of the error of the exported RF position, degrees.
    pub rf_noise_deg: f64,
    /// Proximity threshold: pairs with L_ij below this are not proximity pairs, µm.
    pub min_co_travel_um: f64,
    pub seed: u64,
}

impl Default for ConnectomeConfig {
    fn default() -> Self {
        Self {
            n_cells: 1200,
            n_presynaptic: 150,
            feature_dim: 16,
            beta_feature: 1.8,
            beta_rf_per_deg: 0.0,
            presynaptic_sd: 0.5,
            unconnected_per_connected: 34.0,
            coregistration_error: 0.07,
            readout_noise: 0.0,
            rf_noise_deg: 1.0,
            min_co_travel_um: 2.0,
            seed: 0,
        }
    }
}

/// What the simulator planted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroundTruth {
    pub beta_feature: f64,
    pub beta_rf_per_deg: f64,
    /// ρ, synapses per µm of co-travel at s = r = u = 0.
    pub rho_per_um: f64,
    pub cell_types: Vec<CellType>,
    pub areas: Vec<Area>,
    /// Soma positions (x, y across cortex; z depth), µm.
    pub soma_um: Vec<[f64; 3]>,
    /// True feature vectors (unit length) and RF centres (azimuth, elevation, degrees).
    pub features: Vec<Vec<f64>>,
    pub rf_deg: Vec<[f64; 2]>,
    /// u_i of each presynaptic cell, keyed like `presynaptic`.
    pub presynaptic: Vec<u64>,
    pub presynaptic_effects: Vec<f64>,
    /// Cells whose exported embedding is another cell's.
    pub misregistered: Vec<u64>,
    /// True s_ij and r_ij of each pair, in the order of `Connectome::pairs`.
    pub pair_similarity: Vec<f64>,
    pub pair_rf_distance_deg: Vec<f64>,
}

/// A simulated session's anatomy: the tables a lab would have, and the truth behind them.
#[derive(Debug, Clone)]
pub struct Connectome {
    pub embeddings: Vec<Embedding>,
    pub pairs: Vec<Pair>,
    pub truth: GroundTruth,
}
