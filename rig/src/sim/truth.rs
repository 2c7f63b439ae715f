//! Ground truth: what each cell is, and what really happened in every frame.
//!
//! Per-frame truth is appended as frames are produced (frame-major, so appending is cheap) and
//! transposed to the documented layouts when written. A session spills the per-cell rows to
//! disk as they are made ([`TruthLog::spill_to`], `truth_spill.rs`), so its memory stays flat. Files written by [`TruthLog::write`]
//! (all `.npy` are C-order float32):
//!
//! | file | shape | content |
//! | --- | --- | --- |
//! | `cells.json` | | every [`CellTruth`] |
//! | `eye_camera.json` | | the eye camera's linear model |
//! | `config.json` | | the `SimConfig` and `SimGeometry` used |
//! | `frame_times.npy` | [frames] | rig time of each imaging frame, s |
//! | `spikes.npy` | [cells, frames] | spikes in the substeps since the previous frame |
//! | `rates.npy` | [cells, frames] | mean rate over those substeps, Hz |
//! | `calcium.npy` | [cells, frames] | noiseless calcium at the frame, in units of one spike's peak; F = f0 (1 + dff_per_spike c) (only with `calcium.record_calcium`) |
//! | `motion.npy` | [frames, 2] | brain displacement (dy, dx), px: frame(y, x) = brain(y - dy, x - dx) |
//! | `latent.npy` | [frames] | the shared latent fluctuation at the frame (see `latent_coupling`) |
//! | `behaviour.npy` | [frames, 4] | pupil_x_deg, pupil_y_deg (gaze azimuth, elevation), pupil_radius_px, running_cm_s |
//! | `eye.npy` | [eye frames, 5] | t_s, centre_x_px, centre_y_px, radius_px, blink (0/1) |
//!
//! A mouse with several imaging planes writes plane 0's truth as above and plane p's (p >= 1)
//! in `plane<p>/` below it ([`plane_dir`]), the same files over that plane's own cells and
//! frames (its `eye.npy` is empty: the eye is the mouse's, kept with plane 0; `config.json`
//! adds `plane` and `planes`).

use super::eye::EyeCameraModel;
use super::truth_spill::FrameRows;
use super::tuning::CellParams;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Where plane `plane`'s truth goes in a truth directory `dir`: plane 0's in `dir` itself (as a
/// one-plane mouse's always was), plane p's in `dir/plane<p>`, the same files.
pub fn plane_dir(dir: &Path, plane: usize) -> std::path::PathBuf {
    match plane {
        0 => dir.to_path_buf(),
        p => dir.join(format!("plane{p}")),
    }
}

/// Everything there is to know about one simulated cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellTruth {
    /// Index of the cell: row in `spikes.npy`, `rates.npy`, `calcium.npy`.
    pub id: u32,
    /// Soma centre, imaging px (brain coordinates, i.e. with no motion).
    pub centre_y_px: f32,
    /// Soma centre, imaging px.
    pub centre_x_px: f32,
    /// Soma radius, px.
    pub radius_px: f32,
    /// Spatial footprint: (pixel index y * width + x, weight); a pixel receives weight x F
    /// photons per frame from this cell.
    pub footprint: Vec<(u32, f32)>,
    /// Tuning, state coupling and brightness.
    #[serde(flatten)]
    pub params: CellParams,
}

/// Per-frame truth, accumulated while the simulation runs.
pub(crate) struct TruthLog {
    n_cells: usize,
    record_calcium: bool,
    frame_times_s: Vec<f32>,
    spikes: FrameRows,
    rates: FrameRows,
    calcium: FrameRows,
    motion: Vec<[f32; 2]>,
    latent: Vec<f32>,
    behaviour: Vec<[f32; 4]>,
    eye: Vec<[f32; 5]>,
    spike_acc: Vec<u32>,
    rate_acc: Vec<f32>,
    substeps: u32,
}

/// What one imaging frame saw besides the cells.
pub(crate) struct FrameRecord {
    pub t_s: f64,
    pub motion_px: (f64, f64),
    /// The shared latent fluctuation.
    pub latent: f64,
    /// pupil_x_deg, pupil_y_deg, pupil_radius_px, running_cm_s.
    pub behaviour: [f64; 4],
}

impl TruthLog {
    pub(crate) fn new(n_cells: usize, record_calcium: bool, frames_hint: usize) -> TruthLog {
        TruthLog {
            n_cells,
            record_calcium,
            frame_times_s: Vec::with_capacity(frames_hint),
            spikes: FrameRows::new(n_cells, frames_hint),
            rates: FrameRows::new(n_cells, frames_hint),
            calcium: FrameRows::new(n_cells, if record_calcium { frames_hint } else { 0 }),
            motion: Vec::with_capacity(frames_hint),
            latent: Vec::with_capacity(frames_hint),
            behaviour: Vec::with_capacity(frames_hint),
            eye: Vec::with_capacity(2 * frames_hint),
            spike_acc: vec![0; n_cells],
            rate_acc: vec![0.0; n_cells],
            substeps: 0,
        }
    }

    /// Adds one neural substep.
    pub(crate) fn accumulate(&mut self, spikes: &[u32], rates_hz: &[f32]) {
        for (a, &s) in self.spike_acc.iter_mut().zip(spikes) {
            *a += s;
        }
        for (a, &r) in self.rate_acc.iter_mut().zip(rates_hz) {
            *a += r;
        }
        self.substeps += 1;
    }

    /// Each cell's spikes since the previous frame closed (fast twin mode's frame).
    pub(crate) fn frame_spikes(&self) -> &[u32] {
        &self.spike_acc
    }

    /// Closes an imaging frame. `rates_now` stands in for the mean rate when no substep
    /// elapsed since the previous frame; `calcium(i)` is cell i's calcium at the frame.
    pub(crate) fn close_frame(
        &mut self,
        rec: &FrameRecord,
        rates_now: &[f32],
        calcium: impl Fn(usize) -> f32,
    ) {
        self.frame_times_s.push(rec.t_s as f32);
        self.spikes.push(self.spike_acc.iter().map(|&s| s as f32));
        if self.substeps > 0 {
            let k = 1.0 / self.substeps as f32;
            self.rates.push(self.rate_acc.iter().map(|&r| r * k));
        } else {
            self.rates.push(rates_now.iter().copied());
        }
        if self.record_calcium {
            self.calcium.push((0..self.n_cells).map(&calcium));
        }
        self.motion
            .push([rec.motion_px.0 as f32, rec.motion_px.1 as f32]);
        self.latent.push(rec.latent as f32);
        self.behaviour.push(rec.behaviour.map(|v| v as f32));
        self.spike_acc.fill(0);
        self.rate_acc.fill(0.0);
        self.substeps = 0;
    }

    /// Hands the current frame's spike counts and mean rates to the caller and starts the next
    /// frame, without keeping them (the neural-only path of [`super::SimMouse::neural_frame`]).
    pub(crate) fn take_frame(&mut self, rates_now: &[f32], spikes: &mut [f32], rates: &mut [f32]) {
        for (o, &s) in spikes.iter_mut().zip(&self.spike_acc) {
            *o = s as f32;
        }
        if self.substeps > 0 {
            let k = 1.0 / self.substeps as f32;
            for (o, &r) in rates.iter_mut().zip(&self.rate_acc) {
                *o = r * k;
            }
        } else {
            for (o, &r) in rates.iter_mut().zip(rates_now) {
                *o = r;
            }
        }
        self.spike_acc.fill(0);
        self.rate_acc.fill(0.0);
        self.substeps = 0;
    }

    /// Adds one eye-camera frame: t_s, centre_x_px, centre_y_px, radius_px, blink.
    pub(crate) fn push_eye(&mut self, row: [f64; 5]) {
        self.eye.push(row.map(|v| v as f32));
    }

    pub(crate) fn frames(&self) -> usize {
        self.frame_times_s.len()
    }

    /// Frame-major [frames, cells] views, for tests.
    #[cfg(test)]
    pub(crate) fn spikes(&self) -> &[f32] {
        self.spikes.in_memory()
    }
    #[cfg(test)]
    pub(crate) fn rates(&self) -> &[f32] {
        self.rates.in_memory()
    }
    #[cfg(test)]
    pub(crate) fn calcium(&self) -> &[f32] {
        self.calcium.in_memory()
    }

    /// From now on the per-cell rows (spikes, rates, calcium) go to files under
    /// `dir/.spill/` as they are made, not to memory; [`TruthLog::write`] into the same `dir`
    /// turns them into the documented `.npy` and removes them.
    pub(crate) fn spill_to(&mut self, dir: &Path) -> std::io::Result<()> {
        let spill = dir.join(".spill");
        self.spikes.spill_to(&spill.join("spikes.f32"))?;
        self.rates.spill_to(&spill.join("rates.f32"))?;
        if self.record_calcium {
            self.calcium.spill_to(&spill.join("calcium.f32"))?;
        }
        Ok(())
    }
    #[cfg(test)]
    pub(crate) fn motion(&self) -> &[[f32; 2]] {
        &self.motion
    }
    #[cfg(test)]
    pub(crate) fn latent(&self) -> &[f32] {
        &self.latent
    }
    #[cfg(test)]
    pub(crate) fn behaviour(&self) -> &[[f32; 4]] {
        &self.behaviour
    }
    #[cfg(test)]
    pub(crate) fn eye(&self) -> &[[f32; 5]] {
        &self.eye
    }

    /// Writes every truth file into `dir` (created if missing).
    pub(crate) fn write(
        &mut self,
        dir: &Path,
        cells: &[CellTruth],
        camera: &EyeCameraModel,
        config: &serde_json::Value,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_json(&dir.join("cells.json"), cells)?;
        write_json(&dir.join("eye_camera.json"), camera)?;
        write_json(&dir.join("config.json"), config)?;
        let f = self.frames();
        write_npy(
            &dir.join("frame_times.npy"),
            &[f as u64],
            self.frame_times_s.iter().copied(),
        )?;
        // [frames, cells] as made, [cells, frames] on disk.
        self.spikes.write_npy_transposed(&dir.join("spikes.npy"))?;
        self.rates.write_npy_transposed(&dir.join("rates.npy"))?;
        if self.record_calcium {
            self.calcium
                .write_npy_transposed(&dir.join("calcium.npy"))?;
        }
        let _ = std::fs::remove_dir(dir.join(".spill"));
        write_npy(
            &dir.join("motion.npy"),
            &[f as u64, 2],
            self.motion.iter().flatten().copied(),
        )?;
        write_npy(
            &dir.join("latent.npy"),
            &[f as u64],
            self.latent.iter().copied(),
        )?;
        write_npy(
            &dir.join("behaviour.npy"),
            &[f as u64, 4],
            self.behaviour.iter().flatten().copied(),
        )?;
        write_npy(
            &dir.join("eye.npy"),
            &[self.eye.len() as u64, 5],
            self.eye.iter().flatten().copied(),
        )?;
        Ok(())
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    serde_json::to_writer(&mut w, value).map_err(std::io::Error::other)?;
    w.flush()
}

fn write_npy(path: &Path, shape: &[u64], data: impl Iterator<Item = f32>) -> std::io::Result<()> {
    crate::vocab::npy::write_f32(path, shape, data)
}
