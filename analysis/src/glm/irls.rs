//! IRLS for log-link GLMs: with μ = exp(η), the working weight is μ^{2-p} and the working
//! response η − offset + (y − μ)/μ; each step solves the weighted normal equations by Cholesky,
//! halving the step if the deviance rises.
#![expect(
    clippy::needless_range_loop,
    reason = "matrix code reads as its index formulas"
)]

use super::{Coefficient, Family, GlmFit};
use crate::design::Design;
use crate::error::{Error, Result, invalid};
use crate::linalg::Cholesky;

/// Stopping rule and iteration cap of the IRLS loop.
#[derive(Debug, Clone, Copy)]
pub struct GlmOptions {
    /// Stop when the relative change of the deviance falls below this.
    pub tolerance: f64,
    pub max_iterations: usize,
}

impl Default for GlmOptions {
    fn default() -> Self {
        Self {
            tolerance: 1e-14,
            max_iterations: 100,
        }
    }
}

/// Fits `y ~ X` with a log link and optional offset (added to η, coefficient fixed at 1).
pub fn fit_glm(
    design: &Design,
    y: &[f64],
    offset: Option<&[f64]>,
    family: Family,
    options: &GlmOptions,
) -> Result<GlmFit> {
    let (n, p) = (design.n_rows(), design.n_cols());
    check_inputs(design, y, offset)?;
    family.validate(y)?;
    if n <= p {
        return Err(invalid(
            "design",
            format!("{n} rows cannot fit {p} coefficients"),
        ));
    }
    let off = |i: usize| offset.map_or(0.0, |o| o[i]);
    let power = family.power();
    let dev = |mu: &[f64]| -> f64 {
        y.iter()
            .zip(mu)
            .map(|(&yi, &m)| family.unit_deviance(yi, m))
            .sum()
    };

    // Start as statsmodels does, μ = (y + ȳ)/2, so the first step is a weighted LS on log μ.
    let ybar = y.iter().sum::<f64>() / n as f64;
    let mut eta: Vec<f64> = y
        .iter()
        .map(|&yi| ((yi + ybar) / 2.0).max(1e-10).ln())
        .collect();
    let mut beta = vec![0.0; p];
    let mut deviance = f64::INFINITY;
    let mut first = true;
    for iteration in 1..=options.max_iterations {
        let mut xtwx = vec![0.0; p * p];
        let mut xtwz = vec![0.0; p];
        for i in 0..n {
            let mu = eta[i].exp();
            let w = mu.powf(2.0 - power);
            let z = eta[i] - off(i) + (y[i] - mu) / mu;
            let row = design.row(i);
            for a in 0..p {
                let wa = w * row[a];
                xtwz[a] += wa * z;
                for b in 0..=a {
                    xtwx[a * p + b] += wa * row[b];
                }
            }
        }
        symmetrise(&mut xtwx, p);
        let chol = Cholesky::new(&xtwx, p).ok_or_else(|| Error::Singular {
            what: "GLM normal equations".into(),
            hint: "the design has collinear or all-zero columns".into(),
        })?;
        let target = chol.solve(&xtwz);
        // Step halving: accept the full step unless the deviance rises or is not finite (μ
        // overflowed). The first step halves from β = 0 (η = offset); before, a first step
        // whose deviance was infinite was retried unchanged for ever (a hang seen with 25
        // presynaptic cells under an RF rule), and a later one halved to a zero step for ever.
        let mut step = 1.0;
        let (new_beta, new_eta, new_dev) = loop {
            let b: Vec<f64> = beta
                .iter()
                .zip(&target)
                .map(|(o, t)| o + step * (t - o))
                .collect();
            let e: Vec<f64> = design
                .times(&b)
                .iter()
                .enumerate()
                .map(|(i, v)| v + off(i))
                .collect();
            let mu: Vec<f64> = e.iter().map(|v| v.exp()).collect();
            let d = dev(&mu);
            if d.is_finite() && (first || d <= deviance * (1.0 + 1e-12) || step < 1e-6) {
                break (b, e, d);
            }
            if step < 1e-12 {
                return Err(Error::NotConverged {
                    what: "GLM IRLS".into(),
                    iterations: iteration,
                    detail: format!(
                        "the deviance is not finite even a 1e-12 step from the last estimate \
                         ({deviance}): the fitted mean overflows (a separated or extreme design)"
                    ),
                });
            }
            step /= 2.0;
        };
        let change = (deviance - new_dev).abs() / (new_dev.abs() + 0.1);
        beta = new_beta;
        eta = new_eta;
        deviance = new_dev;
        first = false;
        if change < options.tolerance {
            return Ok(finish(design, y, &eta, beta, deviance, family, iteration));
        }
    }
    Err(Error::NotConverged {
        what: "GLM IRLS".into(),
        iterations: options.max_iterations,
        detail: format!("deviance {deviance}"),
    })
}

fn finish(
    design: &Design,
    y: &[f64],
    eta: &[f64],
    beta: Vec<f64>,
    deviance: f64,
    family: Family,
    iterations: usize,
) -> GlmFit {
    let (n, p) = (design.n_rows(), design.n_cols());
    let power = family.power();
    let fitted: Vec<f64> = eta.iter().map(|e| e.exp()).collect();
    let mut info = vec![0.0; p * p];
    for i in 0..n {
        let w = fitted[i].powf(2.0 - power);
        let row = design.row(i);
        for a in 0..p {
            for b in 0..=a {
                info[a * p + b] += w * row[a] * row[b];
            }
        }
    }
    symmetrise(&mut info, p);
    let scale = if family.estimates_scale() {
        let chi2: f64 = y
            .iter()
            .zip(&fitted)
            .map(|(yi, m)| (yi - m).powi(2) / m.powf(power))
            .sum();
        chi2 / (n - p) as f64
    } else {
        1.0
    };
    // The information was positive definite at the last step; at the converged point it is too
    // unless μ underflowed, in which case the SEs are reported as NaN rather than a panic.
    let covariance: Vec<f64> = match Cholesky::new(&info, p) {
        Some(c) => c.inverse().into_iter().map(|v| v * scale).collect(),
        None => vec![f64::NAN; p * p],
    };
    let coefficients = design
        .names()
        .iter()
        .enumerate()
        .map(|(j, name)| Coefficient::new(name, beta[j], covariance[j * p + j].sqrt()))
        .collect();
    GlmFit {
        family,
        coefficients,
        covariance,
        scale,
        deviance,
        iterations,
        fitted,
    }
}

pub(crate) fn symmetrise(m: &mut [f64], p: usize) {
    for a in 0..p {
        for b in 0..a {
            m[b * p + a] = m[a * p + b];
        }
    }
}

pub(crate) fn check_inputs(design: &Design, y: &[f64], offset: Option<&[f64]>) -> Result<()> {
    let n = design.n_rows();
    if y.len() != n {
        return Err(invalid(
            "response",
            format!("{} values for {n} design rows", y.len()),
        ));
    }
    if let Some(o) = offset {
        if o.len() != n {
            return Err(invalid(
                "offset",
                format!("{} values for {n} design rows", o.len()),
            ));
        }
        if let Some(i) = o.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "offset",
                format!("row {i} is not finite (log of a zero length?)"),
            ));
        }
    }
    Ok(())
}
