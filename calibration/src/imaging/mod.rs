//! Imaging calibration: what the two-photon stages need before the loop runs.
pub mod cells;
pub mod fluorescence;
pub mod kernels;
pub mod register;
pub mod suite2p_files;
