//! Body: running velocity from the treadmill, and behaviour on imaging frame times.
//!
//! # Layout (in the order data flows)
//! - [`treadmill`]: [`Treadmill`], encoder counts (wrapping, resettable) → [`Velocity`] in cm/s.
//! - [`resample`]: linear interpolation of a stream onto other times, with a [`Fill`] flag
//!   (measured, interpolated across a hole, held, missing).
//! - [`per_frame`]: [`BehaviourAligner`], pupil and velocity streams → one
//!   [`BehaviourFrame`] per imaging frame.
pub mod per_frame;
pub mod resample;
pub mod treadmill;

pub use per_frame::{
    BehaviourAligner, BehaviourConfig, BehaviourError, BehaviourFrame, align_frames,
};
pub use resample::{Fill, ResampleConfig, Sample, interpolate_at};
pub use treadmill::{
    Treadmill, TreadmillConfig, TreadmillCounts, TreadmillError, TreadmillFlags, Velocity,
    velocity_series,
};

#[cfg(test)]
mod tests;
