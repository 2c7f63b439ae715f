//! `twinloop twin residuals`: a twin's recorded-noise bank on a recording
//! (`sim::twin_residuals` says what it holds and how it is checked).
//!
//! The recording is what `twinloop twin recording` writes for a session (the activity as
//! logged, the stimulus re-rendered at the twin's input, the behaviour z-scored); the twin is
//! run over it segment by segment from a reset state (`predict_recording`, as `twin evaluate`
//! scores it), and every row inside a segment past `burn_in` gives one residual row:
//! response − prediction, per unit.

use std::path::{Path, PathBuf};

use twinloop_model::insilico::evaluate::predict_recording;
use twinloop_model::train::Recording;
use twinloop_model::{Device, Twin, TwinConfig, Weights};

use crate::sim::twin_residuals::{BANK_KIND, BankError, BankMeta, write_bank};

#[derive(Debug, thiserror::Error)]
pub enum ResidualError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Bank(#[from] BankError),
}

fn input(path: &Path, reason: impl std::fmt::Display) -> ResidualError {
    ResidualError::Input {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Computes the bank of the twin (`weights`, `config`) on the recording in `recording` and
/// writes it into `out`.
pub fn residual_bank(
    weights: &Path,
    config: &Path,
    recording: &Path,
    out: &Path,
    burn_in: usize,
) -> Result<BankMeta, ResidualError> {
    let text = std::fs::read_to_string(config).map_err(|e| input(config, e))?;
    let cfg = TwinConfig::from_json(&text).map_err(|e| input(config, e))?;
    let bytes = std::fs::read(weights).map_err(|e| input(weights, e))?;
    let w = Weights::from_bytes(&bytes, weights).map_err(|e| input(weights, e))?;
    let mut twin = Twin::new(cfg, &w, &Device::Cpu)
        .map_err(|e| input(weights, format!("do not fit {}: {e}", config.display())))?;
    let rec = Recording::load(recording).map_err(|e| input(recording, e))?;
    let (prediction, scored) =
        predict_recording(&mut twin, &rec, burn_in).map_err(|e| input(recording, e))?;
    let units = rec.units();
    let mut residuals = Vec::new();
    let mut runs: Vec<[usize; 2]> = Vec::new();
    let mut floor = vec![f32::INFINITY; units];
    let mut previous: Option<usize> = None;
    for (f, _) in scored.iter().enumerate().filter(|(_, s)| **s) {
        let rows = residuals.len() / units.max(1);
        match (previous, runs.last_mut()) {
            (Some(p), Some(run)) if p + 1 == f && same_segment(&rec, p, f) => run[1] += 1,
            _ => runs.push([rows, 1]),
        }
        previous = Some(f);
        let r = &rec.responses[f * units..(f + 1) * units];
        let p = &prediction[f * units..(f + 1) * units];
        for (u, (&y, &m)) in r.iter().zip(p).enumerate() {
            residuals.push(y - m);
            floor[u] = floor[u].min(y);
        }
    }
    let rows = residuals.len() / units.max(1);
    if rows == 0 {
        return Err(input(
            recording,
            format!(
                "no row is inside a segment past the burn-in of {burn_in} frames: nothing to \
                 draw residuals from"
            ),
        ));
    }
    let meta = BankMeta {
        kind: BANK_KIND.into(),
        units,
        rows,
        runs,
        floor,
        burn_in,
        recording_rows: rec.len(),
        frame_hz: rec.meta.frame_hz,
        residuals_sha256: String::new(),
        twin_weights_sha256: crate::sim::twin_seal::sha256_hex(&bytes),
        recording: recording.to_path_buf(),
        twin_weights: weights.to_path_buf(),
    };
    Ok(write_bank(out, meta, &residuals, &prediction)?)
}

/// Whether rows `a` and `b` lie in one segment of the recording.
fn same_segment(rec: &Recording, a: usize, b: usize) -> bool {
    rec.meta
        .segments
        .iter()
        .any(|s| s.contains(&a) && s.contains(&b))
}
