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
use twinloop_analysis::wiring::Embedding;
use twinloop_analysis::wiring::table::write_embeddings;
use twinloop_model::cli::{read_npy_f32, write_npy_f32};
use twinloop_model::embeddings::{
    REFERENCE_FRAMES, REFERENCE_SCORED, REFERENCE_SEED, readout_embedding, reference_responses,
};
use twinloop_model::insilico::evaluate::{EvalOptions, evaluate};
use twinloop_model::train::Recording;
use twinloop_model::{Device, Twin, TwinConfig, Weights};

/// Label written when a unit has no anatomy label (`--labels` absent or silent on it).
pub const UNLABELLED: &str = "unknown";
/// Images in the reference set, by default.
pub const REFERENCE_IMAGES: usize = 120;
/// Frames at the start of each segment not scored, by default.
pub const BURN_IN: usize = 10;
/// Where `twinloop run` writes the embeddings of a session's live twin, in its directory.
pub const LIVE_TWIN_EMBEDDINGS_DIR: &str = "live_twin_embeddings";
/// Reference images for a live twin's embeddings. PLACEHOLDER: the shared u8 luminance and
/// contrast matcher refuses image 4 of the reference set at a 36x64 input (the matcher bug
/// README's Placeholders name), and the embeddings must not fail a session's end over it;
/// `twinloop twin embeddings --reference N` gives more where the matcher takes them.
pub const LIVE_TWIN_REFERENCE_IMAGES: usize = 4;

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
    #[arg(long, default_value_t = REFERENCE_IMAGES)]
    reference: usize,
    /// Frames at the start of each segment not scored.
    #[arg(long, default_value_t = BURN_IN)]
    burn_in: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

/// Where a unit's CC_abs and CC_max came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CcSource {
    /// Repeated trials of the recording (CC_abs of the repeat means; CC_max their ceiling).
    Repeats,
    /// The simulator's noise-free rates: CC_abs = correlation with them, CC_max = 1.
    Truth,
}

/// A twin's embeddings.
pub struct TwinEmbeddings {
    /// SHA-256 (hex) of the core's tensors.
    pub core_id: String,
    pub rows: Vec<Embedding>,
    /// `[U][R]` responses to the reference set.
    pub reference: Vec<Vec<f32>>,
    pub cc_source: CcSource,
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

/// SHA-256 of a twin's core, hex.
pub fn core_id(w: &Weights) -> anyhow::Result<String> {
    Ok(crate::sim::twin_seal::core_sha256(w)?)
}

/// The embeddings of `weights` scored on `rec` (`truth` `[T, U]`: the true rates, used when
/// the recording has no repeats). `labels` maps a unit id to (cell type, area).
pub fn twin_embeddings(
    weights: &Weights,
    cfg: &TwinConfig,
    rec: &Recording,
    truth: Option<&[f32]>,
    labels: &HashMap<u64, (String, String)>,
    reference: usize,
    burn_in: usize,
) -> anyhow::Result<TwinEmbeddings> {
    let core_id = core_id(weights)?;
    let readout = readout_embedding(weights, cfg)?;
    let mut twin = Twin::new(cfg.clone(), weights, &Device::Cpu)?;
    let report = evaluate(&mut twin, rec, truth, &EvalOptions { burn_in })?;
    let cc_source = if report.repeated_stimuli > 0 {
        CcSource::Repeats
    } else if truth.is_some() {
        CcSource::Truth
    } else {
        bail!(
            "the recording has no repeated trials and no truth.npy: CC_abs and CC_max need \
             repeats of a stimulus (or the simulator's true rates)"
        );
    };
    let reference = reference_responses(&mut twin, reference)?;
    let rows = report
        .units
        .iter()
        .enumerate()
        .map(|(u, s)| {
            let (cc_abs, cc_max) = match cc_source {
                CcSource::Repeats => (s.cc_abs, s.cc_max),
                CcSource::Truth => (s.truth, s.truth.map(|_| 1.0)),
            };
            let id = u64::from(s.unit_id);
            let (cell_type, area) = labels
                .get(&id)
                .cloned()
                .unwrap_or_else(|| (UNLABELLED.into(), UNLABELLED.into()));
            Embedding {
                cell_id: id,
                core_id: core_id.clone(),
                features: readout.features[u].clone(),
                azimuth_deg: readout.position_deg[u][0],
                elevation_deg: readout.position_deg[u][1],
                // A unit the data cannot score is kept in the table but fails the CC filter.
                cc_abs: cc_abs.unwrap_or(0.0),
                cc_max: cc_max.unwrap_or(0.0),
                cell_type,
                area,
            }
        })
        .collect();
    Ok(TwinEmbeddings {
        core_id,
        rows,
        reference,
        cc_source,
    })
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
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let cfg =
        TwinConfig::from_json(&text).with_context(|| format!("config {}", config.display()))?;
    let weights = Weights::load(&weights_path)
        .with_context(|| format!("reading weights {}", weights_path.display()))?;
    let rec = crate::offline::twin_data::recording_from_session(
        session_dir,
        cfg.stimulus_height,
        cfg.stimulus_width,
    )?;
    let e = twin_embeddings(
        &weights,
        &cfg,
        &rec.recording,
        rec.truth.as_deref(),
        &HashMap::new(),
        LIVE_TWIN_REFERENCE_IMAGES,
        BURN_IN,
    )
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
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let cfg = TwinConfig::from_json(&text)
        .with_context(|| format!("config {}", args.config.display()))?;
    let weights = Weights::load(&args.weights)
        .with_context(|| format!("reading weights {}", args.weights.display()))?;
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
