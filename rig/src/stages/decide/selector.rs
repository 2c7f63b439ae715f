//! Choosing the next trial's stimulus.
//!
//! A selector sees every frame's activity in order ([`Selector::observe`]) and is asked for a
//! decision between frames ([`Selector::decide`]). Each decision records the last frame it had
//! seen, so a replay that feeds the same activity and asks at the same points gets the same
//! decisions.

use super::decision::DecisionMode;
pub use super::decision::{Decision, FrameBehaviour, Onset};
use crate::backbone::frames::ActivityBuf;
use crate::vocab::clock::RigTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use twinloop_stimulus::{Library, StimulusId, StimulusSpec};

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
    /// What an adaptive design had to repair or refuse so far (`None`: not a design).
    fn design_counts(&self) -> Option<&crate::backbone::telemetry::DesignCounts> {
        None
    }
    /// Replay: take twin refits exactly at these trials, as live did (selectors without a
    /// twin refit ignore it).
    fn script_twin_refits(&mut self, trials: std::collections::BTreeSet<u64>) {
        let _ = trials;
    }
    /// Records for the log (`Note` payloads) the selector made since it was last asked, in
    /// order: the inception protocol's phases, pre-registration, design results and verify
    /// trials. The selector thread logs them before the decision they came with, so a verify
    /// trial's predictions are in the log before its stimulus can be shown.
    fn take_records(&mut self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// Live progress for the dashboard, not for the log (the inception protocol's measured
    /// responses of each verify presentation, which its verdict holds): made since last asked,
    /// in order. Nobody asks in a replay, so a selector keeps at most a bounded backlog.
    fn take_progress(&mut self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// Replay: the live selector's logged records (`Note` payloads, in log order), for a
    /// selector that takes results computed off its thread from them instead of recomputing.
    fn script_records(&mut self, records: &[serde_json::Value]) {
        let _ = records;
    }
    /// The session's end, every frame observed: what to log and summarise (the inception
    /// protocol's verdict), if anything.
    fn finish(&mut self) -> Option<serde_json::Value> {
        None
    }
    /// The twin the selector learned, at the session's end (`[twin] save` writes it), or why
    /// it has none that `[source.twin]` could load.
    fn live_twin(&self) -> Result<super::design::LiveTwin, String> {
        Err(format!(
            "the {} policy keeps no twin (trials.policy = \"random\")",
            self.name()
        ))
    }
    /// The final twin refit on everything the selector kept, to run once the session is over
    /// (`[twin] final_refit_steps`), or why there is nothing to fit.
    fn final_refit(&self) -> Result<super::design::twin_refit::FinalRefitJob, String> {
        Err(format!(
            "the {} policy keeps no twin to refit (trials.policy = \"random\")",
            self.name()
        ))
    }
}

/// The control arm: uniform random over the library, from a seeded ChaCha8 stream (portable
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

/// The `Note` event that records a frame the selector observed without its behaviour, so a
/// replay does the same whatever the behaviour records in the log say.
pub const BEHAVIOUR_MISSING_NOTE: &str = "selector_behaviour_missing";

/// The `Note` event that records a decision made at its latest moment, before the trial ahead
/// of it had been seen whole (`[trials] decision_lead_s`).
pub const DECIDED_BEFORE_RESPONSES_NOTE: &str = "decided_before_responses";

#[cfg(test)]
mod tests {
    use super::*;

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
