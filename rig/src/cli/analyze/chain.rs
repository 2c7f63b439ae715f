//! `twinloop analyze twin-chain`: the whole chain of issue #21 on simulated mice. For each
//! mouse seed: record the simulated mouse (`sim::twin_recording`), give its cells anatomy and
//! plant synapses from their TRUE tuning (`sim::connectome`), fit twins on the first 10/20/40
//! minutes (pretrained core frozen, and from scratch), export each twin's embeddings
//! (`twin embeddings`), mis-co-register a fraction of them, and ask `analyze wiring` and
//! `analyze celltypes` what the twin recovers: β̂_f / β_f and decoding accuracy, beside the
//! same analyses on the true features (the ceiling for this connectome).
//!
//! One mouse serves every rule: the recording, the identities (types, areas, somata), the
//! co-registration errors and so the twins do not depend on the rule planted, only the synapse
//! counts do. So each twin is fitted once per seed and scored against every `--rules` ×
//! `--presynaptic` connectome of that mouse (the null, the feature rule and the RF rule), and
//! decoding, which does not see synapses, is run once per embeddings table.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use twinloop_analysis::celltypes::{CellTypeOptions, Input, Target, decode_cell_types};
use twinloop_analysis::connectome::ConnectomeConfig;
use twinloop_analysis::mixed::MixedMethod;
use twinloop_analysis::wiring::{
    Embedding, Measure, Scale, WiringOptions, WiringReport, analyze, table,
};
use twinloop_model::train::{FitScope, MouseFit, fit, fresh_weights, transfer_weights};
use twinloop_model::{Device, TwinConfig, Weights};

use crate::cli::bench_transfer::{fit_config, plan, view};
use crate::cli::twin::embeddings::{TwinEmbeddings, twin_embeddings};
use crate::sim::connectome::{SimAnatomy, recorded_mouse_cells};
use crate::sim::tuning::CellParams;
use crate::sim::twin_recording::record;

/// Frame rate of the simulated recordings, Hz.
const RATE_HZ: f64 = 30.0;
/// Side of a spatial fold's cortical tile for decoding, µm (as in BENCHMARKS' decoding table).
const TILE_UM: f64 = 250.0;
/// Label shuffles per embeddings table for the decoding control.
const SHUFFLES: usize = 3;

/// The wiring rule planted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// β_f = `--beta-feature`, β_r = 0.
    Feature,
    /// β_f = β_r = 0 (L still falls with distance).
    Null,
    /// β_f = 0, β_r = `--beta-rf` per degree.
    Rf,
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    /// The twin's architecture (units are set per mouse).
    #[arg(long, default_value = "model/weights/sim/config.json")]
    config: PathBuf,
    /// The pretrained twin whose core the transfer arm freezes.
    #[arg(long, default_value = "model/weights/sim/twin.safetensors")]
    pretrained: PathBuf,
    /// Simulated neurons per mouse (all are imaged and all can be postsynaptic).
    #[arg(long, default_value_t = 400)]
    neurons: usize,
    /// Proofread presynaptic cells; several give one connectome each (power against n).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    presynaptic: Vec<usize>,
    /// Minutes of recording the twins are fitted on.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40")]
    minutes: Vec<f64>,
    /// Minutes of other stimuli the twins are scored on (CC against the true rates).
    #[arg(long, default_value_t = 2.0)]
    test_minutes: f64,
    /// Wall-clock budget of each fit, seconds.
    #[arg(long, default_value_t = 120.0)]
    fit_seconds: f64,
    /// Mouse seeds (each its own neurons, behaviour and connectome).
    #[arg(long, value_delimiter = ',', default_value = "200")]
    seeds: Vec<u64>,
    /// Rules planted on each mouse (one connectome each, the same twins scored on all).
    #[arg(long, value_delimiter = ',', default_value = "feature")]
    rules: Vec<Rule>,
    /// β_f of the feature rule, per unit of cosine similarity of the true features.
    #[arg(long, default_value_t = 1.8)]
    beta_feature: f64,
    /// β_r of the RF rule, per degree of true RF distance.
    #[arg(long, default_value_t = -0.1, allow_hyphen_values = true)]
    beta_rf: f64,
    /// Fraction of imaged cells whose embedding is another cell's.
    #[arg(long, default_value_t = 0.07)]
    coregistration_error: f64,
    /// Skip the from-scratch arm.
    #[arg(long)]
    transfer_only: bool,
    /// Only the true features (the ceiling): no recording, no twins.
    #[arg(long)]
    truth_only: bool,
    /// Output directory: results.json and, per seed, the tables.
    #[arg(long)]
    out: PathBuf,
}

/// One synaptic-scale slope, as the summary needs it.
#[derive(Debug, Serialize)]
struct SlopeRow {
    measure: Measure,
    projection: String,
    estimate: f64,
    std_error: f64,
    p_value: f64,
    q_value: f64,
}

/// What one embeddings table gave on one connectome.
#[derive(Debug, Serialize)]
struct Outcome {
    /// `true-features`, `transfer` or `scratch`.
    arm: String,
    minutes: f64,
    rule: Rule,
    beta_feature: f64,
    beta_rf_per_deg: f64,
    presynaptic: usize,
    pairs: usize,
    connected_pairs: usize,
    fit_steps: Option<usize>,
    /// Median over units of the twin's correlation with the true rates on the test stimuli.
    median_r_true: Option<f64>,
    cells_kept: usize,
    pairs_used: usize,
    /// Synaptic-scale feature-similarity slope within V1→V1, its SE and BH q.
    beta_f_v1: Option<f64>,
    beta_f_v1_se: Option<f64>,
    beta_f_v1_q: Option<f64>,
    /// β̂_f / β_f over the projection types fitted (mean of their ratios; feature rule only).
    beta_f_ratio_mean: Option<f64>,
    /// Synaptic-scale RF-distance slope within V1→V1, its SE and BH q.
    beta_r_v1: Option<f64>,
    beta_r_v1_se: Option<f64>,
    beta_r_v1_q: Option<f64>,
    /// Every synaptic-scale slope (both measures, every projection type fitted).
    synaptic: Vec<SlopeRow>,
    /// Whether a model fell back from the random-intercept fit.
    fallback: bool,
    decoding: Decoding,
}

/// Decoding from one embeddings table (balanced accuracy; chance is 1 / classes).
#[derive(Debug, Clone, Serialize)]
struct Decoding {
    type_from_features: f64,
    area_from_features: f64,
    type_from_position: f64,
    area_from_position: f64,
    type_from_both: f64,
    area_from_both: f64,
    /// Mean balanced accuracy of the label shuffles, features input.
    type_shuffled: Option<f64>,
    area_shuffled: Option<f64>,
    type_chance: f64,
    area_chance: f64,
}

#[derive(Debug, Serialize)]
struct SeedResult {
    seed: u64,
    outcomes: Vec<Outcome>,
}

/// A cortical tile per cell, for spatially blocked folds.
fn soma_blocks(anatomy: &SimAnatomy) -> Vec<usize> {
    let mut ids = std::collections::BTreeMap::new();
    anatomy
        .cells
        .iter()
        .map(|c| {
            let key = (
                (c.soma_um[0] / TILE_UM).floor() as i64,
                (c.soma_um[1] / TILE_UM).floor() as i64,
            );
            let n = ids.len();
            *ids.entry(key).or_insert(n)
        })
        .collect()
}

fn decoding(rows: &[Embedding], anatomy: &SimAnatomy, seed: u64) -> Result<Decoding> {
    let decode = decode_cell_types(
        rows,
        &soma_blocks(anatomy),
        &CellTypeOptions {
            n_shuffles: SHUFFLES,
            seed,
            ..CellTypeOptions::default()
        },
    )?;
    let find = |t: Target, i: Input| decode.iter().find(|s| s.target == t && s.input == i);
    let acc = |t, i| find(t, i).map_or(f64::NAN, |s| s.balanced_accuracy);
    let shuffled = |t| {
        find(t, Input::Features)
            .and_then(|s| s.shuffle.as_ref())
            .filter(|c| !c.shuffled.is_empty())
            .map(|c| c.shuffled.iter().sum::<f64>() / c.shuffled.len() as f64)
    };
    let chance = |t| find(t, Input::Features).map_or(f64::NAN, |s| s.chance);
    Ok(Decoding {
        type_from_features: acc(Target::CellType, Input::Features),
        area_from_features: acc(Target::Area, Input::Features),
        type_from_position: acc(Target::CellType, Input::Position),
        area_from_position: acc(Target::Area, Input::Position),
        type_from_both: acc(Target::CellType, Input::Both),
        area_from_both: acc(Target::Area, Input::Both),
        type_shuffled: shuffled(Target::CellType),
        area_shuffled: shuffled(Target::Area),
        type_chance: chance(Target::CellType),
        area_chance: chance(Target::Area),
    })
}

/// The wiring analysis of `rows` on `anatomy`'s connectome.
fn score(
    arm: &str,
    minutes: f64,
    rule: Rule,
    rows: &[Embedding],
    anatomy: &SimAnatomy,
    fit_steps: Option<usize>,
    decoding: &Decoding,
) -> Result<Outcome> {
    let pairs = &anatomy.planted.pairs;
    let report: WiringReport = analyze(rows, pairs, &WiringOptions::default())?;
    let v1 = |m| report.slope(Scale::Synaptic, m, "V1->V1");
    let beta_f = anatomy.config.beta_feature;
    let ratios: Vec<f64> = report
        .slopes
        .iter()
        .filter(|s| s.scale == Scale::Synaptic && s.measure == Measure::FeatureSimilarity)
        .map(|s| s.estimate / beta_f)
        .collect();
    let mut r: Vec<f64> = rows
        .iter()
        .map(|e| e.cc_abs)
        .filter(|v| v.is_finite())
        .collect();
    r.sort_by(f64::total_cmp);
    let (f, rf) = (v1(Measure::FeatureSimilarity), v1(Measure::RfDistance));
    Ok(Outcome {
        arm: arm.to_string(),
        minutes,
        rule,
        beta_feature: beta_f,
        beta_rf_per_deg: anatomy.config.beta_rf_per_deg,
        presynaptic: anatomy.config.n_presynaptic,
        pairs: pairs.len(),
        connected_pairs: pairs.iter().filter(|p| p.synapses > 0).count(),
        fit_steps,
        median_r_true: r.get(r.len() / 2).copied(),
        cells_kept: report.n_cells_kept,
        pairs_used: report.n_pairs_used,
        beta_f_v1: f.map(|s| s.estimate),
        beta_f_v1_se: f.map(|s| s.std_error),
        beta_f_v1_q: f.map(|s| s.q_value),
        beta_f_ratio_mean: (beta_f != 0.0 && !ratios.is_empty())
            .then(|| ratios.iter().sum::<f64>() / ratios.len() as f64),
        beta_r_v1: rf.map(|s| s.estimate),
        beta_r_v1_se: rf.map(|s| s.std_error),
        beta_r_v1_q: rf.map(|s| s.q_value),
        synaptic: report
            .slopes
            .iter()
            .filter(|s| s.scale == Scale::Synaptic)
            .map(|s| SlopeRow {
                measure: s.measure,
                projection: s.projection.clone(),
                estimate: s.estimate,
                std_error: s.std_error,
                p_value: s.p_value,
                q_value: s.q_value,
            })
            .collect(),
        fallback: report
            .models
            .iter()
            .any(|m| matches!(m.method, MixedMethod::FixedEffectFallback { .. })),
        decoding: decoding.clone(),
    })
}

/// Rotates the functional part (everything but id and labels) of the mis-co-registered rows.
fn misregistered(anatomy: &SimAnatomy, rows: &[Embedding]) -> Vec<Embedding> {
    let mut functional: Vec<Embedding> = rows.to_vec();
    anatomy.misregister(&mut functional);
    functional
        .into_iter()
        .zip(rows)
        .map(|(f, own)| Embedding {
            cell_id: own.cell_id,
            cell_type: own.cell_type.clone(),
            area: own.area.clone(),
            ..f
        })
        .collect()
}

fn print(seed: u64, o: &Outcome) {
    println!(
        "seed {seed} {:<13} {:>4.0} min {:?} n_pre {:>3}: r_true {:.3}, kept {:>3}, beta_f V1->V1 \
         {:>6.3} ± {:.3} (ratio over types {:.3}), beta_r V1->V1 {:>7.4} ± {:.4}, type {:.3} \
         area {:.3} from features",
        o.arm,
        o.minutes,
        o.rule,
        o.presynaptic,
        o.median_r_true.unwrap_or(f64::NAN),
        o.cells_kept,
        o.beta_f_v1.unwrap_or(f64::NAN),
        o.beta_f_v1_se.unwrap_or(f64::NAN),
        o.beta_f_ratio_mean.unwrap_or(f64::NAN),
        o.beta_r_v1.unwrap_or(f64::NAN),
        o.beta_r_v1_se.unwrap_or(f64::NAN),
        o.decoding.type_from_features,
        o.decoding.area_from_features
    );
}

/// Every (rule, presynaptic count) connectome of one mouse.
fn anatomies(
    args: &ChainArgs,
    seed: u64,
    params: &[CellParams],
) -> Result<Vec<(Rule, SimAnatomy)>> {
    let mut out = Vec::new();
    for &rule in &args.rules {
        let (beta_feature, beta_rf_per_deg) = match rule {
            Rule::Feature => (args.beta_feature, 0.0),
            Rule::Null => (0.0, 0.0),
            Rule::Rf => (0.0, args.beta_rf),
        };
        for &n_presynaptic in &args.presynaptic {
            let anatomy = SimAnatomy::plant(
                params,
                &ConnectomeConfig {
                    n_cells: params.len(),
                    n_presynaptic,
                    feature_dim: 8,
                    beta_feature,
                    beta_rf_per_deg,
                    coregistration_error: args.coregistration_error,
                    seed,
                    ..ConnectomeConfig::default()
                },
            )?;
            out.push((rule, anatomy));
        }
    }
    Ok(out)
}

/// Scores one embeddings table (one per cell, in cell order, before co-registration errors)
/// on every connectome of the mouse.
fn score_all(
    seed: u64,
    arm: &str,
    minutes: f64,
    rows: &[Embedding],
    planted: &[(Rule, SimAnatomy)],
    fit_steps: Option<usize>,
    outcomes: &mut Vec<Outcome>,
) -> Result<Vec<Embedding>> {
    let first = &planted[0].1;
    // Identities and co-registration errors are the same in every connectome of the mouse.
    let rows = misregistered(first, rows);
    let d = decoding(&rows, first, seed)?;
    for (rule, anatomy) in planted {
        let o = score(arm, minutes, *rule, &rows, anatomy, fit_steps, &d)?;
        print(seed, &o);
        outcomes.push(o);
    }
    Ok(rows)
}

pub fn run(args: &ChainArgs) -> Result<()> {
    if args.minutes.is_empty()
        || args.seeds.is_empty()
        || args.neurons == 0
        || args.rules.is_empty()
        || args.presynaptic.is_empty()
    {
        bail!("--minutes, --seeds, --rules, --presynaptic and --neurons need at least one each");
    }
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let base = TwinConfig::from_json(&text)?;
    let pretrained = Weights::load(&args.pretrained)
        .with_context(|| format!("reading the pretrained twin {}", args.pretrained.display()))?;
    let v = view(&base);
    let max_minutes = args.minutes.iter().copied().fold(0.0, f64::max);
    let mut results = Vec::new();
    for &seed in &args.seeds {
        let dir = args.out.join(format!("seed{seed}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let params = recorded_mouse_cells(seed, args.neurons, v, RATE_HZ)?;
        let planted = anatomies(args, seed, &params)?;
        for (rule, anatomy) in &planted {
            let tag = format!("{rule:?}-{}pre", anatomy.config.n_presynaptic).to_lowercase();
            table::write_pairs(
                &dir.join(format!("pairs-{tag}.csv")),
                &anatomy.planted.pairs,
            )?;
            std::fs::write(
                dir.join(format!("anatomy_truth-{tag}.json")),
                anatomy.truth_json()?,
            )?;
        }
        let anatomy = &planted[0].1;
        std::fs::write(dir.join("labels.csv"), anatomy.labels_csv())?;
        let labels: HashMap<u64, (String, String)> = anatomy
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    i as u64,
                    (c.cell_type.name().to_string(), c.area.name().to_string()),
                )
            })
            .collect();
        let mut outcomes = Vec::new();
        score_all(
            seed,
            "true-features",
            0.0,
            &anatomy.true_embeddings(),
            &planted,
            None,
            &mut outcomes,
        )?;

        if !args.truth_only {
            tracing::info!(seed, minutes = max_minutes, "recording the simulated mouse");
            let train = record(&plan(seed, 2000, args.neurons, max_minutes), v)?;
            let test = record(&plan(seed, 3000, args.neurons, args.test_minutes), v)?;
            anyhow::ensure!(
                train.recording.units() == anatomy.cells.len(),
                "the recording has {} units, the anatomy {} cells",
                train.recording.units(),
                anatomy.cells.len()
            );
            let cfg = TwinConfig {
                units: train.recording.units(),
                ..base.clone()
            };
            let arms: &[(&str, FitScope)] = if args.transfer_only {
                &[("transfer", FitScope::Transfer)]
            } else {
                &[
                    ("transfer", FitScope::Transfer),
                    ("scratch", FitScope::Full),
                ]
            };
            for &m in &args.minutes {
                let data = train.recording.head((m * 60.0 * RATE_HZ).round() as usize);
                for &(arm, scope) in arms {
                    let start = match scope {
                        FitScope::Transfer => transfer_weights(&pretrained, &cfg, seed + 11)?,
                        _ => fresh_weights(&cfg, seed + 13)?,
                    };
                    let fitted = fit(
                        &base,
                        vec![MouseFit {
                            recording: &data,
                            weights: start,
                        }],
                        &fit_config(scope, args.fit_seconds, seed + 2),
                        &Device::Cpu,
                    )?;
                    let w = Weights::from_params(fitted.weights[0].clone());
                    let e: TwinEmbeddings = twin_embeddings(
                        &w,
                        &cfg,
                        &test.recording,
                        Some(&test.truth),
                        &labels,
                        0,
                        10,
                    )?;
                    let rows = score_all(
                        seed,
                        arm,
                        m,
                        &e.rows,
                        &planted,
                        Some(fitted.report.steps),
                        &mut outcomes,
                    )?;
                    table::write_embeddings(&dir.join(format!("{arm}-{m}min.csv")), &rows)?;
                }
            }
        }
        results.push(SeedResult { seed, outcomes });
        std::fs::write(
            args.out.join("results.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
    }
    println!("results -> {}", args.out.join("results.json").display());
    Ok(())
}
