//! One plane: calibrate from a block of frames, then process frames one at a time.

use crate::backbone::frames::FrameRegistration;
use crate::stages::deconvolve::params::{g_from_tau, lambda_from_noise, noise_sigma};
use crate::stages::deconvolve::{Ar1Params, Params, deconvolve_trace};
use crate::vocab::section::Invalid;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;
use twinloop_calibration::imaging::cells::{
    BlockAccumulator, CellDetectionParams, CellMasks, DetectionReport, ProjectionImages,
    detect_cells,
};
use twinloop_calibration::imaging::fluorescence::{FluorescenceExtractor, FluorescenceParams};
use twinloop_calibration::imaging::kernels::round_to_u16;
use twinloop_calibration::imaging::register::{
    BlockShifts, Registrar, RegistrationParams, RegistrationResult, compute_reference, rigid_shift,
};

/// Everything the imaging pipeline can be told (`[imaging.pipeline]`; suite2p/OASIS defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagingParams {
    pub registration: RegistrationParams,
    pub cells: CellDetectionParams,
    pub fluorescence: FluorescenceParams,
    /// Indicator decay time constant for the AR(1) model, seconds (GCaMP6s ≈ 1.2 s).
    pub tau_decay_s: f64,
    /// Sparsity penalty as multiples of each cell's noise level (OASIS's λ = z·σ·‖h‖).
    pub lambda_noise: f64,
    /// Online deconvolution: frames after which a pool is settled (its spike final).
    pub settle_frames: u32,
    /// Gaps in a plane's frame sequence (frames lost in transit or skipped by the stage) of at
    /// most this many frames are bridged: the calcium decays through them and no spike lands
    /// inside. Longer gaps restart every cell's deconvolution. 0: every gap restarts.
    pub bridge_gap_frames: u32,
    /// The channel processed online (the functional one); other channels are recorded only.
    pub channel: u8,
}

impl Default for ImagingParams {
    fn default() -> Self {
        ImagingParams {
            registration: RegistrationParams::default(),
            cells: CellDetectionParams::default(),
            fluorescence: FluorescenceParams::default(),
            tau_decay_s: 1.2,
            lambda_noise: 0.0,
            settle_frames: 30,
            bridge_gap_frames: 8,
            channel: 0,
        }
    }
}

impl ImagingParams {
    /// What a config gets whose `[imaging.pipeline]` names nothing: `Default`, less the ROI
    /// classifier and hole filling, which a config must ask for (sessions recorded before
    /// them replay bit for bit; on the simulator's short blocks the classifier costs cells).
    pub fn as_configured() -> ImagingParams {
        let mut p = ImagingParams::default();
        p.cells.classifier_threshold = 0.0;
        p.cells.fill_holes = false;
        p
    }

    /// Checks every field at each plane's frame rate; the error names it by its full path
    /// (`imaging.pipeline.cells.calibration_frames`). The calibration crate checks its own
    /// parameter groups; this adds the deconvolution's.
    pub fn validate(&self, plane_rate_hz: f64) -> Result<(), Invalid> {
        use twinloop_calibration::imaging::{
            cells::CellsError, fluorescence::FluorescenceError, register::RegistrationError,
        };
        let named = |group: &str, field: &str, reason: String| {
            Invalid::new(format!("imaging.pipeline.{group}.{field}"), "", reason)
        };
        self.registration.validate().map_err(|e| match e {
            RegistrationError::InvalidParam { field, reason } => {
                named("registration", field, reason)
            }
            e => Invalid::new("imaging.pipeline.registration", "", e.to_string()),
        })?;
        self.cells.validate().map_err(|e| match e {
            CellsError::InvalidParam { field, reason } => named("cells", field, reason),
            e => Invalid::new("imaging.pipeline.cells", "", e.to_string()),
        })?;
        self.fluorescence
            .validate(plane_rate_hz)
            .map_err(|e| match e {
                FluorescenceError::InvalidParam { field, reason } => {
                    named("fluorescence", field, reason)
                }
                e => Invalid::new("imaging.pipeline.fluorescence", "", e.to_string()),
            })?;
        Invalid::positive_at_most(
            "imaging.pipeline.tau_decay_s",
            self.tau_decay_s,
            MAX_INDICATOR_TAU_S,
            "seconds (the indicator's decay; GCaMP6s is about 1.2)",
        )?;
        Invalid::non_negative_at_most(
            "imaging.pipeline.lambda_noise",
            self.lambda_noise,
            MAX_LAMBDA_NOISE,
            "noise levels",
        )?;
        Invalid::in_range(
            "imaging.pipeline.settle_frames",
            self.settle_frames.into(),
            1,
            100_000,
            "1 ..= 100000 frames",
        )?;
        Invalid::in_range(
            "imaging.pipeline.bridge_gap_frames",
            self.bridge_gap_frames.into(),
            0,
            100_000,
            "0 ..= 100000 frames",
        )
    }
}

/// The slowest indicator decay accepted, seconds: an order of magnitude above any GCaMP's.
const MAX_INDICATOR_TAU_S: f64 = 60.0;
/// The largest sparsity penalty accepted, in noise levels (beyond it OASIS finds no spikes).
const MAX_LAMBDA_NOISE: f64 = 1000.0;

#[derive(Debug, Error)]
pub enum PlaneError {
    #[error("registration: {0}")]
    Register(#[from] twinloop_calibration::imaging::register::RegistrationError),
    #[error("cell detection: {0}")]
    Cells(#[from] twinloop_calibration::imaging::cells::CellsError),
    #[error("fluorescence: {0}")]
    Fluorescence(#[from] twinloop_calibration::imaging::fluorescence::FluorescenceError),
    #[error("deconvolution: {0}")]
    Deconvolve(#[from] crate::stages::deconvolve::DeconvolveError),
    /// The saved calibration `imaging.masks` names cannot be used.
    #[error(
        "imaging.masks: {path}: {reason}; point imaging.masks at the `calibration` directory of \
         an earlier session of the same frame size, or remove it to detect cells afresh"
    )]
    Saved { path: PathBuf, reason: String },
}

/// A plane's calibration saved by an earlier session (`imaging.masks`): its reference image and
/// cells, reused so that a day's cells stay the same cells.
pub struct SavedCalibration {
    pub reference: Vec<f32>,
    pub masks: CellMasks,
}

/// File of the saved reference image (f32 `[height, width]`) next to the masks.
pub const REFERENCE_FILE: &str = "reference.npy";

impl SavedCalibration {
    /// Loads `dir` (one plane's directory, as [`PlaneCalibration::save`] writes it), checked
    /// against the frame size.
    pub fn load(dir: &Path, height: usize, width: usize) -> Result<SavedCalibration, PlaneError> {
        let path = dir.join(REFERENCE_FILE);
        let saved = |path: &Path, reason: String| PlaneError::Saved {
            path: path.to_path_buf(),
            reason,
        };
        let (shape, reference) = crate::vocab::npy::read_f32(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                saved(&path, "missing".into())
            } else {
                saved(&path, e.to_string())
            }
        })?;
        if shape != [height as u64, width as u64] {
            return Err(saved(
                &path,
                format!("shape {shape:?} but frames are [{height}, {width}]"),
            ));
        }
        let masks = CellMasks::load(dir, height, width).map_err(|e| saved(dir, e.to_string()))?;
        if masks.is_empty() {
            return Err(saved(dir, "holds no cells".into()));
        }
        Ok(SavedCalibration { reference, masks })
    }
}

/// How far saved masks were moved onto a new session's field of view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MaskShift {
    /// Measured shift of the new reference against the saved one, px (suite2p's sign).
    pub dy_px: f32,
    pub dx_px: f32,
    /// The whole-pixel move applied to the masks.
    pub applied_dy_px: i32,
    pub applied_dx_px: i32,
    /// Phase-correlation peak SNR of the measurement (low: a different field of view).
    pub snr: f32,
}

/// What calibration produced for a plane.
pub struct PlaneCalibration {
    pub reference: Vec<f32>,
    pub masks: CellMasks,
    /// The detection's report; default (all zero) when the cells were loaded, not detected.
    pub report: DetectionReport,
    pub extractor: FluorescenceExtractor,
    /// Set when the cells came from a saved calibration: how far they were moved.
    pub mask_shift: Option<MaskShift>,
    /// The block's summary images (mean, maximum, correlation), for the suite2p files.
    pub images: ProjectionImages,
    /// The ROI classifier's probability of each cell being a soma, in cell order; empty when
    /// the cells were loaded, not detected.
    pub probabilities: Vec<f64>,
    /// The candidates the classifier turned down, traced beside the cells: only from
    /// [`PlaneCalibration::from_block_tracing_rejected`], and only when some were rejected.
    pub rejected: Option<RejectedRois>,
}

/// ROIs the classifier rejected, with an extractor of their own primed like the cells', so
/// that suite2p's files can hold them with `iscell` 0 (its GUI lets a curator move them
/// across). Their neuropil annuli avoid every ROI's pixels; the cells' are left as drawn.
pub struct RejectedRois {
    pub masks: CellMasks,
    /// The classifier's probability of each being a soma, in row order.
    pub probabilities: Vec<f64>,
    pub extractor: FluorescenceExtractor,
}

impl PlaneCalibration {
    /// From a block of raw frames (each `height * width`): reference, registration of the block,
    /// cell detection (or, with `saved`, its cells moved onto this block's reference), and an
    /// extractor primed with the block so dF/F is settled from frame one.
    pub fn from_block(
        frames: &[&[u16]],
        height: usize,
        width: usize,
        frame_rate_hz: f64,
        params: &ImagingParams,
        saved: Option<&SavedCalibration>,
    ) -> Result<PlaneCalibration, PlaneError> {
        Self::calibrate(frames, height, width, frame_rate_hz, params, saved, false)
    }

    /// As [`from_block`](Self::from_block) with detection, and the classifier's rejected ROIs
    /// kept in [`rejected`](Self::rejected) with a primed extractor (offline `process`; a live
    /// session has no use for them and skips the work).
    pub fn from_block_tracing_rejected(
        frames: &[&[u16]],
        height: usize,
        width: usize,
        frame_rate_hz: f64,
        params: &ImagingParams,
    ) -> Result<PlaneCalibration, PlaneError> {
        Self::calibrate(frames, height, width, frame_rate_hz, params, None, true)
    }

    fn calibrate(
        frames: &[&[u16]],
        height: usize,
        width: usize,
        frame_rate_hz: f64,
        params: &ImagingParams,
        saved: Option<&SavedCalibration>,
        trace_rejected: bool,
    ) -> Result<PlaneCalibration, PlaneError> {
        let reference = compute_reference(frames, height, width, &params.registration)?;
        let mut registrar = Registrar::new(&reference, height, width, &params.registration)?;
        let mut acc = BlockAccumulator::new(height, width, &params.cells)?;
        let mut registered = vec![0f32; height * width];
        let mut rounded = vec![0u16; height * width];
        for f in frames {
            registrar.register(f, &mut registered)?;
            round_to_u16(&registered, &mut rounded, registrar.simd());
            acc.push(&rounded)?;
        }
        let block = acc.finish()?;
        let (masks, report, mask_shift, probabilities, rejected) = match saved {
            None => {
                let detection = detect_cells(&block, &params.cells)?;
                let probabilities = detection.verdicts.iter().map(|v| v.probability).collect();
                let rejected = if trace_rejected && !detection.rejected.is_empty() {
                    let (lists, verdicts): (Vec<_>, Vec<_>) =
                        detection.rejected.into_iter().unzip();
                    let masks = detection.masks.rejected_beside(&lists, &[])?;
                    let mut extractor =
                        FluorescenceExtractor::new(&masks, &params.fluorescence, frame_rate_hz)?;
                    extractor.prime(&block)?;
                    Some(RejectedRois {
                        masks,
                        probabilities: verdicts.iter().map(|v| v.probability).collect(),
                        extractor,
                    })
                } else {
                    None
                };
                (
                    detection.masks,
                    detection.report,
                    None,
                    probabilities,
                    rejected,
                )
            }
            Some(saved) => {
                // The new reference is the saved one displaced by (dy, dx) (suite2p's sign:
                // new(y, x) = saved(y - dy, x - dx)), so a cell at p in the saved field of view
                // sits at p + (dy, dx) in this one.
                let r = rigid_shift(
                    &reference,
                    &saved.reference,
                    height,
                    width,
                    &params.registration,
                )?;
                let shift = MaskShift {
                    dy_px: r.dy,
                    dx_px: r.dx,
                    applied_dy_px: r.dy.round() as i32,
                    applied_dx_px: r.dx.round() as i32,
                    snr: r.snr,
                };
                let masks = saved
                    .masks
                    .shifted(shift.applied_dy_px, shift.applied_dx_px)?;
                (
                    masks,
                    DetectionReport::default(),
                    Some(shift),
                    Vec::new(),
                    None,
                )
            }
        };
        let mut extractor =
            FluorescenceExtractor::new(&masks, &params.fluorescence, frame_rate_hz)?;
        extractor.prime(&block)?;
        Ok(PlaneCalibration {
            reference,
            masks,
            report,
            extractor,
            mask_shift,
            images: block.images,
            probabilities,
            rejected,
        })
    }

    /// Saves the reference and masks into `dir` (what [`SavedCalibration::load`] reads), whole
    /// or not at all: written into `dir.tmp`, then renamed into place; a full disk leaves no
    /// partial calibration that an export would read as zero cells.
    pub fn save(&self, dir: &Path, height: usize, width: usize) -> Result<(), String> {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        let named = |p: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
        let written = (|| {
            std::fs::create_dir_all(&tmp).map_err(|e| named(&tmp, &e))?;
            self.masks.save(&tmp).map_err(|e| e.to_string())?;
            let reference = tmp.join(REFERENCE_FILE);
            crate::vocab::npy::write_f32(
                &reference,
                &[height as u64, width as u64],
                self.reference.iter().copied(),
            )
            .map_err(|e| named(&reference, &e))?;
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| named(dir, &e))?;
            }
            std::fs::rename(&tmp, dir).map_err(|e| named(dir, &e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written
    }
}

/// Results of one frame, valid until the next call.
pub struct PlaneFrame<'a> {
    pub registration: RegistrationResult,
    /// What is logged and published about the registration.
    pub summary: FrameRegistration,
    /// Per-block total shifts of the piecewise-rigid step, when it ran on this frame.
    pub blocks: Option<BlockShifts<'a>>,
    pub f: &'a [f32],
    pub fneu: &'a [f32],
    /// The running baseline F0 of each cell, ADU (dF/F's denominator is max(F0, min_baseline)).
    pub f0: &'a [f32],
    pub dff: &'a [f32],
}

/// A calibrated plane, processing one frame at a time (no allocation per frame).
pub struct PlanePipeline {
    registrar: Registrar,
    extractor: FluorescenceExtractor,
    registered: Vec<f32>,
    rounded: Vec<u16>,
}

impl PlanePipeline {
    /// Registration against `reference`, fluorescence by `extractor` (both from a
    /// [`PlaneCalibration`], whose masks and report stay with the caller).
    pub fn new(
        reference: &[f32],
        extractor: FluorescenceExtractor,
        height: usize,
        width: usize,
        params: &ImagingParams,
    ) -> Result<PlanePipeline, PlaneError> {
        Ok(PlanePipeline {
            registrar: Registrar::new(reference, height, width, &params.registration)?,
            extractor,
            registered: vec![0f32; height * width],
            rounded: vec![0u16; height * width],
        })
    }

    pub fn cells(&self) -> usize {
        self.extractor.cells()
    }

    /// The last frame registered, as the extractor read it (rounded to u16): for a second
    /// extractor over other ROIs of the same plane.
    pub fn registered_frame(&self) -> &[u16] {
        &self.rounded
    }

    /// Register one raw frame and extract its fluorescence.
    pub fn process(&mut self, frame: &[u16]) -> Result<PlaneFrame<'_>, PlaneError> {
        let registration = self.registrar.register(frame, &mut self.registered)?;
        let summary = summarise(&registration, self.registrar.block_shifts());
        // The extractor reads u16 frames: rounding the registered frame costs at most 0.5 ADU,
        // far below the shot noise of one photon (tens of ADU).
        round_to_u16(&self.registered, &mut self.rounded, self.registrar.simd());
        self.extractor.process(&self.rounded)?;
        let blocks = self
            .registrar
            .block_shifts()
            .filter(|_| registration.n_blocks > 0);
        Ok(PlaneFrame {
            registration,
            summary,
            blocks,
            f: self.extractor.f(),
            fneu: self.extractor.fneu(),
            f0: self.extractor.baseline(),
            dff: self.extractor.dff(),
        })
    }
}

/// The registration of one frame as logged: rigid shift, quality, and the block shifts' spread
/// around the rigid one (distance in px, largest and mean).
fn summarise(r: &RegistrationResult, blocks: Option<BlockShifts<'_>>) -> FrameRegistration {
    let (mut max, mut sum, mut n) = (0f32, 0f32, 0usize);
    if r.n_blocks > 0
        && let Some(b) = blocks
    {
        for (&dy, &dx) in b.dy.iter().zip(b.dx) {
            let d = (dy - r.rigid_dy).hypot(dx - r.rigid_dx);
            max = max.max(d);
            sum += d;
            n += 1;
        }
    }
    let f = &r.flags;
    FrameRegistration {
        dy_px: r.rigid_dy,
        dx_px: r.rigid_dx,
        quality: r.quality,
        peak_snr: r.rigid_snr,
        blocks: r.n_blocks.min(u16::MAX as usize) as u16,
        blocks_smoothed: r.n_blocks_smoothed.min(u16::MAX as usize) as u16,
        block_max_px: max,
        block_mean_px: if n > 0 { sum / n as f32 } else { 0.0 },
        saturated_fraction: r.saturated_fraction,
        flags: u8::from(f.blank) | u8::from(f.at_shift_limit) << 1 | u8::from(f.low_snr) << 2,
    }
}

/// OASIS AR(1) over each cell's whole dF/F trace (`dff[cell][frame]`), the exact offline
/// solver; λ per cell from its noise level.
pub fn deconvolve_traces(
    dff: &[Vec<f32>],
    frame_rate_hz: f64,
    params: &ImagingParams,
) -> Result<Vec<Vec<f32>>, PlaneError> {
    let g = g_from_tau(params.tau_decay_s, frame_rate_hz)?;
    dff.iter()
        .map(|trace| {
            let y: Vec<f64> = trace.iter().map(|&v| v as f64).collect();
            let sigma = noise_sigma(&y).unwrap_or(0.0);
            let unit = Params::Ar1(Ar1Params::new(g, 0.0, 0.0)?);
            let lambda = lambda_from_noise(sigma, &unit, params.lambda_noise)?;
            let p = Params::Ar1(Ar1Params::new(g, lambda, 0.0)?);
            Ok(deconvolve_trace(&y, &p)
                .s
                .iter()
                .map(|&v| v as f32)
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ImagingParams;

    /// `as_configured` is what serde gives a config that names nothing (fields added with
    /// `#[serde(default)]` for old manifests differ from `Default`), field for field.
    #[test]
    fn as_configured_is_what_an_empty_config_table_gives() {
        let parsed: ImagingParams = toml::from_str("[cells]").unwrap();
        let json = |p: &ImagingParams| serde_json::to_value(p).unwrap();
        assert_eq!(json(&ImagingParams::as_configured()), json(&parsed));
        assert_ne!(json(&ImagingParams::default()), json(&parsed));
    }
}
