//! What the dashboard is told: one event per thing published or seen.

use super::*;

/// One update from the daemon, as the event-bus adapter hands it over.
#[derive(Debug, Clone, PartialEq)]
pub enum DashEvent {
    /// A two-photon frame; it is downsampled to at most 256 px wide.
    Frame {
        t_s: f64,
        width: u32,
        height: u32,
        pixels: Vec<u16>,
    },
    /// Cell outlines: centres `(y, x)` and radii, in frame pixels.
    Cells {
        centres: Vec<(f32, f32)>,
        radii: Vec<f32>,
    },
    /// Motion-correction shifts in pixels.
    Shifts { t_s: f64, dy: f32, dx: f32 },
    /// One activity value per cell.
    Activity { t_s: f64, values: Vec<f32> },
    /// The twin's predicted rate per cell.
    Prediction { t_s: f64, values: Vec<f32> },
    /// What is on screen (8-bit grayscale) and its trial (negative: none).
    View {
        t_s: f64,
        width: u32,
        height: u32,
        pixels: Vec<u8>,
        trial: i64,
    },
    /// A stimulus went on screen.
    Onset { trial: u64, name: String, t_s: f64 },
    /// The scheduler decided what a (future) trial shows.
    Decision {
        trial: u64,
        name: String,
        mode: String,
        score: Option<f64>,
    },
    /// The twin's held-out accuracy after `trials` trials.
    Accuracy { trials: u64, cc_norm: f64 },
    /// Pupil and treadmill.
    Behaviour {
        t_s: f64,
        pupil_x: f32,
        pupil_y: f32,
        pupil_radius: f32,
        speed_cm_s: f32,
    },
    /// A stage's latency summary; `histogram` is `(upper edge ms, count)`.
    Latency {
        stage: String,
        p50_ms: f64,
        p99_ms: f64,
        histogram: Vec<(f64, u64)>,
    },
    /// Daemon counters (name -> number); merged into the ones already known.
    Counters(Map<String, Value>),
    /// Something unusual the experimenter should see.
    Anomaly { message: String },
    /// One of the inception protocol's notes (`event` starting `inception.`), as published.
    Inception(Value),
}

impl DashEvent {
    /// The event's kind, for logs and counts.
    pub fn kind(&self) -> &'static str {
        match self {
            DashEvent::Frame { .. } => "frame",
            DashEvent::Cells { .. } => "cells",
            DashEvent::Shifts { .. } => "shifts",
            DashEvent::Activity { .. } => "activity",
            DashEvent::Prediction { .. } => "prediction",
            DashEvent::View { .. } => "view",
            DashEvent::Onset { .. } => "onset",
            DashEvent::Decision { .. } => "decision",
            DashEvent::Accuracy { .. } => "accuracy",
            DashEvent::Behaviour { .. } => "behaviour",
            DashEvent::Latency { .. } => "latency",
            DashEvent::Counters(_) => "counters",
            DashEvent::Anomaly { .. } => "anomaly",
            DashEvent::Inception(_) => "inception",
        }
    }
}
