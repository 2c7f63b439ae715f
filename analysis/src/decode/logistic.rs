//! Multinomial logistic regression (softmax over K classes; class 0 is the reference with zero
//! weights, as in statsmodels' `MNLogit`, so the parameters are identified) fitted by Newton's
//! method on the penalised negative log-likelihood −Σ log p(y_i | x_i) + (λ/2)‖W‖² (intercepts
//! unpenalised). Features are standardised with the training set's mean and SD, so λ means the
//! same for every input.

use crate::error::{Error, Result, invalid};
use crate::linalg::cholesky_damped;

/// Settings of the logistic fit.
#[derive(Debug, Clone, Copy)]
pub struct LogisticOptions {
    /// L2 penalty λ on the (standardised) weights; 0 is the unpenalised MLE.
    pub l2: f64,
    pub max_iterations: usize,
    /// Stop when the Newton decrement gᵀH⁻¹g falls below this. It is about twice the distance
    /// to the minimum of the loss, so parameter error ~ √(tolerance / curvature): tiny by default
    /// (Newton converges quadratically, so this costs one or two iterations).
    pub tolerance: f64,
}

impl Default for LogisticOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_iterations: 100,
            tolerance: 1e-20,
        }
    }
}

/// A fitted multinomial logit.
#[derive(Debug, Clone)]
pub struct MultinomialLogit {
    n_features: usize,
    n_classes: usize,
    /// Per class: `n_features` weights then the intercept (on standardised features).
    params: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl MultinomialLogit {
    /// Fits on `x` (row-major, `labels.len()` rows × `n_features`), labels in `0..n_classes`.
    pub fn fit(
        x: &[f64],
        n_features: usize,
        labels: &[usize],
        n_classes: usize,
        options: &LogisticOptions,
    ) -> Result<Self> {
        let n = labels.len();
        if n_features == 0 || x.len() != n * n_features {
            return Err(invalid(
                "features",
                format!("{} values for {n} rows × {n_features} features", x.len()),
            ));
        }
        if n_classes < 2 || n_classes > n {
            return Err(invalid(
                "labels",
                format!("{n_classes} classes for {n} rows; need 2..=rows"),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l >= n_classes) {
            return Err(invalid(
                "labels",
                format!("row {i} has label {} ≥ {n_classes} classes", labels[i]),
            ));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "features",
                format!(
                    "row {}, feature {} is not finite",
                    i / n_features,
                    i % n_features
                ),
            ));
        }
        if options.l2.is_nan() || options.l2 < 0.0 {
            return Err(invalid("l2", format!("{} must be ≥ 0", options.l2)));
        }
        let (mean, sd) = standardisation(x, n_features, n);
        let mut model = Self {
            n_features,
            n_classes,
            params: vec![0.0; n_classes * (n_features + 1)],
            mean,
            sd,
        };
        let z: Vec<f64> = (0..n)
            .flat_map(|i| model.standardise(&x[i * n_features..(i + 1) * n_features]))
            .collect();
        let d1 = n_features + 1;
        // Free parameters: classes 1..K (class 0 stays at zero).
        let q = (n_classes - 1) * d1;
        let mut loss = model.loss(&z, labels, options.l2);
        for _ in 0..options.max_iterations {
            let mut grad = vec![0.0; q];
            let mut hess = vec![0.0; q * q];
            let mut row = vec![1.0; d1];
            for i in 0..n {
                row[..n_features].copy_from_slice(&z[i * n_features..(i + 1) * n_features]);
                let prob = model.softmax(&row);
                for a in 1..n_classes {
                    let fa = (a - 1) * d1;
                    let r = prob[a] - if labels[i] == a { 1.0 } else { 0.0 };
                    for j in 0..d1 {
                        grad[fa + j] += r * row[j];
                    }
                    for b in 1..=a {
                        let fb = (b - 1) * d1;
                        let w = prob[a] * (if a == b { 1.0 } else { 0.0 } - prob[b]);
                        for j in 0..d1 {
                            let wj = w * row[j];
                            for k in 0..d1 {
                                hess[(fa + j) * q + fb + k] += wj * row[k];
                            }
                        }
                    }
                }
            }
            for a in 1..n_classes {
                let fa = (a - 1) * d1;
                for b in 1..a {
                    let fb = (b - 1) * d1;
                    for j in 0..d1 {
                        for k in 0..d1 {
                            hess[(fb + k) * q + fa + j] = hess[(fa + j) * q + fb + k];
                        }
                    }
                }
                for j in 0..n_features {
                    grad[fa + j] += options.l2 * model.params[a * d1 + j];
                    hess[(fa + j) * q + fa + j] += options.l2;
                }
            }
            // Damped: unpenalised and separable, the likelihood has no finite maximum.
            let (chol, _) = cholesky_damped(&hess, q).ok_or_else(|| Error::Singular {
                what: "multinomial logit Hessian".into(),
                hint: "constant or duplicated features".into(),
            })?;
            let step = chol.solve(&grad);
            let decrement: f64 = step.iter().zip(&grad).map(|(s, g)| s * g).sum();
            if decrement < options.tolerance {
                return Ok(model);
            }
            let old = model.params.clone();
            let mut t = 1.0;
            loop {
                model.params = old.clone();
                for (p, s) in model.params[d1..].iter_mut().zip(&step) {
                    *p -= t * s;
                }
                let trial = model.loss(&z, labels, options.l2);
                if trial <= loss {
                    loss = trial;
                    break;
                }
                t *= 0.5;
                if t < 1e-10 {
                    model.params = old;
                    return Ok(model);
                }
            }
        }
        // Separable classes without a penalty never converge; the last iterate still classifies.
        tracing::debug!("multinomial logit stopped at the iteration cap");
        Ok(model)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Class probabilities of one raw (unstandardised) feature row.
    pub fn probabilities(&self, x: &[f64]) -> Vec<f64> {
        let mut row = self.standardise(x);
        row.push(1.0);
        self.softmax(&row)
    }

    /// Most probable class of one raw feature row.
    pub fn predict(&self, x: &[f64]) -> usize {
        let p = self.probabilities(x);
        (0..p.len())
            .max_by(|&a, &b| p[a].total_cmp(&p[b]))
            .unwrap_or(0)
    }

    fn standardise(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.mean)
            .zip(&self.sd)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    /// Softmax of one standardised row with the trailing 1 for the intercept.
    fn softmax(&self, row: &[f64]) -> Vec<f64> {
        let d1 = row.len();
        let scores: Vec<f64> = (0..self.n_classes)
            .map(|a| {
                self.params[a * d1..(a + 1) * d1]
                    .iter()
                    .zip(row)
                    .map(|(w, x)| w * x)
                    .sum()
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.into_iter().map(|v| v / sum).collect()
    }

    fn loss(&self, z: &[f64], labels: &[usize], l2: f64) -> f64 {
        let d = self.n_features;
        let mut row = vec![1.0; d + 1];
        let mut loss = 0.0;
        for (i, &l) in labels.iter().enumerate() {
            row[..d].copy_from_slice(&z[i * d..(i + 1) * d]);
            loss -= self.softmax(&row)[l].max(1e-300).ln();
        }
        let penalty: f64 = (0..self.n_classes)
            .flat_map(|a| (0..d).map(move |j| (a, j)))
            .map(|(a, j)| self.params[a * (d + 1) + j].powi(2))
            .sum();
        loss + 0.5 * l2 * penalty
    }
}

/// Column means and SDs (a constant column gets SD 1, so it standardises to 0).
fn standardisation(x: &[f64], d: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for i in 0..n {
        for j in 0..d {
            mean[j] += x[i * d + j] / n as f64;
        }
    }
    let mut sd = vec![0.0; d];
    for i in 0..n {
        for j in 0..d {
            sd[j] += (x[i * d + j] - mean[j]).powi(2) / n as f64;
        }
    }
    let sd = sd
        .into_iter()
        .map(|v| if v > 1e-24 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, sd)
}
