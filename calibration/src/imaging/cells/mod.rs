//! Cells of the imaging plane: found once per day in a calibration block of registered frames,
//! drawn as weighted pixel masks with neuropil annuli, saved to the session directory.
//!
//! # Layout (in the order data flows)
//! - [`params`]: [`CellDetectionParams`] and [`NeuropilParams`].
//! - `background`: local backgrounds, mode-based robust scales and smoothing of images.
//! - [`images`]: one streaming pass over the block ([`BlockAccumulator`]): mean, max and local
//!   correlation images, and the binned, background-subtracted movie detection grows masks
//!   from.
//! - [`detect`]: the detection pipeline ([`detect_cells`]): detection and blob images, then
//!   in passes `seeds` (peaks and territories) and `grow` (weighted masks), then `merge`
//!   (one soma seeded twice).
//! - [`classify`]: the ROI classifier (features, a logistic model trained on two generators,
//!   its training); rejects vessel edges, dendrites and noise.
//! - [`masks`]: [`CellMasks`], the cells' weighted masks and their neuropil annuli in CSR form,
//!   saved as `cells.json` plus `.npy` files and loaded back checked against the frame size.
//!
//! Fluorescence is then computed per frame from the masks by
//! [`crate::imaging::fluorescence::FluorescenceExtractor`].

mod background;
pub mod classify;
pub mod detect;
mod grow;
pub mod images;
pub mod masks;
mod merge;
pub mod params;
mod seeds;

pub use detect::{Detection, DetectionReport, detect_cells};
pub use images::{BlockAccumulator, CalibrationBlock, ProjectionImages};
pub use masks::{CELLS_FORMAT_VERSION, CellInfo, CellMasks};
pub use params::{CellDetectionParams, NeuropilParams};

use std::path::PathBuf;

/// Why cells could not be detected, or their masks not saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CellsError {
    /// A setting is out of range.
    #[error("invalid cell-detection setting `{field}`: {reason}")]
    InvalidParam {
        /// The field, as written in the config.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A frame of the wrong size was given.
    #[error("calibration frame {frame} has {got} pixels, expected {expected} ({height}x{width})")]
    FrameLength {
        /// Index of the frame in the block.
        frame: usize,
        /// Pixels it had.
        got: usize,
        /// Pixels expected.
        expected: usize,
        /// Frame height, px.
        height: usize,
        /// Frame width, px.
        width: usize,
    },
    /// The block is shorter than detection needs.
    #[error(
        "calibration block too short: {got} frames, cell detection needs at least {needed} \
         (set imaging.cells.calibration_frames to collect more)"
    )]
    TooFewFrames {
        /// Frames in the block.
        got: usize,
        /// Frames needed.
        needed: usize,
    },
    /// The block carries no image (all zero, or nothing changes).
    #[error("calibration block is flat: {detail}; is the shutter open and the PMT on?")]
    FlatBlock {
        /// What was seen.
        detail: String,
    },
    /// Too many samples at the detector's full scale.
    #[error(
        "calibration block is saturated: {:.3}% of samples at full scale (65535), the limit is \
         {:.3}%; lower the PMT gain or laser power",
        fraction * 100.0,
        limit * 100.0
    )]
    Saturated {
        /// Fraction of samples at full scale.
        fraction: f64,
        /// The allowed fraction (`max_saturated_fraction`).
        limit: f64,
    },
    /// Nothing in the block stood out as a cell.
    #[error(
        "no cells detected: no seed rose {threshold_sd} robust s.d. above the background of the \
         detection image (its peak was {peak_sd:.2} s.d.; {seeds} seeds, {rejected} rejected \
         as too small, too large or duplicates); correlation image max {max_correlation:.3}, \
         median {median_correlation:.3}; mean image median {mean_median_adu:.1} ADU, \
         max {mean_max_adu:.1} ADU"
    )]
    NoCells {
        /// The threshold used (`threshold_sd`).
        threshold_sd: f64,
        /// Highest value of the detection image, robust s.d.
        peak_sd: f64,
        /// Seeds above the threshold.
        seeds: usize,
        /// Seeds whose masks were rejected.
        rejected: usize,
        /// Largest value of the correlation image.
        max_correlation: f32,
        /// Median of the correlation image.
        median_correlation: f32,
        /// Median of the mean image, ADU.
        mean_median_adu: f32,
        /// Largest value of the mean image, ADU.
        mean_max_adu: f32,
    },
    /// Masks built from inconsistent parts (a pixel outside the frame, lengths that differ).
    #[error("invalid cell masks: {0}")]
    InvalidMasks(String),
    /// A saved mask file is missing, unreadable or inconsistent.
    #[error("cell masks file {}: {reason}", path.display())]
    MaskFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Saved masks were drawn on frames of another size.
    #[error(
        "cell masks in {} were drawn on {}x{} frames, but this session images {}x{}: detect \
         cells again for this field of view",
        path.display(),
        saved.0,
        saved.1,
        expected.0,
        expected.1
    )]
    FrameSizeMismatch {
        /// The index file.
        path: PathBuf,
        /// (height, width) the masks were drawn on.
        saved: (usize, usize),
        /// (height, width) of this session.
        expected: (usize, usize),
    },
}
