//! Behaviour per imaging frame, measured by the daemon from the simulated eye camera and
//! treadmill, against the simulator's ground truth.

use twinloop_e2e::{fast_sim_config, pearson, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::stages::behaviour::BehaviourRecord;
use twinloop_rig::vocab::records::RecordKind;

#[test]
fn pupil_and_running_follow_the_simulated_mouse() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 30.0);
    // A restless mouse, so that 30 s hold several runs and stops.
    cfg.sim.behaviour.run_start_rate_hz = 0.3;
    cfg.sim.behaviour.run_stop_rate_hz = 0.3;
    let s = run_session(&cfg);
    let (recs, _) = SessionDir::open(&s.session_dir)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap();
    let measured: Vec<BehaviourRecord> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Behaviour as u16)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(
        measured.len() as u64,
        s.counters.frames_in,
        "one behaviour record per imaging frame"
    );
    let truth =
        npyz::NpyFile::new(std::fs::File::open(s.session_dir.join("truth/behaviour.npy")).unwrap())
            .unwrap();
    let truth: Vec<f32> = truth.into_vec().unwrap();
    // Truth columns per frame: gaze azimuth (deg), gaze elevation (deg), pupil radius (px), running (cm/s).
    let col = |c: usize| -> Vec<f64> { truth.chunks_exact(4).map(|r| r[c] as f64).collect() };
    // Frames where the pupil was measured (blinks are held or interpolated and flagged).
    let good: Vec<usize> = (0..measured.len())
        .filter(|&i| measured[i].pupil == twinloop_calibration::body::Fill::Measured)
        .collect();
    assert!(
        good.len() * 10 >= measured.len() * 8,
        "{} of {} frames measured",
        good.len(),
        measured.len()
    );
    let pick = |v: Vec<f64>| -> Vec<f64> { good.iter().map(|&i| v[i]).collect() };
    let px: Vec<f64> = good
        .iter()
        .map(|&i| measured[i].pupil_x_px.unwrap())
        .collect();
    let radius: Vec<f64> = good
        .iter()
        .map(|&i| measured[i].pupil_radius_px.unwrap())
        .collect();
    let r_gaze = pearson(&px, &pick(col(0)));
    let r_radius = pearson(&radius, &pick(col(2)));
    let with_speed: Vec<usize> = (0..measured.len())
        .filter(|&i| measured[i].treadmill_cm_s.is_some())
        .collect();
    assert!(
        with_speed.len() + 10 >= measured.len(),
        "speed missing only at the very start"
    );
    let speed: Vec<f64> = with_speed
        .iter()
        .map(|&i| measured[i].treadmill_cm_s.unwrap())
        .collect();
    let true_speed: Vec<f64> = with_speed.iter().map(|&i| col(3)[i]).collect();
    let r_speed = pearson(&speed, &true_speed);
    let mae = speed
        .iter()
        .zip(&true_speed)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / speed.len() as f64;
    let peak = true_speed.iter().cloned().fold(0.0, f64::max);
    eprintln!("running: peak true {peak:.1} cm/s, mean |error| {mae:.2} cm/s");
    eprintln!(
        "pupil x vs gaze azimuth r = {r_gaze:.3}; radius r = {r_radius:.3}; running r = {r_speed:.3}"
    );
    assert!(
        r_gaze.abs() > 0.9,
        "pupil centre tracks gaze: r = {r_gaze:.3}"
    );
    assert!(
        r_radius > 0.9,
        "pupil radius tracks truth: r = {r_radius:.3}"
    );
    assert!(peak > 5.0, "the simulated mouse ran (peak {peak:.1} cm/s)");
    assert!(
        r_speed > 0.9,
        "treadmill speed tracks truth: r = {r_speed:.3}"
    );
}
