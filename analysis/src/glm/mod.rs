//! Generalised linear models with a log link and an offset, fitted by iteratively reweighted
//! least squares; standard errors from the inverse Fisher information, Wald tests.
//!
//! Conventions follow statsmodels' `GLM` (checked against it in `tests/peer_statsmodels.rs`):
//! Tweedie's dispersion is Pearson χ² / (n − p), Poisson's is 1, Wald p-values use the normal.

mod family;
mod irls;

pub use family::Family;
pub use irls::{GlmOptions, fit_glm};

use crate::special::normal_two_sided_p;

/// One coefficient with its standard error and Wald test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Coefficient {
    pub name: String,
    pub estimate: f64,
    pub std_error: f64,
    /// Wald z = estimate / std_error.
    pub z: f64,
    /// Two-sided p-value of z under the standard normal.
    pub p_value: f64,
}

impl Coefficient {
    pub(crate) fn new(name: &str, estimate: f64, std_error: f64) -> Self {
        let z = estimate / std_error;
        Self {
            name: name.to_string(),
            estimate,
            std_error,
            z,
            p_value: normal_two_sided_p(z),
        }
    }
}

/// A fitted GLM.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GlmFit {
    pub family: Family,
    pub coefficients: Vec<Coefficient>,
    /// Covariance of the estimates (row-major, p × p), scaled by the dispersion.
    pub covariance: Vec<f64>,
    /// Dispersion φ (1 for Poisson).
    pub scale: f64,
    pub deviance: f64,
    pub iterations: usize,
    /// Fitted means μ per row.
    pub fitted: Vec<f64>,
}

impl GlmFit {
    /// Point estimates in design-column order.
    pub fn estimates(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.estimate).collect()
    }

    /// A coefficient by design-column name.
    pub fn coefficient(&self, name: &str) -> Option<&Coefficient> {
        self.coefficients.iter().find(|c| c.name == name)
    }
}
