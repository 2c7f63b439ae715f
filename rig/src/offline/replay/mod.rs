//! Replay: re-run a logged session's pipeline from its log, as fast as it goes, and check that
//! it reproduces the live run — the same activity for every frame and the same decisions.
//!
//! The log is the source: every two-photon `Input` record is re-parsed and fed through the
//! same pool, ring and extraction stage as live (waiting when the stage is busy, since replay
//! has no deadline). The selector is fed the activity of exactly the frames the live selector
//! saw (the live `Activity` records), in order, and asked for each decision at the point the
//! live one was made (its `after_frame_seq`), so decisions are reproduced even when the live
//! stage skipped frames.

mod activity;
mod counterfactual;
mod decisions;
mod log;

pub use counterfactual::{Overrides, PolicyComparison, TwinOverride};
pub(crate) use log::truth_cells;

use crate::backbone::session_log::SessionDir;
use crate::config::Config;
use crate::vocab::records;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{0}")]
    Session(#[from] crate::backbone::session_log::SessionError),
    #[error("{0}")]
    Log(#[from] crate::backbone::session_log::LogError),
    #[error("the manifest's config is not a config this version understands: {0}")]
    Config(String),
    /// The session's selector, or the counterfactual's, cannot be built (a `[twin]` core's
    /// files, say); the message names the field and the fix.
    #[error("cannot build the replayed selector: {0}")]
    Selector(String),
    #[error(
        "cannot read true footprints {path}: {reason} (needed for extraction = \"truth_footprints\")"
    )]
    Truth { path: String, reason: String },
    #[error("record {index}: {source}")]
    Record {
        index: u64,
        source: records::RecordError,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub session_dir: String,
    /// State of the log's end: clean, or where a crash cut it.
    pub log_tail: String,
    /// Damaged ranges of the log read past (format version 2), each with the records lost.
    pub log_damage: Vec<String>,
    pub records: u64,
    pub frames_logged: u64,
    /// Frames whose pixels were in the log and went through the pipeline again.
    pub frames_replayed: u64,
    pub activity_compared: u64,
    pub activity_max_abs_diff: f32,
    pub activity_mismatches: u64,
    pub decisions_logged: u64,
    pub decisions_reproduced: u64,
    pub first_decision_mismatch: Option<String>,
    /// Device clock mappings logged live (`Clock` records), and how many the replayed fit
    /// reproduced bit for bit from the logged ticks.
    pub clock_updates_logged: u64,
    pub clock_updates_reproduced: u64,
    /// Imaging frames whose rig time (mapped from the device clock again) was compared with
    /// the live activity's, and how many differed.
    pub frame_times_compared: u64,
    pub frame_time_mismatches: u64,
    /// The selector's own notes (the inception protocol's phases, pre-registrations, design
    /// results, verify trials with their predictions), logged and made again identically.
    pub selector_notes_logged: u64,
    pub selector_notes_reproduced: u64,
    pub first_selector_note_mismatch: Option<String>,
    /// A log cut by a crash: notes logged after the last decision that reached the log (the
    /// decision that made them was lost), not compared.
    pub selector_notes_past_cut: u64,
    /// Whether the logged inception verdict was reproduced (`None`: none was logged, as in a
    /// session killed before its end).
    pub verdict_reproduced: Option<bool>,
    /// The verdict the replay reached (inception sessions).
    pub verdict: Option<serde_json::Value>,
    /// With overrides: how the other selector's decisions (and its twin's predictions) differ.
    /// The live selector is replayed alongside, so `decisions_reproduced` still counts its
    /// decisions against the log.
    pub counterfactual: Option<PolicyComparison>,
    pub wall_s: f64,
    pub frames_per_s: f64,
}

impl ReplayReport {
    /// Everything that could be compared matched.
    pub fn reproduced(&self) -> bool {
        self.activity_mismatches == 0
            && self.clock_updates_reproduced == self.clock_updates_logged
            && self.frame_time_mismatches == 0
            && (self.counterfactual.is_some() || self.decisions_reproduced == self.decisions_logged)
            && self.selector_notes_reproduced == self.selector_notes_logged
            && self.verdict_reproduced != Some(false)
    }
}

/// Replays the session in `path` exactly: the same activity for every frame, the same clock
/// fits and the same decisions.
pub fn replay(path: &Path) -> Result<ReplayReport, ReplayError> {
    run(path, None)
}

/// Replays the session in `path` with another selector alongside the live one (`overrides`;
/// none: an exact replay), and says how its decisions and its twin's predictions differ.
pub fn counterfactual(path: &Path, overrides: &Overrides) -> Result<ReplayReport, ReplayError> {
    run(path, (!overrides.is_empty()).then_some(overrides))
}

fn run(path: &Path, overrides: Option<&Overrides>) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let dir = SessionDir::open(path)?;
    let manifest = dir.read_manifest()?;
    let cfg: Config = serde_json::from_value(manifest.config.clone())
        .map_err(|e| ReplayError::Config(e.to_string()))?;
    let mut logged = log::read_log(&dir)?;
    let clocks = activity::refit_clocks(&cfg, &mut logged);
    let recomputed = activity::recompute_activity(&cfg, &dir, &logged)?;

    let mut report = ReplayReport {
        session_dir: dir.path().display().to_string(),
        log_tail: logged.tail.to_string(),
        log_damage: logged.damage.iter().map(ToString::to_string).collect(),
        records: logged.records,
        frames_logged: logged.frames.len() as u64,
        frames_replayed: recomputed.len() as u64,
        activity_compared: 0,
        activity_max_abs_diff: 0.0,
        activity_mismatches: 0,
        decisions_logged: logged.decisions.len() as u64,
        decisions_reproduced: 0,
        first_decision_mismatch: None,
        clock_updates_logged: logged.clock_updates.len() as u64,
        clock_updates_reproduced: clocks.reproduced,
        frame_times_compared: 0,
        frame_time_mismatches: 0,
        selector_notes_logged: 0,
        selector_notes_reproduced: 0,
        first_selector_note_mismatch: None,
        selector_notes_past_cut: 0,
        verdict_reproduced: None,
        verdict: None,
        counterfactual: None,
        wall_s: 0.0,
        frames_per_s: 0.0,
    };
    compare_activity(&logged, &recomputed, &mut report);
    decisions::replay_decisions(&cfg, &logged, overrides, &mut report)?;
    report.wall_s = started.elapsed().as_secs_f64();
    report.frames_per_s = report.frames_replayed as f64 / report.wall_s.max(1e-9);
    Ok(report)
}

/// Each live activity against the replayed one (bit for bit), and each frame's rig time
/// against the one the refitted clock gives.
fn compare_activity(
    logged: &log::Logged,
    recomputed: &BTreeMap<(u8, u64), Vec<f32>>,
    report: &mut ReplayReport,
) {
    let frame_times: BTreeMap<(u8, u64), i64> = logged
        .frames
        .iter()
        .map(|(m, _)| ((m.plane, m.seq), m.t.as_nanos()))
        .collect();
    for live in &logged.activity {
        if let Some(&t) = frame_times.get(&(live.plane, live.frame_seq)) {
            report.frame_times_compared += 1;
            if t != live.t.as_nanos() {
                report.frame_time_mismatches += 1;
            }
        }
        if let Some(again) = recomputed.get(&(live.plane, live.frame_seq)) {
            report.activity_compared += 1;
            let diff = live
                .values
                .iter()
                .zip(again)
                .map(|(a, b)| (a - b).abs())
                .fold(
                    if live.values.len() == again.len() {
                        0.0
                    } else {
                        f32::INFINITY
                    },
                    f32::max,
                );
            report.activity_max_abs_diff = report.activity_max_abs_diff.max(diff);
            if diff != 0.0 {
                report.activity_mismatches += 1;
            }
        }
    }
}
