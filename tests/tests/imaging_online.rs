//! The imaging pipeline inside the daemon: after its calibration phase every frame of a
//! simulated session becomes per-cell activity, and the detected cells' dF/F-driven spike
//! estimates follow the simulator's true spikes.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::backbone::session_log::{Record, SessionDir};
use twinloop_rig::config::{Config, Extraction};
use twinloop_rig::offline::replay::replay;
use twinloop_rig::online::session::{self, Hooks};
use twinloop_rig::vocab::records::{self, RecordKind, RegistrationRecord};

fn pipeline_config(dir: &std::path::Path, duration_s: f64) -> Config {
    let mut cfg = fast_sim_config(dir, duration_s);
    cfg.imaging.extraction = Extraction::Pipeline;
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 250;
    cfg.imaging.pipeline.cells.calibration_frames = 150;
    cfg.imaging.pipeline.cells.min_frames = 100;
    cfg.imaging.pipeline.fluorescence.dark_offset_adu = 400.0;
    cfg
}

fn records_of(dir: &std::path::Path) -> Vec<Record> {
    SessionDir::open(dir)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap()
        .0
}

fn notes(recs: &[Record]) -> Vec<serde_json::Value> {
    recs.iter()
        .filter(|r| r.info.kind == RecordKind::Note as u16)
        .filter_map(|r| serde_json::from_slice(&r.payload).ok())
        .collect()
}

/// A second session names the first one's calibration: it loads those cells instead of
/// detecting, moves them onto its own reference (says how far in the log), and its replay
/// reproduces every frame's activity bit for bit.
#[test]
fn saved_cells_are_reused_and_the_session_replays_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let first = run_session(&pipeline_config(tmp.path(), 7.0));
    let mut cfg = pipeline_config(tmp.path(), 7.0);
    cfg.session.record_frames = true;
    cfg.imaging.masks = Some(first.session_dir.join("calibration"));
    let second = run_session(&cfg);
    assert_eq!(second.cells, first.cells, "the same cells, not new ones");
    let recs = records_of(&second.session_dir);
    let note = notes(&recs)
        .into_iter()
        .find(|n| n["event"] == "imaging_calibrated")
        .expect("a calibration note");
    assert_eq!(note["masks"], "saved");
    // The same simulated brain and motion: the field of view barely moved.
    let dy = note["mask_shift"]["dy_px"].as_f64().unwrap();
    let dx = note["mask_shift"]["dx_px"].as_f64().unwrap();
    assert!(dy.hypot(dx) < 1.5, "masks moved by ({dy}, {dx}) px");

    let r = replay(&second.session_dir).unwrap();
    let live = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .count() as u64;
    assert!(live > 100);
    assert_eq!(r.activity_compared, live, "every live frame recomputed");
    assert_eq!(
        r.activity_mismatches, 0,
        "max diff {}",
        r.activity_max_abs_diff
    );

    // A calibration that is not there stops the session before it starts, naming the field.
    let mut bad = pipeline_config(tmp.path(), 1.0);
    bad.imaging.masks = Some(tmp.path().join("no-such-session/calibration"));
    let e = match session::run(&bad, vec!["e2e-test".into()], Hooks::default()) {
        Ok(_) => panic!("a missing calibration is an error"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("imaging.masks") && e.contains("reference.npy"),
        "{e}"
    );
}

#[test]
fn every_frame_gets_activity_from_detected_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let s = run_session(&pipeline_config(tmp.path(), 12.0));
    let c = &s.counters;
    // Every frame is processed, unless the hold overflowed while calibrating (then counted).
    assert_eq!(c.frames_processed + c.stage_skips, c.frames_in);
    assert!(
        c.frames_processed >= c.frames_in / 2,
        "{} of {}",
        c.frames_processed,
        c.frames_in
    );
    assert!(
        s.cells > 150 && s.cells <= 300,
        "{} cells detected of 250",
        s.cells
    );
    let recs = records_of(&s.session_dir);
    let activity: Vec<_> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .map(|r| records::decode_activity(&r.payload).unwrap())
        .collect();
    assert!(activity.iter().all(|a| a.values.len() == s.cells));
    // Frames come out in order, starting with the calibration block.
    assert_eq!(activity[0].frame_seq, 0);
    assert!(activity.windows(2).all(|w| w[0].frame_seq < w[1].frame_seq));
    // Spike estimates are non-negative, and some cells fire.
    let total: f64 = activity
        .iter()
        .flat_map(|a| a.values.iter())
        .map(|&v| v as f64)
        .sum();
    assert!(
        activity
            .iter()
            .all(|a| a.values.iter().all(|&v| v >= 0.0 || v.is_nan()))
    );
    assert!(total > 0.0);
    // Every frame's registration is logged with its activity: shifts within the simulated
    // motion (4 px at most), a quality figure, the piecewise-rigid summary.
    let reg: Vec<RegistrationRecord> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Registration as u16)
        .map(|r| RegistrationRecord::decode(&r.payload).unwrap())
        .collect();
    assert_eq!(reg.len(), activity.len());
    for (r, a) in reg.iter().zip(&activity) {
        assert_eq!((r.frame_seq, r.plane), (a.frame_seq, a.plane));
        let g = &r.registration;
        assert!(g.dy_px.abs() <= 6.0 && g.dx_px.abs() <= 6.0, "{g:?}");
        assert!(g.quality > 0.0 && g.blocks > 0 && g.block_max_px >= g.block_mean_px);
    }
    assert!(reg.iter().any(|r| r.registration.dy_px.abs() > 0.5));
    // The calibration is saved for later sessions.
    let cal = s.session_dir.join("calibration/plane0");
    assert!(cal.join("cells.json").exists() && cal.join("reference.npy").exists());
}
