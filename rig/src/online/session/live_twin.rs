//! `[twin] save`: the live twin written into the session directory at the end, so that the
//! next day's rehearsal (`source.kind = "twin"`) needs no extra step.
//!
//! The live twin is the closed loop's refitted fnn twin (`design::twin_refit`): the
//! architecture with this mouse's units and the weights of the last applied refit round, core,
//! perspective, modulation and readouts. It is written as `twin fit` writes a twin, so
//! `[source.twin]` reads it the same way:
//!
//! - `live_twin.json`: the architecture (`TwinConfig` JSON; `[source.twin] config`);
//! - `live_twin.safetensors`: the weights (`[source.twin] weights`), sealed
//!   (`sim::twin_seal`: the tensor data's and the core's SHA-256 in the header), so a damaged
//!   copy is refused when a config names it.
//!
//! Each file is written beside its place, synced and renamed (`write_atomic`), the weights last:
//! a `kill -9` leaves either no weights file or a whole one, never a half-written twin that
//! loads. A session whose selector has no twin (the random policy, no refit, no round applied)
//! writes nothing and says why in its summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::backbone::session_log::{SessionDir, write_atomic};
use crate::sim::twin_seal;
use crate::stages::decide::design::LiveTwin;

/// The weights' file name in the session directory.
pub const LIVE_TWIN_WEIGHTS: &str = "live_twin.safetensors";
/// The architecture's file name in the session directory.
pub const LIVE_TWIN_CONFIG: &str = "live_twin.json";

/// What became of the live twin (in `summary.json` as `live_twin`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LiveTwinReport {
    Saved {
        weights: PathBuf,
        config: PathBuf,
        /// SHA-256 of the weights file, as the manifest of a session run on it will name it.
        weights_sha256: String,
        /// SHA-256 of the core's tensors (`twinloop twin embeddings`' `core_id`).
        core_sha256: String,
        units: usize,
        rounds_applied: usize,
        bytes: u64,
        seconds: f64,
    },
    /// `[twin] save = false`.
    Off,
    /// No twin to save, or it could not be written (the reason says which).
    NotSaved { reason: String },
}

impl std::fmt::Display for LiveTwinReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveTwinReport::Saved {
                weights,
                units,
                rounds_applied,
                core_sha256,
                ..
            } => write!(
                f,
                "saved {} ({units} units, {rounds_applied} refit rounds, core {})",
                weights.display(),
                &core_sha256[..12.min(core_sha256.len())]
            ),
            LiveTwinReport::Off => write!(f, "not saved (twin.save = false)"),
            LiveTwinReport::NotSaved { reason } => write!(f, "not saved: {reason}"),
        }
    }
}

/// Writes the selector's `live` twin into `dir` when `enabled`; never fails the session (the
/// recording matters more): a write that fails is reported and logged.
pub fn save(dir: &SessionDir, live: Result<LiveTwin, String>, enabled: bool) -> LiveTwinReport {
    let report = match (enabled, live) {
        (false, _) => LiveTwinReport::Off,
        (true, Err(reason)) => LiveTwinReport::NotSaved { reason },
        (true, Ok(twin)) => write(dir.path(), &twin).unwrap_or_else(|reason| {
            tracing::error!(%reason, "the live twin could not be saved");
            LiveTwinReport::NotSaved { reason }
        }),
    };
    tracing::info!(live_twin = %report, "end of session");
    report
}

/// Writes `twin` as [`LIVE_TWIN_CONFIG`] then [`LIVE_TWIN_WEIGHTS`] in `dir`.
pub fn write(dir: &Path, twin: &LiveTwin) -> Result<LiveTwinReport, String> {
    let started = Instant::now();
    let config = dir.join(LIVE_TWIN_CONFIG);
    let weights = dir.join(LIVE_TWIN_WEIGHTS);
    let json = serde_json::to_vec_pretty(&twin.config)
        .map_err(|e| format!("encoding {}: {e}", config.display()))?;
    let meta = HashMap::from([
        ("twinloop.kind".to_string(), "live_twin".to_string()),
        (
            "twinloop.rounds_applied".to_string(),
            twin.rounds_applied.to_string(),
        ),
    ]);
    let bytes = twin_seal::sealed_bytes(&twin.weights, meta)
        .map_err(|e| format!("encoding {}: {e}", weights.display()))?;
    let core_sha256 = twinloop_model::Weights::metadata(&bytes, &weights)
        .ok()
        .and_then(|(m, _)| m.get(twin_seal::CORE_SHA256).cloned())
        .unwrap_or_default();
    write_atomic(&config, &json).map_err(|e| e.to_string())?;
    write_atomic(&weights, &bytes).map_err(|e| e.to_string())?;
    Ok(LiveTwinReport::Saved {
        weights_sha256: twin_seal::sha256_hex(&bytes),
        core_sha256,
        units: twin.config.units,
        rounds_applied: twin.rounds_applied,
        bytes: bytes.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        weights,
        config,
    })
}
