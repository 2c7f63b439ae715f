//! `twinloop twin fit` end to end: a recording directory in, a fitted twin out that loads,
//! keeps the pretrained core frozen under transfer and lowers the held-out loss; bad input
//! named.

use rand::SeedableRng;
use rand_distr::{Distribution, Poisson};
use twinloop_model::cli::load_twin;
use twinloop_model::train::{RecordedTrial, Recording, RecordingMeta};
use twinloop_model::{DevicePreference, Weights, select_device};

mod common;
use common::{fixture, twinloop};

/// Three 40-frame segments of moving noise with Poisson responses drawn from the fixture
/// twin's own rates.
fn recording(dir: &std::path::Path) {
    let dev = select_device(DevicePreference::Cpu);
    let mut twin = load_twin(
        &fixture("parity_weights.safetensors"),
        Some(&fixture("parity_config.json")),
        &dev,
    )
    .unwrap();
    let (h, w, u, len, segs) = (36, 64, 25, 40, 3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let (mut frames, mut per, mut modu, mut resp) = (vec![], vec![], vec![], vec![]);
    for s in 0..segs {
        twin.reset();
        for f in 0..len {
            let frame: Vec<u8> = (0..h * w)
                .map(|i| {
                    (((i % w) as f32 * 0.3 + f as f32 * 0.5 + s as f32).sin() * 100.0 + 128.0) as u8
                })
                .collect();
            let p = [(f as f32 * 0.1).sin(), 0.2];
            let m = [(f as f32 * 0.07).cos(), 0.5];
            let rates = twin.step_u8(&frame, &p, &m).unwrap();
            frames.extend(frame);
            per.extend(p);
            modu.extend(m);
            resp.extend(rates.iter().map(|&r| {
                Poisson::new(f64::from(r).max(1e-6))
                    .unwrap()
                    .sample(&mut rng) as f32
            }));
        }
    }
    Recording {
        height: h,
        width: w,
        frames,
        perspective: per,
        modulation: modu,
        responses: resp,
        meta: RecordingMeta {
            frame_hz: 30.0,
            unit_ids: (0..u as u32).collect(),
            segments: (0..segs).map(|s| s * len..(s + 1) * len).collect(),
            trials: (0..segs)
                .map(|s| RecordedTrial {
                    start: s * len,
                    frames: len,
                    stimulus: format!("noise {s}"),
                })
                .collect(),
            standardisation: None,
        },
    }
    .save(dir)
    .unwrap();
}

#[test]
fn transfer_fit_writes_a_twin_that_loads_with_its_core_frozen() {
    let tmp = std::env::temp_dir().join(format!("twinloop-fit-{}", std::process::id()));
    let rec = tmp.join("rec");
    recording(&rec);
    let out = tmp.join("fitted");
    let run = twinloop()
        .args(["twin", "fit"])
        .arg(&rec)
        .arg("--config")
        .arg(fixture("parity_config.json"))
        .arg("--weights")
        .arg(fixture("parity_weights.safetensors"))
        .args(["--clip-frames", "10", "--burn-in", "3", "--batch", "4"])
        .args([
            "--max-steps",
            "6",
            "--eval-every",
            "3",
            "--learning-rate",
            "0.02",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    assert_eq!(report["scope"], "transfer");
    assert_eq!(report["steps"], 6);
    let (initial, best) = (
        report["initial_val_loss"].as_f64().unwrap(),
        report["best_val_loss"].as_f64().unwrap(),
    );
    assert!(best < initial, "held-out loss {initial} -> {best}");
    // The output is a twin of this recording's units, and its core is the pretrained one.
    let dev = select_device(DevicePreference::Cpu);
    load_twin(
        &out.join("twin.safetensors"),
        Some(&out.join("config.json")),
        &dev,
    )
    .unwrap();
    let fitted = Weights::load(&out.join("twin.safetensors"))
        .unwrap()
        .to_map();
    let pre = Weights::load(&fixture("parity_weights.safetensors"))
        .unwrap()
        .to_map();
    let mut cores = 0;
    for (k, v) in &pre {
        if k.starts_with("core.") {
            let d = (v - &fitted[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{k} moved");
            cores += 1;
        }
    }
    assert!(cores > 10);
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn fit_names_what_is_wrong() {
    let tmp = std::env::temp_dir().join(format!("twinloop-fit-bad-{}", std::process::id()));
    let rec = tmp.join("rec");
    recording(&rec);
    let run = twinloop()
        .args(["twin", "fit"])
        .arg(&rec)
        .arg("--config")
        .arg(fixture("parity_config.json"))
        .arg("--out")
        .arg(tmp.join("x"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("give --weights"), "{err}");
    let small = tmp.join("small.json");
    let cfg = std::fs::read_to_string(fixture("parity_config.json"))
        .unwrap()
        .replace("\"stimulus_height\": 36", "\"stimulus_height\": 18");
    std::fs::write(&small, cfg).unwrap();
    let run = twinloop()
        .args(["twin", "fit"])
        .arg(&rec)
        .arg("--config")
        .arg(&small)
        .args(["--scope", "full", "--out"])
        .arg(tmp.join("y"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("twin's resolution"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
