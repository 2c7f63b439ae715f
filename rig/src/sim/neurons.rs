//! Firing: from the spatial filters' outputs to rates and Poisson spikes, one substep at a time.
//!
//! Per cell, in the order the signal flows:
//! 1. a band-pass temporal filter on each quadrature channel: a fast minus (1 - sustained) times
//!    a slow first-order low-pass, the time constants a factor 4 apart around the preferred
//!    temporal frequency, normalised to unit gain there;
//! 2. direction selectivity (Adelson-Bergen style): each channel plus `ds` times the other's
//!    temporal derivative, which is a quarter-cycle shifted copy at the preferred frequency, so
//!    motion in the preferred direction adds and in the null direction cancels;
//! 3. simple cells half-rectify channel 1, complex cells take the pair's amplitude;
//! 4. a Naka-Rushton nonlinearity between baseline and baseline + max rate;
//! 5. a multiplicative state gain from running, pupil size and a shared latent fluctuation.
//!
//! Poisson spikes with mean rate x dt are drawn from the rates ([`draw_spikes`]), whatever set
//! them (`drive.rs`).

use super::random::{poisson_inversion, unit_from_bits};
use super::tuning::{CellParams, CellType};
use rand::RngCore;

/// What modulates every cell's gain in one substep.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct BrainState {
    /// Running speed, cm/s.
    pub speed_cm_s: f32,
    /// Pupil dilation in [-1, 1].
    pub pupil_z: f32,
    /// The shared latent fluctuation (unit variance).
    pub latent: f32,
}

/// The shared latent fluctuation: a unit-variance Ornstein-Uhlenbeck process on the neural
/// substep, from its own stream.
pub(crate) struct Latent {
    value: f64,
    decay: f64,
    kick: f64,
    rng: rand_chacha::ChaCha8Rng,
}

impl Latent {
    pub(crate) fn new(tau_s: f64, dt_s: f64, rng: rand_chacha::ChaCha8Rng) -> Latent {
        let decay = (-dt_s / tau_s).exp();
        Latent {
            value: 0.0,
            decay,
            kick: (1.0 - decay * decay).sqrt(),
            rng,
        }
    }

    /// Advances one substep and returns the new value.
    pub(crate) fn step(&mut self) -> f64 {
        self.value = self.decay * self.value + self.kick * super::random::normal(&mut self.rng);
        self.value
    }

    pub(crate) fn value(&self) -> f64 {
        self.value
    }
}

/// Temporal filters, nonlinearity and state coupling of every cell, structure-of-arrays.
pub(crate) struct Neurons {
    a_fast: Vec<f32>,
    a_slow: Vec<f32>,
    slow_weight: Vec<f32>,
    bandpass_norm: Vec<f32>,
    derivative_norm: Vec<f32>,
    ds: Vec<f32>,
    complex: Vec<bool>,
    baseline_hz: Vec<f32>,
    max_hz: Vec<f32>,
    c50_pow: Vec<f32>,
    exponent: Vec<f32>,
    run_k: Vec<f32>,
    pupil_k: Vec<f32>,
    latent_k: Vec<f32>,
    /// Filter state: [fast even, slow even, fast odd, slow odd, band-passed even, odd].
    state: Vec<[f32; 6]>,
}

/// Each cell's Poisson spike count in one substep of `dt_s` at `rates_hz`, one draw per cell in
/// cell order.
pub(crate) fn draw_spikes(rates_hz: &[f32], dt_s: f32, rng: &mut impl RngCore, spikes: &mut [u32]) {
    for (s, &rate) in spikes.iter_mut().zip(rates_hz) {
        *s = poisson_inversion(rate * dt_s, unit_from_bits(rng.next_u32()));
    }
}

/// Complex frequency response (re, im) of the unit-DC-gain low-pass `y = a y + (1 - a) x` at
/// `omega_dt` radians per substep.
fn lowpass_response(a: f64, omega_dt: f64) -> (f64, f64) {
    let (s, c) = omega_dt.sin_cos();
    // (1 - a) / (1 - a e^{-i w}) = (1 - a) / ((1 - a c) + i a s)
    let (re, im) = (1.0 - a * c, a * s);
    let den = re * re + im * im;
    ((1.0 - a) * re / den, -(1.0 - a) * im / den)
}

/// A cell's band-pass temporal filter: fast minus `slow_weight` times slow low-pass, scaled by
/// `norm` to unit gain at the preferred temporal frequency.
pub(crate) struct Bandpass {
    pub a_fast: f64,
    pub a_slow: f64,
    pub slow_weight: f64,
    pub norm: f64,
}

impl Bandpass {
    pub(crate) fn of(p: &CellParams, dt_s: f64) -> Bandpass {
        let omega = std::f64::consts::TAU * p.temporal_freq_hz;
        // Corner frequencies a factor 4 apart, geometric mean at the preferred frequency.
        let tau_fast = 0.5 / omega;
        let tau_slow = 2.0 / omega;
        let a_fast = (-dt_s / tau_fast).exp();
        let a_slow = (-dt_s / tau_slow).exp();
        let w = 1.0 - p.sustained_fraction;
        let (fr, fi) = lowpass_response(a_fast, omega * dt_s);
        let (sr, si) = lowpass_response(a_slow, omega * dt_s);
        let gain = ((fr - w * sr).powi(2) + (fi - w * si).powi(2))
            .sqrt()
            .max(1e-6);
        Bandpass {
            a_fast,
            a_slow,
            slow_weight: w,
            norm: 1.0 / gain,
        }
    }

    /// Gain of the whole temporal stage (band-pass, then direction selectivity) for a static
    /// input once the transient has passed: both low-passes settle on the input, and a
    /// constant has no derivative, so only the sustained part divided by 1 + ds is left.
    pub(crate) fn sustained_gain(p: &CellParams, dt_s: f64) -> f64 {
        let b = Bandpass::of(p, dt_s);
        b.norm * (1.0 - b.slow_weight) / (1.0 + p.direction_selectivity)
    }
}

impl Neurons {
    pub(crate) fn new(cells: &[&CellParams], dt_s: f64) -> Neurons {
        let n = cells.len();
        let mut me = Neurons {
            a_fast: Vec::with_capacity(n),
            a_slow: Vec::with_capacity(n),
            slow_weight: Vec::with_capacity(n),
            bandpass_norm: Vec::with_capacity(n),
            derivative_norm: Vec::with_capacity(n),
            ds: Vec::with_capacity(n),
            complex: Vec::with_capacity(n),
            baseline_hz: Vec::with_capacity(n),
            max_hz: Vec::with_capacity(n),
            c50_pow: Vec::with_capacity(n),
            exponent: Vec::with_capacity(n),
            run_k: Vec::with_capacity(n),
            pupil_k: Vec::with_capacity(n),
            latent_k: Vec::with_capacity(n),
            state: vec![[0.0; 6]; n],
        };
        for p in cells {
            let omega = std::f64::consts::TAU * p.temporal_freq_hz;
            let Bandpass {
                a_fast,
                a_slow,
                slow_weight: w,
                norm,
            } = Bandpass::of(p, dt_s);
            me.a_fast.push(a_fast as f32);
            me.a_slow.push(a_slow as f32);
            me.slow_weight.push(w as f32);
            me.bandpass_norm.push(norm as f32);
            // A first difference has gain 2 sin(w dt / 2) at w.
            me.derivative_norm
                .push((1.0 / (2.0 * (0.5 * omega * dt_s).sin())) as f32);
            me.ds.push(p.direction_selectivity as f32);
            me.complex.push(p.cell_type == CellType::Complex);
            me.baseline_hz.push(p.baseline_rate_hz as f32);
            me.max_hz.push(p.max_rate_hz as f32);
            me.c50_pow.push(p.c50.powf(p.nr_exponent) as f32);
            me.exponent.push(p.nr_exponent as f32);
            me.run_k.push(p.run_coupling as f32);
            me.pupil_k.push(p.pupil_coupling as f32);
            me.latent_k.push(p.latent_coupling as f32);
        }
        me
    }

    /// Advances one substep with spatial drives `even`, `odd` and the brain state; fills
    /// `rates_hz`. `gain`, when given (the `v1_rich` model), multiplies each cell's drive after
    /// the temporal stage: its normalisation by surround and pool.
    pub(crate) fn step(
        &mut self,
        even: &[f32],
        odd: &[f32],
        gain: Option<&[f32]>,
        state: &BrainState,
        rates_hz: &mut [f32],
    ) {
        let BrainState {
            speed_cm_s,
            pupil_z,
            latent,
        } = *state;
        let run = (speed_cm_s / 10.0).tanh();
        for i in 0..self.state.len().min(rates_hz.len()) {
            let s = &mut self.state[i];
            let (af, aw) = (self.a_fast[i], self.a_slow[i]);
            let (e, o) = (even[i], odd[i]);
            s[0] = af * s[0] + (1.0 - af) * e;
            s[1] = aw * s[1] + (1.0 - aw) * e;
            s[2] = af * s[2] + (1.0 - af) * o;
            s[3] = aw * s[3] + (1.0 - aw) * o;
            let norm = self.bandpass_norm[i];
            let be = norm * (s[0] - self.slow_weight[i] * s[1]);
            let bo = norm * (s[2] - self.slow_weight[i] * s[3]);
            let dn = self.derivative_norm[i];
            let (dbe, dbo) = (dn * (be - s[4]), dn * (bo - s[5]));
            s[4] = be;
            s[5] = bo;
            let ds = self.ds[i];
            let q1 = (be + ds * dbo) / (1.0 + ds);
            let mut drive = if self.complex[i] {
                let q2 = (bo - ds * dbe) / (1.0 + ds);
                (q1 * q1 + q2 * q2).sqrt()
            } else {
                q1.max(0.0)
            };
            if let Some(&g) = gain.and_then(|g| g.get(i)) {
                drive *= g;
            }
            let dp = if drive > 0.0 {
                drive.powf(self.exponent[i])
            } else {
                0.0
            };
            let driven = self.max_hz[i] * dp / (dp + self.c50_pow[i]);
            let gain =
                (1.0 + self.run_k[i] * run + self.pupil_k[i] * pupil_z + self.latent_k[i] * latent)
                    .max(0.05);
            rates_hz[i] = gain * (self.baseline_hz[i] + driven);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::{Stream, stream};

    fn cell(tf_hz: f64, ds: f64, cell_type: CellType) -> CellParams {
        CellParams {
            rf_azimuth_deg: 0.0,
            rf_elevation_deg: 0.0,
            rf_sigma_deg: 8.0,
            preferred_direction_deg: 0.0,
            preferred_orientation_deg: 0.0,
            spatial_freq_cpd: 0.04,
            temporal_freq_hz: tf_hz,
            phase_deg: 0.0,
            direction_selectivity: ds,
            cell_type,
            sustained_fraction: 0.2,
            baseline_rate_hz: 1.0,
            max_rate_hz: 20.0,
            c50: 0.3,
            nr_exponent: 2.0,
            run_coupling: 0.0,
            pupil_coupling: 0.0,
            latent_coupling: 0.0,
            f0_photons: 5.0,
            dff_per_spike: 0.2,
            v1: None,
        }
    }

    /// Mean rate of `p` driven by the quadrature pair of a unit grating drifting at `f_hz`
    /// (negative: the opposite direction), after the filters settle.
    fn mean_rate(p: &CellParams, f_hz: f64) -> f64 {
        let dt = 1.0 / 60.0;
        let mut n = Neurons::new(&[p], dt);
        let mut rate = [0f32];
        let state = BrainState::default();
        let (mut sum, mut count) = (0.0, 0);
        for k in 0..600 {
            let ph = std::f64::consts::TAU * f_hz * k as f64 * dt;
            n.step(
                &[ph.cos() as f32],
                &[ph.sin() as f32],
                None,
                &state,
                &mut rate,
            );
            if k >= 240 {
                sum += rate[0] as f64;
                count += 1;
            }
        }
        sum / count as f64
    }

    #[test]
    fn temporal_tuning_peaks_near_the_preferred_frequency() {
        for tf in [1.0, 2.0, 4.0] {
            let p = cell(tf, 0.0, CellType::Complex);
            let at_pref = mean_rate(&p, tf);
            assert!(
                at_pref > mean_rate(&p, tf / 4.0),
                "tf {tf}: slower drives more"
            );
            assert!(
                at_pref > mean_rate(&p, (tf * 3.5).min(12.0)),
                "tf {tf}: faster drives more"
            );
            // Unit drive at the preferred frequency is well above the semi-saturation.
            assert!(at_pref > 1.0 + 0.5 * 20.0, "tf {tf}: rate {at_pref}");
        }
    }

    #[test]
    fn direction_selectivity_favours_the_preferred_direction() {
        for cell_type in [CellType::Simple, CellType::Complex] {
            let selective = cell(2.0, 0.7, cell_type);
            let (pref, null) = (mean_rate(&selective, 2.0), mean_rate(&selective, -2.0));
            assert!(pref > 1.5 * null, "{cell_type:?}: {pref} vs {null}");
            let plain = cell(2.0, 0.0, cell_type);
            let (a, b) = (mean_rate(&plain, 2.0), mean_rate(&plain, -2.0));
            assert!(
                (a - b).abs() < 0.05 * a,
                "{cell_type:?} without ds: {a} vs {b}"
            );
        }
    }

    #[test]
    fn latent_is_a_unit_variance_slow_process() {
        let mut l = Latent::new(2.0, 1.0 / 60.0, stream(2, Stream::Latent));
        let v: Vec<f64> = (0..60_000).map(|_| l.step()).collect();
        let var = v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64;
        assert!((var - 1.0).abs() < 0.2, "variance {var}");
        let lag1 = v.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (v.len() - 1) as f64 / var;
        assert!(lag1 > 0.98, "lag-1 autocorrelation {lag1}");
    }
}
