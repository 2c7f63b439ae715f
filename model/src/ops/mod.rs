//! Custom ops candle lacks. CPU first (the reference); other devices round-trip through the CPU
//! until a native kernel lands.

pub mod grid_sample;

pub use grid_sample::{Padding, grid_sample};
