//! A simulated session shown in the stimulus window (`display.backend = "window"`, windowed)
//! under a virtual X server on lavapipe: flips, onsets and the selector's onsets recorded as
//! with the simulated monitor. Starts its own Xvfb when `DISPLAY` is unset; without Xvfb or an
//! adapter it says SKIPPED and why, or fails under `TWINLOOP_REQUIRE_GPU_TESTS=1`.
//!
//! One session in this file: winit allows one event loop per process. Xvfb has no vsync, so
//! the loop falls back to timer pacing (reported, not asserted).

use twinloop_e2e::skip::skip_or_fail;
use twinloop_e2e::{check_live_session, live_display_config, run_session};
use twinloop_rig::config::DisplayBackend;
use twinloop_stimulus::window::xvfb::Xvfb;

#[test]
fn a_session_in_the_stimulus_window_records_flips_and_onsets() {
    let _xvfb = if std::env::var_os("DISPLAY").is_none() {
        match Xvfb::start(113, 640, 480) {
            Ok(x) => {
                // SAFETY: the only test in this binary, before the session starts any thread.
                unsafe { std::env::set_var("DISPLAY", &x.display) };
                Some(x)
            }
            Err(e) => {
                skip_or_fail(
                    "a_session_in_the_stimulus_window_records_flips_and_onsets",
                    "TWINLOOP_REQUIRE_GPU_TESTS",
                    &format!("no X server for the window: {e}"),
                    "apt-get install xvfb",
                );
                return;
            }
        }
    } else {
        None
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = live_display_config(tmp.path(), 6.0, DisplayBackend::Window);
    let s = run_session(&cfg);
    let r = &s.renderer;
    if r.backend != "window" {
        let why = r.fallback.clone().unwrap_or_default();
        skip_or_fail(
            "a_session_in_the_stimulus_window_records_flips_and_onsets (the window half; the \
             fallback was checked instead)",
            "TWINLOOP_REQUIRE_GPU_TESTS",
            &format!("the window did not open: {why}"),
            "apt-get install mesa-vulkan-drivers libvulkan1",
        );
    }
    check_live_session(&s, &cfg);
    eprintln!(
        "window ({}): {} flips, intervals mean {:.2} ms sd {:.2} p99 {:.2}; timer-paced {} \
         (Xvfb has no vsync)",
        r.device.as_deref().unwrap_or("-"),
        r.flips,
        r.flip_intervals.mean_ms,
        r.flip_intervals.sd_ms,
        r.flip_intervals.p99_ms,
        r.timer_paced
    );
}
