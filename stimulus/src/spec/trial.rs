//! Trials: a sequence of (spec, duration) separated by mean-luminance gray.
//!
//! ```toml
//! gray_s = 1.0
//! [[trials]]
//! duration_s = 2.0
//! spec = { kind = "grating", direction_deg = 90, sf_cpd = 0.04, tf_hz = 2, contrast = 1 }
//! ```
//! At a display rate of `fps`, every duration is rounded to whole frames: gray, trial 0, gray,
//! trial 1, ..., gray.

use super::check::{SpecError, check, invalid};
use super::{FieldOfView, StimulusSpec};
use serde::{Deserialize, Serialize};

fn default_gray_s() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    pub spec: StimulusSpec,
    pub duration_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialList {
    /// Gray before each trial and after the last, seconds.
    #[serde(default = "default_gray_s")]
    pub gray_s: f64,
    pub trials: Vec<Trial>,
}

/// What a display frame of a trial list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Showing {
    Gray,
    /// Trial `index`, its `frame`-th frame (0 = onset).
    Trial {
        index: usize,
        frame: u64,
    },
}

fn frames(seconds: f64, fps: f64) -> u64 {
    (seconds * fps).round().max(0.0) as u64
}

impl TrialList {
    pub fn validate(&self, fov: Option<&FieldOfView>) -> Result<(), SpecError> {
        check(
            "trials",
            "gray_s",
            self.gray_s,
            (0.0..=3600.0).contains(&self.gray_s),
            "[0, 3600] s",
        )?;
        if self.trials.is_empty() {
            return Err(invalid(
                "trials",
                "trials",
                "no trials: give at least one".into(),
            ));
        }
        for t in &self.trials {
            check(
                "trials",
                "duration_s",
                t.duration_s,
                t.duration_s > 0.0 && t.duration_s <= 3600.0,
                "(0, 3600] s",
            )?;
            match fov {
                Some(f) => t.spec.validate_for(f)?,
                None => t.spec.validate()?,
            }
        }
        Ok(())
    }

    /// Display frames in the whole list at `fps`.
    pub fn total_frames(&self, fps: f64) -> u64 {
        let g = frames(self.gray_s, fps);
        g + self
            .trials
            .iter()
            .map(|t| frames(t.duration_s, fps).max(1) + g)
            .sum::<u64>()
    }

    /// What display frame `frame` shows at `fps`.
    pub fn at_frame(&self, frame: u64, fps: f64) -> Showing {
        let g = frames(self.gray_s, fps);
        let mut start = 0u64;
        for (index, t) in self.trials.iter().enumerate() {
            start += g;
            if frame < start {
                return Showing::Gray;
            }
            let n = frames(t.duration_s, fps).max(1);
            if frame < start + n {
                return Showing::Trial {
                    index,
                    frame: frame - start,
                };
            }
            start += n;
        }
        Showing::Gray
    }
}
