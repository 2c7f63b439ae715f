//! `twinloop twin evaluate | tuning | mei` end to end on the small parity network: files in,
//! reports and images out, bad input named.

use std::process::Command;

use twinloop_model::cli::{load_twin, read_npy_u8};
use twinloop_model::train::{RecordedTrial, Recording, RecordingMeta};

mod common;
use common::{fixture, twinloop};

fn twin_args(cmd: &mut Command) -> &mut Command {
    cmd.arg("--weights")
        .arg(fixture("parity_weights.safetensors"))
        .arg("--config")
        .arg(fixture("parity_config.json"))
        .arg("--cpu")
}

/// Two repeats (two segments) of one 6-frame clip; responses are the twin's own predictions
/// (reset per segment), so every score is 1.
fn recording_of_the_twin() -> Recording {
    let mut twin = load_twin(
        &fixture("parity_weights.safetensors"),
        Some(&fixture("parity_config.json")),
        &twinloop_model::select_device(twinloop_model::DevicePreference::Cpu),
    )
    .unwrap();
    let (h, w, u) = (36, 64, 25);
    let len = 6;
    let clip: Vec<u8> = (0..len * h * w).map(|i| ((i * 31) % 256) as u8).collect();
    let pupil: Vec<f32> = (0..len * 2).map(|i| 0.05 * i as f32).collect();
    let behav: Vec<f32> = (0..len * 2).map(|i| (i as f32 * 0.4).sin()).collect();
    let mut responses = Vec::new();
    for _ in 0..2 {
        twin.reset();
        for f in 0..len {
            responses.extend(
                twin.step_u8(
                    &clip[f * h * w..(f + 1) * h * w],
                    &pupil[2 * f..2 * f + 2],
                    &behav[2 * f..2 * f + 2],
                )
                .unwrap(),
            );
        }
    }
    Recording {
        height: h,
        width: w,
        frames: clip.repeat(2),
        perspective: pupil.repeat(2),
        modulation: behav.repeat(2),
        responses,
        meta: RecordingMeta {
            frame_hz: 30.0,
            unit_ids: (0..u as u32).collect(),
            segments: vec![0..len, len..2 * len],
            trials: (0..2)
                .map(|k| RecordedTrial {
                    start: k * len,
                    frames: len,
                    stimulus: "clip".into(),
                })
                .collect(),
            standardisation: None,
        },
    }
}

#[test]
fn evaluate_writes_per_unit_scores_and_names_a_unit_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = recording_of_the_twin();
    let dir = tmp.path().join("rec");
    rec.save(&dir).unwrap();
    let truth = tmp.path().join("truth.npy");
    twinloop_model::cli::write_npy_f32(&truth, &[12, 25], &rec.responses).unwrap();
    let report = tmp.path().join("report.json");
    let out = twin_args(twinloop().args(["twin", "evaluate"]))
        .arg("--recording")
        .arg(&dir)
        .arg("--truth")
        .arg(&truth)
        .args(["--burn-in", "1", "--out"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CC_norm 1.000") && stdout.contains("truth 1.000"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["scored_frames"], 10);
    assert_eq!(json["units"].as_array().unwrap().len(), 25);
    let feve = json["units"][7]["feve"].as_f64().unwrap();
    assert!((feve - 1.0).abs() < 1e-5, "{feve}");

    // A session with one cell fewer than the weights: both counts named, non-zero exit.
    let mut fewer = rec.clone();
    fewer.meta.unit_ids.pop();
    fewer.responses = fewer
        .responses
        .chunks(25)
        .flat_map(|r| r[..24].to_vec())
        .collect();
    let dir2 = tmp.path().join("fewer");
    fewer.save(&dir2).unwrap();
    let out = twin_args(twinloop().args(["twin", "evaluate"]))
        .arg("--recording")
        .arg(&dir2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("24 units") && err.contains("weights have 25"),
        "{err}"
    );
}

#[test]
fn tuning_writes_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tuning = tmp.path().join("tuning.json");
    let out = twin_args(twinloop().args(["twin", "tuning"]))
        .args([
            "--directions",
            "4",
            "--pre-roll",
            "2",
            "--frames",
            "4",
            "--burn-in",
            "1",
            "--out",
        ])
        .arg(&tuning)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tuning).unwrap()).unwrap();
    assert_eq!(json["directions_deg"][1], 90.0);
    let u0 = &json["units"][0];
    assert_eq!(u0["responses"].as_array().unwrap().len(), 4);
    let osi = u0["osi"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&osi));
}

/// Pixel mean and RMS contrast in [0, 1] units, computed here, not by the code under test.
fn photometry(pixels: &[u8]) -> (f64, f64) {
    let n = pixels.len() as f64;
    let x: Vec<f64> = pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// `twin mei` on the parity network: each MEI is one image within ±5% of the asked mean
/// luminance and RMS contrast (measured here), byte for byte the inception design's own
/// function's output in process, its PNG the same pixels, its predictions the design's; bad
/// flags are named.
#[test]
fn twin_mei_writes_the_design_phases_meis_on_budget() {
    use twinloop_model::insilico::StimulusBudget;
    use twinloop_rig::stages::decide::inception::design;
    let tmp = tempfile::tempdir().unwrap();
    let meis = tmp.path().join("mei");
    let (units, mean, rms, frames, steps, seed) = ([0usize, 7], 0.4, 0.12, 3usize, 3usize, 11u64);
    let out = twin_args(twinloop().args(["twin", "mei"]))
        .args([
            "--units",
            "0,7",
            "--mean-luminance",
            "0.4",
            "--rms-contrast",
            "0.12",
        ])
        .args(["--frames", "3", "--steps", "3", "--seed", "11", "--out"])
        .arg(&meis)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut twin = load_twin(
        &fixture("parity_weights.safetensors"),
        Some(&fixture("parity_config.json")),
        &twinloop_model::select_device(twinloop_model::DevicePreference::Cpu),
    )
    .unwrap();
    let mut model = design::responder(&mut twin, frames).unwrap();
    let budget = StimulusBudget {
        mean_luminance: mean,
        rms_contrast: rms,
    };
    let want = design::synthesise_meis(&mut model, &units, budget, steps, seed).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(meis.join("mei.json")).unwrap()).unwrap();
    for (k, &u) in units.iter().enumerate() {
        let (shape, px) = read_npy_u8(&meis.join(format!("unit_{u}.npy"))).unwrap();
        assert_eq!(shape, [36, 64]);
        assert_eq!(px, want[k], "unit {u}: the CLI's MEI is the design's");
        let (m, c) = photometry(&px);
        assert!((m - mean).abs() <= 0.05 * mean, "unit {u}: mean {m}");
        assert!((c - rms).abs() <= 0.05 * rms, "unit {u}: RMS contrast {c}");
        let (h, w, png) =
            twinloop_stimulus::content::clip::read_png(&meis.join(format!("unit_{u}.png")))
                .unwrap();
        assert_eq!((h, w), (36, 64));
        assert_eq!(png, px);
        let entry = &json["meis"][k];
        assert_eq!(entry["unit"], u);
        assert_eq!(entry["predicted"].as_array().unwrap().len(), units.len());
    }
    // The predictions are the design's for the same images.
    let batch = units
        .iter()
        .zip(&want)
        .map(|(u, px)| {
            (
                twinloop_rig::stages::decide::inception::records::StimulusId(format!("{u}")),
                twinloop_rig::stages::decide::inception::records::RoleTag {
                    role: twinloop_rig::stages::decide::inception::records::Role::Random,
                    target: None,
                },
                px.clone(),
            )
        })
        .collect();
    let predicted = design::predict(&mut model, &units, batch, (36, 64)).unwrap();
    for (k, p) in predicted.iter().enumerate() {
        let got: Vec<f64> = serde_json::from_value(json["meis"][k]["predicted"].clone()).unwrap();
        assert_eq!(got, p.predicted);
    }

    for (flags, named) in [
        (vec!["--units", "30"], "--units"),
        (
            vec!["--units", "0", "--rms-contrast", "0.6"],
            "--rms-contrast",
        ),
        (
            vec!["--units", "0", "--rms-contrast", "0"],
            "--rms-contrast",
        ),
        (
            vec!["--units", "0", "--mean-luminance", "1.5"],
            "--mean-luminance",
        ),
        (vec!["--units", "0", "--frames", "1"], "--frames"),
        (vec!["--units", "0", "--steps", "0"], "--steps"),
    ] {
        let out = twin_args(twinloop().args(["twin", "mei"]))
            .args(&flags)
            .arg("--out")
            .arg(&meis)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{flags:?}: {err}");
        if flags[1] == "30" {
            assert!(err.contains("unit 30") && err.contains("25 units"), "{err}");
        }
    }
}
