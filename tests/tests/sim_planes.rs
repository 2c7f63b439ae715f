//! A whole adaptive session over a two-plane volume scan of the simulated rig: the rig sends
//! frame k as plane k % 2 (each plane numbered on its own, `aux` = k), the imaging pipeline
//! calibrates and processes each plane, the designer takes both planes' cells as units (its
//! predictions cover both planes' frames), and a replay reproduces every decision.
//!
//! Small and short: 256x256 px, 150 neurons per plane, 120 calibration frames per plane (8 s
//! of the 30 Hz scan), 30 s of rig time, not in real time. Measured (2-core machine): 145 and
//! 167 cells detected, 26 decisions (6-7 adaptive) all reproduced, 210-270 frames predicted
//! per plane after the warm-up (how many frames the calibration hold skips varies with thread
//! timing); about 11 s for the test.

use std::collections::BTreeMap;
use twinloop_e2e::{assert_replays_every_decision, fast_sim_config, logged_decisions, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::Extraction;
use twinloop_rig::offline::replay::{Overrides, counterfactual};
use twinloop_rig::sim::CellTruth;
use twinloop_rig::stages::decide::Decision;
use twinloop_rig::stages::decide::design::{DecisionMode, Objective};
use twinloop_rig::vocab::protocol::Stream;
use twinloop_rig::vocab::records::{self, RecordKind};

const PLANES: u8 = 2;
const DURATION_S: f64 = 30.0;

#[test]
fn a_two_plane_session_takes_both_planes_cells_as_units_and_replays_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), DURATION_S);
    cfg.imaging.planes = PLANES;
    cfg.imaging.extraction = Extraction::Pipeline;
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 150;
    cfg.imaging.pipeline.cells.calibration_frames = 120;
    cfg.imaging.pipeline.cells.min_frames = 100;
    cfg.imaging.pipeline.fluorescence.dark_offset_adu = 400.0;
    cfg.trials.stimulus_s = 0.8;
    cfg.trials.gray_s = 0.4;
    cfg.trials.response_wait_s = 0.2;
    cfg.trials.design.warmup_trials = 4;
    cfg.trials.design.test_every = 3;
    cfg.trials.design.random_share = 0.25;
    // Machine speed must not decide the outcome of this test.
    cfg.trials.design.deadline_ms = 0.0;
    cfg.trials.design.twin_refit_every = 0;
    cfg.validate().expect("a valid two-plane config");
    let live = run_session(&cfg);
    let c = &live.counters;
    let frames = (DURATION_S * cfg.imaging.frame_rate_hz).round() as u64;
    assert_eq!(live.sim.as_ref().map(|s| s.frames_sent), Some(frames));
    assert_eq!(c.frames_in, frames, "{c:?}");
    assert_eq!(c.frames_processed + c.stage_skips, c.frames_in, "{c:?}");

    let dir = SessionDir::open(&live.session_dir).unwrap();
    let (recs, _) = dir.open_log().unwrap().read_to_end().unwrap();
    // The volume scan as sent: frame k is plane k % 2 with its own numbering, aux = k.
    let two_photon: Vec<_> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Input as u16)
        .map(|r| records::decode_input(&r.payload).unwrap().header)
        .filter(|h| h.stream == Stream::TwoPhoton)
        .collect();
    assert_eq!(two_photon.len() as u64, frames);
    for h in &two_photon {
        assert_eq!(h.plane as i64, h.aux % i64::from(PLANES), "{h:?}");
        assert_eq!(h.seq as i64, h.aux / i64::from(PLANES), "{h:?}");
    }

    // Each plane was calibrated on its own cells and every frame of both got activity.
    let mut activity: BTreeMap<u8, (u64, usize)> = BTreeMap::new();
    for r in recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
    {
        let a = records::decode_activity(&r.payload).unwrap();
        let e = activity.entry(a.plane).or_default();
        e.0 += 1;
        e.1 = a.values.len();
    }
    let per_plane = frames / u64::from(PLANES);
    let cells_records: Vec<serde_json::Value> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Cells as u16)
        .map(|r| records::decode_json("cells", &r.payload).unwrap())
        .collect();
    assert_eq!(
        activity.values().map(|(n, _)| n).sum::<u64>(),
        c.frames_processed,
        "every processed frame's activity is logged, in its own plane"
    );
    for plane in 0..PLANES {
        let (n, cells) = activity.get(&plane).copied().unwrap_or_default();
        eprintln!("plane {plane}: {n} frames with activity of {cells} cells");
        // Frames held while calibrating may overflow the hold (counted as stage skips).
        assert!(n * 2 >= per_plane, "plane {plane}: {n} of {per_plane}");
        assert!(cells > 50, "plane {plane}: {cells} cells detected of 150");
        assert!(
            cells_records.iter().any(|v| v["plane"] == u64::from(plane)
                && v["rows"].as_array().map(Vec::len) == Some(cells)),
            "plane {plane}'s cells were given to the selector"
        );
        // Each plane's truth, for scoring it later.
        let truth = dir.truth_dir();
        let truth = match plane {
            0 => truth,
            p => truth.join(format!("plane{p}")),
        };
        let cells_json: Vec<CellTruth> =
            serde_json::from_slice(&std::fs::read(truth.join("cells.json")).unwrap()).unwrap();
        let spikes =
            npyz::NpyFile::new(std::fs::File::open(truth.join("spikes.npy")).unwrap()).unwrap();
        assert_eq!(
            spikes.shape(),
            &[cells_json.len() as u64, per_plane],
            "plane {plane}'s truth covers its own cells and frames"
        );
    }

    let decisions: Vec<Decision> = logged_decisions(&recs);
    let adaptive = decisions
        .iter()
        .filter(|d| d.mode == DecisionMode::Adaptive)
        .count();
    eprintln!(
        "{} decisions, {adaptive} adaptive, wall {:.1} s",
        decisions.len(),
        live.wall_s
    );
    assert!(adaptive >= 3, "{decisions:#?}");
    for d in decisions
        .iter()
        .filter(|d| d.mode == DecisionMode::Adaptive)
    {
        let score = d.score.expect("an adaptive decision logs its score");
        assert!(score.is_finite() && score > 0.0, "{d:?}");
    }

    assert_replays_every_decision(&live.session_dir, decisions.len());

    // The live twin predicted both planes' cells, frame by frame, after the warm-up.
    let r = counterfactual(
        &live.session_dir,
        &Overrides {
            objective: Some(Objective::Random),
            ..Overrides::default()
        },
    )
    .unwrap();
    let cf = r.counterfactual.as_ref().expect("a counterfactual report");
    eprintln!(
        "predictions per plane: {:?}",
        cf.prediction_frames_per_plane
    );
    for plane in 0..PLANES {
        let n = cf
            .prediction_frames_per_plane
            .get(&plane)
            .copied()
            .unwrap_or(0);
        assert!(n >= 20, "plane {plane}: {n} frames predicted");
    }
}
