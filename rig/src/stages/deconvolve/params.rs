//! Deconvolution parameters: validated AR(1)/AR(2) models, and their estimation from indicator
//! time constants or from the data (autocovariance for g, high-frequency PSD for the noise σ),
//! following `oasis.functions` (`tau_to_ar1`, `tau_to_ar2`, `estimate_time_constant`, `GetSn`).

use serde::{Deserialize, Serialize};

use super::DeconvolveError;

/// AR(1) model `c_t = g c_{t-1} + s_t` with sparsity penalty λ and minimal spike size s_min.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Ar1Raw", into = "Ar1Raw")]
pub struct Ar1Params {
    g: f64,
    lambda: f64,
    s_min: f64,
}

/// AR(2) model `c_t = g1 c_{t-1} + g2 c_{t-2} + s_t` with penalty λ and minimal spike size s_min.
///
/// The kernel must be a difference of two decaying exponentials: the roots
/// `d = (g1 + √(g1² + 4 g2)) / 2` (decay) and `r = (g1 − √(g1² + 4 g2)) / 2` (rise) must satisfy
/// `1 > d > r > 0` and `d − r ≥ 1e-3` (closer roots lose precision like `ε / (d − r)²`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Ar2Raw", into = "Ar2Raw")]
pub struct Ar2Params {
    g1: f64,
    g2: f64,
    lambda: f64,
    s_min: f64,
}

/// Either AR model; what a bank or the CLI is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ar", rename_all = "lowercase")]
pub enum Params {
    /// AR(1).
    Ar1(Ar1Params),
    /// AR(2).
    Ar2(Ar2Params),
}

/// Smallest accepted gap between the AR(2) decay and rise roots.
pub const MIN_ROOT_GAP: f64 = 1e-3;

fn check(
    name: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), DeconvolveError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(DeconvolveError::Parameter {
            name,
            value,
            expected,
        })
    }
}

fn check_penalties(lambda: f64, s_min: f64) -> Result<(), DeconvolveError> {
    check("lambda", lambda, lambda >= 0.0, "a finite value >= 0")?;
    check("s_min", s_min, s_min >= 0.0, "a finite value >= 0")
}

impl Ar1Params {
    /// Checks `0 < g < 1`, `λ ≥ 0`, `s_min ≥ 0` (all finite).
    pub fn new(g: f64, lambda: f64, s_min: f64) -> Result<Self, DeconvolveError> {
        check("g", g, g > 0.0 && g < 1.0, "0 < g < 1")?;
        check_penalties(lambda, s_min)?;
        Ok(Self { g, lambda, s_min })
    }
    /// Decay per frame.
    pub fn g(&self) -> f64 {
        self.g
    }
    /// Sparsity penalty λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
    /// Minimal non-zero spike size.
    pub fn s_min(&self) -> f64 {
        self.s_min
    }
}

impl Ar2Params {
    /// Checks the root conditions in the type's docs, `λ ≥ 0`, `s_min ≥ 0` (all finite).
    pub fn new(g1: f64, g2: f64, lambda: f64, s_min: f64) -> Result<Self, DeconvolveError> {
        check("g1", g1, g1 > 0.0 && g1 < 2.0, "0 < g1 < 2")?;
        check("g2", g2, g2 < 0.0, "g2 < 0 (for g2 = 0 use AR(1))")?;
        let disc = g1 * g1 + 4.0 * g2;
        check(
            "g1^2 + 4 g2",
            disc,
            disc > 0.0,
            "> 0 (real, distinct decay and rise roots)",
        )?;
        let (d, r) = ((g1 + disc.sqrt()) / 2.0, (g1 - disc.sqrt()) / 2.0);
        check("decay root d", d, d < 1.0, "< 1 (a decaying kernel)")?;
        check("rise root r", r, r > 0.0, "> 0")?;
        check(
            "d - r",
            d - r,
            d - r >= MIN_ROOT_GAP,
            ">= 1e-3 (rise and decay time constants too close)",
        )?;
        check_penalties(lambda, s_min)?;
        Ok(Self {
            g1,
            g2,
            lambda,
            s_min,
        })
    }
    /// First AR coefficient.
    pub fn g1(&self) -> f64 {
        self.g1
    }
    /// Second AR coefficient (negative).
    pub fn g2(&self) -> f64 {
        self.g2
    }
    /// Decay and rise roots `(d, r)`, `1 > d > r > 0`.
    pub fn roots(&self) -> (f64, f64) {
        let q = (self.g1 * self.g1 + 4.0 * self.g2).sqrt();
        ((self.g1 + q) / 2.0, (self.g1 - q) / 2.0)
    }
    /// Sparsity penalty λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
    /// Minimal non-zero spike size.
    pub fn s_min(&self) -> f64 {
        self.s_min
    }
}

impl Params {
    /// AR order, 1 or 2.
    pub fn order(&self) -> u8 {
        match self {
            Params::Ar1(_) => 1,
            Params::Ar2(_) => 2,
        }
    }
    /// Same model with another λ and s_min.
    pub fn with_penalties(&self, lambda: f64, s_min: f64) -> Result<Self, DeconvolveError> {
        Ok(match self {
            Params::Ar1(p) => Params::Ar1(Ar1Params::new(p.g, lambda, s_min)?),
            Params::Ar2(p) => Params::Ar2(Ar2Params::new(p.g1, p.g2, lambda, s_min)?),
        })
    }
    /// Squared ℓ2 norm of the calcium response to a unit spike, `Σ_k h_k²`.
    pub fn kernel_energy(&self) -> f64 {
        match self {
            Params::Ar1(p) => 1.0 / (1.0 - p.g * p.g),
            Params::Ar2(p) => {
                // h_k = (d^{k+1} − r^{k+1}) / (d − r)
                let (d, r) = p.roots();
                let s = d * d / (1.0 - d * d) - 2.0 * d * r / (1.0 - d * r) + r * r / (1.0 - r * r);
                s / ((d - r) * (d - r))
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ar1Raw {
    g: f64,
    #[serde(default)]
    lambda: f64,
    #[serde(default)]
    s_min: f64,
}
impl TryFrom<Ar1Raw> for Ar1Params {
    type Error = DeconvolveError;
    fn try_from(r: Ar1Raw) -> Result<Self, Self::Error> {
        Ar1Params::new(r.g, r.lambda, r.s_min)
    }
}
impl From<Ar1Params> for Ar1Raw {
    fn from(p: Ar1Params) -> Self {
        Ar1Raw {
            g: p.g,
            lambda: p.lambda,
            s_min: p.s_min,
        }
    }
}
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ar2Raw {
    g1: f64,
    g2: f64,
    #[serde(default)]
    lambda: f64,
    #[serde(default)]
    s_min: f64,
}
impl TryFrom<Ar2Raw> for Ar2Params {
    type Error = DeconvolveError;
    fn try_from(r: Ar2Raw) -> Result<Self, Self::Error> {
        Ar2Params::new(r.g1, r.g2, r.lambda, r.s_min)
    }
}
impl From<Ar2Params> for Ar2Raw {
    fn from(p: Ar2Params) -> Self {
        Ar2Raw {
            g1: p.g1,
            g2: p.g2,
            lambda: p.lambda,
            s_min: p.s_min,
        }
    }
}

/// AR(1) decay per frame from the indicator decay time constant: `g = exp(−1 / (τ f_s))`.
pub fn g_from_tau(tau_decay_s: f64, frame_rate_hz: f64) -> Result<f64, DeconvolveError> {
    check(
        "tau",
        tau_decay_s,
        tau_decay_s > 0.0,
        "a decay time constant > 0 s",
    )?;
    check(
        "fs",
        frame_rate_hz,
        frame_rate_hz > 0.0,
        "a frame rate > 0 Hz",
    )?;
    Ok((-1.0 / (tau_decay_s * frame_rate_hz)).exp())
}

/// AR(2) coefficients `(g1, g2) = (d + r, −d r)` for the kernel `exp(−t/τ_d) − exp(−t/τ_r)`.
pub fn g_from_taus(
    tau_decay_s: f64,
    tau_rise_s: f64,
    frame_rate_hz: f64,
) -> Result<(f64, f64), DeconvolveError> {
    let d = g_from_tau(tau_decay_s, frame_rate_hz)?;
    check(
        "tau rise",
        tau_rise_s,
        tau_rise_s > 0.0 && tau_rise_s < tau_decay_s,
        "0 < rise < decay time constant",
    )?;
    let r = (-1.0 / (tau_rise_s * frame_rate_hz)).exp();
    Ok((d + r, -d * r))
}

fn finite_samples(y: &[f64]) -> Vec<f64> {
    y.iter().copied().filter(|v| v.is_finite()).collect()
}

/// Noise standard deviation σ from the power spectral density's high-frequency part, as OASIS's
/// and CaImAn's `GetSn(y, range_ff=[0.25, 0.5], method="mean")`.
///
/// Welch's estimate as `scipy.signal.welch` defaults: periodic Hann windows of 256 samples
/// (the whole trace if shorter), 50 % overlap, per-segment mean removed, one-sided density at
/// unit sampling rate; σ = √(mean(P(f) / 2)) over 0.25 < f < 0.5 cycles/frame, where white noise
/// is flat. Non-finite samples are dropped first (as OASIS does).
pub fn noise_sigma(y: &[f64]) -> Result<f64, DeconvolveError> {
    let y = finite_samples(y);
    let n = y.len();
    if n < 8 {
        return Err(DeconvolveError::Estimation {
            what: "noise",
            why: format!("{n} finite samples, need at least 8"),
        });
    }
    let nper = n.min(256);
    let step = nper - nper / 2;
    let nseg = (n - nper) / step + 1;
    let tau = std::f64::consts::TAU;
    let window: Vec<f64> = (0..nper)
        .map(|j| 0.5 - 0.5 * (tau * j as f64 / nper as f64).cos())
        .collect();
    let scale = 1.0 / window.iter().map(|w| w * w).sum::<f64>();
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..nper)
        .map(|j| tau * j as f64 / nper as f64)
        .map(|a| (a.cos(), a.sin()))
        .unzip();
    // Bins k / nper strictly inside (0.25, 0.5).
    let bins: Vec<usize> = (1..nper)
        .filter(|&k| 4 * k > nper && 2 * k < nper)
        .collect();
    if bins.is_empty() {
        return Err(DeconvolveError::Estimation {
            what: "noise",
            why: "trace too short for a spectrum".into(),
        });
    }
    let mut psd = vec![0.0; bins.len()];
    let mut seg = vec![0.0; nper];
    for s in 0..nseg {
        let x = &y[s * step..s * step + nper];
        let mean = x.iter().sum::<f64>() / nper as f64;
        for ((o, &v), &w) in seg.iter_mut().zip(x).zip(&window) {
            *o = (v - mean) * w;
        }
        for (p, &k) in psd.iter_mut().zip(&bins) {
            let (mut re, mut im) = (0.0, 0.0);
            for (j, &v) in seg.iter().enumerate() {
                let idx = (j * k) % nper;
                re += v * cos[idx];
                im -= v * sin[idx];
            }
            // One-sided density: interior bins count twice.
            *p += 2.0 * scale * (re * re + im * im);
        }
    }
    let mean_psd = psd.iter().sum::<f64>() / (psd.len() * nseg) as f64;
    Ok((mean_psd / 2.0).sqrt())
}

/// AR coefficients from the autocovariance, as OASIS's `estimate_time_constant(y, p, sn, lags)`
/// (linear least squares on the Yule–Walker equations with the noise variance σ² removed from
/// lag 0), for `order` 1 or 2. Non-finite samples are dropped first.
///
/// Differences from OASIS: roots above 1 become 0.95 and negative roots 0.15 *without* OASIS's
/// random jitter, so the result is deterministic; AR(2) fits with complex roots (an oscillating
/// kernel, usually a too short or too noisy trace) are an error rather than a degenerate kernel.
pub fn estimate_ar(
    y: &[f64],
    order: u8,
    sigma: f64,
    lags: usize,
) -> Result<Vec<f64>, DeconvolveError> {
    let p = match order {
        1 | 2 => order as usize,
        _ => {
            return Err(DeconvolveError::Estimation {
                what: "AR coefficients",
                why: format!("order {order}, need 1 or 2"),
            });
        }
    };
    let mut y = finite_samples(y);
    let lags = lags.max(1) + p;
    let n = y.len();
    if n < 2 * (lags + 1) {
        return Err(DeconvolveError::Estimation {
            what: "AR coefficients",
            why: format!("{n} finite samples, need at least {}", 2 * (lags + 1)),
        });
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    y.iter_mut().for_each(|v| *v -= mean);
    let xc: Vec<f64> = (0..=lags)
        .map(|i| {
            y[i..]
                .iter()
                .zip(&y[..n - i])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let var_noise = sigma * sigma;
    // Rows i = 0..lags: Σ_j (xc[|i−j|] − σ² δ_ij) g_j = xc[i+1]; solve the normal equations.
    let row = |i: usize, j: usize| xc[i.abs_diff(j)] - if i == j { var_noise } else { 0.0 };
    let mut ata = [[0.0; 2]; 2];
    let mut atb = [0.0; 2];
    for i in 0..lags {
        let r = [row(i, 0), row(i, 1)];
        for ((ata_row, atb_a), ra) in ata.iter_mut().zip(&mut atb).zip(&r).take(p) {
            *atb_a += ra * xc[i + 1];
            for (x, rb) in ata_row.iter_mut().zip(&r).take(p) {
                *x += ra * rb;
            }
        }
    }
    let fix = |root: f64| {
        if root > 1.0 {
            0.95
        } else if root < 0.0 {
            0.15
        } else {
            root
        }
    };
    let singular = || DeconvolveError::Estimation {
        what: "AR coefficients",
        why: "flat autocovariance (constant trace?)".into(),
    };
    if p == 1 {
        if ata[0][0] <= 0.0 {
            return Err(singular());
        }
        return Ok(vec![fix(atb[0] / ata[0][0])]);
    }
    let det = ata[0][0] * ata[1][1] - ata[0][1] * ata[1][0];
    if det.abs() <= f64::EPSILON * ata[0][0] * ata[1][1] {
        return Err(singular());
    }
    let g1 = (atb[0] * ata[1][1] - ata[0][1] * atb[1]) / det;
    let g2 = (ata[0][0] * atb[1] - ata[1][0] * atb[0]) / det;
    let disc = g1 * g1 + 4.0 * g2;
    if disc < 0.0 {
        return Err(DeconvolveError::Estimation {
            what: "AR(2) coefficients",
            why: format!(
                "fit g1 = {g1:.4}, g2 = {g2:.4} has complex roots; give time constants or use AR(1)"
            ),
        });
    }
    let (d, r) = (fix((g1 + disc.sqrt()) / 2.0), fix((g1 - disc.sqrt()) / 2.0));
    Ok(vec![d + r, -d * r])
}

/// λ from the noise level: `λ = z σ ‖h‖₂`, with `h` the calcium response to a unit spike.
///
/// Under noise alone the correlation `(Kᵀ n)_t` that a spike at `t` must beat has standard
/// deviation `σ ‖h‖₂`, so `z` sets roughly how many noise standard deviations a spike needs.
/// OASIS starts its noise-constrained AR(2) search from `z = 2`.
pub fn lambda_from_noise(sigma: f64, params: &Params, z: f64) -> Result<f64, DeconvolveError> {
    check("sigma", sigma, sigma >= 0.0, "a noise level >= 0")?;
    check("z", z, z >= 0.0, "a factor >= 0")?;
    Ok(z * sigma * params.kernel_energy().sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic AR trace with Gaussian-ish noise (sum of uniforms from an LCG).
    fn ar_trace(g: &[f64], n: usize, sigma: f64, rate: f64, seed: u64) -> Vec<f64> {
        let mut state = seed;
        let mut uni = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut c = vec![0.0; n];
        let mut y = vec![0.0; n];
        for t in 0..n {
            let spike = if uni() < rate { 1.0 } else { 0.0 };
            let mut v = spike;
            for (k, gk) in g.iter().enumerate() {
                if t > k {
                    v += gk * c[t - 1 - k];
                }
            }
            c[t] = v;
            let gauss = (0..12).map(|_| uni()).sum::<f64>() - 6.0;
            y[t] = v + sigma * gauss;
        }
        y
    }

    #[test]
    fn tau_conversions_round_trip() {
        let g = g_from_tau(1.0, 30.0).unwrap();
        assert!((g - (-1.0f64 / 30.0).exp()).abs() < 1e-15);
        let (g1, g2) = g_from_taus(1.0, 0.1, 30.0).unwrap();
        let p = Ar2Params::new(g1, g2, 0.0, 0.0).unwrap();
        let (d, r) = p.roots();
        assert!(
            (d - (-1.0f64 / 30.0).exp()).abs() < 1e-12 && (r - (-1.0f64 / 3.0).exp()).abs() < 1e-12
        );
        assert!(g_from_taus(0.1, 1.0, 30.0).is_err());
    }

    #[test]
    fn invalid_parameters_are_named() {
        let e = Ar1Params::new(1.2, 0.0, 0.0).unwrap_err();
        assert!(e.to_string().contains("g = 1.2"), "{e}");
        assert!(Ar1Params::new(0.9, -1.0, 0.0).is_err());
        assert!(Ar1Params::new(0.9, 0.0, f64::NAN).is_err());
        assert!(Ar2Params::new(1.0, 0.3, 0.0, 0.0).is_err()); // g2 > 0
        assert!(Ar2Params::new(1.0, -0.3, 0.0, 0.0).is_err()); // complex roots
        assert!(Ar2Params::new(1.9, -0.9025, 0.0, 0.0).is_err()); // equal roots
    }

    #[test]
    fn params_json_round_trip_validates() {
        let p = Params::Ar2(Ar2Params::new(1.6, -0.63, 0.1, 0.0).unwrap());
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Params>(&s).unwrap(), p);
        assert!(serde_json::from_str::<Params>(r#"{"ar":"ar1","g":1.5}"#).is_err());
        assert!(serde_json::from_str::<Params>(r#"{"ar":"ar1","g":0.5,"bogus":1}"#).is_err());
    }

    #[test]
    fn noise_of_white_noise_is_sigma() {
        let y = ar_trace(&[0.0], 20_000, 0.3, 0.0, 7);
        let s = noise_sigma(&y).unwrap();
        assert!((s - 0.3).abs() < 0.01, "sigma {s}");
    }

    #[test]
    fn recovers_ar1_g_and_sigma() {
        // Spikes add some high-frequency power too (GetSn's known upward bias): keep them sparse.
        let y = ar_trace(&[0.95], 30_000, 0.3, 0.01, 11);
        let sn = noise_sigma(&y).unwrap();
        assert!((sn - 0.3).abs() < 0.015, "sigma {sn}");
        let g = estimate_ar(&y, 1, sn, 10).unwrap();
        assert!((g[0] - 0.95).abs() < 0.01, "g {g:?}");
    }

    #[test]
    fn recovers_ar2_roots() {
        let (g1, g2) = g_from_taus(1.0, 0.1, 30.0).unwrap();
        let y = ar_trace(&[g1, g2], 60_000, 0.2, 0.01, 3);
        let sn = noise_sigma(&y).unwrap();
        assert!((sn - 0.2).abs() < 0.01, "sigma {sn}");
        let g = estimate_ar(&y, 2, sn, 10).unwrap();
        let p = Ar2Params::new(g[0], g[1], 0.0, 0.0).unwrap();
        let (d, r) = p.roots();
        let (d0, r0) = Ar2Params::new(g1, g2, 0.0, 0.0).unwrap().roots();
        assert!(
            (d - d0).abs() < 0.01 && (r - r0).abs() < 0.06,
            "d {d} r {r} vs {d0} {r0}"
        );
    }

    #[test]
    fn lambda_scales_with_noise_and_kernel() {
        let p = Params::Ar1(Ar1Params::new(0.6, 0.0, 0.0).unwrap());
        let l = lambda_from_noise(0.5, &p, 2.0).unwrap();
        assert!((l - 2.0 * 0.5 / (1.0f64 - 0.36).sqrt()).abs() < 1e-12);
        let (g1, g2) = g_from_taus(1.0, 0.1, 30.0).unwrap();
        let p2 = Params::Ar2(Ar2Params::new(g1, g2, 0.0, 0.0).unwrap());
        let (d, r) = (
            g1 / 2.0 + (g1 * g1 / 4.0 + g2).sqrt(),
            g1 / 2.0 - (g1 * g1 / 4.0 + g2).sqrt(),
        );
        let direct: f64 = (0..5000)
            .map(|k| ((d.powi(k + 1) - r.powi(k + 1)) / (d - r)).powi(2))
            .sum();
        assert!((p2.kernel_energy() - direct).abs() < 1e-9 * direct);
    }
}
