//! Clocks: every stream on the rig clock.
//!
//! # Layout
//! - [`sync`]: [`fit_clock`] fits a device clock to the rig clock from shared sync ticks
//!   (offset, drift, missing and spurious ticks, jumps split into segments); its two halves
//!   are `matching` (ticks to ticks: acquisition and tracking) and `segments` (splitting at
//!   jumps, robust line fits).
//! - [`scanline`]: when within a two-photon frame a given row was scanned.
mod matching;
pub mod scanline;
mod segments;
pub mod sync;

pub use scanline::{scan_offset_s, scanline_time_ns};
pub use sync::{ClockFit, ClockGuess, Mapped, Segment, SyncConfig, SyncError, fit_clock};

#[cfg(test)]
mod tests;
