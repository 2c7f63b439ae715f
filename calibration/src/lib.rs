//! twinloop-calibration: what is measured before and while the loop runs, as pure algorithms.
//!
//! - [`imaging`]: the reference image, motion correction, cell detection and fluorescence.
//! - [`eye`]: pupil tracking and the eye camera's mapping to gaze.
//! - [`body`]: the treadmill and behaviour resampled onto imaging frames.
//! - [`clock`]: device clocks fitted to the rig clock from sync ticks; scan-line offsets.
//! - [`display`]: monitor gamma, geometry and display latency.
//! - [`simd`]: the run-time choice of AVX-512, AVX2 or scalar code for the imaging kernels.

pub mod body;
pub mod clock;
pub mod display;
pub mod eye;
pub mod imaging;
pub mod simd;
