//! Reading a session directory for the report: the manifest, `summary.json` when the session
//! ended normally, and the record log, up to its last complete record.
//!
//! Everything is read leniently. Records are decoded into small views that take only the
//! fields the report shows, each with a default, so that a log written by an older twinloop
//! (decisions without `accuracy`, say) or a newer one (fields added) still reads; a record
//! that does not decode at all is counted and named, never fatal. Only a directory that is not
//! a session, or a manifest or record log that cannot be read at all, is an error.
//!
//! The log is read twice: the first pass collects the small records (trial onsets, decisions,
//! anomalies, behaviour) and the second adds each frame's activity to the trial whose stimulus
//! window holds it, so memory grows with trials x cells, not with frames x cells.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::ReportError;
use crate::backbone::session_log::{
    Damage, LATENCY_FILE, LogError, MANIFEST_FILE, Manifest, RECORDS_LOG_FILE, SUMMARY_FILE,
    SessionDir, SessionError, TailState,
};
use crate::stages::decide::design::{AccuracyPoint, TwinRefitNote};
use crate::stages::decide::inception::design::{DesignMessage, DesignedStimulus};
use crate::stages::decide::inception::driver::event as inception_event;
use crate::vocab::protocol::Stream;
use crate::vocab::records::{self, RecordKind};

/// Undecodable records named in the report; the rest are only counted.
const MAX_NAMED_PROBLEMS: usize = 5;

/// The stimulus duration assumed when the manifest's config does not say
/// (`trials.stimulus_s`'s default).
const DEFAULT_STIMULUS_S: f64 = 2.0;

/// A session directory as the report sees it.
#[derive(Debug)]
pub struct SessionData {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// `summary.json`, when the session ended normally.
    pub summary: Option<SummaryView>,
    /// Why there is no summary (missing, or unreadable), when there is none.
    pub summary_problem: Option<String>,
    /// Latency figures: from the summary, else from `latency.json`.
    pub latency: Vec<LatencyRow>,
    /// The record log; `None` when `records.log` is missing or is not a record log (what a
    /// daemon killed before its first record can leave), and then why.
    pub log: Option<LogData>,
    pub log_problem: Option<String>,
    /// Stimulus duration used for the response windows, seconds, and whether the manifest
    /// said so (otherwise [`DEFAULT_STIMULUS_S`]).
    pub stimulus_s: f64,
    pub stimulus_s_from_config: bool,
}

/// The fields of `summary.json` the report shows; every one optional, so a summary from
/// another twinloop version still reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SummaryView {
    pub cells: Option<u64>,
    pub rig_time_s: Option<f64>,
    pub wall_s: Option<f64>,
    pub ingest_end: Option<Value>,
    /// Counter name to value; non-numeric entries (the per-label rejections) are summed in
    /// [`SummaryView::counter`]'s `rejected`.
    pub counters: BTreeMap<String, Value>,
    pub latency: Vec<LatencyRow>,
    pub log_records: Option<u64>,
    pub log_bytes: Option<u64>,
    pub recorder_error: Option<String>,
    /// The inception protocol's rounds and verdicts.
    pub inception: Option<Value>,
}

impl SummaryView {
    /// A counter by name; `rejected` is the total over its labels.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let value = self.counters.get(name)?;
        match value {
            Value::Object(labels) => Some(labels.values().filter_map(Value::as_u64).sum()),
            other => other.as_u64(),
        }
    }

    /// One of the adaptive design's counts (`counters.design`, absent before the summary
    /// carried them).
    pub fn design_counter(&self, name: &str) -> Option<u64> {
        self.counters.get("design")?.get(name)?.as_u64()
    }
}

/// One stage's latency, as in `summary.json` and `latency.json`.
pub use crate::backbone::telemetry::LatencySummary as LatencyRow;

/// A trial onset (`Stimulus` record).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StimulusView {
    pub trial: u64,
    #[serde(default)]
    pub stimulus: Option<u64>,
    #[serde(default)]
    pub name: String,
    pub onset_t_ns: i64,
    /// The stimulus spec as the renderer showed it (kept for export; the report does not show it).
    #[serde(default)]
    pub spec: Option<Value>,
}

/// A selector decision (`Decision` record): the fields the report shows.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DecisionView {
    pub trial: u64,
    #[serde(default)]
    pub stimulus: Option<u64>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub policy: String,
    /// `random`, `warmup`, `test`, `adaptive`, `fallback` or `late`; kept as text so that a
    /// mode this version does not know still shows. Absent in the oldest logs: `random`.
    #[serde(default = "random_mode")]
    pub mode: String,
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub alternatives: Vec<AlternativeView>,
    /// Absent before decisions carried the twin's accuracy.
    #[serde(default)]
    pub accuracy: Option<AccuracyPoint>,
    /// A twin refit taken just before this decision (applied, or failed and not applied).
    #[serde(default)]
    pub twin_refit: Option<TwinRefitNote>,
}

fn random_mode() -> String {
    "random".to_string()
}

/// One scored candidate beside an adaptive decision.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AlternativeView {
    pub entry: u64,
    pub score: f64,
}

/// One anomaly: its kind (the `anomaly` tag) and its other fields as text.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyView {
    pub kind: String,
    pub detail: String,
}

/// One imaging frame's behaviour (`Behaviour` record).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct BehaviourView {
    pub t_ns: i64,
    /// The imaging frame's sequence number (absent in the oldest logs).
    #[serde(default)]
    pub frame_seq: Option<u64>,
    /// Pupil centre in the eye camera, px.
    #[serde(default)]
    pub pupil_x_px: Option<f64>,
    #[serde(default)]
    pub pupil_y_px: Option<f64>,
    #[serde(default)]
    pub pupil_radius_px: Option<f64>,
    #[serde(default)]
    pub treadmill_cm_s: Option<f64>,
}

/// A response column: one cell of one plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellId {
    pub plane: u8,
    pub index: u32,
}

/// What the record log holds, as far as it could be read.
#[derive(Debug, Default)]
pub struct LogData {
    pub path: PathBuf,
    /// Complete records read.
    pub records: u64,
    pub tail: Option<TailState>,
    /// Damaged ranges the reader read past (format version 2 logs).
    pub damage: Vec<Damage>,
    /// Records `summary.json` says were written, when it says.
    pub expected_records: Option<u64>,
    /// Records by kind name (`input`, `activity`, ..., `unknown`).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Two-photon `Input` records: imaging frames that arrived.
    pub frames_in: u64,
    /// `Activity` records: imaging frames processed.
    pub activity_frames: u64,
    /// Rig time of the first and last imaging frame (input or activity), ns.
    pub first_t_ns: Option<i64>,
    pub last_t_ns: Option<i64>,
    pub stimuli: Vec<StimulusView>,
    pub decisions: Vec<DecisionView>,
    pub anomalies: Vec<AnomalyView>,
    pub behaviour: Vec<BehaviourView>,
    /// Records that did not decode: how many, and the first few named.
    pub undecodable: u64,
    pub problems: Vec<String>,
    /// Response columns, in order; `responses[trial][column]` follows it.
    pub cells: Vec<CellId>,
    /// Per `stimuli` entry: the mean activity of each column over the frames in its window
    /// (`None` when no frame fell in it, e.g. the last trial of a cut-short session).
    pub responses: Vec<Option<Vec<f64>>>,
    /// The inception protocol's designed and matched images (MEIs, controls, library bests)
    /// with the twin's predictions, by round, in log order (its `design_message` notes).
    pub inception_images: Vec<(u32, DesignedStimulus)>,
}

impl SessionData {
    /// Reads `path`, which must be a session directory (it has `manifest.json`).
    pub fn load(path: &Path) -> Result<SessionData, ReportError> {
        Self::load_with(path, true)
    }

    /// As [`SessionData::load`] without the trial responses (one pass over the log instead of
    /// two: `responses` stays empty), for readers that take activity frame by frame themselves.
    pub fn load_without_responses(path: &Path) -> Result<SessionData, ReportError> {
        Self::load_with(path, false)
    }

    fn load_with(path: &Path, responses: bool) -> Result<SessionData, ReportError> {
        let dir = SessionDir::open(path).map_err(|source| match source {
            SessionError::DirMissing { .. } => ReportError::DirMissing {
                path: path.to_path_buf(),
            },
            SessionError::NotASession { .. } => ReportError::NotASession {
                path: path.to_path_buf(),
                found: describe_contents(path),
            },
            source => ReportError::Manifest {
                path: path.join(MANIFEST_FILE),
                source,
            },
        })?;
        let manifest = dir
            .read_manifest()
            .map_err(|source| ReportError::Manifest {
                path: dir.manifest_path(),
                source,
            })?;

        let (summary, summary_problem) = match read_json::<SummaryView>(&dir.summary_path()) {
            Ok(Some(summary)) => (Some(summary), None),
            Ok(None) => (
                None,
                Some(format!(
                    "{SUMMARY_FILE} is missing: the session did not end normally"
                )),
            ),
            Err(problem) => {
                tracing::warn!(%problem, "summary not used");
                (None, Some(problem))
            }
        };
        let latency = match &summary {
            Some(s) if !s.latency.is_empty() => s.latency.clone(),
            _ => match read_json::<Vec<LatencyRow>>(&dir.latency_path()) {
                Ok(rows) => rows.unwrap_or_default(),
                Err(problem) => {
                    tracing::warn!(%problem, "latency figures not used");
                    Vec::new()
                }
            },
        };

        let configured = manifest
            .config
            .pointer("/trials/stimulus_s")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0);
        let stimulus_s = configured.unwrap_or(DEFAULT_STIMULUS_S);

        let (log, log_problem) = match read_log(&dir, stimulus_s, responses) {
            Ok(log) => (Some(log), None),
            Err(e @ (LogError::Missing { .. } | LogError::NotALog { .. })) => {
                tracing::warn!(error = %e, "no record log to report on");
                (None, Some(e.to_string()))
            }
            Err(source) => {
                return Err(ReportError::Log {
                    path: dir.records_log_path(),
                    source,
                });
            }
        };
        Ok(SessionData {
            dir: dir.path().to_path_buf(),
            manifest,
            summary,
            summary_problem,
            latency,
            log,
            log_problem,
            stimulus_s,
            stimulus_s_from_config: configured.is_some(),
        })
    }

    /// A value of the manifest's config by JSON pointer (`/session/name`).
    pub fn config(&self, pointer: &str) -> Option<&Value> {
        self.manifest.config.pointer(pointer)
    }
}

/// What a directory that is not a session holds, for the error message.
fn describe_contents(path: &Path) -> String {
    let Ok(entries) = fs::read_dir(path) else {
        return "it cannot be listed".to_string();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    match names.len() {
        0 => "it is empty".to_string(),
        n if n <= 6 => format!("it holds {}", names.join(", ")),
        n => format!("it holds {}, ... ({n} entries)", names[..6].join(", ")),
    }
}

/// `Ok(None)` when the file does not exist; `Err` names the file and what is wrong.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| format!("{} is not valid: {e}", path.display()))
}

fn kind_name(code: u16) -> &'static str {
    match RecordKind::from_code(code) {
        Some(RecordKind::Input) => "input",
        Some(RecordKind::Activity) => "activity",
        Some(RecordKind::Flip) => "flip",
        Some(RecordKind::Fluorescence) => "fluorescence",
        Some(RecordKind::Stimulus) => "stimulus",
        Some(RecordKind::Decision) => "decision",
        Some(RecordKind::Anomaly) => "anomaly",
        Some(RecordKind::Note) => "note",
        Some(RecordKind::Pupil) => "pupil",
        Some(RecordKind::Behaviour) => "behaviour",
        Some(RecordKind::Clock) => "clock",
        Some(RecordKind::Cells) => "cells",
        Some(RecordKind::Registration) => "registration",
        Some(RecordKind::Manifest) => "manifest",
        Some(RecordKind::End) => "end",
        None => "unknown",
    }
}

/// Reads the log twice (see the module docs).
fn read_log(dir: &SessionDir, stimulus_s: f64, responses: bool) -> Result<LogData, LogError> {
    let mut log = LogData {
        path: dir.records_log_path(),
        ..LogData::default()
    };
    let mut planes: BTreeMap<u8, u32> = BTreeMap::new();
    let mut reader = dir.open_log()?;
    let mut buf = Vec::new();
    while let Some(info) = reader.next_into(&mut buf)? {
        log.records += 1;
        *log.kinds.entry(kind_name(info.kind)).or_default() += 1;
        let decoded = match RecordKind::from_code(info.kind) {
            Some(RecordKind::Input) => records::decode_input(&buf).map(|input| {
                if input.header.stream == Stream::TwoPhoton {
                    log.frames_in += 1;
                    log.see_time(input.header.t_ns);
                }
            }),
            Some(RecordKind::Activity) => records::decode_activity(&buf).map(|a| {
                log.activity_frames += 1;
                log.see_time(a.t.as_nanos());
                let n = u32::try_from(a.values.len()).unwrap_or(u32::MAX);
                let width = planes.entry(a.plane).or_default();
                *width = (*width).max(n);
            }),
            Some(RecordKind::Stimulus) => {
                records::decode_json("stimulus", &buf).map(|s| log.stimuli.push(s))
            }
            Some(RecordKind::Decision) => {
                records::decode_json("decision", &buf).map(|d| log.decisions.push(d))
            }
            Some(RecordKind::Anomaly) => records::decode_json::<Value>("anomaly", &buf).map(|v| {
                log.anomalies.push(anomaly_view(v));
            }),
            Some(RecordKind::Behaviour) => {
                records::decode_json("behaviour", &buf).map(|b| log.behaviour.push(b))
            }
            Some(RecordKind::Note) => {
                records::decode_json::<Value>("note", &buf).map(|v| log.see_note(v))
            }
            _ => Ok(()),
        };
        if let Err(e) = decoded {
            log.undecodable += 1;
            if log.problems.len() < MAX_NAMED_PROBLEMS {
                log.problems.push(format!(
                    "record {} at byte {}: {e}",
                    info.index, info.offset
                ));
            }
            tracing::debug!(index = info.index, error = %e, "record not decoded");
        }
    }
    log.tail = reader.tail().cloned();
    log.damage = reader.damage().to_vec();
    log.expected_records = dir.expected_records();
    if let Some(tail) = &log.tail
        && !tail.is_clean()
    {
        tracing::warn!(
            log = %log.path.display(),
            %tail,
            expected = ?log.expected_records,
            "the record log was cut short"
        );
    }

    for (&plane, &n) in &planes {
        log.cells
            .extend((0..n).map(|index| CellId { plane, index }));
    }
    if responses {
        accumulate_responses(dir, stimulus_s, &planes, &mut log)?;
    }
    Ok(log)
}

impl LogData {
    /// An inception design result's images (the other notes the report does not show).
    fn see_note(&mut self, mut v: Value) {
        if v.get("event").and_then(Value::as_str) != Some(inception_event::DESIGN_MESSAGE) {
            return;
        }
        let round = v.get("round").and_then(Value::as_u64).unwrap_or(0) as u32;
        match serde_json::from_value::<DesignMessage>(v["payload"].take()) {
            Ok(
                DesignMessage::Screened { stimuli, .. } | DesignMessage::Designed { stimuli, .. },
            ) => {
                self.inception_images
                    .extend(stimuli.into_iter().map(|s| (round, s)));
            }
            Ok(DesignMessage::Failed { .. }) => {}
            Err(e) => {
                self.undecodable += 1;
                if self.problems.len() < MAX_NAMED_PROBLEMS {
                    self.problems
                        .push(format!("an inception design note (round {round}): {e}"));
                }
            }
        }
    }

    fn see_time(&mut self, t_ns: i64) {
        self.first_t_ns = Some(self.first_t_ns.map_or(t_ns, |t| t.min(t_ns)));
        self.last_t_ns = Some(self.last_t_ns.map_or(t_ns, |t| t.max(t_ns)));
    }

    /// True when reading stopped at an incomplete or corrupt record.
    pub fn cut_short(&self) -> bool {
        self.tail.as_ref().is_some_and(|t| !t.is_clean())
    }
}

fn anomaly_view(value: Value) -> AnomalyView {
    let Value::Object(mut fields) = value else {
        return AnomalyView {
            kind: "unknown".into(),
            detail: value.to_string(),
        };
    };
    let kind = match fields.remove("anomaly") {
        Some(Value::String(kind)) => kind,
        _ => "unknown".into(),
    };
    let detail = fields
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k} {s}"),
            other => format!("{k} {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    AnomalyView { kind, detail }
}

/// Second pass: each activity frame is added to every trial whose window
/// `[onset, onset + stimulus_s)` holds its time.
fn accumulate_responses(
    dir: &SessionDir,
    stimulus_s: f64,
    planes: &BTreeMap<u8, u32>,
    log: &mut LogData,
) -> Result<(), LogError> {
    let columns = log.cells.len();
    let trials = log.stimuli.len();
    if columns == 0 || trials == 0 {
        log.responses = vec![None; trials];
        return Ok(());
    }
    let mut offsets: BTreeMap<u8, usize> = BTreeMap::new();
    let mut at = 0usize;
    for (&plane, &n) in planes {
        offsets.insert(plane, at);
        at += n as usize;
    }
    let window_ns = (stimulus_s * 1e9).round() as i64;
    // Windows sorted by onset; equal lengths make their ends sorted too.
    let mut order: Vec<usize> = (0..trials).collect();
    order.sort_by_key(|&i| log.stimuli[i].onset_t_ns);
    let onsets: Vec<i64> = order.iter().map(|&i| log.stimuli[i].onset_t_ns).collect();
    let mut sums = vec![vec![0.0f64; columns]; trials];
    let mut counts = vec![vec![0u32; columns]; trials];
    let mut frames = vec![0u64; trials];

    let mut reader = dir.open_log()?;
    let mut buf = Vec::new();
    while let Some(info) = reader.next_into(&mut buf)? {
        if RecordKind::from_code(info.kind) != Some(RecordKind::Activity) {
            continue;
        }
        // Already counted (and named) in the first pass.
        let Ok(a) = records::decode_activity(&buf) else {
            continue;
        };
        let t = a.t.as_nanos();
        let Some(&start) = offsets.get(&a.plane) else {
            continue;
        };
        let mut k = onsets.partition_point(|&onset| onset <= t);
        while k > 0 && onsets[k - 1].saturating_add(window_ns) > t {
            k -= 1;
            let trial = order[k];
            frames[trial] += 1;
            let columns = sums[trial][start..]
                .iter_mut()
                .zip(&mut counts[trial][start..]);
            for ((sum, n), v) in columns.zip(&a.values) {
                if v.is_finite() {
                    *sum += f64::from(*v);
                    *n += 1;
                }
            }
        }
    }
    log.responses = (0..trials)
        .map(|trial| {
            (frames[trial] > 0).then(|| {
                sums[trial]
                    .iter()
                    .zip(&counts[trial])
                    .map(|(s, &n)| if n > 0 { s / f64::from(n) } else { f64::NAN })
                    .collect()
            })
        })
        .collect();
    Ok(())
}

/// The trials of the repeated test block: those whose decision has mode `test`, or, for a
/// trial without a logged decision, whose stimulus name starts with `test `.
pub fn test_trials(log: &LogData) -> BTreeSet<u64> {
    let modes: BTreeMap<u64, &str> = log
        .decisions
        .iter()
        .map(|d| (d.trial, d.mode.as_str()))
        .collect();
    log.stimuli
        .iter()
        .filter(|s| match modes.get(&s.trial) {
            Some(mode) => *mode == "test",
            // No decision logged for it (a cut-short log): the test block's names say so.
            None => s.name.starts_with("test "),
        })
        .map(|s| s.trial)
        .collect()
}

/// The files of a session directory, for messages.
pub fn expected_layout() -> String {
    format!(
        "{MANIFEST_FILE}, {RECORDS_LOG_FILE} and, once it has ended, {SUMMARY_FILE} and {LATENCY_FILE}"
    )
}
