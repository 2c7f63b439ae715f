//! twinloop-stimulus: the stimulus engine — specs, a CPU reference renderer and a wgpu renderer.
//!
//! # Layout (in the order data flows)
//! - [`spec`]: serde-described stimulus specs, one struct per kind, deterministic from a seed,
//!   sizes in visual degrees; [`spec::TrialList`] sequences them with gray in between.
//! - [`content`]: a spec resolved once ([`content::Prepared`]: clips loaded, noise generated,
//!   dots seeded) and, per frame, the [`content::FrameContent`] both renderers draw.
//! - [`geometry`] and [`view`]: how a frame's pixels map to azimuth/elevation — the spherical
//!   correction of a flat monitor close to the eye, or a linear view of the visual field.
//! - [`gamma`]: the inverse gamma LUT; [`photodiode`]: the corner patch encoding onsets and
//!   frame parity.
//! - [`cpu`]: the CPU reference renderer, written from each stimulus's formula.
//! - [`gpu`]: the wgpu renderer (WGSL per kind, offscreen render + readback), tested pixel by
//!   pixel against [`cpu`].
//! - [`player`]: the display loop — a queue of trials, gray when it runs dry, every flip
//!   timestamped on the rig clock, missed vsyncs detected, gray on any error.
//! - [`window`]: the stimulus monitor — a fullscreen window with a vsync'd wgpu surface, a
//!   [`player::Display`] drawn with the [`gpu`] pipelines; [`window::xvfb`] starts a virtual X
//!   server for tests.
//! - [`twin`]: what the twin sees — the same content at the twin's input resolution.
//! - [`batch`]: offline rendering of a render file to PNGs and a twin `.npy`
//!   (`twinloop render`).
//! - [`library`]: the small library the skeleton's random selector draws from.

pub mod batch;
pub mod content;
pub mod cpu;
pub mod gamma;
pub mod geometry;
pub mod gpu;
pub mod library;
pub mod photodiode;
pub mod player;
pub mod spec;
pub mod twin;
pub mod view;
pub mod window;

pub use content::{FrameContent, Prepared};
pub use gamma::GammaLut;
pub use geometry::{MonitorGeometry, Projection};
pub use library::{Library, LibraryEntry, StimulusId};
pub use photodiode::PhotodiodePatch;
pub use spec::{SpecError, StimulusSpec};
pub use view::ViewGeometry;
