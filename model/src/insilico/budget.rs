//! The luminance and contrast budget every verify-phase stimulus must meet.
//!
//! Walker et al. 2019 (Nat Neurosci 22:2060) matched MEIs and controls in mean luminance and
//! contrast within 5% (../shared/SCIENCE.md), so a response difference cannot come from a
//! brighter or higher-contrast image. Here the budget is a mean luminance and an RMS contrast
//! (the standard deviation of the pixels), both in the twin's [0, 1] pixel units (u8 / 255);
//! it applies to any image or clip (all its pixels together): an MEI, a pool frame, a library
//! item.
//!
//! Matching sets the mean and scales the contrast, `y = clamp(a + s · (x − mean x), 0, 1)`.
//! Clipping at 0 or 1 lowers the contrast and moves the mean, so `a` and `s` are corrected
//! from what the clamped (and, for u8 output, rounded) image achieves until both are within
//! [`MATCH_TOLERANCE`], a tenth of the verify phase's ±5%, or the match is reported as not met.

use serde::{Deserialize, Serialize};

use super::MEAN_GRAY;

/// What the verify phase allows: ±5% of the target mean luminance and RMS contrast (Walker et
/// al. 2019; issue #18).
pub const VERIFY_TOLERANCE: f64 = 0.05;

/// What matching aims for, relative: a tenth of [`VERIFY_TOLERANCE`], so u8 rounding and
/// later handling cannot push a matched image out of the verify tolerance.
pub const MATCH_TOLERANCE: f64 = 0.005;

/// Corrections of `(a, s)` before a match is given up.
const MAX_ITERATIONS: usize = 60;

/// Why an image cannot be brought to a budget.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// No image in [0, 1] has this mean and RMS contrast (or the numbers are not finite).
    #[error(
        "budget mean luminance {mean_luminance}, RMS contrast {rms_contrast} is impossible: \
         need 0 < mean < 1 and 0 < contrast < sqrt(mean · (1 − mean))"
    )]
    Infeasible {
        mean_luminance: f64,
        rms_contrast: f64,
    },
    /// A uniform image has no contrast to scale.
    #[error("the image is uniform (no contrast to scale)")]
    Flat,
    /// Clipping kept the image from the budget (too little of it carries the contrast).
    #[error(
        "after {iterations} corrections the image has mean {mean:.4} and RMS contrast {rms:.4} \
         (budget {target_mean:.4}, {target_rms:.4}, ±{tol:.1}%)",
        tol = MATCH_TOLERANCE * 100.0
    )]
    NotMet {
        iterations: usize,
        mean: f64,
        rms: f64,
        target_mean: f64,
        target_rms: f64,
    },
}

/// Mean luminance and RMS contrast of an image, [0, 1] pixel units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    pub mean_luminance: f64,
    pub rms_contrast: f64,
}

impl ImageStats {
    /// Of float pixels.
    pub fn of(pixels: &[f32]) -> Self {
        Self::from_iter(pixels.iter().map(|&v| v as f64))
    }

    /// Of u8 pixels (value / 255).
    pub fn of_u8(pixels: &[u8]) -> Self {
        Self::from_iter(pixels.iter().map(|&v| v as f64 / 255.0))
    }

    fn from_iter(values: impl Iterator<Item = f64> + Clone) -> Self {
        let (mut n, mut sum) = (0usize, 0.0);
        for v in values.clone() {
            n += 1;
            sum += v;
        }
        let mean = sum / n.max(1) as f64;
        let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
        Self {
            mean_luminance: mean,
            rms_contrast: var.sqrt(),
        }
    }
}

/// How far an image is from a budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BudgetCheck {
    pub achieved: ImageStats,
    /// `(achieved − target) / target` of the mean luminance.
    pub mean_error: f64,
    /// `(achieved − target) / target` of the RMS contrast.
    pub contrast_error: f64,
}

impl BudgetCheck {
    /// Both relative errors within `tolerance`.
    pub fn within(&self, tolerance: f64) -> bool {
        self.mean_error.abs() <= tolerance && self.contrast_error.abs() <= tolerance
    }

    /// Within the verify phase's ±5%.
    pub fn meets_verify(&self) -> bool {
        self.within(VERIFY_TOLERANCE)
    }
}

/// A target mean luminance and RMS contrast, [0, 1] pixel units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StimulusBudget {
    pub mean_luminance: f64,
    pub rms_contrast: f64,
}

impl StimulusBudget {
    /// Low contrast around gray: RMS 0.05 (a sinusoid of amplitude 0.07, Michelson contrast
    /// 14%): far from clipping, below where mouse V1 contrast responses saturate (C50 around
    /// 20–30% Michelson, Busse et al. 2009 — not checked against the paper here). A chosen
    /// value, not a measured one.
    pub fn low_contrast() -> Self {
        Self {
            mean_luminance: MEAN_GRAY,
            rms_contrast: 0.05,
        }
    }

    /// Full contrast around gray: RMS 0.2, where a full-field sinusoid spans 0.22–0.78 and a
    /// patch covering a sixth of the image saturates. A chosen value, not a measured one.
    pub fn full_contrast() -> Self {
        Self {
            mean_luminance: MEAN_GRAY,
            rms_contrast: 0.2,
        }
    }

    /// Whether some image in [0, 1] meets the budget: the largest standard deviation of values
    /// in [0, 1] with mean `m` is `sqrt(m (1 − m))` (a binary image).
    pub fn validate(&self) -> Result<(), BudgetError> {
        let (m, c) = (self.mean_luminance, self.rms_contrast);
        let ok = m.is_finite() && c.is_finite() && m > 0.0 && m < 1.0 && c > 0.0;
        if !ok || c >= (m * (1.0 - m)).sqrt() {
            return Err(BudgetError::Infeasible {
                mean_luminance: m,
                rms_contrast: c,
            });
        }
        Ok(())
    }

    /// How far `stats` is from this budget.
    pub fn check(&self, stats: ImageStats) -> BudgetCheck {
        BudgetCheck {
            achieved: stats,
            mean_error: (stats.mean_luminance - self.mean_luminance) / self.mean_luminance,
            contrast_error: (stats.rms_contrast - self.rms_contrast) / self.rms_contrast,
        }
    }

    /// How far a u8 image or clip is from this budget.
    pub fn check_u8(&self, pixels: &[u8]) -> BudgetCheck {
        self.check(ImageStats::of_u8(pixels))
    }

    /// Matches float pixels in place (clamped into [0, 1]); unchanged when already within
    /// [`MATCH_TOLERANCE`] and in range.
    pub fn match_f32(&self, pixels: &mut [f32]) -> Result<BudgetCheck, BudgetError> {
        self.validate()?;
        let before = self.check(ImageStats::of(pixels));
        if before.within(MATCH_TOLERANCE) && pixels.iter().all(|v| (0.0..=1.0).contains(v)) {
            return Ok(before);
        }
        let src: Vec<f64> = pixels.iter().map(|&v| v as f64).collect();
        self.fit(&src, |y| {
            for (p, &v) in pixels.iter_mut().zip(y) {
                *p = v as f32;
            }
            ImageStats::of(pixels)
        })
    }

    /// A u8 image matched from float pixels: the corrections see the rounded image, so the
    /// budget holds after rounding.
    ///
    /// Rounding is dithered (a fixed low-discrepancy offset per pixel, [`dither`]): with
    /// plain rounding, the many equal pixels of a near-binary image all round the same way,
    /// so the achievable RMS contrast jumps in steps of about 4% at RMS 0.05 and the budget
    /// can fall between two steps. Dithered, the rounded stats move almost continuously with
    /// `(a, s)`, at the cost of at most half a level of noise per pixel.
    pub fn match_to_u8(&self, pixels: &[f32]) -> Result<(Vec<u8>, BudgetCheck), BudgetError> {
        self.validate()?;
        let src: Vec<f64> = pixels.iter().map(|&v| v as f64).collect();
        let mut out = vec![0u8; pixels.len()];
        let check = self.fit(&src, |y| {
            for (i, (o, &v)) in out.iter_mut().zip(y).enumerate() {
                *o = (v * 255.0 + dither(i)).round().clamp(0.0, 255.0) as u8;
            }
            ImageStats::of_u8(&out)
        })?;
        Ok((out, check))
    }

    /// Matches a u8 image; the identity when it already meets [`MATCH_TOLERANCE`].
    pub fn match_u8(&self, pixels: &[u8]) -> Result<(Vec<u8>, BudgetCheck), BudgetError> {
        self.validate()?;
        let before = self.check_u8(pixels);
        if before.within(MATCH_TOLERANCE) {
            return Ok((pixels.to_vec(), before));
        }
        let f: Vec<f32> = pixels.iter().map(|&v| v as f32 / 255.0).collect();
        self.match_to_u8(&f)
    }

    /// Iterates `y = clamp(a + s · d)` with `d = x − mean x`; `emit` writes `y` out (rounding
    /// it if it must) and returns what the written image achieves.
    fn fit(
        &self,
        src: &[f64],
        mut emit: impl FnMut(&[f64]) -> ImageStats,
    ) -> Result<BudgetCheck, BudgetError> {
        let start = ImageStats::from_iter(src.iter().copied());
        if !(start.rms_contrast.is_finite() && start.rms_contrast > 1e-12) {
            return Err(BudgetError::Flat);
        }
        let d: Vec<f64> = src.iter().map(|v| v - start.mean_luminance).collect();
        let (mut a, mut s) = (self.mean_luminance, self.rms_contrast / start.rms_contrast);
        let mut y = vec![0.0; d.len()];
        let mut got = start;
        for _ in 0..MAX_ITERATIONS {
            for (yi, di) in y.iter_mut().zip(&d) {
                *yi = (a + s * di).clamp(0.0, 1.0);
            }
            got = emit(&y);
            let check = self.check(got);
            if check.within(MATCH_TOLERANCE) {
                return Ok(check);
            }
            // Both corrections are monotone in their own variable; clipping couples them
            // weakly, so the joint fixed point converges whenever the budget is reachable.
            a += self.mean_luminance - got.mean_luminance;
            if got.rms_contrast > 0.0 {
                s *= self.rms_contrast / got.rms_contrast;
            }
        }
        Err(BudgetError::NotMet {
            iterations: MAX_ITERATIONS,
            mean: got.mean_luminance,
            rms: got.rms_contrast,
            target_mean: self.mean_luminance,
            target_rms: self.rms_contrast,
        })
    }
}

/// Pixel `i`'s rounding offset in (−0.5, 0.5): the golden-ratio sequence, evenly spread over
/// any run of pixels, and never exactly ±0.5, so a pixel already on a u8 level keeps it.
fn dither(i: usize) -> f64 {
    const INV_PHI: f64 = 0.618_033_988_749_894_9;
    ((i as f64 + 1.0) * INV_PHI).fract() - 0.5
}

#[cfg(test)]
mod tests {
    use super::super::mei::normals;
    use super::*;

    /// Random images of several kinds: faint, saturating (contrast far above the budget, so
    /// most pixels clip), off-mean (bright or dark) and heavy-tailed.
    fn images(seed: u64, len: usize) -> Vec<(String, Vec<f32>)> {
        let z = normals(seed, len);
        let kinds: [(&str, f64, f64); 4] = [
            ("faint", 0.5, 0.01),
            ("saturating", 0.5, 2.0),
            ("bright", 0.9, 0.3),
            ("dark", 0.1, 0.3),
        ];
        let mut out: Vec<(String, Vec<f32>)> = kinds
            .iter()
            .map(|&(name, m, c)| {
                // Clamped as a display would: the saturating kind is nearly binary.
                let img = z
                    .iter()
                    .map(|v| (m + c * v).clamp(0.0, 1.0) as f32)
                    .collect();
                (name.to_string(), img)
            })
            .collect();
        out.push((
            "heavy tailed".into(),
            z.iter().map(|v| (0.5 + 0.05 * v.powi(3)) as f32).collect(),
        ));
        out
    }

    #[test]
    fn matching_meets_the_budget_for_random_images_including_clipping_ones() {
        let budgets = [
            StimulusBudget::low_contrast(),
            StimulusBudget::full_contrast(),
            StimulusBudget {
                mean_luminance: 0.3,
                rms_contrast: 0.25,
            },
        ];
        let mut clipped = 0;
        for seed in 0..8u64 {
            for (kind, img) in images(seed, 36 * 64) {
                for b in &budgets {
                    let (u8s, check) = b.match_to_u8(&img).unwrap();
                    // Against an independent recomputation of the stats from the bytes.
                    let n = u8s.len() as f64;
                    let mean = u8s.iter().map(|&v| v as f64 / 255.0).sum::<f64>() / n;
                    let var = u8s
                        .iter()
                        .map(|&v| (v as f64 / 255.0 - mean).powi(2))
                        .sum::<f64>()
                        / n;
                    let (em, ec) = (
                        (mean - b.mean_luminance) / b.mean_luminance,
                        (var.sqrt() - b.rms_contrast) / b.rms_contrast,
                    );
                    assert!(
                        em.abs() <= MATCH_TOLERANCE && ec.abs() <= MATCH_TOLERANCE,
                        "{kind} seed {seed} {b:?}: mean error {em}, contrast error {ec}"
                    );
                    assert!((check.mean_error - em).abs() < 1e-12);
                    clipped += u8s.iter().filter(|&&v| v == 0 || v == 255).count();
                    let mut f = img.clone();
                    b.match_f32(&mut f).unwrap();
                    assert!(f.iter().all(|v| (0.0..=1.0).contains(v)));
                    assert!(b.check(ImageStats::of(&f)).within(MATCH_TOLERANCE));
                }
            }
        }
        // The saturating images must really have exercised clipping.
        assert!(clipped > 1000, "only {clipped} pixels at 0 or 255");
    }

    #[test]
    fn a_matched_image_is_left_as_it_is() {
        let b = StimulusBudget::full_contrast();
        let (img, _) = b.match_to_u8(&images(3, 500)[1].1).unwrap();
        let (again, check) = b.match_u8(&img).unwrap();
        assert_eq!(again, img);
        assert!(check.within(MATCH_TOLERANCE));
        let mut f: Vec<f32> = img.iter().map(|&v| v as f32 / 255.0).collect();
        let before = f.clone();
        b.match_f32(&mut f).unwrap();
        assert_eq!(f, before);
    }

    #[test]
    fn impossible_budgets_and_images_are_reported() {
        // A binary image at mean 0.5 has the largest contrast, 0.5: nothing reaches it.
        for (m, c) in [
            (0.5, 0.5),
            (0.1, 0.31),
            (0.0, 0.1),
            (0.5, 0.0),
            (f64::NAN, 0.1),
        ] {
            let b = StimulusBudget {
                mean_luminance: m,
                rms_contrast: c,
            };
            assert!(matches!(
                b.match_u8(&[0, 255]),
                Err(BudgetError::Infeasible { .. })
            ));
        }
        let b = StimulusBudget::full_contrast();
        assert_eq!(b.match_u8(&[77; 100]), Err(BudgetError::Flat));
        // One pixel of a thousand cannot carry RMS 0.2 (its most is 0.5/sqrt(1000) ≈ 0.016).
        let mut spot = vec![0.5f32; 1000];
        spot[0] = 1.0;
        let e = b.match_to_u8(&spot).unwrap_err();
        assert!(matches!(e, BudgetError::NotMet { .. }), "{e}");
        assert!(e.to_string().contains("RMS contrast"), "{e}");
    }

    #[test]
    fn the_check_reports_relative_errors() {
        let b = StimulusBudget {
            mean_luminance: 0.5,
            rms_contrast: 0.1,
        };
        // Half 0.4, half 0.7: mean 0.55, std 0.15.
        let img: Vec<f32> = (0..10)
            .map(|i| if i % 2 == 0 { 0.4 } else { 0.7 })
            .collect();
        let c = b.check(ImageStats::of(&img));
        assert!((c.mean_error - 0.1).abs() < 1e-6, "{c:?}");
        assert!((c.contrast_error - 0.5).abs() < 1e-6, "{c:?}");
        assert!(!c.meets_verify());
        // Half 0.4, half 0.6: mean 0.5, std 0.1, the budget itself.
        assert!(b.check(ImageStats::of(&[0.4, 0.6])).within(1e-6));
    }
}
