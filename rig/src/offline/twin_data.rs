//! A recorded session as the twin's training and evaluation data (`twinloop twin recording`):
//! one [`Recording`] row per plane-0 imaging frame that has activity.
//!
//! The session is read with the NWB export's reader ([`SessionContents`]: the report's reader
//! plus one pass over the log for per-frame traces and flips). Per row:
//! - **responses**: the frame's `Activity` record as logged (deconvolved spikes with the
//!   pipeline), one column per cell; cell ids are the column indices.
//! - **stimulus**: what was on screen at the frame's time: the last flip at or before it. Gray
//!   when that flip showed no trial; otherwise the trial's logged spec is re-rendered at the
//!   twin's resolution with the CPU renderer, over the display view's angular extent, at the
//!   flip's time within the trial (`(display_frame - onset_frame) / refresh_hz`), the same
//!   content the player drew. Each cell's scan-line offset (a few ms) is not applied: one
//!   frame time per row.
//! - **perspective** (pupil centre x, y) and **modulation** (pupil radius, treadmill velocity):
//!   the frame's `Behaviour` record (paired by frame sequence number), each column z-scored over
//!   the frames that have all four values; the means and s.d.s go in
//!   [`RecordingMeta::standardisation`]. A frame without them is 0 (the mean) and outside every
//!   segment.
//! - **segments**: runs of consecutive sequence numbers with behaviour: a lost or skipped
//!   frame, or missing behaviour, ends one.
//! - **trials**: each trial's rows (the first run of them within one segment), keyed by the
//!   pool entry's name and a CRC-32 of the spec's JSON, so repeats share a key.
//!
//! A simulated session that ended normally has the simulator's truth (`truth/rates.npy`): the
//! true mean rate (Hz) of each response column's cell over each row's frame comes as
//! [`SessionRecording::truth`], NaN where a column matches no simulated cell. Columns map to
//! simulated cells one to one: with `truth_footprints` extraction by index; with the pipeline
//! by centroid, closest pairs first within [`MATCH_PX`] after removing the median offset of the
//! reference from the brain (as the imaging tests match them); `grid` cells match none.
//!
//! A killed session (cut log, no summary) gives the rows it recorded; a missing log, or one
//! with no plane-0 activity or no behaviour, is an error naming the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use twinloop_calibration::imaging::cells::CellMasks;
use twinloop_model::ModelError;
pub use twinloop_model::train::{
    BehaviourStandardisation, RecordedTrial, Recording, RecordingMeta,
};
use twinloop_stimulus::{Prepared, Projection, StimulusSpec, cpu};

use crate::backbone::session_log::{RECORDS_LOG_FILE, SessionDir};
use crate::config::Extraction;
use crate::offline::export::nwb::{CALIBRATION_DIR, ExportError, SessionContents};
use crate::offline::report::data::{BehaviourView, LogData, StimulusView};
use crate::sim::twin_embeddings::{
    DEFAULT_BURN_IN, DEFAULT_REFERENCE, EmbeddingsError, TwinEmbeddings, load_twin, twin_embeddings,
};

/// The truth file written beside a recording: `[T, U]` float32, NaN for unmatched columns.
pub const TRUTH_FILE: &str = "truth.npy";

/// A detected cell matches a simulated one within this distance of centres, px (the imaging
/// tests' criterion).
pub const MATCH_PX: f32 = 4.0;

#[derive(Debug, thiserror::Error)]
pub enum TwinDataError {
    #[error(transparent)]
    Session(#[from] ExportError),

    /// A file the recording needs is missing or holds nothing usable.
    #[error("{path}: {reason}")]
    Missing { path: PathBuf, reason: String },

    #[error("{path}: trial {trial}'s stimulus record: {reason}")]
    Stimulus {
        path: PathBuf,
        trial: u64,
        reason: String,
    },

    #[error(
        "twin resolution {height}x{width}: height and width must be at least 2 (the twin's \
         default is 36x64)"
    )]
    Size { height: usize, width: usize },

    /// A bug: the arrays built do not agree with each other.
    #[error("the recording built from {path} does not hold together: {source}")]
    Inconsistent {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },

    #[error("cannot write the recording to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
}

/// A session's recording, with what else was learnt on the way.
#[derive(Debug, Clone)]
pub struct SessionRecording {
    pub recording: Recording,
    /// The simulator's true rates, `[T, U]` Hz, aligned with the responses (NaN: no matching
    /// simulated cell); `None` when the session has no truth.
    pub truth: Option<Vec<f32>>,
    /// Response columns that matched a simulated cell.
    pub truth_matched: usize,
    /// What was missing or odd (a killed session, frames without behaviour, ...).
    pub warnings: Vec<String>,
}

impl SessionRecording {
    /// Writes the recording (see `Recording::save`) and, when there is truth, [`TRUTH_FILE`].
    pub fn save(&self, dir: &Path) -> Result<(), TwinDataError> {
        let write = |source| TwinDataError::Write {
            path: dir.to_path_buf(),
            source: Box::new(source),
        };
        self.recording.save(dir).map_err(write)?;
        if let Some(truth) = &self.truth {
            let shape = [self.recording.len() as u64, self.recording.units() as u64];
            let path = dir.join(TRUTH_FILE);
            crate::vocab::npy::write_f32(&path, &shape, truth.iter().copied())
                .map_err(|source| write(ModelError::Io { path, source }))?;
        }
        Ok(())
    }
}

/// Builds the recording of `session_dir` at the twin's `height` x `width` (see the module docs).
pub fn recording_from_session(
    session_dir: &Path,
    height: usize,
    width: usize,
) -> Result<SessionRecording, TwinDataError> {
    if height < 2 || width < 2 {
        return Err(TwinDataError::Size { height, width });
    }
    let contents = SessionContents::load(session_dir)?;
    let log_path = session_dir.join(RECORDS_LOG_FILE);
    let mut warnings = contents.warnings.clone();
    let Some(log) = &contents.data.log else {
        return Err(TwinDataError::Missing {
            path: log_path,
            reason: contents
                .data
                .log_problem
                .clone()
                .unwrap_or_else(|| "no record log".into()),
        });
    };
    let activity = &contents.activity;
    let rows = activity.frames();
    if rows == 0 || activity.cells == 0 {
        return Err(TwinDataError::Missing {
            path: log_path,
            reason: "no plane-0 activity records: the session ended before its first frame was \
                     processed (with the pipeline, before its calibration block was done)"
                .into(),
        });
    }
    let units = activity.cells;

    // Behaviour per row, by frame sequence number (by time for logs without it).
    let by_seq: HashMap<u64, &BehaviourView> = log
        .behaviour
        .iter()
        .filter_map(|b| b.frame_seq.map(|s| (s, b)))
        .collect();
    let by_t: HashMap<i64, &BehaviourView> = log.behaviour.iter().map(|b| (b.t_ns, b)).collect();
    let raw: Vec<Option<[f64; 4]>> = (0..rows)
        .map(|i| {
            let b = by_seq
                .get(&activity.seq[i])
                .or_else(|| by_t.get(&activity.t_ns[i]))?;
            Some([
                b.pupil_x_px?,
                b.pupil_y_px?,
                b.pupil_radius_px?,
                b.treadmill_cm_s?,
            ])
            .filter(|v| v.iter().all(|x| x.is_finite()))
        })
        .collect();
    let with_behaviour = raw.iter().flatten().count();
    if with_behaviour == 0 {
        return Err(TwinDataError::Missing {
            path: log_path,
            reason: format!(
                "none of the {rows} imaging frames with activity has a behaviour record with \
                 pupil centre, pupil radius and treadmill velocity (is the eye camera or the \
                 treadmill connected?)"
            ),
        });
    }
    if with_behaviour < rows {
        warnings.push(format!(
            "{} of {rows} frames have no behaviour (pupil or treadmill missing): left out of \
             the segments",
            rows - with_behaviour
        ));
    }
    let (standardisation, perspective, modulation) = standardise(&raw, &mut warnings);

    // Segments: consecutive sequence numbers, all with behaviour.
    let mut segments = Vec::new();
    let mut start: Option<usize> = None;
    for (i, behaviour) in raw.iter().enumerate() {
        let continues = i > 0 && activity.seq[i] == activity.seq[i - 1] + 1;
        if let Some(s) = start
            && !(continues && behaviour.is_some())
        {
            segments.push(s..i);
            start = None;
        }
        if start.is_none() && behaviour.is_some() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        segments.push(s..rows);
    }

    let frame_hz = frame_rate(activity, contents.config.imaging.frame_rate_hz);
    let (frames, shown) = render_rows(&contents, log, &log_path, height, width, &mut warnings)?;

    let trials = trial_runs(&shown, &segments, &log.stimuli);
    let (truth, truth_matched) = match read_truth(&contents, frame_hz, &mut warnings) {
        Some((truth, matched)) => (Some(truth), matched),
        None => (None, 0),
    };
    let recording = Recording {
        height,
        width,
        frames,
        perspective,
        modulation,
        responses: activity.values.clone(),
        meta: RecordingMeta {
            frame_hz,
            unit_ids: (0..units as u32).collect(),
            segments,
            trials,
            standardisation: Some(standardisation),
        },
    };
    recording
        .validate()
        .map_err(|source| TwinDataError::Inconsistent {
            path: session_dir.to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(SessionRecording {
        recording,
        truth,
        truth_matched,
        warnings,
    })
}

/// Z-scores each behaviour column over the rows that have all four; rows without are 0.
fn standardise(
    raw: &[Option<[f64; 4]>],
    warnings: &mut Vec<String>,
) -> (BehaviourStandardisation, Vec<f32>, Vec<f32>) {
    const NAMES: [&str; 4] = [
        "pupil centre x",
        "pupil centre y",
        "pupil radius",
        "treadmill velocity",
    ];
    let present: Vec<&[f64; 4]> = raw.iter().flatten().collect();
    let n = present.len() as f64;
    let mut mean = [0.0f64; 4];
    let mut sd = [1.0f64; 4];
    for c in 0..4 {
        mean[c] = present.iter().map(|v| v[c]).sum::<f64>() / n;
        let var = present
            .iter()
            .map(|v| (v[c] - mean[c]).powi(2))
            .sum::<f64>()
            / n;
        if var > 0.0 && var.is_finite() {
            sd[c] = var.sqrt();
        } else {
            // A constant column carries nothing; centred, not scaled.
            warnings.push(format!("{} is constant: centred, not scaled", NAMES[c]));
        }
    }
    let mut perspective = Vec::with_capacity(raw.len() * 2);
    let mut modulation = Vec::with_capacity(raw.len() * 2);
    for row in raw {
        let z = |c: usize| row.map_or(0.0, |v| ((v[c] - mean[c]) / sd[c]) as f32);
        perspective.extend([z(0), z(1)]);
        modulation.extend([z(2), z(3)]);
    }
    let s = BehaviourStandardisation {
        perspective_mean: [mean[0], mean[1]],
        perspective_sd: [sd[0], sd[1]],
        modulation_mean: [mean[2], mean[3]],
        modulation_sd: [sd[2], sd[3]],
    };
    (s, perspective, modulation)
}

/// Plane 0's frame rate: the median interval between consecutive frames, else the config's.
fn frame_rate(activity: &crate::offline::export::nwb::Traces, configured: f64) -> f64 {
    let mut dt: Vec<i64> = (1..activity.frames())
        .filter(|&i| activity.seq[i] == activity.seq[i - 1] + 1)
        .map(|i| activity.t_ns[i] - activity.t_ns[i - 1])
        .filter(|&d| d > 0)
        .collect();
    if dt.is_empty() {
        return configured;
    }
    let mid = dt.len() / 2;
    let (_, median, _) = dt.select_nth_unstable(mid);
    1e9 / *median as f64
}

/// Renders each row's stimulus; also returns the trial on screen per row (`None`: gray).
fn render_rows(
    contents: &SessionContents,
    log: &LogData,
    log_path: &Path,
    height: usize,
    width: usize,
    warnings: &mut Vec<String>,
) -> Result<(Vec<u8>, Vec<Option<u64>>), TwinDataError> {
    let display = &contents.config.display;
    let view = twinloop_stimulus::ViewGeometry {
        width,
        height,
        ..display.view()
    };
    let projection = Projection::Linear(view);
    let px = view.pixels();
    let mut flips = contents.flips.clone();
    flips.sort_by_key(|f| f.t.as_nanos());
    // Each trial's onset flip (its first, when the onset flag was lost with the log's head).
    let mut onset_frame: BTreeMap<u64, u64> = BTreeMap::new();
    for f in &flips {
        if let Ok(trial) = u64::try_from(f.trial) {
            let first = onset_frame.entry(trial).or_insert(f.display_frame);
            if f.onset {
                *first = f.display_frame;
            }
        }
    }
    let stimuli: BTreeMap<u64, &StimulusView> = log.stimuli.iter().map(|s| (s.trial, s)).collect();
    let activity = &contents.activity;
    let rows = activity.frames();
    let mut frames = vec![cpu::MEAN_GRAY; rows * px];
    let mut shown = vec![None; rows];
    let mut current: Option<(u64, Prepared)> = None;
    let mut unlogged = 0u64;
    for (i, out) in frames.chunks_exact_mut(px).enumerate() {
        let t = activity.t_ns[i];
        let k = flips.partition_point(|f| f.t.as_nanos() <= t);
        let Some(flip) = k.checked_sub(1).map(|k| flips[k]) else {
            continue;
        };
        let Ok(trial) = u64::try_from(flip.trial) else {
            continue;
        };
        let Some(stim) = stimuli.get(&trial) else {
            // Flips of a trial whose onset record is not in the log (a cut log): gray.
            unlogged += 1;
            continue;
        };
        if current.as_ref().is_none_or(|(c, _)| *c != trial) {
            let bad = |reason: String| TwinDataError::Stimulus {
                path: log_path.to_path_buf(),
                trial,
                reason,
            };
            let value = stim
                .spec
                .clone()
                .ok_or_else(|| bad("it has no `spec` (logged by an older twinloop?)".into()))?;
            let spec: StimulusSpec = serde_json::from_value(value)
                .map_err(|e| bad(format!("the spec does not read: {e}")))?;
            let prepared = Prepared::new(&spec).map_err(|e| bad(e.to_string()))?;
            current = Some((trial, prepared));
        }
        let Some((_, prepared)) = current.as_mut() else {
            continue;
        };
        let stim_frame = flip.display_frame.saturating_sub(onset_frame[&trial]);
        cpu::render_content(
            &prepared.frame(stim_frame as f64 / display.refresh_hz),
            &projection,
            out,
        );
        shown[i] = Some(trial);
    }
    if unlogged > 0 {
        warnings.push(format!(
            "{unlogged} frames fall in trials without a stimulus record (a cut log): shown as gray"
        ));
    }
    Ok((frames, shown))
}

/// One trial per shown trial: its first run of rows within one segment.
fn trial_runs(
    shown: &[Option<u64>],
    segments: &[std::ops::Range<usize>],
    stimuli: &[StimulusView],
) -> Vec<RecordedTrial> {
    let keys: BTreeMap<u64, String> = stimuli.iter().map(|s| (s.trial, stimulus_key(s))).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut trials = Vec::new();
    for seg in segments {
        let mut i = seg.start;
        while i < seg.end {
            let Some(trial) = shown[i] else {
                i += 1;
                continue;
            };
            let start = i;
            while i < seg.end && shown[i] == Some(trial) {
                i += 1;
            }
            if seen.insert(trial)
                && let Some(key) = keys.get(&trial)
            {
                trials.push(RecordedTrial {
                    start,
                    frames: i - start,
                    stimulus: key.clone(),
                });
            }
        }
    }
    trials.sort_by_key(|t| t.start);
    trials
}

/// A trial's stimulus key: the pool entry's name and a CRC-32 of its spec's JSON (equal specs,
/// equal keys; the name alone could be reused for another spec by another pool).
pub fn stimulus_key(s: &StimulusView) -> String {
    let json = s
        .spec
        .as_ref()
        // A `Value` always encodes (its keys are strings): there is no failure to hide.
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_default();
    let crc = crc32fast::hash(&json);
    if s.name.is_empty() {
        format!("#{crc:08x}")
    } else {
        format!("{} #{crc:08x}", s.name)
    }
}

/// The simulator's true rates per row and column, when the session has them.
fn read_truth(
    contents: &SessionContents,
    frame_hz: f64,
    warnings: &mut Vec<String>,
) -> Option<(Vec<f32>, usize)> {
    let dir = SessionDir::open(&contents.data.dir).ok()?;
    let truth_dir = dir.truth_dir();
    let rates_path = truth_dir.join("rates.npy");
    if !rates_path.exists() {
        if truth_dir.join("cells.json").exists() {
            warnings.push(format!(
                "{} is missing (the simulated session did not end normally): no true rates",
                rates_path.display()
            ));
        }
        return None;
    }
    let mut fail = |what: String| {
        warnings.push(format!("no true rates: {what}"));
        None
    };
    let (shape, rates) = match crate::vocab::npy::read_f32(&rates_path) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}", rates_path.display())),
    };
    let times_path = truth_dir.join("frame_times.npy");
    let (_, times_s) = match crate::vocab::npy::read_f32(&times_path) {
        Ok(r) => r,
        Err(e) => return fail(format!("{}: {e}", times_path.display())),
    };
    let [n_true, n_frames] = shape[..] else {
        return fail(format!(
            "{}: shape {shape:?}, not [cells, frames]",
            rates_path.display()
        ));
    };
    let (n_true, n_frames) = (n_true as usize, n_frames as usize);
    if times_s.len() != n_frames {
        return fail(format!(
            "{} has {} times for {n_frames} frames",
            times_path.display(),
            times_s.len()
        ));
    }
    let cells = match crate::offline::replay::truth_cells(&dir) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let units = contents.activity.cells;
    let column_cell: Vec<Option<usize>> = match contents.config.imaging.extraction {
        Extraction::TruthFootprints => (0..units).map(|i| (i < n_true).then_some(i)).collect(),
        Extraction::Pipeline => {
            let cal = dir.path().join(CALIBRATION_DIR);
            let img = &contents.config.imaging;
            match CellMasks::load(&cal, img.height as usize, img.width as usize) {
                Ok(masks) => {
                    let detected: Vec<(f32, f32)> = masks
                        .info()
                        .iter()
                        .map(|c| (c.centroid_y_px, c.centroid_x_px))
                        .collect();
                    let truth: Vec<(f32, f32)> = cells
                        .iter()
                        .map(|c| (c.centre_y_px, c.centre_x_px))
                        .collect();
                    let mut m = match_cells(&detected, &truth, MATCH_PX);
                    m.resize(units, None);
                    m
                }
                Err(e) => return fail(format!("{}: {e}", cal.display())),
            }
        }
        Extraction::Grid => {
            return fail("grid cells are blocks, not cells: none matches a simulated cell".into());
        }
    };
    let matched = column_cell.iter().flatten().count();
    // Rows to truth frames by time, within a quarter of a frame.
    let tolerance_s = 0.25 / frame_hz;
    let activity = &contents.activity;
    let mut truth = vec![f32::NAN; activity.frames() * units];
    let mut unmatched_rows = 0usize;
    for (i, row) in truth.chunks_exact_mut(units).enumerate() {
        let t = activity.t_ns[i] as f64 * 1e-9;
        let k = times_s.partition_point(|&s| f64::from(s) < t);
        let nearest = [k.checked_sub(1), Some(k)]
            .into_iter()
            .flatten()
            .filter(|&j| j < n_frames)
            .min_by(|&a, &b| {
                (f64::from(times_s[a]) - t)
                    .abs()
                    .total_cmp(&(f64::from(times_s[b]) - t).abs())
            });
        let Some(f) = nearest.filter(|&j| (f64::from(times_s[j]) - t).abs() <= tolerance_s) else {
            unmatched_rows += 1;
            continue;
        };
        for (v, cell) in row.iter_mut().zip(&column_cell) {
            if let Some(c) = cell {
                *v = rates[c * n_frames + f];
            }
        }
    }
    if unmatched_rows > 0 {
        warnings.push(format!(
            "{unmatched_rows} frames have no simulated frame within {:.1} ms: their true rates \
             are NaN",
            tolerance_s * 1e3
        ));
    }
    Some((truth, matched))
}

/// For each detected cell, the simulated cell it is (or `None`): one to one, closest pairs
/// first within `max_px`, after removing the median offset of detections from their nearest
/// true cell (the registration reference sits wherever the brain was while it was built).
pub fn match_cells(
    detected: &[(f32, f32)],
    truth: &[(f32, f32)],
    max_px: f32,
) -> Vec<Option<usize>> {
    let dist = |a: (f32, f32), b: (f32, f32)| (a.0 - b.0).hypot(a.1 - b.1);
    let (mut dys, mut dxs) = (Vec::new(), Vec::new());
    for &d in detected {
        if let Some(&t) = truth
            .iter()
            .filter(|&&t| dist(d, t) <= 2.0 * max_px)
            .min_by(|a, b| dist(d, **a).total_cmp(&dist(d, **b)))
        {
            dys.push(d.0 - t.0);
            dxs.push(d.1 - t.1);
        }
    }
    let median = |v: &mut Vec<f32>| {
        if v.is_empty() {
            return 0.0;
        }
        let mid = v.len() / 2;
        *v.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    let offset = (median(&mut dys), median(&mut dxs));
    let mut pairs = Vec::new();
    for (di, &d) in detected.iter().enumerate() {
        let d = (d.0 - offset.0, d.1 - offset.1);
        for (ti, &t) in truth.iter().enumerate() {
            let r = dist(d, t);
            if r <= max_px {
                pairs.push((r, di, ti));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = vec![None; detected.len()];
    let mut taken = vec![false; truth.len()];
    for (_, di, ti) in pairs {
        if out[di].is_none() && !taken[ti] {
            out[di] = Some(ti);
            taken[ti] = true;
        }
    }
    out
}

/// The embeddings of the twin at `weights` + `config` scored on the session in `session_dir`
/// (as `twin recording` reads it), with the default reference set and burn-in: what a
/// session's end writes beside its live twin and what the NWB export tabulates. A twin of
/// another session (a unit count that is not the session's cells) is refused naming it.
pub fn session_embeddings(
    session_dir: &Path,
    weights: &Path,
    config: &Path,
) -> Result<TwinEmbeddings, EmbeddingsError> {
    let refused = |reason: String| EmbeddingsError::Twin {
        path: weights.to_path_buf(),
        reason,
    };
    let (cfg, w) = load_twin(weights, config)?;
    let rec = recording_from_session(session_dir, cfg.stimulus_height, cfg.stimulus_width)
        .map_err(|e| refused(format!("cannot score it on the session: {e}")))?;
    if rec.recording.units() != cfg.units {
        return Err(refused(format!(
            "it has {} units ({}) and the session {} cells: the twin of another session or \
             mouse; give the twin fitted on this session",
            cfg.units,
            config.display(),
            rec.recording.units()
        )));
    }
    twin_embeddings(
        &w,
        &cfg,
        &rec.recording,
        rec.truth.as_deref(),
        &HashMap::new(),
        DEFAULT_REFERENCE,
        DEFAULT_BURN_IN,
    )
    .map_err(|e| refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_match_one_to_one_after_the_reference_offset() {
        let truth = [(10.0, 10.0), (40.0, 10.0), (10.0, 40.0), (80.0, 80.0)];
        // Shifted by (3, -2) with a little noise; one spurious detection, one missed cell.
        let detected = [(13.2, 8.1), (42.9, 7.8), (13.0, 38.0), (60.0, 20.0)];
        let m = match_cells(&detected, &truth, MATCH_PX);
        assert_eq!(m, vec![Some(0), Some(1), Some(2), None]);
        // Two detections near one cell: only the closer gets it.
        let detected = [(10.0, 10.0), (12.0, 10.0), (40.0, 10.0), (10.0, 40.0)];
        let m = match_cells(&detected, &truth, MATCH_PX);
        assert_eq!(m, vec![Some(0), None, Some(1), Some(2)]);
    }

    #[test]
    fn equal_specs_share_a_key_and_different_ones_do_not() {
        let view = |name: &str, spec: serde_json::Value| StimulusView {
            trial: 0,
            stimulus: None,
            name: name.into(),
            onset_t_ns: 0,
            spec: Some(spec),
        };
        let a = serde_json::json!({"kind": "grating", "direction_deg": 45.0});
        let b = serde_json::json!({"kind": "grating", "direction_deg": 90.0});
        assert_eq!(
            stimulus_key(&view("g", a.clone())),
            stimulus_key(&view("g", a))
        );
        assert_ne!(
            stimulus_key(&view("g", b.clone())),
            stimulus_key(&view("g", serde_json::json!({"kind": "grating"})))
        );
        assert!(stimulus_key(&view("test 1", b)).starts_with("test 1 #"));
    }

    #[test]
    fn behaviour_is_z_scored_over_present_rows() {
        let raw = vec![
            Some([1.0, 2.0, 3.0, 0.0]),
            None,
            Some([3.0, 2.0, 5.0, 10.0]),
        ];
        let mut warnings = Vec::new();
        let (s, p, m) = standardise(&raw, &mut warnings);
        assert_eq!(s.perspective_mean, [2.0, 2.0]);
        assert_eq!(s.perspective_sd, [1.0, 1.0]);
        assert_eq!(s.modulation_sd, [1.0, 5.0]);
        assert_eq!(p, [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(m, [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0]);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("pupil centre y is constant"))
        );
    }
}
