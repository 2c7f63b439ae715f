//! The final twin refit at a session's end (`[twin] final_refit_steps`), through the binary:
//! - the default-length closed loop (90 s, 30 trials), which applies no refit round
//!   (`twin_refit_every` = 40), still saves a refitted, sealed twin whose readouts are not the
//!   unfitted ones, which loads as a `[source.twin]`, with its per-unit embeddings beside it
//!   (`twinloop twin embeddings`' code) that read back;
//! - SIGTERM during the final refit leaves the recording whole (the log ends in its `End`
//!   record), no twin file and no temporary file, and the summary says the refit was
//!   interrupted, by which signal, and that no twin was saved.

mod common;

use common::{small_loop_config, twinloop, wait};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use twinloop_rig::backbone::session_log::LogReader;
use twinloop_rig::sim::TwinSourceConfig;
use twinloop_rig::vocab::records::RecordKind;

/// The embedded default session (90 s, default trials and design) on the small fnn fixture
/// twin, fast, small frames, the final refit at `steps` steps.
fn config(dir: &Path, duration_s: f64, steps: usize, max_s: f64) -> PathBuf {
    // The eye camera keeps its size: the embeddings' recording needs the pupil it measures.
    small_loop_config(
        dir,
        "session.toml",
        &[
            ("duration_s = 90.0", format!("duration_s = {duration_s:?}")),
            (
                "final_refit_steps = 60",
                format!("final_refit_steps = {steps}"),
            ),
            (
                "final_refit_max_s = 300.0",
                format!("final_refit_max_s = {max_s:?}"),
            ),
            ("neurons = 1000", "neurons = 12".into()),
        ],
    )
}

fn session_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
        .expect("a session directory")
}

fn summary(session: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(session.join("summary.json")).unwrap()).unwrap()
}

/// Whether the session's log ends in the recorder's `End` record (a whole recording).
fn log_is_whole(session: &Path) -> bool {
    let mut reader = LogReader::open(session.join("records.log")).unwrap();
    let mut buf = Vec::new();
    let mut last = None;
    while let Ok(Some(info)) = reader.next_into(&mut buf) {
        last = RecordKind::from_code(info.kind);
    }
    last == Some(RecordKind::End)
}

fn leftovers(session: &Path) -> Vec<String> {
    std::fs::read_dir(session)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with("live_twin"))
        .collect()
}

#[test]
fn the_default_length_session_saves_a_final_refit_twin_and_its_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 90.0, 6, 3000.0);
    let out = twinloop()
        .arg("run")
        .arg(&cfg)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let session = session_dir(tmp.path());
    let s = summary(&session);
    assert_eq!(s["counters"]["design"]["twin_refits"], 0, "no refit round");
    let f = &s["final_refit"];
    assert_eq!(f["status"], "fitted", "{f}");
    assert_eq!(f["steps"], 6, "{f}");
    assert_eq!(f["units"], 12);
    for k in ["initial_held_out_loss", "best_held_out_loss", "seconds"] {
        assert!(f[k].as_f64().is_some_and(f64::is_finite), "{k}: {f}");
    }
    let live = &s["live_twin"];
    assert_eq!(live["status"], "saved", "{live}");
    assert_eq!(live["final_refit"], true);
    assert_eq!(live["rounds_applied"], 0);

    // It loads as a twin source, identified by the hash the summary gives.
    let weights = session.join("live_twin.safetensors");
    let net = session.join("live_twin.json");
    let source = TwinSourceConfig {
        weights: weights.clone(),
        config: net.clone(),
        noise: Default::default(),
        mode: Default::default(),
        behaviour: None,
        seed: 1,
        standardisation: None,
    };
    let loaded = source
        .load()
        .expect("the saved twin loads as [source.twin]");
    assert_eq!(loaded.identity.units, 12);
    assert_eq!(
        loaded.identity.weights_sha256,
        live["weights_sha256"].as_str().unwrap()
    );

    // Its readouts are fitted: not the fresh readouts the fit started from (the same seed
    // as the refit's), and finite.
    let cfg_json = std::fs::read_to_string(&net).unwrap();
    let tc = twinloop_model::TwinConfig::from_json(&cfg_json).unwrap();
    let fresh = twinloop_model::train::fresh_weights(&tc, 0x7e1f17).unwrap();
    let saved = twinloop_model::Weights::load(&weights).unwrap().to_map();
    let flat = |t: &twinloop_model::Tensor| -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let mut largest = 0f32;
    for (name, t) in fresh.iter().filter(|(k, _)| k.starts_with("readout.")) {
        let a = flat(t);
        let b = flat(&saved[name]);
        assert_eq!(a.len(), b.len(), "{name}");
        assert!(b.iter().all(|v| v.is_finite()), "{name}");
        for (x, y) in a.iter().zip(&b) {
            largest = largest.max((x - y).abs());
        }
    }
    assert!(largest > 1e-3, "the readouts did not move ({largest})");

    // The embeddings beside it read back: one row per unit, of this twin's core, the CSV's
    // features equal to features.npy's.
    let emb = session.join("live_twin_embeddings");
    assert!(stdout.contains("live twin embeddings"), "{stdout}");
    assert!(!stdout.contains("not written"), "{stdout}");
    let (rows, _) =
        twinloop_analysis::wiring::table::read_embeddings(&emb.join("embeddings.csv")).unwrap();
    assert_eq!(rows.len(), 12);
    let (shape, features) = twinloop_model::cli::read_npy_f32(&emb.join("features.npy")).unwrap();
    assert_eq!(shape[0], 12);
    let d = shape[1] as usize;
    for (u, r) in rows.iter().enumerate() {
        assert_eq!(r.cell_id, u as u64);
        assert_eq!(r.core_id, live["core_sha256"].as_str().unwrap());
        assert_eq!(r.features.len(), d);
        for (c, v) in r.features.iter().enumerate() {
            assert!((*v - f64::from(features[u * d + c])).abs() < 1e-5);
        }
        assert!(r.azimuth_deg.is_finite() && r.elevation_deg.is_finite());
    }
    let meta: Value =
        serde_json::from_slice(&std::fs::read(emb.join("embeddings.json")).unwrap()).unwrap();
    assert_eq!(meta["core_id"], live["core_sha256"]);
    assert!(log_is_whole(&session));
}

#[test]
fn sigterm_during_the_final_refit_leaves_the_recording_whole_and_no_twin() {
    let tmp = tempfile::tempdir().unwrap();
    // A refit far longer than the test waits.
    let cfg = config(tmp.path(), 30.0, 1_000_000, 86_400.0);
    let mut child = twinloop()
        .arg("run")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Every line of its log, read on a thread to the end (a full pipe would stall it).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut started = false;
    for line in rx.iter() {
        seen.push(line.clone());
        // The fit's first held-out evaluation: the refit is past its placement, mid-fit.
        if line.contains("final_refit") && line.contains("fit: start") {
            started = true;
            // SAFETY: a plain kill(2) of the child this test spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            break;
        }
    }
    assert!(
        started,
        "the final refit never started:\n{}",
        seen.join("\n")
    );
    let status = wait(&mut child);
    assert!(status.success(), "{status:?}");
    let session = session_dir(tmp.path());
    let s = summary(&session);
    let f = &s["final_refit"];
    assert_eq!(f["status"], "interrupted", "{f}");
    assert_eq!(f["signal"], libc::SIGTERM);
    assert!(f["steps"].as_u64().unwrap() < 1_000_000);
    assert_eq!(s["live_twin"]["status"], "not_saved");
    let reason = s["live_twin"]["reason"].as_str().unwrap();
    assert!(reason.contains("interrupted"), "{reason}");
    assert!(
        s.get("signal").is_none(),
        "the session itself ended normally"
    );
    assert!(leftovers(&session).is_empty(), "{:?}", leftovers(&session));
    assert!(log_is_whole(&session));
}
