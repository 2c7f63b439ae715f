//! Processing stages, one folder per stage.
pub mod deconvolve;
pub mod extract;
pub mod register;
