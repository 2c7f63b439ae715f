//! The simulated cells' rate functions without noise: what plane 0's cells fire, in Hz, while a
//! clip is shown after a long gray screen, with the brain state neutral (not running, pupil at
//! its mean, latent 0: gain 1), the gaze straight ahead and no Poisson spikes. Held-out
//! accuracy is scored against these rates, so it measures the twin and not trial noise, and the
//! oracle core (`offline::oracle_core`) reads them as its features.
//!
//! The path is the simulator's own (`advance_brain`): the same receptive-field bank, `v1_rich`
//! stage and neurons, one substep of `neural_dt_s` at a time, a view taking effect at the first
//! substep at or after its onset.

use super::neurons::{BrainState, Neurons};
use super::receptive_field::RfBank;
use super::tuning::CellParams;
use super::{SimConfig, SimGeometry, SimMouse, v1};

/// Gray before each clip in [`NoiseFreeCells::binned_rates`], seconds: the band-pass filters
/// settle on the gray screen's (slightly off-zero) contrast, as after an inter-trial gray.
pub const PREROLL_S: f64 = 2.0;

/// Plane 0's cells, ready to be driven by clips (each from rest).
pub struct NoiseFreeCells {
    params: Vec<CellParams>,
    dt_s: f64,
    view_len: usize,
    rf: RfBank,
    rich: Option<v1::RichStage>,
    even: Vec<f32>,
    odd: Vec<f32>,
    gain: Vec<f32>,
}

impl SimMouse {
    /// Plane 0's cells as noise-free rate functions.
    pub fn noise_free_cells(&self) -> NoiseFreeCells {
        NoiseFreeCells::new(
            self.planes[0]
                .cells
                .iter()
                .map(|c| c.params.clone())
                .collect(),
            &self.cfg,
            &self.geom,
        )
    }
}

impl NoiseFreeCells {
    fn new(params: Vec<CellParams>, cfg: &SimConfig, geom: &SimGeometry) -> NoiseFreeCells {
        let refs: Vec<&CellParams> = params.iter().collect();
        let n = params.len();
        NoiseFreeCells {
            rf: RfBank::new(&refs, geom),
            rich: v1::RichStage::new(&refs, geom),
            params,
            dt_s: cfg.neural_dt_s,
            view_len: geom.view_width * geom.view_height,
            even: vec![0.0; n],
            odd: vec![0.0; n],
            gain: vec![1.0; n],
        }
    }

    pub fn cells(&self) -> usize {
        self.params.len()
    }

    /// The simulator's neural substep, seconds.
    pub fn dt_s(&self) -> f64 {
        self.dt_s
    }

    /// Bytes in one view frame (`view_height * view_width`, 128 = mean gray).
    pub fn view_len(&self) -> usize {
        self.view_len
    }

    /// Each cell's rate (Hz) at every substep while `frames` (view frames, frame-major, at
    /// `frame_hz`, the first shown at time 0) play and then gray, from rest (gray before time
    /// 0), at the substeps from `from_s` (≤ 0) to `to_s`: `[substep][cell]`, substep k at time
    /// k·dt (k = 0 already sees frame 0).
    pub fn substep_rates(
        &mut self,
        frames: &[u8],
        frame_hz: f64,
        from_s: f64,
        to_s: f64,
    ) -> Vec<f32> {
        let n = self.cells();
        let count = frames.len() / self.view_len.max(1);
        let refs: Vec<&CellParams> = self.params.iter().collect();
        let mut neurons = Neurons::new(&refs, self.dt_s);
        let mut rates = vec![0.0f32; n];
        let gray = vec![128u8; self.view_len];
        let state = BrainState::default();
        let first = (from_s.min(0.0) / self.dt_s).round() as i64;
        let last = (to_s / self.dt_s).round() as i64;
        let mut out = Vec::with_capacity((last - first + 1).max(0) as usize * n);
        let mut loaded = None;
        for k in first..=last {
            let t = k as f64 * self.dt_s;
            let shown = (t * frame_hz + 1e-6).floor();
            let index = (shown >= 0.0 && (shown as usize) < count).then_some(shown as usize);
            if loaded != Some(index) {
                let view = index.map_or(&gray[..], |i| {
                    &frames[i * self.view_len..(i + 1) * self.view_len]
                });
                self.rf.load_view(view, (0.0, 0.0));
                self.rf.project(&mut self.even, &mut self.odd);
                if let Some(r) = &mut self.rich {
                    r.apply(
                        view,
                        (0.0, 0.0),
                        &mut self.even,
                        &mut self.odd,
                        &mut self.gain,
                    );
                }
                loaded = Some(index);
            }
            let gain = self.rich.as_ref().map(|_| &self.gain[..]);
            neurons.step(&self.even, &self.odd, gain, &state, &mut rates);
            out.extend_from_slice(&rates);
        }
        out
    }

    /// Mean rate (Hz) per cell in `bins` bins of `1 / bin_hz` seconds, `[bin][cell]`: bin b
    /// holds the substeps at times in ((b − 1) / bin_hz, b / bin_hz], the span an imaging frame
    /// taken b / bin_hz after the clip's onset counts (so bin 0 is mostly gray before the
    /// onset), after [`PREROLL_S`] of gray from rest. This is the pairing of the designer's `stimulus_at` with
    /// `SimMouse::neural_frame` when `bin_hz` is the imaging rate and the response delay is 0.
    pub fn binned_rates(
        &mut self,
        frames: &[u8],
        frame_hz: f64,
        bin_hz: f64,
        bins: usize,
    ) -> Vec<f32> {
        let n = self.cells();
        // Substeps from −PREROLL_S + dt: as many as a mouse started at rest runs before an
        // onset PREROLL_S in.
        let from = -PREROLL_S + self.dt_s;
        let to = bins.saturating_sub(1) as f64 / bin_hz;
        let rates = self.substep_rates(frames, frame_hz, from, to);
        let first = (from / self.dt_s).round() as i64;
        let mut sum = vec![0.0f64; bins * n];
        let mut count = vec![0u32; bins];
        for (k, row) in rates.chunks_exact(n.max(1)).enumerate() {
            let t = (first + k as i64) as f64 * self.dt_s;
            let b = (t * bin_hz - 1e-6).ceil();
            if b < 0.0 {
                continue;
            }
            let b = b as usize;
            if b >= bins {
                break;
            }
            count[b] += 1;
            for (acc, &r) in sum[b * n..(b + 1) * n].iter_mut().zip(row) {
                *acc += f64::from(r);
            }
        }
        sum.chunks_exact(n.max(1))
            .zip(&count)
            .flat_map(|(row, &c)| row.iter().map(move |&s| (s / f64::from(c.max(1))) as f32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::v1::static_response;

    fn mouse(neurons: usize) -> SimMouse {
        let cfg = SimConfig {
            seed: 7,
            neurons,
            ..SimConfig::default()
        };
        SimMouse::new(&cfg, &SimGeometry::default()).expect("default sim")
    }

    /// A static full-contrast grating, as the u8 view.
    fn static_grating(geom: &SimGeometry, sf_cpd: f64, orientation_deg: f64) -> Vec<u8> {
        let (s, c) = orientation_deg.to_radians().sin_cos();
        (0..geom.view_width * geom.view_height)
            .map(|i| {
                let (az, el) =
                    geom.view_pixel_deg((i / geom.view_width) as f64, (i % geom.view_width) as f64);
                let phase = std::f64::consts::TAU * sf_cpd * (az * c + el * s);
                (127.5 * (1.0 + phase.sin())).round() as u8
            })
            .collect()
    }

    /// Held on screen, a static image drives every cell to the steady state the static model
    /// gives in closed form (sustained gain, Naka–Rushton, neutral gain); gray holds it at its
    /// baseline.
    #[test]
    fn noise_free_rates_reach_the_closed_form_steady_state() {
        let m = mouse(40);
        let geom = SimGeometry::default();
        let mut cells = m.noise_free_cells();
        let n = cells.cells();
        let image = static_grating(&geom, 0.04, 30.0);
        // 10 s: the slowest band-pass time constant is well under a second.
        let rates = cells.substep_rates(&image, 0.05, 0.0, 10.0);
        let last = &rates[rates.len() - n..];
        let mut driven = 0;
        for (i, c) in m.cells().iter().enumerate() {
            let want = static_response(&c.params, &SimConfig::default(), &geom, &image).rate_hz;
            let got = f64::from(last[i]);
            assert!(
                (got - want).abs() <= 1e-3 * want.max(1.0),
                "cell {i}: noise-free {got} Hz, closed form {want} Hz"
            );
            if want > 2.0 * c.params.baseline_rate_hz {
                driven += 1;
            }
        }
        assert!(driven > 0, "the grating drives no cell: the check is empty");
        let gray_view = vec![128u8; geom.view_width * geom.view_height];
        let gray = cells.substep_rates(&[], 30.0, 0.0, 10.0);
        for (i, c) in m.cells().iter().enumerate() {
            let want = static_response(&c.params, &SimConfig::default(), &geom, &gray_view).rate_hz;
            let got = f64::from(gray[gray.len() - n + i]);
            assert!(
                (got - want).abs() <= 1e-3 * want.max(1.0),
                "cell {i}: {got} vs {want}"
            );
        }
    }

    /// The bins are the spans an imaging frame counts: at 60 Hz substeps and 30 Hz bins, bin b
    /// is the mean of the substeps at times (2b − 1) / 60 and 2b / 60; bin 0's first is gray.
    #[test]
    fn bins_average_the_substeps_an_imaging_frame_counts() {
        let m = mouse(10);
        let geom = SimGeometry::default();
        let mut cells = m.noise_free_cells();
        assert!(
            (cells.dt_s() - 1.0 / 60.0).abs() < 1e-12,
            "test assumes 60 Hz substeps"
        );
        let n = cells.cells();
        let frames: Vec<u8> = (0..8)
            .flat_map(|k| static_grating(&geom, 0.04, 20.0 * f64::from(k)))
            .collect();
        let from = -PREROLL_S + cells.dt_s();
        let first = (from / cells.dt_s()).round() as i64;
        let sub = cells.substep_rates(&frames, 30.0, from, 10.0 / 30.0);
        let row = |k: i64| (k - first) as usize * n;
        let binned = cells.binned_rates(&frames, 30.0, 30.0, 11);
        for b in 0..11i64 {
            for i in 0..n {
                let want = 0.5 * (sub[row(2 * b - 1) + i] + sub[row(2 * b) + i]);
                let got = binned[b as usize * n + i];
                assert!(
                    (got - want).abs() < 1e-4,
                    "bin {b} cell {i}: {got} vs {want}"
                );
            }
        }
    }
}
