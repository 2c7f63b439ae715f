//! The imaging pipeline inside the daemon: after its calibration phase every frame of a
//! simulated session becomes per-cell activity, and the detected cells' dF/F-driven spike
//! estimates follow the simulator's true spikes.

use twinloop_e2e::{fast_sim_config, run_session};
use twinloop_rig::config::Extraction;
use twinloop_rig::sinks::records::{self, RecordKind};
use twinloop_rig::sinks::session_log::SessionDir;

#[test]
fn every_frame_gets_activity_from_detected_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 12.0);
    cfg.imaging.extraction = Extraction::Pipeline;
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 250;
    cfg.imaging.pipeline.cells.calibration_frames = 150;
    cfg.imaging.pipeline.cells.min_frames = 100;
    cfg.imaging.pipeline.fluorescence.dark_offset_adu = 400.0;
    let s = run_session(&cfg);
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
    let (recs, _) = SessionDir::open(&s.session_dir)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap();
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
    // The calibration is saved for later sessions.
    let cal = s.session_dir.join("calibration/plane0");
    assert!(cal.join("cells.json").exists() && cal.join("reference.npy").exists());
}
