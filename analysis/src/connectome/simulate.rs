//! Drawing one connectome: cells, features, proximity pairs, synapse counts, and the exported
//! (noisy, partly mis-co-registered) embeddings.

use super::geometry::{Area, Cell, CellType, co_travel};
use super::{Connectome, ConnectomeConfig, GroundTruth};
use crate::error::{Result, invalid};
use crate::wiring::{Embedding, Pair, cosine_similarity, rf_distance_deg};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

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

    // Proofread presynaptic cells: excitatory, as MICrONS' proofread axons.
    let mut excitatory: Vec<usize> = (0..cells.len())
        .filter(|&i| {
            matches!(
                cells[i].cell_type,
                CellType::L23Exc | CellType::L4Exc | CellType::L5Exc
            )
        })
        .collect();
    excitatory.shuffle(&mut rng);
    if excitatory.len() < config.n_presynaptic {
        return Err(invalid(
            "n_presynaptic",
            format!(
                "{} exceeds the {} excitatory cells; raise n_cells",
                config.n_presynaptic,
                excitatory.len()
            ),
        ));
    }
    let mut pre: Vec<usize> = excitatory[..config.n_presynaptic].to_vec();
    pre.sort_unstable();
    let u_dist = Normal::new(0.0, config.presynaptic_sd).expect("validated SD");
    let effects: Vec<f64> = pre.iter().map(|_| u_dist.sample(&mut rng)).collect();

    // Proximity pairs and their (unscaled) synapse rates.
    let mut raw = Vec::new();
    for (k, &i) in pre.iter().enumerate() {
        for j in 0..cells.len() {
            if j == i {
                continue;
            }
            let l = co_travel(&cells[i], &cells[j]);
            if l < config.min_co_travel_um {
                continue;
            }
            let s = cosine_similarity(&features[i], &features[j]);
            let r = rf_distance_deg(cells[i].rf_deg, cells[j].rf_deg);
            let rate =
                l * (config.beta_feature * s + config.beta_rf_per_deg * r + effects[k]).exp();
            raw.push((i, j, l, s, r, rate));
        }
    }
    if raw.is_empty() {
        return Err(invalid(
            "min_co_travel_um",
            "no proximity pairs; lower it or add cells",
        ));
    }
    let rates: Vec<f64> = raw.iter().map(|p| p.5).collect();
    let rho = calibrate_rho(&rates, 1.0 / (1.0 + config.unconnected_per_connected));
    let pairs: Vec<Pair> = raw
        .iter()
        .map(|&(i, j, l, _, _, rate)| {
            let synapses = Poisson::new(rho * rate).map_or(0.0, |p| p.sample(&mut rng)) as u32;
            Pair {
                pre_id: i as u64,
                post_id: j as u64,
                l_d_um: l,
                synapses,
                projection: format!("{}->{}", cells[i].area.name(), cells[j].area.name()),
            }
        })
        .collect();

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
    let n_wrong = (config.coregistration_error * cells.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.shuffle(&mut rng);
    let wrong: Vec<usize> = order[..n_wrong.min(cells.len())].to_vec();
    if wrong.len() >= 2 {
        let first = functional[wrong[0]].clone();
        for w in 0..wrong.len() - 1 {
            functional[wrong[w]] = functional[wrong[w + 1]].clone();
        }
        functional[*wrong.last().expect("≥ 2")] = first;
    }
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
        presynaptic: pre.iter().map(|&i| i as u64).collect(),
        presynaptic_effects: effects,
        misregistered: wrong.iter().map(|&i| i as u64).collect(),
        pair_similarity: raw.iter().map(|p| p.3).collect(),
        pair_rf_distance_deg: raw.iter().map(|p| p.4).collect(),
    };
    Ok(Connectome {
        embeddings,
        pairs,
        truth,
    })
}

fn validate(c: &ConnectomeConfig) -> Result<()> {
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

/// ρ such that the expected fraction of pairs with ≥ 1 synapse, mean(1 − e^{−ρ·rate}), is
/// `target` (bisection on log ρ; the fraction is increasing in ρ).
fn calibrate_rho(rates: &[f64], target: f64) -> f64 {
    let frac =
        |rho: f64| rates.iter().map(|r| -(-rho * r).exp_m1()).sum::<f64>() / rates.len() as f64;
    let (mut lo, mut hi) = (-40.0f64, 20.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if frac(mid.exp()) < target {
            lo = mid
        } else {
            hi = mid
        }
    }
    (0.5 * (lo + hi)).exp()
}
