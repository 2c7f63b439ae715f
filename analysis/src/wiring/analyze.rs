//! Building the per-measure, per-scale models from the tables and fitting them.

use super::{Embedding, Pair, cosine_similarity, rf_distance_deg};
use crate::design::Design;
use crate::error::{Error, Result, invalid};
use crate::glm::Family;
use crate::mixed::{MixedMethod, MixedOptions, fit_glmm};
use crate::multiple::bh_qvalues;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Settings of the wiring analysis (defaults: Ding et al.'s).
#[derive(Debug, Clone, Copy)]
pub struct WiringOptions {
    /// Keep cells with CC_max above this...
    pub min_cc_max: f64,
    /// ...and CC_abs above this.
    pub min_cc_abs: f64,
    /// Tweedie variance power of the axonal-scale model.
    pub tweedie_power: f64,
    /// A projection type needs this many pairs (and, at the synaptic scale, one synapse) to get
    /// its own slope; smaller ones are listed in `skipped`.
    pub min_pairs_per_type: usize,
    pub mixed: MixedOptions,
}

impl Default for WiringOptions {
    fn default() -> Self {
        Self {
            min_cc_max: 0.4,
            min_cc_abs: 0.2,
            tweedie_power: 1.5,
            min_pairs_per_type: 20,
            mixed: MixedOptions::default(),
        }
    }
}

/// Which scale a model describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Scale {
    /// L_d (dendrite length near the axon), Tweedie.
    Axonal,
    /// Synapse count given L_d, Poisson with offset log L_d.
    Synaptic,
}

/// Which similarity measure a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Measure {
    /// Cosine similarity of readout feature weights.
    FeatureSimilarity,
    /// Distance between readout positions, degrees.
    RfDistance,
}

/// The fitted slope of one measure within one projection type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Slope {
    pub scale: Scale,
    pub measure: Measure,
    pub projection: String,
    pub n_pairs: usize,
    /// β: change of log E[response] per unit of the measure.
    pub estimate: f64,
    pub std_error: f64,
    pub z: f64,
    pub p_value: f64,
    /// Benjamini–Hochberg q over the projection types of this (scale, measure) model.
    pub q_value: f64,
}

/// One fitted model's global quantities.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSummary {
    pub scale: Scale,
    pub measure: Measure,
    pub method: MixedMethod,
    pub random_sd: f64,
    /// Delta-method SE of `random_sd` (NaN under a fallback).
    pub random_sd_std_error: f64,
    pub dispersion: f64,
    pub n_pairs: usize,
    pub n_presynaptic: usize,
    /// Projection types left out, with the reason.
    pub skipped: Vec<String>,
}

/// Everything the analysis reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WiringReport {
    pub core_id: String,
    pub n_cells: usize,
    pub n_cells_kept: usize,
    pub n_pairs_input: usize,
    pub n_pairs_used: usize,
    pub models: Vec<ModelSummary>,
    pub slopes: Vec<Slope>,
}

impl WiringReport {
    /// The slope for one scale, measure and projection type.
    pub fn slope(&self, scale: Scale, measure: Measure, projection: &str) -> Option<&Slope> {
        self.slopes
            .iter()
            .find(|s| s.scale == scale && s.measure == measure && s.projection == projection)
    }
}

/// A pair that survived the filters, with its two measures.
pub(super) struct UsedPair {
    pub(super) pre: usize,
    pub(super) projection: String,
    pub(super) similarity: f64,
    pub(super) rf_distance: f64,
    pub(super) l_d: f64,
    pub(super) synapses: f64,
}

/// Runs both scales for both measures. Errors name the offending row (0-based index into the
/// slices; the CSV reader reports file lines before this point).
pub fn analyze(
    embeddings: &[Embedding],
    pairs: &[Pair],
    options: &WiringOptions,
) -> Result<WiringReport> {
    let (core_id, used) = used_pairs(embeddings, pairs, options)?;
    let kept = |e: &Embedding| e.cc_max > options.min_cc_max && e.cc_abs > options.min_cc_abs;
    let mut models = Vec::new();
    let mut slopes = Vec::new();
    for scale in [Scale::Axonal, Scale::Synaptic] {
        for measure in [Measure::FeatureSimilarity, Measure::RfDistance] {
            let (summary, mut s) = fit_one(&used, scale, measure, options)?;
            models.push(summary);
            slopes.append(&mut s);
        }
    }
    Ok(WiringReport {
        core_id,
        n_cells: embeddings.len(),
        n_cells_kept: embeddings.iter().filter(|e| kept(e)).count(),
        n_pairs_input: pairs.len(),
        n_pairs_used: used.len(),
        models,
        slopes,
    })
}

/// The pairs whose two cells pass the CC filters, with their two measures; checks the
/// embeddings (one core, unique ids) and that every pair's cells are in them.
pub(super) fn used_pairs(
    embeddings: &[Embedding],
    pairs: &[Pair],
    options: &WiringOptions,
) -> Result<(String, Vec<UsedPair>)> {
    let core_id = check_embeddings(embeddings)?;
    let by_id: HashMap<u64, &Embedding> = embeddings.iter().map(|e| (e.cell_id, e)).collect();
    let kept = |e: &Embedding| e.cc_max > options.min_cc_max && e.cc_abs > options.min_cc_abs;
    let mut pre_index: BTreeMap<u64, usize> = BTreeMap::new();
    let mut used = Vec::new();
    for (row, p) in pairs.iter().enumerate() {
        let (Some(a), Some(b)) = (by_id.get(&p.pre_id), by_id.get(&p.post_id)) else {
            let (role, cell) = if by_id.contains_key(&p.pre_id) {
                ("post", p.post_id)
            } else {
                ("pre", p.pre_id)
            };
            return Err(Error::UnknownCell {
                file: PathBuf::from("pairs"),
                line: row,
                role,
                cell,
            });
        };
        if !(p.l_d_um > 0.0 && p.l_d_um.is_finite()) {
            return Err(invalid(
                "pairs",
                format!("row {row}: l_d_um = {} must be a positive length", p.l_d_um),
            ));
        }
        if !(kept(a) && kept(b)) {
            continue;
        }
        let next = pre_index.len();
        let pre = *pre_index.entry(p.pre_id).or_insert(next);
        used.push(UsedPair {
            pre,
            projection: p.projection.clone(),
            similarity: cosine_similarity(&a.features, &b.features),
            rf_distance: rf_distance_deg(
                [a.azimuth_deg, a.elevation_deg],
                [b.azimuth_deg, b.elevation_deg],
            ),
            l_d: p.l_d_um,
            synapses: p.synapses as f64,
        });
    }
    if used.is_empty() {
        return Err(invalid(
            "pairs",
            "no pair has both cells above the CC_max/CC_abs thresholds",
        ));
    }
    Ok((core_id, used))
}

fn fit_one(
    used: &[UsedPair],
    scale: Scale,
    measure: Measure,
    options: &WiringOptions,
) -> Result<(ModelSummary, Vec<Slope>)> {
    // Projection types with enough data (and, for counts, any synapse: else the slope is
    // unidentified and the intercept runs to −∞).
    let mut counts: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for p in used {
        let c = counts.entry(&p.projection).or_default();
        c.0 += 1;
        c.1 += p.synapses;
    }
    let mut skipped = Vec::new();
    let types: Vec<&str> = counts
        .iter()
        .filter_map(|(t, (n, syn))| {
            if *n < options.min_pairs_per_type {
                skipped.push(format!("{t}: {n} pairs < {}", options.min_pairs_per_type));
                None
            } else if scale == Scale::Synaptic && *syn == 0.0 {
                skipped.push(format!("{t}: no synapses"));
                None
            } else {
                Some(*t)
            }
        })
        .collect();
    if types.is_empty() {
        return Err(invalid(
            "pairs",
            format!(
                "no projection type is large enough for the {scale:?} model ({})",
                skipped.join("; ")
            ),
        ));
    }
    let rows: Vec<&UsedPair> = used
        .iter()
        .filter(|p| types.contains(&p.projection.as_str()))
        .collect();
    // Cell-means parameterisation of m × type: per type an intercept and a slope, so each slope
    // is one coefficient with its own Wald test.
    let p = 2 * types.len();
    let mut x = vec![0.0; rows.len() * p];
    for (i, r) in rows.iter().enumerate() {
        let t = types
            .iter()
            .position(|t| *t == r.projection)
            .expect("filtered to listed types");
        let m = match measure {
            Measure::FeatureSimilarity => r.similarity,
            Measure::RfDistance => r.rf_distance,
        };
        x[i * p + 2 * t] = 1.0;
        x[i * p + 2 * t + 1] = m;
    }
    let names = types
        .iter()
        .flat_map(|t| [format!("{t}:intercept"), format!("{t}:slope")])
        .collect();
    let design = Design::new(names, x)?;
    // Dense 0-based group index over the presynaptic cells present in these rows.
    let mut remap: BTreeMap<usize, usize> = BTreeMap::new();
    let groups: Vec<usize> = rows
        .iter()
        .map(|r| {
            let next = remap.len();
            *remap.entry(r.pre).or_insert(next)
        })
        .collect();
    let fit = match scale {
        Scale::Axonal => {
            let y: Vec<f64> = rows.iter().map(|r| r.l_d).collect();
            fit_glmm(
                &design,
                &y,
                None,
                &groups,
                Family::Tweedie {
                    var_power: options.tweedie_power,
                },
                &options.mixed,
            )?
        }
        Scale::Synaptic => {
            let y: Vec<f64> = rows.iter().map(|r| r.synapses).collect();
            let offset: Vec<f64> = rows.iter().map(|r| r.l_d.ln()).collect();
            fit_glmm(
                &design,
                &y,
                Some(&offset),
                &groups,
                Family::Poisson,
                &options.mixed,
            )?
        }
    };
    let p_values: Vec<f64> = (0..types.len())
        .map(|t| fit.coefficients[2 * t + 1].p_value)
        .collect();
    // A NaN p (singular information) is reported, not fed to BH.
    let q_values = if p_values.iter().all(|p| p.is_finite()) {
        bh_qvalues(&p_values)?
    } else {
        vec![f64::NAN; types.len()]
    };
    let slopes = types
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let c = &fit.coefficients[2 * t + 1];
            Slope {
                scale,
                measure,
                projection: name.to_string(),
                n_pairs: counts[name].0,
                estimate: c.estimate,
                std_error: c.std_error,
                z: c.z,
                p_value: c.p_value,
                q_value: q_values[t],
            }
        })
        .collect();
    let summary = ModelSummary {
        scale,
        measure,
        method: fit.method.clone(),
        random_sd: fit.random_sd,
        random_sd_std_error: fit.random_sd_std_error,
        dispersion: fit.scale,
        n_pairs: rows.len(),
        n_presynaptic: remap.len(),
        skipped,
    };
    Ok((summary, slopes))
}

/// One core, unique ids, equal feature lengths, finite numbers; returns the core id.
fn check_embeddings(embeddings: &[Embedding]) -> Result<String> {
    let first = embeddings
        .first()
        .ok_or_else(|| invalid("embeddings", "table is empty"))?;
    let mut seen = HashMap::new();
    for (row, e) in embeddings.iter().enumerate() {
        if e.core_id != first.core_id {
            return Err(Error::MixedCores {
                file: PathBuf::from("embeddings"),
                first: first.core_id.clone(),
                second: e.core_id.clone(),
                line: row,
            });
        }
        if let Some(prev) = seen.insert(e.cell_id, row) {
            return Err(invalid(
                "embeddings",
                format!("cell id {} appears in rows {prev} and {row}", e.cell_id),
            ));
        }
        if e.features.len() != first.features.len() || e.features.is_empty() {
            return Err(invalid(
                "embeddings",
                format!(
                    "row {row}: {} feature weights, row 0 has {}",
                    e.features.len(),
                    first.features.len()
                ),
            ));
        }
        let numbers =
            e.features
                .iter()
                .chain([&e.azimuth_deg, &e.elevation_deg, &e.cc_abs, &e.cc_max]);
        if numbers.clone().any(|v| !v.is_finite()) {
            return Err(invalid(
                "embeddings",
                format!("row {row} (cell {}): a value is not finite", e.cell_id),
            ));
        }
    }
    Ok(first.core_id.clone())
}
