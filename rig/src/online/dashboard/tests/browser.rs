//! The dashboard in headless Chromium: the page loads and shows live values.

use super::*;

/// The Chromium binary: `$TWINLOOP_CHROMIUM`, or `chromium` /
/// `chromium-browser` on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TWINLOOP_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Runs Chromium headless with `args`, stdout to `out`, killed after `limit`.
fn run_chromium(bin: &Path, profile: &Path, args: &[String], out: &Path, limit: Duration) {
    let stdout = std::fs::File::create(out).expect("stdout file");
    let stderr = std::fs::File::create(out.with_extension("stderr")).expect("stderr file");
    let mut child = std::process::Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn chromium");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            if !status.success() {
                let err = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
                panic!("chromium exited with {status}: {err}");
            }
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Feeds a lively synthetic session until `stop`.
fn feed_synthetic_session(feed: DashFeed, stop: Arc<AtomicBool>) {
    let (w, h) = (512u32, 512u32);
    let disks: Vec<(f32, f32, f32)> = (0..12)
        .map(|i| {
            (
                40.0 + 38.0 * i as f32,
                60.0 + (i * 137 % 400) as f32,
                10.0 + (i % 3) as f32 * 4.0,
            )
        })
        .collect();
    feed.send(DashEvent::Cells {
        centres: disks.iter().map(|&(y, x, _)| (y, x)).collect(),
        radii: disks.iter().map(|&(_, _, r)| r).collect(),
    });
    feed.send(DashEvent::Onset {
        trial: 4242,
        name: "drifting-grating-90deg".into(),
        t_s: 0.0,
    });
    for k in 0..37u64 {
        feed.send(DashEvent::Decision {
            trial: 4243 + k,
            name: format!("natural-image-{}", 100 + k),
            mode: ["adaptive", "random", "test"][(k % 3) as usize].into(),
            score: Some(0.2 + 0.1 * ((k as f64) * 0.7).sin().abs()),
        });
    }
    for k in 1..=30u64 {
        feed.send(DashEvent::Accuracy {
            trials: 50 * k,
            cc_norm: 0.8 * (1.0 - (-(k as f64) / 8.0).exp()),
        });
    }
    for (stage, p50) in [
        ("register", 1.2),
        ("extract", 0.6),
        ("twin", 4.5),
        ("decide", 2.0),
    ] {
        feed.send(DashEvent::Latency {
            stage: stage.into(),
            p50_ms: p50,
            p99_ms: p50 * 3.0,
            histogram: (1..=24)
                .map(|b| {
                    (
                        b as f64 * p50 / 4.0,
                        (1000.0 * (-(b as f64 - 4.0).powi(2) / 8.0).exp()) as u64,
                    )
                })
                .collect(),
        });
    }
    feed.send(DashEvent::Anomaly {
        message: "frame 1041 arrived 48 ms late".into(),
    });
    let mut k = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t_s = start.elapsed().as_secs_f64();
        let activity: Vec<f32> = (0..disks.len())
            .map(|c| (c as f32 * 0.3 + 1.0) * ((t_s as f32) * (1.0 + c as f32 * 0.4)).sin())
            .collect();
        feed.send(DashEvent::Prediction {
            t_s,
            values: (0..disks.len())
                .map(|c| 0.8 * ((t_s as f32 - 0.3) * (1.0 + c as f32 * 0.4)).sin() + 0.1)
                .collect(),
        });
        feed.send(DashEvent::Activity {
            t_s,
            values: activity,
        });
        feed.send(DashEvent::Shifts {
            t_s,
            dy: (t_s as f32 * 2.0).sin(),
            dx: (t_s as f32 * 1.3).cos() * 0.5,
        });
        feed.send(DashEvent::Behaviour {
            t_s,
            pupil_x: 120.0 + 3.0 * (t_s as f32).sin(),
            pupil_y: 80.0 + 2.0 * (t_s as f32 * 0.7).cos(),
            pupil_radius: 20.0 + (t_s as f32 * 0.3).sin(),
            speed_cm_s: (5.0 + 5.0 * (t_s as f32 * 0.5).sin()).max(0.0),
        });
        if k.is_multiple_of(4) {
            feed.send(DashEvent::Frame {
                t_s,
                width: w,
                height: h,
                pixels: disks_frame(w, h, &disks, t_s as f32),
            });
            feed.send(DashEvent::View {
                t_s,
                width: 320,
                height: 180,
                pixels: (0..320 * 180)
                    .map(|i| {
                        (127.0 + 120.0 * ((i % 320) as f32 * 0.1 + t_s as f32 * 3.0).sin()) as u8
                    })
                    .collect(),
                trial: 4242,
            });
            let mut counters = serde_json::Map::new();
            counters.insert("frames".into(), json!(k * 3));
            counters.insert("drops".into(), json!(0));
            counters.insert("late_decisions".into(), json!(1));
            feed.send(DashEvent::Counters(counters));
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(33));
    }
}

#[test]
fn browser_shows_live_values() {
    let Some(bin) = find_chromium() else {
        if std::env::var("TWINLOOP_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1") {
            panic!(
                "TWINLOOP_REQUIRE_BROWSER_TESTS=1 but no chromium binary found (apt-get install chromium)"
            );
        }
        // Straight to stderr: the harness captures `eprintln!` of a passing test.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED browser_shows_live_values: no chromium binary on PATH (apt-get install \
              chromium; set TWINLOOP_REQUIRE_BROWSER_TESTS=1 to fail instead)\n",
        );
        return;
    };
    let dash = Dashboard::start(loopback()).expect("start");
    // stop_after: the page closes its stream after 8 snapshots, so that
    // Chromium's virtual time (which waits for pending fetches) can run out.
    let url = format!("http://{}/?stop_after=8", target(&dash));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (feed, stop) = (dash.feed(), stop.clone());
        std::thread::spawn(move || feed_synthetic_session(feed, stop))
    };
    // A second of data first, so that the traces have some length.
    std::thread::sleep(Duration::from_secs(1));
    let dir = std::env::temp_dir().join(format!("twinloop-dash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let start = Instant::now();
    let dom_path = dir.join("dom.html");
    run_chromium(
        &bin,
        &dir.join("profile-dom"),
        &[
            "--virtual-time-budget=4000".into(),
            "--dump-dom".into(),
            url.clone(),
        ],
        &dom_path,
        Duration::from_secs(30),
    );
    let dom_time = start.elapsed();
    let dom = std::fs::read_to_string(&dom_path).expect("DOM");
    let has = |needle: &str| dom.contains(needle);
    assert!(
        has("id=\"stim-trial\">4242<"),
        "trial not filled in: {}",
        &dom[..dom.len().min(3000)]
    );
    assert!(
        has("id=\"decision-count\">37<"),
        "decision count not filled in"
    );
    assert!(has("id=\"stim-name\">drifting-grating-90deg<"));
    assert!(has("id=\"next-name\">natural-image-100<"));
    assert!(has("data-messages=\""), "no SSE message was handled");
    assert!(has("frame.png?v="), "frame image not requested");
    assert!(has("<polyline"), "no chart was drawn");

    let start = Instant::now();
    let shot = dir.join("shot.png");
    run_chromium(
        &bin,
        &dir.join("profile-shot"),
        &[
            "--virtual-time-budget=4000".into(),
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000".into(),
            url,
        ],
        &dir.join("shot.stdout"),
        Duration::from_secs(30),
    );
    let shot_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    feeder.join().expect("feeder");
    dash.shutdown();

    let bytes = std::fs::read(&shot).expect("screenshot");
    let (info, data) = decode_png(&bytes);
    assert_eq!((info.width, info.height), (1400, 1000));
    let channels = info.color_type.samples();
    let distinct: std::collections::HashSet<&[u8]> = data.chunks_exact(channels).collect();
    assert!(
        distinct.len() > 50,
        "screenshot looks blank: {} distinct colours",
        distinct.len()
    );
    eprintln!(
        "browser_shows_live_values: dump-dom {dom_time:.1?}, screenshot {shot_time:.1?}, {} colours",
        distinct.len()
    );
    if std::env::var_os("TWINLOOP_KEEP_SCREENSHOT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The real daemon serves the dashboard: while a simulated session runs, the snapshot fills
/// with its decisions, activity and views, and (where Chromium exists) the page shows them.
#[test]
fn a_simulated_session_shows_on_the_dashboard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = crate::config::Config::default_sim();
    cfg.session.duration_s = 14.0;
    cfg.session.realtime = true;
    cfg.session.progress = false;
    cfg.session.out_dir = tmp.path().to_path_buf();
    cfg.imaging.extraction = crate::config::Extraction::TruthFootprints;
    cfg.trials.stimulus_s = 1.0;
    cfg.trials.gray_s = 0.5;
    cfg.trials.design.warmup_trials = 2;
    cfg.dashboard.enabled = true;
    cfg.dashboard.bind = format!("127.0.0.1:{port}");
    let session = std::thread::spawn(move || {
        crate::online::session::run(&cfg, vec!["dashboard-test".into()], Default::default())
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Wait until the session has decided a few trials and activity is flowing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        // The session builds its candidate pool before the dashboard starts listening.
        if std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the dashboard never started");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), get(addr, "/snapshot.json", &[])).await
        });
        if let Ok(r) = r
            && r.status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.text())
            && v["decisions"]["count"].as_u64().unwrap_or(0) >= 3
            && v["stimulus"]["width"].as_u64().is_some()
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed the session"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        snap["counters"]["values"]["frames"].as_u64().unwrap_or(0) > 0,
        "daemon counters: {}",
        snap["counters"]
    );
    let frame = rt.block_on(get(addr, "/frame.png", &[]));
    assert_eq!(frame.status, 200, "a two-photon thumbnail is served");
    // Once the warm-up has placed the readouts, the twin's one-step-ahead prediction is drawn
    // beside each selected cell's activity.
    let snap = loop {
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), get(addr, "/snapshot.json", &[])).await
        });
        if let Ok(r) = r
            && r.status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.text())
            && v["traces"]["prediction"]["t"]
                .as_array()
                .is_some_and(|t| t.len() >= 10)
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the twin's predictions never reached the dashboard"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The cells' outlines come with the session's `cells` message (here the true footprints).
    assert!(
        snap["frame"]["n_cells"].as_u64().unwrap_or(0) > 0,
        "cell outlines on the thumbnail: {}",
        snap["frame"]
    );
    let predicted = snap["traces"]["prediction"]["values"]
        .as_array()
        .expect("prediction values per selected cell");
    assert_eq!(
        predicted.len(),
        snap["traces"]["activity"]["values"]
            .as_array()
            .map_or(0, Vec::len),
        "a prediction trace for every activity trace"
    );
    assert!(
        predicted
            .iter()
            .flat_map(|c| c.as_array().into_iter().flatten())
            .filter_map(|v| v.as_f64())
            .all(|v| v.is_finite() && v >= 0.0),
        "predicted activity is a finite, non-negative expected value"
    );

    if let Some(bin) = find_chromium() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dom_path = dir.path().join("dom.html");
        run_chromium(
            &bin,
            &dir.path().join("profile"),
            &[
                "--virtual-time-budget=3000".into(),
                "--dump-dom".into(),
                format!("http://{addr}/?stop_after=4"),
            ],
            &dom_path,
            Duration::from_secs(30),
        );
        let dom = std::fs::read_to_string(&dom_path).expect("DOM");
        assert!(
            dom.contains("data-messages=\""),
            "no SSE message reached the page"
        );
        assert!(
            !dom.contains("id=\"decision-count\">0<") && dom.contains("id=\"decision-count\">"),
            "decisions not shown"
        );
    } else if std::env::var("TWINLOOP_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        panic!("TWINLOOP_REQUIRE_BROWSER_TESTS=1 but no chromium binary found");
    } else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED the page half of this test (the session half ran): no chromium binary on \
              PATH (apt-get install chromium; set TWINLOOP_REQUIRE_BROWSER_TESTS=1 to fail \
              instead)\n",
        );
    }
    let summary = session
        .join()
        .expect("session thread")
        .expect("the session ran");
    assert!(summary.counters.decisions >= 3);
}
