//! `replay` re-runs a recorded session through the same stage and reproduces it exactly.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::replay::replay;

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
