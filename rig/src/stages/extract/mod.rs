//! Extraction: one fluorescence value per cell per frame.
//!
//! PLACEHOLDER for the imaging issue (motion correction, detected cells, neuropil, dF/F,
//! deconvolution): here a cell's value is the weighted mean of the raw frame over a footprint
//! that is either the simulator's true footprint or one block of a fixed grid.

mod footprints;
mod stage;

pub use footprints::Footprints;
pub use stage::{ExtractStage, StageOutputs, StageReport};
