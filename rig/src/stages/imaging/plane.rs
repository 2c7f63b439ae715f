//! One plane: calibrate from a block of frames, then process frames one at a time.

use crate::stages::deconvolve::params::{g_from_tau, lambda_from_noise, noise_sigma};
use crate::stages::deconvolve::{Ar1Params, Params, deconvolve_trace};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use twinloop_calibration::imaging::cells::{
    BlockAccumulator, CellDetectionParams, CellMasks, DetectionReport, detect_cells,
};
use twinloop_calibration::imaging::fluorescence::{FluorescenceExtractor, FluorescenceParams};
use twinloop_calibration::imaging::register::{
    Registrar, RegistrationParams, RegistrationResult, compute_reference,
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
}

impl Default for ImagingParams {
    fn default() -> Self {
        ImagingParams {
            registration: RegistrationParams::default(),
            cells: CellDetectionParams::default(),
            fluorescence: FluorescenceParams::default(),
            tau_decay_s: 1.2,
            lambda_noise: 0.0,
        }
    }
}

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
}

/// What calibration produced for a plane.
pub struct PlaneCalibration {
    pub reference: Vec<f32>,
    pub masks: CellMasks,
    pub report: DetectionReport,
    pub extractor: FluorescenceExtractor,
}

impl PlaneCalibration {
    /// From a block of raw frames (each `height * width`): reference, registration of the block,
    /// cell detection, and an extractor primed with the block so dF/F is settled from frame one.
    pub fn from_block(
        frames: &[&[u16]],
        height: usize,
        width: usize,
        frame_rate_hz: f64,
        params: &ImagingParams,
    ) -> Result<PlaneCalibration, PlaneError> {
        let reference = compute_reference(frames, height, width, &params.registration)?;
        let mut registrar = Registrar::new(&reference, height, width, &params.registration)?;
        let mut acc = BlockAccumulator::new(height, width, &params.cells)?;
        let mut registered = vec![0f32; height * width];
        let mut rounded = vec![0u16; height * width];
        for f in frames {
            registrar.register(f, &mut registered)?;
            round_into(&registered, &mut rounded);
            acc.push(&rounded)?;
        }
        let block = acc.finish()?;
        let detection = detect_cells(&block, &params.cells)?;
        let mut extractor =
            FluorescenceExtractor::new(&detection.masks, &params.fluorescence, frame_rate_hz)?;
        extractor.prime(&block)?;
        Ok(PlaneCalibration {
            reference,
            masks: detection.masks,
            report: detection.report,
            extractor,
        })
    }
}

/// Results of one frame, valid until the next call.
pub struct PlaneFrame<'a> {
    pub registration: RegistrationResult,
    pub f: &'a [f32],
    pub fneu: &'a [f32],
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

    /// Register one raw frame and extract its fluorescence.
    pub fn process(&mut self, frame: &[u16]) -> Result<PlaneFrame<'_>, PlaneError> {
        let registration = self.registrar.register(frame, &mut self.registered)?;
        // The extractor reads u16 frames: rounding the registered frame costs at most 0.5 ADU,
        // far below the shot noise of one photon (tens of ADU).
        round_into(&self.registered, &mut self.rounded);
        self.extractor.process(&self.rounded)?;
        Ok(PlaneFrame {
            registration,
            f: self.extractor.f(),
            fneu: self.extractor.fneu(),
            dff: self.extractor.dff(),
        })
    }
}

fn round_into(src: &[f32], dst: &mut [u16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.round().clamp(0.0, u16::MAX as f32) as u16;
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
