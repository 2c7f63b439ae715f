//! The fit against ground truth: a teacher twin (random weights) generates Poisson responses to
//! random drifting gratings with wandering pupil and running. A student that starts from fresh
//! readouts must recover the teacher's rates on held-out clips by the transfer fit, with the
//! core frozen; and the gradient that moves perspective and modulation matches finite
//! differences through the whole twin.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use twinloop_model::train::{
    FitConfig, FitScope, MouseFit, RecordedTrial, Recording, RecordingMeta, fit, fresh_weights,
    transfer_weights,
};
use twinloop_model::{Twin, TwinConfig, Weights};

const TINY: &str = r#"{
  "streams": 1, "units": 24, "stimulus_height": 36, "stimulus_width": 64,
  "perspectives": 2, "modulations": 2,
  "perspective": {"height": 24, "width": 32, "features": [8], "degrees": 75.0,
                  "retina_max_power": 1.0, "retina_eps": 1e-05, "monitor_eps": 1e-05},
  "modulation": {"in_features": 8, "hidden_features": 8, "out_features": 4},
  "feedforward": {"in_spatial": 6, "in_stride": 2, "input_wnorm": true,
                  "block_channels": [8, 16], "block_groups": [1, 2], "block_layers": [2, 2],
                  "block_temporals": [3, 3], "block_spatials": [3, 3], "block_pools": [2, 1],
                  "out_channels": 16},
  "recurrent": {"in_channels": 16, "out_channels": 8, "hidden_channels": 16,
                "common_channels": 32, "groups": 4, "spatial": 3},
  "readout": {"feature_groups": 1}
}"#;

fn tiny() -> TwinConfig {
    TwinConfig::from_json(TINY).unwrap()
}

/// A teacher: fresh weights, units spread over the core map, about one event per frame.
fn teacher(cfg: &TwinConfig, seed: u64) -> HashMap<String, Tensor> {
    let mut w = fresh_weights(cfg, seed).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mu: Vec<f32> = (0..cfg.units * 2)
        .map(|_| (rng.random_range(-0.8f32..0.8)).atanh())
        .collect();
    // Sharper tuning than a fresh readout (whose log-rates barely move on a random core).
    let g = w["readout.feature.gains.0"].affine(4.0, 0.0).unwrap();
    w.insert("readout.feature.gains.0".into(), g);
    w.insert(
        "readout.position.mu".into(),
        Tensor::from_vec(mu, (cfg.units, 2), &Device::Cpu).unwrap(),
    );
    w
}

/// `segments` clips of `frames` frames of random drifting gratings with wandering pupil and
/// running, the teacher's true rates, and Poisson draws from them.
fn record(
    teacher: &HashMap<String, Tensor>,
    cfg: &TwinConfig,
    segments: usize,
    frames: usize,
    seed: u64,
) -> (Recording, Vec<f32>) {
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut twin = Twin::new(
        cfg.clone(),
        &Weights::from_params(teacher.clone()),
        &Device::Cpu,
    )
    .unwrap();
    let params: Vec<[f32; 4]> = (0..segments)
        .map(|_| {
            [
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(0.05..0.25),
                rng.random_range(0.1..0.6),
                rng.random_range(0.0..std::f32::consts::TAU),
            ]
        })
        .collect();
    let u = cfg.units;
    let mut pix = vec![0u8; segments * frames * h * w];
    let mut per = vec![0f32; segments * frames * 2];
    let mut modu = vec![0f32; segments * frames * 2];
    let mut rates = vec![0f32; segments * frames * u];
    for t in 0..frames {
        let mut stim = Vec::with_capacity(segments * h * w);
        let mut p = Vec::with_capacity(segments * 2);
        let mut m = Vec::with_capacity(segments * 2);
        for (s, &[dir, sf, speed, phase]) in params.iter().enumerate() {
            let row = s * frames + t;
            for y in 0..h {
                for x in 0..w {
                    let d = (x as f32 * dir.cos() + y as f32 * dir.sin()) * sf;
                    let v = 0.5 + 0.45 * (d - speed * t as f32 + phase).sin();
                    let q = (v * 255.0).round() as u8;
                    pix[row * h * w + y * w + x] = q;
                    stim.push(f32::from(q) / 255.0);
                }
            }
            let ph = t as f32 / 17.0 + s as f32;
            let (px, py) = (0.8 * ph.sin(), 0.6 * (1.3 * ph).cos());
            let (radius, run) = ((0.7 * ph).sin(), (0.4 * ph + 1.0).cos());
            p.extend([px, py]);
            m.extend([radius, run]);
            per[row * 2..row * 2 + 2].copy_from_slice(&[px, py]);
            modu[row * 2..row * 2 + 2].copy_from_slice(&[radius, run]);
        }
        let out = twin
            .step(
                &Tensor::from_vec(stim, (segments, 1, h, w), &Device::Cpu).unwrap(),
                &Tensor::from_vec(p, (segments, 2), &Device::Cpu).unwrap(),
                &Tensor::from_vec(m, (segments, 2), &Device::Cpu).unwrap(),
            )
            .unwrap();
        let r: Vec<Vec<f32>> = out.rate.to_vec2().unwrap();
        for (s, rs) in r.iter().enumerate() {
            let row = s * frames + t;
            rates[row * u..(row + 1) * u].copy_from_slice(rs);
        }
    }
    let responses: Vec<f32> = rates
        .iter()
        .map(|&r| {
            Poisson::new(f64::from(r).max(1e-6))
                .unwrap()
                .sample(&mut rng) as f32
        })
        .collect();
    let rec = Recording {
        height: h,
        width: w,
        frames: pix,
        perspective: per,
        modulation: modu,
        responses,
        meta: RecordingMeta {
            frame_hz: 30.0,
            unit_ids: (0..u as u32).collect(),
            segments: (0..segments)
                .map(|s| s * frames..(s + 1) * frames)
                .collect(),
            trials: (0..segments)
                .map(|s| RecordedTrial {
                    start: s * frames,
                    frames,
                    stimulus: format!("grating {s}"),
                })
                .collect(),
            standardisation: None,
        },
    };
    (rec, rates)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    twinloop_model::metrics::pearson(a, b).unwrap()
}

/// Median correlation between a twin's rates and the truth on `rec`, over the driven units.
fn recovery(
    weights: &HashMap<String, Tensor>,
    cfg: &TwinConfig,
    rec: &Recording,
    truth: &[f32],
    burn_in: usize,
) -> f64 {
    let starts: Vec<usize> = rec.meta.segments.iter().map(|s| s.start).collect();
    let frames = rec.meta.segments[0].len();
    let clips = twinloop_model::train::clips::batch(rec, &starts, frames, &Device::Cpu).unwrap();
    let mut twin = Twin::new(
        cfg.clone(),
        &Weights::from_params(weights.clone()),
        &Device::Cpu,
    )
    .unwrap();
    let u = cfg.units;
    let mut pred = vec![Vec::new(); u];
    let mut true_r = vec![Vec::new(); u];
    for (t, f) in clips.frames.iter().enumerate() {
        let out = twin
            .step(&f.stimulus, &f.perspective, &f.modulation)
            .unwrap();
        if t < burn_in {
            continue;
        }
        let r: Vec<Vec<f32>> = out.rate.to_vec2().unwrap();
        for (s, rs) in r.iter().enumerate() {
            let row = starts[s] + t;
            for k in 0..u {
                pred[k].push(f64::from(rs[k]));
                true_r[k].push(f64::from(truth[row * u + k]));
            }
        }
    }
    // The units the stimulus drives: the half with the most temporal variance in the truth
    // (the rest are nearly constant and their correlation is noise).
    let var = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / m.max(1e-9)
    };
    let mut order: Vec<usize> = (0..u).collect();
    order.sort_by(|&a, &b| var(&true_r[b]).total_cmp(&var(&true_r[a])));
    let mut rs: Vec<f64> = order[..u / 2]
        .iter()
        .map(|&k| pearson(&pred[k], &true_r[k]))
        .collect();
    rs.sort_by(f64::total_cmp);
    rs[rs.len() / 2]
}

#[test]
fn readout_fit_recovers_a_teachers_readouts() {
    let cfg = tiny();
    let teach = teacher(&cfg, 3);
    let (train, _) = record(&teach, &cfg, 40, 40, 10);
    let (test, truth) = record(&teach, &cfg, 8, 40, 11);
    let logs: Vec<f64> = truth.iter().map(|&r| f64::from(r).ln()).collect();
    let m = logs.iter().sum::<f64>() / logs.len() as f64;
    let sd = (logs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
    eprintln!("teacher log-rate mean {m:.2} sd {sd:.2}");
    // The student: the teacher's weights with a fresh readout (positions at the centre).
    let fresh = fresh_weights(&cfg, 99).unwrap();
    let mut start = teach.clone();
    for (k, v) in &fresh {
        if k.starts_with("readout.") {
            start.insert(k.clone(), v.clone());
        }
    }
    let fc = FitConfig {
        scope: FitScope::Readout,
        clip_frames: 20,
        burn_in: 5,
        batch: 16,
        max_steps: 80,
        eval_every: 20,
        patience: 2,
        learning_rate: 5e-2,
        ..FitConfig::default()
    };
    let fitted = fit(
        &cfg,
        vec![MouseFit {
            recording: &train,
            weights: start.clone(),
        }],
        &fc,
        &Device::Cpu,
    )
    .unwrap();
    let rep = &fitted.report;
    eprintln!("{}", serde_json::to_string(rep).unwrap());
    // The floor: the teacher's own held-out loss on the same clips.
    let floor = fit(
        &cfg,
        vec![MouseFit {
            recording: &train,
            weights: teach.clone(),
        }],
        &FitConfig {
            max_steps: 0,
            place_readouts: false,
            ..fc.clone()
        },
        &Device::Cpu,
    )
    .unwrap()
    .report
    .initial_val_loss;
    eprintln!(
        "held-out loss: start {:.4}, fitted {:.4}, teacher {floor:.4}",
        rep.initial_val_loss, rep.best_val_loss
    );
    assert!(
        rep.best_val_loss - floor < 0.25 * (rep.initial_val_loss - floor),
        "the fit closes most of the gap to the teacher's own loss"
    );
    // Placement: most units start within one and a half core cells (6 x 8 map) of the
    // teacher's position (which lies anywhere, not on cell centres).
    let truth_pos: Vec<Vec<f32>> = teach["readout.position.mu"]
        .tanh()
        .unwrap()
        .to_vec2()
        .unwrap();
    let placed = fit(
        &cfg,
        vec![MouseFit {
            recording: &train,
            weights: start.clone(),
        }],
        &FitConfig {
            max_steps: 0,
            ..fc.clone()
        },
        &Device::Cpu,
    )
    .unwrap();
    let placed_pos: Vec<Vec<f32>> = placed.weights[0]["readout.position.mu"]
        .tanh()
        .unwrap()
        .to_vec2()
        .unwrap();
    let near = truth_pos
        .iter()
        .zip(&placed_pos)
        .filter(|(a, b)| (a[0] - b[0]).abs() <= 0.375 && (a[1] - b[1]).abs() <= 0.5)
        .count();
    eprintln!("placed within 1.5 cells: {near} of {}", cfg.units);
    assert!(
        near * 3 >= cfg.units * 2,
        "placement finds the receptive fields"
    );
    let before = recovery(&start, &cfg, &test, &truth, 5);
    let after = recovery(&fitted.weights[0], &cfg, &test, &truth, 5);
    eprintln!(
        "median r with the teacher's rates (driven units): start {before:.3}, fitted {after:.3}"
    );
    // With the teacher's positions given, the same fit reaches r ~ 0.89: what is left is the
    // positions (local optima of the bilinear readout), not the features.
    assert!(
        after > 0.4,
        "fitted twin follows the teacher: r = {after:.3}"
    );
    assert!(after > before + 0.4, "the fit, not the start, did it");
    // Only the readout moved.
    for (k, v) in &teach {
        let d = (v - &fitted.weights[0][k])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        let d = d.to_scalar::<f32>().unwrap();
        if !k.starts_with("readout.") {
            assert_eq!(d, 0.0, "{k} moved");
        }
    }
}

/// The gradient that moves perspective and modulation, against central differences of the
/// functions it differentiates: the retina's sampling grid (smooth in the MLP's weights: the ray
/// geometry) and the modulation's output. Through the bilinear sampler and the rest of the twin
/// the chain continues with ops whose own backward passes are tested (`ops::grid_sample`) or
/// are candle's.
#[test]
fn perspective_and_modulation_gradients_match_finite_differences() {
    use twinloop_model::modulation::Modulation;
    use twinloop_model::perspective::Perspective;
    use twinloop_model::train::params::{ParamSet, trains, weights_of};
    let cfg = tiny();
    let base = teacher(&cfg, 5);
    let pupil = Tensor::new(&[[0.4f32, -0.3], [-0.7, 0.2]], &Device::Cpu).unwrap();
    // Probe only rays that land near the monitor: rays grazing the plane (the retina's corners,
    // beyond 90 degrees) sit on the clamp, where the grid is huge and not smooth.
    let base_grid = Perspective::load(&Weights::from_params(base.clone()), &cfg, &Device::Cpu)
        .unwrap()
        .grid(&pupil)
        .unwrap();
    let near_monitor = base_grid
        .abs()
        .unwrap()
        .le(1.5f32)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    let probe_grid =
        (Tensor::randn(0f32, 1.0, (2, 24, 32, 2), &Device::Cpu).unwrap() * near_monitor).unwrap();
    let probe_mod = Tensor::randn(0f32, 1.0, (2, 4), &Device::Cpu).unwrap();
    // Scalar functions of the weights: a fixed projection of the grid, and of two modulation steps.
    let grid_fn = |w: &Weights| -> Tensor {
        let p = Perspective::load(w, &cfg, &Device::Cpu).unwrap();
        (p.grid(&pupil).unwrap() * &probe_grid)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let mod_fn = |w: &Weights| -> Tensor {
        let mut m = Modulation::load(w, &cfg, 0, &Device::Cpu).unwrap();
        m.step(&pupil).unwrap();
        (m.step(&pupil).unwrap() * &probe_mod)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let ps = ParamSet::new(&base, |n| trains(FitScope::Transfer, n), &Device::Cpu).unwrap();
    type Probe<'a> = &'a dyn Fn(&Weights) -> Tensor;
    let cases: [(&str, Probe); 4] = [
        ("perspective.out.weights.0", &grid_fn),
        ("perspective.layers.0.biases.0", &grid_fn),
        ("perspective.out.gains.0", &grid_fn),
        ("modulation.proj_i.weights.0", &mod_fn),
    ];
    for (name, f) in cases {
        let w = weights_of(&[&ps]);
        let target = w.get(name, base[name].dims()).unwrap();
        let grads = f(&w).backward().unwrap();
        let g = grads.get(&target).expect("gradient reached the parameter");
        let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        let (idx, &ga) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let at = |delta: f32| -> f64 {
            let mut m = base.clone();
            let t = &m[name];
            let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v[idx] += delta;
            m.insert(
                name.into(),
                Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap(),
            );
            f64::from(f(&Weights::from_params(m)).to_scalar::<f32>().unwrap())
        };
        let h = 1e-2f32;
        let fd = (at(h) - at(-h)) / (2.0 * f64::from(h));
        eprintln!("{name}[{idx}]: autodiff {ga:.5e}, finite difference {fd:.5e}");
        assert!(ga.abs() > 1e-4, "{name}: gradient vanished");
        assert!(
            (f64::from(ga) - fd).abs() <= 0.02 * fd.abs(),
            "{name}: autodiff {ga} vs finite difference {fd}"
        );
    }
}

/// A new mouse on a pretrained core: the core's tensors are the pretrained ones, the rest is
/// fresh and sized to the new mouse; a core of another architecture is refused by name.
#[test]
fn transfer_weights_keep_the_core_and_refuse_a_mismatched_one() {
    let cfg = tiny();
    let pretrained = teacher(&cfg, 7);
    let new_mouse = TwinConfig {
        units: 31,
        ..cfg.clone()
    };
    let w = transfer_weights(&Weights::from_params(pretrained.clone()), &new_mouse, 1).unwrap();
    assert_eq!(w["readout.position.mu"].dims(), &[31, 2]);
    for (k, v) in &pretrained {
        if k.starts_with("core.") {
            let d = (v - &w[k]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{k}");
        }
    }
    let wider =
        TwinConfig::from_json(&TINY.replace("\"out_channels\": 16}", "\"out_channels\": 24}"))
            .unwrap();
    let err = transfer_weights(&Weights::from_params(pretrained), &wider, 1)
        .expect_err("a core of another shape is refused")
        .to_string();
    assert!(err.contains("core.feedforward"), "{err}");
}

/// A recording at another resolution, or too short for one training and one held-out clip,
/// is refused with the fix named.
#[test]
fn fit_refuses_a_wrong_resolution_and_a_too_short_recording() {
    let cfg = tiny();
    let w = teacher(&cfg, 2);
    let (rec, _) = record(&w, &cfg, 2, 12, 1);
    let fc = FitConfig {
        clip_frames: 10,
        burn_in: 2,
        ..FitConfig::default()
    };
    let err = fit(
        &cfg,
        vec![MouseFit {
            recording: &rec,
            weights: w.clone(),
        }],
        &fc,
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("held-out clips"), "{err}");
    let small = TwinConfig::from_json(
        &TINY
            .replace("\"stimulus_height\": 36", "\"stimulus_height\": 18")
            .replace("\"stimulus_width\": 64", "\"stimulus_width\": 32"),
    )
    .unwrap();
    let err = fit(
        &small,
        vec![MouseFit {
            recording: &rec,
            weights: w,
        }],
        &fc,
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("twin's resolution"), "{err}");
}
