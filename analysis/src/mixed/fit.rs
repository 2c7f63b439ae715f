//! The AGHQ marginal likelihood of a random-intercept GLMM and its Newton maximisation.

use super::{MixedFit, MixedMethod, MixedOptions, gauss_hermite};
use crate::design::Design;
use crate::error::{Result, invalid};
use crate::glm::{Coefficient, Family, GlmFit, GlmOptions, fit_glm};
use crate::linalg::{Cholesky, cholesky_damped};

/// Fits `y ~ X + offset + (1 | group)`. `groups[i]` is row i's 0-based group index (a
/// presynaptic cell); the intercept of each group is N(0, σ²) and independent of the others.
pub fn fit_glmm(
    design: &Design,
    y: &[f64],
    offset: Option<&[f64]>,
    groups: &[usize],
    family: Family,
    options: &MixedOptions,
) -> Result<MixedFit> {
    let n = design.n_rows();
    if groups.len() != n {
        return Err(invalid(
            "groups",
            format!("{} group labels for {n} rows", groups.len()),
        ));
    }
    if !(1..=100).contains(&options.nodes) {
        return Err(invalid(
            "nodes",
            format!("{} quadrature nodes; use 1..=100", options.nodes),
        ));
    }
    if let Some(i) = groups.iter().position(|&g| g >= n) {
        return Err(invalid(
            "groups",
            format!(
                "row {i} has group {}; groups must be 0-based indices below the {n} rows",
                groups[i]
            ),
        ));
    }
    let glm = fit_glm(design, y, offset, family, &GlmOptions::default())?;
    let n_groups = groups.iter().max().map_or(0, |m| m + 1);
    let mut rows_by_group = vec![Vec::new(); n_groups];
    for (i, &g) in groups.iter().enumerate() {
        rows_by_group[g].push(i);
    }
    let occupied = rows_by_group.iter().filter(|r| !r.is_empty()).count();
    if occupied < 2 {
        return Ok(fallback(
            glm,
            y,
            n_groups,
            "fewer than two groups: no random intercept to estimate",
        ));
    }
    let (z, w) = gauss_hermite(options.nodes);
    let mut problem = Problem {
        design,
        y,
        off: (0..n).map(|i| offset.map_or(0.0, |o| o[i])).collect(),
        rows_by_group,
        family,
        phi: glm.scale,
        nodes: z,
        log_weights: w.iter().map(|w| w.ln()).collect(),
        sparse_rows: (0..n)
            .map(|i| {
                design
                    .row(i)
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(j, v)| (j, *v))
                    .collect()
            })
            .collect(),
        log_normaliser: y.iter().map(|&v| family.log_normaliser(v)).sum(),
    };
    let p = design.n_cols();
    let mut theta: Vec<f64> = glm.estimates();
    theta.push(0.5f64.ln());
    let mut modes = vec![0.0; n_groups];
    let mut total_iterations = 0;
    // Tweedie: alternate the fit at fixed φ with φ from conditional Pearson residuals.
    let rounds = if family.estimates_scale() { 20 } else { 1 };
    let mut outcome = None;
    for _ in 0..rounds {
        match newton(&problem, &mut theta, &mut modes, options) {
            Ok((ll, hessian, its)) => {
                total_iterations += its;
                outcome = Some((ll, hessian));
            }
            Err(reason) => return Ok(fallback(glm, y, n_groups, &reason)),
        }
        if !family.estimates_scale() {
            break;
        }
        let phi = problem.conditional_pearson_scale(&theta[..p], &modes);
        let change = (phi - problem.phi).abs() / problem.phi;
        problem.phi = phi;
        if change < 1e-8 {
            break;
        }
    }
    let (log_likelihood, hessian) = outcome.expect("at least one round ran");
    let q = p + 1;
    let neg: Vec<f64> = hessian.iter().map(|v| -v).collect();
    let cov = Cholesky::new(&neg, q).map_or_else(|| vec![f64::NAN; q * q], |c| c.inverse());
    let sd = theta[p].exp();
    let coefficients = design
        .names()
        .iter()
        .enumerate()
        .map(|(j, name)| Coefficient::new(name, theta[j], cov[j * q + j].sqrt()))
        .collect();
    let covariance = (0..p)
        .flat_map(|a| (0..p).map(move |b| (a, b)))
        .map(|(a, b)| cov[a * q + b])
        .collect();
    Ok(MixedFit {
        family,
        method: MixedMethod::AdaptiveGaussHermite {
            nodes: options.nodes,
        },
        coefficients,
        covariance,
        random_sd: sd,
        random_sd_std_error: sd * cov[p * q + p].sqrt(),
        scale: problem.phi,
        log_likelihood,
        n_groups,
        iterations: total_iterations,
        group_modes: modes,
    })
}

/// The estimates of the GLM, flagged as a fallback with the reason.
fn fallback(glm: GlmFit, y: &[f64], n_groups: usize, reason: &str) -> MixedFit {
    tracing::warn!(
        reason,
        "random-intercept model not fitted; reporting the fixed-effect GLM"
    );
    let log_likelihood = y
        .iter()
        .zip(&glm.fitted)
        .map(|(&yi, &mu)| {
            glm.family.kernel(yi, mu.ln(), glm.scale).0 + glm.family.log_normaliser(yi)
        })
        .sum();
    MixedFit {
        family: glm.family,
        method: MixedMethod::FixedEffectFallback {
            reason: reason.to_string(),
        },
        coefficients: glm.coefficients,
        covariance: glm.covariance,
        random_sd: 0.0,
        random_sd_std_error: f64::NAN,
        scale: glm.scale,
        log_likelihood,
        n_groups,
        iterations: glm.iterations,
        group_modes: vec![0.0; n_groups],
    }
}

/// Newton on θ = (β, log σ). Returns the log-likelihood, its Hessian and the iteration count,
/// or why it failed (then the caller falls back).
fn newton(
    problem: &Problem,
    theta: &mut Vec<f64>,
    modes: &mut [f64],
    options: &MixedOptions,
) -> std::result::Result<(f64, Vec<f64>, usize), String> {
    let q = theta.len();
    let min_log_sd = options.min_sd.ln();
    for iteration in 1..=options.max_iterations {
        let (ll, grad, hessian) = problem.evaluate(theta, modes, true);
        if !ll.is_finite() {
            return Err(format!(
                "marginal log-likelihood is {ll} at iteration {iteration}"
            ));
        }
        let neg: Vec<f64> = hessian.iter().map(|v| -v).collect();
        let Some((chol, _)) = cholesky_damped(&neg, q) else {
            return Err("Hessian could not be regularised".into());
        };
        let step = chol.solve(&grad);
        let decrement: f64 = step.iter().zip(&grad).map(|(s, g)| s * g).sum();
        if decrement < options.tolerance {
            return Ok((ll, hessian, iteration));
        }
        let mut t = 1.0;
        loop {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a + t * s).collect();
            let mut trial_modes = modes.to_vec();
            let trial_ll = problem.evaluate(&trial, &mut trial_modes, false).0;
            if trial_ll.is_finite() && trial_ll >= ll - 1e-12 * ll.abs() {
                *theta = trial;
                modes.copy_from_slice(&trial_modes);
                break;
            }
            t *= 0.5;
            if t < 1e-10 {
                // The gradient is the exact integral's and the objective AGHQ's; within their
                // (tiny) difference of the optimum no step can improve, which is convergence.
                if decrement < 1e-6 {
                    return Ok((ll, hessian, iteration));
                }
                return Err(format!(
                    "line search failed at iteration {iteration} (decrement {decrement:.3e})"
                ));
            }
        }
        if theta[q - 1] < min_log_sd {
            return Err(format!(
                "random-intercept SD fell below {} (boundary σ = 0): the data show no group effect",
                options.min_sd
            ));
        }
    }
    Err(format!(
        "Newton did not converge in {} iterations",
        options.max_iterations
    ))
}

struct Problem<'a> {
    design: &'a Design,
    y: &'a [f64],
    off: Vec<f64>,
    rows_by_group: Vec<Vec<usize>>,
    family: Family,
    phi: f64,
    nodes: Vec<f64>,
    log_weights: Vec<f64>,
    /// Non-zero (column, value) entries of each design row: the per-type designs of the wiring
    /// analysis have two per row, so this cuts the inner loops several-fold.
    sparse_rows: Vec<Vec<(usize, f64)>>,
    /// Σ of the family's μ-free log-likelihood terms, added once.
    log_normaliser: f64,
}

impl Problem<'_> {
    /// Marginal log-likelihood, its gradient and (if `with_hessian`) its Hessian in θ, row-major
    /// (p + 1)²; `modes` warm-starts and receives each group's conditional mode.
    ///
    /// Per group, with h(u; θ) the log integrand and expectations over the quadrature's
    /// posterior weights: ∇ log ∫e^h = E[∂h] and ∇² log ∫e^h = E[∂²h] + Cov[∂h], where
    /// ∂h/∂β = Σ x ℓ'(η + u), ∂²h/∂β² = Σ x xᵀ ℓ''(η + u), ∂h/∂τ = u²/σ², ∂²h/∂τ² = −2u²/σ²
    /// (τ = log σ), plus the prior normaliser's −1 in ∂/∂τ.
    fn evaluate(
        &self,
        theta: &[f64],
        modes: &mut [f64],
        with_hessian: bool,
    ) -> (f64, Vec<f64>, Vec<f64>) {
        let p = self.design.n_cols();
        let q = p + 1;
        let (beta, log_sd) = (&theta[..p], theta[p]);
        let var = (2.0 * log_sd).exp();
        let eta = self.design.times(beta);
        let mut ll = self.log_normaliser;
        let mut grad = vec![0.0; q];
        let mut hess = vec![0.0; if with_hessian { q * q } else { 0 }];
        let k = self.nodes.len();
        let mut log_terms = vec![0.0; k];
        // Per node: ∂h (q entries) and, with the Hessian, the β-block of ∂²h (p × p).
        let mut node_grads = vec![0.0; k * q];
        let mut node_hess = vec![0.0; if with_hessian { k * p * p } else { 0 }];
        let mut mean_grad = vec![0.0; q];
        for (g, rows) in self.rows_by_group.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let eta_g: Vec<f64> = rows.iter().map(|&i| eta[i] + self.off[i]).collect();
            let (mode, curvature) = self.group_mode(rows, &eta_g, var, modes[g]);
            modes[g] = mode;
            let s = (2.0 / curvature).sqrt(); // √2 × the Laplace SD
            node_grads.iter_mut().for_each(|v| *v = 0.0);
            node_hess.iter_mut().for_each(|v| *v = 0.0);
            for (node, z) in self.nodes.iter().enumerate() {
                let u = mode + s * z;
                let mut h = -u * u / (2.0 * var);
                let ng = &mut node_grads[node * q..(node + 1) * q];
                for (r, &i) in rows.iter().enumerate() {
                    let (l, d1, d2) = self.family.kernel(self.y[i], eta_g[r] + u, self.phi);
                    h += l;
                    let nz = &self.sparse_rows[i];
                    for &(j, xj) in nz {
                        ng[j] += d1 * xj;
                    }
                    if with_hessian {
                        let nh = &mut node_hess[node * p * p..(node + 1) * p * p];
                        for &(a, xa) in nz {
                            for &(b, xb) in nz {
                                nh[a * p + b] += d2 * xa * xb;
                            }
                        }
                    }
                }
                ng[p] = u * u / var;
                log_terms[node] = self.log_weights[node] + z * z + h;
            }
            let max = log_terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = log_terms.iter().map(|t| (t - max).exp()).sum();
            ll += s.ln() + max + sum.ln() - 0.5 * (2.0 * std::f64::consts::PI * var).ln();
            let weights: Vec<f64> = log_terms.iter().map(|t| (t - max).exp() / sum).collect();
            mean_grad.iter_mut().for_each(|v| *v = 0.0);
            for (node, w) in weights.iter().enumerate() {
                for (m, v) in mean_grad
                    .iter_mut()
                    .zip(&node_grads[node * q..(node + 1) * q])
                {
                    *m += w * v;
                }
            }
            for (g, m) in grad.iter_mut().zip(&mean_grad) {
                *g += m;
            }
            grad[p] -= 1.0;
            if with_hessian {
                for (node, (w, z)) in weights.iter().zip(&self.nodes).enumerate() {
                    let ng = &node_grads[node * q..(node + 1) * q];
                    for a in 0..q {
                        for b in 0..q {
                            // Cov[∂h] = E[(∂h − E∂h)(∂h − E∂h)ᵀ].
                            hess[a * q + b] += w * (ng[a] - mean_grad[a]) * (ng[b] - mean_grad[b]);
                        }
                    }
                    for a in 0..p {
                        for b in 0..p {
                            hess[a * q + b] += w * node_hess[node * p * p + a * p + b];
                        }
                    }
                    let u = mode + s * z;
                    hess[p * q + p] -= w * 2.0 * u * u / var;
                }
            }
        }
        (ll, grad, hess)
    }

    /// Conditional mode of u for one group and −h''(mode), by safeguarded Newton (h is concave).
    fn group_mode(&self, rows: &[usize], eta_g: &[f64], var: f64, start: f64) -> (f64, f64) {
        let mut u = if start.is_finite() { start } else { 0.0 };
        for _ in 0..100 {
            let (mut d1, mut d2) = (-u / var, -1.0 / var);
            for (r, &i) in rows.iter().enumerate() {
                let (_, a, b) = self.family.kernel(self.y[i], eta_g[r] + u, self.phi);
                d1 += a;
                d2 += b;
            }
            // Cap the step: exp() makes a long first step from a poor start overshoot.
            let step = (d1 / -d2).clamp(-3.0, 3.0);
            u += step;
            if step.abs() < 1e-11 {
                break;
            }
        }
        let mut d2 = -1.0 / var;
        for (r, &i) in rows.iter().enumerate() {
            d2 += self.family.kernel(self.y[i], eta_g[r] + u, self.phi).2;
        }
        (u, -d2)
    }

    /// Pearson χ² / (n − p) with μ at the conditional modes (Tweedie's φ update).
    fn conditional_pearson_scale(&self, beta: &[f64], modes: &[f64]) -> f64 {
        let eta = self.design.times(beta);
        let power = self.family.power();
        let mut chi2 = 0.0;
        for (g, rows) in self.rows_by_group.iter().enumerate() {
            for &i in rows {
                let mu = (eta[i] + self.off[i] + modes[g]).exp();
                chi2 += (self.y[i] - mu).powi(2) / mu.powf(power);
            }
        }
        chi2 / (self.y.len() - self.design.n_cols()) as f64
    }
}
