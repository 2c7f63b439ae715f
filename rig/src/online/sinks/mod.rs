//! Sinks: where the daemon's results leave it: the recorder (the only writer of the session
//! log) and the event bus (the PUB socket's publisher).
pub mod event_bus;
pub mod recorder;
