//! Registration settings: one table, suite2p's defaults, checked before use.

use serde::{Deserialize, Serialize};

use super::error::RegistrationError;

/// Settings of rigid and piecewise-rigid registration. Defaults are suite2p's
/// (`suite2p/parameters.py`, registration section); names carry units where suite2p's do not.
///
/// Not carried over from suite2p: `smooth_sigma_time` (temporal smoothing of correlation maps
/// needs future frames, which an online registrar does not have), `bidiphase`, `two_step`,
/// multi-plane `nZ`, and `batch_size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationParams {
    /// Standard deviation, in pixels, of the Gaussian that multiplies the whitened
    /// cross-power spectrum (suite2p `smooth_sigma`). Range `[0.25, 64]`; default 1.15
    /// (about right for two-photon; 3-5 for one-photon).
    pub smooth_sigma_px: f32,
    /// Slope, in pixels, of the sigmoid that tapers frame edges to the reference mean before
    /// the FFT (suite2p `spatial_taper`); the taper reaches 1/2 at `2 * spatial_taper_px` from
    /// the edge. Range `(0, 64]`; default 3.45.
    pub spatial_taper_px: f32,
    /// Largest rigid shift searched, as a fraction of the smaller frame side (suite2p
    /// `maxregshift`; 0.1 of 512 px = 51 px). Range `(0, 0.5]`; default 0.1.
    pub max_shift_fraction: f32,
    /// Subpixel precision: shifts are estimated in steps of `1 / subpixel` px by kriging
    /// interpolation of the correlation peak (suite2p `subpixel`). Range `1..=100`; default 10.
    /// suite2p applies it to nonrigid blocks only; here the rigid peak is refined the same way.
    pub subpixel: u32,
    /// Clip the reference, and every frame before its shift is estimated, to the reference's
    /// 1st-99th percentile intensities (suite2p `norm_frames`). The registered output is warped
    /// from the unclipped frame. Default true.
    pub norm_frames: bool,
    /// Add the piecewise-rigid step: per-block shifts, interpolated to a per-pixel field, and a
    /// bilinear warp (suite2p `nonrigid`). False gives rigid registration only. Default true.
    pub nonrigid: bool,
    /// Block size `[height, width]` in pixels for the piecewise-rigid step (suite2p
    /// `block_size`). Blocks overlap: `ceil(1.5 * side / block)` blocks per side, so 6 x 6 = 36
    /// blocks of 128 x 128 at 512 x 512. A block larger than the frame is cut to the frame.
    /// Each side at least 16; default `[128, 128]`.
    pub block_size_px: [usize; 2],
    /// Largest block shift searched, in pixels, relative to the rigid shift (suite2p
    /// `maxregshiftNR`). Range `[1, 64]`; default 5.
    pub max_block_shift_px: f32,
    /// Signal-to-noise threshold of a block's correlation peak (peak over the largest value
    /// outside its neighbourhood, suite2p `snr_thresh`). A block below it uses its correlation
    /// map smoothed with its neighbours' (once, then twice). Range `[1, 100]`; 1 disables the
    /// fallback; default 1.2. Also flags a frame whose rigid peak falls below it.
    pub snr_thresh: f32,
    /// `compute_reference`: register-and-average iterations (suite2p: 8). Range `1..=100`.
    pub reference_iterations: usize,
    /// `compute_reference`: frames averaged into the seed reference, those most correlated
    /// with the most mutually correlated frame (suite2p: 20). At least 1.
    pub reference_seed_frames: usize,
}

impl Default for RegistrationParams {
    fn default() -> Self {
        Self {
            smooth_sigma_px: 1.15,
            spatial_taper_px: 3.45,
            max_shift_fraction: 0.1,
            subpixel: 10,
            norm_frames: true,
            nonrigid: true,
            block_size_px: [128, 128],
            max_block_shift_px: 5.0,
            snr_thresh: 1.2,
            reference_iterations: 8,
            reference_seed_frames: 20,
        }
    }
}

/// Smallest block side the piecewise-rigid step accepts, px.
pub(crate) const MIN_BLOCK_PX: usize = 16;

fn check_range(
    field: &'static str,
    v: f32,
    lo: f32,
    hi: f32,
    lo_open: bool,
) -> Result<(), RegistrationError> {
    let ok = v.is_finite() && (if lo_open { v > lo } else { v >= lo }) && v <= hi;
    if ok {
        Ok(())
    } else {
        let open = if lo_open { "(" } else { "[" };
        Err(RegistrationError::InvalidParam {
            field,
            reason: format!("{v} is outside {open}{lo}, {hi}]"),
        })
    }
}

impl RegistrationParams {
    /// Checks every field's range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), RegistrationError> {
        check_range("smooth_sigma_px", self.smooth_sigma_px, 0.25, 64.0, false)?;
        check_range("spatial_taper_px", self.spatial_taper_px, 0.0, 64.0, true)?;
        check_range(
            "max_shift_fraction",
            self.max_shift_fraction,
            0.0,
            0.5,
            true,
        )?;
        if !(1..=100).contains(&self.subpixel) {
            return Err(RegistrationError::InvalidParam {
                field: "subpixel",
                reason: format!("{} is outside 1..=100", self.subpixel),
            });
        }
        if self.block_size_px.iter().any(|&b| b < MIN_BLOCK_PX) {
            return Err(RegistrationError::InvalidParam {
                field: "block_size_px",
                reason: format!(
                    "{:?} has a side under {MIN_BLOCK_PX} px",
                    self.block_size_px
                ),
            });
        }
        check_range(
            "max_block_shift_px",
            self.max_block_shift_px,
            1.0,
            64.0,
            false,
        )?;
        check_range("snr_thresh", self.snr_thresh, 1.0, 100.0, false)?;
        if !(1..=100).contains(&self.reference_iterations) {
            return Err(RegistrationError::InvalidParam {
                field: "reference_iterations",
                reason: format!("{} is outside 1..=100", self.reference_iterations),
            });
        }
        if self.reference_seed_frames == 0 {
            return Err(RegistrationError::InvalidParam {
                field: "reference_seed_frames",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as DeError, MapDeserializer};

    #[test]
    fn defaults_are_suite2ps_and_valid() {
        let p = RegistrationParams::default();
        p.validate().expect("defaults validate");
        assert_eq!(p.smooth_sigma_px, 1.15);
        assert_eq!(p.max_shift_fraction, 0.1);
        assert_eq!(p.subpixel, 10);
        assert_eq!(p.block_size_px, [128, 128]);
        assert_eq!(p.snr_thresh, 1.2);
    }

    #[test]
    fn empty_config_gives_defaults_and_unknown_fields_are_refused() {
        let empty: Vec<(&str, f64)> = vec![];
        let p =
            RegistrationParams::deserialize(MapDeserializer::<_, DeError>::new(empty.into_iter()))
                .expect("empty map");
        assert_eq!(p, RegistrationParams::default());
        let bad = vec![("smooth_sigma", 1.0f64)];
        let err =
            RegistrationParams::deserialize(MapDeserializer::<_, DeError>::new(bad.into_iter()))
                .expect_err("unknown field");
        assert!(
            err.to_string().contains("unknown field `smooth_sigma`"),
            "{err}"
        );
    }

    #[test]
    fn validate_names_the_field() {
        let cases: Vec<(&str, RegistrationParams)> = vec![
            (
                "smooth_sigma_px",
                RegistrationParams {
                    smooth_sigma_px: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "spatial_taper_px",
                RegistrationParams {
                    spatial_taper_px: 0.0,
                    ..Default::default()
                },
            ),
            (
                "max_shift_fraction",
                RegistrationParams {
                    max_shift_fraction: 0.7,
                    ..Default::default()
                },
            ),
            (
                "subpixel",
                RegistrationParams {
                    subpixel: 0,
                    ..Default::default()
                },
            ),
            (
                "block_size_px",
                RegistrationParams {
                    block_size_px: [128, 8],
                    ..Default::default()
                },
            ),
            (
                "max_block_shift_px",
                RegistrationParams {
                    max_block_shift_px: 0.0,
                    ..Default::default()
                },
            ),
            (
                "snr_thresh",
                RegistrationParams {
                    snr_thresh: 0.5,
                    ..Default::default()
                },
            ),
            (
                "reference_iterations",
                RegistrationParams {
                    reference_iterations: 0,
                    ..Default::default()
                },
            ),
            (
                "reference_seed_frames",
                RegistrationParams {
                    reference_seed_frames: 0,
                    ..Default::default()
                },
            ),
        ];
        for (field, p) in cases {
            match p.validate() {
                Err(RegistrationError::InvalidParam { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
