//! Planting the wiring rule on given cells: proofread presynaptic cells, per-cell effects u_i,
//! proximity pairs from the analytic co-travel length, and Poisson synapse counts
//! N_ij ~ Poisson(ρ · L_ij · exp(β_f s_ij + β_r r_ij + u_i)) with ρ calibrated to the wanted
//! share of connected pairs. Shared by [`super::simulate`] (synthetic features) and the rig's
//! simulated mouse (`rig/src/sim/connectome.rs`, the simulator's true tuning as features), so
//! both run one rule.

use super::ConnectomeConfig;
use super::geometry::{Cell, CellType, co_travel};
use super::simulate::validate;
use crate::error::{Result, invalid};
use crate::wiring::{Pair, cosine_similarity, rf_distance_deg};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal, Poisson};

/// The planted pairs and what was drawn for them.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Every proximity pair (L ≥ `min_co_travel_um`), connected or not; ids are cell indices.
    pub pairs: Vec<Pair>,
    pub rho_per_um: f64,
    /// Proofread presynaptic cells (indices, ascending) and their effects u_i.
    pub presynaptic: Vec<u64>,
    pub presynaptic_effects: Vec<f64>,
    /// True s_ij and r_ij of each pair, in the order of `pairs`.
    pub pair_similarity: Vec<f64>,
    pub pair_rf_distance_deg: Vec<f64>,
}

/// Plants `config`'s rule on `cells` whose true feature vectors (no RF position in them) are
/// `features`; `config.n_cells` and `feature_dim` are not used (the cells and features are).
pub fn plant(
    cells: &[Cell],
    features: &[Vec<f64>],
    config: &ConnectomeConfig,
    rng: &mut impl Rng,
) -> Result<Planted> {
    validate(config)?;
    if features.len() != cells.len() {
        return Err(invalid(
            "features",
            format!(
                "{} feature vectors for {} cells",
                features.len(),
                cells.len()
            ),
        ));
    }
    // Proofread presynaptic cells: excitatory, as MICrONS' proofread axons.
    let mut excitatory: Vec<usize> = (0..cells.len())
        .filter(|&i| {
            matches!(
                cells[i].cell_type,
                CellType::L23Exc | CellType::L4Exc | CellType::L5Exc
            )
        })
        .collect();
    excitatory.shuffle(rng);
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
    let u_dist = Normal::new(0.0, config.presynaptic_sd)
        .map_err(|e| invalid("presynaptic_sd", e.to_string()))?;
    let effects: Vec<f64> = pre.iter().map(|_| u_dist.sample(rng)).collect();

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
            let synapses = Poisson::new(rho * rate).map_or(0.0, |p| p.sample(rng)) as u32;
            Pair {
                pre_id: i as u64,
                post_id: j as u64,
                l_d_um: l,
                synapses,
                projection: format!("{}->{}", cells[i].area.name(), cells[j].area.name()),
            }
        })
        .collect();

    Ok(Planted {
        pairs,
        rho_per_um: rho,
        presynaptic: pre.iter().map(|&i| i as u64).collect(),
        presynaptic_effects: effects,
        pair_similarity: raw.iter().map(|p| p.3).collect(),
        pair_rf_distance_deg: raw.iter().map(|p| p.4).collect(),
    })
}

/// Co-registration errors: a `fraction` of the rows, chosen at random, get the next chosen
/// row's functional data (a rotation among them, so every value stays in the table once).
/// Returns the rows that were moved.
pub fn misregister<T: Clone>(rows: &mut [T], fraction: f64, rng: &mut impl Rng) -> Vec<usize> {
    let n_wrong = (fraction * rows.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(rng);
    let wrong: Vec<usize> = order[..n_wrong.min(rows.len())].to_vec();
    if let (Some(&first_i), Some(&last)) = (wrong.first(), wrong.last())
        && wrong.len() >= 2
    {
        let first = rows[first_i].clone();
        for w in 0..wrong.len() - 1 {
            rows[wrong[w]] = rows[wrong[w + 1]].clone();
        }
        rows[last] = first;
    }
    wrong
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
