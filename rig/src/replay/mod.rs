//! Replay: re-run a logged session's pipeline from its log, as fast as it goes, and check that
//! it reproduces the live run — the same activity for every frame and the same decisions.
//!
//! The log is the source: every two-photon `Input` record is re-parsed and fed through the
//! same pool, ring and extraction stage as live (waiting when the stage is busy, since replay
//! has no deadline). The selector is fed the activity of exactly the frames the live selector
//! saw (the live `Activity` records), in order, and asked for each decision at the point the
//! live one was made (its `after_frame_seq`), so decisions are reproduced even when the live
//! stage skipped frames.

use crate::clock::RigTime;
use crate::config::Config;
use crate::frames::{ActivityBuf, FrameBuf, FrameMeta};
use crate::protocol::{ClockDomain, Stream, SyncCode};
use crate::ring::Pool;
use crate::scheduler::design::DecisionMode;
use crate::scheduler::selector::BEHAVIOUR_MISSING_NOTE;
use crate::scheduler::{Decision, FrameBehaviour, Onset, build_selector};
use crate::sim::CellTruth;
use crate::sinks::records::{self, RecordKind};
use crate::sinks::session_log::{SessionDir, TailState};
use crate::sources::clocks::{ClockSync, ClockUpdate, Mapping};
use crate::stages::behaviour::BehaviourRecord;
use crate::stages::extract::{ExtractStage, Extractor, OfflineTaps, build_extractor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use thiserror::Error;
use twinloop_stimulus::StimulusId;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{0}")]
    Session(#[from] crate::sinks::session_log::SessionError),
    #[error("{0}")]
    Log(#[from] crate::sinks::session_log::LogError),
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
    }
}

/// What the log holds, split by what replay needs.
struct Logged {
    frames: Vec<(FrameMeta, Option<Vec<u8>>)>,
    activity: Vec<records::ActivityRecord>,
    decisions: Vec<Decision>,
    onsets: Vec<Onset>,
    /// Each imaging frame's behaviour, as the live selector received it, by frame seq (plane
    /// 0's frames; another plane's frame takes the record of its seq, as live).
    behaviour: BTreeMap<u64, FrameBehaviour>,
    /// Frames `(plane, seq)` the live selector observed without their behaviour (it noted them).
    behaviour_missing: std::collections::BTreeSet<(u8, u64)>,
    /// Clock ticks in ingest order: (domain, t_ns).
    ticks: Vec<(ClockDomain, i64)>,
    clock_updates: Vec<ClockUpdate>,
    /// Each plane's cells' scan offsets the live selector was given.
    scan: BTreeMap<u8, crate::scheduler::ScanOffsets>,
    records: u64,
    tail: TailState,
}

/// The fields of a `Stimulus` record the selector needs.
#[derive(serde::Deserialize)]
struct StimulusRecord {
    trial: u64,
    stimulus: StimulusId,
    onset_t_ns: i64,
}

fn read_log(dir: &SessionDir) -> Result<Logged, ReplayError> {
    let mut reader = dir.open_log()?;
    let mut buf = Vec::new();
    let mut logged = Logged {
        frames: Vec::new(),
        activity: Vec::new(),
        decisions: Vec::new(),
        onsets: Vec::new(),
        behaviour: BTreeMap::new(),
        behaviour_missing: Default::default(),
        ticks: Vec::new(),
        clock_updates: Vec::new(),
        scan: BTreeMap::new(),
        records: 0,
        tail: TailState::Clean,
    };
    while let Some(info) = reader.next_into(&mut buf)? {
        logged.records += 1;
        let bad = |source| ReplayError::Record {
            index: info.index,
            source,
        };
        match RecordKind::from_code(info.kind) {
            Some(RecordKind::Input) => {
                let r = records::decode_input(&buf).map_err(bad)?;
                if r.header.stream == Stream::TwoPhoton {
                    let mut meta = FrameMeta::from_header(&r.header, r.recv_ns);
                    meta.clock_gen = r.clock_gen;
                    logged.frames.push((meta, r.payload.map(<[u8]>::to_vec)));
                } else if r.header.stream == Stream::Sync
                    && r.header.aux == SyncCode::ClockTick as i64
                    && let Some(d) = ClockDomain::from_code(r.header.channel)
                {
                    logged.ticks.push((d, r.header.t_ns));
                }
            }
            Some(RecordKind::Activity) => logged
                .activity
                .push(records::decode_activity(&buf).map_err(bad)?),
            Some(RecordKind::Decision) => logged
                .decisions
                .push(records::decode_json("decision", &buf).map_err(bad)?),
            Some(RecordKind::Note) => {
                let v: serde_json::Value = records::decode_json("note", &buf).map_err(bad)?;
                if v.get("event").and_then(|e| e.as_str()) == Some(BEHAVIOUR_MISSING_NOTE)
                    && let Some(seq) = v.get("frame_seq").and_then(|s| s.as_u64())
                {
                    // Older logs noted plane 0's frames only, without the plane.
                    let plane = v.get("plane").and_then(|p| p.as_u64()).unwrap_or(0) as u8;
                    logged.behaviour_missing.insert((plane, seq));
                }
            }
            Some(RecordKind::Behaviour) => {
                let r: BehaviourRecord = records::decode_json("behaviour", &buf).map_err(bad)?;
                logged
                    .behaviour
                    .insert(r.frame_seq, FrameBehaviour::from_record(&r));
            }
            Some(RecordKind::Cells) => {
                let scan: crate::scheduler::ScanOffsets =
                    records::decode_json("cells", &buf).map_err(bad)?;
                logged.scan.insert(scan.plane, scan);
            }
            Some(RecordKind::Clock) => logged
                .clock_updates
                .push(records::decode_json("clock", &buf).map_err(bad)?),
            Some(RecordKind::Stimulus) => {
                let r: StimulusRecord = records::decode_json("stimulus", &buf).map_err(bad)?;
                logged.onsets.push(Onset {
                    trial: r.trial,
                    stimulus: r.stimulus,
                    t: RigTime::from_nanos(r.onset_t_ns),
                });
            }
            _ => {}
        }
    }
    if let Some(t) = reader.tail() {
        logged.tail = t.clone();
    }
    Ok(logged)
}

pub(crate) fn truth_cells(dir: &SessionDir) -> Result<Vec<CellTruth>, String> {
    let path = dir.truth_dir().join("cells.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What to change when replaying: another selection policy, objective or frozen core turns
/// replay into a counterfactual — the same activity and onsets, the decisions another selector
/// would have made at the same points — and the report says how they differ from the live ones.
/// The live selector is replayed alongside, so the two twins' predictions can be compared.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub policy: Option<crate::config::Policy>,
    pub objective: Option<crate::scheduler::design::Objective>,
    /// An fnn core from these weights instead of the session's `[twin]` core.
    pub twin: Option<TwinOverride>,
}

/// An fnn core for a counterfactual replay (the session's grid and pre-roll are kept).
#[derive(Debug, Clone)]
pub struct TwinOverride {
    /// Safetensors with fnn's state-dict names.
    pub weights: std::path::PathBuf,
    /// The network's config JSON; `None`: fnn's released network.
    pub config: Option<std::path::PathBuf>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.objective.is_none() && self.twin.is_none()
    }

    /// `cfg` with the overrides applied.
    fn apply(&self, cfg: &Config) -> Config {
        let mut cfg = cfg.clone();
        if let Some(p) = self.policy {
            cfg.trials.policy = p;
        }
        if let Some(o) = self.objective {
            cfg.trials.design.objective = o;
        }
        if let Some(t) = &self.twin {
            cfg.twin.core = crate::config::CoreKind::Fnn;
            cfg.twin.weights = Some(t.weights.clone());
            cfg.twin.config = t.config.clone();
        }
        cfg
    }
}

/// How another policy's decisions differ from the live ones.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PolicyComparison {
    pub policy: String,
    pub decisions: u64,
    /// Decisions that chose the same stimulus as live.
    pub same_stimulus: u64,
    /// Decisions by mode (random, warmup, test, adaptive, fallback, late).
    pub modes: BTreeMap<String, u64>,
    /// Mean score of the alternative's adaptive choices (its own objective).
    pub mean_score: Option<f64>,
    /// The alternative's frozen core, when replaced (`--twin`): its weights file.
    pub twin: Option<String>,
    /// Imaging frames after the warm-up (from the onset of trial `warmup_trials`) on which
    /// both the live twin and the alternative predicted every cell; the correlations below
    /// are over these frames.
    pub prediction_frames: u64,
    /// Of those, each imaging plane's (every plane's cells are the twins' units).
    pub prediction_frames_per_plane: BTreeMap<u8, u64>,
    /// Median over cells of the correlation between the live twin's one-step-ahead prediction
    /// and the measured activity (`None` when a selector has no twin or no frame counted).
    pub live_prediction_cc: Option<f64>,
    /// The same for the alternative's twin.
    pub prediction_cc: Option<f64>,
    /// Median over cells of the correlation between the two twins' predictions.
    pub twins_prediction_cc: Option<f64>,
}

/// Streaming Pearson correlation (Welford co-moments), so a long session's per-cell series need
/// not be kept.
#[derive(Debug, Clone, Copy, Default)]
struct RunningCorr {
    n: f64,
    mx: f64,
    my: f64,
    cxx: f64,
    cyy: f64,
    cxy: f64,
}

impl RunningCorr {
    fn push(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        let (dx, dy) = (x - self.mx, y - self.my);
        self.mx += dx / self.n;
        self.my += dy / self.n;
        self.cxx += dx * (x - self.mx);
        self.cyy += dy * (y - self.my);
        self.cxy += dx * (y - self.my);
    }

    /// NaN with fewer than two points or a constant series.
    fn corr(&self) -> f64 {
        if self.n < 2.0 || self.cxx <= 0.0 || self.cyy <= 0.0 {
            return f64::NAN;
        }
        self.cxy / (self.cxx * self.cyy).sqrt()
    }
}

/// Per cell of every plane: live twin vs measured, alternative vs measured, live vs
/// alternative.
#[derive(Default)]
struct PredictionAgreement {
    frames: u64,
    /// Each plane's cells, and the frames counted for them.
    planes: BTreeMap<u8, (u64, Vec<[RunningCorr; 3]>)>,
}

impl PredictionAgreement {
    fn push(&mut self, plane: u8, measured: &[f32], live: &[f64], alt: &[f64]) {
        if live.len() != measured.len() || alt.len() != measured.len() {
            return;
        }
        let (frames, cells) = self.planes.entry(plane).or_default();
        if cells.len() != measured.len() {
            // The plane's population changed and both twins' readouts of it started again: so
            // does this.
            *cells = vec![[RunningCorr::default(); 3]; measured.len()];
            self.frames -= *frames;
            *frames = 0;
        }
        *frames += 1;
        self.frames += 1;
        for (((c, &y), &a), &b) in cells.iter_mut().zip(measured).zip(live).zip(alt) {
            if !(y.is_finite() && a.is_finite() && b.is_finite()) {
                continue;
            }
            c[0].push(a, f64::from(y));
            c[1].push(b, f64::from(y));
            c[2].push(a, b);
        }
    }

    /// The median over cells of correlation `k` (`None` when no cell has one).
    fn median(&self, k: usize) -> Option<f64> {
        let m = crate::scheduler::design::experiment::median(
            self.planes
                .values()
                .flat_map(|(_, cells)| cells.iter().map(|c| c[k].corr()))
                .collect(),
        );
        m.is_finite().then_some(m)
    }
}

/// Replay the session in `path`.
pub fn replay(path: &Path) -> Result<ReplayReport, ReplayError> {
    replay_with(path, &Overrides::default())
}

/// Replay the session in `path` with `overrides` (none: an exact replay).
pub fn replay_with(path: &Path, overrides: &Overrides) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let dir = SessionDir::open(path)?;
    let manifest = dir.read_manifest()?;
    let cfg: Config = serde_json::from_value(manifest.config.clone())
        .map_err(|e| ReplayError::Config(e.to_string()))?;
    // A counterfactual runs the live selector and the alternative side by side.
    let alt_cfg = (!overrides.is_empty()).then(|| {
        let mut c = overrides.apply(&cfg);
        // The counterfactual selector's own twin refits would be taken when this machine
        // finishes them, not at logged trials: it keeps its twin frozen.
        c.trials.design.twin_refit_every = 0;
        c
    });
    let mut logged = read_log(&dir)?;
    let clocks = refit_clocks(&cfg, &mut logged);
    let recomputed = recompute_activity(&cfg, &dir, &logged)?;

    let mut report = ReplayReport {
        session_dir: dir.path().display().to_string(),
        log_tail: logged.tail.to_string(),
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
        counterfactual: None,
        wall_s: 0.0,
        frames_per_s: 0.0,
    };
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

    // Decisions: the live selector's inputs, in order, with decisions at the same points
    // (onsets first, then activity, as the live selector thread takes them).
    let mut selector = build_selector(&cfg).map_err(|e| ReplayError::Selector(e.to_string()))?;
    let mut alternative = match &alt_cfg {
        Some(c) => Some(build_selector(c).map_err(|e| ReplayError::Selector(e.to_string()))?),
        None => None,
    };
    // Live took twin refits at these decisions; the replayed selector takes its own (the same
    // fit on the same snapshot) there too.
    selector.script_twin_refits(
        logged
            .decisions
            .iter()
            .filter(|d| d.twin_refit.is_some())
            .map(|d| d.trial)
            .collect(),
    );
    for (&plane, scan) in &logged.scan {
        // Live, each plane's offsets came before its cells' first activity.
        selector.set_scan_offsets(plane, scan.offsets_s.clone());
        if let Some(alt) = alternative.as_mut() {
            alt.set_scan_offsets(plane, scan.offsets_s.clone());
        }
    }
    let warmup = u64::from(cfg.trials.design.warmup_trials);
    let mut past_warmup = false;
    let mut agreement = PredictionAgreement::default();
    let mut activity = logged.activity.iter();
    let mut onsets = logged.onsets.iter();
    let mut scores = Vec::new();
    let mut scratch = ActivityBuf::with_capacity(
        logged
            .activity
            .iter()
            .map(|a| a.values.len())
            .max()
            .unwrap_or(0),
    );
    // Feeds the next activity record (every plane's, in the order the live selector observed
    // them) to the selectors; `false` at the end of the log.
    let mut feed = |selector: &mut Box<dyn crate::scheduler::Selector>,
                    alternative: &mut Option<Box<dyn crate::scheduler::Selector>>,
                    past_warmup: bool| {
        let Some(a) = activity.next() else {
            return false;
        };
        scratch.frame.seq = a.frame_seq;
        scratch.frame.plane = a.plane;
        scratch.frame.t = a.t;
        scratch.len = a.values.len().min(scratch.values.len());
        scratch.values[..scratch.len].copy_from_slice(&a.values[..scratch.len]);
        // The live selector waited for each frame's behaviour (another plane's frame: the record
        // of its volume, the same seq), or noted that it went on without it.
        let behaviour = match logged.behaviour_missing.contains(&(a.plane, a.frame_seq)) {
            true => FrameBehaviour::MISSING,
            false => logged
                .behaviour
                .get(&a.frame_seq)
                .copied()
                .unwrap_or(FrameBehaviour::MISSING),
        };
        selector.observe(&scratch, behaviour);
        if let Some(alt) = alternative.as_mut() {
            alt.observe(&scratch, behaviour);
            if past_warmup
                && let (Some(p_live), Some(p_alt)) = (selector.prediction(), alt.prediction())
            {
                agreement.push(a.plane, scratch.values(), p_live, p_alt);
            }
        }
        true
    };
    for live in &logged.decisions {
        while selector.onsets_seen() < live.onsets_seen {
            let Some(o) = onsets.next() else { break };
            selector.onset(o.trial, o.stimulus, o.t);
            if let Some(alt) = alternative.as_mut() {
                alt.onset(o.trial, o.stimulus, o.t);
            }
            past_warmup |= o.trial >= warmup;
        }
        while selector.frames_seen() < live.frames_seen {
            if !feed(&mut selector, &mut alternative, past_warmup) {
                break;
            }
        }
        // Live, each decision's upkeep ran right after it was queued.
        let again = selector.decide(live.trial, live.mode == DecisionMode::Late);
        selector.prepare(live.trial + 1);
        if let Some(alt) = alternative.as_mut() {
            let other = alt.decide(live.trial, live.mode == DecisionMode::Late);
            alt.prepare(live.trial + 1);
            let c = report
                .counterfactual
                .get_or_insert_with(|| PolicyComparison {
                    policy: other.policy.clone(),
                    twin: overrides
                        .twin
                        .as_ref()
                        .map(|t| t.weights.display().to_string()),
                    ..PolicyComparison::default()
                });
            c.decisions += 1;
            c.same_stimulus += u64::from(other.stimulus == live.stimulus);
            let mode = serde_json::to_value(other.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *c.modes.entry(mode).or_insert(0) += 1;
            if let Some(s) = other.score {
                scores.push(s);
            }
        }
        if &again == live {
            report.decisions_reproduced += 1;
        } else if report.first_decision_mismatch.is_none() {
            report.first_decision_mismatch = Some(format!(
                "trial {}: live {:?}, replay {:?}",
                live.trial, live, again
            ));
        }
    }
    if alternative.is_some() {
        // Past the last decision the twins still predict the remaining frames.
        for o in onsets.by_ref() {
            selector.onset(o.trial, o.stimulus, o.t);
            if let Some(alt) = alternative.as_mut() {
                alt.onset(o.trial, o.stimulus, o.t);
            }
            past_warmup |= o.trial >= warmup;
        }
        while feed(&mut selector, &mut alternative, past_warmup) {}
    }
    if let Some(c) = report.counterfactual.as_mut() {
        if !scores.is_empty() {
            c.mean_score = Some(scores.iter().sum::<f64>() / scores.len() as f64);
        }
        c.prediction_frames = agreement.frames;
        c.prediction_frames_per_plane = agreement
            .planes
            .iter()
            .map(|(plane, (frames, _))| (*plane, *frames))
            .collect();
        c.live_prediction_cc = agreement.median(0);
        c.prediction_cc = agreement.median(1);
        c.twins_prediction_cc = agreement.median(2);
    }
    report.wall_s = started.elapsed().as_secs_f64();
    report.frames_per_s = report.frames_replayed as f64 / report.wall_s.max(1e-9);
    Ok(report)
}

/// What refitting the logged clock ticks gave.
struct Refit {
    reproduced: u64,
}

/// Feeds the logged ticks, in ingest order, through a fresh [`ClockSync`] (the live one's code
/// and settings), checks each mapping against the live `Clock` records, and places every frame
/// on the rig clock with the generation it was mapped with live.
fn refit_clocks(cfg: &Config, logged: &mut Logged) -> Refit {
    let mut sync = ClockSync::new(cfg.clocks.clone());
    let mut mappings: BTreeMap<(ClockDomain, u32), Mapping> = BTreeMap::new();
    let mut again = Vec::new();
    for &(domain, t_ns) in &logged.ticks {
        for u in sync.on_tick(domain, t_ns).updates {
            mappings.insert((u.domain, u.generation), u.mapping);
            again.push(u);
        }
    }
    let reproduced = logged
        .clock_updates
        .iter()
        .zip(&again)
        .filter(|(live, replayed)| live == replayed)
        .count() as u64;
    if let Some(domain) = cfg.clocks.domain_of(Stream::TwoPhoton) {
        for (meta, _) in &mut logged.frames {
            if let Some(m) = mappings.get(&(domain, meta.clock_gen)) {
                meta.t = RigTime::from_nanos(m.to_rig_ns(meta.t_wire_ns));
            }
        }
    }
    Refit { reproduced }
}

/// Feed every logged frame with pixels through the extraction stage; activity by (plane, seq).
fn recompute_activity(
    cfg: &Config,
    dir: &SessionDir,
    logged: &Logged,
) -> Result<BTreeMap<(u8, u64), Vec<f32>>, ReplayError> {
    let mut frames = logged
        .frames
        .iter()
        .filter_map(|(meta, pixels)| pixels.as_deref().map(|p| (meta, p)))
        .peekable();
    let mut out = BTreeMap::new();
    if frames.peek().is_none() {
        return Ok(out);
    }
    // Replay recalibrates from the same first frames; its outputs go nowhere.
    let mut extractor =
        build_extractor(cfg, || truth_cells(dir), None).map_err(|reason| ReplayError::Truth {
            path: dir.truth_dir().join("cells.json").display().to_string(),
            reason,
        })?;
    if let Extractor::Pipeline(p) = &mut extractor {
        // The live stage skipped frames when its calibration hold was full, at times that
        // depend on the machine; the replay processes exactly the frames live did, so each
        // deconvolution bank sees the same frames and gaps.
        p.follow(
            logged
                .activity
                .iter()
                .map(|a| (a.plane, a.frame_seq))
                .collect(),
        );
    }
    let frame_px = (cfg.imaging.width * cfg.imaging.height) as usize;
    let frame_pool = Pool::new(64, || FrameBuf::with_capacity(frame_px));
    // Replay drives its selector from the log; the stage's copy for the selector is dropped.
    let (stage, taps) = ExtractStage::offline(extractor, 64);
    let OfflineTaps {
        input: to_stage,
        recorder: mut collected,
        selector: mut unused,
        bus: _bus,
    } = taps;
    let stage_h = std::thread::Builder::new()
        .name("replay-extract".into())
        .spawn(move || stage.run())?;
    let mut to_stage = Some(to_stage);
    while !collected.is_finished() {
        let mut busy = false;
        if let Some(tx) = &mut to_stage {
            if let Some((meta, pixels)) = frames.peek()
                && !tx.is_full()
                && let Some(mut slot) = frame_pool.try_take()
            {
                slot.fill_from_le(**meta, pixels);
                // Not full, and this thread is the only producer: the push succeeds.
                let _ = tx.try_push(slot.freeze());
                frames.next();
                busy = true;
            }
            if frames.peek().is_none() {
                // Closing the stage's input lets it finish after the last frame.
                to_stage = None;
            }
        }
        while let Some(a) = collected.try_pop() {
            out.insert((a.frame.plane, a.frame.seq), a.values().to_vec());
            busy = true;
        }
        while unused.try_pop().is_some() {}
        if !busy {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let _ = stage_h.join();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CoreKind, Policy};
    use crate::scheduler::design::Objective;

    #[test]
    fn a_twin_override_combines_with_policy_and_objective_and_keeps_the_grid() {
        let mut live = Config::default_sim();
        live.twin.grid_rows = 4;
        live.twin.preroll_frames = 3;
        let o = Overrides {
            policy: Some(Policy::Adaptive),
            objective: Some(Objective::Random),
            twin: Some(TwinOverride {
                weights: "w.safetensors".into(),
                config: Some("c.json".into()),
            }),
        };
        assert!(!o.is_empty());
        let alt = o.apply(&live);
        assert_eq!(alt.trials.design.objective, Objective::Random);
        assert_eq!(alt.twin.core, CoreKind::Fnn);
        assert_eq!(alt.twin.weights.as_deref(), Some("w.safetensors".as_ref()));
        assert_eq!(alt.twin.config.as_deref(), Some("c.json".as_ref()));
        assert_eq!((alt.twin.grid_rows, alt.twin.preroll_frames), (4, 3));
        assert_eq!(
            live.twin.core,
            CoreKind::Pretrained,
            "the live config is untouched"
        );
    }

    #[test]
    fn streaming_correlation_matches_the_two_pass_formula() {
        let x: Vec<f64> = (0..50)
            .map(|i| (i as f64 * 0.37).sin() * 3.0 + 100.0)
            .collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * v + (i as f64 * 1.3).cos())
            .collect();
        let mut c = RunningCorr::default();
        for (a, b) in x.iter().zip(&y) {
            c.push(*a, *b);
        }
        let want = twinloop_model::metrics::pearson(&x, &y).unwrap();
        assert!((c.corr() - want).abs() < 1e-12, "{} vs {want}", c.corr());
        let mut flat = RunningCorr::default();
        flat.push(1.0, 2.0);
        flat.push(1.0, 3.0);
        assert!(flat.corr().is_nan());
    }
}
