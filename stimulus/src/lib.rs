//! twinloop-stimulus: stimulus definitions and their rendering.
//!
//! # Layout
//! - [`spec`]: serde-described stimulus specs, deterministic from their parameters.
//! - [`library`]: the small library the skeleton's random selector draws from.
//! - [`view`]: the geometry of the view (what part of the visual field a frame spans).
//! - [`cpu`]: the CPU reference renderer, written from each stimulus's formula.
//!
//! PLACEHOLDER: the wgpu renderer (fullscreen, vsync, spherical correction, gamma, photodiode
//! patch) comes with the stimulus issue; until then the daemon renders the twin-resolution view
//! on the CPU with [`cpu::render`] and only timestamps the frames it would show.

pub mod cpu;
pub mod library;
pub mod spec;
pub mod view;

pub use library::{Library, LibraryEntry, StimulusId};
pub use spec::{SpecError, StimulusSpec};
pub use view::ViewGeometry;
