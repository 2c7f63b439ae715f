//! `twinloop analyze`: what a twin's readouts say about anatomy (issue #21), on documented CSV
//! tables (`analysis/SCHEMA.md`): the wiring rule of Ding et al. and cell-type and area decoding.
//! `analyze simulate` writes such tables from a simulated connectome whose rule is known;
//! `analyze twin-chain` runs the whole chain on simulated mice with fitted twins.

// `analyze twin-chain` (rig/src/cli/analyze/chain.rs).
mod chain;
// `analyze report` (rig/src/cli/analyze/report.rs).
mod report;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use twinloop_analysis::celltypes::{CellTypeOptions, decode_cell_types};
use twinloop_analysis::connectome::{ConnectomeConfig, simulate};
use twinloop_analysis::wiring::{WiringOptions, analyze, table};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    command: AnalyzeCommand,
}

#[derive(Debug, Subcommand)]
enum AnalyzeCommand {
    /// The wiring rule: synapse density and co-travel length against feature similarity and
    /// RF distance, per projection type, with a random intercept per presynaptic cell.
    Wiring {
        /// One row per cell (`analysis/SCHEMA.md`): ids, core, RF position, CC_abs, CC_max,
        /// type, area, feature weights f0..f{D-1}.
        #[arg(long)]
        embeddings: PathBuf,
        /// One row per proximity pair: pre and post ids, L_d (µm), synapses, projection.
        #[arg(long)]
        pairs: PathBuf,
        /// Write the whole report as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Cell type and area decoded from the embeddings (features, position, both), with folds
    /// blocked in space (tiles of RF position) and a label-shuffle control.
    Celltypes {
        #[arg(long)]
        embeddings: PathBuf,
        /// Side of a fold's RF-position tile, degrees.
        #[arg(long, default_value_t = 20.0)]
        block_deg: f64,
        /// Label shuffles for the control.
        #[arg(long, default_value_t = 20)]
        shuffles: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The chain on simulated mice: anatomy planted from the cells' true tuning, twins fitted
    /// on 10/20/40 min (pretrained core and from scratch), their embeddings through `wiring`
    /// and `celltypes`; β̂_f / β_f and decoding accuracy per arm, beside the true features.
    TwinChain(chain::ChainArgs),
    /// One HTML page: binned synapse density against feature similarity and RF distance with
    /// the model's curves, the slopes, and the type/area confusion matrices.
    Report(report::ReportArgs),
    /// A simulated connectome with a planted rule, as the two tables plus its truth.
    Simulate {
        /// Directory for `embeddings.csv`, `pairs.csv` and `truth.json`.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// β_f, per unit of cosine similarity (0: the null).
        #[arg(long, default_value_t = 1.8)]
        beta_feature: f64,
        /// β_r, per degree of RF distance.
        #[arg(long, default_value_t = 0.0)]
        beta_rf: f64,
        /// Proofread presynaptic cells.
        #[arg(long, default_value_t = 150)]
        presynaptic: usize,
    },
}

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    match &args.command {
        AnalyzeCommand::TwinChain(a) => chain::run(a),
        AnalyzeCommand::Report(a) => report::run(a),
        AnalyzeCommand::Wiring {
            embeddings,
            pairs,
            out,
        } => {
            let (emb, pairs) = table::read_tables(embeddings, pairs)?;
            let report = analyze(&emb, &pairs, &WiringOptions::default())?;
            println!(
                "core {}: {} of {} cells kept, {} of {} pairs used",
                report.core_id,
                report.n_cells_kept,
                report.n_cells,
                report.n_pairs_used,
                report.n_pairs_input
            );
            println!(
                "scale     measure             projection        beta     se        p         q"
            );
            for s in &report.slopes {
                println!(
                    "{:<9} {:<19} {:<14} {:>8.3} {:>8.3} {:>9.2e} {:>9.2e}",
                    format!("{:?}", s.scale),
                    format!("{:?}", s.measure),
                    s.projection,
                    s.estimate,
                    s.std_error,
                    s.p_value,
                    s.q_value
                );
            }
            write_json(out.as_ref(), &report)
        }
        AnalyzeCommand::Celltypes {
            embeddings,
            block_deg,
            shuffles,
            out,
        } => {
            anyhow::ensure!(
                block_deg.is_finite() && *block_deg > 0.0,
                "--block-deg {block_deg}: must be a positive number of degrees"
            );
            let (emb, _) = table::read_embeddings(embeddings)?;
            let blocks = rf_blocks(&emb, *block_deg);
            let options = CellTypeOptions {
                n_shuffles: *shuffles,
                ..CellTypeOptions::default()
            };
            let scores = decode_cell_types(&emb, &blocks, &options)?;
            let n_blocks = blocks.iter().max().map_or(0, |b| b + 1);
            println!("{} cells in {n_blocks} blocks", emb.len());
            for s in &scores {
                println!(
                    "{:?} from {:?}: balanced accuracy {:.3} (chance {:.3}{})",
                    s.target,
                    s.input,
                    s.balanced_accuracy,
                    s.chance,
                    s.shuffle
                        .as_ref()
                        .map(|c| {
                            let mean =
                                c.shuffled.iter().sum::<f64>() / c.shuffled.len().max(1) as f64;
                            format!(", shuffled labels {mean:.3}, p {:.3}", c.p_value)
                        })
                        .unwrap_or_default()
                );
            }
            write_json(out.as_ref(), &scores)
        }
        AnalyzeCommand::Simulate {
            out,
            seed,
            beta_feature,
            beta_rf,
            presynaptic,
        } => {
            let c = simulate(&ConnectomeConfig {
                seed: *seed,
                beta_feature: *beta_feature,
                beta_rf_per_deg: *beta_rf,
                n_presynaptic: *presynaptic,
                ..ConnectomeConfig::default()
            })?;
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            table::write_embeddings(&out.join("embeddings.csv"), &c.embeddings)?;
            table::write_pairs(&out.join("pairs.csv"), &c.pairs)?;
            write_json(Some(&out.join("truth.json")), &c.truth)?;
            println!(
                "{} cells, {} pairs in {}",
                c.embeddings.len(),
                c.pairs.len(),
                out.display()
            );
            Ok(())
        }
    }
}

/// Tiles of RF position, `block_deg` on a side, as fold ids: no fold's test cells share a tile
/// with its training cells, so a decoder cannot read the label off a neighbour's position.
fn rf_blocks(emb: &[twinloop_analysis::wiring::Embedding], block_deg: f64) -> Vec<usize> {
    let tile = |v: f64| (v / block_deg).floor() as i64;
    let mut ids = std::collections::BTreeMap::new();
    emb.iter()
        .map(|e| {
            let key = (tile(e.azimuth_deg), tile(e.elevation_deg));
            let n = ids.len();
            *ids.entry(key).or_insert(n)
        })
        .collect()
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = path {
        let text = serde_json::to_vec_pretty(value)?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
