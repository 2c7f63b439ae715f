//! Behaviour for the twin (`[source.twin] behaviour = "<session dir>"`): a twin session replays
//! the running and pupil a recorded session logged, and a directory that is no recording, or
//! one shorter than the session, is refused naming the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twinloop_e2e::{fast_sim_config, read_npy_f32, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::{Config, SourceKind};
use twinloop_rig::sim::twin_source::TwinNoise;
use twinloop_rig::sim::{TwinMode, TwinSourceConfig};
use twinloop_rig::stages::behaviour::BehaviourRecord;
use twinloop_rig::vocab::records::{self, RecordKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

/// A fast twin session of the parity twin (25 units) replaying `behaviour`, from a mouse seed
/// other than the recording's, so the behaviour model would not give the recorded values.
fn twin_config(out: &Path, duration_s: f64, behaviour: Option<PathBuf>) -> Config {
    let mut cfg = fast_sim_config(out, duration_s);
    cfg.source.kind = SourceKind::Twin;
    cfg.source.twin = Some(TwinSourceConfig {
        weights: fixture("parity_weights.safetensors"),
        config: fixture("parity_config.json"),
        noise: TwinNoise::Poisson,
        mode: TwinMode::Fast,
        behaviour,
        seed: 3,
        standardisation: None,
    });
    cfg.sim.neurons = 25;
    cfg.sim.seed = 99;
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg
}

#[test]
fn the_twin_sees_the_recorded_running_and_pupil() {
    let tmp = tempfile::tempdir().unwrap();
    // The recording: a simulated session, its pupil measured from eye-camera images and its
    // running from the treadmill encoder by the behaviour stage.
    let recorded = run_session(&fast_sim_config(&tmp.path().join("a"), 5.0));
    let dir = SessionDir::open(&recorded.session_dir).unwrap();
    let (recs, _) = dir.open_log().unwrap().read_to_end().unwrap();
    let logged: BTreeMap<u64, BehaviourRecord> = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Behaviour as u16)
        .map(|r| records::decode_json::<BehaviourRecord>("behaviour", &r.payload).unwrap())
        .map(|r| (r.frame_seq, r))
        .collect();
    assert!(logged.len() > 100, "{} frames with behaviour", logged.len());

    let cfg = twin_config(
        &tmp.path().join("b"),
        4.0,
        Some(recorded.session_dir.clone()),
    );
    cfg.validate().expect("a twin replaying a recording");
    let s = run_session(&cfg);
    // The truth's behaviour is what the twin was given at each frame: gaze, pupil radius (px),
    // running (cm/s).
    let behaviour = read_npy_f32(&s.session_dir.join("truth/behaviour.npy"));
    let frames = behaviour.len() / 4;
    assert_eq!(frames as u64, s.counters.frames_in);
    let t0 = logged.values().next().unwrap().t_ns;
    let frame_ns = 1e9 / cfg.imaging.frame_rate_hz;
    let mut compared = 0;
    for k in 0..frames {
        let Some(r) = logged.get(&(k as u64)) else {
            continue;
        };
        // The recording's frame k sits at frame k of the twin's session (within the recorded
        // clock's error, microseconds: far below a change of behaviour).
        assert!(((r.t_ns - t0) as f64 - k as f64 * frame_ns).abs() < 1e6);
        let (Some(pupil), Some(run)) = (r.pupil_radius_px, r.treadmill_cm_s) else {
            continue;
        };
        let (got_pupil, got_run) = (
            f64::from(behaviour[4 * k + 2]),
            f64::from(behaviour[4 * k + 3]),
        );
        assert!(
            (got_pupil - pupil).abs() < 1e-3 * pupil.abs().max(1.0),
            "frame {k}: the twin saw pupil {got_pupil} px, the recording has {pupil}"
        );
        assert!(
            (got_run - run).abs() < 1e-3 * run.abs().max(1.0),
            "frame {k}: the twin saw running {got_run} cm/s, the recording has {run}"
        );
        compared += 1;
    }
    assert!(
        compared > frames / 2,
        "{compared} of {frames} frames compared"
    );
    // The recording moves: a held constant would pass the comparison trivially.
    let pupils: Vec<f32> = (0..frames).map(|k| behaviour[4 * k + 2]).collect();
    let (lo, hi) = pupils
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi > lo, "the pupil changes over the session");
}

#[test]
fn a_behaviour_that_is_no_recording_or_too_short_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let e = twin_config(tmp.path(), 2.0, Some(tmp.path().join("nowhere")))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source.twin.behaviour") && e.contains("nowhere"),
        "{e}"
    );

    let recorded = run_session(&fast_sim_config(&tmp.path().join("a"), 2.0));
    let e = twin_config(&tmp.path().join("b"), 30.0, Some(recorded.session_dir))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source.twin.behaviour") && e.contains("session.duration_s"),
        "{e}"
    );
}
