//! Extraction: one fluorescence value per cell per frame.
//!
//! With `imaging.extraction = "pipeline"` this is the imaging pipeline (registration, detected
//! cells, neuropil-corrected dF/F, online OASIS; `stages::imaging`). The other two choices are
//! PLACEHOLDERS kept for tests and external bridges without cells: the weighted mean of the raw
//! frame over the simulator's true footprints, or over the blocks of a fixed grid.

pub mod config;
mod footprints;
mod stage;

pub use config::{Extraction, ImagingConfig};
pub use footprints::Footprints;
pub use stage::{ExtractStage, Extractor, OfflineTaps, StageOutputs, StageReport};

use crate::stages::imaging::OnlinePipeline;
use std::path::PathBuf;

/// A cell's true footprint: (pixel index y * width + x, weight).
pub type TrueMask = Vec<(u32, f32)>;

/// The extractor `[imaging]` asks for. `truth` supplies the simulator's true footprints when
/// needed (from the live simulator, or from a session's `truth/cells.json` on replay);
/// `calibration_dir` is where the pipeline saves its reference and masks (`plane<p>/` below it).
pub fn build_extractor(
    imaging: &ImagingConfig,
    truth: impl FnOnce() -> Result<Vec<TrueMask>, String>,
    calibration_dir: Option<PathBuf>,
) -> Result<Extractor, String> {
    Ok(match imaging.extraction {
        Extraction::Grid => Extractor::Footprints(Footprints::grid(
            imaging.width,
            imaging.height,
            imaging.grid_block_px,
        )),
        Extraction::TruthFootprints => Extractor::Footprints(Footprints::from_truth(&truth()?)),
        Extraction::Pipeline => Extractor::Pipeline(Box::new(
            OnlinePipeline::new(
                imaging.pipeline.clone(),
                imaging.height as usize,
                imaging.width as usize,
                imaging.planes,
                imaging.plane_rate_hz(),
                imaging.masks.as_deref(),
                calibration_dir,
            )
            .map_err(|e| e.to_string())?,
        )),
    })
}
