//! The recorded-noise bank of a twin (`twinloop twin residuals`), and how a twin session
//! draws from it (`[source.twin] noise = { recorded = "<bank dir>" }`, [`ResidualDraw`]).
//!
//! A recorded session's residuals: its responses (the activity as logged, a `twin recording`)
//! minus the twin's prediction of the same rows (`predict_recording`: the same twin, the
//! stimulus re-rendered at its input, the behaviour as logged), on every row inside a segment
//! past the burn-in. It is computed once, offline (`offline::twin_residuals`), because the
//! twin's prediction of a logged session needs the session's re-rendering (`offline::twin_data`),
//! and written beside the twin:
//! - [`RESIDUALS_FILE`] `[N, U]` f32: the residual rows, in recording order;
//! - [`PREDICTION_FILE`] `[T, U]` f32: the twin's prediction of every recording row (NaN where
//!   it was not predicted), so that anyone can recompute the bank from the recording;
//! - [`BANK_FILE`] ([`BankMeta`]): units, rows, the runs of consecutive rows, each unit's floor
//!   (its smallest recorded response), the SHA-256 of the residuals file and of the twin's
//!   weights file.
//!
//! [`ResidualBank::load`] refuses a bank whose residuals do not hash to the recorded SHA-256
//! (a flipped byte), whose shape or values disagree with its metadata, or that was made with
//! another twin, naming the file and the field.
//!
//! Units: the residuals are in the recording's response units, the ones the twin was fitted on
//! and whose expected value per imaging frame its output stands for (`twin_source.rs`): f32,
//! never rounded or clipped in the bank.
//!
//! **Drawing** (seeded by `source.twin.seed`): a block bootstrap. From a uniformly drawn row,
//! the rows of its run are played one per imaging frame until the run ends, then another row is
//! drawn: a unit's residual keeps its autocorrelation within a run, and its correlation with the
//! other units' at the same row. A frame's response is `max(floor_u, prediction_u +
//! residual_u)`, never below what the unit ever recorded. Fast mode's frame carries counts
//! (u16 pixels), so the response is rounded stochastically (`floor(v) + Bernoulli(v -
//! floor(v))`: the mean is kept, the variance grows by at most 1/4) and saturates at 65,535.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The residual rows, `[N, U]` f32.
pub const RESIDUALS_FILE: &str = "residuals.npy";
/// The twin's prediction of every recording row, `[T, U]` f32 (NaN: not predicted).
pub const PREDICTION_FILE: &str = "prediction.npy";
/// The bank's metadata ([`BankMeta`], JSON).
pub const BANK_FILE: &str = "residuals.json";
/// [`BankMeta::kind`].
pub const BANK_KIND: &str = "twinloop.residual_bank";

/// What a residual bank is and where it came from (`residuals.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankMeta {
    /// [`BANK_KIND`].
    pub kind: String,
    pub units: usize,
    /// Rows of [`RESIDUALS_FILE`].
    pub rows: usize,
    /// `[first row, rows]` of each run of consecutive recording rows in the bank (a segment of
    /// the recording past its burn-in): a residual is autocorrelated within a run only.
    pub runs: Vec<[usize; 2]>,
    /// Each unit's smallest recorded response over the bank's rows (a response drawn with the
    /// bank is never below it).
    pub floor: Vec<f32>,
    /// Rows at the start of each segment left out (the twin's state settling).
    pub burn_in: usize,
    /// Recording rows the prediction covers (`PREDICTION_FILE`'s first dimension).
    pub recording_rows: usize,
    /// The recording's imaging rate, Hz.
    pub frame_hz: f64,
    /// SHA-256 (hex) of [`RESIDUALS_FILE`]'s bytes.
    pub residuals_sha256: String,
    /// SHA-256 (hex) of the twin's weights file (as a twin session's manifest names it).
    pub twin_weights_sha256: String,
    /// The recording and the twin it came from, as given.
    pub recording: PathBuf,
    pub twin_weights: PathBuf,
}

/// A bank read and checked.
#[derive(Debug, Clone)]
pub struct ResidualBank {
    pub meta: BankMeta,
    /// `[rows][units]`, row-major.
    pub residuals: Vec<f32>,
}

/// Why a bank was refused: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct BankError {
    pub path: PathBuf,
    pub reason: String,
}

fn bad(path: &Path, reason: impl Into<String>) -> BankError {
    BankError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl ResidualBank {
    /// Reads the bank in `dir` and checks it whole (module docs). `twin_weights_sha256`, when
    /// given, must be the bank's twin's.
    pub fn load(dir: &Path, twin_weights_sha256: Option<&str>) -> Result<ResidualBank, BankError> {
        let meta_path = dir.join(BANK_FILE);
        let text = std::fs::read_to_string(&meta_path)
            .map_err(|e| bad(&meta_path, format!("cannot be read ({e})")))?;
        let meta: BankMeta = serde_json::from_str(&text)
            .map_err(|e| bad(&meta_path, format!("is not a residual bank ({e})")))?;
        if meta.kind != BANK_KIND {
            return Err(bad(
                &meta_path,
                format!("kind is {:?}, not {BANK_KIND:?}", meta.kind),
            ));
        }
        if let Some(want) = twin_weights_sha256
            && want != meta.twin_weights_sha256
        {
            return Err(bad(
                &meta_path,
                format!(
                    "twin_weights_sha256 {} is another twin's (these weights hash to {want}): \
                     make the bank with this twin (`twinloop twin residuals --weights ...`)",
                    meta.twin_weights_sha256
                ),
            ));
        }
        let path = dir.join(RESIDUALS_FILE);
        let bytes =
            std::fs::read(&path).map_err(|e| bad(&path, format!("cannot be read ({e})")))?;
        let sha = super::twin_seal::sha256_hex(&bytes);
        if sha != meta.residuals_sha256 {
            return Err(bad(
                &path,
                format!(
                    "hashes to {sha}, not the residuals_sha256 {} of {}: the file is damaged \
                     or from another bank",
                    meta.residuals_sha256,
                    meta_path.display()
                ),
            ));
        }
        let (shape, residuals) = crate::vocab::npy::read_f32(&path)
            .map_err(|e| bad(&path, format!("is not a float32 .npy ({e})")))?;
        if shape != [meta.rows as u64, meta.units as u64] {
            return Err(bad(
                &path,
                format!(
                    "has shape {shape:?}; {} says [{}, {}]",
                    meta_path.display(),
                    meta.rows,
                    meta.units
                ),
            ));
        }
        if meta.rows == 0 || meta.units == 0 {
            return Err(bad(&path, "holds no residual"));
        }
        if let Some(i) = residuals.iter().position(|v| !v.is_finite()) {
            return Err(bad(
                &path,
                format!(
                    "row {}, unit {} is not finite",
                    i / meta.units,
                    i % meta.units
                ),
            ));
        }
        let covered: usize = meta.runs.iter().map(|r| r[1]).sum();
        let inside = meta
            .runs
            .iter()
            .all(|r| r[1] > 0 && r[0].checked_add(r[1]).is_some_and(|e| e <= meta.rows));
        if covered != meta.rows || !inside || meta.floor.len() != meta.units {
            return Err(bad(
                &meta_path,
                "runs must cover the rows once and floor must have one value per unit",
            ));
        }
        Ok(ResidualBank { meta, residuals })
    }

    /// Row `r`'s residuals, one per unit.
    pub fn row(&self, r: usize) -> &[f32] {
        let u = self.meta.units;
        &self.residuals[r * u..(r + 1) * u]
    }
}

/// Writes a bank's files into `dir` (the residuals first: the metadata names their hash).
pub fn write_bank(
    dir: &Path,
    mut meta: BankMeta,
    residuals: &[f32],
    prediction: &[f32],
) -> Result<BankMeta, BankError> {
    std::fs::create_dir_all(dir).map_err(|e| bad(dir, format!("cannot be created ({e})")))?;
    let path = dir.join(RESIDUALS_FILE);
    crate::vocab::npy::write_f32(
        &path,
        &[meta.rows as u64, meta.units as u64],
        residuals.iter().copied(),
    )
    .map_err(|e| bad(&path, format!("cannot be written ({e})")))?;
    let bytes = std::fs::read(&path).map_err(|e| bad(&path, format!("cannot be read ({e})")))?;
    meta.residuals_sha256 = super::twin_seal::sha256_hex(&bytes);
    let pred = dir.join(PREDICTION_FILE);
    crate::vocab::npy::write_f32(
        &pred,
        &[meta.recording_rows as u64, meta.units as u64],
        prediction.iter().copied(),
    )
    .map_err(|e| bad(&pred, format!("cannot be written ({e})")))?;
    let meta_path = dir.join(BANK_FILE);
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| bad(&meta_path, format!("cannot be encoded ({e})")))?;
    std::fs::write(&meta_path, json)
        .map_err(|e| bad(&meta_path, format!("cannot be written ({e})")))?;
    Ok(meta)
}

/// A twin session's draws from a bank (module docs).
pub(crate) struct ResidualDraw {
    bank: ResidualBank,
    rng: ChaCha8Rng,
    row: usize,
    run_end: usize,
    values: Vec<f32>,
    counts: Vec<u32>,
}

impl ResidualDraw {
    pub(crate) fn new(bank: ResidualBank, seed: u64) -> ResidualDraw {
        let units = bank.meta.units;
        ResidualDraw {
            bank,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7265_7369_6475_616c),
            row: 0,
            run_end: 0,
            values: vec![0.0; units],
            counts: vec![0; units],
        }
    }

    /// The next frame's responses for the twin's `prediction` (expected count per frame, one
    /// per unit): prediction plus the next residual row, floored; also rounded into counts.
    pub(crate) fn respond(&mut self, prediction: &[f32]) -> &[f32] {
        if self.row >= self.run_end {
            let start = self.rng.random_range(0..self.bank.meta.rows);
            let run = self
                .bank
                .meta
                .runs
                .iter()
                .find(|r| (r[0]..r[0] + r[1]).contains(&start))
                .copied()
                .unwrap_or([start, 1]);
            self.row = start;
            self.run_end = run[0] + run[1];
        }
        let residual = self.bank.row(self.row);
        self.row += 1;
        for (u, v) in self.values.iter_mut().enumerate() {
            let p = prediction.get(u).copied().unwrap_or(0.0);
            *v = (p + residual[u]).max(self.bank.meta.floor[u]);
            let whole = v.max(0.0).floor();
            let up = self.rng.random::<f32>() < v.max(0.0) - whole;
            self.counts[u] = (whole as u32).saturating_add(u32::from(up));
        }
        &self.values
    }

    /// The last frame's responses as counts (stochastically rounded).
    pub(crate) fn counts(&self) -> &[u32] {
        &self.counts
    }
}
