//! The selector thread: when the next trial is decided ([`clock`]), with which behaviour each
//! frame is observed ([`pairing`]), and the thread that runs the selector ([`thread`]).
pub mod clock;
pub mod pairing;
pub mod thread;

pub use clock::{DecisionClock, DecisionTiming};
pub use thread::{SelectorLinks, SelectorThread, SelectorTimes};
