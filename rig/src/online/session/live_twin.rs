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
//! loads. A session whose selector has no twin (the random policy, the energy core) writes
//! nothing and says why in its summary.
//!
//! The twin saved is the final refit's (`design::twin_refit::final_round`: one more transfer fit
//! on everything the designer kept, run by [`finish`] after the session's threads have joined),
//! or, when that is off, fails or is interrupted by a stop signal, the last applied refit
//! round's; the summary's `final_refit` and `live_twin` say which, or why none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::backbone::session_log::{SessionDir, write_atomic};
use crate::sim::twin_seal;
use crate::stages::decide::TwinSettings;
use crate::stages::decide::design::LiveTwin;
use crate::stages::decide::design::twin_refit::{
    FinalRefitBudget, FinalRefitJob, FinalRefitReport,
};

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
        /// Whether the saved weights are the final refit's (else the last applied round's).
        final_refit: bool,
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
                final_refit,
                core_sha256,
                ..
            } => write!(
                f,
                "saved {} ({units} units, {rounds_applied} refit rounds{}, core {})",
                weights.display(),
                if *final_refit {
                    " + the final refit"
                } else {
                    ""
                },
                &core_sha256[..12.min(core_sha256.len())]
            ),
            LiveTwinReport::Off => write!(f, "not saved (twin.save = false)"),
            LiveTwinReport::NotSaved { reason } => write!(f, "not saved: {reason}"),
        }
    }
}

/// The end of a session's twin: runs the final refit (`job`, within `twin`'s budget; `stop`
/// raised by a stop signal ends it early, `signal` says which) and saves its twin, or the last
/// applied round's (`last_round`) when there is no final refit's. Never fails the session.
pub fn finish(
    dir: &SessionDir,
    last_round: Result<LiveTwin, String>,
    job: Result<FinalRefitJob, String>,
    twin: &TwinSettings,
    stop: &AtomicBool,
    signal: &AtomicUsize,
) -> (LiveTwinReport, FinalRefitReport) {
    if !twin.save {
        let reason = "twin.save = false: no twin is saved".to_string();
        return (LiveTwinReport::Off, FinalRefitReport::Skipped { reason });
    }
    let (fitted, report) = match job {
        _ if twin.final_refit_steps == 0 => (
            None,
            FinalRefitReport::Skipped {
                reason: "twin.final_refit_steps = 0".into(),
            },
        ),
        Err(reason) => (None, FinalRefitReport::Skipped { reason }),
        Ok(job) => {
            let budget = FinalRefitBudget {
                steps: twin.final_refit_steps,
                max_s: twin.final_refit_max_s,
            };
            match job.run(budget, stop) {
                (t, FinalRefitReport::Interrupted { steps, seconds, .. }) => (
                    t,
                    FinalRefitReport::Interrupted {
                        steps,
                        seconds,
                        signal: match signal.load(Ordering::Acquire) {
                            0 => None,
                            s => Some(s as i32),
                        },
                    },
                ),
                done => done,
            }
        }
    };
    let live = match fitted {
        Some(t) => Ok((t, true)),
        None => last_round
            .map(|t| (t, false))
            .map_err(|earlier| match &report {
                // Turned off: why the loop has no twin of its own (the random policy, ...).
                _ if twin.final_refit_steps == 0 => earlier,
                FinalRefitReport::Skipped { reason } => reason.clone(),
                r => format!("the final refit {r}, and {earlier}"),
            }),
    };
    (save(dir, live), report)
}

/// Writes `live` (a twin, and whether it is the final refit's) into `dir`; never fails the
/// session (the recording matters more): a write that fails is reported and logged.
pub fn save(dir: &SessionDir, live: Result<(LiveTwin, bool), String>) -> LiveTwinReport {
    let report = match live {
        Err(reason) => LiveTwinReport::NotSaved { reason },
        Ok((twin, final_refit)) => write(dir.path(), &twin, final_refit).unwrap_or_else(|reason| {
            tracing::error!(%reason, "the live twin could not be saved");
            LiveTwinReport::NotSaved { reason }
        }),
    };
    tracing::info!(live_twin = %report, "end of session");
    report
}

/// Writes `twin` as [`LIVE_TWIN_CONFIG`] then [`LIVE_TWIN_WEIGHTS`] in `dir` (`final_refit`:
/// its weights are the final refit's).
pub fn write(dir: &Path, twin: &LiveTwin, final_refit: bool) -> Result<LiveTwinReport, String> {
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
        ("twinloop.final_refit".to_string(), final_refit.to_string()),
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
        final_refit,
        bytes: bytes.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        weights,
        config,
    })
}
