//! Online: the live daemon. Threads, sockets and the session that wires them.
//!
//! - [`sources`]: the PULL socket and ingest (validation, flow control, the frame pool).
//! - [`decide`]: the selector thread and when it decides.
//! - [`display`]: the renderer (simulated monitor, window, offscreen).
//! - [`sinks`]: the recorder and the publisher.
//! - [`dashboard`]: the live view (axum, server-sent events).
//! - [`session`]: builds the pipeline from a config, runs it, summarises.
pub mod dashboard;
pub mod decide;
pub mod display;
pub mod session;
pub mod sinks;
pub mod sources;
