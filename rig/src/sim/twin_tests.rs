//! A twin as the mouse's cells (`twin_source`, `twin_cells`): the rates the simulator used are
//! the twin's own prediction, recomputed here through the model crate from the truth files,
//! and a twin that cannot be loaded or imaged is refused naming the field.

use std::path::PathBuf;

use twinloop_model::train::BehaviourStandardisation;
use twinloop_model::{Device, Twin, TwinConfig};

use super::tests::small_config;
use super::twin_cells::resample_bilinear;
use super::twin_source::{TwinMode, TwinNoise, TwinSourceConfig, fov_capacity};
use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

/// Explicit, so the test standardises the truth's behaviour without the code under test.
const STANDARD: BehaviourStandardisation = BehaviourStandardisation {
    perspective_mean: [0.5, -0.25],
    perspective_sd: [4.0, 3.0],
    modulation_mean: [30.0, 5.0],
    modulation_sd: [6.0, 8.0],
};

fn parity_source() -> TwinSourceConfig {
    TwinSourceConfig {
        weights: fixture("parity_weights.safetensors"),
        config: fixture("parity_config.json"),
        noise: TwinNoise::Poisson,
        mode: TwinMode::Full,
        behaviour: None,
        seed: 5,
        standardisation: Some(STANDARD),
    }
}

/// A different random image per frame, so every twin frame sees a new stimulus.
fn random_view(k: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            ((i ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 56)
                as u8
        })
        .collect()
}

#[test]
fn the_cells_fire_at_the_twins_own_prediction() {
    fire_at_the_prediction(TwinMode::Full);
}

/// Fast mode: the same rates and spikes, and each frame is those spike counts, unit `u` in
/// pixel `u`, so the one-pixel footprints extract them back exactly.
#[test]
fn fast_frames_are_the_twins_spike_counts() {
    fire_at_the_prediction(TwinMode::Fast);
}

fn fire_at_the_prediction(mode: TwinMode) {
    let source = TwinSourceConfig {
        mode,
        ..parity_source()
    };
    let loaded = source.load().expect("the parity twin loads");
    let units = loaded.identity.units;
    let geom = SimGeometry {
        imaging_width: 128,
        imaging_height: 128,
        ..SimGeometry::default()
    };
    let mut mouse = SimMouse::with_twin(&small_config(4, units), &geom, &source, loaded)
        .expect("a mouse with the twin's cells");
    let frames = 40u64;
    let frame_ns = (1e9 / geom.imaging_rate_hz).round() as i64;
    let px = geom.view_width * geom.view_height;
    let mut out = vec![0u16; geom.imaging_width * geom.imaging_height];
    let views: Vec<Vec<u8>> = (0..frames).map(|k| random_view(k, px)).collect();
    let mut sent = Vec::new();
    for (k, view) in views.iter().enumerate() {
        let t = RigTime::from_nanos(k as i64 * frame_ns);
        mouse.show(view, t);
        mouse.imaging_frame(t, &mut out);
        sent.push(out.clone());
    }
    assert!(mouse.drive_failure().is_none());
    let dir = tempfile::tempdir().unwrap();
    mouse.write_truth(dir.path()).unwrap();
    let (shape, rates) = twinloop_model::cli::read_npy_f32(&dir.path().join("rates.npy")).unwrap();
    assert_eq!(shape, vec![units as u64, frames]);
    let (_, behaviour) =
        twinloop_model::cli::read_npy_f32(&dir.path().join("behaviour.npy")).unwrap();
    let (_, spikes) = twinloop_model::cli::read_npy_f32(&dir.path().join("spikes.npy")).unwrap();

    // The twin again, from its files, fed what the truth says the mouse saw and did.
    let cfg =
        TwinConfig::from_json(&std::fs::read_to_string(fixture("parity_config.json")).unwrap())
            .unwrap();
    let mut twin =
        Twin::from_file(cfg, &fixture("parity_weights.safetensors"), &Device::Cpu).unwrap();
    let s = STANDARD;
    let (mut expected, mut counted) = (0.0f64, 0.0f64);
    for j in 0..frames as usize - 1 {
        let b = &behaviour[4 * j..4 * j + 4];
        let z = |v: f32, m: f64, sd: f64| ((f64::from(v) - m) / sd) as f32;
        let persp = [
            z(b[0], s.perspective_mean[0], s.perspective_sd[0]),
            z(b[1], s.perspective_mean[1], s.perspective_sd[1]),
        ];
        let modu = [
            z(b[2], s.modulation_mean[0], s.modulation_sd[0]),
            z(b[3], s.modulation_mean[1], s.modulation_sd[1]),
        ];
        let predicted = twin.step_u8(&views[j], &persp, &modu).unwrap();
        // Frame j + 1 gathers the substeps of twin frame j: its mean rate is the prediction
        // per frame times the frame rate.
        for (u, &p) in predicted.iter().enumerate() {
            let used = f64::from(rates[u * frames as usize + j + 1]);
            let want = f64::from(p) * geom.imaging_rate_hz;
            assert!(
                (used - want).abs() <= 1e-4 * want.abs().max(1e-3),
                "frame {} unit {u}: the simulator used {used} Hz, the twin predicts {want} Hz",
                j + 1
            );
            expected += f64::from(p);
            counted += f64::from(spikes[u * frames as usize + j + 1]);
        }
    }
    if mode == TwinMode::Fast {
        for (u, c) in mouse.cells().iter().enumerate() {
            assert_eq!(c.footprint, vec![(u as u32, 1.0)], "cell {u}'s pixel");
        }
        for (k, frame) in sent.iter().enumerate() {
            assert!(
                frame[units..].iter().all(|&p| p == 0),
                "frame {k}: only counts"
            );
            for u in 0..units {
                let want = spikes[u * frames as usize + k];
                assert_eq!(f32::from(frame[u]), want, "frame {k} unit {u}");
            }
        }
    } else {
        // Full mode images cells: the frames are no spike counts.
        assert!(sent.iter().any(|f| f[units..].iter().any(|&p| p != 0)));
    }
    // Poisson noise: the spikes scatter around the predicted counts.
    assert!(expected > 20.0, "the twin predicts some spikes: {expected}");
    assert!(
        (counted - expected).abs() < 5.0 * expected.sqrt(),
        "{counted} spikes against {expected} predicted"
    );
}

#[test]
fn a_twin_that_cannot_be_loaded_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let mut wrong_units: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("parity_config.json")).unwrap())
            .unwrap();
    wrong_units["units"] = 7.into();
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, wrong_units.to_string()).unwrap();
    let cases = [
        (
            dir.path().join("absent.safetensors"),
            fixture("parity_config.json"),
            "source.twin.weights",
            "cannot be read",
        ),
        (
            garbage,
            fixture("parity_config.json"),
            "source.twin.weights",
            "",
        ),
        (
            fixture("parity_weights.safetensors"),
            wrong,
            "source.twin.weights",
            "do not fit",
        ),
        (
            fixture("parity_weights.safetensors"),
            dir.path().join("absent.json"),
            "source.twin.config",
            "cannot be read",
        ),
    ];
    for (weights, config, field, says) in cases {
        let e = TwinSourceConfig {
            weights,
            config,
            ..parity_source()
        }
        .load()
        .err()
        .expect("refused");
        assert_eq!(e.field, field, "{e:?}");
        assert!(e.allowed.contains(says), "{e:?}");
    }
}

#[test]
fn one_imaged_cell_per_unit_or_a_clear_refusal() {
    let source = parity_source();
    let geom = SimGeometry::default();
    let units = 25;
    source
        .check_fits(units, &small_config(1, units), &geom, 1)
        .expect("25 units on 512x512");
    let e = source
        .check_fits(units, &small_config(1, 1000), &geom, 1)
        .unwrap_err();
    assert_eq!(e.field, "sim.neurons");
    assert!(e.allowed.contains("sim.neurons = 25"), "{e:?}");
    assert_eq!(
        source
            .check_fits(units, &small_config(1, units), &geom, 2)
            .unwrap_err()
            .field,
        "imaging.planes"
    );
    // Soma radius up to 4 px: squares of 9 px; a 40x40 FOV holds 4 x 4 of them.
    let tiny = SimGeometry {
        imaging_width: 40,
        imaging_height: 40,
        ..geom
    };
    assert_eq!(fov_capacity(&small_config(1, 16), &tiny), 16);
    source
        .check_fits(16, &small_config(1, 16), &tiny, 1)
        .expect("16 fit");
    let e = source
        .check_fits(17, &small_config(1, 17), &tiny, 1)
        .unwrap_err();
    assert_eq!(e.field, "source.twin.weights");
    assert!(e.allowed.contains("imaging.width"), "{e:?}");
    // Fast mode images nothing: 17 units fit the 40x40 FOV (a pixel each), but not 8x2 pixels.
    let fast = TwinSourceConfig {
        mode: TwinMode::Fast,
        ..parity_source()
    };
    fast.check_fits(17, &small_config(1, 17), &tiny, 1)
        .expect("a pixel per unit");
    let strip = SimGeometry {
        imaging_width: 8,
        imaging_height: 2,
        ..geom.clone()
    };
    let e = fast
        .check_fits(17, &small_config(1, 17), &strip, 1)
        .unwrap_err();
    assert_eq!(e.field, "imaging.width");
    assert!(
        e.allowed.contains("16 pixels") && e.allowed.contains("17 units"),
        "{e:?}"
    );
    // The mouse itself refuses a cell count that is not the twin's.
    let twin = source.load().unwrap();
    let e = SimMouse::with_twin(&small_config(1, 30), &geom, &source, twin)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("sim.neurons"), "{e}");
}

#[test]
fn bilinear_resampling_keeps_a_linear_ramp() {
    // A ramp along x, 4 px per step at the source: the resampled pixel centres land on the
    // ramp's values (within rounding), whatever the size.
    let (fh, fw) = (10, 64);
    let src: Vec<u8> = (0..fh * fw).map(|i| (i % fw) as u8 * 4).collect();
    for (th, tw) in [(5, 32), (20, 100), (10, 64)] {
        let mut dst = vec![0u8; th * tw];
        resample_bilinear(&src, (fh, fw), &mut dst, (th, tw));
        for r in 0..th {
            for c in 1..tw - 1 {
                let x = (c as f64 + 0.5) * fw as f64 / tw as f64 - 0.5;
                let want = 4.0 * x.clamp(0.0, (fw - 1) as f64);
                let got = f64::from(dst[r * tw + c]);
                assert!(
                    (got - want).abs() <= 0.5 + 1e-3,
                    "{th}x{tw} ({r}, {c}): {got} vs {want}"
                );
            }
        }
    }
}
