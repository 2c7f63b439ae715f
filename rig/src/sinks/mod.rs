//! Sinks: the session log and the event bus.
pub mod session_log;
pub mod records;
pub mod event_bus;
pub mod recorder;
