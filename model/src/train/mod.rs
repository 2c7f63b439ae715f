//! Learning the twin from recordings.
//!
//! - [`recording`]: one animal's data aligned per twin frame (what fits and evaluations read).
//! - [`clips`]: batches of gap-free clips as per-frame tensors.
//! - [`params`]: a fit's parameters, trained ones as autodiff variables.
//! - [`init`]: fresh weights for any config; a pretrained core with fresh per-mouse parts.
//! - [`placement`]: readouts start where their units correlate best with the core.
//! - [`fit`]: Poisson loss after a burn-in, Adam, early stopping on held-out clips.

pub mod clips;
pub mod fit;
pub mod init;
pub mod params;
pub mod placement;
pub mod recording;

pub use fit::{FitConfig, FitReport, Fitted, MouseFit, STOPPED_BY_FLAG, fit, fit_until};
pub use init::{fresh_weights, transfer_weights};
pub use params::FitScope;
pub use recording::{BehaviourStandardisation, RecordedTrial, Recording, RecordingMeta};
