//! `twinloop twin embeddings` end to end: a fitted twin and a recording with repeats in, the
//! anatomy analyses' embeddings table out (read back by `twinloop_analysis`'s own reader and by
//! numpy), the core named by its SHA-256 so that two cores are refused, and bad input named.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use twinloop_analysis::wiring::table::read_embeddings;
use twinloop_model::cli::load_twin;
use twinloop_model::embeddings::{REFERENCE_FRAMES, REFERENCE_SCORED, reference_images};
use twinloop_model::train::{RecordedTrial, Recording, RecordingMeta};
use twinloop_model::{DevicePreference, Tensor, Weights, select_device};

mod common;
use common::{fixture, twinloop};

const UNITS: usize = 25;
/// Trials: two stimuli, alternating.
const TRIALS: usize = 8;

/// Two stimuli shown four times each (40 frames, own segment per trial), responses the fixture
/// twin's own rates with a little noise: repeats give CC_abs and CC_max.
fn recording(dir: &Path) {
    let dev = select_device(DevicePreference::Cpu);
    let mut twin = load_twin(
        &fixture("parity_weights.safetensors"),
        Some(&fixture("parity_config.json")),
        &dev,
    )
    .unwrap();
    let (h, w, len) = (36, 64, 40);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let (mut frames, mut per, mut modu, mut resp, mut trials) =
        (vec![], vec![], vec![], vec![], vec![]);
    for t in 0..TRIALS {
        let s = t % 2;
        twin.reset();
        for f in 0..len {
            let frame: Vec<u8> = (0..h * w)
                .map(|i| {
                    let (x, y) = ((i % w) as f32, (i / w) as f32);
                    let v = if s == 0 {
                        x * 0.4 + f as f32 * 0.6
                    } else {
                        y * 0.5 - f as f32 * 0.3
                    };
                    (v.sin() * 100.0 + 128.0) as u8
                })
                .collect();
            let rates = twin.step_u8(&frame, &[0.0, 0.0], &[0.0, 0.0]).unwrap();
            frames.extend(frame);
            per.extend([0.0f32, 0.0]);
            modu.extend([0.0f32, 0.0]);
            // 2% multiplicative noise: the fixture twin's stimulus-driven modulation is small,
            // so Poisson counts would hide it; here the repeats agree and the twin fits them.
            resp.extend(
                rates
                    .iter()
                    .map(|&r| r * (1.0 + 0.02 * noise.sample(&mut rng) as f32)),
            );
        }
        trials.push(RecordedTrial {
            start: t * len,
            frames: len,
            stimulus: format!("stimulus {s}"),
        });
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
            unit_ids: (100..100 + UNITS as u32).collect(),
            segments: (0..TRIALS).map(|t| t * len..(t + 1) * len).collect(),
            trials,
            standardisation: None,
        },
    }
    .save(dir)
    .unwrap();
}

fn embeddings(weights: &Path, rec: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    twinloop()
        .args(["twin", "embeddings", "--weights"])
        .arg(weights)
        .arg("--config")
        .arg(fixture("parity_config.json"))
        .arg("--recording")
        .arg(rec)
        .args(["--reference", "4", "--burn-in", "5"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The fixture twin with `edit` applied to tensor `name`, saved in `dir`.
fn edited(dir: &Path, file: &str, name: &str, edit: impl Fn(&Tensor) -> Tensor) -> PathBuf {
    let mut map = Weights::load(&fixture("parity_weights.safetensors"))
        .unwrap()
        .to_map();
    let t = edit(&map[name]);
    map.insert(name.to_string(), t);
    let path = dir.join(file);
    Weights::save(&map, &path).unwrap();
    path
}

fn python() -> Option<PathBuf> {
    std::env::var_os("TWINLOOP_PYTHON").map(PathBuf::from)
}

#[test]
fn embeddings_are_the_schema_table_tagged_with_the_core() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    recording(&rec);
    let labels = tmp.path().join("labels.csv");
    std::fs::write(
        &labels,
        "cell_id,cell_type,area\n100,L23_exc,V1\n101,PV,HVA\n",
    )
    .unwrap();
    let out = tmp.path().join("emb");
    let weights = fixture("parity_weights.safetensors");
    let run = embeddings(
        &weights,
        &rec,
        &out,
        &["--labels", labels.to_str().unwrap()],
    );
    ok(&run);

    // The analysis crate's own reader takes the table as it is.
    let (rows, _) = read_embeddings(&out.join("embeddings.csv")).unwrap();
    assert_eq!(rows.len(), UNITS);
    assert_eq!(rows[0].cell_id, 100);
    assert_eq!(
        (rows[0].cell_type.as_str(), rows[0].area.as_str()),
        ("L23_exc", "V1")
    );
    assert_eq!(
        (rows[1].cell_type.as_str(), rows[1].area.as_str()),
        ("PV", "HVA")
    );
    assert_eq!(rows[2].cell_type, "unknown");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("embeddings.json")).unwrap())
            .unwrap();
    assert_eq!(meta["cc_source"], "repeats");
    let core = meta["core_id"].as_str().unwrap().to_string();
    assert_eq!(core.len(), 64, "SHA-256 hex: {core}");
    assert!(rows.iter().all(|r| r.core_id == core));
    // The twin generated these responses, so most units are well predicted on the repeats,
    // and CC_abs never exceeds its ceiling by more than the estimate's noise.
    let scored: Vec<_> = rows.iter().filter(|r| r.cc_max > 0.0).collect();
    assert!(
        scored.len() > UNITS / 2,
        "{} units scored: {:?}",
        scored.len(),
        rows.iter()
            .map(|r| (r.cc_abs, r.cc_max))
            .collect::<Vec<_>>()
    );
    assert!(scored.iter().filter(|r| r.cc_abs > 0.5).count() > scored.len() / 2);
    // Positions lie within the retina's field (fnn: 75 degrees from the axis at most).
    for r in &rows {
        let ecc = r.azimuth_deg.hypot(r.elevation_deg);
        assert!(ecc.is_finite() && ecc <= 75.0 * 2f64.sqrt(), "{ecc}");
    }

    // numpy reads the arrays; features.npy is the table's f-columns.
    if let Some(py) = python() {
        let check = std::process::Command::new(py)
            .arg("-c")
            .arg(
                "import sys, numpy as np\n\
                 d = sys.argv[1]\n\
                 f = np.load(d + '/features.npy'); r = np.load(d + '/reference_responses.npy')\n\
                 t = np.genfromtxt(d + '/embeddings.csv', delimiter=',', names=True, dtype=None, encoding=None)\n\
                 cols = [c for c in t.dtype.names if c.startswith('f') and c[1:].isdigit()]\n\
                 tab = np.stack([t[c] for c in cols], 1)\n\
                 assert f.shape == tab.shape, (f.shape, tab.shape)\n\
                 assert np.allclose(f, tab, rtol=1e-6, atol=1e-7)\n\
                 assert r.shape == (f.shape[0], 4), r.shape\n\
                 assert np.isfinite(r).all() and (r > 0).all()\n",
            )
            .arg(&out)
            .output()
            .unwrap();
        ok(&check);
    }

    // The reference responses are the twin's, run here by hand on u8 frames (its other input
    // path): image i held for REFERENCE_FRAMES frames, mean rate over the last REFERENCE_SCORED.
    let dev = select_device(DevicePreference::Cpu);
    let mut twin = load_twin(&weights, Some(&fixture("parity_config.json")), &dev).unwrap();
    let cfg = twin.config().clone();
    let images = reference_images(&cfg, 4).unwrap();
    let (_, refs) =
        twinloop_model::cli::read_npy_f32(&out.join("reference_responses.npy")).unwrap();
    for (i, img) in images.iter().enumerate() {
        twin.reset();
        let mut mean = [0f64; UNITS];
        for f in 0..REFERENCE_FRAMES {
            let r = twin.step_u8(img, &[0.0, 0.0], &[0.0, 0.0]).unwrap();
            if f + REFERENCE_SCORED >= REFERENCE_FRAMES {
                for (m, v) in mean.iter_mut().zip(r) {
                    *m += f64::from(v) / REFERENCE_SCORED as f64;
                }
            }
        }
        for u in 0..UNITS {
            let got = f64::from(refs[u * 4 + i]);
            assert!(
                (got - mean[u]).abs() <= 1e-4 * (1.0 + mean[u].abs()),
                "unit {u}, image {i}: {got} vs {}",
                mean[u]
            );
        }
    }

    // A new readout on the same core keeps the core id; one flipped core value changes it, and
    // the analysis refuses a table that mixes the two, naming both.
    let readout = edited(tmp.path(), "readout.safetensors", "readout.biases.0", |t| {
        (t + 0.5).unwrap()
    });
    let out_r = tmp.path().join("emb_readout");
    ok(&embeddings(&readout, &rec, &out_r, &[]));
    let core_name = Weights::load(&weights)
        .unwrap()
        .names()
        .into_iter()
        .find(|n| n.starts_with("core."))
        .unwrap();
    let flipped = edited(tmp.path(), "core.safetensors", &core_name, |t| {
        let mut v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v[0] = -v[0] + 1e-3;
        Tensor::from_vec(v, t.dims(), t.device()).unwrap()
    });
    let out_c = tmp.path().join("emb_core");
    ok(&embeddings(&flipped, &rec, &out_c, &[]));
    let id = |d: &Path| -> String {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("embeddings.json")).unwrap())
                .unwrap();
        m["core_id"].as_str().unwrap().to_string()
    };
    assert_eq!(id(&out_r), core);
    let other = id(&out_c);
    assert_ne!(other, core);
    let a = std::fs::read_to_string(out.join("embeddings.csv")).unwrap();
    let b = std::fs::read_to_string(out_c.join("embeddings.csv")).unwrap();
    // Cell ids made distinct, so only the core differs.
    let b_rows: String = b
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.replacen("1", "9", 1)))
        .collect();
    let mixed = tmp.path().join("mixed.csv");
    std::fs::write(&mixed, format!("{a}{b_rows}")).unwrap();
    let e = read_embeddings(&mixed).unwrap_err().to_string();
    assert!(e.contains(&core) && e.contains(&other), "{e}");
}

#[test]
fn embeddings_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    recording(&rec);
    let weights = fixture("parity_weights.safetensors");
    // No repeats and no truth: CC cannot be computed.
    let mut r = Recording::load(&rec).unwrap();
    for (k, t) in r.meta.trials.iter_mut().enumerate() {
        t.stimulus = format!("once {k}");
    }
    let norep = tmp.path().join("norep");
    r.save(&norep).unwrap();
    let o = embeddings(&weights, &norep, &tmp.path().join("a"), &[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("no repeated trials"),
        "{e}"
    );
    // A labels file without the area column.
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, "cell_id,cell_type\n100,PV\n").unwrap();
    let o = embeddings(
        &weights,
        &rec,
        &tmp.path().join("b"),
        &["--labels", labels.to_str().unwrap()],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("missing column `area`"),
        "{e}"
    );
    // A bad cell id, named with its line.
    std::fs::write(&labels, "cell_id,cell_type,area\n100,PV,V1\nabc,PV,V1\n").unwrap();
    let o = embeddings(
        &weights,
        &rec,
        &tmp.path().join("c"),
        &["--labels", labels.to_str().unwrap()],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("line 3") && e.contains("cell_id"),
        "{e}"
    );
}
