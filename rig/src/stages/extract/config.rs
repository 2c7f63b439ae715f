//! `[imaging]`: the microscope's frames and how they become one value per cell.

use crate::stages::imaging::ImagingParams;
use crate::vocab::section::{Invalid, MAX_DEVICE_RATE_HZ, MAX_WAIT_S, Section};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extraction {
    /// PLACEHOLDER: mean over each simulated cell's true footprint (from the simulator's truth).
    TruthFootprints,
    /// PLACEHOLDER: mean over square blocks tiling the frame, one "cell" per block.
    Grid,
    /// The imaging pipeline: registration, cell detection, dF/F and online deconvolution
    /// (`[imaging.pipeline]`).
    Pipeline,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagingConfig {
    pub width: u32,
    pub height: u32,
    pub planes: u8,
    pub channels: u8,
    pub frame_rate_hz: f64,
    pub extraction: Extraction,
    /// Block size for `extraction = "grid"`.
    pub grid_block_px: u32,
    /// A frame whose activity is published later than this after arrival counts as late.
    pub late_after_ms: f64,
    /// Parameters of `extraction = "pipeline"` (suite2p's and OASIS's defaults).
    pub pipeline: ImagingParams,
    /// A saved calibration to reuse instead of detecting cells (`extraction = "pipeline"`): an
    /// earlier session's `calibration` directory (holding `plane0/`, `plane1/`, ...). Each
    /// plane's saved masks are moved onto this session's field of view.
    pub masks: Option<PathBuf>,
}

impl Default for ImagingConfig {
    fn default() -> Self {
        ImagingConfig {
            width: 512,
            height: 512,
            planes: 1,
            channels: 1,
            frame_rate_hz: 30.0,
            extraction: Extraction::TruthFootprints,
            grid_block_px: 32,
            late_after_ms: 5.0,
            pipeline: Default::default(),
            masks: None,
        }
    }
}

impl ImagingConfig {
    /// Each plane's frame rate: the planes are scanned in turn.
    pub fn plane_rate_hz(&self) -> f64 {
        self.frame_rate_hz / f64::from(self.planes.max(1))
    }
}

impl Section for ImagingConfig {
    const NAME: &'static str = "imaging";

    fn validate(&self) -> Result<(), Invalid> {
        let px = "8 ..= 8192 pixels";
        Invalid::in_range("imaging.width", self.width.into(), 8, 8192, px)?;
        Invalid::in_range("imaging.height", self.height.into(), 8, 8192, px)?;
        Invalid::in_range("imaging.planes", self.planes.into(), 1, 64, "1 ..= 64")?;
        Invalid::in_range("imaging.channels", self.channels.into(), 1, 4, "1 ..= 4")?;
        Invalid::positive_at_most(
            "imaging.frame_rate_hz",
            self.frame_rate_hz,
            MAX_DEVICE_RATE_HZ,
            "Hz",
        )?;
        Invalid::positive_at_most(
            "imaging.late_after_ms",
            self.late_after_ms,
            MAX_WAIT_S * 1e3,
            "milliseconds",
        )?;
        Invalid::in_range(
            "imaging.grid_block_px",
            self.grid_block_px.into(),
            2,
            512,
            "2 ..= 512 pixels",
        )?;
        // Every pipeline parameter, checked at start: a bad one would otherwise surface only at
        // calibration time, as a session with zero processed frames.
        self.pipeline.validate(self.plane_rate_hz())?;
        if self.pipeline.channel >= self.channels {
            return Err(Invalid::new(
                "imaging.pipeline.channel",
                self.pipeline.channel,
                "must be below imaging.channels (channels count from 0)",
            ));
        }
        // PLACEHOLDER: the true-footprint extractor holds one plane's masks (the simulator's
        // plane 0); several planes need the pipeline, which detects each plane's own cells.
        if self.extraction == Extraction::TruthFootprints && self.planes > 1 {
            return Err(Invalid::new(
                "imaging.extraction",
                "\"truth_footprints\"",
                "gives one plane's cells; with imaging.planes > 1 use \"pipeline\" (each plane's own cells) or \"grid\"",
            ));
        }
        Ok(())
    }
}
