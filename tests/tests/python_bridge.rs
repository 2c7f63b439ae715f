//! A Python bridge (`examples/bridge.py`, pyzmq on libzmq) against an in-process daemon: the
//! wire protocol as an outside tool speaks it, from connection order to flow control, the
//! activity the daemon computes (checked against numpy) and what it rejects.
//!
//! Needs a Python with pyzmq and numpy: `TWINLOOP_PYTHON` (default `python3`). Without them
//! these tests fail, by design: run `.ci/run`, or `pip install pyzmq numpy`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use twinloop_rig::config::{Config, Extraction, SourceKind};
use twinloop_rig::online::session::{self, Hooks, SessionSummary};
use twinloop_rig::online::sources::zmq_ingest::IngestEnd;

const FRAMES: u64 = 200;
const BLOCK: u32 = 16;

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn bridge_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bridge.py")
}

/// Fail loudly (never skip) when the interpreter lacks pyzmq or numpy.
fn require_pyzmq() {
    let py = python();
    let probe = Command::new(&py).args(["-c", "import zmq, numpy"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{py} cannot import pyzmq/numpy ({}): run `.ci/run`, or `pip install pyzmq numpy` \
             and point TWINLOOP_PYTHON at that interpreter",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run Python `{py}` ({e}): run `.ci/run`, or install Python 3 with \
             `pip install pyzmq numpy` and set TWINLOOP_PYTHON"
        ),
    }
}

fn config(out_dir: &std::path::Path) -> Config {
    let mut cfg = Config::default_sim();
    cfg.source.kind = SourceKind::Bridge;
    cfg.source.idle_timeout_s = 3.0;
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.grid_block_px = BLOCK;
    cfg.imaging.width = 128;
    cfg.imaging.height = 128;
    cfg.session.out_dir = out_dir.to_path_buf();
    cfg.session.progress = false;
    cfg.session.realtime = false;
    // Longer than the frames the bridge sends: the bridge's `end` ends the session.
    cfg.session.duration_s = 600.0;
    cfg.validate().expect("test config is valid");
    cfg
}

/// Run a session in-process and `bridge.py` against it; the bridge's output and the summary.
fn run_bridge(extra: &[&str]) -> (Output, SessionSummary) {
    require_pyzmq();
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = config(out.path());
    let window = cfg.source.flow_window.to_string();
    let (tx, rx) = mpsc::channel();
    let hooks = Hooks {
        on_ready: Some(Box::new(
            move |_dir: &std::path::Path, ingest: &str, publish: &str| {
                let _ = tx.send((ingest.to_owned(), publish.to_owned()));
            },
        )),
        ..Hooks::default()
    };
    let daemon =
        std::thread::spawn(move || session::run(&cfg, vec!["python_bridge".into()], hooks));
    // A hang guard, not a timing: the session builds its candidate pool (the pretrained
    // core) before it binds, which takes seconds on a loaded machine.
    let (ingest, publish) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon did not bind its sockets");

    let frames = FRAMES.to_string();
    let block = BLOCK.to_string();
    let mut child = Command::new(python())
        .arg(bridge_script())
        .args([
            "--ingest",
            &ingest,
            "--publish",
            &publish,
            "--frames",
            &frames,
        ])
        .args(["--size", "128x128", "--window", &window, "--rate", "400"])
        .args(["--check-grid", &block])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python bridge");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll the bridge").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("bridge output");
    let summary = daemon
        .join()
        .expect("session thread panicked")
        .expect("session failed");
    (output, summary)
}

fn assert_bridge_ok(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bridge.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprintln!("bridge.py:\n{stdout}{stderr}");
    // The bridge's first stdout line is its JSON report.
    let line = stdout.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bridge report {line:?}: {e}"))
}

#[test]
fn python_bridge_clean_stream() {
    let t0 = Instant::now();
    let (output, s) = run_bridge(&[]);
    let report = assert_bridge_ok(&output);
    let c = &s.counters;
    assert_eq!(
        s.ingest_end,
        IngestEnd::SourceEnded,
        "the bridge's `end` ends the session"
    );
    assert_eq!(c.frames_in, FRAMES);
    assert_eq!(c.frames_processed, FRAMES, "{c:?}");
    assert_eq!((c.gaps, c.missing, c.stage_skips), (0, 0, 0), "{c:?}");
    assert!(
        c.rejected.is_empty(),
        "nothing was malformed: {:?}",
        c.rejected
    );
    assert_eq!(c.sync_in, FRAMES);
    assert_eq!(c.treadmill_in, FRAMES);
    assert_eq!(c.eye_frames_in, FRAMES.div_ceil(2));
    assert_eq!(s.cells, (128 / BLOCK as usize).pow(2));
    assert_eq!(report["activity_received"], FRAMES, "{report}");
    let e2e = s.latency("end to end").expect("end-to-end latency");
    assert_eq!(e2e.count, FRAMES, "every frame carried sent_ns");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn python_bridge_bad_input_is_rejected_by_label() {
    let t0 = Instant::now();
    let (output, s) = run_bridge(&["--send-bad"]);
    let report = assert_bridge_ok(&output);
    let c = &s.counters;
    let expected: BTreeMap<String, u64> = [
        ("bad_magic", 1),
        ("dtype_not_allowed", 1),
        ("frame_count", 1),
        ("header_length", 1),
        ("payload_size", 1),
        ("sequence", 1),
        ("shape", 1),
        ("topic_mismatch", 1),
        ("unknown_stream", 1),
        ("not_an_input", 1),
        ("unsupported_version", 1),
    ]
    .into_iter()
    .map(|(l, n)| (l.to_owned(), n))
    .collect();
    assert_eq!(c.rejected, expected, "rejections by label");
    let sent: BTreeMap<String, u64> =
        serde_json::from_value(report["rejected_expected"].clone()).expect("bridge's tally");
    assert_eq!(sent, expected, "the bridge sent what this test expects");
    assert_eq!(
        s.ingest_end,
        IngestEnd::SourceEnded,
        "the daemon kept running"
    );
    assert_eq!(c.frames_in, FRAMES, "every good frame was taken");
    assert_eq!(c.frames_processed, FRAMES, "{c:?}");
    assert_eq!(
        (c.gaps, c.missing),
        (0, 0),
        "rejected messages consume no sequence number"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
}
