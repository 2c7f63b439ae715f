//! A session recorded by an earlier layout of the code (before the layered tree, commit
//! 5ea276e; `tests/fixtures/session_v1/README.md` says how it was made) still replays bit for
//! bit: the same activity from its logged pixels, the same clock fits and the same decisions.

use std::path::PathBuf;
use twinloop_rig::offline::replay::replay;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/session_v1")
}

#[test]
fn a_session_recorded_before_the_layout_replays_bit_for_bit() {
    let r = replay(&fixture()).expect("the fixture replays");
    assert_eq!(r.log_tail, "clean", "{r:?}");
    assert!(r.frames_replayed > 0, "its frames carry pixels: {r:?}");
    assert_eq!(r.frames_replayed, r.frames_logged, "{r:?}");
    assert!(r.activity_compared > 0, "{r:?}");
    assert_eq!(r.activity_mismatches, 0, "{r:?}");
    assert_eq!(r.activity_max_abs_diff, 0.0, "{r:?}");
    assert!(
        r.decisions_logged > 5,
        "adaptive decisions to reproduce: {r:?}"
    );
    assert_eq!(r.decisions_reproduced, r.decisions_logged, "{r:?}");
    assert_eq!(r.clock_updates_reproduced, r.clock_updates_logged, "{r:?}");
    assert_eq!(r.frame_time_mismatches, 0, "{r:?}");
    assert!(r.reproduced());
}
