//! `twinloop twin embeddings`: every unit of a fitted twin as a row of the anatomy analyses'
//! embeddings table (`analysis/SCHEMA.md`): standardised readout feature weights, readout
//! position in degrees, CC_abs and CC_max from scoring the twin on a recording, and the twin's
//! responses to the fixed reference set (for signal correlations), tagged with the SHA-256 of
//! the core so that `twinloop analyze` can refuse tables from two cores.
//!
//! Output directory: `embeddings.csv` (the schema's table), `features.npy` `[U, C]` f32,
//! `reference_responses.npy` `[U, R]` f32, `embeddings.json` (core id, where CC came from, the
//! reference set).
//!
//! `twinloop run` writes the same for the live twin a session saved
//! ([`live_twin_embeddings`]: into `<session>/live_twin_embeddings/`, scored on the session's
//! own recording as `twinloop twin recording` builds it, so its CCs are in-sample).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use twinloop_analysis::wiring::table::write_embeddings;
use twinloop_model::cli::{read_npy_f32, write_npy_f32};
use twinloop_model::embeddings::{REFERENCE_FRAMES, REFERENCE_SCORED, REFERENCE_SEED};
use twinloop_model::train::Recording;

// The computation is shared with the NWB export and the chain (one implementation).
pub use crate::sim::twin_embeddings::{CcSource, TwinEmbeddings, twin_embeddings};
use crate::sim::twin_embeddings::{DEFAULT_BURN_IN, DEFAULT_REFERENCE, load_twin};

/// Where `twinloop run` writes the embeddings of a session's live twin, in its directory.
pub const LIVE_TWIN_EMBEDDINGS_DIR: &str = "live_twin_embeddings";

#[derive(Debug, Args)]
pub struct EmbeddingsArgs {
    /// The fitted twin (`twin.safetensors` from `twin fit`).
    #[arg(long)]
    weights: PathBuf,
    /// Its architecture (`config.json` beside the weights).
    #[arg(long)]
    config: PathBuf,
    /// A recording of this mouse (as `twin recording` writes it) to score the twin on: CC_abs
    /// and CC_max from its repeated trials or, when it has none, from the simulator's true rates
    /// (`truth.npy` in the directory; then CC_max = 1, the truth being noise-free).
    #[arg(long)]
    recording: PathBuf,
    /// Optional CSV `cell_id,cell_type,area` (header line) naming each unit's anatomy; units it
    /// does not name are `unknown`.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Images in the reference set.
    #[arg(long, default_value_t = DEFAULT_REFERENCE)]
    reference: usize,
    /// Frames at the start of each segment not scored.
    #[arg(long, default_value_t = DEFAULT_BURN_IN)]
    burn_in: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Serialize)]
struct Meta<'a> {
    core_id: &'a str,
    units: usize,
    feature_dim: usize,
    cc_source: CcSource,
    reference_seed: u64,
    reference_images: usize,
    reference_frames: usize,
    reference_scored_frames: usize,
    weights: String,
}

/// Reads `cell_id,cell_type,area`; every error names the file and line.
fn read_labels(path: &Path) -> anyhow::Result<HashMap<u64, (String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    });
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(str::trim).collect(),
        None => bail!(
            "{}: empty; need a header `cell_id,cell_type,area`",
            path.display()
        ),
    };
    let col = |name: &str| {
        header.iter().position(|h| *h == name).with_context(|| {
            format!(
                "{}: missing column `{name}` (header has: {})",
                path.display(),
                header.join(",")
            )
        })
    };
    let (ci, ti, ai) = (col("cell_id")?, col("cell_type")?, col("area")?);
    let mut out = HashMap::new();
    for (n, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != header.len() {
            bail!(
                "{}: line {}: {} fields, the header has {}",
                path.display(),
                n + 1,
                f.len(),
                header.len()
            );
        }
        let id: u64 = f[ci].parse().with_context(|| {
            format!(
                "{}: line {}, column `cell_id`: `{}` is not a cell id",
                path.display(),
                n + 1,
                f[ci]
            )
        })?;
        if out
            .insert(id, (f[ti].to_string(), f[ai].to_string()))
            .is_some()
        {
            bail!("{}: line {}: cell_id {id} twice", path.display(), n + 1);
        }
    }
    Ok(out)
}

/// Writes the table, the npy arrays and the metadata into `out`.
pub fn save(e: &TwinEmbeddings, out: &Path, weights: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_embeddings(&out.join("embeddings.csv"), &e.rows)?;
    let u = e.rows.len();
    let d = e.rows.first().map_or(0, |r| r.features.len());
    let features: Vec<f32> = e
        .rows
        .iter()
        .flat_map(|r| r.features.iter().map(|&v| v as f32))
        .collect();
    write_npy_f32(&out.join("features.npy"), &[u as u64, d as u64], &features)?;
    let n = e.reference.first().map_or(0, Vec::len);
    let refs: Vec<f32> = e.reference.iter().flatten().copied().collect();
    write_npy_f32(
        &out.join("reference_responses.npy"),
        &[u as u64, n as u64],
        &refs,
    )?;
    let meta = Meta {
        core_id: &e.core_id,
        units: u,
        feature_dim: d,
        cc_source: e.cc_source,
        reference_seed: REFERENCE_SEED,
        reference_images: n,
        reference_frames: REFERENCE_FRAMES,
        reference_scored_frames: REFERENCE_SCORED,
        weights: weights.display().to_string(),
    };
    std::fs::write(
        out.join("embeddings.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    Ok(())
}

/// The embeddings of the live twin saved in `session_dir` (`live_twin.json`,
/// `live_twin.safetensors`), scored on that session's recording, written by [`save`] into
/// `<session_dir>/`[`LIVE_TWIN_EMBEDDINGS_DIR`]; returns that directory.
pub fn live_twin_embeddings(session_dir: &Path) -> anyhow::Result<PathBuf> {
    use crate::online::session::live_twin::{LIVE_TWIN_CONFIG, LIVE_TWIN_WEIGHTS};
    let config = session_dir.join(LIVE_TWIN_CONFIG);
    let weights_path = session_dir.join(LIVE_TWIN_WEIGHTS);
    let e = crate::offline::twin_data::session_embeddings(session_dir, &weights_path, &config)
        .with_context(|| {
            format!(
                "scoring {} on its session {}",
                weights_path.display(),
                session_dir.display()
            )
        })?;
    let out = session_dir.join(LIVE_TWIN_EMBEDDINGS_DIR);
    save(&e, &out, &weights_path)?;
    Ok(out)
}

pub fn run(args: &EmbeddingsArgs) -> anyhow::Result<()> {
    let (cfg, weights) = load_twin(&args.weights, &args.config)?;
    let rec = Recording::load(&args.recording)
        .with_context(|| format!("reading recording {}", args.recording.display()))?;
    let truth_path = args.recording.join("truth.npy");
    let truth = if truth_path.exists() {
        Some(read_npy_f32(&truth_path)?.1)
    } else {
        None
    };
    let labels = match &args.labels {
        Some(p) => read_labels(p)?,
        None => HashMap::new(),
    };
    let e = twin_embeddings(
        &weights,
        &cfg,
        &rec,
        truth.as_deref(),
        &labels,
        args.reference,
        args.burn_in,
    )
    .with_context(|| {
        format!(
            "scoring {} on {}",
            args.weights.display(),
            args.recording.display()
        )
    })?;
    save(&e, &args.out, &args.weights)?;
    let o = twinloop_analysis::wiring::WiringOptions::default();
    let kept = e
        .rows
        .iter()
        .filter(|r| r.cc_max > o.min_cc_max && r.cc_abs > o.min_cc_abs)
        .count();
    println!(
        "{} units, core {}: {kept} pass CC_max > {} and CC_abs > {} (CC from {:?}) -> {}",
        e.rows.len(),
        &e.core_id[..12],
        o.min_cc_max,
        o.min_cc_abs,
        e.cc_source,
        args.out.display()
    );
    Ok(())
}
