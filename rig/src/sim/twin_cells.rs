//! A fitted twin as the mouse's cells (`source.kind = "twin"`, full mode): unit `u` of the
//! twin sets cell `u`'s rate, and spikes, calcium, the microscope and the whole imaging
//! pipeline run on as for the simulated population.
//!
//! Timing: twin frame `k` covers rig time `(k F, (k + 1) F]`, F the imaging frame period, so
//! the substeps an imaging frame at `(k + 1) F` gathers all come from twin frame `k` and its
//! truth rates are the twin's prediction. The twin steps once per frame, at the first substep
//! of it, given
//! - the view on screen in that substep (what the simulated cells would see; the gaze does not
//!   shift it: the twin takes the gaze as its perspective input), resampled to the twin's
//!   stimulus size when the display's view differs (bilinear, pixel centres aligned);
//! - the behaviour at `k F`: gaze azimuth and elevation (perspective), pupil radius in
//!   eye-camera px and running speed (modulation), z-scored by the configured or measured
//!   standardisation.
//!
//! Its output, the expected spike count per frame, becomes a rate in Hz (times the imaging
//! rate) held over the frame's substeps.

use twinloop_model::Twin;
use twinloop_model::train::BehaviourStandardisation;

use super::behaviour::{Behaviour, BehaviourSample};
use super::drive::{CellDrive, Substep};
use crate::vocab::clock::RigTime;

/// How long of the behaviour model the default standardisation is measured over, s.
pub(crate) const STANDARDISE_OVER_S: f64 = 600.0;

pub(crate) struct TwinCells {
    twin: Twin,
    frame_ns: i64,
    frame_hz: f32,
    /// The next twin frame to compute.
    next_frame: i64,
    view_size: (usize, usize),
    stimulus: Vec<u8>,
    standard: BehaviourStandardisation,
    px_per_mm: f64,
    predicted_hz: Vec<f32>,
    /// Recorded noise (`noise = { recorded = ... }`): the prediction plus a bank's residuals.
    recorded: Option<super::twin_residuals::ResidualDraw>,
    failure: Option<String>,
}

impl TwinCells {
    /// `view_size` is the display's `(height, width)`; `px_per_mm` the eye camera's scale.
    pub(crate) fn new(
        twin: Twin,
        imaging_rate_hz: f64,
        view_size: (usize, usize),
        standard: BehaviourStandardisation,
        px_per_mm: f64,
    ) -> TwinCells {
        let c = twin.config();
        let (units, px) = (c.units, c.stimulus_height * c.stimulus_width);
        TwinCells {
            twin,
            frame_ns: ((1e9 / imaging_rate_hz).round() as i64).max(1),
            frame_hz: imaging_rate_hz as f32,
            next_frame: 0,
            view_size,
            stimulus: vec![0; px],
            standard,
            px_per_mm,
            predicted_hz: vec![0.0; units],
            recorded: None,
            failure: None,
        }
    }

    /// Responses are the prediction plus `draw`'s residuals (rates in Hz for full mode's
    /// Poisson spikes; counts for fast mode's frames, [`CellDrive::frame_counts`]).
    pub(crate) fn with_recorded_noise(
        mut self,
        draw: super::twin_residuals::ResidualDraw,
    ) -> TwinCells {
        self.recorded = Some(draw);
        self
    }

    /// The twin's raw behaviour inputs from one sample: gaze azimuth, elevation (deg), pupil
    /// radius (eye-camera px), running speed (cm/s).
    fn raw(&self, b: &BehaviourSample) -> [f64; 4] {
        raw_behaviour(b, self.px_per_mm)
    }

    fn step_twin(&mut self, view: &[u8], b: &BehaviourSample) {
        let c = self.twin.config();
        let (h, w) = (c.stimulus_height, c.stimulus_width);
        resample_bilinear(view, self.view_size, &mut self.stimulus, (h, w));
        let r = self.raw(b);
        let s = &self.standard;
        let z = |v: f64, m: f64, sd: f64| ((v - m) / sd) as f32;
        let perspective = [
            z(r[0], s.perspective_mean[0], s.perspective_sd[0]),
            z(r[1], s.perspective_mean[1], s.perspective_sd[1]),
        ];
        let modulation = [
            z(r[2], s.modulation_mean[0], s.modulation_sd[0]),
            z(r[3], s.modulation_mean[1], s.modulation_sd[1]),
        ];
        match self.twin.step_u8(&self.stimulus, &perspective, &modulation) {
            Ok(counts) => {
                let counts = match &mut self.recorded {
                    Some(draw) => draw.respond(&counts).to_vec(),
                    None => counts,
                };
                for (hz, n) in self.predicted_hz.iter_mut().zip(counts) {
                    *hz = n * self.frame_hz;
                }
            }
            Err(e) => {
                self.predicted_hz.fill(0.0);
                if self.failure.is_none() {
                    tracing::error!(error = %e, "the twin could not step; its cells fall silent");
                    self.failure = Some(format!("the twin could not step: {e}"));
                }
            }
        }
    }
}

impl CellDrive for TwinCells {
    /// Nothing has been predicted before the first frame: silent.
    fn resting_rates(&self, rates_hz: &mut [f32]) {
        rates_hz.fill(0.0);
    }

    fn rates(&mut self, step: &Substep<'_>, behaviour: &mut Behaviour, rates_hz: &mut [f32]) {
        // The frame this substep ends in; every frame begun by then is stepped in turn (several
        // when the imaging rate is above the substep rate).
        let frame = (step.t_ns - 1).div_euclid(self.frame_ns);
        while self.next_frame <= frame {
            let b = behaviour.at(RigTime::from_nanos(self.next_frame * self.frame_ns));
            self.step_twin(step.view, &b);
            self.next_frame += 1;
        }
        for (r, &p) in rates_hz.iter_mut().zip(&self.predicted_hz) {
            *r = p;
        }
    }

    fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn frame_counts(&self) -> Option<&[u32]> {
        self.recorded.as_ref().map(|d| d.counts())
    }
}

/// Gaze azimuth, elevation (deg), pupil radius (eye-camera px), running speed (cm/s): the
/// twin's behaviour inputs before standardisation, as the truth's `behaviour.npy` has them.
fn raw_behaviour(b: &BehaviourSample, px_per_mm: f64) -> [f64; 4] {
    [
        b.gaze_azimuth_deg,
        b.gaze_elevation_deg,
        b.pupil_radius_mm * px_per_mm,
        b.speed_cm_s,
    ]
}

/// Each raw input's mean and s.d. over the behaviour's first `over_s` seconds (the model's:
/// [`STANDARDISE_OVER_S`]; a recording's: its length), sampled every `dt_s` (a constant column
/// is centred, not scaled).
pub(crate) fn measured_standardisation(
    behaviour: &mut Behaviour,
    dt_s: f64,
    px_per_mm: f64,
    over_s: f64,
) -> BehaviourStandardisation {
    let n = (over_s / dt_s).round().max(1.0) as i64;
    let (mut sum, mut sq) = ([0f64; 4], [0f64; 4]);
    for k in 0..n {
        let r = raw_behaviour(
            &behaviour.at(RigTime::from_secs_f64(k as f64 * dt_s)),
            px_per_mm,
        );
        for c in 0..4 {
            sum[c] += r[c];
            sq[c] += r[c] * r[c];
        }
    }
    let nf = n as f64;
    let mean = sum.map(|s| s / nf);
    let sd: Vec<f64> = (0..4)
        .map(|c| {
            let var = sq[c] / nf - mean[c] * mean[c];
            if var > 1e-12 { var.sqrt() } else { 1.0 }
        })
        .collect();
    BehaviourStandardisation {
        perspective_mean: [mean[0], mean[1]],
        perspective_sd: [sd[0], sd[1]],
        modulation_mean: [mean[2], mean[3]],
        modulation_sd: [sd[2], sd[3]],
    }
}

/// Resamples a `from` (height, width) u8 image to `to`, bilinearly with pixel centres aligned
/// (a copy when the sizes agree).
pub(crate) fn resample_bilinear(
    src: &[u8],
    from: (usize, usize),
    dst: &mut [u8],
    to: (usize, usize),
) {
    if from == to {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    let (fh, fw) = from;
    let (th, tw) = to;
    let coord = |i: usize, n_to: usize, n_from: usize| -> (usize, usize, f32) {
        let x =
            ((i as f32 + 0.5) * n_from as f32 / n_to as f32 - 0.5).clamp(0.0, (n_from - 1) as f32);
        let x0 = x.floor() as usize;
        (x0, (x0 + 1).min(n_from - 1), x - x0 as f32)
    };
    for r in 0..th {
        let (y0, y1, fy) = coord(r, th, fh);
        for c in 0..tw {
            let (x0, x1, fx) = coord(c, tw, fw);
            let p = |y: usize, x: usize| f32::from(src[y * fw + x]);
            let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
            let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
            dst[r * tw + c] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
    }
}
