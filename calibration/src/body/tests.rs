//! Behaviour per imaging frame, end to end from pupil measurements and encoder counts.

use super::*;
use crate::eye::{Ellipse, Implausibility, PupilMeasurement, PupilQuality};

const MS: i64 = 1_000_000;

fn pupil(quality: PupilQuality, x: f64, y: f64, r: f64) -> PupilMeasurement {
    PupilMeasurement {
        quality,
        ellipse: Some(Ellipse {
            centre_x_px: x,
            centre_y_px: y,
            semi_major_px: r,
            semi_minor_px: 0.9 * r,
            angle_rad: 0.0,
        }),
        residual_rms_px: 0.1,
        edge_points: 100,
        inliers: 100,
        reflection_points: 0,
        edge_level: 80.0,
    }
}

/// A 60 Hz eye camera with the pupil drifting right, blinking from 500 to 650 ms, and a
/// rejected fit at 800 ms; a 1 kHz treadmill at 20 cm/s whose counter resets at 1 s.
fn streams() -> (Vec<(i64, PupilMeasurement)>, Vec<Velocity>) {
    let mut eye = Vec::new();
    for k in 0..120 {
        let t = k * 16_666_667;
        let x = 100.0 + t as f64 * 1e-8;
        let q = if (500 * MS..650 * MS).contains(&t) {
            PupilQuality::Blink
        } else if (790 * MS..810 * MS).contains(&t) {
            PupilQuality::Implausible {
                why: Implausibility::PoorFit,
            }
        } else {
            PupilQuality::Good
        };
        eye.push((t, pupil(q, x, 50.0, 12.0)));
    }
    let cfg = TreadmillConfig::default();
    let mut counts = Vec::new();
    for k in 0..2000i64 {
        let t = k * MS;
        let dist_cm = 20.0 * t as f64 * 1e-9;
        let mut c = (dist_cm / cfg.cm_per_count()).floor() as i64;
        if k >= 1000 {
            c -= (20.0 * 1.0 / cfg.cm_per_count()).floor() as i64;
        }
        counts.push((t, c));
    }
    let vel = velocity_series(&counts, &cfg).expect("valid");
    (eye, vel)
}

#[test]
fn frames_get_interpolated_values_and_honest_flags() {
    let (eye, vel) = streams();
    // A 30 Hz imaging clock offset from the camera's.
    let frames: Vec<i64> = (0..60).map(|k| 7 * MS + k * 33_333_333).collect();
    let out = align_frames(&eye, &vel, &frames, &BehaviourConfig::default()).expect("valid");
    for f in &out {
        let t = f.t_ns;
        if t > 60 * MS && t < 1_900 * MS {
            assert!(f.treadmill.has_value(), "{f:?}");
            assert!((f.treadmill_cm_s - 20.0).abs() < 0.5, "{f:?}");
        }
        if (955 * MS..1_045 * MS).contains(&t) {
            // The reset at 1 s degrades the velocities whose window spans it.
            assert_eq!(f.treadmill, Fill::Interpolated, "{f:?}");
        }
        let blink = (484 * MS..666 * MS).contains(&t);
        let bad_fit = (784 * MS..817 * MS).contains(&t);
        if blink || bad_fit {
            assert_eq!(f.pupil, Fill::Interpolated, "{f:?}");
        } else if t <= 1_983 * MS {
            assert_eq!(f.pupil, Fill::Measured, "{f:?}");
        }
        if f.pupil.has_value() {
            let x = 100.0 + t as f64 * 1e-8;
            assert!((f.pupil_x_px - x).abs() < 1e-6, "{f:?}");
            assert!((f.pupil_radius_px - 12.0).abs() < 1e-9);
        }
    }
    // Past the end of both streams: held briefly, then missing.
    let late = align_frames(
        &eye,
        &vel,
        &[1_990 * MS, 2_400 * MS],
        &BehaviourConfig::default(),
    )
    .expect("valid");
    assert_eq!(late[0].pupil, Fill::Held);
    assert_eq!(late[1].pupil, Fill::Missing);
    assert_eq!(late[1].treadmill, Fill::Missing);
    assert!(late[1].twin_inputs().iter().all(|v| v.is_nan()));
}

#[test]
fn streaming_matches_batch_where_measured_and_never_grows() {
    let (eye, vel) = streams();
    let cfg = BehaviourConfig::default();
    let frames: Vec<i64> = (0..60).map(|k| 7 * MS + k * 33_333_333).collect();
    let batch = align_frames(&eye, &vel, &frames, &cfg).expect("valid");
    let mut a = BehaviourAligner::new(cfg.clone()).expect("valid");
    let (mut ei, mut vi) = (0, 0);
    for (k, &t) in frames.iter().enumerate() {
        // Feed everything up to one camera frame past the imaging frame, as a live loop that
        // waits for the streams to catch up would.
        while ei < eye.len() && eye[ei].0 <= t + 17 * MS {
            a.push_pupil(eye[ei].0, &eye[ei].1);
            ei += 1;
        }
        while vi < vel.len() && vel[vi].t_ns <= t + 17 * MS {
            a.push_velocity(&vel[vi]);
            vi += 1;
        }
        let f = a.frame(t);
        let b = batch[k];
        // Live, the end of a blink is not known yet: a frame in it is held, then missing,
        // where the recording bridges it. Measured frames agree exactly.
        for (live, rec, lv, rv) in [
            (f.pupil, b.pupil, f.pupil_x_px, b.pupil_x_px),
            (f.treadmill, b.treadmill, f.treadmill_cm_s, b.treadmill_cm_s),
        ] {
            if rec == Fill::Measured {
                assert_eq!(live, Fill::Measured, "frame {k} at {t}");
                assert!((lv - rv).abs() < 1e-9);
            } else {
                assert_ne!(live, Fill::Measured, "frame {k} at {t}");
            }
        }
        assert_eq!(a.pupil_capacity(), cfg.history);
        assert_eq!(a.treadmill_capacity(), cfg.history);
    }
    // Out-of-order samples are dropped and counted.
    a.push_pupil(0, &eye[0].1);
    assert_eq!(a.out_of_order().0, 1);
    assert!(!a.caught_up(10_000 * MS));
    assert!(a.caught_up(frames[50]));
}

#[test]
fn bad_config_names_the_field() {
    let mut cfg = BehaviourConfig::default();
    cfg.treadmill.max_hold_ns = -1;
    let err = BehaviourAligner::new(cfg).expect_err("rejected");
    assert!(err.to_string().contains("treadmill.max_hold_ns"), "{err}");
}
