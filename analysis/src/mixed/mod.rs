//! Generalised linear mixed models with one random intercept per group (per presynaptic cell):
//! y_ij | u_i ~ F(exp(x_ij β + offset_ij + u_i)), u_i ~ N(0, σ²).
//!
//! The intercepts are independent across groups, so the marginal likelihood is a product of
//! one-dimensional integrals, each computed by adaptive Gauss–Hermite quadrature (AGHQ: nodes
//! centred on the group's conditional mode, scaled by its curvature; one node is the Laplace
//! approximation). β and log σ are found by Newton on the marginal log-likelihood, whose
//! gradient and Hessian are posterior moments of the integrand's derivatives under the same
//! quadrature; SEs come from the inverse of the negated Hessian. Checked against a brute-force numpy/scipy quadrature in `tests/peer_statsmodels.rs`.
//!
//! Tweedie: the kernel is the quasi-likelihood (see [`Family::kernel`]) with φ fixed in each
//! fit, then re-estimated from conditional Pearson residuals until it settles: a penalised
//! quasi-likelihood approximation, not the exact Tweedie marginal likelihood.

mod fit;
mod quadrature;

pub use fit::fit_glmm;
pub use quadrature::gauss_hermite;

use crate::glm::{Coefficient, Family};

/// Settings of the mixed-model fit.
#[derive(Debug, Clone, Copy)]
pub struct MixedOptions {
    /// Quadrature nodes per group (1 = Laplace approximation).
    pub nodes: usize,
    pub max_iterations: usize,
    /// Newton stops when the decrement gᵀ H⁻¹ g falls below this (log-likelihood units).
    pub tolerance: f64,
    /// Below this random-intercept SD the fit is at the boundary σ = 0 and is reported as the
    /// fixed-effect GLM.
    pub min_sd: f64,
}

impl Default for MixedOptions {
    fn default() -> Self {
        Self {
            nodes: 15,
            max_iterations: 200,
            tolerance: 1e-10,
            min_sd: 1e-3,
        }
    }
}

/// How the random intercept was handled.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum MixedMethod {
    /// Marginal likelihood by adaptive Gauss–Hermite quadrature with this many nodes.
    AdaptiveGaussHermite { nodes: usize },
    /// The mixed fit was not used; estimates are the fixed-effect GLM's. `reason` says why.
    FixedEffectFallback { reason: String },
}

/// A fitted random-intercept GLMM.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MixedFit {
    pub family: Family,
    pub method: MixedMethod,
    pub coefficients: Vec<Coefficient>,
    /// Covariance of the fixed effects (row-major p × p).
    pub covariance: Vec<f64>,
    /// Random-intercept standard deviation σ (0 under the fallback).
    pub random_sd: f64,
    /// Delta-method SE of σ (NaN under the fallback).
    pub random_sd_std_error: f64,
    /// Dispersion φ (1 for Poisson).
    pub scale: f64,
    /// Marginal log-likelihood (quasi-likelihood for Tweedie); the GLM's under the fallback.
    pub log_likelihood: f64,
    pub n_groups: usize,
    pub iterations: usize,
    /// Conditional mode of each group's intercept u_i.
    pub group_modes: Vec<f64>,
}

impl MixedFit {
    pub fn estimates(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.estimate).collect()
    }

    pub fn coefficient(&self, name: &str) -> Option<&Coefficient> {
        self.coefficients.iter().find(|c| c.name == name)
    }

    /// True when the estimates are the fixed-effect fallback's.
    pub fn is_fallback(&self) -> bool {
        matches!(self.method, MixedMethod::FixedEffectFallback { .. })
    }
}
