//! The fnn core as the closed loop's frozen core, checked against the twin's own readout: with
//! a grid as fine as the core's map, a readout weighting the frozen core's features at a
//! neuron's position reproduces that neuron's log-rate from the full twin (which itself matches
//! fnn's PyTorch modules, `parity.rs`).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use twinloop_model::frozen_core::{FnnCore, FrozenCore};
use twinloop_model::{Twin, TwinConfig, Weights};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn twin() -> Twin {
    let cfg =
        TwinConfig::from_json(&std::fs::read_to_string(fixture("parity_config.json")).unwrap())
            .unwrap();
    let weights = Weights::load(&fixture("parity_weights.safetensors")).unwrap();
    Twin::new(cfg, &weights, &Device::Cpu).unwrap()
}

/// A drifting square-ish grating, `t` frames of `h x w` u8.
fn clip(t: usize, h: usize, w: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(t * h * w);
    for k in 0..t {
        for y in 0..h {
            for x in 0..w {
                let phase = (x as f32 * 0.21 + y as f32 * 0.07 - k as f32 * 0.6).sin();
                out.push((128.0 + 110.0 * phase) as u8);
            }
        }
    }
    out
}

#[test]
fn a_readout_on_the_frozen_features_reproduces_the_twin() {
    const PREROLL: usize = 3;
    const T: usize = 5;
    let reference = twin();
    let cfg = reference.config().clone();
    let (rows, cols) = cfg.core_size();
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    let frames = clip(T, h, w);

    let mut core = FnnCore::new(twin(), (rows, cols), PREROLL).unwrap();
    assert_eq!(core.input_size(), (h, w));
    let (p, c) = (core.positions(), core.channels());
    assert_eq!(c, cfg.streams * cfg.recurrent.out_channels);
    let mut maps = vec![0f32; T * p * c];
    core.clips(&frames, 1, T, &mut maps).unwrap();

    // The full twin over the same gray pre-roll and clip, pupil centred and behaviour at rest.
    let mut full = twin();
    full.reset();
    let zeros = |k: usize| Tensor::zeros((1, k), candle_core::DType::F32, &Device::Cpu).unwrap();
    let (pupil, behaviour) = (zeros(cfg.perspectives), zeros(cfg.modulations));
    let gray = Tensor::full(128f32 / 255.0, (1, 1, h, w), &Device::Cpu).unwrap();
    for _ in 0..PREROLL {
        full.step(&gray, &pupil, &behaviour).unwrap();
    }
    let positions = reference
        .positions()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let streams: Vec<(Vec<f32>, Vec<f32>)> = reference
        .streams()
        .iter()
        .map(|s| {
            let (wts, bias) = s.readout.weights();
            (
                wts.flatten_all().unwrap().to_vec1().unwrap(),
                bias.flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    let per_stream = cfg.recurrent.out_channels;
    let mut worst = 0f32;
    let mut f = vec![0f32; c];
    for k in 0..T {
        let pix: Vec<f32> = frames[k * h * w..(k + 1) * h * w]
            .iter()
            .map(|&v| f32::from(v) / 255.0)
            .collect();
        let stim = Tensor::from_vec(pix, (1, 1, h, w), &Device::Cpu).unwrap();
        let want = full
            .step(&stim, &pupil, &behaviour)
            .unwrap()
            .log_rate
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let map = &maps[k * p * c..(k + 1) * p * c];
        for (u, &want_u) in want.iter().enumerate() {
            let (x, y) = (positions[2 * u], positions[2 * u + 1]);
            // fnn's align_corners = false: x = -1 is the map's left edge, pixel i's centre is
            // at -1 + (2i + 1) / n.
            let gr = ((y + 1.0) * rows as f32 - 1.0) / 2.0;
            let gc = ((x + 1.0) * cols as f32 - 1.0) / 2.0;
            core.sample(map, gr, gc, &mut f);
            let got: f32 = streams
                .iter()
                .enumerate()
                .map(|(s, (wts, bias))| {
                    let fs = &f[s * per_stream..(s + 1) * per_stream];
                    let ws = &wts[u * per_stream..(u + 1) * per_stream];
                    fs.iter().zip(ws).map(|(a, b)| a * b).sum::<f32>() + bias[u]
                })
                .sum::<f32>()
                / streams.len() as f32;
            worst = worst.max((got - want_u).abs() / want_u.abs().max(1e-3));
        }
    }
    eprintln!("frozen fnn core + readout vs the twin: max relative error {worst:.2e}");
    assert!(worst < 1e-4, "max relative error {worst:.2e}");
}

#[test]
fn clips_run_in_batches_equal_clips_run_alone() {
    let mut core = FnnCore::new(twin(), (3, 4), 2).unwrap();
    let (h, w) = core.input_size();
    let per = core.positions() * core.channels();
    let (a, b) = (clip(3, h, w), clip(6, h, w)[3 * h * w..].to_vec());
    let both: Vec<u8> = a.iter().chain(&b).copied().collect();
    let mut together = vec![0f32; 2 * 3 * per];
    core.clips(&both, 2, 3, &mut together).unwrap();
    let (mut alone_a, mut alone_b) = (vec![0f32; 3 * per], vec![0f32; 3 * per]);
    core.clips(&a, 1, 3, &mut alone_a).unwrap();
    core.clips(&b, 1, 3, &mut alone_b).unwrap();
    let worst = together
        .iter()
        .zip(alone_a.iter().chain(&alone_b))
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "batched vs alone: {worst:.2e}");
    // Different clips give different features; a wrong length is an error naming the argument.
    assert_ne!(alone_a, alone_b);
    let err = core.clips(&a[1..], 1, 3, &mut alone_a).unwrap_err();
    assert!(err.to_string().contains("`frames`"), "{err}");
}

/// `n` different clips of `t` frames (gratings drifting in different directions and speeds).
fn clips(n: usize, t: usize, h: usize, w: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * t * h * w);
    for i in 0..n {
        let (a, b, speed) = (
            (i as f32).cos() * 0.3,
            (i as f32).sin() * 0.3,
            0.3 + 0.2 * i as f32,
        );
        for k in 0..t {
            for y in 0..h {
                for x in 0..w {
                    let phase = (x as f32 * a + y as f32 * b - k as f32 * speed).sin();
                    out.push((128.0 + 120.0 * phase) as u8);
                }
            }
        }
    }
    out
}

/// The pool's path (clips batched, each batch from a copy of one pre-rolled state, batches on
/// parallel threads) against the plainest one: each clip streamed alone through a fresh copy
/// of the shipped pretrained twin after its own gray pre-roll, its core map read at the
/// readout grid's cell centres — with the grid as fine as the map, these are the map's pixel
/// centres, so the reference reads the map's values directly (no sampling code in common).
#[test]
fn pooled_clips_equal_each_clip_streamed_alone_on_the_pretrained_core() {
    const PREROLL: usize = 4;
    const N: usize = 5;
    const T: usize = 6;
    let reference = twinloop_model::pretrained::sim_twin(&Device::Cpu).unwrap();
    let cfg = reference.config().clone();
    let (rows, cols) = cfg.core_size();
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    let frames = clips(N, T, h, w);
    // Batches of 2: two full batches and a shorter last one (two pre-rolled states).
    let mut core = FnnCore::new(reference.clone(), (rows, cols), PREROLL)
        .unwrap()
        .with_batch(2);
    let (p, c) = (core.positions(), core.channels());
    let mut pooled = vec![0f32; N * T * p * c];
    core.clips(&frames, N, T, &mut pooled).unwrap();

    let zeros = |k: usize| Tensor::zeros((1, k), candle_core::DType::F32, &Device::Cpu).unwrap();
    let (pupil, behaviour) = (zeros(cfg.perspectives), zeros(cfg.modulations));
    let gray = Tensor::full(128f32 / 255.0, (1, 1, h, w), &Device::Cpu).unwrap();
    let mut worst = 0f32;
    for i in 0..N {
        let mut twin = reference.clone();
        twin.reset();
        for _ in 0..PREROLL {
            twin.core_features(&gray, &pupil, &behaviour).unwrap();
        }
        for k in 0..T {
            let px = &frames[(i * T + k) * h * w..][..h * w];
            let pix: Vec<f32> = px.iter().map(|&v| f32::from(v) / 255.0).collect();
            let stim = Tensor::from_vec(pix, (1, 1, h, w), &Device::Cpu).unwrap();
            let maps = twin.core_features(&stim, &pupil, &behaviour).unwrap();
            // [1, C, rows, cols] per stream, streams' channels concatenated.
            let want: Vec<Vec<f32>> = maps
                .iter()
                .map(|m| m.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect();
            let per_stream = cfg.recurrent.out_channels;
            let got = &pooled[(i * T + k) * p * c..][..p * c];
            let scale = want
                .iter()
                .flatten()
                .fold(0f32, |a, v| a.max(v.abs()))
                .max(1e-6);
            for pos in 0..p {
                for ch in 0..c {
                    let (s, cs) = (ch / per_stream, ch % per_stream);
                    let e = (got[pos * c + ch] - want[s][cs * p + pos]).abs() / scale;
                    worst = worst.max(e);
                }
            }
        }
    }
    eprintln!("pooled vs streamed alone: max error {worst:.2e} of the map's largest value");
    assert!(worst < 1e-5, "max relative error {worst:.2e}");

    // The gray map is the pre-roll plus one more gray frame.
    let mut gray_map = vec![0f32; p * c];
    core.gray(&mut gray_map).unwrap();
    let mut twin = reference.clone();
    twin.reset();
    let mut last = Vec::new();
    for _ in 0..=PREROLL {
        last = twin.core_features(&gray, &pupil, &behaviour).unwrap();
    }
    let want = last[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for pos in 0..p {
        for ch in 0..c {
            let d = (gray_map[pos * c + ch] - want[ch * p + pos]).abs();
            assert!(
                d <= 1e-5 * want[ch * p + pos].abs().max(1.0),
                "gray map at {pos}, {ch}"
            );
        }
    }
}

/// Replay rebuilds the pool and must reach the same decisions: the features may not depend on
/// how many threads the batches ran on (here: all on this thread vs spread over candle's).
#[test]
fn pooled_features_do_not_depend_on_the_thread_count() {
    let twin = twinloop_model::pretrained::sim_twin(&Device::Cpu).unwrap();
    let mut core = FnnCore::new(twin, (3, 5), 3).unwrap().with_batch(2);
    let (h, w) = core.input_size();
    let (n, t) = (5, 4);
    let frames = clips(n, t, h, w);
    let per = core.positions() * core.channels();
    let mut parallel = vec![0f32; n * t * per];
    core.clips(&frames, n, t, &mut parallel).unwrap();
    let mut one_thread = vec![0f32; n * t * per];
    twinloop_model::ops::conv_cpu::serial(|| core.clips(&frames, n, t, &mut one_thread)).unwrap();
    assert!(
        parallel == one_thread,
        "features differ between thread counts"
    );
}
