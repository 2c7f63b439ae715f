//! The session log (being written).
