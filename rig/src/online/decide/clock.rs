//! When the selector decides: a pure state machine over rig time, fed by the selector thread.
//!
//! Trial `n + 1` is decided once trial `n`'s responses are in, and at the latest a lead before
//! its onset ([`DecisionTiming`]). [`DecisionClock`] holds the moments of the next decision and
//! answers one question, given what the thread has seen: decide now, and why ([`Trigger`])?

use crate::stages::decide::TrialsConfig;
use crate::vocab::clock::RigTime;
use std::time::Duration;

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
    /// From `[trials]`; `lockstep` when the display waits for each decision
    /// (`Config::lockstep`).
    pub fn new(trials: &TrialsConfig, lockstep: bool) -> DecisionTiming {
        DecisionTiming {
            stimulus_s: trials.stimulus_s,
            gray_s: trials.gray_s,
            response_wait_s: trials.response_wait_s,
            lead_s: trials.decision_lead_s,
            lockstep,
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

/// The selector's last few decision compute times.
#[derive(Debug, Clone, Default)]
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
pub enum Trigger {
    /// The session's first trial.
    First,
    /// The trial before it was seen whole.
    Responses,
    /// Its onset was near (or the activity ended) before that.
    Deadline,
}

/// The selector thread's timing state: which trial is next, its moments, whether the last
/// decision still waits in the queue, and how long recent decisions took. Pure: every input is
/// an argument, so a table test drives it.
#[derive(Debug, Clone)]
pub struct DecisionClock {
    timing: DecisionTiming,
    /// The next trial to decide.
    trial: u64,
    /// Its moments (none before the trial ahead of it is shown; the first is decided at once).
    due: Option<Due>,
    /// The last decision is still in the queue (the renderer has not taken it).
    queued: bool,
    recent: RecentCompute,
}

impl DecisionClock {
    pub fn new(timing: DecisionTiming) -> DecisionClock {
        DecisionClock {
            timing,
            trial: 0,
            due: None,
            queued: false,
            recent: RecentCompute::default(),
        }
    }

    /// The trial the next decision is for.
    pub fn next_trial(&self) -> u64 {
        self.trial
    }

    pub fn lockstep(&self) -> bool {
        self.timing.lockstep
    }

    /// The renderer showed trial `trial` at `t`: the onset of the trial before the next one
    /// times the next decision (replacing an estimate).
    pub fn onset(&mut self, trial: u64, t: RigTime) {
        if trial + 1 == self.trial && !self.due.is_some_and(|d| d.onset_known) {
            let mut d = self.timing.after_onset(t, self.recent.slowest());
            d.onset_known = true;
            self.due = Some(d);
        }
    }

    /// A frame at rig time `t`, which arrived at host time `recv_ns`, was observed: it may
    /// complete the last trial's responses.
    pub fn frame(&mut self, t: RigTime, recv_ns: i64) {
        if let Some(d) = self.due.as_mut()
            && d.responses_recv_ns.is_none()
            && t >= d.responses_in
        {
            d.responses_recv_ns = Some(recv_ns);
        }
    }

    /// The renderer took the queued decision (at its trial's onset, which is about `latest`):
    /// the onset it reports, normally right behind, replaces this estimate.
    pub fn taken(&mut self, latest: RigTime) {
        self.queued = false;
        if self.due.is_none() {
            self.due = Some(self.timing.after_onset(latest, self.recent.slowest()));
        }
    }

    /// The decision went into the queue.
    pub fn queued(&mut self) {
        self.queued = true;
    }

    pub fn is_queued(&self) -> bool {
        self.queued
    }

    /// Whether to decide now, with the newest frame at `latest`: the first trial at once, the
    /// others when their responses are in, or at their deadline (`idle`: lock-step, activity
    /// has stopped for a while) or once the activity has `finished`.
    pub fn trigger(&self, latest: RigTime, idle: bool, finished: bool) -> Option<Trigger> {
        if self.queued {
            return None;
        }
        let idle = idle || !self.timing.lockstep;
        match self.due {
            _ if self.trial == 0 => Some(Trigger::First),
            Some(d) if d.responses_recv_ns.is_some() => Some(Trigger::Responses),
            Some(d) if (latest >= d.deadline && idle) || finished => Some(Trigger::Deadline),
            _ => None,
        }
    }

    /// The time the decision has: in real time until its onset less a few display frames for
    /// the renderer to take it; lock-step, none (the display waits for it).
    pub fn budget(&self, latest: RigTime) -> Option<Duration> {
        self.due.filter(|_| !self.timing.lockstep).map(|d| {
            let left_ns = d.onset.as_nanos() - latest.as_nanos() - ONSET_MARGIN_NS;
            Duration::from_nanos(left_ns.max(0) as u64)
        })
    }

    /// The decision was made in `compute_ns`; returns the host arrival time of the frame that
    /// completed its trial's responses, if it waited for them.
    pub fn decided(&mut self, compute_ns: i64) -> Option<i64> {
        self.recent.push(compute_ns);
        let recv = self.due.and_then(|d| d.responses_recv_ns);
        self.due = None;
        self.trial += 1;
        recv
    }
}

#[cfg(test)]
mod tests;
