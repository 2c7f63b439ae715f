//! The selector's thread: observe every frame's activity in order, with its behaviour, and
//! queue each next trial's decision when the [`DecisionClock`] says so.

use super::clock::{DecisionClock, DecisionTiming, LOCKSTEP_IDLE, Trigger};
use super::pairing::{Given, Pairing};
use crate::backbone::bus::Bus;
use crate::backbone::frames::Activity;
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::{RingRx, Wakeup};
use crate::backbone::telemetry::{Counters, LatencyHist};
use crate::stages::behaviour::BehaviourRecord;
use crate::stages::decide::selector::{BEHAVIOUR_MISSING_NOTE, DECIDED_BEFORE_RESPONSES_NOTE};
use crate::stages::decide::{Decision, Onset, Selector};
use crate::vocab::clock::{RigTime, host_monotonic_ns};
use crate::vocab::protocol::{Message, Stream};
use crate::vocab::records::RecordKind;
use crate::vocab::scan::ScanSlot;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// What the selector thread measured, for the session summary.
pub struct SelectorTimes {
    /// From the request to the decision (the selector's compute).
    pub compute: LatencyHist,
    /// From the arrival of the frame that completed a trial's responses to the next trial's
    /// decision queued: imaging, pairing, the wait for the selector and its compute.
    pub responses_to_decision: LatencyHist,
    /// What the selector summarised at the end (the inception protocol's verdict).
    pub finished: Option<serde_json::Value>,
    /// The selector's twin at the end (`[twin] save`), or why it has none.
    pub live_twin: Result<crate::stages::decide::design::LiveTwin, String>,
    /// The final twin refit to run once the session is over, or why there is none.
    pub final_refit: Result<crate::stages::decide::design::twin_refit::FinalRefitJob, String>,
}

/// What the selector thread reads and where it hands things on.
pub struct SelectorLinks {
    pub activity: RingRx<Activity>,
    /// Each imaging frame's behaviour from the behaviour stage (plane 0's frames, in order;
    /// the other planes' frames of the same volume, same sequence number, take the same
    /// record); `None` when no behaviour stage runs.
    pub behaviour: Option<Receiver<BehaviourRecord>>,
    /// Trial onsets from the renderer.
    pub onsets: Receiver<Onset>,
    pub wake: Arc<Wakeup>,
    /// The one-deep queue the renderer takes each decision from.
    pub queue: Sender<Decision>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
    pub counters: Arc<Counters>,
    /// Each plane's cells' scan offsets, filled by the imaging stage once it knows them.
    pub scan: Option<ScanSlot>,
    /// The newest imaging frame's rig time (ingest's), for the latest moment to decide.
    pub latest_frame_t: Arc<AtomicI64>,
}

/// The selector's thread.
pub struct SelectorThread {
    selector: Box<dyn Selector>,
    links: SelectorLinks,
    clock: DecisionClock,
    pairing: Pairing,
    /// Frames popped but not yet observed (waiting for their behaviour).
    waiting: VecDeque<Activity>,
    /// Planes whose scan offsets the selector has been given.
    scan_given: Vec<bool>,
    /// Host time of the last frame observed.
    last_observed_ns: i64,
    scratch: Vec<f32>,
    /// `seq` of the next `inception` bus message.
    protocol_seq: u64,
}

impl SelectorThread {
    pub fn new(
        selector: Box<dyn Selector>,
        links: SelectorLinks,
        timing: DecisionTiming,
    ) -> SelectorThread {
        let pairing = Pairing::new(links.behaviour.is_some());
        SelectorThread {
            selector,
            links,
            clock: DecisionClock::new(timing),
            pairing,
            waiting: VecDeque::new(),
            scan_given: Vec::new(),
            last_observed_ns: host_monotonic_ns(),
            scratch: Vec::new(),
            protocol_seq: 0,
        }
    }

    /// Runs until the activity ends; returns how long decisions took.
    pub fn run(mut self) -> SelectorTimes {
        let mut times = SelectorTimes {
            compute: LatencyHist::new("selector: decision compute"),
            responses_to_decision: LatencyHist::new("selector: trial's responses to next decision"),
            finished: None,
            live_twin: Err("the selector thread ended before the session did".into()),
            final_refit: Err("the selector thread ended before the session did".into()),
        };
        let _span = tracing::info_span!("stage", name = "selector").entered();
        self.links.wake.register_current();
        self.last_observed_ns = host_monotonic_ns();
        let mut pending: Option<Decision> = None;
        let mut renderer_gone = false;
        loop {
            // Every plane's frames: each plane's cells are units of the twin.
            while let Some(a) = self.links.activity.try_pop() {
                self.waiting.push_back(a);
            }
            let finished = self.links.activity.is_finished();
            self.observe_waiting();
            self.publish_progress();
            self.take_onsets();
            let latest = RigTime::from_nanos(self.links.latest_frame_t.load(Ordering::Acquire));
            if self.clock.is_queued() && pending.is_none() && self.links.queue.is_empty() {
                // The renderer took the last decision at its trial's onset, which is about now.
                self.clock.taken(latest);
            }
            let idle =
                host_monotonic_ns() - self.last_observed_ns >= LOCKSTEP_IDLE.as_nanos() as i64;
            if let Some(trigger) = self.clock.trigger(latest, idle, finished)
                && pending.is_none()
                && !renderer_gone
            {
                pending = Some(self.decide(trigger, latest, &mut times));
            }
            if let Some(d) = pending.take() {
                match self.links.queue.try_send(d) {
                    Ok(()) => {
                        self.clock.queued();
                        // Upkeep now, while the decision waits for its onset.
                        self.selector.prepare(self.clock.next_trial());
                        self.log_selector_records();
                        if let Some(c) = self.selector.design_counts() {
                            self.links.counters.set_design(c);
                        }
                    }
                    Err(TrySendError::Full(d)) => pending = Some(d),
                    // No more trials will be shown; keep observing until the activity ends.
                    Err(TrySendError::Disconnected(_)) => renderer_gone = true,
                }
            }
            if finished && self.waiting.is_empty() {
                break;
            }
            self.links.wake.wait(Duration::from_millis(2));
        }
        // Every frame observed: the selector's verdict, logged and summarised.
        times.finished = self.selector.finish();
        times.live_twin = self.selector.live_twin();
        times.final_refit = self.selector.final_refit();
        self.log_selector_records();
        // The frames observed after the last decision count too (the summary and the final
        // heartbeat read these).
        if let Some(c) = self.selector.design_counts() {
            self.links.counters.set_design(c);
        }
        if self.pairing.unpaired > 0 {
            tracing::warn!(
                frames = self.pairing.unpaired,
                "frames reached the twin without their behaviour (the behaviour stage fell behind)"
            );
        }
        times
    }

    /// Observes the waiting frames whose behaviour is known. A frame is matched to the stimulus
    /// on screen at its time, so every onset before it must be known first: the renderer sends
    /// an onset before the flips (and so the imaging frames) after it exist, hence draining
    /// onsets after popping a frame and before observing it never misses one.
    fn observe_waiting(&mut self) {
        self.pairing.take_records(self.links.behaviour.as_ref());
        // The behaviour stage emits one record per frame, a few frames behind at most, so
        // frames are paired by sequence number and the twin sees the same pairs in a replay.
        while let Some(a) = self.waiting.front() {
            let Some((behaviour, given)) =
                self.pairing
                    .behaviour_for(a.frame.plane, a.frame.seq, self.waiting.len())
            else {
                break;
            };
            let Some(a) = self.waiting.pop_front() else {
                break;
            };
            if given == Given::Up {
                self.record_json(
                    RecordKind::Note,
                    serde_json::json!({
                        "event": BEHAVIOUR_MISSING_NOTE,
                        "frame_seq": a.frame.seq,
                        "plane": a.frame.plane,
                    }),
                );
            }
            self.give_scan_offsets(&a);
            self.take_onsets();
            self.selector.observe(&a, behaviour);
            self.last_observed_ns = host_monotonic_ns();
            self.clock.frame(a.frame.t, a.frame.recv_ns);
            if let Some(p) = self.selector.prediction() {
                self.scratch.clear();
                self.scratch.extend(p.iter().map(|&v| v as f32));
                self.links.bus.publish(Message::cell_values(
                    Stream::Prediction,
                    a.frame.plane,
                    a.frame.seq,
                    a.frame.t.as_nanos(),
                    &self.scratch,
                ));
            }
        }
    }

    /// The stage fills a plane's slot before it emits that plane's first activity: the first
    /// time a plane's frame comes, its cells' offsets go to the selector, the bus and the log.
    fn give_scan_offsets(&mut self, a: &Activity) {
        let plane = usize::from(a.frame.plane);
        if self.scan_given.len() <= plane {
            self.scan_given.resize(plane + 1, false);
        }
        if self.scan_given[plane] {
            return;
        }
        let Some(scan) = self.links.scan.as_ref().and_then(|s| s.get(a.frame.plane)) else {
            return;
        };
        self.selector
            .set_scan_offsets(a.frame.plane, scan.offsets_s.clone());
        let Some(value) = self.links.counters.json("cell scan offsets", scan) else {
            return;
        };
        let mut m = Message::json(Stream::Cells, 0, a.frame.t.as_nanos(), &value);
        m.header.plane = a.frame.plane;
        self.links.bus.publish(m);
        self.record_json(RecordKind::Cells, value);
        self.scan_given[plane] = true;
    }

    /// Decides the next trial now: logs and publishes the decision, and notes one made before
    /// the trial ahead of it was seen whole.
    fn decide(&mut self, trigger: Trigger, latest: RigTime, times: &mut SelectorTimes) -> Decision {
        self.selector.set_budget(self.clock.budget(latest));
        let asked = host_monotonic_ns();
        let d = self.selector.decide(self.clock.next_trial(), false);
        let ready = host_monotonic_ns();
        // Before the decision: a verify trial's predictions are in the log before it is shown.
        self.log_selector_records();
        times.compute.record_ns(ready - asked);
        if let Some(recv) = self.clock.decided(ready - asked) {
            times.responses_to_decision.record_ns(ready - recv);
        }
        if trigger == Trigger::Deadline {
            Counters::inc(&self.links.counters.decisions_before_responses);
            // In the log too, so an analysis can tell which decisions had not seen the trial
            // before them whole.
            self.record_json(
                RecordKind::Note,
                serde_json::json!({
                    "event": DECIDED_BEFORE_RESPONSES_NOTE,
                    "trial": d.trial,
                    "after_frame_t_ns": d.after_frame_t_ns,
                    "compute_ms": (ready - asked) as f64 * 1e-6,
                }),
            );
        }
        Counters::inc(&self.links.counters.decisions);
        if let Some(c) = self.selector.design_counts() {
            self.links.counters.set_design(c);
        }
        tracing::debug!(
            trial = d.trial,
            stimulus = d.stimulus.0,
            ?trigger,
            compute_ms = (ready - asked) as f64 * 1e-6,
            rig_s = latest.as_nanos() as f64 * 1e-9,
            "decided"
        );
        if let Some(value) = self.links.counters.json("decision", &d) {
            self.links.bus.publish(Message::json(
                Stream::Decision,
                d.trial,
                d.after_frame_t_ns,
                &value,
            ));
            self.record_json(RecordKind::Decision, value);
        }
        d
    }

    /// Passes the renderer's onsets to the selector and the clock.
    fn take_onsets(&mut self) {
        while let Ok(o) = self.links.onsets.try_recv() {
            self.selector.onset(o.trial, o.stimulus, o.t);
            self.clock.onset(o.trial, o.t);
        }
    }

    /// The selector's own records (the inception protocol's), as notes, in order; each also
    /// on the bus for the dashboard and subscribers.
    fn log_selector_records(&mut self) {
        for value in self.selector.take_records() {
            self.publish_protocol(&value);
            self.record_json(RecordKind::Note, value);
        }
    }

    /// The selector's live-only progress (verify responses as measured), on the bus only.
    fn publish_progress(&mut self) {
        for value in self.selector.take_progress() {
            self.publish_protocol(&value);
        }
    }

    fn publish_protocol(&mut self, value: &serde_json::Value) {
        self.links.bus.publish(Message::json(
            Stream::Inception,
            self.protocol_seq,
            0,
            value,
        ));
        self.protocol_seq += 1;
    }

    fn record_json(&self, kind: RecordKind, value: serde_json::Value) {
        let _ = self.links.events.send(RecorderItem::Json { kind, value });
    }
}
