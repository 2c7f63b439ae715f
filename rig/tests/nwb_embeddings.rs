//! A twin's per-unit embeddings in the NWB export (issue #21), through the binary: a short
//! closed loop saves its live twin, `twinloop export nwb` writes the twin's embeddings table,
//! and pynwb reads it back equal to what `twinloop twin recording` + `twinloop twin
//! embeddings` write as CSV and npy for the same twin (read by Python, not by the code under
//! test), each unit linked to its ROI, the core's SHA-256 the one the session's summary sealed,
//! and nwbinspector finds nothing critical. A twin of other cells given to the export is
//! refused naming it and both unit counts; a damaged live twin does not cost the session's
//! file (exported without the table, with a warning).
//!
//! Needs the `nwb` feature and a Python with pynwb and nwbinspector (`TWINLOOP_PYTHON`).
#![cfg(feature = "nwb")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixture, small_loop_config, twinloop};
use serde_json::Value;
use twinloop_rig::offline::export::nwb::embeddings as nwb_embeddings;
use twinloop_rig::online::session::live_twin;

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A 20 s closed loop (not real time) on the small fnn fixture twin, refitted every 4 trials
/// (the live-twin test's settings), so the session saves a live twin of its 12 cells.
fn config(dir: &Path) -> PathBuf {
    small_loop_config(
        dir,
        "loop.toml",
        &[
            ("duration_s = 90.0", "duration_s = 20.0".into()),
            ("stimulus_s = 2.0", "stimulus_s = 0.8".into()),
            ("gray_s = 1.0", "gray_s = 0.4".into()),
            ("test_every = 5", "test_every = 3".into()),
            (
                "warmup_trials = 8",
                "warmup_trials = 4\ndeadline_ms = 0.0\ntwin_refit_every = 4\ntwin_refit_steps = 4"
                    .into(),
            ),
            ("neurons = 1000", "neurons = 12".into()),
        ],
    )
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The only session directory under `dir/out`.
fn session(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// Reads the table with pynwb and compares it with the `twin embeddings` files; prints JSON.
const CHECK: &str = r#"
import csv, json, sys
import numpy as np
from nwbinspector import inspect_nwbfile, Importance
from pynwb import NWBHDF5IO, validate

path, emb = sys.argv[1], sys.argv[2]
errors = validate(path=path)
assert not errors, f"pynwb validate: {errors}"
rows = list(csv.DictReader(open(f"{emb}/embeddings.csv")))
features = np.load(f"{emb}/features.npy")
reference = np.load(f"{emb}/reference_responses.npy")
meta = json.load(open(f"{emb}/embeddings.json"))
with NWBHDF5IO(path, "r") as io:
    nwb = io.read()
    t = nwb.analysis["twin_embeddings"]
    ps = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
    n = len(rows)
    assert len(t) == n, f"{len(t)} rows, the CSV has {n}"
    assert list(t["cell_id"][:]) == [int(r["cell_id"]) for r in rows], "cell_id"
    # Each unit's ROI is the plane segmentation's row of its id.
    assert t["roi"].table is ps, "roi does not point at the plane segmentation"
    assert list(t["roi"].data[:]) == [int(r["cell_id"]) for r in rows], "roi rows"
    assert len(ps) == n, f"{len(ps)} ROIs, {n} units"
    for col in ["azimuth_deg", "elevation_deg", "cc_abs", "cc_max"]:
        want = np.array([float(r[col]) for r in rows])
        np.testing.assert_array_equal(np.asarray(t[col][:], dtype=np.float64), want, err_msg=col)
    d = features.shape[1]
    want = np.array([[float(r[f"f{k}"]) for k in range(d)] for r in rows])
    got = np.asarray(t["feature_weights"][:], dtype=np.float64)
    np.testing.assert_array_equal(got, want, err_msg="feature_weights vs the CSV")
    np.testing.assert_array_equal(got.astype(np.float32), features, err_msg="vs features.npy")
    np.testing.assert_array_equal(np.asarray(t["reference_responses"][:]), reference,
                                  err_msg="reference_responses vs the npy")
    assert set(t["core_id"][:]) == {meta["core_id"]}, "core_id"
    for col in ["cell_type", "area"]:
        assert list(t[col][:]) == [r[col] for r in rows], col
    assert meta["core_id"] in t.description, "the description names the core"
    cc_max = np.asarray(t["cc_max"][:])
    cc_abs = np.asarray(t["cc_abs"][:])
worst = [Importance.CRITICAL, Importance.PYNWB_VALIDATION, Importance.ERROR]
bad = [f"{m.check_function_name}: {m.message}" for m in inspect_nwbfile(nwbfile_path=path)
       if m.importance in worst]
assert not bad, f"nwbinspector: {bad}"
print(json.dumps({"rows": n, "features": int(d), "reference": int(reference.shape[1]),
                  "core_id": meta["core_id"], "cc_abs_spread": float(cc_abs.std()),
                  "feature_spread": float(features.std())}))
"#;

#[test]
fn live_twin_embeddings_read_back_as_twin_embeddings_wrote_them() {
    // The export finds the live twin by the names the session writes it under.
    assert_eq!(
        nwb_embeddings::LIVE_TWIN_WEIGHTS,
        live_twin::LIVE_TWIN_WEIGHTS
    );
    assert_eq!(
        nwb_embeddings::LIVE_TWIN_CONFIG,
        live_twin::LIVE_TWIN_CONFIG
    );

    let tmp = tempfile::tempdir().unwrap();
    let o = twinloop()
        .arg("run")
        .arg(config(tmp.path()))
        .output()
        .unwrap();
    ok(&o, "twinloop run");
    let s = session(tmp.path());
    let weights = s.join(live_twin::LIVE_TWIN_WEIGHTS);
    let net = s.join(live_twin::LIVE_TWIN_CONFIG);
    assert!(weights.exists(), "the closed loop saved no live twin");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(s.join("summary.json")).unwrap()).unwrap();
    let sealed_core = summary["live_twin"]["core_sha256"]
        .as_str()
        .unwrap()
        .to_string();

    // What `twin embeddings` writes for this twin, scored on this session.
    let cfg: Value = serde_json::from_slice(&std::fs::read(&net).unwrap()).unwrap();
    let (h, w) = (
        cfg["stimulus_height"].to_string(),
        cfg["stimulus_width"].to_string(),
    );
    let rec = tmp.path().join("rec");
    let o = twinloop()
        .args(["twin", "recording"])
        .arg(&s)
        .arg(&rec)
        .args(["--height", &h, "--width", &w])
        .output()
        .unwrap();
    ok(&o, "twin recording");
    let emb = tmp.path().join("emb");
    let o = twinloop()
        .args(["twin", "embeddings", "--weights"])
        .arg(&weights)
        .arg("--config")
        .arg(&net)
        .arg("--recording")
        .arg(&rec)
        .arg("--out")
        .arg(&emb)
        .output()
        .unwrap();
    ok(&o, "twin embeddings");

    let out = tmp.path().join("session.nwb");
    let o = twinloop()
        .args(["export", "nwb"])
        .arg(&s)
        .arg(&out)
        .output()
        .unwrap();
    ok(&o, "export nwb");
    let py = Command::new(python())
        .args(["-c", CHECK])
        .arg(&out)
        .arg(&emb)
        .output()
        .expect("python with pynwb and nwbinspector (set TWINLOOP_PYTHON)");
    ok(&py, "the pynwb check");
    let v: Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(v["rows"], 12, "{v}");
    assert_eq!(v["core_id"], sealed_core.as_str(), "{v}");
    assert_eq!(v["reference"], 120, "{v}");
    // Not a table of constants: the units differ.
    assert!(v["feature_spread"].as_f64().unwrap() > 0.0, "{v}");

    // A twin of other cells (the 25-unit fixture) is refused, naming it and both counts, and
    // no file is left.
    let other = fixture("parity_weights.safetensors");
    let out2 = tmp.path().join("other.nwb");
    let o = twinloop()
        .args(["export", "nwb"])
        .arg(&s)
        .arg(&out2)
        .arg("--twin-weights")
        .arg(&other)
        .arg("--twin-config")
        .arg(fixture("parity_config.json"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a 25-unit twin of a 12-cell session exported"
    );
    assert!(
        e.contains("parity_weights.safetensors")
            && e.contains("25 units")
            && e.contains("12 cells"),
        "{e}"
    );
    assert!(!out2.exists());

    // The same twin given explicitly is what the live twin gave.
    let out3 = tmp.path().join("given.nwb");
    let o = twinloop()
        .args(["export", "nwb"])
        .arg(&s)
        .arg(&out3)
        .arg("--twin-weights")
        .arg(&weights)
        .arg("--twin-config")
        .arg(&net)
        .output()
        .unwrap();
    ok(&o, "export nwb --twin-weights");
    let py = Command::new(python())
        .args(["-c", CHECK])
        .arg(&out3)
        .arg(&emb)
        .output()
        .unwrap();
    ok(&py, "the pynwb check of the given twin");

    // A flipped byte in the live twin: the session still exports, without the table, saying
    // why; the same twin given explicitly is an error naming the file.
    let bytes = std::fs::read(&weights).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() - 16;
    flipped[at] ^= 0x01;
    std::fs::write(&weights, &flipped).unwrap();
    let out4 = tmp.path().join("damaged.nwb");
    let o = twinloop()
        .args(["export", "nwb"])
        .arg(&s)
        .arg(&out4)
        .output()
        .unwrap();
    ok(&o, "export nwb with a damaged live twin");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("embeddings are not exported") && e.contains("damaged"),
        "{e}"
    );
    let has = Command::new(python())
        .args([
            "-c",
            "import sys; from pynwb import NWBHDF5IO\n\
             with NWBHDF5IO(sys.argv[1], 'r') as io: print('twin_embeddings' in io.read().analysis)",
        ])
        .arg(&out4)
        .output()
        .unwrap();
    ok(&has, "reading the damaged-twin export");
    assert_eq!(String::from_utf8_lossy(&has.stdout).trim(), "False");
    let o = twinloop()
        .args(["export", "nwb"])
        .arg(&s)
        .arg(tmp.path().join("refused.nwb"))
        .arg("--twin-weights")
        .arg(&weights)
        .arg("--twin-config")
        .arg(&net)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("live_twin.safetensors") && e.contains("damaged"),
        "{e}"
    );
}
