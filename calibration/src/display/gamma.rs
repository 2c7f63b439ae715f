//! Gamma: from photometer readings to an inverse LUT.
//!
//! The monitor's luminance at drive level `v ∈ [0, 255]` is modelled as
//! `L(v) = offset + gain · (v / 255)^γ` (least squares; γ by golden-section search, offset and
//! gain linear for each γ). The inverse LUT maps a requested fraction `f = i / 255` of the
//! range `[L(0), L(255)]` to the drive `f^(1/γ)` (the offset cancels), so it is monotone by
//! construction. The residuals of the fit are reported: a large one means the power law does
//! not describe this monitor.

use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GammaFitError {
    #[error("{path}: {problem}")]
    Csv { path: String, problem: String },
    #[error("need at least 3 readings with distinct levels, got {0}")]
    TooFew(usize),
    #[error("reading {index}: level {level} / luminance {luminance}: {problem}")]
    BadReading {
        index: usize,
        level: f64,
        luminance: f64,
        problem: &'static str,
    },
    #[error(
        "luminance is not monotonic in level: level {level_hi} gives {lum_hi} < {lum_lo} at level \
         {level_lo}; re-measure (warm-up, ambient light) before fitting"
    )]
    NotMonotonic {
        level_lo: f64,
        lum_lo: f64,
        level_hi: f64,
        lum_hi: f64,
    },
}

/// One photometer reading: the drive level shown (0–255) and the luminance measured (cd/m²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub level: f64,
    pub luminance: f64,
}

/// The fit and the inverse LUT.
#[derive(Debug, Clone, PartialEq)]
pub struct GammaFit {
    pub gamma: f64,
    /// `L(0)`, cd/m².
    pub offset: f64,
    /// `L(255) − L(0)`, cd/m².
    pub gain: f64,
    /// Root-mean-square and largest residual of the fit, cd/m².
    pub rms_residual: f64,
    pub max_residual: f64,
    /// The RMS residual as a fraction of the luminance range.
    pub rms_residual_fraction: f64,
    /// 256 drive levels in [0, 1] for requested luminance fractions i / 255.
    pub table: Vec<f64>,
}

/// Parse a `level,luminance` CSV (a header line is optional; `#` starts a comment).
pub fn parse_csv(text: &str, path: &str) -> Result<Vec<Reading>, GammaFitError> {
    let pairs = super::csv::parse_pairs(text, ["level", "luminance"]).map_err(|problem| {
        GammaFitError::Csv {
            path: path.to_string(),
            problem,
        }
    })?;
    Ok(pairs
        .into_iter()
        .map(|(_, level, luminance)| Reading { level, luminance })
        .collect())
}

pub fn read_csv(path: &Path) -> Result<Vec<Reading>, GammaFitError> {
    let text = std::fs::read_to_string(path).map_err(|e| GammaFitError::Csv {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    parse_csv(&text, &path.display().to_string())
}

/// Least-squares offset and gain for a given γ; returns (offset, gain, sse).
fn linear_fit(r: &[Reading], gamma: f64) -> (f64, f64, f64) {
    let xs: Vec<f64> = r.iter().map(|p| (p.level / 255.0).powf(gamma)).collect();
    let n = r.len() as f64;
    let (sx, sy) = (
        xs.iter().sum::<f64>(),
        r.iter().map(|p| p.luminance).sum::<f64>(),
    );
    let sxx = xs.iter().map(|x| x * x).sum::<f64>();
    let sxy = xs.iter().zip(r).map(|(x, p)| x * p.luminance).sum::<f64>();
    let den = n * sxx - sx * sx;
    let gain = if den.abs() > 0.0 {
        (n * sxy - sx * sy) / den
    } else {
        0.0
    };
    let offset = (sy - gain * sx) / n;
    let sse = xs
        .iter()
        .zip(r)
        .map(|(x, p)| (offset + gain * x - p.luminance).powi(2))
        .sum();
    (offset, gain, sse)
}

/// Fit the readings and build the inverse LUT.
pub fn fit(readings: &[Reading]) -> Result<GammaFit, GammaFitError> {
    for (index, r) in readings.iter().enumerate() {
        let bad = |problem| GammaFitError::BadReading {
            index,
            level: r.level,
            luminance: r.luminance,
            problem,
        };
        if !(r.level.is_finite() && (0.0..=255.0).contains(&r.level)) {
            return Err(bad("level must be in [0, 255]"));
        }
        if !(r.luminance.is_finite() && r.luminance >= 0.0) {
            return Err(bad("luminance must be finite and ≥ 0"));
        }
    }
    let mut r = readings.to_vec();
    r.sort_by(|a, b| a.level.total_cmp(&b.level));
    r.dedup_by(|a, b| a.level == b.level);
    if r.len() < 3 {
        return Err(GammaFitError::TooFew(r.len()));
    }
    let lo = r.iter().map(|p| p.luminance).fold(f64::INFINITY, f64::min);
    let hi = r
        .iter()
        .map(|p| p.luminance)
        .fold(f64::NEG_INFINITY, f64::max);
    // Photometer noise near black may dip a hair; a drop of more than 0.5 % of the range is a
    // real non-monotonicity.
    let tol = 5e-3 * (hi - lo);
    for w in r.windows(2) {
        if w[1].luminance < w[0].luminance - tol {
            return Err(GammaFitError::NotMonotonic {
                level_lo: w[0].level,
                lum_lo: w[0].luminance,
                level_hi: w[1].level,
                lum_hi: w[1].luminance,
            });
        }
    }
    // Golden-section search for γ on [0.3, 6].
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (0.3f64, 6.0f64);
    let sse = |g: f64| linear_fit(&r, g).2;
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (sse(c), sse(d));
    for _ in 0..100 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = sse(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = sse(d);
        }
    }
    let gamma = 0.5 * (a + b);
    let (offset, gain, sse) = linear_fit(&r, gamma);
    let residuals: Vec<f64> = r
        .iter()
        .map(|p| offset + gain * (p.level / 255.0).powf(gamma) - p.luminance)
        .collect();
    let rms = (sse / r.len() as f64).sqrt();
    let table = (0..256)
        .map(|i| (i as f64 / 255.0).powf(1.0 / gamma))
        .collect();
    Ok(GammaFit {
        gamma,
        offset,
        gain,
        rms_residual: rms,
        max_residual: residuals.iter().fold(0.0, |m, x| m.max(x.abs())),
        rms_residual_fraction: if gain.abs() > 0.0 {
            rms / gain.abs()
        } else {
            f64::INFINITY
        },
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(gamma: f64, noise: f64) -> Vec<Reading> {
        (0..=16)
            .map(|k| {
                let level = (k * 16).min(255) as f64;
                let wobble = noise * ((k * 7919 % 13) as f64 / 6.0 - 1.0);
                Reading {
                    level,
                    luminance: 0.4 + 120.0 * (level / 255.0).powf(gamma) + wobble,
                }
            })
            .collect()
    }

    #[test]
    fn recovers_gamma_and_linearises() {
        let f = fit(&synthetic(2.2, 0.0)).unwrap();
        assert!((f.gamma - 2.2).abs() < 1e-4, "{}", f.gamma);
        assert!((f.offset - 0.4).abs() < 1e-3 && (f.gain - 120.0).abs() < 1e-2);
        assert!(f.rms_residual < 1e-6);
        // Through the LUT the monitor is linear: L(lut[i]) = L0 + i/255 · gain.
        for i in [0usize, 40, 128, 200, 255] {
            let l = f.offset + f.gain * f.table[i].powf(2.2);
            assert!((l - (0.4 + 120.0 * i as f64 / 255.0)).abs() < 0.05, "{i}");
        }
        assert!(f.table.windows(2).all(|w| w[1] >= w[0]));
        // Noisy readings: γ close, residual reported.
        let f = fit(&synthetic(2.4, 0.3)).unwrap();
        assert!((f.gamma - 2.4).abs() < 0.05, "{}", f.gamma);
        assert!(
            f.rms_residual > 0.05 && f.rms_residual < 0.5,
            "{}",
            f.rms_residual
        );
    }

    #[test]
    fn non_monotonic_readings_are_refused() {
        let mut r = synthetic(2.2, 0.0);
        r[10].luminance = 10.0;
        let e = fit(&r).unwrap_err().to_string();
        assert!(
            e.contains("not monotonic") && e.contains("level 160"),
            "{e}"
        );
    }

    #[test]
    fn csv_parsing_names_the_line() {
        let r = parse_csv(
            "level,luminance\n0,0.5\n128, 30.1 # mid\n255,120\n",
            "g.csv",
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            Reading {
                level: 128.0,
                luminance: 30.1
            }
        );
        let e = parse_csv("level,luminance\n0,0.5\n128;30\n", "g.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("g.csv") && e.contains("line 3"), "{e}");
        assert_eq!(fit(&r[..2]).unwrap_err(), GammaFitError::TooFew(2));
    }
}
