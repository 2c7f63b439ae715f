use super::*;

const S: i64 = 1_000_000_000;

fn at(s: f64) -> RigTime {
    RigTime::from_nanos((s * 1e9).round() as i64)
}

/// 2 s stimuli, 1 s gray, responses 0.2 s after a stimulus ends, decided 0.5 s before onset.
fn timing(lockstep: bool) -> DecisionTiming {
    DecisionTiming {
        stimulus_s: 2.0,
        gray_s: 1.0,
        response_wait_s: 0.2,
        lead_s: 0.5,
        lockstep,
    }
}

/// One step the selector thread can take.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The trial was decided, taking this many ms, and queued.
    Decide(i64),
    /// The renderer took the queued decision when the newest frame was at this time (s).
    Taken(f64),
    /// The renderer reported trial n's onset at t (s).
    Onset(u64, f64),
    /// A frame at t (s), arriving at host time h (s), was observed.
    Frame(f64, f64),
}

/// One row: its name, lock-step or not, the steps from a fresh clock, then `trigger`'s
/// arguments (latest frame in s, idle, finished) and what it must answer.
type Row = (
    &'static str,
    bool,
    &'static [Step],
    (f64, bool, bool),
    Option<Trigger>,
);

/// The table: steps from a fresh clock, then what `trigger(latest, idle, finished)` answers.
#[test]
fn the_clock_decides_at_the_right_moments() {
    use Step::*;
    use Trigger::*;
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("the first trial at once", false, &[], (0.0, false, false), Some(First)),
        ("nothing while the decision waits in the queue", false, &[Decide(5)], (9.0, true, true), None),
        ("taken, nothing before the responses", false,
            &[Decide(5), Taken(10.0), Frame(11.0, 11.0)], (11.0, false, false), None),
        ("the responses are in", false,
            &[Decide(5), Taken(10.0), Frame(12.2, 12.21)], (12.2, false, false), Some(Responses)),
        ("the deadline without them", false,
            &[Decide(5), Taken(10.0)], (12.5, false, false), Some(Deadline)),
        ("just before the deadline", false,
            &[Decide(5), Taken(10.0)], (12.49, false, false), None),
        ("lock-step waits for the activity to go idle", true,
            &[Decide(5), Taken(10.0)], (12.5, false, false), None),
        ("lock-step, idle", true, &[Decide(5), Taken(10.0)], (12.5, true, false), Some(Deadline)),
        ("the activity ended", true, &[Decide(5), Taken(10.0)], (10.1, false, true), Some(Deadline)),
        ("a reported onset replaces the estimate", false,
            &[Decide(5), Taken(10.0), Onset(0, 10.4)], (12.5, false, false), None),
        ("... and times the deadline", false,
            &[Decide(5), Taken(10.0), Onset(0, 10.4)], (12.9, false, false), Some(Deadline)),
        ("an old onset does not", false,
            &[Decide(5), Taken(10.0), Decide(5), Taken(13.0), Onset(0, 10.0)], (12.6, false, false), None),
        ("a slow CPU decides earlier", false,
            &[Decide(600), Taken(10.0)], (12.1, false, false), Some(Deadline)),
    ];
    for (name, lockstep, steps, (latest, idle, finished), want) in rows {
        let mut c = DecisionClock::new(timing(*lockstep));
        for s in *steps {
            match *s {
                Decide(ms) => {
                    c.decided(ms * 1_000_000);
                    c.queued();
                }
                Taken(t) => c.taken(at(t)),
                Onset(n, t) => c.onset(n, at(t)),
                Frame(t, h) => c.frame(at(t), (h * 1e9) as i64),
            }
        }
        assert_eq!(c.trigger(at(*latest), *idle, *finished), *want, "{name}");
    }
}

/// The budget runs to the onset less the renderer's margin, only in real time, and the frame
/// that completed the responses is handed back when the decision is made.
#[test]
fn the_budget_ends_before_the_onset_and_the_responses_frame_is_reported() {
    let mut c = DecisionClock::new(timing(false));
    assert_eq!(
        c.budget(at(0.0)),
        None,
        "the first decision has no onset to meet"
    );
    c.decided(1_000_000);
    c.queued();
    c.taken(at(10.0));
    c.frame(at(12.3), 12 * S);
    assert_eq!(c.budget(at(12.5)), Some(Duration::from_millis(500 - 50)));
    assert_eq!(c.budget(at(20.0)), Some(Duration::ZERO), "never negative");
    assert_eq!(c.decided(1_000_000), Some(12 * S));
    assert_eq!(c.next_trial(), 2);
    let mut lock = DecisionClock::new(timing(true));
    lock.decided(1);
    lock.queued();
    lock.taken(at(10.0));
    assert_eq!(lock.budget(at(12.5)), None, "lock-step: the display waits");
}

/// The next trial is due once this one's responses are in, and at the latest the lead
/// before its onset, a lead a slow CPU widens to 1.5x its slowest recent decision.
#[test]
fn decisions_are_due_after_the_responses_and_a_slow_cpu_decides_earlier() {
    let cfg = crate::config::Config::default_sim();
    let timing = DecisionTiming::new(&cfg.trials, cfg.lockstep());
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
