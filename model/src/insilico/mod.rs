//! In-silico experiments on a twin: scoring it on a recording, tuning curves from drifting
//! gratings, and most-exciting inputs.
//!
//! - [`evaluate`]: run the twin over a [`Recording`](crate::train::Recording) (reset at each
//!   segment start) and score every unit with [`metrics`](crate::metrics): CC_abs, CC_max,
//!   CC_norm over repeated trials, single-trial correlation, FEVE, and correlation with the
//!   simulator's true rates.
//! - [`tuning`]: direction and orientation tuning (preferred angles, vector-sum OSI and DSI)
//!   from full-field drifting sinusoidal gratings at the twin's stimulus resolution.
//! - [`mei`]: a most-exciting input per unit by gradient ascent on the stimulus, matched
//!   after every step to a [`StimulusBudget`] (mean luminance and RMS contrast).
//!
//! The design phase of the inception loop (issue #18) adds:
//! - [`budget`]: the luminance and RMS-contrast budget, matching any image to it.
//! - [`responder`]: what MEIs and screens drive ([`Responder`]): the twin, or linear filters
//!   with a closed-form optimum.
//! - [`library`]: ≥ 10,000 parametric candidates from a seed (gratings, Gabors, plaids,
//!   corners, curves, 1/f noise).
//! - [`screen`]: each target's predicted best of the library, streamed in batches.
//! - [`target_rule`]: the pre-registered rule that picks target units from held-out scores.
//!
//! All drive the twin through [`Twin::step`](crate::Twin::step); the stimulus is in [0, 1]
//! (u8 / 255, as fnn), mean gray is 128.

pub mod budget;
pub mod evaluate;
pub mod library;
pub mod mei;
pub mod responder;
pub mod screen;
pub mod target_rule;
pub mod tuning;

pub use budget::{BudgetCheck, BudgetError, ImageStats, StimulusBudget};
pub use evaluate::{EvalOptions, EvalReport, UnitScores, evaluate};
pub use library::{Candidate, Library};
pub use mei::{Mei, MeiOptions, mei, mei_with, response_to_clip};
pub use responder::{LinearUnits, Responder, TwinResponder};
pub use screen::{LibraryBest, ScreenOptions, ScreenReport, screen};
pub use target_rule::{RankBy, TargetRule, TargetSelection};
pub use tuning::{GratingParams, TuningOptions, TuningReport, UnitTuning, tuning};

/// Mean gray as a u8 level.
pub const MEAN_GRAY_U8: u8 = 128;

/// Mean gray in the twin's [0, 1] pixel units.
pub const MEAN_GRAY: f64 = MEAN_GRAY_U8 as f64 / 255.0;

/// Median of the finite values, `None` when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
pub(crate) mod testnet {
    //! The small parity network (fixtures), shared by the in-silico tests.
    use std::path::PathBuf;

    use candle_core::Device;

    use crate::{Twin, TwinConfig, Weights};

    pub fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    pub fn twin() -> Twin {
        let cfg =
            TwinConfig::from_json(&std::fs::read_to_string(fixture("parity_config.json")).unwrap())
                .unwrap();
        let w = Weights::load(&fixture("parity_weights.safetensors")).unwrap();
        Twin::new(cfg, &w, &Device::Cpu).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_skips_nan_and_averages_the_middle_pair() {
        assert_eq!(median([3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN]), None);
    }
}
