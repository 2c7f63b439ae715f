//! A simulated session on a live display: `display.backend = "window"` asked for a monitor that
//! does not exist, so the daemon falls back (logged, in the summary) to the offscreen wgpu
//! renderer, paced by a timer, and records flips and onsets as the simulated monitor does.
//!
//! One session in this file: winit allows one event loop per process. Without an adapter the
//! daemon falls back further (view only); that passes, saying SKIPPED for the GPU half, unless
//! `TWINLOOP_REQUIRE_GPU_TESTS=1`.

use twinloop_e2e::skip::skip_or_fail;
use twinloop_e2e::{check_live_session, live_display_config, run_session};
use twinloop_rig::config::DisplayBackend;
use twinloop_stimulus::window::MonitorChoice;

#[test]
fn a_missing_window_falls_back_to_offscreen_and_the_session_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = live_display_config(tmp.path(), 6.0, DisplayBackend::Window);
    cfg.display.window.monitor = Some(MonitorChoice::Name("no-such-monitor-twinloop".into()));
    let s = run_session(&cfg);
    let r = &s.renderer;
    let why = r.fallback.as_deref().expect("the fallback is reported");
    assert!(why.starts_with("window:"), "{why}");
    if r.backend == "none" {
        skip_or_fail(
            "the offscreen renderer (the view-only fallback was checked instead)",
            "TWINLOOP_REQUIRE_GPU_TESTS",
            &format!("no GPU renderer started: {why}"),
            "apt-get install mesa-vulkan-drivers libvulkan1",
        );
    } else {
        assert_eq!(r.backend, "offscreen");
    }
    assert!(r.timer_paced);
    check_live_session(&s, &cfg);
    eprintln!(
        "offscreen: {} flips, intervals mean {:.2} ms sd {:.2} p99 {:.2}; {} dropped",
        r.flips,
        r.flip_intervals.mean_ms,
        r.flip_intervals.sd_ms,
        r.flip_intervals.p99_ms,
        r.dropped_frames
    );
}
