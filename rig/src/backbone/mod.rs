//! Backbone: what carries data between threads without allocating, and what keeps it.
//!
//! - [`ring`]: the preallocated pool and SPSC rings.
//! - [`bus`]: the bounded, non-blocking handle to the publisher.
//! - [`durable`]: what the log has made durable, which is all an ack or a publication promises.
//! - [`frames`]: what travels through the rings (frames, eye frames, activity).
//! - [`recorder_item`]: what every thread hands the recorder.
//! - [`telemetry`]: counters and latency histograms.
//! - [`session_log`]: the session directory and its append-only, checksummed log.
pub mod bus;
pub mod durable;
pub mod frames;
pub mod image;
pub mod recorder_item;
pub mod ring;
pub mod session_log;
pub mod telemetry;
