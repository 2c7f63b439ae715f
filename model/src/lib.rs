//! The twin: fnn-compatible architecture and online posterior. PLACEHOLDER crate: the twin issue fills it.
