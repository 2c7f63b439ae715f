//! The dashboard's pure state: the [`DashEvent`] input type, [`DashState`]
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
        }
    }
}

/// A time-windowed, decimated ring of samples.
#[derive(Debug, Clone)]
struct Window<T> {
    buf: VecDeque<(f64, T)>,
}

impl<T> Window<T> {
    fn new() -> Self {
        Window {
            buf: VecDeque::new(),
        }
    }

    /// Adds a sample; returns whether it was kept.
    fn push(&mut self, t: f64, v: T, history_s: f64) -> bool {
        if !t.is_finite() {
            return false;
        }
        if let Some(&(last, _)) = self.buf.back() {
            if t < last - 1.0 {
                // The clock restarted (a new session or a replay): start over.
                self.buf.clear();
            } else if t - last < history_s / MAX_TRACE_POINTS as f64 {
                return false;
            }
        }
        self.buf.push_back((t, v));
        while self.buf.len() > MAX_TRACE_POINTS {
            self.buf.pop_front();
        }
        while self.buf.front().is_some_and(|&(t0, _)| t0 < t - history_s) {
            self.buf.pop_front();
        }
        true
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn times(&self) -> Value {
        Value::Array(self.buf.iter().map(|&(t, _)| num_t(t)).collect())
    }

    fn column(&self, f: impl Fn(&T) -> Option<f32>) -> Value {
        Value::Array(
            self.buf
                .iter()
                .map(|(_, v)| f(v).map_or(Value::Null, num_f32))
                .collect(),
        )
    }
}

/// A whole-session series: keeps at most [`MAX_SERIES_POINTS`] points by
/// halving its resolution when full, and always remembers the latest point.
#[derive(Debug, Clone)]
struct Decimated<T> {
    buf: Vec<T>,
    stride: u64,
    seen: u64,
    last: Option<T>,
    last_kept: bool,
}

impl<T: Clone> Decimated<T> {
    fn new() -> Self {
        Decimated {
            buf: Vec::new(),
            stride: 1,
            seen: 0,
            last: None,
            last_kept: false,
        }
    }

    fn push(&mut self, v: T) {
        self.last_kept = self.seen.is_multiple_of(self.stride);
        if self.last_kept {
            self.buf.push(v.clone());
            if self.buf.len() > MAX_SERIES_POINTS {
                let old = std::mem::take(&mut self.buf);
                self.buf = old.into_iter().step_by(2).collect();
                self.stride *= 2;
                // The point just pushed may have been thinned out.
                self.last_kept = self.seen.is_multiple_of(self.stride);
            }
        }
        self.seen += 1;
        self.last = Some(v);
    }

    /// The kept points plus the latest one.
    fn points(&self) -> impl Iterator<Item = &T> {
        let extra = if self.last_kept {
            None
        } else {
            self.last.as_ref()
        };
        self.buf.iter().chain(extra)
    }

    fn stored(&self) -> usize {
        self.buf.len()
    }
}

/// Running mean and variance of every cell's activity (Welford).
#[derive(Debug, Clone, Default)]
struct CellStats {
    n: Vec<u64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    samples: u64,
}

impl CellStats {
    fn reset(&mut self, cells: usize) {
        self.n = vec![0; cells];
        self.mean = vec![0.0; cells];
        self.m2 = vec![0.0; cells];
        self.samples = 0;
    }

    fn add(&mut self, values: &[f32]) {
        self.samples += 1;
        for (i, &v) in values.iter().enumerate().take(self.n.len()) {
            if !v.is_finite() {
                continue;
            }
            let v = f64::from(v);
            self.n[i] += 1;
            let d = v - self.mean[i];
            self.mean[i] += d / self.n[i] as f64;
            self.m2[i] += d * (v - self.mean[i]);
        }
    }

    fn variance(&self, i: usize) -> f64 {
        match self.n.get(i) {
            Some(&n) if n >= 2 => self.m2[i] / (n - 1) as f64,
            _ => 0.0,
        }
    }
}

/// A downsampled image ready for PNG encoding.
#[derive(Debug, Clone)]
struct Thumbnail {
    t_s: f64,
    width: u32,
    height: u32,
    /// Source pixels per thumbnail pixel along each axis.
    scale: u32,
    src_width: u32,
    src_height: u32,
    pixels: Vec<u8>,
}

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

    /// The latest frame as an RGB PNG: the frame in gray, cell outlines as
    /// circles (traced cells in orange, the others in green). `None` before
    /// the first frame.
    pub fn frame_png(&self) -> Result<Option<Vec<u8>>, DashboardError> {
        let Some(frame) = &self.frame else {
            return Ok(None);
        };
        let (w, h) = (frame.width as usize, frame.height as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for &g in &frame.pixels {
            rgb.extend_from_slice(&[g, g, g]);
        }
        let selected = |i: usize| self.selected.binary_search(&i).is_ok();
        // Others first, so that traced cells are drawn on top.
        for pass_selected in [false, true] {
            let colour = if pass_selected {
                [255, 150, 0]
            } else {
                [0, 220, 110]
            };
            for i in 0..self.centres.len() {
                if selected(i) != pass_selected {
                    continue;
                }
                if let Some((cy, cx, r)) = self.cell_on_thumbnail(i) {
                    draw_circle(&mut rgb, w, h, cy, cx, r, colour);
                }
            }
        }
        encode_png(frame.width, frame.height, png::ColorType::Rgb, &rgb).map(Some)
    }

    /// The latest view as a grayscale PNG; `None` before the first view.
    pub fn view_png(&self) -> Result<Option<Vec<u8>>, DashboardError> {
        let Some(view) = &self.view else {
            return Ok(None);
        };
        encode_png(
            view.width,
            view.height,
            png::ColorType::Grayscale,
            &view.pixels,
        )
        .map(Some)
    }

    /// The JSON the page draws: one key per panel (`frame`, `traces`,
    /// `stimulus`, `latency`, `counters`, `accuracy`, `decisions`,
    /// `behaviour`) plus `t_s` (latest event time), `history_s` and `state`
    /// (event counts).
    pub fn snapshot(&self) -> Value {
        json!({
            "t_s": self.now_s.map_or(Value::Null, num_t),
            "history_s": self.history_s,
            "state": {
                "events": self.events,
                "rejected": self.rejected,
                "last_rejection": self.last_rejection,
            },
            "frame": self.frame_json(),
            "traces": self.traces_json(),
            "stimulus": self.stimulus_json(),
            "latency": self.latency_json(),
            "counters": self.counters_json(),
            "accuracy": self.accuracy_json(),
            "decisions": self.decisions_json(),
            "behaviour": self.behaviour_json(),
        })
    }

    fn frame_json(&self) -> Value {
        let shifts = json!({
            "t": self.shifts.times(),
            "dy": self.shifts.column(|v| Some(v.0)),
            "dx": self.shifts.column(|v| Some(v.1)),
        });
        let selected: Vec<Value> = self
            .selected
            .iter()
            .filter_map(|&i| {
                self.cell_on_thumbnail(i)
                    .map(|(y, x, r)| json!({"cell": i, "y": num_f32(y), "x": num_f32(x), "r": num_f32(r)}))
            })
            .collect();
        let (frame_seq, cells_seq, selection_seq) = self.frame_version();
        let mut out = json!({
            "version": format!("{frame_seq}.{cells_seq}.{selection_seq}"),
            "frames": self.frames_seen,
            "n_cells": self.centres.len(),
            "selected": selected,
            "shifts": shifts,
            "t_s": Value::Null,
            "width": Value::Null,
            "height": Value::Null,
        });
        if let (Some(f), Some(obj)) = (&self.frame, out.as_object_mut()) {
            obj.insert("t_s".into(), num_t(f.t_s));
            obj.insert("width".into(), f.width.into());
            obj.insert("height".into(), f.height.into());
            obj.insert("src_width".into(), f.src_width.into());
            obj.insert("src_height".into(), f.src_height.into());
            obj.insert("scale".into(), f.scale.into());
        }
        out
    }

    fn traces_json(&self) -> Value {
        let per_cell = |w: &Window<Vec<f32>>| -> Value {
            Value::Array(
                self.selected
                    .iter()
                    .map(|&i| w.column(|v| v.get(i).copied()))
                    .collect(),
            )
        };
        json!({
            "cells": self.selected,
            "by_variance": self.selection_by_variance,
            "variance": self.selected.iter().map(|&i| num_f64(self.stats.variance(i))).collect::<Vec<_>>(),
            "n_cells": self.stats.n.len().max(self.centres.len()),
            "samples": self.stats.samples,
            "activity": {"t": self.activity.times(), "values": per_cell(&self.activity)},
            "prediction": {"t": self.prediction.times(), "values": per_cell(&self.prediction)},
        })
    }

    fn stimulus_json(&self) -> Value {
        let pending = |p: &Pending| json!({"trial": p.trial, "name": p.name, "mode": p.mode});
        let (trial, name, onset_t) = match &self.onset {
            Some(o) => (json!(o.trial), json!(o.name), num_t(o.t_s)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let (view_t, width, height) = match &self.view {
            Some(v) => (num_t(v.t_s), json!(v.width), json!(v.height)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        json!({
            "trial": trial,
            "name": name,
            "onset_t_s": onset_t,
            "onsets": self.onsets,
            "view_version": self.view_seq,
            "view_t_s": view_t,
            "view_trial": self.view_trial,
            "width": width,
            "height": height,
            "next": self.queue.front().map_or(Value::Null, pending),
            "queue": self.queue.iter().map(pending).collect::<Vec<_>>(),
        })
    }

    fn latency_json(&self) -> Value {
        Value::Array(
            self.latency
                .iter()
                .map(|(stage, e)| {
                    json!({
                        "stage": stage,
                        "p50_ms": num_f64(e.p50_ms),
                        "p99_ms": num_f64(e.p99_ms),
                        "histogram": e.histogram.iter().map(|&(edge, n)| json!([num_f64(edge), n])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }

    fn counters_json(&self) -> Value {
        json!({
            "values": self.counters,
            "anomalies": self.anomalies,
            "recent_anomalies": self.recent_anomalies.iter().rev().map(|(t, m)| json!({"t_s": t.map_or(Value::Null, num_t), "message": m})).collect::<Vec<_>>(),
        })
    }

    fn accuracy_json(&self) -> Value {
        let pts: Vec<&(u64, f64)> = self.accuracy.points().collect();
        json!({
            "trials": pts.iter().map(|p| p.0).collect::<Vec<_>>(),
            "cc_norm": pts.iter().map(|p| num_f64(p.1)).collect::<Vec<_>>(),
            "latest": self.accuracy.last.map_or(Value::Null, |(t, c)| json!({"trials": t, "cc_norm": num_f64(c)})),
        })
    }

    fn decisions_json(&self) -> Value {
        let pts: Vec<&DecisionPoint> = self.decisions.points().collect();
        let mode_counts: Map<String, Value> = self
            .modes
            .iter()
            .zip(&self.mode_counts)
            .map(|(m, &n)| (m.clone(), n.into()))
            .collect();
        json!({
            "count": self.decision_count,
            "trial": pts.iter().map(|p| p.trial).collect::<Vec<_>>(),
            "score": pts.iter().map(|p| p.score.map_or(Value::Null, num_f64)).collect::<Vec<_>>(),
            "mode": pts.iter().map(|p| p.mode).collect::<Vec<_>>(),
            "modes": self.modes,
            "mode_counts": mode_counts,
            "latest": self.last_decision.as_ref().map_or(Value::Null, |(trial, name, mode, score)| json!({
                "trial": trial, "name": name, "mode": mode, "score": score.map_or(Value::Null, num_f64),
            })),
        })
    }

    fn behaviour_json(&self) -> Value {
        let b = &self.behaviour;
        json!({
            "t": b.times(),
            "pupil_x": b.column(|v| Some(v[0])),
            "pupil_y": b.column(|v| Some(v[1])),
            "pupil_radius": b.column(|v| Some(v[2])),
            "speed_cm_s": b.column(|v| Some(v[3])),
        })
    }
}

/// Cuts free text to [`MAX_TEXT`] characters.
fn cut(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_TEXT) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// A time in seconds, to the millisecond (keeps the JSON small).
fn num_t(t: f64) -> Value {
    if t.is_finite() {
        json!((t * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// A value to 5 significant digits (keeps the JSON small); non-finite: null.
fn num_f64(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    if v == 0.0 {
        return json!(0.0);
    }
    let digits = 4 - v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let r = (v * scale).round() / scale;
    if r.is_finite() { json!(r) } else { json!(v) }
}

fn num_f32(v: f32) -> Value {
    num_f64(f64::from(v))
}

/// Box-averages an image to at most [`THUMB_MAX_WIDTH`] x [`THUMB_MAX_HEIGHT`]
/// by an integer factor. Returns `(width, height, factor, pixels)`.
fn downsample<P: Copy + Into<f32>>(
    width: u32,
    height: u32,
    pixels: &[P],
) -> Result<(u32, u32, u32, Vec<f32>), String> {
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width} x {height})"));
    }
    let n = u64::from(width) * u64::from(height);
    if n > MAX_IMAGE_PIXELS {
        return Err(format!("image too large ({width} x {height})"));
    }
    if pixels.len() as u64 != n {
        return Err(format!(
            "{} pixels for a {width} x {height} image",
            pixels.len()
        ));
    }
    let f = width
        .div_ceil(THUMB_MAX_WIDTH)
        .max(height.div_ceil(THUMB_MAX_HEIGHT))
        .max(1);
    let (w, h) = (width.div_ceil(f), height.div_ceil(f));
    let (sw, tw) = (width as usize, w as usize);
    let mut sum = vec![0f32; (w * h) as usize];
    let mut count = vec![0u32; (w * h) as usize];
    for (y, row) in pixels.chunks_exact(sw).enumerate() {
        let ty = y / f as usize;
        for (x, &p) in row.iter().enumerate() {
            let i = ty * tw + x / f as usize;
            sum[i] += p.into();
            count[i] += 1;
        }
    }
    for (s, &c) in sum.iter_mut().zip(&count) {
        *s /= c.max(1) as f32;
    }
    Ok((w, h, f, sum))
}

/// Maps values linearly so that the 0.5th..99.5th percentiles span 0..255.
fn stretch_to_u8(px: &mut [f32]) -> Vec<u8> {
    if px.is_empty() {
        return Vec::new();
    }
    let mut sorted = px.to_vec();
    let lo_i = sorted.len() / 200;
    let hi_i = (sorted.len() - 1) - sorted.len() / 200;
    let lo = *sorted.select_nth_unstable_by(lo_i, f32::total_cmp).1;
    let hi = *sorted.select_nth_unstable_by(hi_i, f32::total_cmp).1;
    let span = if hi > lo { hi - lo } else { 1.0 };
    px.iter()
        .map(|&v| ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Draws a one-pixel circle outline into an RGB buffer.
fn draw_circle(rgb: &mut [u8], w: usize, h: usize, cy: f32, cx: f32, r: f32, colour: [u8; 3]) {
    if !(cy.is_finite() && cx.is_finite() && r.is_finite()) || r > (w + h) as f32 {
        return;
    }
    let steps = ((std::f32::consts::TAU * r * 2.0).ceil() as usize).max(8);
    for k in 0..steps {
        let a = std::f32::consts::TAU * k as f32 / steps as f32;
        let y = (cy + r * a.sin()).round();
        let x = (cx + r * a.cos()).round();
        if y < 0.0 || x < 0.0 || y >= h as f32 || x >= w as f32 {
            continue;
        }
        let i = (y as usize * w + x as usize) * 3;
        rgb[i..i + 3].copy_from_slice(&colour);
    }
}

fn encode_png(
    width: u32,
    height: u32,
    colour: png::ColorType,
    data: &[u8],
) -> Result<Vec<u8>, DashboardError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(state: &mut DashState, t: f64, values: Vec<f32>) {
        state.apply(DashEvent::Activity { t_s: t, values });
    }

    #[test]
    fn traces_are_bounded_by_count_and_time() {
        let mut s = DashState::new(8, 30.0);
        // 2 hours at 100 Hz of 20 cells, plus everything else.
        for k in 0..720_000u64 {
            let t = k as f64 * 0.01;
            activity(&mut s, t, vec![k as f32; 20]);
            if k.is_multiple_of(7) {
                s.apply(DashEvent::Prediction {
                    t_s: t,
                    values: vec![1.0; 20],
                });
                s.apply(DashEvent::Shifts {
                    t_s: t,
                    dy: 0.5,
                    dx: -0.5,
                });
                s.apply(DashEvent::Behaviour {
                    t_s: t,
                    pupil_x: 1.0,
                    pupil_y: 2.0,
                    pupil_radius: 3.0,
                    speed_cm_s: 4.0,
                });
                s.apply(DashEvent::Accuracy {
                    trials: k,
                    cc_norm: 0.5,
                });
                s.apply(DashEvent::Decision {
                    trial: k,
                    name: "grating".into(),
                    mode: format!("mode{}", k % 40),
                    score: Some(1.0),
                });
                s.apply(DashEvent::Anomaly {
                    message: "x".repeat(1_000),
                });
            }
        }
        let [shifts, act, pred, beh, acc, dec] = s.buffer_lens();
        for n in [shifts, act, pred, beh] {
            assert!(n <= MAX_TRACE_POINTS, "trace holds {n} samples");
        }
        assert!(act >= MAX_TRACE_POINTS / 2, "activity kept only {act}");
        assert!((MAX_SERIES_POINTS / 2..=MAX_SERIES_POINTS).contains(&acc));
        assert!((MAX_SERIES_POINTS / 2..=MAX_SERIES_POINTS).contains(&dec));
        let snap = s.snapshot();
        let t = snap["traces"]["activity"]["t"].as_array().expect("t");
        let first = t[0].as_f64().expect("f64");
        let last = t[t.len() - 1].as_f64().expect("f64");
        assert!(last - first <= 30.0 + 1e-6, "window spans {}", last - first);
        assert!(last > 7199.0);
        let recent = snap["counters"]["recent_anomalies"].as_array().expect("a");
        assert_eq!(recent.len(), MAX_ANOMALIES_KEPT);
        assert!(recent[0]["message"].as_str().expect("s").chars().count() <= MAX_TEXT + 1);
        assert!(snap["decisions"]["modes"].as_array().expect("m").len() <= MAX_MODES);
        assert_eq!(snap["decisions"]["count"], json!(720_000u64.div_ceil(7)));
        // The latest accuracy point is always shown.
        let trials = snap["accuracy"]["trials"].as_array().expect("a");
        // 719,999 = 7 x 102,857 is the last trial pushed.
        assert_eq!(trials.last(), Some(&json!(719_999u64)));
    }

    #[test]
    fn clock_restart_starts_traces_over() {
        let mut s = DashState::new(2, 10.0);
        for k in 0..100 {
            activity(&mut s, 1000.0 + k as f64 * 0.1, vec![1.0, 2.0]);
        }
        activity(&mut s, 0.0, vec![1.0, 2.0]);
        assert_eq!(s.buffer_lens()[1], 1);
    }

    #[test]
    fn selection_picks_high_variance_cells() {
        let mut s = DashState::new(3, 30.0);
        // Before enough data: the first cells.
        activity(&mut s, 0.0, vec![0.0; 10]);
        assert_eq!(s.selected_cells(), &[0, 1, 2]);
        // Cells 2, 5 and 9 vary; the others are flat.
        for k in 1..200 {
            let a = if k % 2 == 0 { 1.0 } else { -1.0 };
            let mut v = vec![0.1f32; 10];
            v[2] = 3.0 * a;
            v[5] = 2.0 * a;
            v[9] = 5.0 * a;
            v[0] = 0.01 * a;
            activity(&mut s, k as f64 * 0.05, v);
        }
        assert_eq!(s.selected_cells(), &[2, 5, 9]);
        let snap = s.snapshot();
        assert_eq!(snap["traces"]["cells"], json!([2, 5, 9]));
        assert_eq!(snap["traces"]["by_variance"], json!(true));
        let values = snap["traces"]["activity"]["values"].as_array().expect("a");
        assert_eq!(values.len(), 3);
        assert!(
            values[2]
                .as_array()
                .expect("a")
                .iter()
                .any(|v| v == &json!(5.0) || v == &json!(-5.0))
        );
    }

    #[test]
    fn selection_is_recomputed_at_most_once_per_second() {
        let mut s = DashState::new(1, 30.0);
        for k in 0..20 {
            let a = if k % 2 == 0 { 1.0 } else { -1.0 };
            activity(&mut s, k as f64 * 0.01, vec![a, 0.0]);
        }
        // Only the first call (t = 0) selected so far: the first cell.
        assert_eq!(s.selected_cells(), &[0]);
        // Cell 1 becomes far more variable, but within the same second.
        for k in 20..60 {
            let a = if k % 2 == 0 { 100.0 } else { -100.0 };
            activity(&mut s, k as f64 * 0.01, vec![0.0, a]);
        }
        assert_eq!(s.selected_cells(), &[0]);
        activity(&mut s, 1.5, vec![0.0, 100.0]);
        assert_eq!(s.selected_cells(), &[1]);
    }

    #[test]
    fn accuracy_and_decisions_accumulate() {
        let mut s = DashState::new(8, 30.0);
        s.apply(DashEvent::Onset {
            trial: 1,
            name: "gabor".into(),
            t_s: 1.0,
        });
        for trial in 2..=6u64 {
            s.apply(DashEvent::Decision {
                trial,
                name: format!("stim{trial}"),
                mode: if trial % 2 == 0 { "adaptive" } else { "random" }.into(),
                score: if trial == 4 {
                    None
                } else {
                    Some(trial as f64 / 10.0)
                },
            });
            s.apply(DashEvent::Accuracy {
                trials: trial * 10,
                cc_norm: trial as f64 / 10.0,
            });
        }
        s.apply(DashEvent::Onset {
            trial: 3,
            name: "stim3".into(),
            t_s: 2.0,
        });
        let snap = s.snapshot();
        assert_eq!(snap["accuracy"]["trials"], json!([20, 30, 40, 50, 60]));
        assert_eq!(
            snap["accuracy"]["cc_norm"],
            json!([0.2, 0.3, 0.4, 0.5, 0.6])
        );
        assert_eq!(snap["decisions"]["count"], json!(5));
        assert_eq!(snap["decisions"]["trial"], json!([2, 3, 4, 5, 6]));
        assert_eq!(
            snap["decisions"]["score"],
            json!([0.2, 0.3, null, 0.5, 0.6])
        );
        assert_eq!(snap["decisions"]["modes"], json!(["adaptive", "random"]));
        assert_eq!(snap["decisions"]["mode"], json!([0, 1, 0, 1, 0]));
        assert_eq!(
            snap["decisions"]["mode_counts"],
            json!({"adaptive": 3, "random": 2})
        );
        assert_eq!(snap["stimulus"]["trial"], json!(3));
        assert_eq!(snap["stimulus"]["name"], json!("stim3"));
        assert_eq!(snap["stimulus"]["next"]["name"], json!("stim4"));
        assert_eq!(snap["stimulus"]["queue"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn snapshot_has_every_panel_key() {
        let empty = DashState::new(8, 30.0).snapshot();
        let mut s = DashState::new(8, 30.0);
        s.apply(DashEvent::Frame {
            t_s: 0.0,
            width: 4,
            height: 2,
            pixels: vec![0, 1, 2, 3, 4, 5, 6, 7],
        });
        s.apply(DashEvent::Latency {
            stage: "register".into(),
            p50_ms: 1.23456,
            p99_ms: 2.0,
            histogram: vec![(1.0, 3), (2.0, 1)],
        });
        let mut counters = Map::new();
        counters.insert("frames".into(), json!(10));
        counters.insert("bad".into(), json!({"nested": 1}));
        s.apply(DashEvent::Counters(counters));
        let full = s.snapshot();
        for snap in [empty, full.clone()] {
            for key in [
                "t_s",
                "frame",
                "traces",
                "stimulus",
                "latency",
                "counters",
                "accuracy",
                "decisions",
                "behaviour",
            ] {
                assert!(snap.get(key).is_some(), "snapshot lacks {key}");
            }
            for key in ["shifts", "selected", "width"] {
                assert!(snap["frame"].get(key).is_some(), "frame lacks {key}");
            }
            for key in ["pupil_x", "pupil_y", "pupil_radius", "speed_cm_s", "t"] {
                assert!(
                    snap["behaviour"].get(key).is_some(),
                    "behaviour lacks {key}"
                );
            }
        }
        assert_eq!(full["latency"][0]["p50_ms"], json!(1.2346));
        assert_eq!(full["counters"]["values"], json!({"frames": 10}));
        assert_eq!(full["frame"]["width"], json!(4));
    }

    #[test]
    fn malformed_events_are_rejected_not_applied() {
        let mut s = DashState::new(8, 30.0);
        s.apply(DashEvent::Frame {
            t_s: 0.0,
            width: 10,
            height: 10,
            pixels: vec![0; 99],
        });
        s.apply(DashEvent::Cells {
            centres: vec![(1.0, 1.0)],
            radii: vec![],
        });
        assert_eq!(s.event_counts(), (2, 2));
        assert!(s.frame_png().expect("png").is_none());
    }

    #[test]
    fn thumbnails_are_downsampled_and_outlined() {
        let mut s = DashState::new(8, 30.0);
        let (w, h) = (512u32, 300u32);
        s.apply(DashEvent::Frame {
            t_s: 0.0,
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| (i % 1000) as u16).collect(),
        });
        s.apply(DashEvent::Cells {
            centres: vec![(100.0, 200.0)],
            radii: vec![20.0],
        });
        assert_eq!(s.frame_size(), Some((256, 150)));
        let png = s.frame_png().expect("encode").expect("frame");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("decode");
        assert_eq!((info.width, info.height), (256, 150));
        let (cy, cx, r) = s.cell_on_thumbnail(0).expect("cell");
        let (y, x) = (cy.round() as usize, (cx + r).round() as usize);
        let px = &buf[(y * 256 + x) * 3..][..3];
        assert_eq!(px, &[255, 150, 0], "outline of a traced cell");
        s.apply(DashEvent::View {
            t_s: 0.0,
            width: 3,
            height: 2,
            pixels: vec![0, 50, 100, 150, 200, 250],
            trial: 7,
        });
        assert!(s.view_png().expect("encode").is_some());
    }
}
