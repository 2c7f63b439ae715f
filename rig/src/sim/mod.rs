//! The simulated rig: a synthetic mouse with V1-like neurons, a two-photon microscope, an eye
//! camera and a treadmill, all scored against the ground truth it saves.
//!
//! The driver (`bridge`, ZeroMQ) shows stimuli with [`SimMouse::show`] and pulls sensor data
//! with [`SimMouse::imaging_frame`], [`SimMouse::eye_frame`] and
//! [`SimMouse::treadmill_count`], each in time order. Everything is a deterministic function of
//! the seed, the stimuli and the times asked for.
//!
//! A mouse may have several imaging planes ([`SimMouse::with_planes`]; frames from
//! [`SimMouse::imaging_plane_frame`]): each plane is its own population of cells with its own
//! microscope and truth, all driven by the one behaviour, latent state and view. Plane 0 is
//! exactly the one-plane mouse; the other planes draw from streams of their own.
//!
//! # Layout (in the order data flows)
//! - `bridge`: the ZeroMQ driver that serves this mouse as a rig (written with the daemon).
//! - [`clocks`]: each device's own clock (offset, drift, jitter, a jump) and the shared sync
//!   ticks the bridge stamps its messages with; the truth stays on the rig clock.
//! - [`config`]: [`SimConfig`] (the mouse, from `sim.toml`) and [`SimGeometry`] (the sensors).
//! - `random`: one ChaCha8 stream per component, and fast per-pixel samplers.
//! - `behaviour`: running, arousal and pupil, gaze, blinks, on a fixed substep.
//! - `anatomy` (with `field`): somata, footprints, blood vessels, neuropil maps.
//! - `tuning`: each cell's receptive field, tuning, state coupling and brightness.
//! - `receptive_field`: the Gabor quadrature pairs applied to the gaze-shifted view.
//! - [`v1`]: the `v1_rich` cell model (surround suppression, divisive normalisation,
//!   conjunction cells), each cell's static response and its true optimum under a budget.
//! - `drive`: what sets a plane's rates each substep: the simulated population (`receptive_field`,
//!   [`v1`], `neurons`) or, with [`SimMouse::with_twin`], a fitted twin ([`twin_source`],
//!   `twin_cells`); Poisson spikes are drawn from either.
//! - `neurons`: temporal filters, direction selectivity, simple/complex, nonlinearity,
//!   state gain, Poisson spikes.
//! - `calcium`: indicator kinetics (AR(2)), so F = F0 (1 + dff_per_spike c).
//! - `microscope`: neuropil, vessels, bleaching, motion, shot and read noise, u16 frames.
//! - `eye`: the eye-camera image and its linear camera model.
//! - `treadmill`: encoder counts from distance run.
//! - [`connectome`]: each cell's anatomy (area, type, soma) read off its tuning, and synapses
//!   planted from the true tuning (issue #21; the rule is `twinloop_analysis::connectome`).
//! - `truth`: [`CellTruth`] and the per-frame truth written by [`SimMouse::write_truth`].
//! - `movie`: [`SimMouse::record_turning_gratings`], the standard movie imaging tests and
//!   benchmarks record.
//!
//! # Time
//! Neural dynamics advance on a fixed substep (`neural_dt_s`, 1/60 s by default) when an imaging
//! frame is asked for; each substep uses the last view shown at or before it. Behaviour and brain
//! motion advance on their own fixed substep (`behaviour_dt_s`), so the three streams agree
//! whatever their rates.
//!
//! # Performance
//! No allocation per imaging or eye frame (truth vectors grow amortised). Filtering runs only
//! when the view or the gaze changes, over each cell's receptive-field window. On one core
//! (release, 512x512, a new view every 1/60 s): about 4-6 ms per imaging frame with 1,000 cells
//! and 11-14 ms with 20,000, most of it photon noise for the first and filtering for the second;
//! an eye frame (320x240) takes under 1 ms. Memory: about 3.5 KB of filter weights per cell,
//! and the truth grows by 12 bytes per cell per imaging frame (8 without `record_calcium`).

pub mod bridge;
pub mod clocks;
pub mod config;
pub mod connectome;
pub mod eye;
pub mod recorded_behaviour;
pub mod truth;
pub mod tuning;
pub mod twin_embeddings;
pub mod twin_recording;
pub mod twin_residuals;
pub mod twin_seal;
pub mod twin_source;
pub mod v1;

mod anatomy;
mod behaviour;
mod calcium;
mod drive;
mod field;
mod microscope;
mod movie;
mod neurons;
mod noise_free;
mod random;
mod receptive_field;
mod treadmill;
mod truth_spill;
mod twin_cells;

#[cfg(test)]
mod gabor_replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod truth_tests;
#[cfg(test)]
mod twin_tests;

pub use config::{SimConfig, SimGeometry};
pub use eye::EyeCameraModel;
pub use noise_free::{NoiseFreeCells, PREROLL_S as NOISE_FREE_PREROLL_S};
pub use recorded_behaviour::{RecordedBehaviour, RecordedSample};
pub use truth::CellTruth;
pub use tuning::{CellParams, CellType};
pub use twin_source::{LoadedTwin, TwinIdentity, TwinMode, TwinNoise, TwinSourceConfig};

use crate::vocab::clock::RigTime;
use behaviour::Behaviour;
use calcium::{Calcium, Kinetics};
use drive::{CellDrive, Population, Substep};
use eye::EyeCamera;
use microscope::Microscope;
use neurons::{BrainState, Latent};
use rand_chacha::ChaCha8Rng;
use random::{Stream, stream};
use std::collections::VecDeque;
use treadmill::Encoder;
use truth::{FrameRecord, TruthLog};

/// Gaze changes smaller than this do not re-filter a static view, deg.
const GAZE_REFILTER_DEG: f64 = 0.2;

/// Why a simulated rig could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A config or geometry field is out of range.
    #[error("invalid sim setting `{field}`: {reason}")]
    InvalidConfig {
        /// The field, as written in the config (`section.name`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Counts of inputs the simulator had to repair rather than reject (the API has no error path
/// per frame).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Views whose length was not `view_width * view_height` (padded with grey or cut).
    pub views_resized: u64,
    /// Output buffers of the wrong length (filled as far as they reach).
    pub buffers_mis_sized: u64,
}

/// One imaging plane of the mouse: its own cells (anatomy, tuning, what drives them, calcium),
/// its own microscope (motion, noise) and its own truth. Everything else is the mouse's, shared.
struct Plane {
    cells: Vec<CellTruth>,
    /// What sets the cells' rates: the simulated population, or a twin (`drive.rs`).
    drive: Box<dyn CellDrive>,
    calcium: Calcium,
    microscope: Microscope,
    truth: TruthLog,
    spike_rng: ChaCha8Rng,
    /// Rate of each cell in the last substep, Hz.
    rates_hz: Vec<f32>,
    /// Spikes of each cell in the last substep.
    spikes: Vec<u32>,
    f0_photons: Vec<f32>,
    dff_per_spike: Vec<f32>,
    cell_f: Vec<f32>,
}

impl Plane {
    /// Plane `index` of the mouse: plane 0 from the seed's own streams (so a one-plane mouse is
    /// what it always was), others from their own ([`random::plane_stream`]). `twin`, when
    /// given, drives the cells in place of the simulated population, its spikes drawn from the
    /// twin's seed.
    fn new(
        cfg: &SimConfig,
        geom: &SimGeometry,
        index: usize,
        twin: Option<(Box<dyn CellDrive>, ChaCha8Rng)>,
    ) -> Plane {
        let seed = cfg.seed;
        let own = |s: Stream| random::plane_stream(seed, s, index);
        let anatomy = anatomy::build(cfg, geom, &mut own(Stream::Anatomy));
        let mut tuning_rng = own(Stream::Tuning);
        let mut cells: Vec<CellTruth> = anatomy
            .somata
            .iter()
            .enumerate()
            .map(|(i, s)| CellTruth {
                id: i as u32,
                centre_y_px: s.centre_y_px,
                centre_x_px: s.centre_x_px,
                radius_px: s.radius_px,
                footprint: s.footprint.clone(),
                params: tuning::draw(
                    cfg,
                    geom,
                    s.centre_y_px as f64,
                    s.centre_x_px as f64,
                    &mut tuning_rng,
                ),
            })
            .collect();
        if cfg.cells.model == v1::CellModel::V1Rich {
            // Its own stream: the Gabor parameters stay those of the `gabor` mouse.
            let mut rich_rng = own(Stream::RichTuning);
            for c in &mut cells {
                c.params.v1 = Some(v1::draw(&cfg.cells.v1_rich, &c.params, &mut rich_rng));
            }
        }
        let params: Vec<&CellParams> = cells.iter().map(|c| &c.params).collect();
        let n = cells.len();
        let (drive, spike_rng): (Box<dyn CellDrive>, _) = match twin {
            Some(t) => t,
            None => (
                Box::new(Population::new(&params, geom, cfg.neural_dt_s)),
                own(Stream::Spikes),
            ),
        };
        let mut rates_hz = vec![0.0; n];
        drive.resting_rates(&mut rates_hz);
        let calcium = Calcium::new(
            Kinetics::new(cfg.calcium.decay_s, cfg.calcium.rise_s, cfg.neural_dt_s),
            n,
        );
        let microscope = Microscope::new(
            &cfg.microscope,
            geom.imaging_width,
            geom.imaging_height,
            &anatomy,
            cfg.behaviour_dt_s,
            own(Stream::Photons),
            own(Stream::Motion),
        );
        let frames_hint = (10.0 * geom.imaging_rate_hz).ceil() as usize;
        Plane {
            f0_photons: params.iter().map(|p| p.f0_photons as f32).collect(),
            dff_per_spike: params.iter().map(|p| p.dff_per_spike as f32).collect(),
            drive,
            calcium,
            microscope,
            truth: TruthLog::new(n, cfg.calcium.record_calcium, frames_hint),
            spike_rng,
            rates_hz,
            spikes: vec![0; n],
            cell_f: vec![0.0; n],
            cells,
        }
    }
}

/// The simulated mouse and its rig: one behaviour, eye, treadmill, latent state and view,
/// seen by every imaging plane's cells.
pub struct SimMouse {
    cfg: SimConfig,
    geom: SimGeometry,
    /// At least one; plane 0 is what a one-plane mouse images.
    planes: Vec<Plane>,
    behaviour: Behaviour,
    eye: EyeCamera,
    encoder: Encoder,
    latent: Latent,
    /// Views shown but not yet reached by the neural substeps, oldest first.
    pending_views: VecDeque<(RigTime, Vec<u8>)>,
    spare_views: Vec<Vec<u8>>,
    view: Vec<u8>,
    view_changed: bool,
    filtered_gaze_deg: (f64, f64),
    substep: i64,
    stats: SimStats,
    /// Fast twin mode (`twin_source`): plane 0's frames carry each cell's spike count in its
    /// pixel instead of a microscope image.
    counts_frames: bool,
}

/// Most imaging planes a simulated mouse has (as `imaging.planes` allows).
pub const MAX_PLANES: usize = 64;

impl SimMouse {
    /// Builds the mouse with one imaging plane: anatomy, tuning and all processes, from
    /// `cfg.seed`.
    pub fn new(cfg: &SimConfig, geom: &SimGeometry) -> Result<SimMouse, SimError> {
        SimMouse::with_planes(cfg, geom, 1)
    }

    /// Builds the mouse with `planes` imaging planes, each its own population of cells (own
    /// anatomy, tuning, spikes, microscope, truth) under the one behaviour and view. Plane 0 is
    /// exactly the one-plane mouse's.
    pub fn with_planes(
        cfg: &SimConfig,
        geom: &SimGeometry,
        planes: usize,
    ) -> Result<SimMouse, SimError> {
        SimMouse::build(cfg, geom, planes, None)
    }

    /// Builds the mouse with one imaging plane whose cells fire at `twin`'s predicted rates,
    /// unit `u` as cell `u` (`source.kind = "twin"`; `twin_source`, `twin_cells`). Its spikes
    /// come from `source.seed`; everything else (anatomy, behaviour, microscope) from
    /// `cfg.seed`, as for the simulated population.
    pub fn with_twin(
        cfg: &SimConfig,
        geom: &SimGeometry,
        source: &TwinSourceConfig,
        twin: LoadedTwin,
    ) -> Result<SimMouse, SimError> {
        SimMouse::build(cfg, geom, 1, Some((source, twin)))
    }

    fn build(
        cfg: &SimConfig,
        geom: &SimGeometry,
        planes: usize,
        twin: Option<(&TwinSourceConfig, LoadedTwin)>,
    ) -> Result<SimMouse, SimError> {
        cfg.validate()?;
        geom.validate()?;
        if !(1..=MAX_PLANES).contains(&planes) {
            return Err(SimError::InvalidConfig {
                field: "imaging.planes",
                reason: format!("the simulated rig images 1 ..= {MAX_PLANES} planes, got {planes}"),
            });
        }
        let seed = cfg.seed;
        let eye = EyeCamera::new(
            &cfg.eye,
            geom.eye_width,
            geom.eye_height,
            &mut stream(seed, Stream::EyeAnatomy),
            stream(seed, Stream::EyeNoise),
        );
        let px_per_mm = eye.model.px_per_mm;
        let recorded = twin.as_ref().and_then(|(_, t)| t.behaviour.clone());
        let new_behaviour = || {
            let b = Behaviour::new(
                &cfg.behaviour,
                cfg.behaviour_dt_s,
                stream(seed, Stream::Behaviour),
            );
            match &recorded {
                Some(track) => b.with_recorded(track.clone(), px_per_mm),
                None => b,
            }
        };
        let counts_frames = twin
            .as_ref()
            .is_some_and(|(source, _)| source.mode == TwinMode::Fast);
        let mut twin_drive = match twin {
            None => None,
            Some((source, loaded)) => {
                let twin = loaded.twin;
                let units = twin.config().units;
                if units != cfg.neurons {
                    return Err(SimError::InvalidConfig {
                        field: "sim.neurons",
                        reason: format!(
                            "must equal the twin's {units} units (one cell per unit), got {}",
                            cfg.neurons
                        ),
                    });
                }
                // Over the recording when the behaviour is replayed (held past its end).
                let over_s = recorded
                    .as_ref()
                    .map_or(twin_cells::STANDARDISE_OVER_S, |r| {
                        r.span_s().clamp(1.0, twin_cells::STANDARDISE_OVER_S)
                    });
                let standard = source.standardisation.unwrap_or_else(|| {
                    twin_cells::measured_standardisation(
                        &mut new_behaviour(),
                        1.0 / 30.0,
                        px_per_mm,
                        over_s,
                    )
                });
                let mut cells = twin_cells::TwinCells::new(
                    twin,
                    geom.imaging_rate_hz,
                    (geom.view_height, geom.view_width),
                    standard,
                    px_per_mm,
                );
                if let Some(bank) = loaded.residuals {
                    cells = cells
                        .with_recorded_noise(twin_residuals::ResidualDraw::new(bank, source.seed));
                }
                let drive: Box<dyn CellDrive> = Box::new(cells);
                Some((drive, stream(source.seed, Stream::Spikes)))
            }
        };
        let mut planes: Vec<Plane> = (0..planes)
            .map(|p| Plane::new(cfg, geom, p, if p == 0 { twin_drive.take() } else { None }))
            .collect();
        if counts_frames {
            twin_source::place_in_count_pixels(&mut planes[0].cells, geom.imaging_width);
        }
        let view_len = geom.view_width * geom.view_height;
        Ok(SimMouse {
            cfg: cfg.clone(),
            geom: geom.clone(),
            planes,
            behaviour: new_behaviour(),
            eye,
            encoder: Encoder::new(&cfg.treadmill),
            latent: Latent::new(
                cfg.cells.latent_tau_s,
                cfg.neural_dt_s,
                stream(seed, Stream::Latent),
            ),
            pending_views: VecDeque::with_capacity(8),
            spare_views: (0..8).map(|_| vec![128; view_len]).collect(),
            view: vec![128; view_len],
            view_changed: true,
            filtered_gaze_deg: (0.0, 0.0),
            substep: 0,
            stats: SimStats::default(),
            counts_frames,
        })
    }

    /// Why a plane's cells could not be driven (a twin that failed to step), once that
    /// happened: the session must stop, the frames since carry no responses.
    pub fn drive_failure(&self) -> Option<&str> {
        self.planes.iter().find_map(|p| p.drive.failure())
    }

    /// Number of imaging planes.
    pub fn planes(&self) -> usize {
        self.planes.len()
    }

    /// The stimulus shown from rig time `t` on (until the next call): a
    /// `view_height * view_width` u8 frame, row 0 at the top (max elevation), column 0 at the
    /// left (min azimuth), 128 = mean grey; pixel p has contrast (p / 255 - 0.5) * 2.
    pub fn show(&mut self, view: &[u8], t: RigTime) {
        let len = self.geom.view_width * self.geom.view_height;
        let mut buf = self.spare_views.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&view[..view.len().min(len)]);
        if view.len() != len {
            buf.resize(len, 128);
            self.stats.views_resized += 1;
        }
        self.pending_views.push_back((t, buf));
    }

    /// Advances the brain to `t` and renders plane 0's two-photon frame acquired at `t` into
    /// `out` (`imaging_height * imaging_width` u16, row-major).
    pub fn imaging_frame(&mut self, t: RigTime, out: &mut [u16]) {
        self.imaging_plane_frame(0, t, out);
    }

    /// Advances the brain (every plane) to `t` and renders plane `plane`'s two-photon frame
    /// acquired at `t` into `out`. Each plane's frames must come in time order; a plane that
    /// does not exist leaves `out` alone and counts as a mis-sized buffer.
    pub fn imaging_plane_frame(&mut self, plane: usize, t: RigTime, out: &mut [u16]) {
        if out.len() != self.geom.imaging_width * self.geom.imaging_height
            || plane >= self.planes.len()
        {
            self.stats.buffers_mis_sized += 1;
        }
        self.advance_brain(t);
        let Some(p) = self.planes.get_mut(plane) else {
            return;
        };
        let motion_px = if self.counts_frames {
            // Fast twin mode: the frame is the counts, and nothing moves the brain.
            match p.drive.frame_counts() {
                Some(counts) => twin_source::write_counts(counts, out),
                None => twin_source::write_counts(p.truth.frame_spikes(), out),
            }
            (0.0, 0.0)
        } else {
            p.microscope.advance(t, &mut self.behaviour);
            let mut population_dff = 0.0f32;
            for (i, f) in p.cell_f.iter_mut().enumerate() {
                let dff = p.dff_per_spike[i] * p.calcium.level(i);
                *f = p.f0_photons[i] * (1.0 + dff);
                population_dff += dff;
            }
            population_dff /= p.cell_f.len().max(1) as f32;
            p.microscope.render(t, &p.cell_f, population_dff, out)
        };
        let b = self.behaviour.at(t);
        let rec = FrameRecord {
            t_s: t.as_secs_f64(),
            motion_px,
            latent: self.latent.value(),
            behaviour: [
                b.gaze_azimuth_deg,
                b.gaze_elevation_deg,
                b.pupil_radius_mm * self.eye.model.px_per_mm,
                b.speed_cm_s,
            ],
        };
        let calcium = &p.calcium;
        p.truth.close_frame(&rec, &p.rates_hz, |i| calcium.level(i));
    }

    /// The neural-only path, for experiments that need the brain but not the microscope (the
    /// closed-loop design benchmark): advances the brain to `t` and writes each cell's spike
    /// count and mean rate (Hz) since the previous call. Returns the behaviour the twin would be
    /// given at `t`: running speed (cm/s) and pupil dilation in [-1, 1]. Nothing is kept in the
    /// truth log, so memory stays flat however long it runs. Do not mix with
    /// [`SimMouse::imaging_frame`] in one session. Plane 0's cells only.
    pub fn neural_frame(
        &mut self,
        t: RigTime,
        spikes: &mut [f32],
        rates_hz: &mut [f32],
    ) -> (f64, f64) {
        let n = self.planes[0].cells.len();
        if spikes.len() != n || rates_hz.len() != n {
            self.stats.buffers_mis_sized += 1;
        }
        self.advance_brain(t);
        let p = &mut self.planes[0];
        p.truth.take_frame(&p.rates_hz, spikes, rates_hz);
        let b = self.behaviour.at(t);
        (b.speed_cm_s, b.pupil_z)
    }

    /// Where the eye looks at `t` (azimuth, elevation, degrees): the twin's perspective input
    /// in recordings made without the eye camera (see [`twin_recording`]).
    pub fn gaze_deg(&mut self, t: RigTime) -> (f64, f64) {
        let b = self.behaviour.at(t);
        (b.gaze_azimuth_deg, b.gaze_elevation_deg)
    }

    /// Eye-camera frame at `t` (`eye_height * eye_width` u8, row-major).
    pub fn eye_frame(&mut self, t: RigTime, out: &mut [u8]) {
        if out.len() != self.geom.eye_width * self.geom.eye_height {
            self.stats.buffers_mis_sized += 1;
        }
        let b = self.behaviour.at(t);
        let p = self.eye.render(&b, out);
        // The eye is the mouse's, not a plane's: its truth goes with plane 0's.
        self.planes[0].truth.push_eye([
            t.as_secs_f64(),
            p.centre_x_px,
            p.centre_y_px,
            p.radius_px,
            f64::from(p.blinking as u8),
        ]);
    }

    /// Cumulative treadmill encoder count at `t` (no wrap).
    pub fn treadmill_count(&mut self, t: RigTime) -> i64 {
        self.encoder.count(self.behaviour.at(t).distance_cm)
    }

    /// Ground truth of every cell of plane 0, indexed by id.
    pub fn cells(&self) -> &[CellTruth] {
        &self.planes[0].cells
    }

    /// Ground truth of every cell of plane `plane` (empty for a plane the mouse lacks).
    pub fn plane_cells(&self, plane: usize) -> &[CellTruth] {
        self.planes.get(plane).map_or(&[], |p| &p.cells)
    }

    /// The eye camera's linear model (gaze in degrees to pupil centre in pixels).
    pub fn eye_camera(&self) -> &EyeCameraModel {
        &self.eye.model
    }

    /// Centimetres the mouse runs per encoder count.
    pub fn treadmill_cm_per_count(&self) -> f64 {
        self.encoder.cm_per_count()
    }

    /// Inputs repaired so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The simulator's settings.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Writes the ground truth so far into `dir` (see [`truth`] for the files and layouts):
    /// plane 0's in `dir` itself, plane p's (p >= 1) in [`truth::plane_dir`] (`dir/plane<p>`).
    pub fn write_truth(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        let n = self.planes.len();
        for (i, p) in self.planes.iter_mut().enumerate() {
            let config = if n == 1 {
                serde_json::json!({ "config": self.cfg, "geometry": self.geom })
            } else {
                serde_json::json!({
                    "config": self.cfg, "geometry": self.geom, "plane": i, "planes": n,
                })
            };
            p.truth.write(
                &truth::plane_dir(dir, i),
                &p.cells,
                &self.eye.model,
                &config,
            )?;
        }
        Ok(())
    }

    /// From now on the per-cell truth of every plane (spikes, rates, calcium) is written under
    /// `dir` as it is made rather than kept in memory, so a long session's memory stays flat;
    /// [`SimMouse::write_truth`] into the same `dir` finishes the documented files.
    pub fn spill_truth(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        for (i, p) in self.planes.iter_mut().enumerate() {
            p.truth.spill_to(&truth::plane_dir(dir, i))?;
        }
        Ok(())
    }

    /// Plane 0's truth so far (the tests read it in memory).
    #[cfg(test)]
    fn truth(&self) -> &TruthLog {
        &self.planes[0].truth
    }

    /// Rig time of neural substep `n`, ns.
    fn substep_ns(&self, n: i64) -> i64 {
        (n as f64 * self.cfg.neural_dt_s * 1e9).round() as i64
    }

    fn advance_brain(&mut self, t: RigTime) {
        loop {
            let t_next = self.substep_ns(self.substep + 1);
            if t_next > t.as_nanos() {
                break;
            }
            self.substep += 1;
            while self
                .pending_views
                .front()
                .is_some_and(|(shown, _)| shown.as_nanos() <= t_next)
            {
                if let Some((_, next)) = self.pending_views.pop_front() {
                    let old = std::mem::replace(&mut self.view, next);
                    self.spare_views.push(old);
                    self.view_changed = true;
                }
            }
            let b = self.behaviour.at(RigTime::from_nanos(t_next));
            let gaze = if self.cfg.cells.gaze_shifts_view {
                (b.gaze_azimuth_deg, b.gaze_elevation_deg)
            } else {
                (0.0, 0.0)
            };
            let moved =
                (gaze.0 - self.filtered_gaze_deg.0).hypot(gaze.1 - self.filtered_gaze_deg.1);
            let refilter = self.view_changed || moved > GAZE_REFILTER_DEG;
            if refilter {
                self.filtered_gaze_deg = gaze;
                self.view_changed = false;
            }
            // One state for the whole brain: every plane's cells see it.
            let state = BrainState {
                speed_cm_s: b.speed_cm_s as f32,
                pupil_z: b.pupil_z as f32,
                latent: self.latent.step() as f32,
            };
            let step = Substep {
                t_ns: t_next,
                view: &self.view,
                gaze_deg: gaze,
                refilter,
                state,
            };
            for p in &mut self.planes {
                p.drive.rates(&step, &mut self.behaviour, &mut p.rates_hz);
                neurons::draw_spikes(
                    &p.rates_hz,
                    self.cfg.neural_dt_s as f32,
                    &mut p.spike_rng,
                    &mut p.spikes,
                );
                p.calcium.step(&p.spikes);
                p.truth.accumulate(&p.spikes, &p.rates_hz);
            }
        }
    }
}
