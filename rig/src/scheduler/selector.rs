//! Choosing the next trial's stimulus.
//!
//! A selector sees every frame's activity in order ([`Selector::observe`]) and is asked for a
//! decision between frames ([`Selector::decide`]). Each decision records the last frame it had
//! seen, so a replay that feeds the same activity and asks at the same points gets the same
//! decisions.

use super::design::{AccuracyPoint, Alternative, DecisionMode};
use crate::clock::{RigTime, host_monotonic_ns};
use crate::frames::{Activity, ActivityBuf};
use crate::protocol::{Message, Stream};
use crate::ring::{RingRx, Wakeup};
use crate::sinks::event_bus::Bus;
use crate::sinks::records::RecordKind;
use crate::sources::RecorderItem;
use crate::stages::behaviour::BehaviourRecord;
use crate::telemetry::Counters;
use crate::telemetry::LatencyHist;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use twinloop_stimulus::{Library, StimulusId, StimulusSpec};

/// One decision, as logged and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub trial: u64,
    pub stimulus: StimulusId,
    pub name: String,
    pub spec: StimulusSpec,
    pub policy: String,
    /// Sequence number of the last imaging frame whose activity the selector had seen.
    pub after_frame_seq: Option<u64>,
    /// How many frames of activity it had seen.
    pub frames_seen: u64,
    /// Rig time of that last frame (ns; 0 before any).
    pub after_frame_t_ns: i64,
    /// Why this stimulus (random, warm-up, test block, adaptive, fallback, late).
    #[serde(default)]
    pub mode: DecisionMode,
    /// The chosen stimulus's score under the objective (adaptive decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The best candidates with their scores, best first (adaptive decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Trial onsets the selector had seen.
    #[serde(default)]
    pub onsets_seen: u64,
    /// The twin's latest held-out accuracy (CC_norm on the repeated test block), if any yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyPoint>,
    /// A twin refit (perspective, modulation, readouts) the selector took just before this
    /// decision; replay takes it at the same trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_refit: Option<super::design::TwinRefitNote>,
}

/// A trial's stimulus came on screen (the renderer tells the selector).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Onset {
    pub trial: u64,
    pub stimulus: StimulusId,
    pub t: RigTime,
}

/// What the twin's modulation takes for one imaging frame: running speed and pupil size, as
/// measured (the selector standardises them). `NaN` where the behaviour stage had none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameBehaviour {
    pub running_cm_s: f32,
    pub pupil_radius_px: f32,
}

impl FrameBehaviour {
    pub const MISSING: FrameBehaviour = FrameBehaviour {
        running_cm_s: f32::NAN,
        pupil_radius_px: f32::NAN,
    };

    /// From a logged or published behaviour record.
    pub fn from_record(r: &BehaviourRecord) -> FrameBehaviour {
        let f = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
        FrameBehaviour {
            running_cm_s: f(r.treadmill_cm_s),
            pupil_radius_px: f(r.pupil_radius_px),
        }
    }
}

pub trait Selector: Send {
    fn name(&self) -> &'static str;
    /// One imaging frame's activity (any plane's: `activity.frame.plane`) and the behaviour at
    /// it, each plane's frames in sequence order.
    fn observe(&mut self, activity: &ActivityBuf, behaviour: FrameBehaviour);
    /// A trial's stimulus came on screen at `t`.
    fn onset(&mut self, trial: u64, stimulus: StimulusId, t: RigTime) {
        let _ = (trial, stimulus, t);
    }
    /// Each of plane `plane`'s cells' scan offset within its frame, s (a cell's time is its
    /// frame's plus this).
    fn set_scan_offsets(&mut self, plane: u8, offsets_s: Vec<f64>) {
        let _ = (plane, offsets_s);
    }
    /// Activity frames observed so far.
    fn frames_seen(&self) -> u64;
    /// Onsets observed so far.
    fn onsets_seen(&self) -> u64 {
        0
    }
    /// The twin's prediction of each cell's activity on the frame just observed (that frame's
    /// plane's cells, made before it was seen), when the selector has a twin.
    fn prediction(&self) -> Option<&[f64]> {
        None
    }
    /// Trial `trial`'s stimulus. `force_late` replays a decision that was late live (its
    /// scoring overran the deadline), which cannot be timed again.
    fn decide(&mut self, trial: u64, force_late: bool) -> Decision;
    /// The time the next decision has before its trial's onset (`None`: as long as it takes).
    /// A selector that cannot decide in time makes a random trial, counted as late.
    fn set_budget(&mut self, budget: Option<Duration>) {
        let _ = budget;
    }
    /// Upkeep for trial `next_trial` (re-placing readouts, refits), run right after each
    /// decision is queued so that it is off the next decision's critical path; a replay calls
    /// it at the same points.
    fn prepare(&mut self, next_trial: u64) {
        let _ = next_trial;
    }
    /// Replay: take twin refits exactly at these trials, as live did (selectors without a
    /// twin refit ignore it).
    fn script_twin_refits(&mut self, trials: std::collections::BTreeSet<u64>) {
        let _ = trials;
    }
}

/// PLACEHOLDER policy: uniform random over the library, from a seeded ChaCha8 stream (portable
/// and stable across platforms and rand versions).
pub struct RandomSelector {
    library: Library,
    rng: ChaCha8Rng,
    last_seq: Option<u64>,
    last_t_ns: i64,
    seen: u64,
}

impl RandomSelector {
    pub fn new(library: Library, seed: u64) -> RandomSelector {
        RandomSelector {
            library,
            rng: ChaCha8Rng::seed_from_u64(seed),
            last_seq: None,
            last_t_ns: 0,
            seen: 0,
        }
    }
}

impl Selector for RandomSelector {
    fn name(&self) -> &'static str {
        "random"
    }

    fn frames_seen(&self) -> u64 {
        self.seen
    }

    fn observe(&mut self, activity: &ActivityBuf, _behaviour: FrameBehaviour) {
        self.last_seq = Some(activity.frame.seq);
        self.last_t_ns = activity.frame.t.as_nanos();
        self.seen += 1;
    }

    fn decide(&mut self, trial: u64, _force_late: bool) -> Decision {
        let i = self.rng.random_range(0..self.library.len().max(1));
        let (stimulus, name, spec) = match self.library.entries.get(i) {
            Some(e) => (e.id, e.name.clone(), e.spec.clone()),
            None => (
                StimulusId(0),
                "gray (empty library)".into(),
                StimulusSpec::Gray,
            ),
        };
        Decision {
            trial,
            stimulus,
            name,
            spec,
            policy: self.name().to_string(),
            after_frame_seq: self.last_seq,
            frames_seen: self.seen,
            after_frame_t_ns: self.last_t_ns,
            mode: DecisionMode::Random,
            score: None,
            alternatives: Vec::new(),
            onsets_seen: 0,
            accuracy: None,
            twin_refit: None,
        }
    }
}

/// When the selector decides the next trial (`[trials]`): just in time, so that each decision
/// has seen the trial before it. Trial `n + 1` is decided once trial `n`'s responses are in
/// (an observed frame at or past `onset + stimulus_s + response_wait_s`), and at the latest when
/// the rig clock reaches `decision_lead_s` before trial `n + 1`'s onset, with what has been seen
/// by then (counted as `decisions_before_responses`).
///
/// On the lock-step simulated rig (not in real time) the rig clock runs as fast as the CPU
/// allows and the display waits for each decision, so there the latest moment also waits until
/// no activity has come for [`LOCKSTEP_IDLE`]: the decisions see what they would in real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionTiming {
    pub stimulus_s: f64,
    pub gray_s: f64,
    pub response_wait_s: f64,
    pub lead_s: f64,
    pub lockstep: bool,
}

/// What a decision's budget leaves before its onset: the renderer takes the queue at a flip.
const ONSET_MARGIN_NS: i64 = 50_000_000;

/// How long activity must have stopped before a lock-step session decides without the last
/// trial's responses (the imaging stage may be calibrating, or the responses lie past the
/// frames the waiting display lets the simulator make).
pub const LOCKSTEP_IDLE: Duration = Duration::from_millis(250);

impl DecisionTiming {
    pub fn from_config(cfg: &crate::config::Config) -> DecisionTiming {
        let t = &cfg.trials;
        DecisionTiming {
            stimulus_s: t.stimulus_s,
            gray_s: t.gray_s,
            response_wait_s: t.response_wait_s,
            lead_s: t.decision_lead_s,
            lockstep: cfg.lockstep(),
        }
    }

    /// The two moments for the trial after one shown at `onset`, when decisions have lately
    /// taken up to `slowest` to compute (the lead is widened to half as much again, so that a
    /// slow CPU decides earlier rather than late).
    fn after_onset(&self, onset: RigTime, slowest: Duration) -> Due {
        let at = |s: f64| RigTime::from_nanos(onset.as_nanos() + (s * 1e9).round() as i64);
        let lead_s = self.lead_s.max(1.5 * slowest.as_secs_f64());
        Due {
            responses_in: at(self.stimulus_s + self.response_wait_s),
            deadline: at(self.stimulus_s + self.gray_s - lead_s),
            onset: at(self.stimulus_s + self.gray_s),
            onset_known: false,
            responses_recv_ns: None,
        }
    }
}

/// The next decision's moments (see [`DecisionTiming`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    responses_in: RigTime,
    deadline: RigTime,
    /// The decided trial's onset, if none starts late.
    onset: RigTime,
    /// From the onset the renderer reported (else estimated when it took the last decision).
    onset_known: bool,
    /// Host arrival time of the observed frame that completed the responses.
    responses_recv_ns: Option<i64>,
}

/// What the selector thread measured, for the session summary.
pub struct SelectorTimes {
    /// From the request to the decision (the selector's compute).
    pub compute: LatencyHist,
    /// From the arrival of the frame that completed a trial's responses to the next trial's
    /// decision queued: imaging, pairing, the wait for the selector and its compute.
    pub responses_to_decision: LatencyHist,
}

/// The selector's thread: observe activity, queue each next trial's decision in time.
pub struct SelectorThread {
    pub selector: Box<dyn Selector>,
    pub activity: RingRx<Activity>,
    /// Each imaging frame's behaviour from the behaviour stage (plane 0's frames, in order;
    /// the other planes' frames of the same volume, same sequence number, take the same
    /// record); `None` when no behaviour stage runs.
    pub behaviour: Option<Receiver<BehaviourRecord>>,
    /// Trial onsets from the renderer.
    pub onsets: Receiver<Onset>,
    pub wake: Arc<Wakeup>,
    pub queue: Sender<Decision>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
    pub counters: Arc<Counters>,
    /// Each plane's cells' scan offsets, filled by the imaging stage once it knows them.
    pub scan: Option<super::ScanSlot>,
    pub timing: DecisionTiming,
    /// The newest imaging frame's rig time (ingest's), for the latest moment to decide.
    pub latest_frame_t: Arc<AtomicI64>,
}

impl SelectorThread {
    /// Runs until the activity ends; returns how long decisions took.
    pub fn run(mut self) -> SelectorTimes {
        let mut times = SelectorTimes {
            compute: LatencyHist::new("selector: decision compute"),
            responses_to_decision: LatencyHist::new("selector: trial's responses to next decision"),
        };
        let _span = tracing::info_span!("stage", name = "selector").entered();
        self.wake.register_current();
        let mut trial = 0u64;
        // The moments to decide `trial` (none before the trial ahead of it is shown; the first
        // trial is decided at once).
        let mut due: Option<Due> = None;
        // The last decision is still in the queue (the renderer has not taken it).
        let mut queued = false;
        // Host time of the last frame observed.
        let mut last_observed_ns = host_monotonic_ns();
        let mut recent = RecentCompute::default();
        let mut pending: Option<Decision> = None;
        let mut renderer_gone = false;
        let mut scratch: Vec<f32> = Vec::new();
        let mut waiting: VecDeque<Activity> = VecDeque::new();
        let mut pairing = Pairing::new(self.behaviour.is_some());
        // Planes whose scan offsets the selector has been given.
        let mut scan_given: Vec<bool> = Vec::new();
        loop {
            // A frame is matched to the stimulus on screen at its time, so every onset before
            // it must be known first: the renderer sends an onset before the flips (and so the
            // imaging frames) after it exist, hence draining onsets after popping a frame and
            // before observing it never misses one.
            // Every plane's frames: each plane's cells are units of the twin.
            while let Some(a) = self.activity.try_pop() {
                waiting.push_back(a);
            }
            let finished = self.activity.is_finished();
            pairing.take_records(self.behaviour.as_ref());
            // A frame is observed once its behaviour is known: the behaviour stage emits one
            // record per frame, a few frames behind at most, so frames are paired by sequence
            // number and the twin sees the same pairs in a replay.
            while let Some(a) = waiting.front() {
                let Some((behaviour, given)) =
                    pairing.behaviour_for(a.frame.plane, a.frame.seq, waiting.len())
                else {
                    break;
                };
                let Some(a) = waiting.pop_front() else {
                    break;
                };
                if given == Given::Up {
                    let _ = self.events.send(RecorderItem::Json {
                        kind: RecordKind::Note,
                        value: serde_json::json!({
                            "event": BEHAVIOUR_MISSING_NOTE,
                            "frame_seq": a.frame.seq,
                            "plane": a.frame.plane,
                        }),
                    });
                }
                // The stage fills a plane's slot before it emits that plane's first activity.
                let plane = usize::from(a.frame.plane);
                if scan_given.len() <= plane {
                    scan_given.resize(plane + 1, false);
                }
                if !scan_given[plane]
                    && let Some(scan) = self.scan.as_ref().and_then(|s| s.get(a.frame.plane))
                {
                    self.selector
                        .set_scan_offsets(a.frame.plane, scan.offsets_s.clone());
                    let value = serde_json::to_value(scan).unwrap_or_default();
                    let mut m = Message::json(Stream::Cells, 0, a.frame.t.as_nanos(), &value);
                    m.header.plane = a.frame.plane;
                    self.bus.publish(m);
                    let _ = self.events.send(RecorderItem::Json {
                        kind: RecordKind::Cells,
                        value,
                    });
                    scan_given[plane] = true;
                }
                self.take_onsets(trial, &mut due, recent.slowest());
                self.selector.observe(&a, behaviour);
                last_observed_ns = host_monotonic_ns();
                if let Some(d) = due.as_mut()
                    && d.responses_recv_ns.is_none()
                    && a.frame.t >= d.responses_in
                {
                    d.responses_recv_ns = Some(a.frame.recv_ns);
                }
                if let Some(p) = self.selector.prediction() {
                    scratch.clear();
                    scratch.extend(p.iter().map(|&v| v as f32));
                    self.bus.publish(Message::cell_values(
                        Stream::Prediction,
                        a.frame.plane,
                        a.frame.seq,
                        a.frame.t.as_nanos(),
                        &scratch,
                    ));
                }
            }
            self.take_onsets(trial, &mut due, recent.slowest());
            let latest = RigTime::from_nanos(self.latest_frame_t.load(Ordering::Acquire));
            if queued && pending.is_none() && self.queue.is_empty() {
                // The renderer took the last decision at its trial's onset, which is about now;
                // the onset it reports (normally right behind) replaces this estimate.
                queued = false;
                if due.is_none() {
                    due = Some(self.timing.after_onset(latest, recent.slowest()));
                }
            }
            let idle = !self.timing.lockstep
                || host_monotonic_ns() - last_observed_ns >= LOCKSTEP_IDLE.as_nanos() as i64;
            let now = match due {
                _ if trial == 0 => Some(Trigger::First),
                Some(d) if d.responses_recv_ns.is_some() => Some(Trigger::Responses),
                Some(d) if (latest >= d.deadline && idle) || finished => Some(Trigger::Deadline),
                _ => None,
            };
            if let Some(trigger) = now
                && pending.is_none()
                && !queued
                && !renderer_gone
            {
                // In real time the decision has until its onset, less a few display frames
                // to be taken; lock-step, the display waits for it.
                let budget = due.filter(|_| !self.timing.lockstep).map(|d| {
                    let left_ns = d.onset.as_nanos() - latest.as_nanos() - ONSET_MARGIN_NS;
                    Duration::from_nanos(left_ns.max(0) as u64)
                });
                self.selector.set_budget(budget);
                let asked = host_monotonic_ns();
                let d = self.selector.decide(trial, false);
                let ready = host_monotonic_ns();
                times.compute.record_ns(ready - asked);
                recent.push(ready - asked);
                if let Some(recv) = due.and_then(|d| d.responses_recv_ns) {
                    times.responses_to_decision.record_ns(ready - recv);
                }
                if trigger == Trigger::Deadline {
                    Counters::inc(&self.counters.decisions_before_responses);
                    // In the log too, so an analysis can tell which decisions had not seen
                    // the trial before them whole.
                    let _ = self.events.send(RecorderItem::Json {
                        kind: RecordKind::Note,
                        value: serde_json::json!({
                            "event": DECIDED_BEFORE_RESPONSES_NOTE,
                            "trial": d.trial,
                            "after_frame_t_ns": d.after_frame_t_ns,
                            "compute_ms": (ready - asked) as f64 * 1e-6,
                        }),
                    });
                }
                due = None;
                trial += 1;
                Counters::inc(&self.counters.decisions);
                tracing::debug!(
                    trial = d.trial,
                    stimulus = d.stimulus.0,
                    ?trigger,
                    compute_ms = (ready - asked) as f64 * 1e-6,
                    rig_s = latest.as_nanos() as f64 * 1e-9,
                    "decided"
                );
                let value = serde_json::to_value(&d).unwrap_or_default();
                self.bus.publish(Message::json(
                    Stream::Decision,
                    d.trial,
                    d.after_frame_t_ns,
                    &value,
                ));
                let _ = self.events.send(RecorderItem::Json {
                    kind: RecordKind::Decision,
                    value,
                });
                pending = Some(d);
            }
            if let Some(d) = pending.take() {
                match self.queue.try_send(d) {
                    Ok(()) => {
                        queued = true;
                        // Upkeep now, while the decision waits for its onset.
                        self.selector.prepare(trial);
                    }
                    Err(TrySendError::Full(d)) => pending = Some(d),
                    // No more trials will be shown; keep observing until the activity ends.
                    Err(TrySendError::Disconnected(_)) => renderer_gone = true,
                }
            }
            if finished && waiting.is_empty() {
                break;
            }
            self.wake.wait(Duration::from_millis(2));
        }
        if pairing.unpaired > 0 {
            tracing::warn!(
                frames = pairing.unpaired,
                "frames reached the twin without their behaviour (the behaviour stage fell behind)"
            );
        }
        times
    }

    /// Passes the renderer's onsets to the selector; the onset of the trial before `next`
    /// times `next`'s decision.
    fn take_onsets(&mut self, next: u64, due: &mut Option<Due>, slowest: Duration) {
        while let Ok(o) = self.onsets.try_recv() {
            self.selector.onset(o.trial, o.stimulus, o.t);
            if o.trial + 1 == next && !due.is_some_and(|d| d.onset_known) {
                let mut d = self.timing.after_onset(o.t, slowest);
                d.onset_known = true;
                *due = Some(d);
            }
        }
    }
}

/// The selector's last few decision compute times.
#[derive(Default)]
struct RecentCompute {
    ns: [i64; 16],
    next: usize,
}

impl RecentCompute {
    fn push(&mut self, ns: i64) {
        self.ns[self.next % self.ns.len()] = ns.max(0);
        self.next += 1;
    }

    fn slowest(&self) -> Duration {
        Duration::from_nanos(self.ns.iter().copied().max().unwrap_or(0) as u64)
    }
}

/// What made the selector decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The session's first trial.
    First,
    /// The trial before it was seen whole.
    Responses,
    /// Its onset was near (or the activity ended) before that.
    Deadline,
}

/// Frames held for their behaviour before the selector observes them without it (3 s at
/// 30 Hz: far beyond the behaviour stage's own bound of a few frames, unless it falls behind).
const MAX_WAITING_FRAMES: usize = 90;

/// The `Note` event that records a frame the selector observed without its behaviour, so a
/// replay does the same whatever the behaviour records in the log say.
pub const BEHAVIOUR_MISSING_NOTE: &str = "selector_behaviour_missing";

/// The `Note` event that records a decision made at its latest moment, before the trial ahead
/// of it had been seen whole (`[trials] decision_lead_s`).
pub const DECIDED_BEFORE_RESPONSES_NOTE: &str = "decided_before_responses";

/// How a frame's behaviour was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    /// Its record (or none is expected).
    Record,
    /// Waited long enough, or its record was lost: observed without behaviour, noted in the log.
    Up,
}

/// Records a plane-0 frame used, kept this many frames for the other planes' frames of the same
/// volume (they come right after it, or later in a plane's calibration backlog).
const KEPT_RECORDS: u64 = 1024;

/// Matches imaging frames with the behaviour stage's records by sequence number. The records
/// are plane 0's frames'; a frame of another plane takes the record of the same sequence number
/// (the same volume: plane 0 is scanned first, so that record is the most recent behaviour at
/// or before the frame's time).
struct Pairing {
    expected: bool,
    /// Received records not yet used, by frame sequence number.
    records: BTreeMap<u64, FrameBehaviour>,
    /// Records plane-0 frames used, for the other planes' frames of those volumes.
    used: BTreeMap<u64, FrameBehaviour>,
    /// The behaviour stage has ended: no more records will come.
    closed: bool,
    /// Frames observed without behaviour although a behaviour stage runs.
    unpaired: u64,
}

impl Pairing {
    fn new(expected: bool) -> Pairing {
        Pairing {
            expected,
            records: BTreeMap::new(),
            used: BTreeMap::new(),
            closed: false,
            unpaired: 0,
        }
    }

    fn take_records(&mut self, rx: Option<&Receiver<BehaviourRecord>>) {
        let Some(rx) = rx else { return };
        loop {
            match rx.try_recv() {
                Ok(r) => {
                    self.records
                        .insert(r.frame_seq, FrameBehaviour::from_record(&r));
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// The behaviour to observe `a` with, or `None` to wait for it; `Given::Up` when a
    /// behaviour stage runs but this frame's record did not come in time.
    fn behaviour_for(
        &mut self,
        plane: u8,
        seq: u64,
        waiting: usize,
    ) -> Option<(FrameBehaviour, Given)> {
        if !self.expected {
            return Some((FrameBehaviour::MISSING, Given::Record));
        }
        if plane != 0 {
            if let Some(&b) = self.used.get(&seq).or_else(|| self.records.get(&seq)) {
                return Some((b, Given::Record));
            }
            // As for plane 0: a record for a later frame means this one's is lost (or too old
            // to be kept).
            let later = self.records.range(seq + 1..).next().is_some()
                || self.used.range(seq + 1..).next().is_some();
            if self.closed || waiting > MAX_WAITING_FRAMES || later {
                self.unpaired += 1;
                return Some((FrameBehaviour::MISSING, Given::Up));
            }
            return None;
        }
        while let Some((&s, _)) = self.used.first_key_value()
            && s + KEPT_RECORDS < seq
        {
            self.used.pop_first();
        }
        // Records for frames before this one will never be used.
        while let Some((&seq_first, _)) = self.records.first_key_value()
            && seq_first < seq
        {
            self.records.pop_first();
        }
        if let Some(b) = self.records.remove(&seq) {
            self.used.insert(seq, b);
            return Some((b, Given::Record));
        }
        // Records come in frame order, so one for a later frame means this one's was lost. After
        // the last frame, the frames still waiting wait only for the behaviour stage to end.
        if self.closed || waiting > MAX_WAITING_FRAMES || !self.records.is_empty() {
            self.unpaired += 1;
            return Some((FrameBehaviour::MISSING, Given::Up));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, speed: f64) -> BehaviourRecord {
        BehaviourRecord {
            frame_seq: seq,
            t_ns: seq as i64,
            pupil_x_px: None,
            pupil_y_px: None,
            pupil_radius_px: None,
            treadmill_cm_s: Some(speed),
            pupil: twinloop_calibration::body::Fill::Missing,
            treadmill: twinloop_calibration::body::Fill::Measured,
        }
    }

    /// Another plane's frame takes the behaviour of its volume's plane-0 frame (the same
    /// sequence number), whether plane 0 used that record already or not, waits like plane 0
    /// for one not yet come, and goes on without one that was lost.
    #[test]
    fn other_planes_take_their_volumes_behaviour() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut p = Pairing::new(true);
        for seq in [0, 1, 3] {
            tx.send(record(seq, seq as f64 * 10.0)).unwrap();
        }
        p.take_records(Some(&rx));
        let speed = |r: Option<(FrameBehaviour, Given)>| r.map(|(b, g)| (b.running_cm_s, g));
        assert_eq!(speed(p.behaviour_for(0, 0, 1)), Some((0.0, Given::Record)));
        assert_eq!(speed(p.behaviour_for(1, 0, 1)), Some((0.0, Given::Record)));
        // Plane 1 before plane 0 in the same volume (plane 0's frame skipped, say).
        assert_eq!(speed(p.behaviour_for(1, 1, 1)), Some((10.0, Given::Record)));
        assert_eq!(speed(p.behaviour_for(0, 1, 1)), Some((10.0, Given::Record)));
        // Record 2 was lost: record 3 is in, so both planes go on without it.
        assert_eq!(
            speed(p.behaviour_for(0, 2, 1)).map(|(_, g)| g),
            Some(Given::Up)
        );
        assert_eq!(
            speed(p.behaviour_for(1, 2, 1)).map(|(_, g)| g),
            Some(Given::Up)
        );
        assert_eq!(speed(p.behaviour_for(0, 3, 1)), Some((30.0, Given::Record)));
        // Record 4 has not come yet: plane 1 waits for it, then takes it.
        assert_eq!(speed(p.behaviour_for(1, 4, 1)), None);
        tx.send(record(4, 40.0)).unwrap();
        p.take_records(Some(&rx));
        assert_eq!(speed(p.behaviour_for(1, 4, 1)), Some((40.0, Given::Record)));
        // A plane's calibration backlog, long after plane 0 used the records: still paired.
        assert_eq!(speed(p.behaviour_for(1, 3, 1)), Some((30.0, Given::Record)));
        assert_eq!(p.unpaired, 2);
    }

    /// The next trial is due once this one's responses are in, and at the latest the lead
    /// before its onset, a lead a slow CPU widens to 1.5x its slowest recent decision.
    #[test]
    fn decisions_are_due_after_the_responses_and_a_slow_cpu_decides_earlier() {
        let cfg = crate::config::Config::default_sim();
        let timing = DecisionTiming::from_config(&cfg);
        let (stim, gray) = (cfg.trials.stimulus_s, cfg.trials.gray_s);
        let onset = RigTime::from_nanos(10_000_000_000);
        let s = |t: RigTime| t.as_nanos() as f64 * 1e-9;
        let due = timing.after_onset(onset, Duration::ZERO);
        assert!((s(due.responses_in) - (10.0 + stim + cfg.trials.response_wait_s)).abs() < 1e-9);
        assert!((s(due.deadline) - (10.0 + stim + gray - cfg.trials.decision_lead_s)).abs() < 1e-9);
        assert!(
            due.responses_in < due.deadline,
            "the default waits for the responses"
        );
        let mut recent = RecentCompute::default();
        for ms in [600, 1, 1, 2] {
            recent.push(ms * 1_000_000);
        }
        assert_eq!(recent.slowest(), Duration::from_millis(600));
        let slow = timing.after_onset(onset, recent.slowest());
        assert!((s(slow.deadline) - (10.0 + stim + gray - 0.9)).abs() < 1e-9);
        // Sixteen quicker decisions later the slow one is forgotten.
        for _ in 0..16 {
            recent.push(2_000_000);
        }
        assert_eq!(recent.slowest(), Duration::from_millis(2));
    }

    #[test]
    fn same_seed_same_choices_and_all_of_the_library_is_used() {
        let lib = Library::small_gratings();
        let mut a = RandomSelector::new(lib.clone(), 3);
        let mut b = RandomSelector::new(lib.clone(), 3);
        let mut c = RandomSelector::new(lib.clone(), 4);
        let da: Vec<_> = (0..200).map(|t| a.decide(t, false).stimulus).collect();
        let db: Vec<_> = (0..200).map(|t| b.decide(t, false).stimulus).collect();
        let dc: Vec<_> = (0..200).map(|t| c.decide(t, false).stimulus).collect();
        assert_eq!(da, db);
        assert_ne!(da, dc);
        let distinct: std::collections::BTreeSet<_> = da.iter().collect();
        assert_eq!(distinct.len(), lib.len(), "200 draws cover 16 entries");
    }
}
