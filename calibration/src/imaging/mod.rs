//! Imaging calibration: what the two-photon stages need before the loop runs.
pub mod register;
