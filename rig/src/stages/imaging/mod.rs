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
//! what `twinloop process` runs over a movie. The online daemon still runs the placeholder
//! extraction (`stages::extract`): moving it onto this pipeline, with its calibration phase
//! logged so that replay stays exact, is the next step of the imaging issue.

mod plane;

pub use plane::deconvolve_traces;

pub use plane::{ImagingParams, PlaneCalibration, PlaneError, PlaneFrame, PlanePipeline};
