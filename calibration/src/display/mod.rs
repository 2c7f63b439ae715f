//! Display calibration: what the stimulus renderer needs measured about its monitor.
//!
//! - [`gamma`]: photometer readings (`level,luminance` CSV) → a power-law-plus-offset fit and
//!   the 256-entry inverse LUT the renderer applies (`twinloop_stimulus::GammaLut::from_table`).
//! - [`geometry`]: tape-measure and protractor readings → the monitor pose of the renderer's
//!   spherical correction (`twinloop_stimulus::MonitorGeometry`, same field names).
//! - [`latency`]: a photodiode trace (`t_s,value` CSV or `.npy`) and the logged flip times →
//!   the display latency (median, p95, jitter) from each flip to its light.
//!
//! This module depends on nothing of `twinloop-stimulus` (which pulls in wgpu): its outputs
//! are plain tables and structs with the renderer's field names.

mod csv;
pub mod gamma;
pub mod geometry;
pub mod latency;
