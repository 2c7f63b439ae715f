//! The imaging pipeline of one plane: motion correction against a fixed reference, cell and
//! neuropil fluorescence with a causal dF/F, and OASIS deconvolution.
//!
//! ```text
//! calibration block ─► reference (suite2p's compute_reference) ─► register ─► cell detection
//!                                                                              │ masks
//! frame ─► register (rigid + piecewise-rigid) ─► F, Fneu, F − c·Fneu, F0, dF/F ─► spikes
//! ```
//! The algorithms live in `twinloop_calibration::imaging` (registration, cells, fluorescence) and
//! [`crate::stages::deconvolve`]; [`PlanePipeline`] strings them together for one plane and is
//! what `twinloop process` runs over a movie; [`OnlinePipeline`] adds the daemon's calibration
//! phase, every plane, gaps and online deconvolution (`imaging.extraction = "pipeline"`).

mod online;
mod plane;

pub use online::{Emit, FrameOutput, OnlinePipeline};
pub use plane::deconvolve_traces;

pub use plane::{
    ImagingParams, MaskShift, PlaneCalibration, PlaneError, PlaneFrame, PlanePipeline,
    REFERENCE_FILE, RejectedRois, SavedCalibration,
};
