//! One plane through `process`'s second pass: its pipeline, the traces it gathers frame by
//! frame, and the files they become.

use super::RateSource;
use crate::offline::suite2p::{MotionLog, PlaneResults, write_suite2p_plane};
use crate::stages::imaging::{
    ImagingParams, PlaneCalibration, PlanePipeline, RejectedRois, deconvolve_traces,
};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twinloop_calibration::imaging::cells::{CellMasks, DetectionReport, ProjectionImages};
use twinloop_calibration::imaging::fluorescence::FluorescenceExtractor;

/// Where the frames came from, the same for every plane (for `process.json`).
pub(super) struct Provenance<'a> {
    pub movie: &'a [PathBuf],
    pub channel: u8,
    pub planes: usize,
    pub flyback: u8,
    pub fs: f64,
    pub rate_source: RateSource,
    pub memory_gb: f64,
    pub read_error: Option<&'a str>,
}

/// `[roi][frame]`: F and Fneu less the dark offset, the running baseline, dF/F.
struct Traces {
    f: Vec<Vec<f32>>,
    fneu: Vec<Vec<f32>>,
    f0: Vec<Vec<f32>>,
    dff: Vec<Vec<f32>>,
}

impl Traces {
    fn new(rois: usize) -> Traces {
        Traces {
            f: vec![Vec::new(); rois],
            fneu: vec![Vec::new(); rois],
            f0: vec![Vec::new(); rois],
            dff: vec![Vec::new(); rois],
        }
    }

    fn push(&mut self, f: &[f32], fneu: &[f32], f0: &[f32], dff: &[f32]) {
        for c in 0..self.f.len() {
            self.f[c].push(f[c]);
            self.fneu[c].push(fneu[c]);
            self.f0[c].push(f0[c]);
            self.dff[c].push(dff[c]);
        }
    }
}

/// The classifier's rejected candidates, traced from the same registered frames as the cells
/// for suite2p's files only (`iscell` 0); twinloop's own files hold the cells.
struct Rejected {
    masks: CellMasks,
    probabilities: Vec<f64>,
    extractor: FluorescenceExtractor,
    traces: Traces,
}

pub(super) struct PlaneRun {
    reference: Vec<f32>,
    masks: CellMasks,
    report: DetectionReport,
    images: ProjectionImages,
    probabilities: Vec<f64>,
    pipeline: PlanePipeline,
    block_len: usize,
    height: usize,
    width: usize,
    traces: Traces,
    rejected: Option<Rejected>,
    /// Per frame: rigid (dy, dx), px.
    shifts: Vec<Vec<f32>>,
    motion: MotionLog,
    started: Instant,
    calibration_s: f64,
    frames_time: Duration,
}

impl PlaneRun {
    pub fn new(
        calibration: PlaneCalibration,
        block_len: usize,
        height: usize,
        width: usize,
        params: &ImagingParams,
        started: Instant,
    ) -> anyhow::Result<PlaneRun> {
        let PlaneCalibration {
            reference,
            masks,
            report,
            extractor,
            images,
            probabilities,
            rejected,
            ..
        } = calibration;
        let pipeline = PlanePipeline::new(&reference, extractor, height, width, params)?;
        let cells = pipeline.cells();
        Ok(PlaneRun {
            reference,
            masks,
            report,
            images,
            probabilities,
            pipeline,
            block_len,
            height,
            width,
            traces: Traces::new(cells),
            rejected: rejected.map(
                |RejectedRois {
                     masks,
                     probabilities,
                     extractor,
                 }| Rejected {
                    traces: Traces::new(masks.len()),
                    masks,
                    probabilities,
                    extractor,
                },
            ),
            shifts: Vec::new(),
            motion: MotionLog::default(),
            calibration_s: started.elapsed().as_secs_f64(),
            started,
            frames_time: Duration::ZERO,
        })
    }

    pub fn cells(&self) -> usize {
        self.pipeline.cells()
    }

    /// Cells and rejected candidates: the traces kept until the end.
    pub fn rois(&self) -> usize {
        self.cells() + self.rejected.as_ref().map_or(0, |r| r.masks.len())
    }

    /// One raw frame of this plane: registered, extracted, its values kept.
    pub fn push(&mut self, frame: &[u16]) -> anyhow::Result<()> {
        let t = Instant::now();
        let out = self.pipeline.process(frame)?;
        self.shifts
            .push(vec![out.registration.rigid_dy, out.registration.rigid_dx]);
        self.motion.push(&out.registration, out.blocks);
        self.traces.push(out.f, out.fneu, out.f0, out.dff);
        if let Some(r) = &mut self.rejected {
            let x = &mut r.extractor;
            x.process(self.pipeline.registered_frame())?;
            r.traces.push(x.f(), x.fneu(), x.baseline(), x.dff());
        }
        self.frames_time += t.elapsed();
        Ok(())
    }

    /// Deconvolves and writes `out/plane<p>/` and `out/suite2p/plane<p>/`.
    pub fn write(
        self,
        p: usize,
        out: &Path,
        source: &Provenance<'_>,
        params: &ImagingParams,
    ) -> anyhow::Result<()> {
        let dir = out.join(format!("plane{p}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let n = self.shifts.len();
        let cells = self.cells();
        let per_frame_ms = self.frames_time.as_secs_f64() * 1e3 / n.max(1) as f64;
        let t = &self.traces;
        let spks = deconvolve_traces(&t.dff, source.fs, params)?;
        write_npy_2d(&dir.join("F.npy"), &t.f, n)?;
        write_npy_2d(&dir.join("Fneu.npy"), &t.fneu, n)?;
        write_npy_2d(&dir.join("dff.npy"), &t.dff, n)?;
        write_npy_2d(&dir.join("spks.npy"), &spks, n)?;
        write_npy_2d(&dir.join("shifts.npy"), &self.shifts, 2)?;
        let ref_rows: Vec<Vec<f32>> = self
            .reference
            .chunks(self.width)
            .map(<[f32]>::to_vec)
            .collect();
        write_npy_2d(&dir.join("reference.npy"), &ref_rows, self.width)?;
        self.masks
            .save(&dir)
            .with_context(|| format!("cannot save the masks in {}", dir.display()))?;
        // suite2p's folder holds every ROI: the cells, then the rejected candidates (`iscell`
        // 0), each row with the traces of its own extractor.
        let mut f = rows(&t.f);
        let mut fneu = rows(&t.fneu);
        let mut f0 = rows(&t.f0);
        let mut spks_all = rows(&spks);
        let mut probabilities = self.probabilities.clone();
        let mut is_cell = vec![true; cells];
        let (rejected_spks, joined);
        let masks = match &self.rejected {
            None => &self.masks,
            Some(r) => {
                rejected_spks = deconvolve_traces(&r.traces.dff, source.fs, params)?;
                f.extend(rows(&r.traces.f));
                fneu.extend(rows(&r.traces.fneu));
                f0.extend(rows(&r.traces.f0));
                spks_all.extend(rows(&rejected_spks));
                probabilities.extend_from_slice(&r.probabilities);
                is_cell.resize(cells + r.masks.len(), false);
                joined = self
                    .masks
                    .followed_by(&r.masks)
                    .context("the rejected ROIs' masks")?;
                &joined
            }
        };
        let results = PlaneResults {
            plane: p,
            planes: source.planes,
            masks,
            probabilities: &probabilities,
            is_cell: &is_cell,
            images: &self.images,
            reference: &self.reference,
            f: &f,
            fneu: &fneu,
            f0: &f0,
            spks_dff: &spks_all,
            frames: n,
            fs_hz: source.fs,
        };
        let suite2p_dir = write_suite2p_plane(out, &results, &self.motion, params)?;
        let summary = serde_json::json!({
            "movie": source.movie,
            "plane": p,
            "channel": source.channel,
            "frames": n,
            "height": self.height,
            "width": self.width,
            "frame_rate_hz": source.fs,
            "frame_rate_source": source.rate_source,
            "planes": source.planes,
            "flyback_pages": source.flyback,
            "calibration_frames": self.block_len,
            "memory_gb": source.memory_gb,
            "cells": cells,
            "rejected_rois": self.rejected.as_ref().map_or(0, |r| r.masks.len()),
            "detection": format!("{:?}", self.report),
            "params": params,
            "read_error": source.read_error,
            "seconds": {
                "calibration": self.calibration_s,
                "per_frame_ms": per_frame_ms,
                "total": self.started.elapsed().as_secs_f64(),
            },
        });
        let summary_path = dir.join("process.json");
        std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", summary_path.display()))?;
        println!(
            "plane {p}: {n} frames, {cells} cells, {per_frame_ms:.2} ms/frame -> {} and {}",
            dir.display(),
            suite2p_dir.display()
        );
        Ok(())
    }
}

/// Each row as a slice.
fn rows(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(Vec::as_slice).collect()
}

fn write_npy_2d(path: &Path, rows: &[Vec<f32>], cols: usize) -> anyhow::Result<()> {
    let shape = [rows.len() as u64, cols as u64];
    crate::vocab::npy::write_f32(path, &shape, rows.iter().flatten().copied())
        .with_context(|| format!("cannot write {}", path.display()))
}
