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
        .map(|(&yi, &mu)| glm.family.kernel(yi, mu.ln(), glm.scale).0)
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
        let (ll, grad) = problem.evaluate(theta, modes);
        if !ll.is_finite() {
            return Err(format!(
                "marginal log-likelihood is {ll} at iteration {iteration}"
            ));
        }
        let hessian = problem.hessian(theta, modes);
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
            let trial_ll = problem.evaluate(&trial, &mut trial_modes).0;
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
}

impl Problem<'_> {
    /// Marginal log-likelihood and its gradient in θ; `modes` warm-starts and receives each
    /// group's conditional mode.
    fn evaluate(&self, theta: &[f64], modes: &mut [f64]) -> (f64, Vec<f64>) {
        let p = self.design.n_cols();
        let (beta, log_sd) = (&theta[..p], theta[p]);
        let var = (2.0 * log_sd).exp();
        let eta = self.design.times(beta);
        let mut ll = 0.0;
        let mut grad = vec![0.0; p + 1];
        let k = self.nodes.len();
        let mut log_terms = vec![0.0; k];
        let mut node_grads = vec![0.0; k * p];
        for (g, rows) in self.rows_by_group.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let eta_g: Vec<f64> = rows.iter().map(|&i| eta[i] + self.off[i]).collect();
            let (mode, curvature) = self.group_mode(rows, &eta_g, var, modes[g]);
            modes[g] = mode;
            let s = (2.0 / curvature).sqrt(); // √2 × the Laplace SD
            node_grads.iter_mut().for_each(|v| *v = 0.0);
            for (node, z) in self.nodes.iter().enumerate() {
                let u = mode + s * z;
                let mut h = -u * u / (2.0 * var);
                for (r, &i) in rows.iter().enumerate() {
                    let (l, d1, _) = self.family.kernel(self.y[i], eta_g[r] + u, self.phi);
                    h += l;
                    for (gj, xj) in node_grads[node * p..(node + 1) * p]
                        .iter_mut()
                        .zip(self.design.row(i))
                    {
                        *gj += d1 * xj;
                    }
                }
                log_terms[node] = self.log_weights[node] + z * z + h;
            }
            let max = log_terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = log_terms.iter().map(|t| (t - max).exp()).sum();
            ll += s.ln() + max + sum.ln() - 0.5 * (2.0 * std::f64::consts::PI * var).ln();
            // d/dθ log ∫ e^h = posterior mean of dh/dθ, with the quadrature's node weights.
            for (node, z) in self.nodes.iter().enumerate() {
                let weight = (log_terms[node] - max).exp() / sum;
                let u = mode + s * z;
                for j in 0..p {
                    grad[j] += weight * node_grads[node * p + j];
                }
                grad[p] += weight * u * u / var;
            }
            grad[p] -= 1.0;
        }
        (ll, grad)
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

    /// Hessian of the marginal log-likelihood by central differences of the analytic gradient.
    fn hessian(&self, theta: &[f64], modes: &[f64]) -> Vec<f64> {
        let q = theta.len();
        let mut h = vec![0.0; q * q];
        for j in 0..q {
            let step = 1e-5 * theta[j].abs().max(1.0);
            let mut plus = theta.to_vec();
            plus[j] += step;
            let mut minus = theta.to_vec();
            minus[j] -= step;
            let gp = self.evaluate(&plus, &mut modes.to_vec()).1;
            let gm = self.evaluate(&minus, &mut modes.to_vec()).1;
            for i in 0..q {
                h[i * q + j] = (gp[i] - gm[i]) / (2.0 * step);
            }
        }
        for i in 0..q {
            for j in 0..i {
                let m = 0.5 * (h[i * q + j] + h[j * q + i]);
                h[i * q + j] = m;
                h[j * q + i] = m;
            }
        }
        h
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
