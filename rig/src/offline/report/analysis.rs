//! What the report shows, computed from a [`SessionData`]: plain numbers, no markup.
//!
//! Every figure here is one a reader can recompute from the session directory: counts come
//! from the record log (the summary's counters are shown beside them), responses are window
//! means of the logged activity, and nothing is smoothed or fitted.

use std::collections::BTreeMap;

use super::data::{AnomalyView, CellId, LatencyRow, LogData, SessionData, test_trials};
pub use super::health::HealthRow;
use super::health::health;
use crate::stages::decide::design::AccuracyPoint;

/// Cells shown in the tuning and test-block sections.
pub const EXAMPLE_CELLS: usize = 6;
/// Anomaly messages quoted.
pub const FIRST_ANOMALIES: usize = 5;
/// Points per behaviour trace; longer sessions are averaged into this many bins.
const MAX_TRACE_POINTS: usize = 1500;

/// The decision modes in the order they are shown; unknown ones follow, by name.
pub const MODE_ORDER: [&str; 6] = ["warmup", "random", "test", "adaptive", "fallback", "late"];

/// One line of the session facts table; `id` names the cell in the HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
}

/// One scored decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePoint {
    pub trial: u64,
    pub score: f64,
    pub mode: String,
}

/// Adaptive against random trials of the same session.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub groups: Vec<GroupStats>,
    /// Adaptive decisions that logged alternatives besides the chosen stimulus.
    pub scored: u64,
    /// Mean score of the chosen stimulus over those decisions.
    pub mean_chosen: f64,
    /// Mean score of the best alternative that was not chosen.
    pub mean_best_other: f64,
}

/// Responses of one group of trials (by decision mode).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub mode: &'static str,
    pub trials: u64,
    /// Trials with activity in their window.
    pub with_activity: u64,
    /// Mean over those trials of the mean response over all cells.
    pub mean_population: Option<f64>,
    /// Mean over those trials of the mean response of the example cells.
    pub mean_examples: Option<f64>,
}

/// An example cell: its column and its response variance over trials.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleCell {
    pub cell: CellId,
    pub column: usize,
    pub variance: f64,
    pub label: String,
}

/// Mean activity per stimulus for the example cells.
#[derive(Debug, Clone, PartialEq)]
pub struct TuningRow {
    pub name: String,
    /// Presentations with activity in their window.
    pub presentations: u64,
    /// Per example cell; NaN without presentations.
    pub means: Vec<f64>,
}

/// Mean ± s.e.m. over repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSem {
    pub mean: f64,
    /// `None` with fewer than two repeats.
    pub sem: Option<f64>,
    pub n: u64,
}

/// One test-block stimulus.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRow {
    pub name: String,
    pub repeats: u64,
    /// Per example cell.
    pub cells: Vec<MeanSem>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    pub title: String,
    pub facts: Vec<Fact>,
    /// Set when the log ends in an incomplete or corrupt record (or is missing).
    pub cut_short: Option<String>,
    /// Other things a reader should know (no summary, undecodable records, ...).
    pub notes: Vec<String>,
    pub trials: u64,
    pub decisions: u64,
    pub accuracy: Vec<AccuracyPoint>,
    pub scores: Vec<ScorePoint>,
    pub modes: Vec<(String, u64)>,
    pub comparison: Option<Comparison>,
    /// Why there is no comparison.
    pub comparison_missing: String,
    pub latency: Vec<LatencyRow>,
    pub health: Vec<HealthRow>,
    pub anomaly_kinds: BTreeMap<String, u64>,
    pub anomalies_logged: u64,
    pub first_anomalies: Vec<AnomalyView>,
    pub has_log: bool,
    pub has_summary: bool,
    pub examples: Vec<ExampleCell>,
    /// Response columns (cells over all planes) and trials with activity in their window.
    pub response_cells: u64,
    pub responded_trials: u64,
    pub tuning: Vec<TuningRow>,
    pub test_block: Vec<TestRow>,
    pub stimulus_s: f64,
    pub stimulus_s_from_config: bool,
    pub pupil: Trace,
    pub speed: Trace,
    pub behaviour_frames: u64,
    /// The inception protocol's rounds and verdicts (`summary.json`).
    pub inception: Option<serde_json::Value>,
    /// Its designed images, by round (the log's design notes).
    pub inception_images: Vec<(
        u32,
        crate::stages::decide::inception::design::DesignedStimulus,
    )>,
}

impl Analysis {
    pub fn of(data: &SessionData) -> Analysis {
        let empty = LogData::default();
        let log = data.log.as_ref().unwrap_or(&empty);
        let mut a = Analysis {
            title: data
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| data.dir.display().to_string()),
            has_log: data.log.is_some(),
            has_summary: data.summary.is_some(),
            trials: log.stimuli.len() as u64,
            decisions: log.decisions.len() as u64,
            latency: data.latency.clone(),
            stimulus_s: data.stimulus_s,
            stimulus_s_from_config: data.stimulus_s_from_config,
            anomalies_logged: log.anomalies.len() as u64,
            first_anomalies: log
                .anomalies
                .iter()
                .take(FIRST_ANOMALIES)
                .cloned()
                .collect(),
            behaviour_frames: log.behaviour.len() as u64,
            inception: data.summary.as_ref().and_then(|s| s.inception.clone()),
            inception_images: log.inception_images.clone(),
            ..Analysis::default()
        };
        for anomaly in &log.anomalies {
            *a.anomaly_kinds.entry(anomaly.kind.clone()).or_default() += 1;
        }
        a.cut_short = cut_short_note(data, log);
        a.notes = notes(data, log);
        a.facts = facts(data, log);
        a.accuracy = accuracy(log);
        a.scores = log
            .decisions
            .iter()
            .filter_map(|d| {
                d.score.filter(|s| s.is_finite()).map(|score| ScorePoint {
                    trial: d.trial,
                    score,
                    mode: d.mode.clone(),
                })
            })
            .collect();
        a.modes = modes(log);
        a.health = health(data, log);
        a.examples = example_cells(log);
        a.response_cells = log.cells.len() as u64;
        a.responded_trials = log.responses.iter().flatten().count() as u64;
        let columns: Vec<usize> = a.examples.iter().map(|e| e.column).collect();
        a.tuning = tuning(log, &columns);
        a.test_block = test_block(log, &columns);
        (a.comparison, a.comparison_missing) = match comparison(log, &columns) {
            Ok(c) => (Some(c), String::new()),
            Err(why) => (None, why),
        };
        (a.pupil, a.speed) = behaviour(log);
        a
    }
}

fn cut_short_note(data: &SessionData, log: &LogData) -> Option<String> {
    if data.log.is_none() {
        let why = data
            .log_problem
            .as_deref()
            .unwrap_or("records.log is missing");
        let shown = if data.summary.is_some() {
            "the manifest and the summary are"
        } else {
            "only the manifest is"
        };
        return Some(format!(
            "The session has no record log to read ({why}): {shown} shown."
        ));
    }
    let lost: u64 = log.damage.iter().map(|d| d.records_lost).sum();
    let damage = match log.damage.len() {
        0 => String::new(),
        n => format!(" {n} damaged ranges were read past, losing {lost} records."),
    };
    let Some(tail) = log.tail.as_ref().filter(|t| !t.is_clean()) else {
        return (!damage.is_empty()).then(|| format!("Its record log is damaged:{damage}"));
    };
    let summary = match (data.summary.is_none(), log.expected_records) {
        (true, _) => " and it has no summary.json".to_string(),
        (false, Some(n)) => format!(" (summary.json says {n} records were written)"),
        (false, None) => String::new(),
    };
    Some(format!(
        "Its record log is {tail}{summary}.{damage} \
         The report covers the {} complete records it could read.",
        log.records
    ))
}

fn notes(data: &SessionData, log: &LogData) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(problem) = &data.summary_problem {
        notes.push(format!(
            "{problem}; counts below come from the record log alone."
        ));
    }
    if let Some(error) = data
        .summary
        .as_ref()
        .and_then(|s| s.recorder_error.as_ref())
    {
        notes.push(format!("The recorder failed during the session: {error}"));
    }
    if log.undecodable > 0 {
        notes.push(format!(
            "{} records could not be decoded and were left out (first: {}).",
            log.undecodable,
            log.problems.join("; ")
        ));
    }
    if !data.stimulus_s_from_config && !log.stimuli.is_empty() {
        notes.push(format!(
            "The manifest does not give trials.stimulus_s; responses use a {} s window.",
            data.stimulus_s
        ));
    }
    notes
}

fn facts(data: &SessionData, log: &LogData) -> Vec<Fact> {
    let mut facts = Vec::new();
    let mut fact = |id, label, value: String| facts.push(Fact { id, label, value });
    let text = |pointer: &str| {
        data.config(pointer).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let m = &data.manifest;
    fact("fact-dir", "Directory", data.dir.display().to_string());
    fact(
        "fact-name",
        "Name",
        text("/session/name").unwrap_or_else(|| "not recorded".into()),
    );
    fact("fact-started", "Started (UTC)", m.created_utc.clone());
    fact(
        "fact-version",
        "twinloop",
        format!(
            "{} (manifest format {})",
            m.twinloop_version, m.format_version
        ),
    );
    fact("fact-command", "Command line", m.command_line.join(" "));
    if let Some(source) = text("/source/kind") {
        fact("fact-source", "Source", source);
    }
    let configured = data
        .config("/session/duration_s")
        .and_then(serde_json::Value::as_f64);
    let rig_s = data.summary.as_ref().and_then(|s| s.rig_time_s);
    let duration = match (rig_s, log.first_t_ns, log.last_t_ns) {
        (Some(s), ..) => format!("{s:.1} s of rig time"),
        (None, Some(first), Some(last)) => format!(
            "{:.1} s of rig time between the first and last logged imaging frame",
            (last - first) as f64 * 1e-9
        ),
        _ => "not recorded".into(),
    };
    let duration = match configured {
        Some(c) => format!("{duration} (configured {c} s)"),
        None => duration,
    };
    fact("fact-duration", "Duration", duration);
    if let Some(wall) = data.summary.as_ref().and_then(|s| s.wall_s) {
        fact("fact-wall", "Wall time", format!("{wall:.1} s"));
    }
    let seeds = if m.seeds.is_empty() {
        "not recorded".to_string()
    } else {
        m.seeds
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    fact("fact-seeds", "Seeds", seeds);
    let mut policy = text("/trials/policy").unwrap_or_else(|| "not recorded".into());
    if policy == "adaptive"
        && let Some(objective) = text("/trials/design/objective")
    {
        policy = format!("{policy} (objective {objective})");
    }
    fact("fact-policy", "Policy", policy);
    fact(
        "fact-frames",
        "Imaging frames logged",
        log.frames_in.to_string(),
    );
    fact(
        "fact-activity-frames",
        "Frames with activity",
        log.activity_frames.to_string(),
    );
    let cells = data
        .summary
        .as_ref()
        .and_then(|s| s.cells)
        .unwrap_or(log.cells.len() as u64);
    fact("fact-cells", "Cells", cells.to_string());
    fact("fact-trials", "Trials shown", log.stimuli.len().to_string());
    fact(
        "fact-decisions",
        "Decisions",
        log.decisions.len().to_string(),
    );
    fact("fact-records", "Log records", log.records.to_string());
    let tail = match (&data.log, &log.tail) {
        (None, _) => "no record log".to_string(),
        (Some(_), Some(t)) if !t.is_clean() => format!("cut short: {t}"),
        (Some(_), _) => "clean".to_string(),
    };
    fact("fact-tail", "Log tail", tail);
    let ended = match data.summary.as_ref().and_then(|s| s.ingest_end.as_ref()) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "not recorded (no summary.json)".into(),
    };
    fact("fact-ended", "Ended", ended);
    facts
}

/// Distinct accuracy points, in trial order (each decision repeats the latest one).
fn accuracy(log: &LogData) -> Vec<AccuracyPoint> {
    let mut points: Vec<AccuracyPoint> = Vec::new();
    for p in log.decisions.iter().filter_map(|d| d.accuracy) {
        if !p.cc_norm.is_finite() {
            continue;
        }
        if points.last().is_some_and(|last| *last == p) {
            continue;
        }
        points.push(p);
    }
    points.sort_by_key(|p| p.trials);
    points.dedup_by_key(|p| p.trials);
    points
}

fn modes(log: &LogData) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &log.decisions {
        *counts.entry(d.mode.as_str()).or_default() += 1;
    }
    let mut out: Vec<(String, u64)> = MODE_ORDER
        .iter()
        .filter_map(|m| counts.remove(m).map(|n| (m.to_string(), n)))
        .collect();
    out.extend(counts.into_iter().map(|(m, n)| (m.to_string(), n)));
    out
}

/// Mean of the finite values, `None` without any.
fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Mean ± s.e.m. of the finite values.
pub fn mean_sem(values: &[f64]) -> Option<MeanSem> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len();
    let m = mean(finite.iter().copied())?;
    let sem = (n >= 2).then(|| {
        let var = finite.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    });
    Some(MeanSem {
        mean: m,
        sem,
        n: n as u64,
    })
}

fn cell_label(cell: CellId, planes: usize) -> String {
    if planes > 1 {
        format!("plane {} cell {}", cell.plane, cell.index)
    } else {
        format!("cell {}", cell.index)
    }
}

/// The cells whose trial responses vary most across trials (sample variance, needing at least
/// two trials with activity).
fn example_cells(log: &LogData) -> Vec<ExampleCell> {
    let rows: Vec<&Vec<f64>> = log.responses.iter().flatten().collect();
    if rows.len() < 2 {
        return Vec::new();
    }
    let planes = {
        let mut p: Vec<u8> = log.cells.iter().map(|c| c.plane).collect();
        p.dedup();
        p.len()
    };
    let mut candidates: Vec<ExampleCell> = log
        .cells
        .iter()
        .enumerate()
        .filter_map(|(column, &cell)| {
            let values: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.get(column).copied())
                .filter(|v| v.is_finite())
                .collect();
            if values.len() < 2 {
                return None;
            }
            let m = values.iter().sum::<f64>() / values.len() as f64;
            let variance =
                values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64;
            variance.is_finite().then(|| ExampleCell {
                cell,
                column,
                variance,
                label: cell_label(cell, planes),
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.variance
            .total_cmp(&a.variance)
            .then(a.column.cmp(&b.column))
    });
    candidates.truncate(EXAMPLE_CELLS);
    candidates
}

/// Responses of `columns` per presentation, grouped by stimulus name (sorted by name), for
/// the trials `keep` accepts.
fn by_stimulus(
    log: &LogData,
    columns: &[usize],
    keep: impl Fn(u64) -> bool,
) -> BTreeMap<String, (u64, Vec<Vec<f64>>)> {
    let mut groups: BTreeMap<String, (u64, Vec<Vec<f64>>)> = BTreeMap::new();
    for (s, response) in log.stimuli.iter().zip(&log.responses) {
        if !keep(s.trial) {
            continue;
        }
        let entry = groups
            .entry(s.name.clone())
            .or_insert_with(|| (0, vec![Vec::new(); columns.len()]));
        entry.0 += 1;
        if let Some(r) = response {
            for (k, &c) in columns.iter().enumerate() {
                entry.1[k].push(r.get(c).copied().unwrap_or(f64::NAN));
            }
        }
    }
    groups
}

fn tuning(log: &LogData, columns: &[usize]) -> Vec<TuningRow> {
    if columns.is_empty() {
        return Vec::new();
    }
    by_stimulus(log, columns, |_| true)
        .into_iter()
        .map(|(name, (_, per_cell))| TuningRow {
            name,
            presentations: per_cell.first().map_or(0, |v| v.len() as u64),
            means: per_cell
                .iter()
                .map(|v| mean(v.iter().copied()).unwrap_or(f64::NAN))
                .collect(),
        })
        .collect()
}

fn test_block(log: &LogData, columns: &[usize]) -> Vec<TestRow> {
    if columns.is_empty() {
        return Vec::new();
    }
    let tests = test_trials(log);
    by_stimulus(log, columns, |trial| tests.contains(&trial))
        .into_iter()
        .map(|(name, (repeats, per_cell))| TestRow {
            name,
            repeats,
            cells: per_cell
                .iter()
                .map(|v| {
                    mean_sem(v).unwrap_or(MeanSem {
                        mean: f64::NAN,
                        sem: None,
                        n: 0,
                    })
                })
                .collect(),
        })
        .collect()
}

fn comparison(log: &LogData, columns: &[usize]) -> Result<Comparison, String> {
    let has = |mode: &str| log.decisions.iter().any(|d| d.mode == mode);
    if log.decisions.is_empty() {
        return Err("no decisions were logged".into());
    }
    if !(has("adaptive") && has("random")) {
        return Err("the session's decisions are not a mix of adaptive and random trials".into());
    }
    let mode_of: BTreeMap<u64, &str> = log
        .decisions
        .iter()
        .map(|d| (d.trial, d.mode.as_str()))
        .collect();
    let groups = ["adaptive", "random"]
        .into_iter()
        .map(|mode| {
            let trials = log.decisions.iter().filter(|d| d.mode == mode).count() as u64;
            let responses: Vec<&Vec<f64>> = log
                .stimuli
                .iter()
                .zip(&log.responses)
                .filter(|(s, _)| mode_of.get(&s.trial) == Some(&mode))
                .filter_map(|(_, r)| r.as_ref())
                .collect();
            GroupStats {
                mode,
                trials,
                with_activity: responses.len() as u64,
                mean_population: mean(responses.iter().filter_map(|r| mean(r.iter().copied()))),
                mean_examples: mean(responses.iter().filter_map(|r| {
                    mean(
                        columns
                            .iter()
                            .map(|&c| r.get(c).copied().unwrap_or(f64::NAN)),
                    )
                })),
            }
        })
        .collect();
    let mut chosen = Vec::new();
    let mut best_other = Vec::new();
    for d in log.decisions.iter().filter(|d| d.mode == "adaptive") {
        let Some(score) = d.score.filter(|s| s.is_finite()) else {
            continue;
        };
        let other = d
            .alternatives
            .iter()
            .filter(|alt| Some(alt.entry) != d.stimulus && alt.score.is_finite())
            .map(|alt| alt.score)
            .max_by(f64::total_cmp);
        if let Some(other) = other {
            chosen.push(score);
            best_other.push(other);
        }
    }
    Ok(Comparison {
        groups,
        scored: chosen.len() as u64,
        mean_chosen: mean(chosen).unwrap_or(f64::NAN),
        mean_best_other: mean(best_other).unwrap_or(f64::NAN),
    })
}

/// A trace: (seconds since the first imaging frame, value).
pub type Trace = Vec<(f64, f64)>;

/// Pupil radius and running speed against seconds since the first imaging frame, averaged
/// into at most [`MAX_TRACE_POINTS`] bins.
fn behaviour(log: &LogData) -> (Trace, Trace) {
    let Some(t0) = log
        .first_t_ns
        .or_else(|| log.behaviour.iter().map(|b| b.t_ns).min())
    else {
        return (Vec::new(), Vec::new());
    };
    let series = |value: fn(&super::data::BehaviourView) -> Option<f64>| {
        let points: Vec<(f64, f64)> = log
            .behaviour
            .iter()
            .filter_map(|b| {
                let v = value(b).filter(|v| v.is_finite())?;
                Some(((b.t_ns - t0) as f64 * 1e-9, v))
            })
            .collect();
        downsample(&points, MAX_TRACE_POINTS)
    };
    (series(|b| b.pupil_radius_px), series(|b| b.treadmill_cm_s))
}

/// Averages consecutive points into `max` bins of equal count (order kept).
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|chunk| {
            let n = chunk.len() as f64;
            let (x, y) = chunk
                .iter()
                .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
            (x / n, y / n)
        })
        .collect()
}
