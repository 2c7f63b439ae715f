//! `replay` re-runs a recorded session through the same stage and reproduces it exactly.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::offline::replay::{Overrides, TwinOverride, counterfactual, replay};

#[test]
fn replay_reproduces_activity_and_decisions_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 6.0);
    cfg.session.record_frames = true;
    let live = run_session(&cfg);
    let r = replay(&live.session_dir).unwrap();
    assert_eq!(r.log_tail, "clean");
    assert_eq!(r.frames_replayed, live.counters.frames_in);
    assert_eq!(r.activity_compared, live.counters.frames_processed);
    assert_eq!(
        r.activity_mismatches, 0,
        "max diff {}",
        r.activity_max_abs_diff
    );
    assert_eq!(r.decisions_logged, live.counters.decisions);
    assert!(r.decisions_logged >= 2);
    assert_eq!(
        r.decisions_reproduced, r.decisions_logged,
        "{:?}",
        r.first_decision_mismatch
    );
    assert!(r.reproduced());
}

#[test]
fn replay_of_something_that_is_not_a_session_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let e = replay(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("not a twinloop session"), "{e}");
}

fn model_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

/// `replay --twin`: a short adaptive session replayed with an fnn core (the reduced network of
/// fnn's PyTorch code, random weights) in place of the energy bank. The live selector is
/// replayed alongside and still reproduces every decision; the report counts the alternative's
/// decisions and gives both twins' prediction accuracy and their agreement.
#[test]
fn replay_with_an_fnn_core_reports_decisions_and_both_twins_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 14.0);
    cfg.trials.stimulus_s = 0.5;
    cfg.trials.gray_s = 0.4;
    cfg.trials.design.warmup_trials = 3;
    cfg.trials.design.test_every = 4;
    cfg.trials.design.deadline_ms = 0.0;
    // The replayed fnn core keeps the session's grid and pre-roll; a short pre-roll keeps the
    // pool (every stimulus through the core on the CPU) quick to build.
    cfg.twin.preroll_frames = 2;
    let live = run_session(&cfg);
    assert!(live.counters.decisions >= 8, "{:?}", live.counters);

    let twin = TwinOverride {
        weights: model_fixture("parity_weights.safetensors"),
        config: Some(model_fixture("parity_config.json")),
    };
    let r = counterfactual(
        &live.session_dir,
        &Overrides {
            twin: Some(twin),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        r.decisions_reproduced, r.decisions_logged,
        "the live twin, replayed alongside: {:?}",
        r.first_decision_mismatch
    );
    let c = r.counterfactual.as_ref().expect("a counterfactual report");
    eprintln!("{c:?}");
    assert_eq!(c.decisions, live.counters.decisions);
    assert_eq!(c.policy, "info_gain");
    assert!(
        c.twin
            .as_deref()
            .unwrap()
            .ends_with("parity_weights.safetensors")
    );
    // The same test block and warm-up as live (those slots do not depend on the core).
    assert!(c.modes.get("test").copied().unwrap_or(0) >= 2, "{c:?}");
    assert!(c.prediction_frames > 30, "{c:?}");
    for (name, v) in [
        ("live", c.live_prediction_cc),
        ("fnn", c.prediction_cc),
        ("between", c.twins_prediction_cc),
    ] {
        let v = v.unwrap_or_else(|| panic!("no {name} prediction correlation: {c:?}"));
        assert!(v.is_finite() && (-1.0..=1.0).contains(&v), "{name}: {v}");
    }
    let json = serde_json::to_value(&r).unwrap();
    for k in [
        "live_prediction_cc",
        "prediction_cc",
        "twins_prediction_cc",
        "prediction_frames",
    ] {
        assert!(json["counterfactual"][k].is_number(), "{k}: {json}");
    }

    // A weights file that is not there is named, with the fix.
    let e = counterfactual(
        &live.session_dir,
        &Overrides {
            twin: Some(TwinOverride {
                weights: tmp.path().join("missing.safetensors"),
                config: None,
            }),
            ..Overrides::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("twin.weights") && e.contains("missing.safetensors") && e.contains("fix"),
        "{e}"
    );
}
