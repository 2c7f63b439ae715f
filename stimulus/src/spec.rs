//! Stimulus specs: what to show, in visual degrees and seconds.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error("{kind}.{field} = {value} is out of range: {allowed}")]
    OutOfRange {
        kind: &'static str,
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
}

/// One stimulus. Angles in degrees, spatial frequency in cycles per degree, temporal frequency
/// in cycles per second (Hz), contrast as Michelson contrast in [0, 1] around mean gray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StimulusSpec {
    /// Uniform mean-luminance gray (the inter-trial screen).
    Gray,
    /// A full-field sinusoidal grating drifting along `direction_deg` (0 = rightward, 90 = up);
    /// `tf_hz = 0` makes it static.
    Grating {
        direction_deg: f64,
        sf_cpd: f64,
        tf_hz: f64,
        contrast: f64,
        #[serde(default)]
        phase_deg: f64,
    },
}

impl StimulusSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            StimulusSpec::Gray => "gray",
            StimulusSpec::Grating { .. } => "grating",
        }
    }

    /// Check every parameter; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), SpecError> {
        match *self {
            StimulusSpec::Gray => Ok(()),
            StimulusSpec::Grating {
                sf_cpd,
                tf_hz,
                contrast,
                ..
            } => {
                let check = |field, value: f64, ok: bool, allowed| {
                    if ok && value.is_finite() {
                        Ok(())
                    } else {
                        Err(SpecError::OutOfRange {
                            kind: "grating",
                            field,
                            value,
                            allowed,
                        })
                    }
                };
                check(
                    "sf_cpd",
                    sf_cpd,
                    sf_cpd > 0.0 && sf_cpd <= 2.0,
                    "(0, 2] cycles/deg",
                )?;
                check("tf_hz", tf_hz, (0.0..=30.0).contains(&tf_hz), "[0, 30] Hz")?;
                check(
                    "contrast",
                    contrast,
                    (0.0..=1.0).contains(&contrast),
                    "[0, 1]",
                )
            }
        }
    }
}
