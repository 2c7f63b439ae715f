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

#[test]
fn batch_of_two_clips_matches_each_clip() {
    // Row 0: the fixture clip; row 1: the same clip with the frames reversed in brightness.
    // Row 0 must still match fnn; row 1 must match a separate single-clip run.
    let mut f = load();
    let mut solo = load().twin;
    let (t, h, w) = (8, f.cfg.stimulus_height, f.cfg.stimulus_width);
    let stim = f.io.get("stimulus_u8", &[f.frames, h, w]).unwrap();
    let want = f.io.get("response", &[f.frames, f.cfg.units]).unwrap();
    let pupil = f.io.get("perspective", &[f.frames, 2]).unwrap();
    let behav = f.io.get("modulation", &[f.frames, 2]).unwrap();
    for i in 0..t {
        let s0 = stim
            .get(i)
            .unwrap()
            .affine(1.0 / 255.0, 0.0)
            .unwrap()
            .reshape((1, 1, h, w))
            .unwrap();
        let s1 = s0.affine(-1.0, 1.0).unwrap();
        let p0 = pupil.narrow(0, i, 1).unwrap();
        let p1 = p0.affine(-0.5, 0.1).unwrap();
        let m0 = behav.narrow(0, i, 1).unwrap();
        let m1 = m0.affine(0.5, 0.3).unwrap();
        let s = Tensor::cat(&[&s0, &s1], 0).unwrap();
        let p = Tensor::cat(&[&p0, &p1], 0).unwrap();
        let m = Tensor::cat(&[&m0, &m1], 0).unwrap();
        let both = f.twin.step(&s, &p, &m).unwrap().rate;
        let one = solo.step(&s1, &p1, &m1).unwrap().rate;
        assert!(
            max_rel(
                &both.narrow(0, 0, 1).unwrap(),
                &want.narrow(0, i, 1).unwrap(),
                1e-6
            ) < 1e-4
        );
        assert!(max_rel(&both.narrow(0, 1, 1).unwrap(), &one, 1e-6) < 1e-5);
    }
}

#[test]
fn predict_cli_matches_fnn() {
    use twinloop_model::cli::{PredictArgs, predict, read_npy_f32, write_npy_f32};
    let f = load();
    let (t, h, w, u) = (
        f.frames,
        f.cfg.stimulus_height,
        f.cfg.stimulus_width,
        f.cfg.units,
    );
    let dir = std::env::temp_dir().join(format!("twinloop-model-predict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stim: Vec<u8> =
        f.io.get("stimulus_u8", &[t, h, w])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| *v as u8)
            .collect();
    {
        use npyz::WriterBuilder;
        let file = std::fs::File::create(dir.join("stim.npy")).unwrap();
        let mut wr = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[t as u64, h as u64, w as u64])
            .writer(std::io::BufWriter::new(file))
            .begin_nd()
            .unwrap();
        wr.extend(stim.iter().copied()).unwrap();
        wr.finish().unwrap();
    }
    let flat = |name: &str| {
        f.io.get(name, &[t, 2])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    write_npy_f32(&dir.join("pupil.npy"), &[t as u64, 2], &flat("perspective")).unwrap();
    write_npy_f32(
        &dir.join("behaviour.npy"),
        &[t as u64, 2],
        &flat("modulation"),
    )
    .unwrap();
    let args = PredictArgs {
        weights: fixture("parity_weights.safetensors"),
        config: Some(fixture("parity_config.json")),
        stimulus: dir.join("stim.npy"),
        pupil_center: dir.join("pupil.npy"),
        behaviour: dir.join("behaviour.npy"),
        out: dir.join("out.npy"),
        device: twinloop_model::DevicePreference::Cpu,
    };
    let summary = predict(&args).unwrap();
    assert_eq!((summary.frames, summary.units), (t, u));
    let (shape, data) = read_npy_f32(&dir.join("out.npy")).unwrap();
    assert_eq!(shape, vec![t as u64, u as u64]);
    let got = Tensor::from_vec(data, (t, u), &Device::Cpu).unwrap();
    let want = f.io.get("response", &[t, u]).unwrap();
    assert!(max_rel(&got, &want, 1e-6) < 1e-4);
    // NaN in a behaviour input is refused, naming the file, frame and column.
    let mut bad = flat("modulation");
    bad[2 * 7 + 1] = f32::NAN;
    write_npy_f32(&dir.join("behaviour.npy"), &[t as u64, 2], &bad).unwrap();
    let err = predict(&args).unwrap_err().to_string();
    assert!(
        err.contains("behaviour.npy") && err.contains("frame 7, column 1"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
