//! Parity with fnn (cajal/fnn) on a reduced network: the fixtures were made by fnn's own PyTorch
//! modules with random weights (`fixtures/make_parity.py`), a 32-frame clip with a moving
//! grating, a moving pupil and changing running speed, streaming one frame at a time.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use twinloop_model::{Twin, TwinConfig, Weights};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

struct Fixture {
    cfg: TwinConfig,
    io: Weights,
    twin: Twin,
    frames: usize,
}

fn load() -> Fixture {
    let cfg =
        TwinConfig::from_json(&std::fs::read_to_string(fixture("parity_config.json")).unwrap())
            .unwrap();
    let weights = Weights::load(&fixture("parity_weights.safetensors")).unwrap();
    let twin = Twin::new(cfg.clone(), &weights, &Device::Cpu).unwrap();
    let io = Weights::load(&fixture("parity_io.safetensors")).unwrap();
    Fixture {
        cfg,
        io,
        twin,
        frames: 32,
    }
}

/// max |a - b| / max(|b|, floor) over all elements.
fn max_rel(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f32::max)
}

/// Elements with |a - b| > tol, and the element count.
fn count_off(a: &Tensor, b: &Tensor, tol: f32) -> (usize, usize) {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (
        a.iter()
            .zip(b.iter())
            .filter(|(x, y)| (*x - *y).abs() > tol)
            .count(),
        a.len(),
    )
}

#[test]
fn streaming_clip_matches_fnn() {
    let mut f = load();
    let (t, h, w, u) = (
        f.frames,
        f.cfg.stimulus_height,
        f.cfg.stimulus_width,
        f.cfg.units,
    );
    let stim = f.io.get("stimulus_u8", &[t, h, w]).unwrap();
    let pupil = f.io.get("perspective", &[t, 2]).unwrap();
    let behav = f.io.get("modulation", &[t, 2]).unwrap();
    let want = f.io.get("response", &[t, u]).unwrap();
    let retina_want = f.io.get("retina", &[t, 1, 32, 48]).unwrap();

    let mut worst_resp = 0f32;
    let mut worst_retina = 0f32;
    let (mut retina_off, mut retina_px) = (0usize, 0usize);
    for i in 0..t {
        let s = stim
            .get(i)
            .unwrap()
            .affine(1.0 / 255.0, 0.0)
            .unwrap()
            .reshape((1, 1, h, w))
            .unwrap();
        let p = pupil.narrow(0, i, 1).unwrap();
        let m = behav.narrow(0, i, 1).unwrap();
        let retina = f.twin.perspective(&s, &p).unwrap();
        // The retina image crosses zero (offset -1.4): compare on the image's own scale.
        worst_retina =
            worst_retina.max(max_rel(&retina, &retina_want.narrow(0, i, 1).unwrap(), 2.5));
        let (k, n) = count_off(&retina, &retina_want.narrow(0, i, 1).unwrap(), 2.5e-4);
        retina_off += k;
        retina_px += n;
        let out = f.twin.step(&s, &p, &m).unwrap();
        let e = max_rel(&out.rate, &want.narrow(0, i, 1).unwrap(), 1e-6);
        worst_resp = worst_resp.max(e);
    }
    eprintln!(
        "parity: responses max relative error {worst_resp:.3e}; retina max |err| / 2.5 = \
         {worst_retina:.3e}, {retina_off} of {retina_px} pixels off by more than 1e-4 of scale"
    );
    // The retina image goes through (p + 1e-5)^power with power < 1, whose slope is huge where
    // p is near 0 (the edge of the dark periphery): float rounding in the ray geometry (ours f64,
    // fnn f32) is amplified at a handful of pixels there. Everywhere else it matches to 1e-4.
    assert!(
        worst_retina < 2e-3,
        "retina differs from fnn: {worst_retina:e}"
    );
    assert!(
        retina_off * 10_000 <= retina_px,
        "too many retina pixels off: {retina_off}"
    );
    assert!(
        worst_resp < 1e-4,
        "responses differ from fnn: {worst_resp:e}"
    );
}

#[test]
fn u8_entry_point_matches_tensor_entry_point() {
    let mut f = load();
    let (h, w) = (f.cfg.stimulus_height, f.cfg.stimulus_width);
    let stim = f.io.get("stimulus_u8", &[f.frames, h, w]).unwrap();
    let want = f.io.get("response", &[f.frames, f.cfg.units]).unwrap();
    let pupil =
        f.io.get("perspective", &[f.frames, 2])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
    let behav =
        f.io.get("modulation", &[f.frames, 2])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
    for i in 0..4 {
        let frame: Vec<u8> = stim
            .get(i)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| *v as u8)
            .collect();
        let r = f.twin.step_u8(&frame, &pupil[i], &behav[i]).unwrap();
        let r = Tensor::from_vec(r, (1, f.cfg.units), &Device::Cpu).unwrap();
        assert!(max_rel(&r, &want.narrow(0, i, 1).unwrap(), 1e-6) < 1e-4);
    }
}

#[test]
fn reset_restarts_the_clip() {
    let mut f = load();
    let (h, w) = (f.cfg.stimulus_height, f.cfg.stimulus_width);
    let stim = f.io.get("stimulus_u8", &[f.frames, h, w]).unwrap();
    let want = f.io.get("response", &[f.frames, f.cfg.units]).unwrap();
    let pupil = f.io.get("perspective", &[f.frames, 2]).unwrap();
    let behav = f.io.get("modulation", &[f.frames, 2]).unwrap();
    let step = |twin: &mut Twin, i: usize| {
        let s = stim
            .get(i)
            .unwrap()
            .affine(1.0 / 255.0, 0.0)
            .unwrap()
            .reshape((1, 1, h, w))
            .unwrap();
        twin.step(
            &s,
            &pupil.narrow(0, i, 1).unwrap(),
            &behav.narrow(0, i, 1).unwrap(),
        )
        .unwrap()
        .rate
    };
    for i in 0..3 {
        step(&mut f.twin, i);
    }
    f.twin.reset();
    let r0 = step(&mut f.twin, 0);
    assert!(max_rel(&r0, &want.narrow(0, 0, 1).unwrap(), 1e-6) < 1e-4);
}
