//! The stimulus budget a true optimum is found under: mean luminance and RMS contrast in
//! [0, 1] pixel units (pixel p / 255), the same two numbers the twin's MEIs are held to
//! (`twinloop_model::insilico::mei`: RMS of `x - gray` over the image).
//!
//! The two numbers mean what [`twinloop_model::insilico::StimulusBudget`] means by them. The
//! search keeps its own f64 projection ([`StimBudget::project`], exact to 1e-9, which
//! projected gradient ascent needs at every step); the optimum's final u8 image is matched by
//! the shared [`StimulusBudget::match_to_u8`] (dithered rounding, within its match
//! tolerance), so it meets the budget exactly as the MEIs do.

use twinloop_model::insilico::StimulusBudget;

/// Why a budget cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BudgetError {
    /// A field is out of range.
    #[error("invalid stimulus budget `{field}`: {reason}")]
    Invalid {
        /// `mean_luminance` or `rms_contrast`.
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// The shared matcher could not bring the optimum's u8 image onto the budget.
    #[error("the optimum's image cannot be matched to the budget: {0}")]
    Match(#[from] twinloop_model::insilico::BudgetError),
}

/// Mean luminance and RMS contrast of a static image, [0, 1] pixel units.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StimBudget {
    /// Mean pixel value (128/255 is the rig's grey).
    pub mean_luminance: f64,
    /// RMS of (pixel - mean) over the image.
    pub rms_contrast: f64,
}

impl StimBudget {
    /// A budget around the rig's grey (128/255).
    pub fn grey(rms_contrast: f64) -> StimBudget {
        StimBudget {
            mean_luminance: 128.0 / 255.0,
            rms_contrast,
        }
    }

    /// Checks the fields: the mean inside (0, 1), and the contrast positive and reachable with
    /// pixels in [0, 1] (at most sqrt(m (1 - m)), a two-level image).
    pub fn validate(&self) -> Result<(), BudgetError> {
        let m = self.mean_luminance;
        if !(m.is_finite() && m > 0.0 && m < 1.0) {
            return Err(BudgetError::Invalid {
                field: "mean_luminance",
                reason: format!("must be in (0, 1), got {m}"),
            });
        }
        let most = (m * (1.0 - m)).sqrt();
        let c = self.rms_contrast;
        if !(c.is_finite() && c > 0.0 && c < 0.98 * most) {
            return Err(BudgetError::Invalid {
                field: "rms_contrast",
                reason: format!(
                    "must be in (0, {:.3}) (0.98 of the two-level image's at this mean), got {c}",
                    0.98 * most
                ),
            });
        }
        Ok(())
    }

    /// Moves `pixels` ([0, 1]) onto the budget: alternately sets the mean, scales the
    /// deviation to the RMS contrast and clips to [0, 1] until both hold (to 1e-9). A flat
    /// image has no direction to scale and is left at the mean.
    pub(crate) fn project(&self, pixels: &mut [f64]) {
        let n = pixels.len().max(1) as f64;
        for _ in 0..200 {
            let mean = pixels.iter().sum::<f64>() / n;
            let shift = self.mean_luminance - mean;
            let rms = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n).sqrt();
            if rms <= 0.0 {
                pixels.fill(self.mean_luminance);
                return;
            }
            let scale = self.rms_contrast / rms;
            if shift.abs() < 1e-9 && (scale - 1.0).abs() < 1e-9 {
                return;
            }
            for p in pixels.iter_mut() {
                *p = (self.mean_luminance + (*p - mean) * scale).clamp(0.0, 1.0);
            }
        }
    }

    /// The same budget as the model crate's type.
    pub fn shared(&self) -> StimulusBudget {
        StimulusBudget {
            mean_luminance: self.mean_luminance,
            rms_contrast: self.rms_contrast,
        }
    }

    /// `pixels` ([0, 1]) as a u8 image matched by the shared matcher.
    pub fn match_to_u8(&self, pixels: &[f64]) -> Result<Vec<u8>, BudgetError> {
        let f: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
        Ok(self.shared().match_to_u8(&f)?.0)
    }

    /// Mean and RMS contrast of `pixels` ([0, 1]).
    pub fn measure(pixels: &[f64]) -> (f64, f64) {
        let n = pixels.len().max(1) as f64;
        let mean = pixels.iter().sum::<f64>() / n;
        let rms = (pixels.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, rms)
    }
}

/// The view contrast ((p - 0.5) * 2) of pixels in [0, 1].
pub(crate) fn contrast_of(pixels: &[f64]) -> Vec<f64> {
    pixels.iter().map(|p| (p - 0.5) * 2.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_meets_the_budget_even_when_it_clips() {
        let b = StimBudget::grey(0.3);
        // A sparse bright spot image: scaling it to 0.3 RMS must clip and redistribute.
        let mut px: Vec<f64> = (0..400)
            .map(|i| {
                if i % 37 == 0 {
                    1.0
                } else {
                    0.45 + 0.001 * (i % 7) as f64
                }
            })
            .collect();
        b.project(&mut px);
        let (m, c) = StimBudget::measure(&px);
        assert!((m - b.mean_luminance).abs() < 1e-6, "mean {m}");
        assert!((c - 0.3).abs() < 1e-6, "rms {c}");
        assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn the_shared_matcher_keeps_a_projected_image_on_the_budget() {
        let b = StimBudget::grey(0.05);
        let mut px: Vec<f64> = (0..2304)
            .map(|i| ((i * 7919) % 101) as f64 / 100.0)
            .collect();
        b.project(&mut px);
        let img = b.match_to_u8(&px).expect("matches");
        let check = b.shared().check_u8(&img);
        assert!(
            check.within(twinloop_model::insilico::budget::MATCH_TOLERANCE),
            "{check:?}"
        );
    }

    #[test]
    fn an_unreachable_contrast_is_refused_by_name() {
        let err = StimBudget::grey(0.6).validate().unwrap_err();
        assert!(matches!(
            err,
            BudgetError::Invalid {
                field: "rms_contrast",
                ..
            }
        ));
        let err = StimBudget {
            mean_luminance: 1.0,
            rms_contrast: 0.1,
        }
        .validate()
        .unwrap_err();
        assert!(matches!(
            err,
            BudgetError::Invalid {
                field: "mean_luminance",
                ..
            }
        ));
    }
}
