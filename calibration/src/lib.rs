//! Calibration: what is measured before the loop runs. Imaging registration (the reference
//! image and per-frame motion correction against it) lives in [`imaging::register`]; the other
//! calibration issues fill the rest of this crate.

pub mod body;
pub mod clock;
pub mod display;
pub mod eye;
pub mod imaging;
