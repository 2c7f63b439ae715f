//! Binned synapse density against each measure, with the fitted model's curve: what the
//! report page plots beside the slopes (Ding et al.'s Fig. 3 style).
//!
//! Per projection type the synaptic model kept, pairs are split into quantile bins of the
//! measure; a bin's density is Σ synapses / Σ L_d (synapses per µm of co-travel). The model's
//! curve is ρ̂ · exp(β̂ m) with β̂ the fitted slope and ρ̂ set so that the curve predicts the
//! type's total synapse count (Σ_pairs L_d · ρ̂ · exp(β̂ m) = Σ synapses): the random effects
//! average out of a population curve, so its level is matched, its shape is the model's.

use super::analyze::{Measure, Scale, WiringOptions, WiringReport, used_pairs};
use super::{Embedding, Pair};
use crate::error::{Result, invalid};

/// One bin of one measure within one projection type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DensityBin {
    /// Range and mean of the measure over the bin's pairs.
    pub lo: f64,
    pub hi: f64,
    pub mean: f64,
    pub pairs: usize,
    pub synapses: f64,
    /// Σ synapses / Σ L_d, per µm.
    pub density_per_um: f64,
    /// The model's curve at `mean`, per µm.
    pub fitted_per_um: f64,
}

/// The bins of one (measure, projection type).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DensityCurve {
    pub measure: Measure,
    pub projection: String,
    /// The fitted synaptic-scale slope used for the curve.
    pub slope: f64,
    pub bins: Vec<DensityBin>,
}

/// Binned density for every measure and projection type that `report` has a synaptic slope
/// for; `n_bins` quantile bins (fewer when a type has fewer pairs).
pub fn binned_density(
    embeddings: &[Embedding],
    pairs: &[Pair],
    options: &WiringOptions,
    report: &WiringReport,
    n_bins: usize,
) -> Result<Vec<DensityCurve>> {
    if n_bins == 0 {
        return Err(invalid("n_bins", "need at least one bin"));
    }
    let (_, used) = used_pairs(embeddings, pairs, options)?;
    let mut out = Vec::new();
    for slope in report.slopes.iter().filter(|s| s.scale == Scale::Synaptic) {
        let mut rows: Vec<(f64, f64, f64)> = used
            .iter()
            .filter(|p| p.projection == slope.projection)
            .map(|p| {
                let m = match slope.measure {
                    Measure::FeatureSimilarity => p.similarity,
                    Measure::RfDistance => p.rf_distance,
                };
                (m, p.l_d, p.synapses)
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let b = slope.estimate;
        let total: f64 = rows.iter().map(|r| r.2).sum();
        let exposure: f64 = rows.iter().map(|r| r.1 * (b * r.0).exp()).sum();
        let rho = if exposure > 0.0 {
            total / exposure
        } else {
            0.0
        };
        let k = n_bins.min(rows.len());
        let bins = (0..k)
            .map(|i| {
                let chunk = &rows[i * rows.len() / k..(i + 1) * rows.len() / k];
                let n = chunk.len() as f64;
                let mean = chunk.iter().map(|r| r.0).sum::<f64>() / n;
                let syn: f64 = chunk.iter().map(|r| r.2).sum();
                let l: f64 = chunk.iter().map(|r| r.1).sum();
                DensityBin {
                    lo: chunk[0].0,
                    hi: chunk[chunk.len() - 1].0,
                    mean,
                    pairs: chunk.len(),
                    synapses: syn,
                    density_per_um: syn / l,
                    fitted_per_um: rho * (b * mean).exp(),
                }
            })
            .collect();
        out.push(DensityCurve {
            measure: slope.measure,
            projection: slope.projection.clone(),
            slope: b,
            bins,
        });
    }
    Ok(out)
}
