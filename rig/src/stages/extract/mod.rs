//! Extraction: one fluorescence value per cell per frame.
//!
//! With `imaging.extraction = "pipeline"` this is the imaging pipeline (registration, detected
//! cells, neuropil-corrected dF/F, online OASIS; `stages::imaging`). The other two choices are
//! PLACEHOLDERS kept for tests and external bridges without cells: the weighted mean of the raw
//! frame over the simulator's true footprints, or over the blocks of a fixed grid.

mod footprints;
mod stage;

pub use footprints::Footprints;
pub use stage::{ExtractStage, Extractor, OfflineTaps, StageOutputs, StageReport};

use crate::config::{Config, Extraction};
use crate::sim::CellTruth;
use crate::stages::imaging::OnlinePipeline;
use std::path::PathBuf;

/// The extractor a config asks for. `truth` supplies the simulator's cells when needed (from
/// the live simulator, or from a session's `truth/cells.json` on replay); `calibration_dir` is
/// where the pipeline saves its reference and masks (`plane<p>/` below it).
pub fn build_extractor(
    cfg: &Config,
    truth: impl FnOnce() -> Result<Vec<CellTruth>, String>,
    calibration_dir: Option<PathBuf>,
) -> Result<Extractor, String> {
    Ok(match cfg.imaging.extraction {
        Extraction::Grid => Extractor::Footprints(Footprints::grid(
            cfg.imaging.width,
            cfg.imaging.height,
            cfg.imaging.grid_block_px,
        )),
        Extraction::TruthFootprints => Extractor::Footprints(Footprints::from_truth(&truth()?)),
        Extraction::Pipeline => Extractor::Pipeline(Box::new(
            OnlinePipeline::new(
                cfg.imaging.pipeline.clone(),
                cfg.imaging.height as usize,
                cfg.imaging.width as usize,
                cfg.imaging.planes,
                cfg.imaging.frame_rate_hz / cfg.imaging.planes.max(1) as f64,
                cfg.imaging.masks.as_deref(),
                calibration_dir,
            )
            .map_err(|e| e.to_string())?,
        )),
    })
}
