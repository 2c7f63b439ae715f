use super::*;

fn activity(state: &mut DashState, t: f64, values: Vec<f32>) {
    state.apply(DashEvent::Activity { t_s: t, values });
}

#[test]
fn traces_are_bounded_by_count_and_time() {
    let mut s = DashState::new(8, 30.0);
    // 2 hours at 100 Hz of 20 cells, plus everything else.
    for k in 0..720_000u64 {
        let t = k as f64 * 0.01;
        activity(&mut s, t, vec![k as f32; 20]);
        if k.is_multiple_of(7) {
            s.apply(DashEvent::Prediction {
                t_s: t,
                values: vec![1.0; 20],
            });
            s.apply(DashEvent::Shifts {
                t_s: t,
                dy: 0.5,
                dx: -0.5,
            });
            s.apply(DashEvent::Behaviour {
                t_s: t,
                pupil_x: 1.0,
                pupil_y: 2.0,
                pupil_radius: 3.0,
                speed_cm_s: 4.0,
            });
            s.apply(DashEvent::Accuracy {
                trials: k,
                cc_norm: 0.5,
            });
            s.apply(DashEvent::Decision {
                trial: k,
                name: "grating".into(),
                mode: format!("mode{}", k % 40),
                score: Some(1.0),
            });
            s.apply(DashEvent::Anomaly {
                message: "x".repeat(1_000),
            });
        }
    }
    let [shifts, act, pred, beh, acc, dec] = s.buffer_lens();
    for n in [shifts, act, pred, beh] {
        assert!(n <= MAX_TRACE_POINTS, "trace holds {n} samples");
    }
    assert!(act >= MAX_TRACE_POINTS / 2, "activity kept only {act}");
    assert!((MAX_SERIES_POINTS / 2..=MAX_SERIES_POINTS).contains(&acc));
    assert!((MAX_SERIES_POINTS / 2..=MAX_SERIES_POINTS).contains(&dec));
    let snap = s.snapshot();
    let t = snap["traces"]["activity"]["t"].as_array().expect("t");
    let first = t[0].as_f64().expect("f64");
    let last = t[t.len() - 1].as_f64().expect("f64");
    assert!(last - first <= 30.0 + 1e-6, "window spans {}", last - first);
    assert!(last > 7199.0);
    let recent = snap["counters"]["recent_anomalies"].as_array().expect("a");
    assert_eq!(recent.len(), MAX_ANOMALIES_KEPT);
    assert!(recent[0]["message"].as_str().expect("s").chars().count() <= MAX_TEXT + 1);
    assert!(snap["decisions"]["modes"].as_array().expect("m").len() <= MAX_MODES);
    assert_eq!(snap["decisions"]["count"], json!(720_000u64.div_ceil(7)));
    // The latest accuracy point is always shown.
    let trials = snap["accuracy"]["trials"].as_array().expect("a");
    // 719,999 = 7 x 102,857 is the last trial pushed.
    assert_eq!(trials.last(), Some(&json!(719_999u64)));
}

#[test]
fn clock_restart_starts_traces_over() {
    let mut s = DashState::new(2, 10.0);
    for k in 0..100 {
        activity(&mut s, 1000.0 + k as f64 * 0.1, vec![1.0, 2.0]);
    }
    activity(&mut s, 0.0, vec![1.0, 2.0]);
    assert_eq!(s.buffer_lens()[1], 1);
}

#[test]
fn selection_picks_high_variance_cells() {
    let mut s = DashState::new(3, 30.0);
    // Before enough data: the first cells.
    activity(&mut s, 0.0, vec![0.0; 10]);
    assert_eq!(s.selected_cells(), &[0, 1, 2]);
    // Cells 2, 5 and 9 vary; the others are flat.
    for k in 1..200 {
        let a = if k % 2 == 0 { 1.0 } else { -1.0 };
        let mut v = vec![0.1f32; 10];
        v[2] = 3.0 * a;
        v[5] = 2.0 * a;
        v[9] = 5.0 * a;
        v[0] = 0.01 * a;
        activity(&mut s, k as f64 * 0.05, v);
    }
    assert_eq!(s.selected_cells(), &[2, 5, 9]);
    let snap = s.snapshot();
    assert_eq!(snap["traces"]["cells"], json!([2, 5, 9]));
    assert_eq!(snap["traces"]["by_variance"], json!(true));
    let values = snap["traces"]["activity"]["values"].as_array().expect("a");
    assert_eq!(values.len(), 3);
    assert!(
        values[2]
            .as_array()
            .expect("a")
            .iter()
            .any(|v| v == &json!(5.0) || v == &json!(-5.0))
    );
}

#[test]
fn selection_is_recomputed_at_most_once_per_second() {
    let mut s = DashState::new(1, 30.0);
    for k in 0..20 {
        let a = if k % 2 == 0 { 1.0 } else { -1.0 };
        activity(&mut s, k as f64 * 0.01, vec![a, 0.0]);
    }
    // Only the first call (t = 0) selected so far: the first cell.
    assert_eq!(s.selected_cells(), &[0]);
    // Cell 1 becomes far more variable, but within the same second.
    for k in 20..60 {
        let a = if k % 2 == 0 { 100.0 } else { -100.0 };
        activity(&mut s, k as f64 * 0.01, vec![0.0, a]);
    }
    assert_eq!(s.selected_cells(), &[0]);
    activity(&mut s, 1.5, vec![0.0, 100.0]);
    assert_eq!(s.selected_cells(), &[1]);
}

#[test]
fn accuracy_and_decisions_accumulate() {
    let mut s = DashState::new(8, 30.0);
    s.apply(DashEvent::Onset {
        trial: 1,
        name: "gabor".into(),
        t_s: 1.0,
    });
    for trial in 2..=6u64 {
        s.apply(DashEvent::Decision {
            trial,
            name: format!("stim{trial}"),
            mode: if trial % 2 == 0 { "adaptive" } else { "random" }.into(),
            score: if trial == 4 {
                None
            } else {
                Some(trial as f64 / 10.0)
            },
        });
        s.apply(DashEvent::Accuracy {
            trials: trial * 10,
            cc_norm: trial as f64 / 10.0,
        });
    }
    s.apply(DashEvent::Onset {
        trial: 3,
        name: "stim3".into(),
        t_s: 2.0,
    });
    let snap = s.snapshot();
    assert_eq!(snap["accuracy"]["trials"], json!([20, 30, 40, 50, 60]));
    assert_eq!(
        snap["accuracy"]["cc_norm"],
        json!([0.2, 0.3, 0.4, 0.5, 0.6])
    );
    assert_eq!(snap["decisions"]["count"], json!(5));
    assert_eq!(snap["decisions"]["trial"], json!([2, 3, 4, 5, 6]));
    assert_eq!(
        snap["decisions"]["score"],
        json!([0.2, 0.3, null, 0.5, 0.6])
    );
    assert_eq!(snap["decisions"]["modes"], json!(["adaptive", "random"]));
    assert_eq!(snap["decisions"]["mode"], json!([0, 1, 0, 1, 0]));
    assert_eq!(
        snap["decisions"]["mode_counts"],
        json!({"adaptive": 3, "random": 2})
    );
    assert_eq!(snap["stimulus"]["trial"], json!(3));
    assert_eq!(snap["stimulus"]["name"], json!("stim3"));
    assert_eq!(snap["stimulus"]["next"]["name"], json!("stim4"));
    assert_eq!(snap["stimulus"]["queue"].as_array().map(Vec::len), Some(3));
}

#[test]
fn snapshot_has_every_panel_key() {
    let empty = DashState::new(8, 30.0).snapshot();
    let mut s = DashState::new(8, 30.0);
    s.apply(DashEvent::Frame {
        t_s: 0.0,
        width: 4,
        height: 2,
        pixels: vec![0, 1, 2, 3, 4, 5, 6, 7],
    });
    s.apply(DashEvent::Latency {
        stage: "register".into(),
        p50_ms: 1.23456,
        p99_ms: 2.0,
        histogram: vec![(1.0, 3), (2.0, 1)],
    });
    let mut counters = Map::new();
    counters.insert("frames".into(), json!(10));
    counters.insert("bad".into(), json!({"nested": 1}));
    s.apply(DashEvent::Counters(counters));
    let full = s.snapshot();
    for snap in [empty, full.clone()] {
        for key in [
            "t_s",
            "frame",
            "traces",
            "stimulus",
            "latency",
            "counters",
            "accuracy",
            "decisions",
            "behaviour",
        ] {
            assert!(snap.get(key).is_some(), "snapshot lacks {key}");
        }
        for key in ["shifts", "selected", "width"] {
            assert!(snap["frame"].get(key).is_some(), "frame lacks {key}");
        }
        for key in ["pupil_x", "pupil_y", "pupil_radius", "speed_cm_s", "t"] {
            assert!(
                snap["behaviour"].get(key).is_some(),
                "behaviour lacks {key}"
            );
        }
    }
    assert_eq!(full["latency"][0]["p50_ms"], json!(1.2346));
    assert_eq!(full["counters"]["values"], json!({"frames": 10}));
    assert_eq!(full["frame"]["width"], json!(4));
}

#[test]
fn malformed_events_are_rejected_not_applied() {
    let mut s = DashState::new(8, 30.0);
    s.apply(DashEvent::Frame {
        t_s: 0.0,
        width: 10,
        height: 10,
        pixels: vec![0; 99],
    });
    s.apply(DashEvent::Cells {
        centres: vec![(1.0, 1.0)],
        radii: vec![],
    });
    assert_eq!(s.event_counts(), (2, 2));
    assert!(s.frame_png().expect("png").is_none());
}

#[test]
fn thumbnails_are_downsampled_and_outlined() {
    let mut s = DashState::new(8, 30.0);
    let (w, h) = (512u32, 300u32);
    s.apply(DashEvent::Frame {
        t_s: 0.0,
        width: w,
        height: h,
        pixels: (0..w * h).map(|i| (i % 1000) as u16).collect(),
    });
    s.apply(DashEvent::Cells {
        centres: vec![(100.0, 200.0)],
        radii: vec![20.0],
    });
    assert_eq!(s.frame_size(), Some((256, 150)));
    let png = s.frame_png().expect("encode").expect("frame");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("decode");
    assert_eq!((info.width, info.height), (256, 150));
    let (cy, cx, r) = s.cell_on_thumbnail(0).expect("cell");
    let (y, x) = (cy.round() as usize, (cx + r).round() as usize);
    let px = &buf[(y * 256 + x) * 3..][..3];
    assert_eq!(px, &[255, 150, 0], "outline of a traced cell");
    s.apply(DashEvent::View {
        t_s: 0.0,
        width: 3,
        height: 2,
        pixels: vec![0, 50, 100, 150, 200, 250],
        trial: 7,
    });
    assert!(s.view_png().expect("encode").is_some());
}
