//! The closed loop in the daemon: the adaptive selector fits the twin's readouts as activity
//! arrives, its decisions follow the design's rules and carry their scores, and a replay of the
//! log reproduces every decision exactly.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::replay::{Overrides, replay, replay_with};
use twinloop_rig::scheduler::Decision;
use twinloop_rig::scheduler::design::{DecisionMode, Objective};
use twinloop_rig::sinks::records::{self, RecordKind};
use twinloop_rig::sinks::session_log::SessionDir;

#[test]
fn an_adaptive_session_decides_by_the_rules_and_replays_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // Long enough for every test stimulus to be repeated twice (held-out accuracy needs it).
    let mut cfg = fast_sim_config(tmp.path(), 56.0);
    cfg.trials.stimulus_s = 0.8;
    cfg.trials.gray_s = 0.4;
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
    let decisions: Vec<Decision> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Decision as u16)
        .map(|r| records::decode_json("decision", &r.payload).unwrap())
        .collect();
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
    // The selector saw onsets before deciding (the twin knew what it had shown).
    assert!(decisions.last().unwrap().onsets_seen >= decisions.len() as u64 - 2);

    let r = replay(&live.session_dir).unwrap();
    assert_eq!(r.decisions_logged, decisions.len() as u64);
    assert_eq!(
        r.decisions_reproduced, r.decisions_logged,
        "{:?}",
        r.first_decision_mismatch
    );

    // Counterfactual: the same session under the design's random baseline. Same activity and
    // onsets, so the test slots and warm-up agree with live; the adaptive slots become random.
    let r = replay_with(
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
