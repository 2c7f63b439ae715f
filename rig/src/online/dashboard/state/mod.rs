//! The dashboard's pure state (events in [`events`], bounded buffers in [`buffers`], the JSON
//! snapshot in [`snapshot`], PNG thumbnails in [`thumbnail`]): the [`DashEvent`] input type, [`DashState`]
//! (which folds events into bounded buffers and renders the JSON snapshot
//! that the page draws), and the PNG thumbnails served at `/frame.png` and
//! `/view.png`.
//!
//! Nothing here does I/O, spawns or locks, so all of it is unit-tested
//! directly. Memory stays bounded however long a session runs:
//! - time traces (shifts, activity, prediction, behaviour) keep at most
//!   [`MAX_TRACE_POINTS`] samples and only the last `history_s` seconds
//!   (samples closer than `history_s / MAX_TRACE_POINTS` are decimated);
//! - whole-session series (accuracy vs trials, decision scores) keep at most
//!   [`MAX_SERIES_POINTS`] points, halving their resolution when full;
//! - lists (anomalies, queue, stages, counters, modes) have fixed caps, and
//!   free text is truncated to [`MAX_TEXT`] characters;
//! - per-cell buffers scale with the number of cells (capped at [`MAX_CELLS`]).
//!
//! Activity traces keep every cell's value (not only the shown ones), so that
//! a newly selected cell has its history at once: memory is about
//! `MAX_TRACE_POINTS * cells * 4` bytes for activity and again for prediction
//! (~5 MB for 1,000 cells).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Map, Value, json};

use super::DashboardError;

mod buffers;
mod events;
mod inception;
mod snapshot;
#[cfg(test)]
mod tests;
mod thumbnail;

use buffers::{CellStats, Decimated, Window};
pub use events::DashEvent;
pub use inception::InceptionPng;
use snapshot::cut;
use thumbnail::{Thumbnail, downsample, stretch_to_u8};

/// At most this many cell traces are shown.
pub const MAX_TRACES: usize = 8;
/// Samples kept per time trace (covering the last `history_s` seconds).
pub const MAX_TRACE_POINTS: usize = 600;
/// Points kept per whole-session series (accuracy, decision scores).
pub const MAX_SERIES_POINTS: usize = 1000;
/// Anomaly messages kept for display.
pub const MAX_ANOMALIES_KEPT: usize = 10;
/// Upcoming decisions kept in the queue.
pub const MAX_QUEUE: usize = 16;
/// Distinct latency stages kept; later new names are ignored.
pub const MAX_STAGES: usize = 32;
/// Histogram bins kept per stage.
pub const MAX_HISTOGRAM_BINS: usize = 128;
/// Distinct counter names kept; later new names are ignored.
pub const MAX_COUNTERS: usize = 64;
/// Distinct decision modes named; further modes are shown as `other`.
pub const MAX_MODES: usize = 16;
/// Cells accepted in `Cells`, `Activity` and `Prediction`; the rest are ignored.
pub const MAX_CELLS: usize = 16_384;
/// Free text (names, modes, anomaly messages) is cut to this many characters.
pub const MAX_TEXT: usize = 200;
/// Thumbnails are downsampled to at most this width...
pub const THUMB_MAX_WIDTH: u32 = 256;
/// ...and at most this height.
pub const THUMB_MAX_HEIGHT: u32 = 512;
/// Frames and views larger than this many pixels are rejected.
pub const MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;
/// The traced cells are re-chosen at most this often (seconds of event time).
pub const SELECTION_INTERVAL_S: f64 = 1.0;
/// Activity samples needed before cells are chosen by variance; until then
/// the first cells are shown.
pub const MIN_SAMPLES_FOR_SELECTION: u64 = 10;

#[derive(Debug, Clone)]
struct Onset {
    trial: u64,
    name: String,
    t_s: f64,
}

#[derive(Debug, Clone)]
struct Pending {
    trial: u64,
    name: String,
    mode: String,
}

#[derive(Debug, Clone)]
struct LatencyEntry {
    p50_ms: f64,
    p99_ms: f64,
    histogram: Vec<(f64, u64)>,
}

#[derive(Debug, Clone)]
struct DecisionPoint {
    trial: u64,
    score: Option<f64>,
    mode: usize,
}

/// Everything the dashboard shows, folded from [`DashEvent`]s.
#[derive(Debug, Clone)]
pub struct DashState {
    traces: usize,
    history_s: f64,
    /// Latest event time seen (the right edge of every trace).
    now_s: Option<f64>,
    events: u64,
    rejected: u64,
    last_rejection: Option<String>,

    frame: Option<Thumbnail>,
    frame_seq: u64,
    frames_seen: u64,
    centres: Vec<(f32, f32)>,
    radii: Vec<f32>,
    cells_seq: u64,
    shifts: Window<(f32, f32)>,

    activity: Window<Vec<f32>>,
    prediction: Window<Vec<f32>>,
    stats: CellStats,
    selected: Vec<usize>,
    selection_t_s: Option<f64>,
    selection_by_variance: bool,
    selection_seq: u64,

    view: Option<Thumbnail>,
    view_trial: i64,
    view_seq: u64,
    onset: Option<Onset>,
    onsets: u64,
    queue: VecDeque<Pending>,

    latency: BTreeMap<String, LatencyEntry>,
    counters: Map<String, Value>,
    anomalies: u64,
    recent_anomalies: VecDeque<(Option<f64>, String)>,

    accuracy: Decimated<(u64, f64)>,
    decisions: Decimated<DecisionPoint>,
    decision_count: u64,
    last_decision: Option<(u64, String, String, Option<f64>)>,
    modes: Vec<String>,
    mode_counts: Vec<u64>,

    behaviour: Window<[f32; 4]>,

    inception: Option<inception::InceptionTile>,
}

impl DashState {
    /// A fresh state showing `traces` cells (at most [`MAX_TRACES`]) over the
    /// last `history_s` seconds (clamped to 1..=3600 s).
    pub fn new(traces: usize, history_s: f64) -> DashState {
        let history_s = if history_s.is_finite() {
            history_s.clamp(1.0, 3600.0)
        } else {
            30.0
        };
        DashState {
            traces: traces.min(MAX_TRACES),
            history_s,
            now_s: None,
            events: 0,
            rejected: 0,
            last_rejection: None,
            frame: None,
            frame_seq: 0,
            frames_seen: 0,
            centres: Vec::new(),
            radii: Vec::new(),
            cells_seq: 0,
            shifts: Window::new(),
            activity: Window::new(),
            prediction: Window::new(),
            stats: CellStats::default(),
            selected: Vec::new(),
            selection_t_s: None,
            selection_by_variance: false,
            selection_seq: 0,
            view: None,
            view_trial: -1,
            view_seq: 0,
            onset: None,
            onsets: 0,
            queue: VecDeque::new(),
            latency: BTreeMap::new(),
            counters: Map::new(),
            anomalies: 0,
            recent_anomalies: VecDeque::new(),
            accuracy: Decimated::new(),
            decisions: Decimated::new(),
            decision_count: 0,
            last_decision: None,
            modes: Vec::new(),
            mode_counts: Vec::new(),
            behaviour: Window::new(),
            inception: None,
        }
    }

    /// Folds one event in. Malformed events (e.g. a frame whose pixel count
    /// does not match its size) are counted as rejected and otherwise ignored.
    pub fn apply(&mut self, event: DashEvent) {
        self.events += 1;
        if let Err(why) = self.apply_inner(event) {
            self.rejected += 1;
            self.last_rejection = Some(why);
        }
    }

    fn tick(&mut self, t_s: f64) {
        if t_s.is_finite() {
            self.now_s = Some(t_s);
        }
    }

    fn apply_inner(&mut self, event: DashEvent) -> Result<(), String> {
        match event {
            DashEvent::Frame {
                t_s,
                width,
                height,
                pixels,
            } => {
                let (w, h, scale, mut px) =
                    downsample(width, height, &pixels).map_err(|e| format!("frame: {e}"))?;
                let bytes = stretch_to_u8(&mut px);
                self.frame = Some(Thumbnail {
                    t_s,
                    width: w,
                    height: h,
                    scale,
                    src_width: width,
                    src_height: height,
                    pixels: bytes,
                });
                self.frame_seq += 1;
                self.frames_seen += 1;
                self.tick(t_s);
            }
            DashEvent::Cells {
                mut centres,
                mut radii,
            } => {
                centres.truncate(MAX_CELLS);
                radii.truncate(MAX_CELLS);
                if radii.len() != centres.len() {
                    return Err(format!(
                        "cells: {} centres but {} radii",
                        centres.len(),
                        radii.len()
                    ));
                }
                self.centres = centres;
                self.radii = radii;
                self.cells_seq += 1;
                if self.selected.is_empty() {
                    self.selected = (0..self.traces.min(self.centres.len())).collect();
                    self.selection_seq += 1;
                }
            }
            DashEvent::Shifts { t_s, dy, dx } => {
                self.shifts.push(t_s, (dy, dx), self.history_s);
                self.tick(t_s);
            }
            DashEvent::Activity { t_s, mut values } => {
                if !t_s.is_finite() {
                    return Err("activity: time is not finite".into());
                }
                values.truncate(MAX_CELLS);
                let cells_changed = values.len() != self.stats.n.len();
                if cells_changed {
                    self.stats.reset(values.len());
                    self.activity = Window::new();
                    self.selection_t_s = None;
                }
                self.stats.add(&values);
                self.activity.push(t_s, values, self.history_s);
                self.maybe_select(t_s);
                self.tick(t_s);
            }
            DashEvent::Prediction { t_s, mut values } => {
                values.truncate(MAX_CELLS);
                self.prediction.push(t_s, values, self.history_s);
                self.tick(t_s);
            }
            DashEvent::View {
                t_s,
                width,
                height,
                pixels,
                trial,
            } => {
                let (w, h, scale, px) =
                    downsample(width, height, &pixels).map_err(|e| format!("view: {e}"))?;
                self.view = Some(Thumbnail {
                    t_s,
                    width: w,
                    height: h,
                    scale,
                    src_width: width,
                    src_height: height,
                    pixels: px
                        .iter()
                        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                        .collect(),
                });
                self.view_trial = trial;
                self.view_seq += 1;
                self.tick(t_s);
            }
            DashEvent::Onset { trial, name, t_s } => {
                self.onset = Some(Onset {
                    trial,
                    name: cut(name),
                    t_s,
                });
                self.onsets += 1;
                self.queue.retain(|p| p.trial > trial);
                self.tick(t_s);
            }
            DashEvent::Decision {
                trial,
                name,
                mode,
                score,
            } => {
                let name = cut(name);
                let mode = cut(mode);
                let mode_index = self.mode_index(&mode);
                self.mode_counts[mode_index] += 1;
                self.decision_count += 1;
                self.decisions.push(DecisionPoint {
                    trial,
                    score: score.filter(|s| s.is_finite()),
                    mode: mode_index,
                });
                self.last_decision = Some((trial, name.clone(), mode.clone(), score));
                let upcoming = self.onset.as_ref().is_none_or(|o| trial > o.trial);
                if upcoming {
                    self.queue.retain(|p| p.trial != trial);
                    let at = self.queue.partition_point(|p| p.trial < trial);
                    self.queue.insert(at, Pending { trial, name, mode });
                    self.queue.truncate(MAX_QUEUE);
                }
            }
            DashEvent::Accuracy { trials, cc_norm } => {
                self.accuracy.push((trials, cc_norm));
            }
            DashEvent::Behaviour {
                t_s,
                pupil_x,
                pupil_y,
                pupil_radius,
                speed_cm_s,
            } => {
                self.behaviour.push(
                    t_s,
                    [pupil_x, pupil_y, pupil_radius, speed_cm_s],
                    self.history_s,
                );
                self.tick(t_s);
            }
            DashEvent::Latency {
                stage,
                p50_ms,
                p99_ms,
                mut histogram,
            } => {
                let stage = cut(stage);
                if !self.latency.contains_key(&stage) && self.latency.len() >= MAX_STAGES {
                    return Err(format!("latency: more than {MAX_STAGES} stages"));
                }
                histogram.truncate(MAX_HISTOGRAM_BINS);
                self.latency.insert(
                    stage,
                    LatencyEntry {
                        p50_ms,
                        p99_ms,
                        histogram,
                    },
                );
            }
            DashEvent::Counters(map) => {
                for (name, value) in map {
                    if !(value.is_number() || value.is_boolean() || value.is_null()) {
                        continue;
                    }
                    if self.counters.len() >= MAX_COUNTERS && !self.counters.contains_key(&name) {
                        continue;
                    }
                    self.counters.insert(cut(name), value);
                }
            }
            DashEvent::Inception(note) => {
                self.inception
                    .get_or_insert_with(Default::default)
                    .apply(note)?;
            }
            DashEvent::Anomaly { message } => {
                self.anomalies += 1;
                self.recent_anomalies.push_back((self.now_s, cut(message)));
                while self.recent_anomalies.len() > MAX_ANOMALIES_KEPT {
                    self.recent_anomalies.pop_front();
                }
            }
        }
        Ok(())
    }

    fn mode_index(&mut self, mode: &str) -> usize {
        if let Some(i) = self.modes.iter().position(|m| m == mode) {
            return i;
        }
        if self.modes.len() < MAX_MODES - 1 {
            self.modes.push(mode.to_owned());
            self.mode_counts.push(0);
            return self.modes.len() - 1;
        }
        // The last slot is "other".
        if self.modes.len() < MAX_MODES {
            self.modes.push("other".to_owned());
            self.mode_counts.push(0);
        }
        MAX_MODES - 1
    }

    /// Re-chooses the traced cells: the highest-variance ones, at most once
    /// per [`SELECTION_INTERVAL_S`], or the first ones until enough samples.
    fn maybe_select(&mut self, t_s: f64) {
        let due = self
            .selection_t_s
            .is_none_or(|s| t_s - s >= SELECTION_INTERVAL_S || t_s < s);
        if !due {
            return;
        }
        self.selection_t_s = Some(t_s);
        let cells = self.stats.n.len();
        let k = self.traces.min(cells);
        let (selected, by_variance) = if self.stats.samples < MIN_SAMPLES_FOR_SELECTION {
            ((0..k).collect::<Vec<_>>(), false)
        } else {
            let var: Vec<f64> = (0..cells).map(|i| self.stats.variance(i)).collect();
            let mut order: Vec<usize> = (0..cells).collect();
            order.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
            order.truncate(k);
            order.sort_unstable();
            (order, true)
        };
        if selected != self.selected {
            self.selection_seq += 1;
        }
        self.selected = selected;
        self.selection_by_variance = by_variance;
    }

    /// The cells whose traces are shown, in cell order.
    pub fn selected_cells(&self) -> &[usize] {
        &self.selected
    }

    /// Changes whenever the frame thumbnail, the cell outlines or the
    /// selection change (i.e. whenever `/frame.png` would look different).
    pub fn frame_version(&self) -> (u64, u64, u64) {
        (self.frame_seq, self.cells_seq, self.selection_seq)
    }

    /// Changes whenever the view thumbnail changes.
    pub fn view_version(&self) -> u64 {
        self.view_seq
    }

    /// Changes whenever the Inception tile gains images (`/inception.png` would serve more).
    pub fn inception_version(&self) -> u64 {
        self.inception.as_ref().map_or(0, |t| t.image_version())
    }

    /// Every Inception image as `((round, stimulus), PNG)`.
    pub fn inception_pngs(&self) -> Result<Vec<InceptionPng>, DashboardError> {
        self.inception
            .as_ref()
            .map_or_else(|| Ok(Vec::new()), |t| t.pngs())
    }

    /// Thumbnail size of the latest frame, if any.
    pub fn frame_size(&self) -> Option<(u32, u32)> {
        self.frame.as_ref().map(|f| (f.width, f.height))
    }

    /// Where cell `i`'s outline is drawn on the thumbnail: `(y, x, r)`.
    pub fn cell_on_thumbnail(&self, i: usize) -> Option<(f32, f32, f32)> {
        let frame = self.frame.as_ref()?;
        let &(y, x) = self.centres.get(i)?;
        let r = *self.radii.get(i)?;
        let s = frame.scale as f32;
        Some(((y + 0.5) / s - 0.5, (x + 0.5) / s - 0.5, (r / s).max(1.0)))
    }

    /// Total events applied, and how many of them were rejected as malformed.
    pub fn event_counts(&self) -> (u64, u64) {
        (self.events, self.rejected)
    }

    /// Samples held in the bounded buffers (for tests and diagnostics):
    /// shifts, activity, prediction, behaviour, accuracy, decisions.
    pub fn buffer_lens(&self) -> [usize; 6] {
        [
            self.shifts.len(),
            self.activity.len(),
            self.prediction.len(),
            self.behaviour.len(),
            self.accuracy.stored(),
            self.decisions.stored(),
        ]
    }
}
