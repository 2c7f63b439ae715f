//! Pink-noise fields: random phases under a 1/f^α amplitude spectrum, inverse-FFT'd into a
//! periodic n × n field scaled to max |v| = 1.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::f64::consts::TAU;

/// Parameters of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PinkParams {
    pub seed: u64,
    /// Which independent field of this seed (a ChaCha stream).
    pub stream: u64,
    pub n: usize,
    pub exponent: f64,
    /// Orientation concentration κ of the spectrum around `direction_deg` (0 = isotropic).
    pub kappa: f64,
    pub direction_deg: f64,
}

/// An n × n field (row-major, row 0 = top, i.e. highest elevation), values in [−1, 1].
pub fn pink_field(p: &PinkParams) -> Vec<f32> {
    let n = p.n;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    rng.set_stream(p.stream);
    let theta = p.direction_deg.to_radians();
    let freq = |k: usize| {
        if k <= n / 2 {
            k as f64
        } else {
            k as f64 - n as f64
        }
    };
    let mut buf: Vec<Complex<f64>> = Vec::with_capacity(n * n);
    for row in 0..n {
        // Rows run downward, so the elevation frequency is minus the row frequency.
        let fy = -freq(row);
        for col in 0..n {
            let fx = freq(col);
            let phase = rng.random::<f64>() * TAU;
            let f = fx.hypot(fy);
            let amp = if f == 0.0 {
                0.0
            } else {
                let orient = if p.kappa > 0.0 {
                    let phi = fy.atan2(fx);
                    (p.kappa * ((2.0 * (phi - theta)).cos() - 1.0)).exp()
                } else {
                    1.0
                };
                f.powf(-p.exponent) * orient
            };
            buf.push(Complex::from_polar(amp, phase));
        }
    }
    let mut planner = FftPlanner::<f64>::new();
    let fft = planner.plan_fft_inverse(n);
    // Rows, then columns through a transpose.
    for row in buf.chunks_exact_mut(n) {
        fft.process(row);
    }
    let mut t = vec![Complex::new(0.0, 0.0); n * n];
    for r in 0..n {
        for c in 0..n {
            t[c * n + r] = buf[r * n + c];
        }
    }
    for col in t.chunks_exact_mut(n) {
        fft.process(col);
    }
    let mut v: Vec<f64> = (0..n * n).map(|i| t[(i % n) * n + i / n].re).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let max = v.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max);
    let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
    for x in &mut v {
        *x = (*x - mean) * scale;
    }
    v.into_iter().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PinkParams {
        PinkParams {
            seed: 7,
            stream: 0,
            n: 64,
            exponent: 1.0,
            kappa: 0.0,
            direction_deg: 0.0,
        }
    }

    /// Power at radial frequency band [f0, f1) of a field.
    fn band_power(v: &[f32], n: usize, f0: f64, f1: f64) -> f64 {
        let mut buf: Vec<Complex<f64>> = v.iter().map(|&x| Complex::new(x as f64, 0.0)).collect();
        let fft = FftPlanner::<f64>::new().plan_fft_forward(n);
        for row in buf.chunks_exact_mut(n) {
            fft.process(row);
        }
        let mut total = 0.0;
        let mut count = 0;
        for c in 0..n {
            let mut col: Vec<_> = (0..n).map(|r| buf[r * n + c]).collect();
            fft.process(&mut col);
            for (r, z) in col.iter().enumerate() {
                let fr = |k: usize| {
                    if k <= n / 2 {
                        k as f64
                    } else {
                        k as f64 - n as f64
                    }
                };
                let f = fr(r).hypot(fr(c));
                if f >= f0 && f < f1 {
                    total += z.norm_sqr();
                    count += 1;
                }
            }
        }
        total / count as f64
    }

    #[test]
    fn deterministic_bounded_and_zero_mean() {
        let a = pink_field(&params());
        assert_eq!(a, pink_field(&params()));
        assert_ne!(
            a,
            pink_field(&PinkParams {
                stream: 1,
                ..params()
            })
        );
        let max = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!((max - 1.0).abs() < 1e-6);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 1e-6);
    }

    #[test]
    fn spectrum_falls_as_one_over_f() {
        // Amplitude 1/f means power 1/f²: an octave up, a quarter of the power per component.
        let v = pink_field(&params());
        let ratio = band_power(&v, 64, 4.0, 5.0) / band_power(&v, 64, 8.0, 10.0);
        assert!((ratio - 4.0).abs() < 1.0, "power ratio {ratio}");
    }
}
