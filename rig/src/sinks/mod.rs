//! Sinks: the session log and the event bus.
pub mod session_log;
pub mod records;
