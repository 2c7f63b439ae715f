//! Response families with the log link: Poisson and Tweedie (1 < p < 2, compound
//! Poisson–gamma). Each gives its variance function, unit deviance and the log-likelihood kernel
//! in the linear predictor η that the mixed model integrates.

use crate::error::{Result, invalid};
use crate::special::ln_gamma;

/// A GLM family; the link is always log (μ = exp η).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// Counts; variance μ, dispersion fixed at 1.
    Poisson,
    /// Non-negative continuous with exact zeros; variance φ μ^p, φ estimated.
    Tweedie { var_power: f64 },
}

impl Family {
    /// Checks the variance power and the response (non-negative, integers for Poisson).
    pub fn validate(&self, y: &[f64]) -> Result<()> {
        if let Family::Tweedie { var_power } = *self
            && !(var_power > 1.0 && var_power < 2.0)
        {
            return Err(invalid(
                "var_power",
                format!("{var_power} must lie in (1, 2)"),
            ));
        }
        if let Some(i) = y.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(invalid(
                "response",
                format!("row {i}: {} is not a finite value ≥ 0", y[i]),
            ));
        }
        if *self == Family::Poisson
            && let Some(i) = y.iter().position(|v| v.fract() != 0.0)
        {
            return Err(invalid(
                "response",
                format!("row {i}: Poisson count {} is not an integer", y[i]),
            ));
        }
        Ok(())
    }

    /// Variance power p: V(μ) = μ^p.
    pub fn power(&self) -> f64 {
        match *self {
            Family::Poisson => 1.0,
            Family::Tweedie { var_power } => var_power,
        }
    }

    /// Whether the dispersion φ is estimated (Pearson χ² / residual df) or fixed at 1.
    pub fn estimates_scale(&self) -> bool {
        matches!(self, Family::Tweedie { .. })
    }

    /// Unit deviance d(y, μ).
    pub fn unit_deviance(&self, y: f64, mu: f64) -> f64 {
        match *self {
            Family::Poisson => {
                let t = if y > 0.0 { y * (y / mu).ln() } else { 0.0 };
                2.0 * (t - (y - mu))
            }
            Family::Tweedie { var_power: p } => {
                let a = if y > 0.0 {
                    y.powf(2.0 - p) / ((1.0 - p) * (2.0 - p))
                } else {
                    0.0
                };
                2.0 * (a - y * mu.powf(1.0 - p) / (1.0 - p) + mu.powf(2.0 - p) / (2.0 - p))
            }
        }
    }

    /// The part of the log-likelihood free of μ: −ln y! for Poisson, 0 for Tweedie (whose
    /// quasi-likelihood has none). Kept out of [`Family::kernel`], which runs in inner loops.
    pub fn log_normaliser(&self, y: f64) -> f64 {
        match *self {
            Family::Poisson => -ln_gamma(y + 1.0),
            Family::Tweedie { .. } => 0.0,
        }
    }

    /// Log-likelihood kernel ℓ(η) of one observation and its first two derivatives in η, with
    /// dispersion φ. Poisson: the log-likelihood less [`Family::log_normaliser`]. Tweedie: the
    /// quasi-likelihood
    /// (y μ^{1-p}/(1-p) − μ^{2-p}/(2-p)) / φ, which differs from the exact Tweedie
    /// log-likelihood only by a term free of μ, so for fixed φ it has the same maximiser.
    pub fn kernel(&self, y: f64, eta: f64, phi: f64) -> (f64, f64, f64) {
        match *self {
            Family::Poisson => {
                let mu = eta.exp();
                (y * eta - mu, y - mu, -mu)
            }
            Family::Tweedie { var_power: p } => {
                let a = ((1.0 - p) * eta).exp(); // μ^{1-p}
                let b = ((2.0 - p) * eta).exp(); // μ^{2-p}
                let l = (y * a / (1.0 - p) - b / (2.0 - p)) / phi;
                let d1 = (y * a - b) / phi;
                let d2 = (y * (1.0 - p) * a - (2.0 - p) * b) / phi;
                (l, d1, d2)
            }
        }
    }
}
