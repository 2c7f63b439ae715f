//! Drawing one connectome: cells, features, proximity pairs, synapse counts, and the exported
//! (noisy, partly mis-co-registered) embeddings.

use super::geometry::{Area, Cell, CellType};
use super::plant::{Planted, misregister, plant};
use super::{Connectome, ConnectomeConfig, GroundTruth};
use crate::error::{Result, invalid};
use crate::wiring::Embedding;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The core id written into simulated embeddings.
pub const SIMULATED_CORE: &str = "simulated-truth";
/// Weight of the area prototype relative to the type prototype and the individual part of a
/// cell's feature vector: areas differ in SF/TF preference less than types differ in tuning.
const AREA_WEIGHT: f64 = 0.8;
const INDIVIDUAL_WEIGHT: f64 = 1.0;

/// Simulates one connectome; deterministic in `config.seed`.
pub fn simulate(config: &ConnectomeConfig) -> Result<Connectome> {
    validate(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let d = config.feature_dim;
    let cells: Vec<Cell> = (0..config.n_cells).map(|_| Cell::draw(&mut rng)).collect();

    // Feature vectors: type prototype + area prototype + individual part, unit length.
    let type_proto: Vec<Vec<f64>> = CellType::ALL
        .iter()
        .map(|_| (0..d).map(|_| normal.sample(&mut rng)).collect())
        .collect();
    let area_proto: Vec<Vec<f64>> = (0..2)
        .map(|_| (0..d).map(|_| normal.sample(&mut rng)).collect())
        .collect();
    let features: Vec<Vec<f64>> = cells
        .iter()
        .map(|c| {
            let t = &type_proto[CellType::ALL
                .iter()
                .position(|x| *x == c.cell_type)
                .expect("listed type")];
            let a = &area_proto[if c.area == Area::V1 { 0 } else { 1 }];
            let v: Vec<f64> = (0..d)
                .map(|k| t[k] + AREA_WEIGHT * a[k] + INDIVIDUAL_WEIGHT * normal.sample(&mut rng))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect();

    let planted = plant(&cells, &features, config, &mut rng)?;
    let Planted {
        pairs,
        rho_per_um: rho,
        presynaptic: pre,
        presynaptic_effects: effects,
        pair_similarity,
        pair_rf_distance_deg,
    } = planted;

    // The exported side: noisy features and RF positions, CC values, and co-registration errors
    // (a random subset's functional data rotated among themselves).
    let feat_noise = Normal::new(0.0, config.readout_noise.max(1e-300)).expect("validated");
    let rf_noise = Normal::new(0.0, config.rf_noise_deg.max(1e-300)).expect("validated");
    let scale = (d as f64).sqrt(); // unit vectors → per-weight variance about 1, like z-scores
    let mut functional: Vec<(Vec<f64>, [f64; 2], f64, f64)> = (0..cells.len())
        .map(|i| {
            let f = features[i]
                .iter()
                .map(|v| {
                    v * scale
                        + if config.readout_noise > 0.0 {
                            feat_noise.sample(&mut rng)
                        } else {
                            0.0
                        }
                })
                .collect();
            let rf = cells[i].rf_deg.map(|v| {
                v + if config.rf_noise_deg > 0.0 {
                    rf_noise.sample(&mut rng)
                } else {
                    0.0
                }
            });
            let cc_max = rng.random_range(0.25..0.95);
            let cc_abs = cc_max * rng.random_range(0.35..1.0);
            (f, rf, cc_abs, cc_max)
        })
        .collect();
    let wrong = misregister(&mut functional, config.coregistration_error, &mut rng);
    let embeddings = cells
        .iter()
        .zip(functional)
        .enumerate()
        .map(|(i, (c, (features, rf, cc_abs, cc_max)))| Embedding {
            cell_id: i as u64,
            core_id: SIMULATED_CORE.to_string(),
            features,
            azimuth_deg: rf[0],
            elevation_deg: rf[1],
            cc_abs,
            cc_max,
            cell_type: c.cell_type.name().to_string(),
            area: c.area.name().to_string(),
        })
        .collect();
    let truth = GroundTruth {
        beta_feature: config.beta_feature,
        beta_rf_per_deg: config.beta_rf_per_deg,
        rho_per_um: rho,
        cell_types: cells.iter().map(|c| c.cell_type).collect(),
        areas: cells.iter().map(|c| c.area).collect(),
        soma_um: cells.iter().map(|c| c.soma_um).collect(),
        features,
        rf_deg: cells.iter().map(|c| c.rf_deg).collect(),
        presynaptic: pre,
        presynaptic_effects: effects,
        misregistered: wrong.iter().map(|&i| i as u64).collect(),
        pair_similarity,
        pair_rf_distance_deg,
    };
    Ok(Connectome {
        embeddings,
        pairs,
        truth,
    })
}

pub(super) fn validate(c: &ConnectomeConfig) -> Result<()> {
    if c.n_cells < 10 || c.n_presynaptic == 0 || c.feature_dim < 2 {
        return Err(invalid(
            "connectome",
            "need n_cells ≥ 10, n_presynaptic ≥ 1, feature_dim ≥ 2",
        ));
    }
    for (name, v) in [
        ("beta_feature", c.beta_feature),
        ("beta_rf_per_deg", c.beta_rf_per_deg),
        ("presynaptic_sd", c.presynaptic_sd),
        ("readout_noise", c.readout_noise),
        ("rf_noise_deg", c.rf_noise_deg),
    ] {
        if !v.is_finite() || (name != "beta_feature" && name != "beta_rf_per_deg" && v < 0.0) {
            return Err(invalid(
                name,
                format!(
                    "{v} must be finite{}",
                    if name.starts_with("beta") {
                        ""
                    } else {
                        " and ≥ 0"
                    }
                ),
            ));
        }
    }
    if !(c.unconnected_per_connected > 0.0 && c.unconnected_per_connected.is_finite()) {
        return Err(invalid(
            "unconnected_per_connected",
            "must be a positive number",
        ));
    }
    if !(0.0..=1.0).contains(&c.coregistration_error) {
        return Err(invalid(
            "coregistration_error",
            "must be a fraction in [0, 1]",
        ));
    }
    if c.min_co_travel_um.is_nan() || c.min_co_travel_um <= 0.0 {
        return Err(invalid("min_co_travel_um", "must be > 0"));
    }
    Ok(())
}
