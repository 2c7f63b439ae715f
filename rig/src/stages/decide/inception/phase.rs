//! The protocol's phases as a pure state machine: fed rig time and events, it says the phase
//! and what to show next. The selector thread (live) and replay (over the log) drive the same
//! machine, so both take each transition at the same point.

use super::config::PhasePlan;
use super::records::FallbackReason;
use crate::vocab::clock::RigTime;

/// Where the protocol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Natural clips and the candidate pool, as a session without `[inception]` shows.
    Record { round: u32 },
    /// The twin designs; a filler block of natural clips keeps the imaging going.
    Design { round: u32 },
    /// MEIs and controls, interleaved. `fallback`: no MEIs, the library's predicted best.
    Verify { round: u32, fallback: bool },
    /// Every round is done; the session goes on recording until its end.
    Done,
}

/// What the presentation should take next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The session's selector chooses, as today (record phases, and after the protocol).
    Selector,
    /// Natural clips: the design's filler, or a verify block whose schedule is not built yet.
    Filler,
    /// Entry `index` of the round's verify schedule.
    Verify { index: usize },
}

/// What happens to the protocol besides time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The design finished; its verify schedule has this many presentations.
    DesignFinished { verify_trials: usize },
    /// The design failed; the library-best schedule will follow (`FallbackScheduled`).
    DesignFailed { reason: String },
    /// After a fallback: the library-best verify schedule has this many presentations.
    FallbackScheduled { verify_trials: usize },
    /// The verify entry [`Show::Verify`] named was shown.
    VerifyShown,
    /// A target's cell vanished from the masks (its index in the round's pre-registration).
    TargetLost { target: u32 },
}

/// A change of phase, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub at: RigTime,
    pub from: Phase,
    pub to: Phase,
    /// Set when the design fell back to the library best.
    pub fallback: Option<FallbackReason>,
}

/// What an event did besides changing phase, for the log and the summary's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A design result came after its round had fallen back: not used, counted.
    LateDesign { round: u32 },
    /// An event that does not belong to the current phase (a bug in the caller): ignored.
    OutOfPhase { phase: Phase, event: Event },
    /// A target was reported lost (once per target and round).
    TargetLost { round: u32, target: u32 },
}

/// What one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub transitions: Vec<Transition>,
    pub notice: Option<Notice>,
}

/// The protocol's state: pure (no clock, no I/O), fed by its caller.
#[derive(Debug, Clone)]
pub struct PhaseMachine {
    plan: PhasePlan,
    phase: Phase,
    since: RigTime,
    /// Presentations of the current verify block: `None` until its schedule is built.
    verify_trials: Option<usize>,
    verify_shown: usize,
    fallbacks: u32,
    late_designs: u32,
    /// `(round, target)` reported lost, in the order reported.
    lost: Vec<(u32, u32)>,
}

impl PhaseMachine {
    /// The protocol of `plan`, its first record phase starting at `start`.
    pub fn new(plan: PhasePlan, start: RigTime) -> PhaseMachine {
        PhaseMachine {
            plan,
            phase: Phase::Record { round: 1 },
            since: start,
            verify_trials: None,
            verify_shown: 0,
            fallbacks: 0,
            late_designs: 0,
            lost: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the current phase started (rig time).
    pub fn since(&self) -> RigTime {
        self.since
    }

    /// Designs that fell back to the library best.
    pub fn fallbacks(&self) -> u32 {
        self.fallbacks
    }

    /// Design results that came after their round had fallen back.
    pub fn late_designs(&self) -> u32 {
        self.late_designs
    }

    /// Targets reported lost, as `(round, target)`.
    pub fn lost(&self) -> &[(u32, u32)] {
        &self.lost
    }

    /// What to show next.
    pub fn show(&self) -> Show {
        match self.phase {
            Phase::Record { .. } | Phase::Done => Show::Selector,
            Phase::Design { .. } => Show::Filler,
            Phase::Verify { .. } => match self.verify_trials {
                Some(n) if self.verify_shown < n => Show::Verify {
                    index: self.verify_shown,
                },
                _ => Show::Filler,
            },
        }
    }

    /// Takes the transitions time makes by `now`: a record phase's end, a design's timeout.
    /// Each starts at its boundary, not at `now`, so a late call changes nothing downstream.
    pub fn advance(&mut self, now: RigTime) -> Vec<Transition> {
        let mut out = Vec::new();
        loop {
            let (len_s, next) = match self.phase {
                Phase::Record { round } => {
                    let len = if round == 1 {
                        self.plan.record_s
                    } else {
                        self.plan.rerecord_s
                    };
                    (len, Phase::Design { round })
                }
                Phase::Design { round } => (
                    self.plan.design_s,
                    Phase::Verify {
                        round,
                        fallback: true,
                    },
                ),
                Phase::Verify { .. } | Phase::Done => return out,
            };
            let end = self.since.plus(std::time::Duration::from_secs_f64(len_s));
            if now < end {
                return out;
            }
            let fallback = matches!(next, Phase::Verify { .. }).then_some(FallbackReason::TimedOut);
            out.push(self.enter(next, end, fallback));
        }
    }

    /// Applies `event` at `now` (after [`advance`](Self::advance) to `now`): the transitions
    /// it made (a verify block of no presentations ends as it starts) and anything to note.
    pub fn on(&mut self, now: RigTime, event: Event) -> Step {
        let mut step = Step::default();
        match (self.phase, event) {
            (_, Event::TargetLost { target }) => {
                if let Some(round) = self.round()
                    && !self.lost.contains(&(round, target))
                {
                    self.lost.push((round, target));
                    step.notice = Some(Notice::TargetLost { round, target });
                }
            }
            (Phase::Design { round }, Event::DesignFinished { verify_trials }) => {
                let to = Phase::Verify {
                    round,
                    fallback: false,
                };
                step.transitions.push(self.enter(to, now, None));
                self.verify_trials = Some(verify_trials);
                step.transitions.extend(self.end_verify_if_shown(now));
            }
            (Phase::Design { round }, Event::DesignFailed { reason }) => {
                let to = Phase::Verify {
                    round,
                    fallback: true,
                };
                let reason = Some(FallbackReason::Failed(reason));
                step.transitions.push(self.enter(to, now, reason));
            }
            (
                Phase::Verify {
                    round,
                    fallback: true,
                },
                Event::DesignFinished { .. },
            ) => {
                self.late_designs += 1;
                step.notice = Some(Notice::LateDesign { round });
            }
            (Phase::Verify { fallback: true, .. }, Event::FallbackScheduled { verify_trials })
                if self.verify_trials.is_none() =>
            {
                self.verify_trials = Some(verify_trials);
                step.transitions.extend(self.end_verify_if_shown(now));
            }
            (Phase::Verify { .. }, Event::VerifyShown)
                if matches!(self.show(), Show::Verify { .. }) =>
            {
                self.verify_shown += 1;
                step.transitions.extend(self.end_verify_if_shown(now));
            }
            (phase, event) => step.notice = Some(Notice::OutOfPhase { phase, event }),
        }
        step
    }

    fn round(&self) -> Option<u32> {
        match self.phase {
            Phase::Record { round } | Phase::Design { round } | Phase::Verify { round, .. } => {
                Some(round)
            }
            Phase::Done => None,
        }
    }

    /// A verify block whose every presentation was shown ends: the next round's record phase
    /// (its design at once when `rerecord_s` is 0, by the next `advance`), or done.
    fn end_verify_if_shown(&mut self, now: RigTime) -> Option<Transition> {
        let Phase::Verify { round, .. } = self.phase else {
            return None;
        };
        if self.verify_trials.is_none_or(|n| self.verify_shown < n) {
            return None;
        }
        let next = if round < self.plan.rounds {
            Phase::Record { round: round + 1 }
        } else {
            Phase::Done
        };
        Some(self.enter(next, now, None))
    }

    fn enter(&mut self, to: Phase, at: RigTime, fallback: Option<FallbackReason>) -> Transition {
        if fallback.is_some() {
            self.fallbacks += 1;
            tracing::warn!(
                ?to,
                ?fallback,
                "inception design fell back to the library best"
            );
        }
        let from = self.phase;
        self.phase = to;
        self.since = at;
        self.verify_trials = None;
        self.verify_shown = 0;
        Transition {
            at,
            from,
            to,
            fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: f64) -> RigTime {
        RigTime::from_secs_f64(s)
    }

    enum Input {
        Tick,
        Ev(Event),
    }
    use Input::{Ev, Tick};

    const R1: Phase = Phase::Record { round: 1 };
    const D1: Phase = Phase::Design { round: 1 };
    const V1: Phase = Phase::Verify {
        round: 1,
        fallback: false,
    };
    const R2: Phase = Phase::Record { round: 2 };
    const D2: Phase = Phase::Design { round: 2 };
    const V2F: Phase = Phase::Verify {
        round: 2,
        fallback: true,
    };

    /// One row: at `t` seconds, feed `input`; then the phase, what to show, the transitions
    /// made (at, from, to, fallback) and the notice must be these.
    type Row = (
        f64,
        Input,
        Phase,
        Show,
        Vec<(f64, Phase, Phase, Option<FallbackReason>)>,
        Option<Notice>,
    );

    fn run(plan: PhasePlan, rows: Vec<Row>) -> PhaseMachine {
        let mut m = PhaseMachine::new(plan, at(0.0));
        for (k, (t, input, phase, show, transitions, notice)) in rows.into_iter().enumerate() {
            let mut got = m.advance(at(t));
            let mut got_notice = None;
            if let Ev(e) = input {
                let step = m.on(at(t), e);
                got.extend(step.transitions);
                got_notice = step.notice;
            }
            let want: Vec<Transition> = transitions
                .into_iter()
                .map(|(s, from, to, fallback)| Transition {
                    at: at(s),
                    from,
                    to,
                    fallback,
                })
                .collect();
            assert_eq!(got, want, "row {k} (t = {t}): transitions");
            assert_eq!(got_notice, notice, "row {k} (t = {t}): notice");
            assert_eq!(m.phase(), phase, "row {k} (t = {t}): phase");
            assert_eq!(m.show(), show, "row {k} (t = {t}): show");
        }
        m
    }

    fn plan(rounds: u32) -> PhasePlan {
        PhasePlan {
            rounds,
            record_s: 10.0,
            rerecord_s: 5.0,
            design_s: 3.0,
            verify_max_s: 100.0,
        }
    }

    /// Two rounds: a design that finishes in time, then one that times out (falls back,
    /// counted; its late result is noted, not used). Phases start at their boundaries, however
    /// late the tick; lost targets are reported once; stray events change nothing.
    #[test]
    fn the_protocol_runs_its_rounds_and_falls_back_on_a_timeout() {
        use Show::{Filler, Selector};
        let v = |index| Show::Verify { index };
        let m = run(
            plan(2),
            vec![
                (0.0, Tick, R1, Selector, vec![], None),
                (9.999, Tick, R1, Selector, vec![], None),
                (10.0, Tick, D1, Filler, vec![(10.0, R1, D1, None)], None),
                (
                    11.0,
                    Ev(Event::TargetLost { target: 2 }),
                    D1,
                    Filler,
                    vec![],
                    Some(Notice::TargetLost {
                        round: 1,
                        target: 2,
                    }),
                ),
                (
                    11.5,
                    Ev(Event::TargetLost { target: 2 }),
                    D1,
                    Filler,
                    vec![],
                    None,
                ),
                (
                    12.0,
                    Ev(Event::DesignFinished { verify_trials: 2 }),
                    V1,
                    v(0),
                    vec![(12.0, D1, V1, None)],
                    None,
                ),
                (
                    12.1,
                    Ev(Event::FallbackScheduled { verify_trials: 3 }),
                    V1,
                    v(0),
                    vec![],
                    Some(Notice::OutOfPhase {
                        phase: V1,
                        event: Event::FallbackScheduled { verify_trials: 3 },
                    }),
                ),
                // Verify has no time limit: it ends when its schedule is shown.
                (200.0, Ev(Event::VerifyShown), V1, v(1), vec![], None),
                (
                    201.0,
                    Ev(Event::VerifyShown),
                    R2,
                    Selector,
                    vec![(201.0, V1, R2, None)],
                    None,
                ),
                (205.9, Tick, R2, Selector, vec![], None),
                // A late tick: the rerecord ends at 206, the design times out at 209.
                (
                    230.0,
                    Tick,
                    V2F,
                    Filler,
                    vec![
                        (206.0, R2, D2, None),
                        (209.0, D2, V2F, Some(FallbackReason::TimedOut)),
                    ],
                    None,
                ),
                (
                    230.5,
                    Ev(Event::VerifyShown),
                    V2F,
                    Filler,
                    vec![],
                    Some(Notice::OutOfPhase {
                        phase: V2F,
                        event: Event::VerifyShown,
                    }),
                ),
                (
                    231.0,
                    Ev(Event::DesignFinished { verify_trials: 5 }),
                    V2F,
                    Filler,
                    vec![],
                    Some(Notice::LateDesign { round: 2 }),
                ),
                (
                    231.5,
                    Ev(Event::FallbackScheduled { verify_trials: 1 }),
                    V2F,
                    v(0),
                    vec![],
                    None,
                ),
                (
                    232.0,
                    Ev(Event::VerifyShown),
                    Phase::Done,
                    Selector,
                    vec![(232.0, V2F, Phase::Done, None)],
                    None,
                ),
                (
                    240.0,
                    Ev(Event::TargetLost { target: 0 }),
                    Phase::Done,
                    Selector,
                    vec![],
                    None,
                ),
                (1e6, Tick, Phase::Done, Selector, vec![], None),
            ],
        );
        assert_eq!(m.fallbacks(), 1);
        assert_eq!(m.late_designs(), 1);
        assert_eq!(m.lost(), &[(1, 2)]);
    }

    /// A failed design falls back at once with its reason; a design with nothing to verify ends
    /// its round as it starts (two transitions in one step); a zero rerecord designs again at
    /// the same instant.
    #[test]
    fn a_failed_design_falls_back_and_an_empty_verify_ends_at_once() {
        use Show::{Filler, Selector};
        let mut p = plan(2);
        p.rerecord_s = 0.0;
        let failed = || FallbackReason::Failed("twin refit diverged".into());
        let v1f = Phase::Verify {
            round: 1,
            fallback: true,
        };
        let v2 = Phase::Verify {
            round: 2,
            fallback: false,
        };
        let m = run(
            p,
            vec![
                (10.0, Tick, D1, Filler, vec![(10.0, R1, D1, None)], None),
                (
                    11.0,
                    Ev(Event::DesignFailed {
                        reason: "twin refit diverged".into(),
                    }),
                    v1f,
                    Filler,
                    vec![(11.0, D1, v1f, Some(failed()))],
                    None,
                ),
                (
                    12.0,
                    Ev(Event::FallbackScheduled { verify_trials: 0 }),
                    R2,
                    Selector,
                    vec![(12.0, v1f, R2, None)],
                    None,
                ),
                (12.0, Tick, D2, Filler, vec![(12.0, R2, D2, None)], None),
                (
                    13.0,
                    Ev(Event::DesignFinished { verify_trials: 0 }),
                    Phase::Done,
                    Selector,
                    vec![(13.0, D2, v2, None), (13.0, v2, Phase::Done, None)],
                    None,
                ),
            ],
        );
        assert_eq!(m.fallbacks(), 1);
        assert_eq!(m.late_designs(), 0);
    }
}
