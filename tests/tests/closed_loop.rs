//! The closed loop in the daemon: the adaptive selector fits the twin's readouts as activity
//! arrives, its decisions follow the design's rules and carry their scores, and a replay of the
//! log reproduces every decision exactly.

use twinloop_e2e::{assert_replays_every_decision, fast_sim_config, logged_decisions, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::offline::replay::{Overrides, counterfactual};
use twinloop_rig::stages::decide::Decision;
use twinloop_rig::stages::decide::design::{DecisionMode, Objective};
use twinloop_rig::stages::decide::selector::DECIDED_BEFORE_RESPONSES_NOTE;
use twinloop_rig::vocab::records::{self, RecordKind};

#[test]
fn an_adaptive_session_decides_by_the_rules_and_replays_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough for every test stimulus to be repeated twice (held-out accuracy needs it).
    let mut cfg = fast_sim_config(tmp.path(), 56.0);
    cfg.trials.stimulus_s = 0.8;
    cfg.trials.gray_s = 0.4;
    // Responses in 0.2 s after each stimulus: well before the next onset, which the lock-step
    // display holds until the decision is queued (the simulator makes no frames past it).
    cfg.trials.response_wait_s = 0.2;
    cfg.trials.design.warmup_trials = 4;
    cfg.trials.design.test_every = 3;
    cfg.trials.design.random_share = 0.25;
    // Machine speed must not decide the outcome of this test.
    cfg.trials.design.deadline_ms = 0.0;
    // Its ~46 trials would launch one twin refit at trial 40 that the session never takes, a fit
    // competing with the fast-forwarded session for the CPU (the refit has its own tests).
    cfg.trials.design.twin_refit_every = 0;
    let live = run_session(&cfg);
    assert!(live.counters.decisions >= 15, "{:?}", live.counters);

    let dir = SessionDir::open(&live.session_dir).unwrap();
    let (recs, _) = dir.open_log().unwrap().read_to_end().unwrap();
    let decisions: Vec<Decision> = logged_decisions(&recs);
    for d in &decisions {
        assert_eq!(d.policy, "info_gain");
        let test_slot = d.trial % 3 == 2;
        assert_eq!(d.mode == DecisionMode::Test, test_slot, "{d:?}");
        assert_eq!(d.name.starts_with("test "), test_slot, "{d:?}");
        if d.trial < 4 && !test_slot {
            assert_eq!(d.mode, DecisionMode::Warmup);
        }
    }
    let adaptive: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.mode == DecisionMode::Adaptive)
        .collect();
    assert!(adaptive.len() >= 3, "{decisions:#?}");
    for d in &adaptive {
        let score = d.score.expect("an adaptive decision logs its score");
        assert!(score.is_finite() && score > 0.0, "{d:?}");
        assert_eq!(
            d.alternatives.first().map(|a| a.stimulus_id()),
            Some(d.stimulus.0)
        );
        assert!(d.alternatives.len() >= 2);
    }
    // Held-out accuracy on the repeated test block, once each test stimulus was seen twice.
    let accuracy: Vec<f64> = decisions
        .iter()
        .filter_map(|d| d.accuracy.map(|a| a.cc_norm))
        .collect();
    assert!(
        !accuracy.is_empty() && accuracy.iter().all(|c| c.is_finite()),
        "no held-out accuracy logged: {:?}",
        decisions.last()
    );
    // Just in time: each trial is decided after the one before it came on screen, and, unless
    // counted as decided before them, after that trial's responses (its stimulus and
    // `response_wait_s` after it) had been observed.
    let onsets: std::collections::BTreeMap<u64, i64> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Stimulus as u16)
        .map(|r| {
            let v: serde_json::Value = records::decode_json("stimulus", &r.payload).unwrap();
            (
                v["trial"].as_u64().unwrap(),
                v["onset_t_ns"].as_i64().unwrap(),
            )
        })
        .collect();
    let wait_ns = ((cfg.trials.stimulus_s + cfg.trials.response_wait_s) * 1e9) as i64;
    let mut saw_whole = 0;
    for d in decisions.iter().skip(1) {
        assert!(d.onsets_seen >= d.trial, "{d:?}");
        let before = onsets[&(d.trial - 1)];
        saw_whole += u64::from(d.after_frame_t_ns >= before + wait_ns);
    }
    let early = live.counters.decisions_before_responses;
    let noted = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Note as u16)
        .filter(|r| {
            let v: serde_json::Value = records::decode_json("note", &r.payload).unwrap();
            v["event"] == DECIDED_BEFORE_RESPONSES_NOTE
        })
        .count() as u64;
    assert_eq!(noted, early, "each early decision is noted in the log");
    assert_eq!(
        saw_whole + early,
        decisions.len() as u64 - 1,
        "every decision but the first saw the trial before it whole, or is counted as early"
    );
    // Lock-step, the display waits for the twin: only a stall of the whole pipeline (a loaded
    // machine) decides early.
    assert!(
        early * 5 <= decisions.len() as u64,
        "{early} early decisions"
    );
    assert_eq!(live.counters.underruns, 0);
    let waited = live
        .latency("selector: trial's responses to next decision")
        .unwrap();
    assert_eq!(waited.count, saw_whole, "{waited:?}");

    assert_replays_every_decision(&live.session_dir, decisions.len());

    // Counterfactual: the same session under the design's random baseline. Same activity and
    // onsets, so the test slots and warm-up agree with live; the adaptive slots become random.
    let r = counterfactual(
        &live.session_dir,
        &Overrides {
            objective: Some(Objective::Random),
            ..Overrides::default()
        },
    )
    .unwrap();
    let c = r.counterfactual.as_ref().expect("a counterfactual report");
    assert_eq!(c.policy, "random_design");
    assert_eq!(c.decisions, decisions.len() as u64);
    assert_eq!(c.modes.get("adaptive"), None, "{c:?}");
    let live_tests = decisions
        .iter()
        .filter(|d| d.mode == DecisionMode::Test)
        .count() as u64;
    assert_eq!(c.modes.get("test").copied(), Some(live_tests));
    assert!(
        c.same_stimulus >= live_tests,
        "test slots show the same stimuli"
    );
    assert!(r.reproduced(), "a counterfactual reproduces the activity");
}
