//! A fitted twin's per-unit embeddings (issue #21), computed once for every place that needs
//! them: `twinloop twin embeddings` (files), the NWB export (`offline::export::nwb`, a table in
//! `/analysis`) and the chain on simulated mice (`analyze twin-chain`).
//!
//! Per unit: the standardised readout feature weights and the readout position in degrees
//! (`twinloop_model::embeddings`), CC_abs and CC_max from scoring the twin on a recording of the
//! same cells, the twin's responses to the fixed reference set, and the SHA-256 of the core
//! ([`super::twin_seal::core_sha256`]). It lives here, beside the seal, because the core's
//! identity is the seal's, and both the online and the offline layers may call it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use twinloop_analysis::wiring::Embedding;
use twinloop_model::embeddings::{readout_embedding, reference_responses};
use twinloop_model::insilico::evaluate::{EvalOptions, evaluate};
use twinloop_model::train::Recording;
use twinloop_model::{Device, ModelError, Twin, TwinConfig, Weights};

/// Label written when a unit has no anatomy label.
pub const UNLABELLED: &str = "unknown";
/// Images of the reference set by default (`twin embeddings --reference`).
pub const DEFAULT_REFERENCE: usize = 120;
/// Frames at the start of each segment not scored by default (`--burn-in`).
pub const DEFAULT_BURN_IN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(
        "the recording has no repeated trials and no truth: CC_abs and CC_max need repeats of \
         a stimulus (or the simulator's true rates)"
    )]
    NoCc,

    #[error("the twin {path}: {reason}")]
    Twin { path: PathBuf, reason: String },
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

/// SHA-256 of a twin's core, hex.
pub fn core_id(w: &Weights) -> Result<String, ModelError> {
    super::twin_seal::core_sha256(w)
}

/// Reads a twin's architecture and weights; a sealed weights file (the live twin) is checked
/// whole first, so a damaged copy is refused naming the file.
pub fn load_twin(weights: &Path, config: &Path) -> Result<(TwinConfig, Weights), EmbeddingsError> {
    let twin_err = |path: &Path, reason: String| EmbeddingsError::Twin {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(config)
        .map_err(|e| twin_err(config, format!("cannot read the architecture: {e}")))?;
    let cfg = TwinConfig::from_json(&text).map_err(|e| twin_err(config, e.to_string()))?;
    let bytes = std::fs::read(weights)
        .map_err(|e| twin_err(weights, format!("cannot read the weights: {e}")))?;
    super::twin_seal::check(&bytes, weights).map_err(|reason| twin_err(weights, reason))?;
    let w = Weights::from_bytes(&bytes, weights).map_err(|e| twin_err(weights, e.to_string()))?;
    Ok((cfg, w))
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
) -> Result<TwinEmbeddings, EmbeddingsError> {
    let core_id = core_id(weights)?;
    let readout = readout_embedding(weights, cfg)?;
    let mut twin = Twin::new(cfg.clone(), weights, &Device::Cpu)?;
    let report = evaluate(&mut twin, rec, truth, &EvalOptions { burn_in })?;
    let cc_source = if report.repeated_stimuli > 0 {
        CcSource::Repeats
    } else if truth.is_some() {
        CcSource::Truth
    } else {
        return Err(EmbeddingsError::NoCc);
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
