//! The correctly specified frozen core for `twinloop bench loop --core oracle`: the simulated
//! mouse's own cells as the core. Its map has one channel at `1 x n` positions, column
//! [`column_of`]`(u)` holding the natural log of cell u's noise-free rate (Hz) over the span an
//! imaging frame counts ([`NoiseFreeCells::binned_rates`]), so the designer's log-linear Poisson
//! readout of cell u at that column with stimulus weight 1 and every other weight 0 is the cell
//! itself at neutral state. Cells are spread over the columns by a stride coprime to n, so
//! neighbouring columns hold unrelated cells (the simulator numbers cells along the cortex,
//! where neighbours share receptive fields, and the receptive-field map's centroid would
//! otherwise pull a readout halfway to a look-alike).
//! It is the positive control: the readouts' only unknowns are those weights (and where each cell
//! sits, which the receptive-field map finds as for any core), so information gain about them is
//! information about the responses.
//!
//! The pool renders its clips at the twin rate at this core's input size, the view's, so the core
//! sees what the mouse sees when the experiment shows the clips at the twin rate too.

use crate::sim::NoiseFreeCells;
use twinloop_model::frozen_core::{FrozenCore, FrozenCoreError, check_clips};

/// Rates below this (Hz) read as it before the log: a silent cell's feature stays finite.
const MIN_RATE_HZ: f32 = 1e-3;

/// The column of cell `u` of `n`: `u · a mod n` for the first `a ≥ 0.618 n` coprime to n.
pub fn column_of(u: usize, n: usize) -> usize {
    if n <= 2 {
        return u;
    }
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut a = ((n as f64 * 0.618) as usize).max(2);
    while gcd(a, n) != 1 {
        a += 1;
    }
    (u * a) % n
}

pub struct OracleCore {
    cells: NoiseFreeCells,
    /// The cell at each column.
    order: Vec<usize>,
    twin_hz: f64,
    /// `(height, width)`, the view's.
    input: (usize, usize),
}

impl OracleCore {
    /// `cells` of a mouse whose view is `view_height x view_width`; clips come at `twin_hz`.
    pub fn new(
        cells: NoiseFreeCells,
        view_height: usize,
        view_width: usize,
        twin_hz: f64,
    ) -> OracleCore {
        let n = cells.cells();
        let mut order = vec![0; n];
        for u in 0..n {
            order[column_of(u, n)] = u;
        }
        OracleCore {
            cells,
            order,
            twin_hz,
            input: (view_height, view_width),
        }
    }

    /// `out[frame][column]`.
    fn log_rates(&mut self, frames: &[u8], t: usize, out: &mut [f32]) {
        let n = self.order.len();
        let rates = self
            .cells
            .binned_rates(frames, self.twin_hz, self.twin_hz, t);
        for (o, r) in out.chunks_exact_mut(n).zip(rates.chunks_exact(n)) {
            for (col, &u) in self.order.iter().enumerate() {
                o[col] = r[u].max(MIN_RATE_HZ).ln();
            }
        }
    }
}

impl FrozenCore for OracleCore {
    fn describe(&self) -> String {
        format!(
            "oracle: the simulated mouse's {} cells' noise-free log rates, 1 channel at 1x{} positions",
            self.cells.cells(),
            self.cells.cells()
        )
    }

    fn channels(&self) -> usize {
        1
    }

    fn grid(&self) -> (usize, usize) {
        (1, self.cells.cells())
    }

    fn input_size(&self) -> (usize, usize) {
        self.input
    }

    fn clips(
        &mut self,
        frames: &[u8],
        n: usize,
        t: usize,
        out: &mut [f32],
    ) -> Result<(), FrozenCoreError> {
        let px = self.input.0 * self.input.1;
        let per_out = t * self.cells.cells();
        check_clips(frames, out, n, t * px, per_out)?;
        for (clip, o) in frames
            .chunks_exact(t * px)
            .zip(out.chunks_exact_mut(per_out))
        {
            self.log_rates(clip, t, o);
        }
        Ok(())
    }

    fn gray(&mut self, out: &mut [f32]) -> Result<(), FrozenCoreError> {
        self.log_rates(&[], 1, out);
        Ok(())
    }

    /// Nearest position, not bilinear: a readout between two columns reads one cell, not a mix
    /// of two unrelated ones.
    fn sample(&self, map: &[f32], _gr: f32, gc: f32, out: &mut [f32]) {
        let n = self.cells.cells();
        let col = if gc.is_finite() {
            (gc.round().max(0.0) as usize).min(n.saturating_sub(1))
        } else {
            0
        };
        if let (Some(o), Some(&v)) = (out.first_mut(), map.get(col)) {
            *o = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimConfig, SimGeometry, SimMouse};
    use crate::vocab::clock::RigTime;
    use twinloop_model::design::{Posterior, PosteriorConfig};

    const HZ: f64 = 30.0;

    /// A mouse whose gain ignores running, pupil and the latent state, and whose gaze does not
    /// move the view: its rates are then its rate functions of the stimulus alone.
    fn still_mouse(neurons: usize) -> (SimMouse, SimGeometry) {
        let mut cfg = SimConfig {
            seed: 11,
            neurons,
            ..SimConfig::default()
        };
        cfg.cells.run_coupling = [0.0, 0.0];
        cfg.cells.pupil_coupling = [0.0, 0.0];
        cfg.cells.latent_coupling = [0.0, 0.0];
        cfg.cells.gaze_shifts_view = false;
        let geom = SimGeometry {
            imaging_rate_hz: HZ,
            ..SimGeometry::default()
        };
        (SimMouse::new(&cfg, &geom).expect("sim"), geom)
    }

    /// Drifting gratings turning every 20 frames, `frames` frames at 30 Hz on the view.
    fn clip(geom: &SimGeometry, frames: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(frames * geom.view_width * geom.view_height);
        for k in 0..frames {
            let dir = (45.0 * (k / 20) as f64).to_radians();
            let t = k as f64 / HZ;
            for i in 0..geom.view_width * geom.view_height {
                let (az, el) =
                    geom.view_pixel_deg((i / geom.view_width) as f64, (i % geom.view_width) as f64);
                let phase =
                    std::f64::consts::TAU * (0.04 * (az * dir.cos() + el * dir.sin()) - 2.0 * t);
                out.push((127.5 * (1.0 + 0.6 * phase.sin())).round() as u8);
            }
        }
        out
    }

    /// The oracle's features are the log of the rates the simulated mouse itself fires, frame
    /// by imaging frame, when shown the same clip (its own path: `show`, `neural_frame`); and a
    /// log-linear Poisson readout fitted on them to noise-free counts recovers the true weights
    /// (stimulus weight 1, behaviour and bias 0).
    #[test]
    fn the_oracle_core_is_the_simulated_mouse() {
        let (mut mouse, geom) = still_mouse(24);
        let n = mouse.cells().len();
        let frames = 160;
        let clip = clip(&geom, frames);
        let mut core = OracleCore::new(
            mouse.noise_free_cells(),
            geom.view_height,
            geom.view_width,
            HZ,
        );
        assert_eq!(FrozenCore::positions(&core), n);
        let mut features = vec![0.0f32; frames * n];
        core.clips(&clip, 1, frames, &mut features).expect("clip");
        // The mouse: gray from rest for the preroll, then the clip at 30 Hz, imaging at 30 Hz.
        let px = geom.view_width * geom.view_height;
        let onset = crate::sim::NOISE_FREE_PREROLL_S;
        let (mut spikes, mut rates) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut t = 0usize;
        while (t as f64) / HZ < onset {
            mouse.neural_frame(
                RigTime::from_secs_f64(t as f64 / HZ),
                &mut spikes,
                &mut rates,
            );
            t += 1;
        }
        for k in 0..frames {
            mouse.show(
                &clip[k * px..(k + 1) * px],
                RigTime::from_secs_f64(onset + k as f64 / HZ),
            );
        }
        let mut worst = 0.0f64;
        let mut observed = vec![0.0f32; frames * n];
        for m in 0..frames {
            mouse.neural_frame(
                RigTime::from_secs_f64(onset + m as f64 / HZ),
                &mut spikes,
                &mut rates,
            );
            observed[m * n..(m + 1) * n].copy_from_slice(&rates);
            for u in 0..n {
                let want = f64::from(rates[u]);
                let got = f64::from(features[m * n + column_of(u, n)]).exp();
                worst = worst.max((got - want).abs() / want.max(1e-3));
            }
        }
        assert!(worst < 1e-4, "worst relative difference {worst}");
        // Noise-free expected counts over 1 s per frame (the length only scales the evidence,
        // so the prior's pull is negligible); features [stimulus, running, pupil, bias].
        let dt = 1.0;
        let mut post = Posterior::new(n, PosteriorConfig::isotropic(4, 100.0)).expect("posterior");
        for u in 0..n {
            let xs: Vec<f32> = (0..frames)
                .flat_map(|m| [features[m * n + column_of(u, n)], 0.0, 0.0, 1.0])
                .collect();
            let ys: Vec<f32> = (0..frames)
                .map(|m| observed[m * n + u] * dt as f32)
                .collect();
            post.refit_unit(u, &xs, &ys, dt).expect("refit");
            let w = post.mean(u);
            assert!(
                (w[0] - 1.0).abs() < 0.01,
                "cell {u}: stimulus weight {}",
                w[0]
            );
            assert!(w[3].abs() < 0.05, "cell {u}: bias {}", w[3]);
        }
    }

    /// Every cell has its own column, and neighbouring columns hold cells far apart in the
    /// simulator's numbering.
    #[test]
    fn columns_are_a_permutation_that_separates_neighbours() {
        for n in [3, 10, 60, 64, 97, 200] {
            let mut cols: Vec<usize> = (0..n).map(|u| column_of(u, n)).collect();
            let mut order = vec![0; n];
            for (u, &c) in cols.iter().enumerate() {
                order[c] = u;
            }
            cols.sort_unstable();
            assert_eq!(cols, (0..n).collect::<Vec<_>>(), "n {n}");
            if n >= 10 {
                for w in order.windows(2) {
                    let d = w[0].abs_diff(w[1]).min(n - w[0].abs_diff(w[1]));
                    assert!(d > 1, "n {n}: cells {} and {} side by side", w[0], w[1]);
                }
            }
        }
    }

    /// Between two columns the readout reads one cell, the nearer.
    #[test]
    fn sampling_reads_the_nearest_cell() {
        let (mouse, geom) = still_mouse(5);
        let core = OracleCore::new(
            mouse.noise_free_cells(),
            geom.view_height,
            geom.view_width,
            HZ,
        );
        let map = [10.0, 20.0, 30.0, 40.0, 50.0];
        let mut out = [0.0f32];
        for (gc, want) in [
            (0.0, 10.0),
            (1.4, 20.0),
            (1.6, 30.0),
            (-3.0, 10.0),
            (9.0, 50.0),
        ] {
            core.sample(&map, 0.0, gc, &mut out);
            assert_eq!(out[0], want, "column {gc}");
        }
    }
}
