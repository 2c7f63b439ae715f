//! Settings of cell detection and neuropil masks: one doc-commented, `deny_unknown_fields`
//! struct, mirrored in the rig config's `[imaging.cells]` section.

use super::CellsError;
use serde::{Deserialize, Serialize};

/// How cells are found in a calibration block and how their masks are drawn.
///
/// Sizes are in imaging pixels and frames; defaults suit 512x512 frames of mouse V1 layer 2/3
/// at 30 Hz (somata about 12 px across).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellDetectionParams {
    /// Frames the calibration block collects (registered frames, from the start of the session).
    pub calibration_frames: usize,
    /// Fewest frames detection accepts: below this the correlation image is mostly noise.
    pub min_frames: usize,
    /// Expected soma diameter, px. Sets the smoothing scale, seed spacing, search radius and
    /// the accepted mask sizes.
    pub cell_diameter_px: f64,
    /// Frames summed into one time bin before correlations are taken (calcium transients last
    /// about a second, so binning a few frames raises the signal-to-noise of every pixel).
    pub bin_frames: usize,
    /// Side of the box over which the local background (neuropil, uneven illumination) is
    /// estimated from the pixels that are not cells, and subtracted from every binned frame and
    /// from the mean image, in cell diameters.
    pub background_diameters: f64,
    /// Seeds must exceed this many robust standard deviations above the background of the
    /// correlation image or of the background-subtracted mean image (after smoothing at the
    /// soma scale; the background and its s.d. are the mode of the image's histogram and the
    /// spread below it, which the cells, a positive tail, do not reach).
    pub threshold_sd: f64,
    /// Pixels whose weight falls below this fraction of the cell's peak weight are not in its
    /// mask, in (0, 1).
    pub mask_threshold: f64,
    /// Masks smaller than this fraction of a disc of `cell_diameter_px` are rejected.
    pub min_area_fraction: f64,
    /// Masks larger than this multiple of a disc of `cell_diameter_px` are rejected.
    pub max_area_fraction: f64,
    /// Passes of seeding and growing; each later pass looks again with the cells found so far
    /// taken out, for somata hidden beside brighter ones.
    pub passes: usize,
    /// Touching masks whose mean traces correlate at least this much are merged as one soma
    /// seeded twice, in (0, 1].
    pub merge_correlation: f64,
    /// Most cells kept (strongest first).
    pub max_cells: usize,
    /// Candidate ROIs whose probability of being a soma, by the ROI classifier, is under this
    /// are rejected (suite2p's `iscell` threshold), in [0, 1); 0 keeps every candidate.
    /// Missing from a config or manifest it is 0, what sessions recorded before the classifier
    /// ran with (so they replay bit for bit); `Default` is 0.5.
    #[serde(default)]
    pub classifier_threshold: f64,
    /// Fill the holes a soma's nucleus leaves in its mask. Missing from a config or manifest it
    /// is off, as sessions recorded before it ran; `Default` is on.
    #[serde(default)]
    pub fill_holes: bool,
    /// Fraction of pixel samples at the detector's full scale (65535) above which the block is
    /// refused as saturated.
    pub max_saturated_fraction: f64,
    /// Neuropil masks.
    pub neuropil: NeuropilParams,
}

impl Default for CellDetectionParams {
    fn default() -> Self {
        CellDetectionParams {
            calibration_frames: 500,
            min_frames: 100,
            cell_diameter_px: 12.0,
            bin_frames: 4,
            background_diameters: 5.0,
            threshold_sd: 4.0,
            mask_threshold: 0.3,
            min_area_fraction: 0.5,
            max_area_fraction: 2.5,
            passes: 3,
            merge_correlation: 0.95,
            max_cells: 5000,
            classifier_threshold: 0.5,
            fill_holes: true,
            max_saturated_fraction: 0.01,
            neuropil: NeuropilParams::default(),
        }
    }
}

/// The neuropil annulus around each cell (suite2p's scheme).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeuropilParams {
    /// Gap between a cell's own mask and the inner edge of its neuropil annulus, px.
    pub inner_gap_px: usize,
    /// The annulus grows outward until it holds at least this many pixels.
    pub min_pixels: usize,
    /// Every cell's mask, grown by this many px, is left out of every neuropil annulus.
    pub cell_exclusion_px: usize,
    /// The annulus stops growing at this distance from the cell's centre even if short of
    /// `min_pixels` (a field packed with cells), px.
    pub max_radius_px: usize,
}

impl Default for NeuropilParams {
    fn default() -> Self {
        NeuropilParams {
            inner_gap_px: 2,
            min_pixels: 350,
            cell_exclusion_px: 1,
            max_radius_px: 100,
        }
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> CellsError {
    CellsError::InvalidParam {
        field,
        reason: reason.into(),
    }
}

fn in_open_unit(field: &'static str, v: f64) -> Result<(), CellsError> {
    if v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(bad(field, format!("must be in (0, 1), got {v}")))
    }
}

impl CellDetectionParams {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), CellsError> {
        if self.min_frames < 10 {
            return Err(bad("min_frames", "must be >= 10"));
        }
        if self.calibration_frames < self.min_frames {
            return Err(bad(
                "calibration_frames",
                format!("must be >= min_frames ({})", self.min_frames),
            ));
        }
        let d = self.cell_diameter_px;
        if !(d.is_finite() && (3.0..=200.0).contains(&d)) {
            return Err(bad(
                "cell_diameter_px",
                format!("must be in 3..=200, got {d}"),
            ));
        }
        if self.bin_frames == 0 || self.bin_frames > self.min_frames / 10 {
            return Err(bad(
                "bin_frames",
                format!(
                    "must be in 1..={} (min_frames / 10, so at least 10 bins), got {}",
                    self.min_frames / 10,
                    self.bin_frames
                ),
            ));
        }
        let hp = self.background_diameters;
        if !(hp.is_finite() && hp >= 1.0) {
            return Err(bad(
                "background_diameters",
                format!("must be >= 1, got {hp}"),
            ));
        }
        let t = self.threshold_sd;
        if !(t.is_finite() && t > 0.0) {
            return Err(bad("threshold_sd", format!("must be > 0, got {t}")));
        }
        in_open_unit("mask_threshold", self.mask_threshold)?;
        in_open_unit("min_area_fraction", self.min_area_fraction)?;
        let m = self.max_area_fraction;
        if !(m.is_finite() && m > 1.0) {
            return Err(bad("max_area_fraction", format!("must be > 1, got {m}")));
        }
        if !(1..=10).contains(&self.passes) {
            return Err(bad(
                "passes",
                format!("must be in 1..=10, got {}", self.passes),
            ));
        }
        let r = self.merge_correlation;
        if !(r > 0.0 && r <= 1.0) {
            return Err(bad(
                "merge_correlation",
                format!("must be in (0, 1], got {r}"),
            ));
        }
        let c = self.classifier_threshold;
        if !(0.0..1.0).contains(&c) {
            return Err(bad(
                "classifier_threshold",
                format!("must be in [0, 1), got {c}"),
            ));
        }
        if self.max_cells == 0 {
            return Err(bad("max_cells", "must be >= 1"));
        }
        let s = self.max_saturated_fraction;
        if !(0.0..=1.0).contains(&s) {
            return Err(bad(
                "max_saturated_fraction",
                format!("must be in [0, 1], got {s}"),
            ));
        }
        let n = &self.neuropil;
        if n.min_pixels == 0 {
            return Err(bad("neuropil.min_pixels", "must be >= 1"));
        }
        if n.max_radius_px <= n.inner_gap_px + 1 {
            return Err(bad(
                "neuropil.max_radius_px",
                format!(
                    "must exceed neuropil.inner_gap_px + 1 ({})",
                    n.inner_gap_px + 1
                ),
            ));
        }
        Ok(())
    }

    /// Area of a disc of `cell_diameter_px`, px.
    pub fn expected_area_px(&self) -> f64 {
        std::f64::consts::PI * 0.25 * self.cell_diameter_px * self.cell_diameter_px
    }

    /// Side of the background box, px (odd, at least 3).
    pub fn background_box_px(&self) -> usize {
        let s = (self.background_diameters * self.cell_diameter_px).round() as usize;
        (s | 1).max(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let p = CellDetectionParams::default();
        p.validate().unwrap();
        let s = serde_json::to_string(&p).unwrap();
        let back: CellDetectionParams = serde_json::from_str(&s).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.background_box_px(), 61);
    }

    #[test]
    fn bad_fields_are_named() {
        type Edit = fn(&mut CellDetectionParams);
        let cases: [(&str, Edit); 5] = [
            ("cell_diameter_px", |p| p.cell_diameter_px = 0.5),
            ("bin_frames", |p| p.bin_frames = 0),
            ("mask_threshold", |p| p.mask_threshold = 1.0),
            ("neuropil.min_pixels", |p| p.neuropil.min_pixels = 0),
            ("calibration_frames", |p| p.calibration_frames = 5),
        ];
        for (field, edit) in cases {
            let mut p = CellDetectionParams::default();
            edit(&mut p);
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<CellDetectionParams>(r#"{"diameter": 10}"#).unwrap_err();
        assert!(e.to_string().contains("diameter"), "{e}");
    }
}
