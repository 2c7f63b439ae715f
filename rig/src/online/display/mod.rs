//! The display: when each frame flips. [`renderer`] holds the simulated monitor and the flip
//! records; [`live`] the stimulus window or offscreen renderer in real time. The renderer takes
//! each decision from a one-deep queue at its trial's onset, never waiting on it (an empty queue
//! shows gray and counts an underrun), and tells the selector each onset.
pub mod live;
pub mod renderer;

pub use live::LiveRenderer;
pub use renderer::{RendererClock, RendererLink, RendererParams, RendererReport, SimMonitor};
