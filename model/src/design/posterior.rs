//! Per-unit Gaussian (Laplace) posteriors over the log-linear Poisson readout weights, updated
//! one imaging frame at a time (Lewi, Butera & Paninski 2009, §2).
//!
//! For one frame with features `x` (`d`), observation `y ≥ 0` over `dt` seconds and prior
//! `N(μ, Σ)`, the log posterior `y θ·x − e^{θ·x} dt − ½(θ−μ)ᵀΣ⁻¹(θ−μ)` has its mode at
//! `θ* = μ + Σx (y − e^ρ dt)` with `ρ = x·θ*`, so `ρ` solves the scalar equation
//! `ρ = x·μ + (xᵀΣx)(y − e^ρ dt)` (monotone in `ρ`: bracketed Newton). The Laplace covariance
//! is the inverse Hessian there, `(Σ⁻¹ + D x xᵀ)⁻¹ = Σ − (Σx)(Σx)ᵀ D/(1 + D xᵀΣx)`,
//! `D = e^ρ dt`. The update is exact for one frame given a Gaussian prior; across frames it is
//! the usual assumed-density filter, which [`Posterior::refit_unit`] can re-anchor to the batch
//! MAP.

use super::linalg::{axpy, chol_inverse, chol_solve, cholesky, dot, dot_f32};
use super::{
    DesignError, MAX_LOG_RATE, check_dt, check_finite, check_len, check_value, par_ranges, rate,
};

/// Newton iterations allowed in [`Posterior::refit_unit`].
const REFIT_MAX_ITERS: usize = 100;

/// Prior and drift shared by every unit of a [`Posterior`].
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorConfig {
    /// Feature dimension `d` (core features at the readout position, plus bias/covariates).
    pub dim: usize,
    /// Prior variance of every weight (the prior covariance is `prior_var · I`), > 0.
    pub prior_var: f64,
    /// Prior mean, length `dim` (e.g. a bias mean at the constant-1 coordinate).
    pub prior_mean: Vec<f64>,
    /// Diffusion of the weights per second, `q ≥ 0`: [`Posterior::diffuse`] adds `q·dt·I`.
    pub process_noise_per_s: f64,
}

impl PosteriorConfig {
    /// Zero prior mean, no drift.
    pub fn isotropic(dim: usize, prior_var: f64) -> Self {
        Self {
            dim,
            prior_var,
            prior_mean: vec![0.0; dim],
            process_noise_per_s: 0.0,
        }
    }
}

/// Gaussian posteriors `N(μ_u, Σ_u)` for `U` units, stored structure-of-arrays.
#[derive(Debug, Clone)]
pub struct Posterior {
    cfg: PosteriorConfig,
    units: usize,
    /// `U × d` means.
    means: Vec<f64>,
    /// `U × d × d` full symmetric covariances.
    covs: Vec<f64>,
    /// Frames folded in per unit since the last reset.
    counts: Vec<u64>,
    /// Unit-frames rejected as bad input, all time.
    skipped: u64,
    /// Units sent back to the prior because their covariance lost positive definiteness.
    pd_resets: u64,
    /// `2d`: features as f64, then `Σx`.
    scratch: Vec<f64>,
}

fn check_obs(what: &'static str, index: usize, y: f32) -> Result<(), DesignError> {
    if !y.is_finite() {
        return Err(DesignError::NotFinite { what, index });
    }
    if y < 0.0 {
        return Err(DesignError::Negative {
            what,
            index,
            got: f64::from(y),
        });
    }
    Ok(())
}

fn check_frame(d: usize, x: &[f32], y: f32, dt_s: f64) -> Result<(), DesignError> {
    check_len("x length", d, x.len())?;
    check_dt(dt_s)?;
    check_obs("y", 0, y)?;
    check_finite("x", x)
}

/// The rank-one Laplace update of one unit (module docs) for a checked frame; `scratch` is
/// `2d`. Returns false if the result is not finite or `Σ` lost a positive diagonal.
fn rank_one_update(
    mean: &mut [f64],
    cov: &mut [f64],
    scratch: &mut [f64],
    x: &[f32],
    y: f32,
    dt_s: f64,
) -> bool {
    let d = mean.len();
    let (xf, sx) = scratch.split_at_mut(d);
    for (o, v) in xf.iter_mut().zip(x) {
        *o = f64::from(*v);
    }
    for (o, row) in sx.iter_mut().zip(cov.chunks_exact(d)) {
        *o = dot(row, xf);
    }
    let a = dot(mean, xf);
    let s = dot(xf, sx);
    if !(s.is_finite() && s >= 0.0 && a.is_finite()) {
        return false;
    }
    let y = f64::from(y);
    let rho = solve_projection(a, s, y, dt_s);
    let lam_dt = rate(rho) * dt_s;
    axpy(y - lam_dt, sx, mean);
    // Σ −= v vᵀ with v = √(D/(1 + D s)) Σx: v_i·v_j == v_j·v_i exactly, so Σ stays exactly
    // symmetric while every row is updated contiguously.
    let c = (lam_dt / (1.0 + lam_dt * s)).sqrt();
    sx.iter_mut().for_each(|v| *v *= c);
    for (i, row) in cov.chunks_exact_mut(d).enumerate() {
        axpy(-sx[i], sx, row);
    }
    mean.iter().all(|v| v.is_finite())
        && (0..d).all(|i| cov[i * d + i] > 0.0 && cov[i * d + i].is_finite())
}

/// Mutable means, covariances and counts of a contiguous range of units.
type Chunk<'a> = (&'a mut [f64], &'a mut [f64], &'a mut [u64]);

/// Solves `ρ = a + s (y − rate(ρ) dt)` for `ρ`. `f(ρ) = ρ − a − s(y − rate(ρ)dt)` is increasing
/// and convex, and the root lies in `[a, a + s y]` when `y ≥ rate(a) dt`, else in
/// `[a + s (y − rate(a) dt), a]`; Newton steps leaving the bracket are replaced by bisection.
fn solve_projection(a: f64, s: f64, y: f64, dt: f64) -> f64 {
    if s <= 0.0 {
        return a;
    }
    let g = y - rate(a) * dt;
    let (mut lo, mut hi) = if g >= 0.0 {
        (a, a + s * y)
    } else {
        (a + s * g, a)
    };
    let mut rho = a;
    for _ in 0..200 {
        let lam_dt = rate(rho) * dt;
        let f = rho - a - s * (y - lam_dt);
        if f == 0.0 {
            return rho;
        }
        if f > 0.0 {
            hi = rho;
        } else {
            lo = rho;
        }
        let slope = if rho.abs() < MAX_LOG_RATE {
            1.0 + s * lam_dt
        } else {
            1.0
        };
        let mut next = rho - f / slope;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - rho).abs() <= 1e-15 * (1.0 + rho.abs()) || hi - lo <= 1e-15 * (1.0 + rho.abs()) {
            return next;
        }
        rho = next;
    }
    rho
}

impl Posterior {
    /// `units` posteriors, all at the prior `N(prior_mean, prior_var · I)`.
    pub fn new(units: usize, cfg: PosteriorConfig) -> Result<Posterior, DesignError> {
        let (d, v, q) = (cfg.dim, cfg.prior_var, cfg.process_noise_per_s);
        check_value(d > 0, "PosteriorConfig::dim", ">= 1", d as f64)?;
        check_value(
            v > 0.0 && v.is_finite(),
            "PosteriorConfig::prior_var",
            "finite and > 0",
            v,
        )?;
        check_len(
            "PosteriorConfig::prior_mean length",
            d,
            cfg.prior_mean.len(),
        )?;
        check_finite("PosteriorConfig::prior_mean", &cfg.prior_mean)?;
        let what = "PosteriorConfig::process_noise_per_s";
        check_value(q >= 0.0 && q.is_finite(), what, "finite and >= 0", q)?;
        let mut post = Posterior {
            means: vec![0.0; units * d],
            covs: vec![0.0; units * d * d],
            counts: vec![0; units],
            skipped: 0,
            pd_resets: 0,
            scratch: vec![0.0; 2 * d],
            units,
            cfg,
        };
        for u in 0..units {
            post.reset_unit(u);
        }
        Ok(post)
    }

    /// Number of units `U`.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.cfg.dim
    }

    /// The prior and drift.
    pub fn config(&self) -> &PosteriorConfig {
        &self.cfg
    }

    /// Mean `μ_u` (`d`). Panics if `u ≥ units()`.
    pub fn mean(&self, u: usize) -> &[f64] {
        let d = self.cfg.dim;
        &self.means[u * d..(u + 1) * d]
    }

    /// Covariance `Σ_u` (`d × d`, row-major, symmetric). Panics if `u ≥ units()`.
    pub fn cov(&self, u: usize) -> &[f64] {
        let d = self.cfg.dim;
        &self.covs[u * d * d..(u + 1) * d * d]
    }

    /// All covariances (`U × d × d`).
    pub(crate) fn covs(&self) -> &[f64] {
        &self.covs
    }

    /// Unit `u`'s covariance, writable, for tests that break it on purpose.
    #[cfg(test)]
    pub(crate) fn covs_mut_for_tests(&mut self, u: usize) -> &mut [f64] {
        let d = self.cfg.dim;
        &mut self.covs[u * d * d..(u + 1) * d * d]
    }

    /// Frames folded into unit `u` since its last reset (or the row count of its last refit).
    /// Panics if `u ≥ units()`.
    pub fn observations(&self, u: usize) -> u64 {
        self.counts[u]
    }

    /// Unit-frames rejected as bad input since construction.
    pub fn skipped_total(&self) -> u64 {
        self.skipped
    }

    /// Units reset to the prior because their covariance stopped being positive definite.
    pub fn pd_resets(&self) -> u64 {
        self.pd_resets
    }

    fn check_unit(&self, u: usize) -> Result<(), DesignError> {
        if u < self.units {
            Ok(())
        } else {
            Err(DesignError::UnitOutOfRange {
                got: u,
                units: self.units,
            })
        }
    }

    /// Folds one frame into unit `u` by the exact rank-one Laplace update (module docs).
    ///
    /// `x`: features (`d`), `y`: count or deconvolved activity in the frame (`≥ 0`, finite),
    /// `dt_s`: frame length in seconds. On an error the unit is unchanged and the frame is
    /// counted in [`Posterior::skipped_total`]. If the updated covariance loses positive
    /// definiteness the unit is reset to the prior and counted in [`Posterior::pd_resets`].
    pub fn observe_unit(
        &mut self,
        u: usize,
        x: &[f32],
        y: f32,
        dt_s: f64,
    ) -> Result<(), DesignError> {
        if let Err(e) = self
            .check_unit(u)
            .and_then(|()| check_frame(self.cfg.dim, x, y, dt_s))
        {
            self.skipped += 1;
            return Err(e);
        }
        let d = self.cfg.dim;
        let mean = &mut self.means[u * d..(u + 1) * d];
        let cov = &mut self.covs[u * d * d..(u + 1) * d * d];
        if rank_one_update(mean, cov, &mut self.scratch, x, y, dt_s) {
            self.counts[u] += 1;
        } else {
            self.pd_resets += 1;
            self.reset_unit(u);
        }
        Ok(())
    }

    /// Folds one frame into every unit. `features`: `U × d` row-major; `y`: `U`; `dt_s`: frame
    /// length in seconds. A unit whose `y` is not finite or negative, or whose features are not
    /// finite, is skipped; if `features`/`y` have the wrong length or `dt_s` is not a positive
    /// finite number the whole frame is skipped. Returns how many units were skipped (also added
    /// to [`Posterior::skipped_total`]). Never panics.
    pub fn observe(&mut self, features: &[f32], y: &[f32], dt_s: f64) -> usize {
        self.observe_threads(features, y, dt_s, 1)
    }

    /// [`Posterior::observe`] with the units split into `threads` contiguous chunks on scoped
    /// threads (`0` is taken as 1). Units are independent, so the result is bit-identical to
    /// `observe` for any `threads`.
    pub fn observe_threads(
        &mut self,
        features: &[f32],
        y: &[f32],
        dt_s: f64,
        threads: usize,
    ) -> usize {
        let (units, d) = (self.units, self.cfg.dim);
        if features.len() != units * d || y.len() != units || check_dt(dt_s).is_err() {
            self.skipped += units as u64;
            return units;
        }
        // Per chunk: (units skipped, units that lost definiteness).
        let work = |r: std::ops::Range<usize>, (means, covs, counts): Chunk<'_>| {
            let (mut skipped, mut lost) = (0usize, Vec::new());
            let mut scratch = vec![0.0; 2 * d];
            let units = means.chunks_exact_mut(d).zip(covs.chunks_exact_mut(d * d));
            for (u, ((mean, cov), count)) in r.zip(units.zip(counts.iter_mut())) {
                let (x, yu) = (&features[u * d..][..d], y[u]);
                if check_frame(d, x, yu, dt_s).is_err() {
                    skipped += 1;
                } else if rank_one_update(mean, cov, &mut scratch, x, yu, dt_s) {
                    *count += 1;
                } else {
                    lost.push(u);
                }
            }
            (skipped, lost)
        };
        let mut rest: Chunk<'_> = (&mut self.means, &mut self.covs, &mut self.counts);
        let state = |r: &std::ops::Range<usize>| {
            let n = r.len();
            let (m, c, k) = std::mem::take(&mut rest);
            let ((m0, m1), (c0, c1), (k0, k1)) = (
                m.split_at_mut(n * d),
                c.split_at_mut(n * d * d),
                k.split_at_mut(n),
            );
            rest = (m1, c1, k1);
            (m0, c0, k0)
        };
        let results = par_ranges(units, threads, state, work);
        let mut skipped = 0;
        for (n, lost) in results {
            skipped += n;
            for u in lost {
                self.pd_resets += 1;
                self.reset_unit(u);
            }
        }
        self.skipped += skipped as u64;
        skipped
    }

    /// Slow drift of the weights: `Σ_u += q · dt · I` for every unit. A negative or non-finite
    /// `dt_s` is ignored.
    pub fn diffuse(&mut self, dt_s: f64) {
        self.diffuse_units(0..self.units, dt_s);
    }

    /// [`Posterior::diffuse`] for the units in `units` only (one imaging plane's cells, which
    /// are observed on that plane's frames). Units past the end are ignored.
    pub fn diffuse_units(&mut self, units: std::ops::Range<usize>, dt_s: f64) {
        let add = self.cfg.process_noise_per_s * dt_s;
        if !(add > 0.0 && add.is_finite()) {
            return;
        }
        let d = self.cfg.dim;
        let units = units.start.min(self.units)..units.end.min(self.units);
        for cov in self.covs[units.start * d * d..units.end * d * d].chunks_exact_mut(d * d) {
            for i in 0..d {
                cov[i * d + i] += add;
            }
        }
    }

    /// Batch MAP refit of unit `u` from all of its data under the prior
    /// `N(prior_mean, prior_var · I)`: Newton's method with Armijo backtracking on the exact
    /// log posterior `Σ_i [y_i ρ_i − F(ρ_i) dt] − ½‖θ − m₀‖²/v`, `ρ_i = θ·x_i` (`F = exp`, with
    /// linear continuation beyond `±MAX_LOG_RATE` so that it stays convex and C¹). Sets `μ_u` to
    /// the MAP and `Σ_u` to the inverse negative Hessian there; starts from the current `μ_u`.
    ///
    /// `xs`: `n × d` row-major features, `ys`: `n` observations, `dt_s`: frame length.
    /// Rows with a non-finite feature or a non-finite or negative `y` are left out (as
    /// [`Posterior::observe`] would skip them). Returns the Newton iterations used; on an error
    /// the unit is unchanged.
    pub fn refit_unit(
        &mut self,
        u: usize,
        xs: &[f32],
        ys: &[f32],
        dt_s: f64,
    ) -> Result<usize, DesignError> {
        self.check_unit(u)?;
        check_dt(dt_s)?;
        let d = self.cfg.dim;
        check_len("xs length (ys.len() × dim)", ys.len() * d, xs.len())?;
        let rows: Vec<usize> = (0..ys.len())
            .filter(|&i| {
                check_obs("ys", i, ys[i]).is_ok() && check_finite("xs", &xs[i * d..][..d]).is_ok()
            })
            .collect();
        let (v, m0) = (self.cfg.prior_var, &self.cfg.prior_mean);
        let objective = |theta: &[f64]| -> f64 {
            let mut total = 0.0;
            for &i in &rows {
                let rho = dot_f32(&xs[i * d..][..d], theta);
                let c = rho.clamp(-MAX_LOG_RATE, MAX_LOG_RATE);
                total += f64::from(ys[i]) * rho - c.exp() * (1.0 + rho - c) * dt_s;
            }
            let prior: f64 = theta.iter().zip(m0).map(|(t, m)| (t - m) * (t - m)).sum();
            total - 0.5 * prior / v
        };
        // Gradient and negative Hessian (lower triangle) of the objective.
        let mut xf = vec![0.0; d];
        let mut derivatives = |theta: &[f64], grad: &mut [f64], hess: &mut [f64]| {
            hess.fill(0.0);
            for i in 0..d {
                grad[i] = -(theta[i] - m0[i]) / v;
                hess[i * d + i] = 1.0 / v;
            }
            for &r in &rows {
                for (o, x) in xf.iter_mut().zip(&xs[r * d..][..d]) {
                    *o = f64::from(*x);
                }
                let rho = dot(&xf, theta);
                let lam_dt = rate(rho) * dt_s;
                axpy(f64::from(ys[r]) - lam_dt, &xf, grad);
                if rho.abs() < MAX_LOG_RATE {
                    for i in 0..d {
                        axpy(lam_dt * xf[i], &xf[..=i], &mut hess[i * d..i * d + i + 1]);
                    }
                }
            }
        };
        let not_pd = |pivot| DesignError::NotPositiveDefinite {
            what: "refit negative Hessian",
            pivot,
        };
        let mut theta = self.mean(u).to_vec();
        let mut obj = objective(&theta);
        let (mut grad, mut hess) = (vec![0.0; d], vec![0.0; d * d]);
        let mut cand = vec![0.0; d];
        let mut iterations = 0;
        let mut last_step = f64::INFINITY;
        let mut converged = false;
        while iterations < REFIT_MAX_ITERS {
            iterations += 1;
            derivatives(&theta, &mut grad, &mut hess);
            cholesky(&mut hess, d).map_err(not_pd)?;
            let mut step = grad.clone();
            chol_solve(&hess, d, &mut step);
            let slope = dot(&grad, &step);
            let scale = 1.0 + theta.iter().fold(0.0f64, |m, t| m.max(t.abs()));
            let size = step.iter().fold(0.0f64, |m, s| m.max(s.abs()));
            if !(slope.is_finite() && obj.is_finite()) {
                return Err(DesignError::NotFinite {
                    what: "refit log posterior",
                    index: iterations,
                });
            }
            // Near the optimum the full Newton step is safe and the objective change is below
            // its rounding error, so skip the line search there.
            let mut alpha = 1.0;
            let mut accepted = false;
            for _ in 0..60 {
                for k in 0..d {
                    cand[k] = theta[k] + alpha * step[k];
                }
                if size <= 1e-6 * scale {
                    accepted = true;
                    break;
                }
                let f = objective(&cand);
                if f.is_finite() && f >= obj + 1e-4 * alpha * slope {
                    accepted = true;
                    break;
                }
                alpha *= 0.5;
            }
            last_step = alpha * size;
            if !accepted {
                break;
            }
            std::mem::swap(&mut theta, &mut cand);
            obj = objective(&theta);
            if last_step <= 1e-10 * scale {
                converged = true;
                break;
            }
        }
        if !converged {
            return Err(DesignError::NotConverged {
                unit: u,
                iterations,
                last_step,
            });
        }
        derivatives(&theta, &mut grad, &mut hess);
        cholesky(&mut hess, d).map_err(not_pd)?;
        let mut inv = vec![0.0; d * d];
        chol_inverse(&hess, d, &mut vec![0.0; d * d], &mut inv);
        self.means[u * d..(u + 1) * d].copy_from_slice(&theta);
        self.covs[u * d * d..(u + 1) * d * d].copy_from_slice(&inv);
        self.counts[u] = rows.len() as u64;
        Ok(iterations)
    }

    /// Replaces the units in `range` by `count` units at the prior, keeping every other unit's
    /// posterior (one imaging plane's cells appeared or vanished; the other planes' readouts are
    /// still theirs). Units after the range move by `count - range.len()`. Panics if the range
    /// is not within `0..units()`.
    pub fn splice_units(&mut self, range: std::ops::Range<usize>, count: usize) {
        let d = self.cfg.dim;
        let (start, end) = (range.start, range.end);
        self.means
            .splice(start * d..end * d, std::iter::repeat_n(0.0, count * d));
        self.covs.splice(
            start * d * d..end * d * d,
            std::iter::repeat_n(0.0, count * d * d),
        );
        self.counts
            .splice(start..end, std::iter::repeat_n(0, count));
        self.units = self.units - (end - start) + count;
        for u in start..start + count {
            self.reset_unit(u);
        }
    }

    /// Sends unit `u` back to the prior (a cell that appeared or vanished). Panics if
    /// `u ≥ units()`.
    pub fn reset_unit(&mut self, u: usize) {
        let d = self.cfg.dim;
        self.means[u * d..(u + 1) * d].copy_from_slice(&self.cfg.prior_mean);
        let cov = &mut self.covs[u * d * d..(u + 1) * d * d];
        cov.fill(0.0);
        for i in 0..d {
            cov[i * d + i] = self.cfg.prior_var;
        }
        self.counts[u] = 0;
    }

    /// Predicted rate `exp(μ_u·x)` in events per second (log-rate clamped to ±30).
    /// Panics if `u ≥ units()` or `x.len() != dim()`.
    pub fn predict_rate(&self, u: usize, x: &[f32]) -> f64 {
        rate(self.predict_log_rate_and_var(u, x).0)
    }

    /// Every unit's rate at its own features (`features`: `U × d` row-major) under the posterior
    /// mean, into `out` (resized to `U`). Skips the variance, so it is cheap enough for every
    /// frame. A unit with non-finite features gets `NaN`.
    pub fn predict_rates(&self, features: &[f32], out: &mut Vec<f64>) {
        self.predict_rates_units(0..self.units, features, out);
    }

    /// [`Posterior::predict_rates`] for the units in `units` only: `features` holds their rows
    /// (`units.len() × d`), `out` gets one rate each. Units past the end get `NaN`.
    pub fn predict_rates_units(
        &self,
        units: std::ops::Range<usize>,
        features: &[f32],
        out: &mut Vec<f64>,
    ) {
        let d = self.cfg.dim;
        let first = units.start;
        out.clear();
        out.extend(units.map(|u| {
            let k = u - first;
            match features.get(k * d..(k + 1) * d) {
                Some(x) if u < self.units && x.iter().all(|v| v.is_finite()) => {
                    rate(dot_f32(x, self.mean(u)))
                }
                _ => f64::NAN,
            }
        }));
    }

    /// Predicted log-rate `μ_u·x` and its posterior variance `xᵀΣ_u x`.
    /// Panics if `u ≥ units()` or `x.len() != dim()`.
    pub fn predict_log_rate_and_var(&self, u: usize, x: &[f32]) -> (f64, f64) {
        let d = self.cfg.dim;
        assert_eq!(x.len(), d, "x length must equal the posterior's dim");
        let cov = self.cov(u);
        let var = (0..d)
            .map(|i| f64::from(x[i]) * dot_f32(x, &cov[i * d..(i + 1) * d]))
            .sum();
        (dot_f32(x, self.mean(u)), var)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::design::linalg::test_ref;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal, Poisson};

    fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> f32 {
        if mean <= 0.0 {
            0.0
        } else {
            Poisson::new(mean).unwrap().sample(rng) as f32
        }
    }

    /// `n` frames: features N(0, sd²) plus a constant-1 last coordinate, Poisson counts.
    pub(crate) fn simulate(
        theta: &[f64],
        n: usize,
        sd: f64,
        dt: f64,
        seed: u64,
    ) -> (Vec<f32>, Vec<f32>) {
        let d = theta.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, sd).unwrap();
        let (mut xs, mut ys) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        for _ in 0..n {
            let mut x: Vec<f32> = (0..d - 1).map(|_| normal.sample(&mut rng) as f32).collect();
            x.push(1.0);
            let rho: f64 = x.iter().zip(theta).map(|(a, b)| f64::from(*a) * b).sum();
            ys.push(poisson(&mut rng, rho.exp() * dt));
            xs.extend(x);
        }
        (xs, ys)
    }

    pub(crate) fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Reference MAP of `N(μ₀, Σ₀)` × one Poisson frame by a full `d`-dimensional damped Newton
    /// solve (LU, no rank-one shortcut); returns the mode and the negative Hessian there.
    fn exact_map(mu0: &[f64], s0: &[f64], x: &[f64], y: f64, dt: f64) -> (Vec<f64>, Vec<f64>) {
        let d = mu0.len();
        let p0 = test_ref::inverse(s0, d);
        let rho = |t: &[f64]| -> f64 { t.iter().zip(x).map(|(a, b)| a * b).sum() };
        let f = |t: &[f64]| {
            let q: f64 = (0..d * d)
                .map(|k| (t[k / d] - mu0[k / d]) * p0[k] * (t[k % d] - mu0[k % d]))
                .sum();
            y * rho(t) - rho(t).exp() * dt - 0.5 * q
        };
        let neg_hess = |t: &[f64]| -> Vec<f64> {
            let w = rho(t).exp() * dt;
            (0..d * d)
                .map(|k| p0[k] + w * x[k / d] * x[k % d])
                .collect()
        };
        let mut th = mu0.to_vec();
        for _ in 0..200 {
            let r = y - rho(&th).exp() * dt;
            let mut g: Vec<f64> = x.iter().map(|xi| r * xi).collect();
            for k in 0..d * d {
                g[k / d] -= p0[k] * (th[k % d] - mu0[k % d]);
            }
            let step = test_ref::solve(&neg_hess(&th), d, &g);
            let mut a = 1.0;
            let at =
                |a: f64| -> Vec<f64> { th.iter().zip(&step).map(|(t, s)| t + a * s).collect() };
            while f(&at(a)) < f(&th) && a > 1e-12 {
                a *= 0.5;
            }
            th = at(a);
            if step.iter().all(|s| s.abs() < 1e-15) {
                break;
            }
        }
        let h = neg_hess(&th);
        (th, h)
    }

    /// Test 1: the rank-one update equals the exact MAP of (Gaussian prior × one Poisson
    /// frame), found by [`exact_map`], and its covariance equals the inverse Hessian there.
    #[test]
    fn one_observation_is_exact_map_and_inverse_hessian() {
        let cfg = PosteriorConfig {
            prior_mean: vec![0.3, -0.2, 0.1, 1.0],
            ..PosteriorConfig::isotropic(4, 0.7)
        };
        let mut post = Posterior::new(1, cfg).unwrap();
        // A few frames first, so that the prior of the tested frame is not isotropic.
        for (x, y) in [
            ([0.5f32, -1.0, 0.2, 1.0], 2.0f32),
            ([-0.3, 0.8, 1.1, 1.0], 0.0),
            ([1.2, 0.4, -0.7, 1.0], 5.0),
        ] {
            post.observe_unit(0, &x, y, 0.1).unwrap();
        }
        let cases = [
            ([0.9f32, -0.4, 0.3, 1.0], 4.0f32, 0.05),
            ([0.2, 1.5, -0.3, 1.0], 0.0, 0.2),
            ([-1.0, 0.3, 0.8, 1.0], 40.0, 0.1),
            ([0.1, 0.1, 0.1, 1.0], 0.37, 0.033),
        ];
        for (x, y, dt) in cases {
            let (mu0, s0) = (post.mean(0).to_vec(), post.cov(0).to_vec());
            post.observe_unit(0, &x, y, dt).unwrap();
            let xf: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let (mode, h) = exact_map(&mu0, &s0, &xf, f64::from(y), dt);
            assert_close(post.mean(0), &mode, 1e-8, "mean");
            assert_close(post.cov(0), &test_ref::inverse(&h, 4), 1e-8, "cov");
        }
    }

    /// One plane's units replaced (cells appeared or vanished there): the other units keep
    /// exactly their posteriors, the new ones start at the prior, and a range's own drift and
    /// prediction touch only that range, as the whole-population calls do unit by unit.
    #[test]
    fn splicing_one_range_keeps_every_other_unit() {
        let cfg = PosteriorConfig {
            prior_mean: vec![0.1, 0.0, -1.0],
            process_noise_per_s: 0.5,
            ..PosteriorConfig::isotropic(3, 0.7)
        };
        let mut post = Posterior::new(5, cfg.clone()).unwrap();
        for u in 0..5 {
            let x = [0.3 * u as f32, -0.5, 1.0];
            post.observe_unit(u, &x, u as f32, 0.1).unwrap();
        }
        let before: Vec<(Vec<f64>, Vec<f64>)> = (0..5)
            .map(|u| (post.mean(u).to_vec(), post.cov(u).to_vec()))
            .collect();
        // Units 1..3 (two cells) become three cells.
        post.splice_units(1..3, 3);
        assert_eq!(post.units(), 6);
        assert_eq!(
            (post.mean(0), post.cov(0)),
            (&before[0].0[..], &before[0].1[..])
        );
        for (u, old) in [(4, 3), (5, 4)] {
            assert_eq!(post.mean(u), &before[old].0[..]);
            assert_eq!(post.cov(u), &before[old].1[..]);
            assert_eq!(post.observations(u), 1);
        }
        let prior = Posterior::new(1, cfg).unwrap();
        for u in 1..4 {
            assert_eq!(post.mean(u), prior.mean(0));
            assert_eq!(post.cov(u), prior.cov(0));
            assert_eq!(post.observations(u), 0);
        }
        // Drift on units 1..4 only.
        let mut whole = post.clone();
        whole.diffuse(0.2);
        post.diffuse_units(1..4, 0.2);
        for u in 0..6 {
            let want = if (1..4).contains(&u) {
                whole.cov(u)
            } else {
                &before[if u == 0 { 0 } else { u - 1 }].1[..]
            };
            assert_eq!(post.cov(u), want, "unit {u}");
        }
        // Rates of a range from that range's rows equal the whole population's.
        let xs: Vec<f32> = (0..6 * 3).map(|k| (k as f32 * 0.37).sin()).collect();
        let (mut all, mut some) = (Vec::new(), Vec::new());
        post.predict_rates(&xs, &mut all);
        post.predict_rates_units(2..5, &xs[2 * 3..5 * 3], &mut some);
        assert_eq!(&all[2..5], &some[..]);
        // Everything removed, then a population from nothing.
        post.splice_units(0..6, 0);
        assert_eq!(post.units(), 0);
        post.splice_units(0..0, 2);
        assert_eq!(post.units(), 2);
    }

    /// Test 7: bad input is skipped and counted, leaves the posterior unchanged, never panics;
    /// functions returning `Result` report wrong lengths.
    #[test]
    fn bad_input_is_skipped_counted_or_rejected() {
        let d = 3;
        let mut post = Posterior::new(3, PosteriorConfig::isotropic(d, 0.5)).unwrap();
        let feats = [0.1f32, 0.2, 1.0, -0.3, 0.5, 1.0, 0.7, -0.1, 1.0];
        post.observe(&feats, &[1.0, 2.0, 0.0], 0.1);
        let snapshot = post.clone();
        let unchanged = |p: &Posterior, q: &Posterior, u: usize| {
            p.mean(u) == q.mean(u) && p.cov(u) == q.cov(u) && p.observations(u) == q.observations(u)
        };
        assert_eq!(post.observe(&feats, &[1.0, f32::NAN, 2.0], 0.1), 1);
        assert!(unchanged(&post, &snapshot, 1));
        assert!(!unchanged(&post, &snapshot, 0) && !unchanged(&post, &snapshot, 2));
        let snapshot = post.clone();
        let mut bad = feats;
        bad[7] = f32::NAN;
        bad[0] = f32::INFINITY;
        assert_eq!(post.observe(&bad, &[1.0, 1.0, f32::INFINITY], 0.1), 2);
        assert!(unchanged(&post, &snapshot, 0) && unchanged(&post, &snapshot, 2));
        let snapshot = post.clone();
        assert_eq!(post.observe(&feats, &[-1.0, 0.0, 0.0], 0.1), 1);
        assert!(unchanged(&post, &snapshot, 0));
        let snapshot = post.clone();
        assert_eq!(post.observe(&feats[..8], &[1.0, 1.0, 1.0], 0.1), 3);
        assert_eq!(post.observe(&feats, &[1.0, 1.0], 0.1), 3);
        assert_eq!(post.observe(&feats, &[1.0, 1.0, 1.0], 0.0), 3);
        assert_eq!(post.observe(&feats, &[1.0, 1.0, 1.0], f64::NAN), 3);
        assert_eq!(post.observe(&[], &[], 0.1), 3);
        assert!((0..3).all(|u| unchanged(&post, &snapshot, u)));
        assert_eq!(post.skipped_total(), 1 + 2 + 1 + 5 * 3);
        assert!(matches!(
            post.observe_unit(0, &feats[..2], 1.0, 0.1),
            Err(DesignError::Shape {
                expected: 3,
                got: 2,
                ..
            })
        ));
        assert!(matches!(
            post.observe_unit(5, &feats[..3], 1.0, 0.1),
            Err(DesignError::UnitOutOfRange { got: 5, units: 3 })
        ));
        assert!(matches!(
            post.observe_unit(0, &bad[..3], 1.0, 0.1),
            Err(DesignError::NotFinite { index: 0, .. })
        ));
        assert!(matches!(
            post.refit_unit(0, &feats[..8], &[1.0, 1.0, 1.0], 0.1),
            Err(DesignError::Shape {
                expected: 9,
                got: 8,
                ..
            })
        ));
        assert!(post.refit_unit(9, &feats, &[1.0, 1.0, 1.0], 0.1).is_err());
        assert!(post.refit_unit(0, &feats, &[1.0, 1.0, 1.0], -1.0).is_err());
        assert!((0..3).all(|u| unchanged(&post, &snapshot, u)));
        // A non-finite row is left out of a refit, as observe would skip it.
        let mut a = post.clone();
        a.refit_unit(0, &bad, &[1.0, 2.0, 0.0], 0.1).unwrap();
        post.refit_unit(0, &feats[3..6], &[2.0], 0.1).unwrap();
        assert_eq!(a.mean(0), post.mean(0));
        // Invalid configs.
        let breakers: [fn(&mut PosteriorConfig); 6] = [
            |c| c.dim = 0,
            |c| c.prior_var = 0.0,
            |c| c.prior_var = f64::NAN,
            |c| c.prior_mean.truncate(2),
            |c| c.prior_mean[1] = f64::NAN,
            |c| c.process_noise_per_s = -1.0,
        ];
        for breaker in breakers {
            let mut cfg = PosteriorConfig::isotropic(3, 1.0);
            breaker(&mut cfg);
            assert!(Posterior::new(2, cfg).is_err());
        }
    }

    #[test]
    fn lost_definiteness_resets_to_prior_and_drift_widens() {
        let cfg = PosteriorConfig {
            process_noise_per_s: 0.2,
            ..PosteriorConfig::isotropic(2, 0.5)
        };
        let mut post = Posterior::new(2, cfg).unwrap();
        post.observe_unit(0, &[1.0, 1.0], 3.0, 0.1).unwrap();
        post.covs[0] = -1.0;
        post.observe_unit(0, &[1.0, 1.0], 3.0, 0.1).unwrap();
        assert_eq!(post.pd_resets(), 1);
        assert_eq!(post.cov(0), &[0.5, 0.0, 0.0, 0.5]);
        assert_eq!(post.mean(0), &[0.0, 0.0]);
        assert_eq!(post.observations(0), 0);
        post.covs[4] = -1.0;
        assert_eq!(post.observe_threads(&[1.0; 4], &[1.0, 1.0], 0.1, 2), 0);
        assert_eq!(post.pd_resets(), 2);
        assert_eq!(post.cov(1), &[0.5, 0.0, 0.0, 0.5]);
        post.diffuse(0.5);
        assert_close(post.cov(1), &[0.6, 0.0, 0.0, 0.6], 1e-15, "diffused");
        post.diffuse(f64::NAN);
        post.diffuse(-1.0);
        assert_close(post.cov(1), &[0.6, 0.0, 0.0, 0.6], 1e-15, "ignored");
        // A huge rate is clamped rather than overflowing.
        post.observe_unit(1, &[100.0, 100.0], 1e6, 1.0).unwrap();
        assert!(post.mean(1).iter().all(|v| v.is_finite()));
        assert!(post.predict_rate(1, &[100.0, 100.0]).is_finite());
        let (m, v) = post.predict_log_rate_and_var(1, &[1.0, 0.0]);
        assert!(m.is_finite() && v > 0.0);
    }
}
