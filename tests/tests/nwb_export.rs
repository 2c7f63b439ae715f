//! `twinloop export nwb` against its real peers: a short simulated session with the imaging
//! pipeline and recorded frames is exported, then read back with pynwb and compared, object by
//! object, with what the session log holds (cells, traces, timestamps, pupil, running, trials,
//! specs, raw frames), and checked with nwbinspector (no critical or error findings). A killed
//! session exports what it recorded; a directory that is not a session, or a manifest this
//! version cannot read, is an error naming the file.
//!
//! The raw frames share the rig clock with every other series: the session's two-photon
//! stream is stamped on a device clock 2.5 s off and drifting 30 ppm (`configs/sim.toml`),
//! and each recorded frame's `TwoPhotonSeries` time must equal the time its ROI series row has.
//!
//! Needs the `nwb` feature (`scripts/test.sh` turns it on) and a Python with pynwb and
//! nwbinspector (`TWINLOOP_PYTHON`, default `python3`); without them these tests fail.
#![cfg(feature = "nwb")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use twinloop_e2e::{fast_sim_config, fresh_dir, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::Extraction;
use twinloop_rig::offline::export::nwb;
use twinloop_rig::vocab::records::{self, RecordKind};

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn checker() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/check_nwb.py")
}

/// One session shared by the tests (running it is the slow part). It lives in cargo's target
/// tmp dir under a fixed name, replaced on each run: a static is never dropped, so a TempDir
/// here would leave a quarter-gigabyte session behind after every run.
fn session() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("nwb_export-session"));
        // The imaging_online test's settings: cells are found in a 256 x 256 field of 250
        // neurons. 20 s gives more frames than cells (nwbinspector wants time first and
        // longest), and recorded pixels exercise the TwoPhotonSeries.
        let mut cfg = fast_sim_config(&root, 20.0);
        cfg.imaging.extraction = Extraction::Pipeline;
        cfg.imaging.width = 256;
        cfg.imaging.height = 256;
        cfg.sim.neurons = 250;
        cfg.imaging.pipeline.cells.calibration_frames = 150;
        cfg.imaging.pipeline.cells.min_frames = 100;
        cfg.imaging.pipeline.fluorescence.dark_offset_adu = 400.0;
        cfg.session.record_frames = true;
        run_session(&cfg).session_dir
    })
}

/// What the log says, as the checker expects it (independent of the exporter's reading).
fn expected(dir: &Path) -> Value {
    let session = SessionDir::open(dir).unwrap();
    let manifest = session.read_manifest().unwrap();
    let (recs, _) = session.open_log().unwrap().read_to_end().unwrap();
    let mut traces: [(Vec<i64>, Vec<Vec<f32>>); 4] = Default::default();
    let (mut pupil_t, mut pupil_r, mut pupil_x, mut treadmill) = (vec![], vec![], vec![], vec![]);
    let (mut onsets, mut ids, mut specs, mut decisions) = (vec![], vec![], vec![], vec![]);
    let mut frame_sums = vec![];
    for r in &recs {
        match RecordKind::from_code(r.info.kind) {
            Some(RecordKind::Activity) => {
                let a = records::decode_activity(&r.payload).unwrap();
                traces[0].0.push(a.t.as_nanos());
                traces[0].1.push(a.values);
            }
            Some(RecordKind::Fluorescence) => {
                let f = records::decode_fluorescence(&r.payload).unwrap();
                for (k, v) in [f.f, f.fneu, f.dff].into_iter().enumerate() {
                    traces[k + 1].0.push(f.t.as_nanos());
                    traces[k + 1].1.push(v);
                }
            }
            Some(RecordKind::Pupil) => {
                let p: Value = serde_json::from_slice(&r.payload).unwrap();
                pupil_t.push(p["t_ns"].as_i64().unwrap());
                pupil_r.push(p["radius_px"].clone());
                pupil_x.push(p["centre_x_px"].clone());
            }
            Some(RecordKind::Behaviour) => {
                let b: Value = serde_json::from_slice(&r.payload).unwrap();
                treadmill.push(b["treadmill_cm_s"].clone());
            }
            Some(RecordKind::Stimulus) => {
                let s: Value = serde_json::from_slice(&r.payload).unwrap();
                onsets.push(s["onset_t_ns"].as_i64().unwrap());
                ids.push(s["stimulus"].as_i64().unwrap());
                specs.push(s["spec"].clone());
            }
            Some(RecordKind::Decision) => {
                let d: Value = serde_json::from_slice(&r.payload).unwrap();
                decisions.push((d["trial"].as_u64().unwrap(), d["mode"].clone()));
            }
            Some(RecordKind::Input) => {
                let input = records::decode_input(&r.payload).unwrap();
                if let Some(p) = input.payload
                    && input.header.stream == twinloop_rig::vocab::protocol::Stream::TwoPhoton
                {
                    let sum: u64 = p
                        .chunks_exact(2)
                        .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
                        .sum();
                    frame_sums.push(sum);
                }
            }
            _ => {}
        }
    }
    // Trials in onset order, with their decision's mode.
    let modes: Vec<Value> = (0..onsets.len() as u64)
        .map(|trial| {
            decisions
                .iter()
                .find(|(t, _)| *t == trial)
                .map_or(json!("unknown"), |(_, m)| m.clone())
        })
        .collect();
    let cells_json = dir.join("calibration/plane0/cells.json");
    let cells = fs::read(&cells_json).ok().map(|b| {
        serde_json::from_slice::<Value>(&b).unwrap()["cells"]
            .as_array()
            .unwrap()
            .len()
    });
    let series = |k: usize| json!({"t_ns": traces[k].0, "values": traces[k].1});
    let cfg = &manifest.config;
    json!({
        "session_id": dir.file_name().unwrap().to_string_lossy(),
        "cells": cells,
        "width": cfg["imaging"]["width"],
        "deconvolved": series(0),
        "f": series(1),
        "fneu": series(2),
        "dff": series(3),
        "pupil_t_ns": pupil_t,
        "pupil_radius": pupil_r,
        "pupil_x": pupil_x,
        "treadmill": treadmill,
        "onsets_ns": onsets,
        "stimulus_ids": ids,
        "specs": specs,
        "modes": modes,
        "stimulus_s": cfg["trials"]["stimulus_s"],
        "refresh_hz": cfg["display"]["refresh_hz"],
        "movie_frame_sums": if frame_sums.is_empty() { Value::Null } else { json!(frame_sums) },
    })
}

/// Runs the checker; returns its JSON summary.
fn check(nwb_file: &Path, expected: &Value, cal_dir: Option<&Path>, strict: bool) -> Value {
    let want = nwb_file.with_extension("expected.json");
    fs::write(&want, serde_json::to_vec(expected).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(checker())
        .arg(nwb_file)
        .arg(&want)
        .arg(cal_dir.map_or(String::new(), |p| p.display().to_string()))
        .arg(if strict { "strict" } else { "lenient" })
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run Python `{}` ({e}): install pynwb and nwbinspector \
                 (tests/requirements.txt) and set TWINLOOP_PYTHON",
                python()
            )
        });
    assert!(
        out.status.success(),
        "check_nwb.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the checker prints a JSON summary")
}

#[test]
fn export_reads_back_in_pynwb_as_logged_and_passes_nwbinspector() {
    let dir = session();
    let out = dir.parent().unwrap().join("session.nwb");
    let done = nwb::export(dir, &out).expect("export");
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert!(done.rois > 100, "{} ROIs", done.rois);
    assert!(done.frames > done.rois, "{} frames", done.frames);
    assert!(done.movie_frames > 0 && done.trials > 0);
    let summary = check(
        &out,
        &expected(dir),
        Some(&dir.join(nwb::CALIBRATION_DIR)),
        true,
    );
    assert_eq!(summary["frames"], done.frames);
    assert_eq!(summary["movie_frames"], done.movie_frames);
    assert_eq!(summary["trials"], done.trials);
}

/// Reads the export's raw-frame and deconvolved-ROI timestamps with pynwb.
const TIMESTAMPS: &str = r#"
import json, sys
from pynwb import NWBHDF5IO
with NWBHDF5IO(sys.argv[1], 'r') as io:
    nwb = io.read()
    movie = nwb.acquisition['TwoPhotonSeries'].timestamps[:]
    series = nwb.processing['ophys']['Deconvolved']['RoiResponseSeries'].timestamps[:]
    print(json.dumps({'movie': movie.tolist(), 'rois': series.tolist()}))
"#;

#[test]
fn raw_frames_and_roi_series_share_the_rig_clock() {
    let dir = session();
    let out = dir.parent().unwrap().join("timestamps.nwb");
    nwb::export(dir, &out).expect("export");
    // From the log, independently of the exporter: each recorded frame's sequence number and
    // wire time (the device clock), and the rig time its activity was published at.
    let (recs, _) = SessionDir::open(dir)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap();
    let mut movie: Vec<(u64, i64)> = Vec::new();
    let mut activity_t = std::collections::BTreeMap::new();
    for r in &recs {
        match RecordKind::from_code(r.info.kind) {
            Some(RecordKind::Input) => {
                let input = records::decode_input(&r.payload).unwrap();
                let h = &input.header;
                if input.payload.is_some()
                    && h.stream == twinloop_rig::vocab::protocol::Stream::TwoPhoton
                    && h.plane == 0
                    && h.channel == 0
                {
                    movie.push((h.seq, h.t_ns));
                }
            }
            Some(RecordKind::Activity) => {
                let a = records::decode_activity(&r.payload).unwrap();
                if a.plane == 0 {
                    activity_t.insert(a.frame_seq, a.t.as_nanos());
                }
            }
            _ => {}
        }
    }
    let py = Command::new(python())
        .args(["-c", TIMESTAMPS])
        .arg(&out)
        .output()
        .expect("python with pynwb (tests/requirements.txt; set TWINLOOP_PYTHON)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let v: Value = serde_json::from_slice(&py.stdout).unwrap();
    let nwb_movie: Vec<f64> = serde_json::from_value(v["movie"].clone()).unwrap();
    let nwb_rois: Vec<f64> = serde_json::from_value(v["rois"].clone()).unwrap();
    assert_eq!(nwb_movie.len(), movie.len());
    let mut compared = 0;
    let mut device_offset_s: f64 = 0.0;
    for (i, &(seq, t_wire)) in movie.iter().enumerate() {
        let Some(&t_rig) = activity_t.get(&seq) else {
            continue;
        };
        compared += 1;
        device_offset_s = device_offset_s.max(((t_wire - t_rig) as f64 * 1e-9).abs());
        assert_eq!(
            nwb_movie[i],
            t_rig as f64 * 1e-9,
            "frame {i} (seq {seq}): the raw frame's time is not its activity's rig time"
        );
    }
    // The test can fail: the device clock is seconds away from the rig's.
    assert!(
        device_offset_s > 2.0,
        "device clock only {device_offset_s} s off"
    );
    assert!(compared > 100, "{compared} recorded frames with activity");
    // And every ROI series time is a raw frame's time.
    let frames: std::collections::BTreeSet<u64> = nwb_movie.iter().map(|t| t.to_bits()).collect();
    let missing = nwb_rois
        .iter()
        .filter(|t| !frames.contains(&t.to_bits()))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} ROI times are no raw frame's",
        nwb_rois.len()
    );
}

#[test]
fn a_killed_session_exports_what_it_recorded() {
    let src = session();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(src.file_name().unwrap());
    fs::create_dir_all(dir.join("calibration/plane0")).unwrap();
    for f in ["manifest.json", "calibration/plane0/cells.json"] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    for f in ["cell_pixels.npy", "cell_weights.npy", "neuropil_pixels.npy"] {
        let p = Path::new("calibration/plane0").join(f);
        fs::copy(src.join(&p), dir.join(&p)).unwrap();
    }
    // What SIGKILL leaves: no summary, the log cut inside a record — here the 100th activity
    // record (in a fast session the frames are all logged before the pipeline catches up).
    let (recs, _) = SessionDir::open(src)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap();
    let cut = recs
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .nth(100)
        .expect("the session has 100 frames of activity")
        .info
        .offset;
    let log = fs::read(src.join("records.log")).unwrap();
    fs::write(dir.join("records.log"), &log[..cut as usize + 7]).unwrap();

    let out = tmp.path().join("killed.nwb");
    let done = nwb::export(&dir, &out).expect("a killed session still exports");
    let said = done.warnings.join("\n");
    assert!(said.contains("summary.json"), "{said}");
    assert!(said.contains("cut short"), "{said}");
    let full = nwb::SessionContents::load(src).unwrap();
    assert!(
        done.frames > 0 && done.frames < full.activity.frames(),
        "{} of {} frames",
        done.frames,
        full.activity.frames()
    );
    // What is in the file is what the cut log holds, and it still reads back.
    check(
        &out,
        &expected(&dir),
        Some(&dir.join(nwb::CALIBRATION_DIR)),
        false,
    );
}

#[test]
fn not_a_session_or_an_older_one_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    let out = tmp.path().join("x.nwb");
    let err = nwb::export(tmp.path(), &out).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("not a twinloop session"),
        "{err}"
    );
    assert!(!out.exists());

    // A manifest from an older twinloop whose config this version does not read.
    let old = tmp.path().join("old");
    fs::create_dir(&old).unwrap();
    fs::write(
        old.join("manifest.json"),
        r#"{"format_version": 1, "twinloop_version": "0.0.1", "created_unix_ms": 0,
            "created_utc": "1970-01-01T00:00:00.000Z", "command_line": ["twinloop"],
            "config": {"rate_hz": 30.0}}"#,
    )
    .unwrap();
    let err = nwb::export(&old, &out).unwrap_err().to_string();
    assert!(
        err.contains(&old.join("manifest.json").display().to_string()) && err.contains("0.0.1"),
        "{err}"
    );
    assert!(!out.exists());
}
