//! Stages: the per-frame computations, each a struct its caller feeds. The daemon runs them on
//! its threads (`online`), and `replay` runs the same structs inline over a log (`offline`).
//!
//! - [`clocks`]: device clocks fitted onto the rig clock from sync ticks.
//! - [`extract`]: frames to one value per cell (the imaging pipeline or a baseline extractor).
//! - [`imaging`]: registration, cells, fluorescence and online deconvolution per plane.
//! - [`deconvolve`]: online OASIS.
//! - [`behaviour`]: pupil and treadmill, resampled onto imaging frames.
//! - [`decide`]: which stimulus comes next (random control arm, adaptive design).
pub mod behaviour;
pub mod clocks;
pub mod decide;
pub mod deconvolve;
pub mod extract;
pub mod imaging;
