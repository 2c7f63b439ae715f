//! End-to-end test helpers shared by the tests in this crate.

pub mod alloc_count;
pub mod python;
pub mod skip;

use std::path::{Path, PathBuf};
use twinloop_rig::config::{Config, DisplayBackend, Extraction};
use twinloop_rig::online::session::{self, Hooks, SessionSummary};

/// The embedded default, shortened and sped up for a test, writing under `out_dir`.
pub fn fast_sim_config(out_dir: &Path, duration_s: f64) -> Config {
    let mut cfg = Config::default_sim();
    cfg.session.duration_s = duration_s;
    cfg.session.realtime = false;
    cfg.session.progress = false;
    cfg.session.out_dir = out_dir.to_path_buf();
    cfg.source.idle_timeout_s = 5.0;
    // The loop's mechanics are tested on the placeholder extraction (every frame gets activity
    // from the first, no calibration phase); the pipeline has its own tests.
    cfg.imaging.extraction = twinloop_rig::config::Extraction::TruthFootprints;
    // Tests run sessions side by side; the dashboard has its own tests.
    cfg.dashboard.enabled = false;
    // The final twin refit costs minutes of CPU after every closed loop on the pretrained core;
    // `live_twin.rs` and `rig/tests/final_refit.rs` turn it on.
    cfg.twin.final_refit_steps = 0;
    cfg
}

/// An empty directory at `path`, whatever the last run left there. For a session shared by a
/// test binary's tests through a static: statics are never dropped, so a `TempDir` there would
/// leave its session on disk after every run.
pub fn fresh_dir(path: PathBuf) -> PathBuf {
    match std::fs::remove_dir_all(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("clearing the last run's files at {}: {e}", path.display()),
    }
    std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    path
}

/// The decisions a session logged, in order.
pub fn logged_decisions(
    recs: &[twinloop_rig::backbone::session_log::Record],
) -> Vec<twinloop_rig::stages::decide::Decision> {
    use twinloop_rig::vocab::records::{self, RecordKind};
    recs.iter()
        .filter(|r| r.info.kind == RecordKind::Decision as u16)
        .map(|r| records::decode_json("decision", &r.payload).expect("a logged decision"))
        .collect()
}

/// Replays a session and asserts that its `logged` decisions are all reproduced.
pub fn assert_replays_every_decision(session_dir: &Path, logged: usize) {
    let r = twinloop_rig::offline::replay::replay(session_dir).expect("the session replays");
    assert_eq!(r.decisions_logged, logged as u64);
    assert_eq!(
        r.decisions_reproduced, r.decisions_logged,
        "{:?}",
        r.first_decision_mismatch
    );
}

/// Replays a session and asserts that its `frames` frames' activity and every decision are
/// reproduced exactly; the report is returned for further checks.
pub fn assert_replays_exactly(
    session_dir: &Path,
    frames: u64,
) -> twinloop_rig::offline::replay::ReplayReport {
    let r = twinloop_rig::offline::replay::replay(session_dir).expect("the session replays");
    assert_eq!(r.frames_replayed, frames);
    assert_eq!(
        r.activity_mismatches, 0,
        "max diff {}",
        r.activity_max_abs_diff
    );
    assert!(r.reproduced(), "{:?}", r.first_decision_mismatch);
    r
}

/// Reads an f32 `.npy` written by a session (`twinloop_model::cli::read_npy_f32`, data only).
pub fn read_npy_f32(path: &Path) -> Vec<f32> {
    twinloop_model::cli::read_npy_f32(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .1
}

/// Run a session to its end.
pub fn run_session(cfg: &Config) -> SessionSummary {
    session::run(cfg, vec!["e2e-test".into()], Hooks::default()).expect("session runs")
}

/// Pearson correlation of two equally long series (`model::metrics::pearson`), 0 where a series
/// is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    twinloop_model::metrics::pearson(a, b).unwrap_or(0.0)
}

/// A short simulated session shown on a live display (`backend`) with a small monitor, so
/// lavapipe keeps up: the simulated mouse follows the display's flips in real time.
pub fn live_display_config(
    out_dir: &Path,
    duration_s: f64,
    backend: twinloop_rig::config::DisplayBackend,
) -> Config {
    let mut cfg = fast_sim_config(out_dir, duration_s);
    cfg.display.backend = backend;
    cfg.display.monitor.width_px = 320;
    cfg.display.monitor.height_px = 180;
    cfg.display.window.fullscreen = false;
    cfg.display.photodiode.size_px = 16;
    cfg.trials.stimulus_s = 1.0;
    cfg.trials.gray_s = 0.5;
    cfg
}

/// The shipped bridge config (`rig/tests/protocol_doc.rs` checks it loads with every stream on
/// the rig clock), made small and fast for a test: free ports, its own directory, no browser
/// view, no window (the simulated display), the grid extraction (16-pixel blocks) whose
/// activity a peer can check, no waiting on wall time.
pub fn bridge_test_config(out_dir: &Path, width: u32, height: u32) -> Config {
    let path = python::repo_root().join("configs/bridge.toml");
    let mut cfg = Config::load(&path).expect("configs/bridge.toml loads");
    cfg.source.ingest = "tcp://127.0.0.1:0".into();
    cfg.source.publish = "tcp://127.0.0.1:0".into();
    // Also the time the peer has to start (the timer runs before the first message); the
    // peer's `end` ends the session, not this.
    cfg.source.idle_timeout_s = 15.0;
    cfg.imaging.width = width;
    cfg.imaging.height = height;
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.grid_block_px = 16;
    cfg.session.out_dir = out_dir.to_path_buf();
    cfg.session.progress = false;
    cfg.session.realtime = false;
    cfg.dashboard.enabled = false;
    cfg.display.backend = DisplayBackend::Sim;
    cfg
}

/// A stage ring (and frame pool) that holds `frames` frames: a slow imaging stage skips none,
/// however loaded the machine.
pub fn hold_every_frame(cfg: &mut Config, frames: u64) {
    cfg.rings.stage_ring = frames as usize + 8;
    cfg.rings.frame_pool = cfg.rings.stage_ring + cfg.rings.recorder_ring + 4;
}

/// What a session on a live display must have recorded: every flip in order on the rig clock,
/// each trial's onset on an onset flip, the selector told of the onsets, and counts that agree
/// with the summary.
pub fn check_live_session(s: &SessionSummary, cfg: &Config) {
    use twinloop_rig::backbone::session_log::SessionDir;
    use twinloop_rig::vocab::records::{self, FlipRecord, RecordKind};
    let c = &s.counters;
    let r = &s.renderer;
    let frames = (cfg.session.duration_s * cfg.imaging.frame_rate_hz).round() as u64;
    assert_eq!(c.frames_in, frames, "every imaging frame arrived");
    let sim = s.sim.as_ref().expect("the simulated rig reported");
    assert_eq!(
        sim.view_timeouts, 0,
        "the mouse always had the display's flips"
    );
    assert_eq!(r.flips, c.flips);
    assert_eq!(r.trials, c.trials);
    assert_eq!(r.underruns, c.underruns);
    assert!(c.trials >= 2, "trials shown: {}", c.trials);
    // Paced at refresh_hz (vsync or timer): about one flip per period over the session.
    let per_s = c.flips as f64 / cfg.session.duration_s;
    assert!(
        per_s > 0.5 * cfg.display.refresh_hz && per_s < 1.2 * cfg.display.refresh_hz,
        "{per_s:.1} flips/s"
    );
    assert_eq!(r.flip_intervals.intervals + 1, r.flips);

    let dir = SessionDir::open(&s.session_dir).unwrap();
    let (recs, _) = dir.open_log().unwrap().read_to_end().unwrap();
    let flips: Vec<FlipRecord> = recs
        .iter()
        .filter(|x| x.info.kind == RecordKind::Flip as u16)
        .map(|x| FlipRecord::decode(&x.payload).unwrap())
        .collect();
    assert_eq!(flips.len() as u64, c.flips);
    for (i, w) in flips.windows(2).enumerate() {
        assert_eq!(w[1].display_frame, w[0].display_frame + 1, "flip {i}");
        assert!(w[1].t > w[0].t, "flip times increase (flip {i})");
    }
    let json = |k: RecordKind| -> Vec<serde_json::Value> {
        recs.iter()
            .filter(|x| x.info.kind == k as u16)
            .map(|x| records::decode_json("json", &x.payload).unwrap())
            .collect()
    };
    let onsets = json(RecordKind::Stimulus);
    assert_eq!(onsets.len() as u64, c.trials);
    for o in &onsets {
        let frame = o["display_frame"].as_u64().unwrap();
        let f = flips
            .iter()
            .find(|f| f.display_frame == frame)
            .expect("the onset's flip is logged");
        assert!(f.onset, "onset on an onset flip");
        assert_eq!(f.t.as_nanos(), o["onset_t_ns"].as_i64().unwrap());
        assert_eq!(f.trial, o["trial"].as_i64().unwrap());
    }
    // The selector heard of the onsets: its later decisions count them.
    let seen = json(RecordKind::Decision)
        .iter()
        .filter_map(|d| d["onsets_seen"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        seen >= 1 && seen <= c.trials,
        "decisions saw {seen} onsets of {}",
        c.trials
    );
}
