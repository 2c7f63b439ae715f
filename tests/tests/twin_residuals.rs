//! `twinloop twin residuals`: a twin's recorded-noise bank on a recorded session, checked by
//! numpy from the exported recording (`responses.npy`, `recording.json`'s segments) and the
//! exported prediction: numpy selects the rows itself, recomputes every residual, each unit's
//! floor, mean, variance and lag-1 autocorrelation within runs, and compares. A fast twin
//! session drawing from it (`noise = { recorded = ... }`) carries each response as a
//! neighbouring count and replays exactly. A damaged bank and a bank of another twin are
//! refused naming the file.

use std::path::{Path, PathBuf};

use twinloop_e2e::python::python_command;
use twinloop_e2e::{assert_replays_exactly, fast_sim_config, read_npy_f32, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::{Policy, SourceKind};
use twinloop_rig::offline::twin_data::recording_from_session;
use twinloop_rig::offline::twin_residuals::residual_bank;
use twinloop_rig::sim::twin_residuals::{RESIDUALS_FILE, ResidualBank};
use twinloop_rig::sim::{TwinMode, TwinNoise, TwinSourceConfig};
use twinloop_rig::vocab::records::{self, RecordKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

const NUMPY_CHECK: &str = r#"
import json, sys
import numpy as np
rec, bank, burn_in = sys.argv[1], sys.argv[2], int(sys.argv[3])
y = np.load(f"{rec}/responses.npy")
p = np.load(f"{bank}/prediction.npy")
r = np.load(f"{bank}/residuals.npy")
meta = json.load(open(f"{bank}/residuals.json"))
segs = json.load(open(f"{rec}/recording.json"))["segments"]
runs = [list(range(s["start"] + burn_in, s["end"])) for s in segs]
runs = [x for x in runs if x]
rows = [f for x in runs for f in x]
want = y[rows] - p[rows]
assert np.isfinite(p[rows]).all()
assert want.shape == r.shape, (want.shape, r.shape)
assert np.allclose(want, r, rtol=0, atol=1e-5), np.abs(want - r).max()
assert [[a, b] for a, b in meta["runs"]] == [[sum(map(len, runs[:i])), len(x)] for i, x in enumerate(runs)]
assert np.allclose(meta["floor"], y[rows].min(axis=0), atol=0)
def lag1(x):
    num = den = 0.0
    at = 0
    for x_run in runs:
        seg = x[at:at + len(x_run)] - x.mean(axis=0)
        num = num + (seg[1:] * seg[:-1]).sum(axis=0)
        den = den + (seg * seg).sum(axis=0)
        at += len(x_run)
    return num / np.where(den > 0, den, 1)
w64 = want.astype(np.float64)
print(json.dumps({"mean": w64.mean(axis=0).tolist(), "var": w64.var(axis=0).tolist(),
                  "lag1": lag1(w64).tolist(), "rows": len(rows)}))
"#;

#[test]
fn the_residual_bank_is_the_recording_minus_the_prediction_by_numpy() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(&tmp.path().join("s"), 20.0);
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg.sim.neurons = 25; // the fixture twin's units
    cfg.trials.policy = Policy::Random;
    assert_eq!(cfg.source.kind, SourceKind::Sim);
    let s = run_session(&cfg);
    assert_eq!(s.cells, 25);
    let rec = recording_from_session(&s.session_dir, 36, 64).unwrap();
    let rec_dir = tmp.path().join("rec");
    rec.save(&rec_dir).unwrap();
    let (weights, net) = (
        fixture("parity_weights.safetensors"),
        fixture("parity_config.json"),
    );
    let bank_dir = tmp.path().join("bank");
    let meta = residual_bank(&weights, &net, &rec_dir, &bank_dir, 10).unwrap();
    assert_eq!(meta.units, 25);
    assert!(meta.rows > 400, "{}", meta.rows);

    let out = python_command()
        .arg("-c")
        .arg(NUMPY_CHECK)
        .arg(&rec_dir)
        .arg(&bank_dir)
        .arg("10")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["rows"], meta.rows);

    // The bank reads back whole, of this twin; its per-unit means agree with numpy's.
    let w_sha = twinloop_rig::sim::twin_seal::sha256_hex(&std::fs::read(&weights).unwrap());
    let bank = ResidualBank::load(&bank_dir, Some(&w_sha)).unwrap();
    for u in 0..25 {
        let m = (0..bank.meta.rows)
            .map(|r| f64::from(bank.row(r)[u]))
            .sum::<f64>()
            / bank.meta.rows as f64;
        let want = stats["mean"][u].as_f64().unwrap();
        assert!(
            (m - want).abs() <= 1e-9 * want.abs().max(1.0),
            "unit {u}: {m} vs numpy {want}"
        );
    }
    let lag1: Vec<f64> = stats["lag1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(lag1.iter().all(|v| v.is_finite() && v.abs() <= 1.0));

    // A fast twin session drawing from the bank: each frame's activity is the response (the
    // truth's rate per frame: prediction + residual, floored) rounded to a neighbouring count,
    // not a Poisson draw, and the session replays exactly.
    let mut tc = fast_sim_config(&tmp.path().join("t"), 6.0);
    tc.source.kind = SourceKind::Twin;
    tc.source.twin = Some(TwinSourceConfig {
        weights: weights.clone(),
        config: net.clone(),
        noise: TwinNoise::Recorded(bank_dir.clone()),
        mode: TwinMode::Fast,
        behaviour: None,
        seed: 4,
        standardisation: None,
    });
    tc.sim.neurons = 25;
    tc.imaging.width = 64;
    tc.imaging.height = 64;
    tc.session.record_frames = true;
    tc.trials.policy = Policy::Random;
    tc.validate().expect("a valid recorded-noise twin config");
    let t = run_session(&tc);
    let frames = (6.0 * tc.imaging.frame_rate_hz).round() as usize;
    let rates = read_npy_f32(&t.session_dir.join("truth/rates.npy"));
    let dir = SessionDir::open(&t.session_dir).unwrap();
    let (records, _) = dir.open_log().unwrap().read_to_end().unwrap();
    let mut fractional = 0usize;
    for r in records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
    {
        let a = records::decode_activity(&r.payload).unwrap();
        for (u, &v) in a.values.iter().enumerate() {
            let want = rates[u * frames + a.frame_seq as usize] / tc.imaging.frame_rate_hz as f32;
            assert!(
                (v - want).abs() < 1.0 && v >= want.floor() && v <= want.ceil(),
                "frame {} unit {u}: {v} for a response of {want}",
                a.frame_seq
            );
            fractional += usize::from(want.fract() > 0.0);
        }
    }
    assert!(
        fractional > 0,
        "residuals move the responses off whole counts"
    );
    assert_replays_exactly(&t.session_dir, frames as u64);

    // Full mode draws from the same bank: the responses drive Poisson spikes through the
    // simulated microscope (calcium, fluorescence, frames) and the test config's extraction;
    // every frame arrives and is processed, one cell per unit, and the session replays exactly.
    let mut fc = tc.clone();
    fc.session.out_dir = tmp.path().join("f");
    if let Some(twin) = fc.source.twin.as_mut() {
        twin.mode = TwinMode::Full;
    }
    // The microscope places one soma per unit: 25 need more room than 64x64 px.
    fc.imaging.width = 128;
    fc.imaging.height = 128;
    fc.validate()
        .expect("a valid full-mode recorded-noise twin config");
    let f = run_session(&fc);
    assert_eq!(
        f.counters.frames_in, frames as u64,
        "every imaging frame arrived"
    );
    assert_eq!(f.counters.frames_processed, frames as u64);
    assert_eq!(f.cells, 25, "one cell per twin unit");
    let full_rates = read_npy_f32(&f.session_dir.join("truth/rates.npy"));
    assert_eq!(full_rates.len(), 25 * frames);
    assert!(full_rates.iter().all(|r| r.is_finite() && *r >= 0.0));
    assert!(
        full_rates
            .iter()
            .any(|r| (r / fc.imaging.frame_rate_hz as f32).fract() > 0.0),
        "the full mode's rates are the bank's responses, not rounded counts"
    );
    assert_replays_exactly(&f.session_dir, frames as u64);

    // Another twin's bank, and a flipped byte, are refused naming the file.
    let e = ResidualBank::load(&bank_dir, Some(&"0".repeat(64))).unwrap_err();
    assert!(e.to_string().contains("residuals.json"), "{e}");
    assert!(e.to_string().contains("another twin"), "{e}");
    let path = bank_dir.join(RESIDUALS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let e = ResidualBank::load(&bank_dir, None).unwrap_err();
    assert!(e.to_string().contains(RESIDUALS_FILE), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
}
