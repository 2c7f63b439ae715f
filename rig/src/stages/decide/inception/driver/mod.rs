//! The protocol as the daemon's selector: [`InceptionSelector`] wraps the adaptive designer
//! (the record phases are its decisions, as a session without `[inception]` makes them) and
//! drives the [`PhaseMachine`] from the rig time of the frames it observed, so the live
//! selector thread and a replay over the log take every transition at the same decision.
//!
//! - Design: the pre-registration (rule, held-out scores, targets) is logged first; then a
//!   worker ([`super::design`]) refits the twin and designs while filler clips are shown. Its
//!   results are taken at a decision and logged with it, images and predictions included, so
//!   replay takes them at the same trial without recomputing ([`Selector::script_records`]).
//!   Without a decision deadline (`trials.design.deadline_ms = 0`, not real time) the decision
//!   at the design block's end waits for the worker, as the twin refit does.
//! - Verify: each presentation's trial record (stimulus, roles, every target's prediction) is
//!   logged before its decision is handed to the display; the stimulus is a static image at the
//!   twin's resolution stretched over the twin's view.
//! - Responses: each unit's mean activity from `onset + response_delay_s` for `stimulus_s`.
//! - The end: the verdict per round ([`Selector::finish`]) for the log and the summary.

use super::config::{InceptionConfig, PhasePlan};
use super::design::{self, DesignJob, DesignMessage, DesignTimes, DesignedStimulus};
use super::phase::{Event, Notice, Phase, PhaseMachine, Show, Transition};
use super::records::{ChosenTarget, PreRegistration, TargetCell, TargetRule as LoggedRule};
use super::schedule::VerifySchedule;
use super::windows::{PoolMeasure, Shown, Windows};

mod verify;
use crate::backbone::frames::ActivityBuf;
use crate::stages::decide::decision::DecisionMode;
use crate::stages::decide::design::designer::Designer;
use crate::stages::decide::design::twin_refit::{Snapshot, TwinRefitSetup};
use crate::stages::decide::{
    AdaptiveSelector, DecideSetup, Decision, FrameBehaviour, Onset, Selector,
};
use crate::vocab::clock::RigTime;
use crossbeam_channel::{Receiver, TryRecvError};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use twinloop_model::insilico::{ImageStats, RankBy, TargetRule, UnitScores};
use twinloop_stimulus::spec::{Rect, TwinImageSpec};
use twinloop_stimulus::{StimulusId, StimulusSpec, ViewGeometry};

/// Verify stimuli's display ids start here, past any pool.
pub const VERIFY_STIMULUS_BASE: u32 = 1 << 24;

/// The `event` of the protocol's log notes.
pub mod event {
    pub const PHASE: &str = "inception.phase";
    pub const PREREGISTRATION: &str = "inception.preregistration";
    pub const DESIGN_MESSAGE: &str = "inception.design_message";
    pub const VERIFY_TRIAL: &str = "inception.verify_trial";
    pub const TARGET_LOST: &str = "inception.target_lost";
    pub const NOTICE: &str = "inception.notice";
    pub const VERDICT: &str = "inception.verdict";
    /// A verify presentation's measured responses, for the live dashboard only (not logged).
    pub const RESPONSE: &str = "inception.response";
}

/// Progress notes kept for the dashboard between two asks; older ones are dropped (a replay
/// never asks).
const MAX_PROGRESS: usize = 4096;

/// Significance level of the per-target Welch tests after Benjamini–Hochberg.
pub const ALPHA: f64 = 0.05;

/// One round's state.
struct Round {
    round: u32,
    targets: Vec<ChosenTarget>,
    /// Each target's designer unit.
    units: Vec<usize>,
    screened: Option<Vec<DesignedStimulus>>,
    designed: Option<Vec<DesignedStimulus>>,
    failed: Option<String>,
    times: DesignTimes,
    /// The verify block, once scheduled; `scheduled` without one: an empty block.
    schedule: Option<VerifySchedule>,
    scheduled: bool,
    /// Each schedule stimulus's image, by its index in the schedule.
    images: Vec<DesignedStimulus>,
    /// `(presentation, each target's measured response)`.
    responses: Vec<(usize, Vec<f64>)>,
    lost: Vec<u32>,
}

pub struct InceptionSelector {
    inner: AdaptiveSelector,
    cfg: InceptionConfig,
    plan: PhasePlan,
    machine: Option<PhaseMachine>,
    windows: Windows,
    measured: PoolMeasure,
    /// The twin to design through when the designer refits none of its own.
    fresh: Option<TwinRefitSetup>,
    view: ViewGeometry,
    seed: u64,
    wait: bool,
    filler: Vec<usize>,
    rng: ChaCha8Rng,
    rx: Option<Receiver<DesignMessage>>,
    /// Replay: the design messages live took, by the trial it took them at.
    script: Option<BTreeMap<u64, Vec<DesignMessage>>>,
    rounds: Vec<Round>,
    verify_trials: BTreeMap<u64, (u32, usize)>,
    pending: VecDeque<Onset>,
    records: Vec<Value>,
    /// Live-only progress ([`Selector::take_progress`]).
    progress: VecDeque<Value>,
    last_seq: Option<u64>,
    last_t_ns: i64,
    seen: u64,
    onsets_seen: u64,
}

impl InceptionSelector {
    /// The protocol `cfg` around `inner`, for the session `setup` (trial lengths, view, seed;
    /// no decision deadline: the design block's end waits for the design); `fresh` is the
    /// twin to design through when `inner` refits none of its own.
    pub fn new(
        inner: AdaptiveSelector,
        cfg: InceptionConfig,
        fresh: Option<TwinRefitSetup>,
        setup: &DecideSetup,
    ) -> InceptionSelector {
        let trials = &setup.trials;
        let (trial_s, stimulus_s, seed) = (
            trials.stimulus_s + trials.gray_s,
            trials.stimulus_s,
            setup.seed,
        );
        let (view, wait) = (setup.view, trials.design.deadline_ms == 0.0);
        let pool = inner.designer().pool();
        let candidates: Vec<usize> = (0..pool.len()).filter(|&e| !pool.is_test(e)).collect();
        // Natural-statistics clips (1/f noise) as the filler; any candidate when there are none.
        let natural: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&e| pool.entry(e).spec.kind().contains("pink_noise"))
            .collect();
        let delay_s = inner.designer().config().response_delay_s;
        InceptionSelector {
            plan: cfg.plan(trial_s),
            cfg,
            machine: None,
            windows: Windows::new(delay_s, stimulus_s),
            measured: PoolMeasure::default(),
            fresh,
            view,
            seed,
            wait,
            filler: if natural.is_empty() {
                candidates
            } else {
                natural
            },
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x1ace_9710),
            rx: None,
            script: None,
            rounds: Vec::new(),
            verify_trials: BTreeMap::new(),
            pending: VecDeque::new(),
            records: Vec::new(),
            progress: VecDeque::new(),
            last_seq: None,
            last_t_ns: 0,
            seen: 0,
            onsets_seen: 0,
            inner,
        }
    }

    fn phase(&self) -> Option<Phase> {
        self.machine.as_ref().map(PhaseMachine::phase)
    }

    fn note(&mut self, event: &str, mut payload: Value) {
        if let Value::Object(m) = &mut payload {
            m.insert("event".into(), Value::String(event.into()));
        }
        self.records.push(payload);
    }

    fn transitions(&mut self, ts: Vec<Transition>, trial: u64, now: RigTime) {
        for t in ts {
            self.note(
                event::PHASE,
                json!({
                    "at_ns": t.at.as_nanos(),
                    "from": format!("{:?}", t.from),
                    "to": format!("{:?}", t.to),
                    "fallback": t.fallback,
                    "trial": trial,
                }),
            );
            if let Phase::Design { round } = t.to {
                self.start_design(round, trial, now);
            }
        }
    }

    fn event(&mut self, now: RigTime, e: Event, trial: u64) {
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        let step = m.on(now, e);
        if let Some(n) = step.notice {
            let payload = match n {
                Notice::TargetLost { .. } => None,
                other => Some(json!({ "notice": format!("{other:?}"), "trial": trial })),
            };
            if let Some(p) = payload {
                self.note(event::NOTICE, p);
            }
        }
        self.transitions(step.transitions, trial, now);
    }

    /// The design phase of `round` begins: the rule applied to the designer's held-out scores
    /// and logged, then the worker started (live) on a snapshot of everything recorded.
    fn start_design(&mut self, round: u32, trial: u64, now: RigTime) {
        let d = self.inner.designer();
        let chosen = choose_targets(d, &self.cfg);
        let (targets, units) = (chosen.targets, chosen.units);
        let prereg = PreRegistration {
            round,
            at: now,
            rule: LoggedRule {
                min_heldout_cc: self.cfg.min_heldout_cc,
                max_targets: self.cfg.max_targets,
            },
            candidates: chosen.candidates,
            targets: targets.clone(),
        };
        let mut payload = serde_json::to_value(&prereg).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut payload {
            m.insert("rule_applied".into(), Value::String(chosen.rule.to_json()));
            m.insert("trial".into(), json!(trial));
        }
        self.note(event::PREREGISTRATION, payload);
        self.rounds.push(Round {
            round,
            targets,
            units: units.clone(),
            screened: None,
            designed: None,
            failed: None,
            times: DesignTimes::default(),
            schedule: None,
            scheduled: false,
            images: Vec::new(),
            responses: Vec::new(),
            lost: Vec::new(),
        });
        let job = design_job(
            self.inner.designer(),
            &self.measured,
            self.fresh.as_ref(),
            &self.cfg,
            (round, self.seed),
            units,
        );
        if self.script.is_some() {
            // Replay: the worker's results come from the log.
            return;
        }
        match job {
            Ok(job) => {
                let (tx, rx) = crossbeam_channel::bounded(4);
                design::spawn(job, tx);
                self.rx = Some(rx);
            }
            Err(reason) => {
                // Logged as the worker's own failure would be, so replay takes it alike.
                self.take(DesignMessage::Failed { reason }, trial, now);
            }
        }
    }

    /// Takes the worker's messages at decision `trial`: the logged ones in replay; live, those
    /// ready, or in wait mode at the design block's end all of them.
    fn poll(&mut self, trial: u64, now: RigTime) {
        if let Some(script) = self.script.as_mut() {
            for m in script.remove(&trial).unwrap_or_default() {
                self.take(m, trial, now);
            }
            return;
        }
        let block = self.wait
            && self.machine.as_ref().is_some_and(|m| {
                matches!(m.phase(), Phase::Design { .. })
                    && now.as_secs_f64() - m.since().as_secs_f64() >= self.plan.design_s
            });
        while let Some(rx) = self.rx.as_ref() {
            let got = if block {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match got {
                Ok(m) => self.take(m, trial, now),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let reason = "the design worker stopped without a result".to_string();
                    self.take(DesignMessage::Failed { reason }, trial, now);
                }
            }
        }
    }

    /// One worker message, logged with the trial it was taken at, then applied.
    fn take(&mut self, m: DesignMessage, trial: u64, now: RigTime) {
        let round = self.rounds.last().map_or(0, |r| r.round);
        self.note(
            event::DESIGN_MESSAGE,
            json!({ "round": round, "taken_at_trial": trial, "at_ns": now.as_nanos(), "payload": m }),
        );
        let in_design = matches!(self.phase(), Some(Phase::Design { .. }));
        let Some(r) = self.rounds.last_mut() else {
            return;
        };
        match m {
            DesignMessage::Screened { stimuli, times } => {
                r.times = times;
                r.screened = Some(stimuli);
            }
            DesignMessage::Designed { stimuli, times } => {
                self.rx = None;
                r.times = times;
                r.designed = Some(stimuli);
                if !in_design {
                    // Too late: the round fell back (the machine counts it).
                    self.event(now, Event::DesignFinished { verify_trials: 0 }, trial);
                    return;
                }
                match self.schedule(true) {
                    Ok(n) => self.event(now, Event::DesignFinished { verify_trials: n }, trial),
                    Err(reason) => self.event(now, Event::DesignFailed { reason }, trial),
                }
            }
            DesignMessage::Failed { reason } => {
                self.rx = None;
                r.failed = Some(reason.clone());
                if in_design {
                    self.event(now, Event::DesignFailed { reason }, trial);
                }
            }
        }
    }

    fn decision(
        &self,
        trial: u64,
        stimulus: u32,
        name: String,
        spec: StimulusSpec,
        mode: DecisionMode,
    ) -> Decision {
        Decision {
            trial,
            stimulus: StimulusId(stimulus),
            name,
            spec,
            policy: "inception".into(),
            after_frame_seq: self.last_seq,
            frames_seen: self.seen,
            after_frame_t_ns: self.last_t_ns,
            mode,
            score: None,
            alternatives: Vec::new(),
            onsets_seen: self.onsets_seen,
            accuracy: None,
            twin_refit: None,
        }
    }

    fn filler_decision(&mut self, trial: u64) -> Decision {
        let pool = self.inner.designer().pool_arc();
        let e = match self.filler.len() {
            0 => 0,
            n => self.filler[self.rng.random_range(0..n)],
        };
        let entry = pool.entry(e);
        self.decision(
            trial,
            entry.id.0,
            entry.name.clone(),
            entry.spec.clone(),
            DecisionMode::Filler,
        )
    }

    fn apply_onset(&mut self, o: Onset) {
        let units = self.inner.designer().units();
        if let Some(&(round, index)) = self.verify_trials.get(&o.trial) {
            self.windows
                .onset(Shown::Verify { round, index }, o.t, units);
        } else if matches!(self.phase(), Some(Phase::Record { .. }))
            && (o.stimulus.0 as usize) < self.inner.designer().pool().len()
        {
            self.windows.onset(
                Shown::Pool {
                    entry: o.stimulus.0 as usize,
                },
                o.t,
                units,
            );
        }
    }

    /// A target whose cell is not in its plane's activity any more is reported once.
    fn check_lost(&mut self, plane: u8, cells: usize, now: RigTime) {
        let Some(r) = self.rounds.last() else {
            return;
        };
        if !matches!(
            self.phase(),
            Some(Phase::Design { .. } | Phase::Verify { .. })
        ) {
            return;
        }
        let lost: Vec<(u32, TargetCell)> = r
            .targets
            .iter()
            .enumerate()
            .filter(|(t, c)| {
                c.cell.plane == plane
                    && c.cell.cell as usize >= cells
                    && !r.lost.contains(&(*t as u32))
            })
            .map(|(t, c)| (t as u32, c.cell))
            .collect();
        let round = r.round;
        for (target, cell) in lost {
            if let Some(r) = self.rounds.last_mut() {
                r.lost.push(target);
            }
            self.note(
                event::TARGET_LOST,
                json!({ "round": round, "target": target, "cell": cell, "at": now }),
            );
            self.event(now, Event::TargetLost { target }, 0);
        }
    }
}

/// The pre-registered rule applied to a designer's held-out CC_norm: what the live design
/// phase logs before any design, and what `twinloop bench inception` takes alike.
pub struct ChosenTargets {
    /// The model's rule as applied (strictly above the threshold, best first, ties to the
    /// lower unit).
    pub rule: TargetRule,
    /// Units with a finite held-out score: the rule's candidates.
    pub candidates: u32,
    pub targets: Vec<ChosenTarget>,
    /// Each target's designer unit, in pre-registration order.
    pub units: Vec<usize>,
}

/// The targets `cfg`'s rule picks from `d`'s held-out CC_norm on the test block.
pub fn choose_targets(d: &Designer, cfg: &InceptionConfig) -> ChosenTargets {
    let cc = d.unit_cc_norm();
    let scores: Vec<UnitScores> = cc
        .iter()
        .enumerate()
        .map(|(u, &c)| UnitScores {
            unit_id: u as u32,
            cc_abs: None,
            cc_max: None,
            cc_norm: c.is_finite().then_some(c),
            single_trial: None,
            feve: None,
            truth: None,
            frames: 0,
            repeat_frames: 0,
        })
        .collect();
    let rule = TargetRule {
        min_cc_abs: None,
        min_cc_max: None,
        min_cc_norm: Some(cfg.min_heldout_cc),
        min_feve: None,
        rank_by: RankBy::CcNorm,
        max_targets: cfg.max_targets as usize,
    };
    let chosen = rule.select(&scores).unwrap_or_default();
    let cell_of = |u: usize| {
        (0..=u8::MAX)
            .find(|&p| d.plane_units(p).contains(&u))
            .map(|p| TargetCell {
                plane: p,
                cell: (u - d.plane_units(p).start) as u32,
            })
    };
    let mut targets = Vec::new();
    let mut units = Vec::new();
    for c in &chosen {
        if let Some(cell) = cell_of(c.unit) {
            targets.push(ChosenTarget {
                cell,
                heldout_cc: c.score,
            });
            units.push(c.unit);
        }
    }
    ChosenTargets {
        rule,
        candidates: cc.iter().filter(|c| c.is_finite()).count() as u32,
        targets,
        units,
    }
}

/// What the design worker needs for `units` in `round` of a session seeded `seed`: each
/// target's best pool stimulus by `measured` response, the random controls, the twin to refit
/// (the designer's own, else `fresh`) and a snapshot of everything recorded; or why there can
/// be no design.
pub fn design_job(
    d: &Designer,
    measured: &PoolMeasure,
    fresh: Option<&TwinRefitSetup>,
    cfg: &InceptionConfig,
    (round, seed): (u32, u64),
    units: Vec<usize>,
) -> Result<DesignJob, String> {
    if units.is_empty() {
        return Err(format!(
            "no cell's held-out CC_norm is above inception.min_heldout_cc = {}",
            cfg.min_heldout_cc
        ));
    }
    let pool = d.pool_arc();
    let candidate = |e: usize| e < pool.len() && !pool.is_test(e);
    let mut best_pool = Vec::new();
    for (t, &u) in units.iter().enumerate() {
        let (e, _) = measured.best(u, candidate).ok_or_else(|| {
            format!("target {t} (unit {u}) has no measured response to any pool stimulus")
        })?;
        best_pool.push(e);
    }
    let mut others: Vec<usize> = (0..pool.len()).filter(|&e| candidate(e)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ u64::from(round).rotate_left(32));
    others.shuffle(&mut rng);
    let random = others
        .into_iter()
        .take(cfg.random_controls as usize)
        .collect();
    let setup = d
        .twin_refit()
        .map(|r| r.setup().clone())
        .or_else(|| fresh.cloned())
        .ok_or_else(|| {
            "the [twin] core has no twin to synthesise through (the energy bank): use \
             twin.core = \"pretrained\" or \"fnn\""
                .to_string()
        })?;
    Ok(DesignJob {
        round,
        cfg: cfg.clone(),
        setup,
        snapshot: Snapshot::take(&pool, d.frame_period_s(), d.history_rows()),
        pool,
        units,
        best_pool,
        random,
        seed,
    })
}

impl Selector for InceptionSelector {
    fn name(&self) -> &'static str {
        "inception"
    }

    fn observe(&mut self, activity: &ActivityBuf, behaviour: FrameBehaviour) {
        let t = activity.frame.t;
        self.machine
            .get_or_insert_with(|| PhaseMachine::new(self.plan, t));
        self.last_seq = Some(activity.frame.seq);
        self.last_t_ns = t.as_nanos();
        self.seen += 1;
        while let Some(o) = self.pending.front().copied()
            && o.t <= t
        {
            self.pending.pop_front();
            self.apply_onset(o);
        }
        self.inner.observe(activity, behaviour);
        let plane = activity.frame.plane;
        let values = activity.values();
        let range = self.inner.designer().plane_units(plane);
        for c in self.windows.frame(t, range, values) {
            match c.shown {
                Shown::Pool { entry } => self.measured.add(entry, &c.means),
                Shown::Verify { round, index } => {
                    if let Some(r) = self.rounds.iter_mut().find(|r| r.round == round) {
                        let resp = r
                            .units
                            .iter()
                            .map(|&u| c.means.get(u).copied().unwrap_or(f64::NAN))
                            .collect::<Vec<f64>>();
                        if self.progress.len() >= MAX_PROGRESS {
                            self.progress.pop_front();
                        }
                        self.progress.push_back(json!({
                            "event": event::RESPONSE, "round": round, "index": index,
                            "measured": resp,
                        }));
                        r.responses.push((index, resp));
                    }
                }
            }
        }
        self.check_lost(plane, values.len(), t);
    }

    fn onset(&mut self, trial: u64, stimulus: StimulusId, t: RigTime) {
        self.onsets_seen += 1;
        if stimulus.0 < VERIFY_STIMULUS_BASE {
            self.inner.onset(trial, stimulus, t);
        }
        self.pending.push_back(Onset { trial, stimulus, t });
    }

    fn set_scan_offsets(&mut self, plane: u8, offsets_s: Vec<f64>) {
        self.inner.set_scan_offsets(plane, offsets_s);
    }

    fn frames_seen(&self) -> u64 {
        self.seen
    }

    fn onsets_seen(&self) -> u64 {
        self.onsets_seen
    }

    fn prediction(&self) -> Option<&[f64]> {
        self.inner.prediction()
    }

    fn decide(&mut self, trial: u64, force_late: bool) -> Decision {
        let now = RigTime::from_nanos(self.last_t_ns);
        self.machine
            .get_or_insert_with(|| PhaseMachine::new(self.plan, now));
        self.poll(trial, now);
        let ts = self
            .machine
            .as_mut()
            .map(|m| m.advance(now))
            .unwrap_or_default();
        self.transitions(ts, trial, now);
        self.fallback_schedule(trial, now);
        let show = self
            .machine
            .as_ref()
            .map_or(Show::Selector, PhaseMachine::show);
        match show {
            Show::Selector => {
                // The designer counts only the pool's onsets; the decision says how many the
                // selector had seen (replay feeds onsets up to it).
                let mut d = self.inner.decide(trial, force_late);
                d.onsets_seen = self.onsets_seen;
                d
            }
            Show::Filler => self.filler_decision(trial),
            Show::Verify { index } => match self.verify_decision(trial, index) {
                Some(d) => {
                    self.event(now, Event::VerifyShown, trial);
                    d
                }
                None => self.filler_decision(trial),
            },
        }
    }

    fn set_budget(&mut self, budget: Option<std::time::Duration>) {
        self.inner.set_budget(budget);
    }

    fn prepare(&mut self, next_trial: u64) {
        // The designer's upkeep (readouts, its own refits) runs in the record phases only: the
        // design and verify blocks leave the CPU to the design worker.
        if matches!(
            self.phase(),
            None | Some(Phase::Record { .. } | Phase::Done)
        ) {
            self.inner.prepare(next_trial);
        }
    }

    fn design_counts(&self) -> Option<&crate::backbone::telemetry::DesignCounts> {
        self.inner.design_counts()
    }

    fn script_twin_refits(&mut self, trials: std::collections::BTreeSet<u64>) {
        self.inner.script_twin_refits(trials);
    }

    fn take_records(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.records)
    }

    fn take_progress(&mut self) -> Vec<Value> {
        self.progress.drain(..).collect()
    }

    fn script_records(&mut self, records: &[Value]) {
        let mut script: BTreeMap<u64, Vec<DesignMessage>> = BTreeMap::new();
        for r in records {
            if r.get("event").and_then(Value::as_str) != Some(event::DESIGN_MESSAGE) {
                continue;
            }
            let (Some(trial), Some(m)) = (
                r.get("taken_at_trial").and_then(Value::as_u64),
                r.get("payload")
                    .and_then(|p| serde_json::from_value::<DesignMessage>(p.clone()).ok()),
            ) else {
                continue;
            };
            script.entry(trial).or_default().push(m);
        }
        self.script = Some(script);
    }

    /// The designer's refitted twin (the design's own fits are not kept: README
    /// Placeholders, #22).
    fn live_twin(&self) -> Result<crate::stages::decide::design::LiveTwin, String> {
        self.inner.live_twin()
    }

    fn final_refit(
        &self,
    ) -> Result<crate::stages::decide::design::twin_refit::FinalRefitJob, String> {
        self.inner.final_refit()
    }

    fn finish(&mut self) -> Option<Value> {
        let v = self.verdicts();
        let mut logged = v.clone();
        if let Value::Object(m) = &mut logged {
            m.insert("event".into(), Value::String(event::VERDICT.into()));
        }
        self.records.push(logged);
        Some(v)
    }
}
