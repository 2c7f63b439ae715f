//! The imaging pipeline online: per plane, a calibration phase, then frame by frame.
//!
//! # Planes and channels
//! Every plane of the functional channel (`imaging.pipeline.channel`) is its own pipeline: its
//! own calibration block, reference, cells and deconvolution bank; frames of other channels
//! are recorded only. Activity carries its plane (`FrameMeta::plane`).
//!
//! # Calibration phase
//! The first `cells.calibration_frames` frames of a plane are copied into a preallocated block.
//! When it is full, a worker thread computes the reference, registers the block and detects
//! cells (or, with `imaging.masks`, moves the saved cells onto the new reference) while the
//! stage keeps taking frames and holds them (their pool slots) without processing. Once
//! calibrated, the block's frames and then the held ones go through the pipeline in order, so
//! **every frame gets activity** (the first ones late, by the calibration time). If more frames
//! arrive than the hold keeps, the excess is skipped for the stage (recorded, counted as
//! `stage_skips`). The reference and masks are saved in the session directory
//! (`calibration/plane<p>/`). The calibration depends only on the first frames, so a replay
//! that feeds the recorded frames reproduces it ([`OnlinePipeline::follow`]).
//!
//! # Activity and gaps
//! Activity is the provisional OASIS spike estimate of each cell for the frame (AR(1), g from
//! `tau_decay_s`, λ = 0, pools settled after `settle_frames`). A gap
//! in a plane's frame sequence — frames lost in transit (ingest counts them) or skipped by the
//! stage — is declared to the bank: up to `bridge_gap_frames` frames are bridged (the calcium
//! decays through them, `g^k`, and no spike lands inside), longer gaps restart every cell's
//! deconvolution, and a sequence that starts again (a bridge's new `hello`) restarts too.

use super::{ImagingParams, PlaneCalibration, PlaneError, PlanePipeline, SavedCalibration};
use crate::backbone::frames::{Frame, FrameMeta, FrameRegistration};
use crate::stages::deconvolve::params::g_from_tau;
use crate::stages::deconvolve::{Ar1Params, BankConfig, DeconvolveBank, Params};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One processed frame: the deconvolved activity the loop uses, the traces it came from
/// (logged for export; one value per cell each) and how the frame was registered.
pub struct FrameOutput<'a> {
    pub spikes: &'a [f32],
    pub f: &'a [f32],
    pub fneu: &'a [f32],
    pub dff: &'a [f32],
    pub registration: &'a FrameRegistration,
}

/// Frames held while the calibration runs, over all planes (bounded by the frame pool).
const MAX_HELD: usize = 160;

/// Where a ready frame's results go: its metadata and its [`FrameOutput`].
pub type Emit<'a> = dyn FnMut(&FrameMeta, &FrameOutput<'_>) + 'a;

type CalibrationResult = Result<(PlaneCalibration, Vec<u16>), PlaneError>;

enum State {
    Collecting,
    Calibrating {
        /// Returns the calibration and the block, whose frames are processed next.
        worker: JoinHandle<CalibrationResult>,
    },
    Running {
        pipeline: Box<PlanePipeline>,
        bank: Box<DeconvolveBank>,
    },
    Failed,
}

/// What is the same for every plane.
struct Shared {
    params: ImagingParams,
    height: usize,
    width: usize,
    frame_rate_hz: f64,
    block_len: usize,
    /// Filled with each plane's scan offsets when it is calibrated (before its first activity).
    scan: Option<(crate::vocab::scan::ScanSlot, f64)>,
}

/// One plane's pipeline and its calibration phase.
struct PlaneOnline {
    plane: u8,
    block: Vec<u16>,
    block_meta: Vec<FrameMeta>,
    held: VecDeque<Frame>,
    max_held: usize,
    state: State,
    save_dir: Option<PathBuf>,
    saved: Option<Arc<SavedCalibration>>,
    spikes: Vec<f32>,
    /// Where the bank's settled rows are drained to and dropped: the loop uses the provisional
    /// estimate, the log keeps dF/F (export deconvolves it again), and an undrained bank keeps
    /// every row, about 4 bytes per cell per frame for the whole session.
    settled: Vec<f32>,
    /// First frame skipped for a full hold (the warning is logged once).
    held_full_since: Option<u64>,
    /// Seq of the last frame given to the bank (gaps are measured from it).
    last_seq: Option<u64>,
    /// Frames that could not be processed (registration or deconvolution failed).
    failed: u64,
}

pub struct OnlinePipeline {
    shared: Shared,
    planes: Vec<PlaneOnline>,
    channel: u8,
    /// Frames skipped because a hold was full during calibration.
    pub skipped: u64,
    /// Session-log notes (calibration results) for the stage to record.
    notes: Vec<serde_json::Value>,
    /// Replay: calibrate in line and process exactly these `(plane, seq)` frames.
    follow: Option<BTreeSet<(u8, u64)>>,
}

impl OnlinePipeline {
    /// One pipeline per plane of `params.channel`. With `masks` (a saved `calibration`
    /// directory), each plane's saved reference and cells are loaded now, so a missing or
    /// mismatched file stops the session before it starts; `save_dir` is where this session's
    /// calibration is written (`plane<p>/` below it).
    pub fn new(
        params: ImagingParams,
        height: usize,
        width: usize,
        planes: u8,
        frame_rate_hz: f64,
        masks: Option<&Path>,
        save_dir: Option<PathBuf>,
    ) -> Result<OnlinePipeline, PlaneError> {
        let block_len = params.cells.calibration_frames.max(1);
        let n = planes.max(1);
        let max_held = (MAX_HELD / n as usize).max(1);
        let mut list = Vec::with_capacity(n as usize);
        for p in 0..n {
            let saved = match masks {
                Some(dir) => Some(Arc::new(SavedCalibration::load(
                    &dir.join(format!("plane{p}")),
                    height,
                    width,
                )?)),
                None => None,
            };
            list.push(PlaneOnline {
                plane: p,
                block: Vec::with_capacity(block_len * height * width),
                block_meta: Vec::with_capacity(block_len),
                held: VecDeque::with_capacity(max_held),
                max_held,
                state: State::Collecting,
                save_dir: save_dir.as_ref().map(|d| d.join(format!("plane{p}"))),
                saved,
                spikes: vec![0.0; params.cells.max_cells],
                settled: vec![0.0; params.cells.max_cells],
                held_full_since: None,
                last_seq: None,
                failed: 0,
            });
        }
        Ok(OnlinePipeline {
            channel: params.channel,
            shared: Shared {
                params,
                height,
                width,
                frame_rate_hz,
                block_len,
                scan: None,
            },
            planes: list,
            skipped: 0,
            notes: Vec::new(),
            follow: None,
        })
    }

    /// Where to put each plane's scan offsets once its cells are known (the closed loop reads
    /// every plane); `frame_period_s` is the time one frame takes to scan (1 / the rig's frame
    /// rate, all planes counted).
    pub fn set_scan_slot(&mut self, slot: crate::vocab::scan::ScanSlot, frame_period_s: f64) {
        self.shared.scan = Some((slot, frame_period_s));
    }

    /// Replay: calibrate in line (no hold, nothing skipped for time) and process only the
    /// frames the live run processed, `(plane, seq)`, so every bank sees the same frames and
    /// gaps as live and the activity is reproduced bit for bit.
    pub fn follow(&mut self, processed: BTreeSet<(u8, u64)>) {
        self.follow = Some(processed);
    }

    /// Cells detected over all planes (0 until calibrated).
    pub fn cells(&self) -> usize {
        self.planes
            .iter()
            .map(|p| match &p.state {
                State::Running { pipeline, .. } => pipeline.cells(),
                _ => 0,
            })
            .sum()
    }

    /// Most cells one plane can report (sizes the activity buffers).
    pub fn max_cells(&self) -> usize {
        self.shared.params.cells.max_cells
    }

    /// Notes for the session log gathered since the last call (calibration results).
    /// Frames no activity came from because processing failed, over all planes (counted by
    /// the stage as `frames_failed`).
    pub fn frames_failed(&self) -> u64 {
        self.planes.iter().map(|p| p.failed).sum()
    }

    /// Times a plane's deconvolution bank had to grow its row ring since the session began:
    /// 0 while the settled rows are drained each frame, so the stage's memory stays flat.
    pub fn deconvolution_rows_grown(&self) -> u64 {
        self.planes
            .iter()
            .map(|p| match &p.state {
                State::Running { bank, .. } => bank.stats().row_grows,
                _ => 0,
            })
            .sum()
    }

    pub fn take_notes(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.notes)
    }

    /// Take one frame; `emit` is called with the activity of every frame that became ready
    /// (none while calibrating, the whole backlog once calibrated).
    pub fn on_frame(&mut self, frame: &Frame, emit: &mut Emit<'_>) {
        let meta = &frame.meta;
        if meta.channel != self.channel {
            return;
        }
        let Some(plane) = self.planes.get_mut(meta.plane as usize) else {
            return;
        };
        let sh = &self.shared;
        match &mut plane.state {
            State::Collecting => {
                plane.block.extend_from_slice(frame.pixels());
                plane.block_meta.push(frame.meta);
                if plane.block_meta.len() == sh.block_len {
                    plane.start_calibration(sh);
                    if self.follow.is_some() {
                        plane.finish_calibration(sh, &mut self.notes, &self.follow, emit);
                    }
                }
            }
            State::Calibrating { worker } => {
                if plane.held.len() < plane.max_held {
                    plane.held.push_back(frame.clone());
                } else {
                    self.skipped += 1;
                    // Once per calibration here (every skip is counted, and the recorder has the
                    // frames): a warning per frame would bury the log at 30 Hz.
                    if plane.held_full_since.is_none() {
                        plane.held_full_since = Some(meta.seq);
                        tracing::warn!(
                            plane = plane.plane,
                            seq = meta.seq,
                            held = plane.max_held,
                            "calibration still running and the hold is full: frames from here are recorded, not processed, until it ends"
                        );
                    }
                }
                if worker.is_finished() {
                    plane.finish_calibration(sh, &mut self.notes, &self.follow, emit);
                }
            }
            State::Running { .. } => {
                if followed(&self.follow, meta) {
                    plane.process(meta, frame.pixels(), emit);
                }
            }
            State::Failed => {}
        }
    }

    /// Called when no frame is waiting: a finished calibration is picked up without waiting for
    /// the next frame.
    pub fn poll(&mut self, emit: &mut Emit<'_>) {
        for plane in &mut self.planes {
            if let State::Calibrating { worker } = &plane.state
                && worker.is_finished()
            {
                plane.finish_calibration(&self.shared, &mut self.notes, &self.follow, emit);
            }
        }
    }

    /// Finish up at the end of a session: wait for calibrations still running.
    pub fn finish(&mut self, emit: &mut Emit<'_>) {
        for plane in &mut self.planes {
            if matches!(plane.state, State::Calibrating { .. }) {
                plane.finish_calibration(&self.shared, &mut self.notes, &self.follow, emit);
            }
        }
    }
}

fn followed(follow: &Option<BTreeSet<(u8, u64)>>, meta: &FrameMeta) -> bool {
    follow
        .as_ref()
        .is_none_or(|f| f.contains(&(meta.plane, meta.seq)))
}

impl PlaneOnline {
    fn start_calibration(&mut self, sh: &Shared) {
        let (h, w, fs) = (sh.height, sh.width, sh.frame_rate_hz);
        let params = sh.params.clone();
        let saved = self.saved.clone();
        let block = std::mem::take(&mut self.block);
        tracing::info!(
            plane = self.plane,
            frames = sh.block_len,
            saved_masks = saved.is_some(),
            "imaging calibration: reference and cells"
        );
        let worker = std::thread::Builder::new()
            .name(format!("imaging-calibration-{}", self.plane))
            .spawn(move || {
                let frames: Vec<&[u16]> = block.chunks_exact(h * w).collect();
                let calibration =
                    PlaneCalibration::from_block(&frames, h, w, fs, &params, saved.as_deref())?;
                Ok((calibration, block))
            });
        self.state = match worker {
            Ok(worker) => State::Calibrating { worker },
            Err(e) => {
                tracing::error!(plane = self.plane, error = %e, "cannot start the calibration thread");
                State::Failed
            }
        };
    }

    fn finish_calibration(
        &mut self,
        sh: &Shared,
        notes: &mut Vec<serde_json::Value>,
        follow: &Option<BTreeSet<(u8, u64)>>,
        emit: &mut Emit<'_>,
    ) {
        let State::Calibrating { worker } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return;
        };
        let plane = self.plane;
        if let Some(first) = self.held_full_since.take() {
            tracing::warn!(
                plane,
                first_seq = first,
                "imaging calibration done; frames were skipped while the hold was full"
            );
        }
        let (calibration, block) = match worker.join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(plane, error = %e, "imaging calibration failed: no activity from this plane this session");
                notes.push(serde_json::json!({
                    "event": "imaging_calibration_failed", "plane": plane, "error": e.to_string(),
                }));
                return;
            }
            Err(_) => {
                tracing::error!(plane, "imaging calibration thread panicked");
                return;
            }
        };
        let (h, w) = (sh.height, sh.width);
        if let Some(dir) = &self.save_dir
            && let Err(e) = calibration.save(dir, h, w)
        {
            tracing::warn!(plane, error = %e, dir = %dir.display(), "cannot save the calibration");
        }
        let PlaneCalibration {
            reference,
            masks,
            report,
            extractor,
            mask_shift,
            ..
        } = calibration;
        let pipeline = match PlanePipeline::new(&reference, extractor, h, w, &sh.params) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(plane, error = %e, "imaging pipeline could not be built");
                return;
            }
        };
        let bank = match deconvolution_bank(pipeline.cells(), sh.frame_rate_hz, &sh.params) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(plane, error = %e, "deconvolution could not be set up");
                return;
            }
        };
        match &mask_shift {
            Some(s) => tracing::info!(
                plane,
                cells = masks.len(),
                dy_px = s.dy_px,
                dx_px = s.dx_px,
                moved_dy_px = s.applied_dy_px,
                moved_dx_px = s.applied_dx_px,
                snr = s.snr,
                "imaging calibrated with saved cells, moved onto this session's field of view"
            ),
            None => tracing::info!(
                plane,
                cells = pipeline.cells(),
                detected = report.cells,
                "imaging calibrated"
            ),
        }
        if let Some((slot, period_s)) = &sh.scan {
            let cells = masks.info().iter().map(|c| crate::vocab::scan::CellPlace {
                y_px: f64::from(c.centroid_y_px),
                x_px: f64::from(c.centroid_x_px),
                radius_px: f64::from(c.radius_px),
            });
            slot.set(crate::vocab::scan::ScanOffsets {
                plane: self.plane,
                ..crate::vocab::scan::ScanOffsets::from_cells(cells, h as u32, *period_s)
            });
        }
        notes.push(serde_json::json!({
            "event": "imaging_calibrated",
            "plane": plane,
            "cells": pipeline.cells(),
            "masks": if mask_shift.is_some() { "saved" } else { "detected" },
            "mask_shift": mask_shift,
            "detection": report,
        }));
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
            if followed(follow, &f.meta) {
                self.process(&f.meta, f.pixels(), emit);
            }
        }
    }

    fn process(&mut self, meta: &FrameMeta, pixels: &[u16], emit: &mut Emit<'_>) {
        let State::Running { pipeline, bank } = &mut self.state else {
            return;
        };
        match pipeline.process(pixels) {
            Ok(out) => {
                // Frames this bank never saw since the last one: declared, not papered over.
                match self.last_seq {
                    Some(last) if meta.seq > last + 1 => bank.push_gap(meta.seq - last - 1),
                    Some(last) if meta.seq <= last => {
                        tracing::info!(
                            plane = self.plane,
                            seq = meta.seq,
                            last,
                            "frame numbering started again: deconvolution restarts"
                        );
                        bank.flush();
                    }
                    _ => {}
                }
                self.last_seq = Some(meta.seq);
                let n = out.dff.len().min(self.spikes.len());
                if let Err(e) = bank.push_frame(&out.dff[..n], &mut self.spikes[..n]) {
                    self.failed += 1;
                    tracing::warn!(plane = self.plane, seq = meta.seq, error = %e, "frame not deconvolved");
                } else {
                    while let Ok(Some(_)) = bank.pop_settled(&mut self.settled[..n]) {}
                    let output = FrameOutput {
                        spikes: &self.spikes[..n],
                        f: &out.f[..n],
                        fneu: &out.fneu[..n],
                        dff: &out.dff[..n],
                        registration: &out.summary,
                    };
                    emit(meta, &output);
                }
            }
            Err(e) => {
                self.failed += 1;
                tracing::warn!(plane = self.plane, seq = meta.seq, error = %e, "frame not processed")
            }
        }
    }
}

/// OASIS AR(1) for every cell, pools settled after `settle_frames`, gaps as configured.
fn deconvolution_bank(
    cells: usize,
    frame_rate_hz: f64,
    params: &ImagingParams,
) -> Result<DeconvolveBank, PlaneError> {
    let g = g_from_tau(params.tau_decay_s, frame_rate_hz)?;
    let p = Params::Ar1(Ar1Params::new(g, 0.0, 0.0)?);
    let config = BankConfig {
        max_lag: Some(params.settle_frames.max(1)),
        bridge_max_frames: params.bridge_gap_frames,
    };
    Ok(DeconvolveBank::uniform(cells, p, config)?)
}
