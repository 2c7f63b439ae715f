//! The imaging pipeline online: a calibration phase, then one plane processed frame by frame.
//!
//! # Calibration phase
//! The first `cells.calibration_frames` frames of plane 0, channel 0 are copied into a
//! preallocated block. When it is full, a worker thread computes the reference, registers the
//! block and detects cells while the stage keeps taking frames and holds them (their pool slots)
//! without processing. Once calibrated, the block's frames and then the held ones go through the
//! pipeline in order, so **every frame gets activity** (the first ones late, by the calibration
//! time). If more frames arrive than the hold keeps, the excess is skipped for the stage
//! (recorded, counted as `stage_skips`). The reference and masks are saved in the session
//! directory (`calibration/plane0/`). The calibration depends only on the first frames, so a
//! replay that feeds the recorded frames reproduces it.
//!
//! Activity is the provisional OASIS spike estimate of each cell for the frame (AR(1), λ from
//! each cell's noise over the calibration block, pools settled after `max_lag` frames).
//! Multi-plane and multi-channel acquisitions are processed offline (`twinloop process`); online
//! only plane 0 of channel 0 is processed so far, the other planes are recorded.

use super::{ImagingParams, PlaneCalibration, PlaneError, PlanePipeline};
use crate::frames::{Frame, FrameMeta};
use crate::stages::deconvolve::params::g_from_tau;
use crate::stages::deconvolve::{Ar1Params, BankConfig, DeconvolveBank, Params};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// One processed frame: the deconvolved activity the loop uses, and the traces it came from
/// (logged for export). Each slice has one value per cell.
pub struct FrameOutput<'a> {
    pub spikes: &'a [f32],
    pub f: &'a [f32],
    pub fneu: &'a [f32],
    pub dff: &'a [f32],
}

/// Frames held while the calibration runs (bounded by the frame pool).
const MAX_HELD: usize = 160;

enum State {
    Collecting,
    Calibrating {
        /// Returns the calibration and the block, whose frames are processed next.
        worker: JoinHandle<Result<(PlaneCalibration, Vec<u16>), PlaneError>>,
    },
    Running {
        pipeline: Box<PlanePipeline>,
        bank: Box<DeconvolveBank>,
    },
    Failed,
}

pub struct OnlinePipeline {
    params: ImagingParams,
    height: usize,
    width: usize,
    frame_rate_hz: f64,
    block_len: usize,
    block: Vec<u16>,
    block_meta: Vec<FrameMeta>,
    held: VecDeque<Frame>,
    state: State,
    save_dir: Option<PathBuf>,
    spikes: Vec<f32>,
    /// Frames skipped because the hold was full during calibration.
    pub skipped: u64,
    /// First frame skipped for a full hold (the warning is logged once).
    held_full_since: Option<u64>,
}

impl OnlinePipeline {
    pub fn new(
        params: ImagingParams,
        height: usize,
        width: usize,
        frame_rate_hz: f64,
        save_dir: Option<PathBuf>,
    ) -> OnlinePipeline {
        let block_len = params.cells.calibration_frames.max(1);
        OnlinePipeline {
            block: Vec::with_capacity(block_len * height * width),
            block_meta: Vec::with_capacity(block_len),
            held: VecDeque::with_capacity(MAX_HELD),
            spikes: vec![0.0; params.cells.max_cells],
            params,
            height,
            width,
            frame_rate_hz,
            block_len,
            state: State::Collecting,
            save_dir,
            skipped: 0,
            held_full_since: None,
        }
    }

    /// Cells detected (0 until calibrated).
    pub fn cells(&self) -> usize {
        match &self.state {
            State::Running { pipeline, .. } => pipeline.cells(),
            _ => 0,
        }
    }

    /// Most cells the pipeline can report (sizes the activity buffers).
    pub fn max_cells(&self) -> usize {
        self.params.cells.max_cells
    }

    /// Take one frame; `emit` is called with the activity of every frame that became ready
    /// (none while calibrating, the whole backlog once calibrated).
    pub fn on_frame(&mut self, frame: &Frame, emit: &mut dyn FnMut(&FrameMeta, &FrameOutput<'_>)) {
        if frame.meta.plane != 0 || frame.meta.channel != 0 {
            return;
        }
        match &mut self.state {
            State::Collecting => {
                self.block.extend_from_slice(frame.pixels());
                self.block_meta.push(frame.meta);
                if self.block_meta.len() == self.block_len {
                    self.start_calibration();
                }
            }
            State::Calibrating { worker } => {
                if self.held.len() < MAX_HELD {
                    self.held.push_back(frame.clone());
                } else {
                    self.skipped += 1;
                    // Once per calibration here (every skip is counted, and the recorder has the
                    // frames): a warning per frame would bury the log at 30 Hz.
                    if self.held_full_since.is_none() {
                        self.held_full_since = Some(frame.meta.seq);
                        tracing::warn!(
                            seq = frame.meta.seq,
                            held = MAX_HELD,
                            "calibration still running and the hold is full: frames from here are recorded, not processed, until it ends"
                        );
                    }
                }
                if worker.is_finished() {
                    self.finish_calibration(emit);
                }
            }
            State::Running { .. } => self.process(&frame.meta, frame.pixels(), emit),
            State::Failed => {}
        }
    }

    /// Called when no frame is waiting: a finished calibration is picked up without waiting for
    /// the next frame.
    pub fn poll(&mut self, emit: &mut dyn FnMut(&FrameMeta, &FrameOutput<'_>)) {
        if let State::Calibrating { worker } = &self.state
            && worker.is_finished()
        {
            self.finish_calibration(emit);
        }
    }

    /// Finish up at the end of a session: wait for a calibration still running.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&FrameMeta, &FrameOutput<'_>)) {
        if matches!(self.state, State::Calibrating { .. }) {
            self.finish_calibration(emit);
        }
    }

    fn start_calibration(&mut self) {
        let (h, w, fs) = (self.height, self.width, self.frame_rate_hz);
        let params = self.params.clone();
        let block = std::mem::take(&mut self.block);
        tracing::info!(
            frames = self.block_len,
            "imaging calibration: reference and cells"
        );
        let worker = std::thread::Builder::new()
            .name("imaging-calibration".into())
            .spawn(move || {
                let frames: Vec<&[u16]> = block.chunks_exact(h * w).collect();
                let calibration = PlaneCalibration::from_block(&frames, h, w, fs, &params)?;
                Ok((calibration, block))
            });
        self.state = match worker {
            Ok(worker) => State::Calibrating { worker },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the calibration thread");
                State::Failed
            }
        };
    }

    fn finish_calibration(&mut self, emit: &mut dyn FnMut(&FrameMeta, &FrameOutput<'_>)) {
        let State::Calibrating { worker } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return;
        };
        if let Some(first) = self.held_full_since.take() {
            tracing::warn!(
                first_seq = first,
                skipped = self.skipped,
                "imaging calibration done; frames skipped while the hold was full"
            );
        }
        let (calibration, block) = match worker.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "imaging calibration failed: no activity this session");
                return;
            }
            Err(_) => {
                tracing::error!("imaging calibration thread panicked");
                return;
            }
        };
        let (h, w) = (self.height, self.width);
        let PlaneCalibration {
            reference,
            masks,
            report,
            extractor,
        } = calibration;
        let pipeline = match PlanePipeline::new(&reference, extractor, h, w, &self.params) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "imaging pipeline could not be built");
                return;
            }
        };
        let bank = match deconvolution_bank(pipeline.cells(), self.frame_rate_hz, &self.params) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "deconvolution could not be set up");
                return;
            }
        };
        tracing::info!(
            cells = pipeline.cells(),
            detected = report.cells,
            "imaging calibrated"
        );
        if let Some(dir) = &self.save_dir {
            let saved = std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|_| masks.save(dir).map_err(|e| e.to_string()))
                .and_then(|_| {
                    let shape = [h as u64, w as u64];
                    crate::npy::write_f32(
                        &dir.join("reference.npy"),
                        &shape,
                        reference.iter().copied(),
                    )
                    .map_err(|e| e.to_string())
                });
            if let Err(e) = saved {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot save the calibration");
            }
        }
        self.state = State::Running {
            pipeline: Box::new(pipeline),
            bank: Box::new(bank),
        };
        // The backlog, in order: the calibration block, then the frames held meanwhile.
        let metas = std::mem::take(&mut self.block_meta);
        for (meta, pixels) in metas.iter().zip(block.chunks_exact(h * w)) {
            self.process(meta, pixels, emit);
        }
        while let Some(f) = self.held.pop_front() {
            self.process(&f.meta, f.pixels(), emit);
        }
    }

    fn process(
        &mut self,
        meta: &FrameMeta,
        pixels: &[u16],
        emit: &mut dyn FnMut(&FrameMeta, &FrameOutput<'_>),
    ) {
        let State::Running { pipeline, bank } = &mut self.state else {
            return;
        };
        match pipeline.process(pixels) {
            Ok(out) => {
                let n = out.dff.len().min(self.spikes.len());
                if bank
                    .push_frame(&out.dff[..n], &mut self.spikes[..n])
                    .is_ok()
                {
                    let output = FrameOutput {
                        spikes: &self.spikes[..n],
                        f: &out.f[..n],
                        fneu: &out.fneu[..n],
                        dff: &out.dff[..n],
                    };
                    emit(meta, &output);
                }
            }
            Err(e) => tracing::warn!(seq = meta.seq, error = %e, "frame not processed"),
        }
    }
}

/// OASIS AR(1) for every cell, pools settled after 30 frames (1 s at 30 Hz).
fn deconvolution_bank(
    cells: usize,
    frame_rate_hz: f64,
    params: &ImagingParams,
) -> Result<DeconvolveBank, PlaneError> {
    let g = g_from_tau(params.tau_decay_s, frame_rate_hz)?;
    let p = Params::Ar1(Ar1Params::new(g, 0.0, 0.0)?);
    let config = BankConfig {
        max_lag: Some(30),
        bridge_max_frames: 0,
    };
    Ok(DeconvolveBank::uniform(cells, p, config)?)
}
