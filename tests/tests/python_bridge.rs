//! A Python bridge (`examples/bridge.py`, pyzmq on libzmq) against an in-process daemon: the
//! wire protocol as an outside tool speaks it, from connection order to flow control, the
//! activity the daemon computes (checked against numpy) and what it rejects.
//!
//! `bridge.py` is a user of the client package (`python/twinloop_client`, put on `PYTHONPATH`).
//! Needs a Python with pyzmq and numpy: `TWINLOOP_PYTHON` (default `python3`). Without them
//! these tests fail, by design: run `.ci/run`, or `pip install pyzmq numpy`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use twinloop_e2e::python::{PeerOutput, repo_root, run_session_with_peer};
use twinloop_rig::config::{Config, Extraction, SourceKind};
use twinloop_rig::online::session::SessionSummary;
use twinloop_rig::online::sources::zmq_ingest::IngestEnd;

const FRAMES: u64 = 200;
const BLOCK: u32 = 16;

fn bridge_script() -> PathBuf {
    repo_root().join("examples/bridge.py")
}

fn config(out_dir: &std::path::Path) -> Config {
    let mut cfg = Config::default_sim();
    cfg.source.kind = SourceKind::Bridge;
    // Also the time the bridge has to start (the timer runs before the first message); the
    // bridge's `end` ends the session, not this.
    cfg.source.idle_timeout_s = 15.0;
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.grid_block_px = BLOCK;
    cfg.imaging.width = 128;
    cfg.imaging.height = 128;
    cfg.session.out_dir = out_dir.to_path_buf();
    cfg.session.progress = false;
    cfg.session.realtime = false;
    // Longer than the frames the bridge sends: the bridge's `end` ends the session.
    cfg.session.duration_s = 600.0;
    // A stage ring that holds every frame: a slow imaging stage skips none, so every frame's
    // activity is checked however loaded the machine.
    cfg.rings.stage_ring = FRAMES as usize + 8;
    cfg.rings.frame_pool = cfg.rings.stage_ring + cfg.rings.recorder_ring + 4;
    cfg.validate().expect("test config is valid");
    cfg
}

/// Run a session in-process and `bridge.py` against it; the bridge's output and the summary.
fn run_bridge(extra: &[&str]) -> (PeerOutput, SessionSummary) {
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = config(out.path());
    let window = cfg.source.flow_window.to_string();
    let extra: Vec<OsString> = extra.iter().map(OsString::from).collect();
    let args = move |ingest: &str, publish: &str| {
        let mut a: Vec<OsString> = vec![bridge_script().into()];
        a.extend(
            [
                "--ingest",
                ingest,
                "--publish",
                publish,
                "--frames",
                &FRAMES.to_string(),
                "--size",
                "128x128",
                "--window",
                &window,
                "--rate",
                "400",
                "--check-grid",
                &BLOCK.to_string(),
            ]
            .map(OsString::from),
        );
        a.extend(extra);
        a
    };
    run_session_with_peer(&cfg, args, false)
}

#[test]
fn python_bridge_clean_stream() {
    let (output, s) = run_bridge(&[]);
    let report = output.report("bridge.py");
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
    // The window kept 200 frames flowing, so the acks carried the hello's epoch.
    assert_ne!(report["epoch"], 0, "the hello named an epoch");
    assert_eq!(report["stale_acks"], 0, "one hello: no ack of another");
    assert_eq!(c.garbage_messages, 0);
    let e2e = s.latency("end to end").expect("end-to-end latency");
    assert_eq!(e2e.count, FRAMES, "every frame carried sent_ns");
}

#[test]
fn python_bridge_bad_input_is_rejected_by_label() {
    let (output, s) = run_bridge(&["--send-bad"]);
    let report = output.report("bridge.py");
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
    // A stray HTTP request is not a broken bridge: counted apart from the rejections.
    assert_eq!(report["garbage_expected"], 1);
    assert_eq!(c.garbage_messages, 1, "{c:?}");
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
}
