//! Custom ops candle lacks or runs slowly (`conv_cpu`: the CPU conv fast path). CPU first (the reference); other devices round-trip through the CPU
//! until a native kernel lands.

pub mod conv_cpu;
pub mod grid_sample;

pub use grid_sample::{Padding, grid_sample};
