//! The tracker on synthetic frames: accuracy, the corneal reflection, occlusion, blinks and bad
//! input.

use super::render::{Scene, ellipse, render};
use crate::eye::{Implausibility, PupilConfig, PupilError, PupilQuality, PupilTracker};

fn tracker() -> PupilTracker {
    PupilTracker::new(320, 240, PupilConfig::default()).expect("valid")
}

#[test]
fn recovers_circles_and_ellipses_subpixel() {
    let mut t = tracker();
    let cases = [
        ellipse(160.3, 120.6, 15.0, 15.0, 0.0),
        ellipse(100.75, 90.2, 25.0, 18.0, 0.4),
        ellipse(220.1, 150.9, 8.0, 6.5, -1.0),
        ellipse(170.0, 110.0, 40.0, 30.0, 1.3),
        ellipse(60.5, 60.5, 5.0, 4.5, 0.0),
    ];
    for (i, truth) in cases.iter().enumerate() {
        let mut scene = Scene::new(*truth);
        scene.seed = 10 + i as u64;
        let m = t.track(&render(&scene)).expect("size");
        assert_eq!(m.quality, PupilQuality::Good, "case {i}: {m:?}");
        let e = m.ellipse.expect("ellipse");
        let d = (e.centre_x_px - truth.centre_x_px).hypot(e.centre_y_px - truth.centre_y_px);
        assert!(d < 0.15, "case {i}: centre off by {d}: {e:?}");
        let r = m.radius_px().expect("good") / truth.semi_major_px - 1.0;
        assert!(r.abs() < 0.03, "case {i}: radius off by {r}: {e:?}");
        assert!(m.residual_rms_px < 0.5, "case {i}: {m:?}");
    }
}

#[test]
fn reflection_on_the_edge_is_masked() {
    let mut t = tracker();
    let truth = ellipse(150.0, 120.0, 20.0, 20.0, 0.0);
    for (i, ang) in [0.3f64, 1.9, 4.0].iter().enumerate() {
        let mut scene = Scene::new(truth);
        scene.seed = 30 + i as u64;
        scene.reflection = Some(([150.0 + 21.0 * ang.cos(), 120.0 + 21.0 * ang.sin()], 4.0));
        let m = t.track(&render(&scene)).expect("size");
        assert_eq!(m.quality, PupilQuality::Good, "{m:?}");
        assert!(m.reflection_points > 0, "{m:?}");
        let e = m.ellipse.expect("ellipse");
        let d = (e.centre_x_px - 150.0).hypot(e.centre_y_px - 120.0);
        assert!(d < 0.2, "reflection at {ang}: centre off by {d}");
        // A reflection inside the pupil is a hole, not an edge.
        let mut scene = Scene::new(truth);
        scene.reflection = Some(([150.0 + 8.0 * ang.cos(), 120.0 + 8.0 * ang.sin()], 3.0));
        let m = t.track(&render(&scene)).expect("size");
        let e = m.ellipse.expect("ellipse");
        assert_eq!(m.quality, PupilQuality::Good);
        assert!((e.centre_x_px - 150.0).hypot(e.centre_y_px - 120.0) < 0.15);
    }
}

#[test]
fn partly_covered_pupil_keeps_its_centre_or_is_flagged() {
    let mut t = tracker();
    let truth = ellipse(160.0, 120.0, 20.0, 20.0, 0.0);
    // The lid covers the top 5 px: the arc that is left still defines the circle.
    let mut scene = Scene::new(truth);
    scene.lid_y = Some(105.0);
    let m = t.track(&render(&scene)).expect("size");
    assert_eq!(m.quality, PupilQuality::Good, "{m:?}");
    let e = m.ellipse.expect("ellipse");
    assert!(
        (e.centre_x_px - 160.0).hypot(e.centre_y_px - 120.0) < 0.5,
        "{e:?}"
    );
    // Covered down to the centre: whatever is fitted must not be passed off as good unless it
    // is close to the truth.
    scene.lid_y = Some(121.0);
    let m = t.track(&render(&scene)).expect("size");
    if m.is_good() {
        let e = m.ellipse.expect("ellipse");
        assert!(
            (e.centre_x_px - 160.0).hypot(e.centre_y_px - 120.0) < 2.0,
            "{m:?}"
        );
    }
}

#[test]
fn closed_lid_is_a_blink() {
    let mut t = tracker();
    let mut scene = Scene::new(ellipse(160.0, 120.0, 20.0, 20.0, 0.0));
    scene.pupil = None;
    for seed in 0..5 {
        scene.seed = seed;
        let m = t.track(&render(&scene)).expect("size");
        assert_eq!(m.quality, PupilQuality::Blink, "{m:?}");
        assert!(m.centre_px().is_none() && m.radius_px().is_none());
    }
}

#[test]
fn pupil_at_the_border_is_implausible() {
    let mut t = tracker();
    let scene = Scene::new(ellipse(8.0, 120.0, 20.0, 20.0, 0.0));
    let m = t.track(&render(&scene)).expect("size");
    assert_eq!(
        m.quality,
        PupilQuality::Implausible {
            why: Implausibility::TouchesBorder
        },
        "{m:?}"
    );
}

#[test]
fn too_small_too_large_and_too_eccentric_are_implausible() {
    let mut cfg = PupilConfig {
        min_radius_px: 10.0,
        ..PupilConfig::default()
    };
    let mut t = PupilTracker::new(320, 240, cfg.clone()).expect("valid");
    let m = t
        .track(&render(&Scene::new(ellipse(160.0, 120.0, 7.0, 7.0, 0.0))))
        .expect("size");
    assert!(
        matches!(
            m.quality,
            PupilQuality::Implausible { .. } | PupilQuality::Blink
        ),
        "{m:?}"
    );
    cfg.min_radius_px = 3.0;
    cfg.max_radius_px = 15.0;
    let mut t = PupilTracker::new(320, 240, cfg).expect("valid");
    let m = t
        .track(&render(&Scene::new(ellipse(160.0, 120.0, 17.0, 17.0, 0.0))))
        .expect("size");
    assert_eq!(
        m.quality,
        PupilQuality::Implausible {
            why: Implausibility::TooLarge
        },
        "{m:?}"
    );
    let mut t = tracker();
    let m = t
        .track(&render(&Scene::new(ellipse(160.0, 120.0, 30.0, 9.0, 0.5))))
        .expect("size");
    assert_eq!(
        m.quality,
        PupilQuality::Implausible {
            why: Implausibility::TooEccentric
        },
        "{m:?}"
    );
}

#[test]
fn bad_frames_are_flagged_not_panics() {
    let mut t = tracker();
    let n = 320 * 240;
    assert_eq!(
        t.track(&vec![0u8; n]).expect("size").quality,
        PupilQuality::Dark
    );
    assert_eq!(
        t.track(&vec![5u8; n]).expect("size").quality,
        PupilQuality::Dark
    );
    assert_eq!(
        t.track(&vec![255u8; n]).expect("size").quality,
        PupilQuality::Saturated
    );
    assert_eq!(
        t.track(&vec![128u8; n]).expect("size").quality,
        PupilQuality::Flat
    );
    // Half saturated, half a normal eye.
    let mut half = render(&Scene::new(ellipse(160.0, 120.0, 15.0, 15.0, 0.0)));
    half[..n / 2].fill(255);
    assert_eq!(
        t.track(&half).expect("size").quality,
        PupilQuality::Saturated
    );
    // Salt and pepper everywhere: no panic, and not a confident pupil far from anything.
    let noise: Vec<u8> = (0..n)
        .map(|i| if (i * 7919) % 13 < 6 { 0 } else { 255 })
        .collect();
    let _ = t.track(&noise).expect("size");
    // A checkerboard of dark squares: implausible or blink, never a panic.
    let checker: Vec<u8> = (0..n)
        .map(|i| {
            if ((i % 320) / 20 + (i / 320) / 20) % 2 == 0 {
                20
            } else {
                150
            }
        })
        .collect();
    let m = t.track(&checker).expect("size");
    assert!(!m.is_good() || m.residual_rms_px <= 1.0, "{m:?}");
}

#[test]
fn wrong_frame_size_is_an_error_naming_sizes() {
    let mut t = tracker();
    let err = t.track(&[0u8; 100]).unwrap_err();
    assert_eq!(
        err,
        PupilError::FrameSize {
            got: 100,
            expected: 76_800,
            width: 320,
            height: 240
        }
    );
    assert!(err.to_string().contains("320x240"));
    assert!(matches!(
        PupilTracker::new(8, 240, PupilConfig::default()),
        Err(PupilError::FrameTooSmall { .. })
    ));
}

#[test]
fn config_errors_name_the_field() {
    let cfg = PupilConfig {
        min_axis_ratio: 1.5,
        ..PupilConfig::default()
    };
    let err = PupilTracker::new(320, 240, cfg).err().expect("rejected");
    assert!(err.to_string().contains("min_axis_ratio"), "{err}");
    let ok = from_entries(&[("min_radius_px", 4.0)]).expect("known field");
    assert_eq!(ok.min_radius_px, 4.0);
    let err = from_entries(&[("min_radius_px", 4.0), ("bogus", 1.0)]).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

/// Deserialises a config from a map of numbers (serde's own value deserializer, so the test
/// of `deny_unknown_fields` needs no format crate).
fn from_entries(entries: &[(&'static str, f64)]) -> Result<PupilConfig, serde::de::value::Error> {
    use serde::Deserialize;
    use serde::de::value::MapDeserializer;
    PupilConfig::deserialize(MapDeserializer::new(entries.iter().copied()))
}

#[test]
fn other_frame_sizes_work() {
    for (w, h) in [(640usize, 480usize), (160, 120), (200, 200)] {
        let mut t = PupilTracker::new(w, h, PupilConfig::default()).expect("valid");
        let mut scene = Scene::new(ellipse(w as f64 * 0.45, h as f64 * 0.55, 12.0, 10.0, 0.2));
        scene.width = w;
        scene.height = h;
        let m = t.track(&render(&scene)).expect("size");
        assert_eq!(m.quality, PupilQuality::Good, "{w}x{h}: {m:?}");
        let c = m.centre_px().expect("good");
        assert!((c[0] - w as f64 * 0.45).hypot(c[1] - h as f64 * 0.55) < 0.15);
    }
}
