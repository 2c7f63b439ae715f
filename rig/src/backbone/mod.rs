//! Backbone: what carries data between threads without allocating, and what keeps it.
//!
//! - [`ring`]: the preallocated pool and SPSC rings.
//! - [`bus`]: the bounded, non-blocking handle to the publisher.
//! - [`frames`]: what travels through the rings (frames, eye frames, activity).
//! - [`recorder_item`]: what every thread hands the recorder.
//! - [`telemetry`]: counters and latency histograms.
//! - [`session_log`]: the session directory and its append-only, checksummed log.
pub mod bus;
pub mod frames;
pub mod recorder_item;
pub mod ring;
pub mod session_log;
pub mod telemetry;
