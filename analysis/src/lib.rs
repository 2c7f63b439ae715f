//! Statistics for twin analyses: GLMs, mixed models, tests, decoders.
//!
//! Built for issue #21 (what the twin knows about anatomy) and #18 (MEI vs control verdicts).
//! Pure Rust, small dense linear algebra of its own; every estimator is checked against scipy or
//! statsmodels in `tests/` (Python peer through `TWINLOOP_PYTHON`).
//!
//! # Layout
//! - [`special`]: log-gamma, incomplete gamma/beta → normal and Student-t tail probabilities.
//! - [`linalg`]: Cholesky solves and inverses; [`design`]: a named design matrix.
//! - [`glm`]: Poisson and Tweedie log-link GLMs with offset (IRLS), Wald tests.
//! - [`mixed`]: the same families with a per-group random intercept (adaptive Gauss–Hermite).
//! - [`multiple`]: Benjamini–Hochberg q-values.
//! - [`compare`]: Welch's t-test, two-sample and paired permutation tests.
//! - [`decode`]: multinomial logistic regression, spatially blocked cross-validation;
//!   [`celltypes`]: type and area decoded from embeddings with it.
//! - [`connectome`]: a simulated connectome with a planted wiring rule and its ground truth.
//! - [`wiring`]: the two-scale analysis of Ding et al. (2025) on embeddings and pairs tables.
//!
//! Data flow for the wiring question: tables (CSV, `SCHEMA.md`, or [`connectome::simulate`])
//! → [`wiring::analyze`] → pair features → [`mixed::fit_glmm`] per measure and scale →
//! [`multiple::bh_qvalues`] over the per-type slopes.

pub mod celltypes;
pub mod compare;
pub mod connectome;
pub mod decode;
pub mod design;
pub mod error;
pub mod glm;
pub mod linalg;
pub mod mixed;
pub mod multiple;
pub mod special;
pub mod wiring;

pub use error::{Error, Result};
