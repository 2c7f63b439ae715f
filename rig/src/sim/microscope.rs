//! The synthetic two-photon microscope: from the cells' fluorescence to a u16 frame.
//!
//! The expected photon count of a pixel is built in brain coordinates (neuropil plus every soma's
//! footprint times its F, all shaded by blood vessels), then scaled by photobleaching and laser
//! drift, shifted by the brain's motion (bilinear resampling: rigid, subpixel), and detected:
//! Poisson photon counts times the detector gain, plus Gaussian read noise and a dark offset,
//! clipped to the u16 range.
//!
//! Motion (a smooth random walk that grows while the mouse runs, rare small jumps that relax
//! over tens of seconds, a breathing oscillation, all bounded by `motion_max_px`), laser drift
//! and the neuropil's slow fluctuation are integrated on the behaviour substep from their own
//! stream, so they are functions of time alone. Photon noise has its own stream.
//!
//! Convention: `motion = (dy, dx)` means the brain appears displaced by (dy, dx) px, i.e.
//! `frame(y, x) = brain(y - dy, x - dx)`; registration undoes it by shifting by (-dy, -dx).

use super::anatomy::Anatomy;
use super::behaviour::Behaviour;
use super::config::MicroscopeConfig;
use super::random::{PoissonTable, normal, normal_from_bits, normal_from_bits32};
use crate::vocab::clock::RigTime;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

/// Below this mean, photon counts are drawn exactly; above, by their normal approximation.
const EXACT_POISSON_BELOW: f32 = 12.0;
/// Jumps of the brain relax back over this time, s.
const JUMP_RELAX_S: f64 = 30.0;
/// Time constant of the neuropil's fluctuation, s.
const NEUROPIL_TAU_S: f64 = 3.0;
/// Time constant of the laser's power drift, s.
const LASER_TAU_S: f64 = 60.0;

pub(crate) struct Microscope {
    cfg: MicroscopeConfig,
    width: usize,
    height: usize,
    neuropil_base: Vec<f32>,
    neuropil_modes: [Vec<f32>; 2],
    /// Footprints of all cells, compressed: cell i owns `fp_start[i]..fp_start[i + 1]`.
    fp_start: Vec<usize>,
    fp_pixel: Vec<u32>,
    fp_weight: Vec<f32>,
    /// Expected photons in brain coordinates, reused every frame.
    ideal: Vec<f32>,
    /// Expected photons of one output row after motion and scaling.
    row_lambda: Vec<f32>,
    poisson: PoissonTable,
    noise_rng: ChaCha8Rng,
    // Slow processes.
    proc_rng: ChaCha8Rng,
    dt_s: f64,
    dt_ns: i64,
    steps: i64,
    walk_px: (f64, f64),
    jump_px: (f64, f64),
    laser_log: f64,
    neuropil_a: [f64; 2],
    bleach_per_s: f64,
}

impl Microscope {
    pub(crate) fn new(
        cfg: &MicroscopeConfig,
        width: usize,
        height: usize,
        anatomy: &Anatomy,
        dt_s: f64,
        noise_rng: ChaCha8Rng,
        proc_rng: ChaCha8Rng,
    ) -> Microscope {
        let mut fp_start = Vec::with_capacity(anatomy.somata.len() + 1);
        let (mut fp_pixel, mut fp_weight) = (Vec::new(), Vec::new());
        for s in &anatomy.somata {
            fp_start.push(fp_pixel.len());
            for &(p, w) in &s.footprint {
                fp_pixel.push(p);
                fp_weight.push(w);
            }
        }
        fp_start.push(fp_pixel.len());
        let keep = 1.0 - cfg.bleach_percent_per_min.min(99.0) / 100.0;
        Microscope {
            cfg: cfg.clone(),
            width,
            height,
            neuropil_base: anatomy.neuropil_base.clone(),
            neuropil_modes: anatomy.neuropil_modes.clone(),
            fp_start,
            fp_pixel,
            fp_weight,
            ideal: vec![0.0; width * height],
            row_lambda: vec![0.0; width],
            poisson: PoissonTable::new(EXACT_POISSON_BELOW),
            noise_rng,
            proc_rng,
            dt_s,
            dt_ns: ((dt_s * 1e9).round() as i64).max(1),
            steps: 0,
            walk_px: (0.0, 0.0),
            jump_px: (0.0, 0.0),
            laser_log: 0.0,
            neuropil_a: [0.0; 2],
            bleach_per_s: -keep.ln() / 60.0,
        }
    }

    /// Integrates motion, laser drift and neuropil fluctuation up to `t`.
    pub(crate) fn advance(&mut self, t: RigTime, behaviour: &mut Behaviour) {
        let target = t.as_nanos().max(0) / self.dt_ns;
        let dt = self.dt_s;
        let c = &self.cfg;
        while self.steps < target {
            self.steps += 1;
            let speed = behaviour
                .at(RigTime::from_nanos(self.steps * self.dt_ns))
                .speed_cm_s;
            let rng = &mut self.proc_rng;
            // Running shakes the brain: up to 1.5x the resting walk.
            let sd = c.motion_sd_px * (1.0 + 0.5 * (speed / 10.0).tanh());
            let k = (2.0 * dt / c.motion_tau_s).sqrt() * sd;
            self.walk_px.0 += -self.walk_px.0 * dt / c.motion_tau_s + k * normal(rng);
            self.walk_px.1 += -self.walk_px.1 * dt / c.motion_tau_s + k * normal(rng);
            let relax = dt / JUMP_RELAX_S;
            self.jump_px.0 -= self.jump_px.0 * relax;
            self.jump_px.1 -= self.jump_px.1 * relax;
            if rng.random::<f64>() < c.motion_jump_rate_hz * dt {
                self.jump_px.0 += c.motion_jump_px * normal(rng);
                self.jump_px.1 += c.motion_jump_px * normal(rng);
            }
            let laser_sd = c.drift_percent / 100.0;
            self.laser_log += -self.laser_log * dt / LASER_TAU_S
                + laser_sd * (2.0 * dt / LASER_TAU_S).sqrt() * normal(rng);
            for a in &mut self.neuropil_a {
                *a += -*a * dt / NEUROPIL_TAU_S + (2.0 * dt / NEUROPIL_TAU_S).sqrt() * normal(rng);
            }
        }
    }

    /// Brain displacement (dy, dx) at the last integrated step, px.
    pub(crate) fn motion_px(&self) -> (f64, f64) {
        let bound = self.cfg.motion_max_px;
        if bound <= 0.0 {
            return (0.0, 0.0);
        }
        let t_s = self.steps as f64 * self.dt_s;
        // Breathing (~2.5 Hz) moves the brain mostly along y.
        let breath = 0.15 * (std::f64::consts::TAU * 2.5 * t_s).sin();
        let squash = |v: f64| bound * (v / bound).tanh();
        (
            squash(self.walk_px.0 + self.jump_px.0 + breath),
            squash(self.walk_px.1 + self.jump_px.1 + 0.3 * breath),
        )
    }

    /// Renders the frame at `t` into `out` from each cell's noiseless F (photons per frame at
    /// footprint weight 1) and the population's mean dF/F, which the neuropil partly follows.
    /// Returns the brain's displacement (dy, dx). Call `advance(t)` first.
    pub(crate) fn render(
        &mut self,
        t: RigTime,
        cell_f: &[f32],
        population_dff: f32,
        out: &mut [u16],
    ) -> (f64, f64) {
        let c = &self.cfg;
        let level = 1.0 + c.neuropil_coupling as f32 * population_dff;
        let a0 = (c.neuropil_fluctuation * self.neuropil_a[0]) as f32;
        let a1 = (c.neuropil_fluctuation * self.neuropil_a[1]) as f32;
        let [m0, m1] = &self.neuropil_modes;
        for (((v, &b), &x0), &x1) in self
            .ideal
            .iter_mut()
            .zip(&self.neuropil_base)
            .zip(m0)
            .zip(m1)
        {
            *v = b * (level + a0 * x0 + a1 * x1).max(0.0);
        }
        for (i, &f) in cell_f.iter().enumerate() {
            let (s, e) = (self.fp_start[i], self.fp_start[i + 1]);
            for (&p, &w) in self.fp_pixel[s..e].iter().zip(&self.fp_weight[s..e]) {
                if let Some(v) = self.ideal.get_mut(p as usize) {
                    *v += f * w;
                }
            }
        }
        let scale = ((-self.bleach_per_s * t.as_secs_f64()).exp() * self.laser_log.exp()) as f32;
        let motion = self.motion_px();
        self.detect(scale, motion, out);
        motion
    }

    /// Shifts, scales and detects `ideal` into `out`.
    fn detect(&mut self, scale: f32, motion: (f64, f64), out: &mut [u16]) {
        let (w, h) = (self.width, self.height);
        let gain = self.cfg.gain_adu_per_photon as f32;
        let read = self.cfg.read_noise_adu as f32;
        let offset = self.cfg.offset_adu as f32;
        let (gain2, read2) = (gain * gain, read * read);
        // Source position of output pixel (y, x) is (y - dy, x - dx).
        let (sy, sx) = (-motion.0, -motion.1);
        let (iy, ix) = (sy.floor() as i64, sx.floor() as i64);
        let (fy, fx) = ((sy - iy as f64) as f32, (sx - ix as f64) as f32);
        let (w00, w01, w10, w11) = (
            (1.0 - fy) * (1.0 - fx),
            (1.0 - fy) * fx,
            fy * (1.0 - fx),
            fy * fx,
        );
        let clamp_y = |y: i64| y.clamp(0, h as i64 - 1) as usize;
        let clamp_x = |x: i64| x.clamp(0, w as i64 - 1) as usize;
        let ideal = &self.ideal;
        let lambda = &mut self.row_lambda;
        let rng = &mut self.noise_rng;
        for (y, row_out) in out.chunks_mut(w).enumerate().take(h) {
            let r0 = clamp_y(y as i64 + iy) * w;
            let r1 = clamp_y(y as i64 + iy + 1) * w;
            for (x, l) in lambda.iter_mut().enumerate() {
                let c0 = clamp_x(x as i64 + ix);
                let c1 = clamp_x(x as i64 + ix + 1);
                let v = w00 * ideal[r0 + c0]
                    + w01 * ideal[r0 + c1]
                    + w10 * ideal[r1 + c0]
                    + w11 * ideal[r1 + c1];
                *l = (scale * v).max(0.0);
            }
            for (o, &lam) in row_out.iter_mut().zip(lambda.iter()) {
                let bits = rng.next_u64();
                let adu = if lam < EXACT_POISSON_BELOW {
                    let n = self.poisson.sample(lam, bits as u32) as f32;
                    offset + gain * n + read * normal_from_bits32((bits >> 32) as u32)
                } else {
                    offset + gain * lam + (gain2 * lam + read2).sqrt() * normal_from_bits(bits)
                };
                // Round half up; `as` saturates, and the clamp keeps NaN-free values in range.
                *o = (adu + 0.5).clamp(0.0, 65535.0) as u16;
            }
        }
    }
}
