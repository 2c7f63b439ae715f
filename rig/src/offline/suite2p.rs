//! `twinloop process`'s suite2p folder: one plane's results as the files suite2p's GUI and
//! analysis scripts read (`<out>/suite2p/plane<p>/`, written by the calibration crate's
//! [`write_plane`]), in suite2p's units.
//!
//! twinloop's own traces differ from suite2p's in two ways that are undone here:
//! - F and Fneu have the dark offset (`fluorescence.dark_offset_adu`) removed; suite2p's are
//!   raw ADU, so it is added back (not to an ROI without neuropil pixels, whose Fneu stays 0:
//!   no correction, as in twinloop);
//! - the deconvolved activity is in dF/F; suite2p's OASIS runs on baseline-subtracted
//!   F - 0.7 Fneu, so its `spks` are in ADU: each frame's value is multiplied by that frame's
//!   dF/F denominator, max(F0, `min_baseline`).
//!
//! Registration is reported as suite2p does: `yoff`/`xoff` the rigid shift (same sign),
//! `corrXY` the phase-correlation peak, `yoff1`/`xoff1` each block's shift beyond the rigid
//! one (0 in frames where the piecewise-rigid step did not run).

use crate::stages::imaging::ImagingParams;
use std::path::{Path, PathBuf};
use twinloop_calibration::imaging::cells::{CellMasks, ProjectionImages};
use twinloop_calibration::imaging::register::{BlockShifts, RegistrationResult};
use twinloop_calibration::imaging::suite2p_files::{
    Suite2pError, Suite2pMotion, Suite2pPlane, write_plane,
};

/// Per-frame registration, gathered while a plane is processed.
#[derive(Debug, Default)]
pub struct MotionLog {
    yoff: Vec<f32>,
    xoff: Vec<f32>,
    corr: Vec<f32>,
    /// Per frame, each block's (dy, dx) beyond the rigid shift; empty where no blocks ran.
    residuals: Vec<Vec<(f32, f32)>>,
}

impl MotionLog {
    /// One frame's registration.
    pub fn push(&mut self, r: &RegistrationResult, blocks: Option<BlockShifts<'_>>) {
        self.yoff.push(r.rigid_dy);
        self.xoff.push(r.rigid_dx);
        self.corr.push(r.rigid_corr);
        self.residuals.push(blocks.map_or_else(Vec::new, |b| {
            b.dy.iter()
                .zip(b.dx)
                .map(|(&dy, &dx)| (dy - r.rigid_dy, dx - r.rigid_dx))
                .collect()
        }));
    }

    /// Frame-major [frames x blocks] residuals, zero-filled; and the block count.
    fn blocks(&self) -> (usize, Vec<f32>, Vec<f32>) {
        let blocks = self.residuals.iter().map(Vec::len).max().unwrap_or(0);
        let (mut y, mut x) = (Vec::new(), Vec::new());
        for frame in &self.residuals {
            for b in 0..blocks {
                let (dy, dx) = frame.get(b).copied().unwrap_or((0.0, 0.0));
                y.push(dy);
                x.push(dx);
            }
        }
        (blocks, y, x)
    }
}

/// One plane's cells and traces as twinloop computed them (`[cell][frame]`).
pub struct PlaneResults<'a> {
    /// This plane (from 0) and the acquisition's planes.
    pub plane: usize,
    pub planes: usize,
    pub masks: &'a CellMasks,
    /// Classifier probability per ROI (empty: not classified).
    pub probabilities: &'a [f64],
    /// Whether each ROI is a cell (`iscell` 1) or a rejected candidate (empty: all cells).
    pub is_cell: &'a [bool],
    pub images: &'a ProjectionImages,
    pub reference: &'a [f32],
    /// F and Fneu minus the dark offset, ADU.
    pub f: &'a [&'a [f32]],
    pub fneu: &'a [&'a [f32]],
    /// The running baseline F0, ADU.
    pub f0: &'a [&'a [f32]],
    /// Deconvolved activity, dF/F.
    pub spks_dff: &'a [&'a [f32]],
    pub frames: usize,
    /// Volume rate, Hz.
    pub fs_hz: f64,
}

/// Writes `out/suite2p/plane<p>/` and returns that folder.
pub fn write_suite2p_plane(
    out: &Path,
    r: &PlaneResults<'_>,
    motion: &MotionLog,
    params: &ImagingParams,
) -> Result<PathBuf, Suite2pError> {
    let offset = params.fluorescence.dark_offset_adu as f32;
    let min_baseline = params.fluorescence.min_baseline as f32;
    let flat = |rows: &[&[f32]], add: &dyn Fn(usize) -> f32| -> Vec<f32> {
        rows.iter()
            .enumerate()
            .flat_map(|(c, row)| row.iter().map(move |&v| v + add(c)))
            .collect()
    };
    let f = flat(r.f, &|_| offset);
    let fneu = flat(r.fneu, &|c| {
        if r.masks.neuropil(c).is_empty() {
            0.0
        } else {
            offset
        }
    });
    let spks: Vec<f32> = r
        .spks_dff
        .iter()
        .zip(r.f0)
        .flat_map(|(s, f0)| {
            s.iter()
                .zip(f0.iter())
                .map(|(&s, &f0)| s * f0.max(min_baseline))
        })
        .collect();
    let (blocks, yoff1, xoff1) = motion.blocks();
    let plane = Suite2pPlane {
        plane: r.plane,
        planes: r.planes,
        masks: r.masks,
        probability: r.probabilities,
        is_cell: r.is_cell,
        images: r.images,
        reference: r.reference,
        frames: r.frames,
        f: &f,
        fneu: &fneu,
        spks: &spks,
        fs_hz: r.fs_hz,
        tau_s: params.tau_decay_s,
        diameter_px: params.cells.cell_diameter_px,
        motion: Some(Suite2pMotion {
            yoff: &motion.yoff,
            xoff: &motion.xoff,
            corr_xy: &motion.corr,
            blocks,
            yoff1: &yoff1,
            xoff1: &xoff1,
        }),
    };
    write_plane(out, &plane)
}
