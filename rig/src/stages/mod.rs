//! Processing stages, one folder per stage.
pub mod behaviour;
pub mod deconvolve;
pub mod extract;
pub mod imaging;
pub mod register;
