//! Sinks: the session log and the event bus.
pub mod event_bus;
pub mod recorder;
pub mod records;
pub mod session_log;
