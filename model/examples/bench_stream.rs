//! Streaming throughput of the twin on this machine's CPU (or CUDA with `--features cuda`).
//!
//! `cargo run --release -p twinloop-model --example bench_stream -- [frames] [units] [small]`
//! Defaults: fnn's released network (4 streams, 144x256 input), 10,000 units, 10 frames, with
//! synthetic weights (speed does not depend on the values). `small` uses the parity test's
//! reduced network instead.

use std::time::Instant;

use candle_core::Tensor;
use twinloop_model::{DevicePreference, Twin, TwinConfig, Weights, select_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    twinloop_model::confine_candle_pool();
    let args: Vec<String> = std::env::args().collect();
    let frames: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let units: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let small = args.get(3).is_some_and(|s| s == "small");
    let mut cfg = if small {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/parity_config.json");
        TwinConfig::from_json(&std::fs::read_to_string(path)?)?
    } else {
        TwinConfig::default()
    };
    cfg.units = units;
    let dev = select_device(DevicePreference::Auto);
    let weights = Weights::synthetic(7);
    let t0 = Instant::now();
    let mut twin = Twin::new(cfg.clone(), &weights, &dev)?;
    println!(
        "built twin ({} streams, {} units, {}x{} input) in {:.2} s on {:?}; {} weight tensors",
        cfg.streams,
        cfg.units,
        cfg.stimulus_height,
        cfg.stimulus_width,
        t0.elapsed().as_secs_f64(),
        dev,
        weights.taken().len()
    );
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    let mut times = Vec::with_capacity(frames);
    let mut cpu = Vec::with_capacity(frames);
    for i in 0..frames {
        let v: Vec<f32> = (0..h * w)
            .map(|k| ((k % w) as f32 / w as f32 + i as f32 * 0.05).fract())
            .collect();
        let stim = Tensor::from_vec(v, (1, 1, h, w), &dev)?;
        let p = Tensor::from_vec(vec![0.1f32 * i as f32, 0.0], (1, 2), &dev)?;
        let m = Tensor::from_vec(vec![0.5f32, 0.2], (1, 2), &dev)?;
        let t = Instant::now();
        let c = thread_cpu_seconds();
        let out = twin.step(&stim, &p, &m)?;
        let _ = out.rate.sum_all()?.to_scalar::<f32>()?; // synchronise
        times.push(t.elapsed().as_secs_f64());
        cpu.push(thread_cpu_seconds().zip(c).map(|(b, a)| b - a));
    }
    let warm = if times.len() > 2 {
        &times[2..]
    } else {
        &times[..]
    };
    let mean = warm.iter().sum::<f64>() / warm.len() as f64;
    let mut sorted = warm.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{} frames: first {:.3} s, steady mean {:.3} s/frame, median {:.3} s/frame = {:.2} frames/s",
        frames,
        times.first().copied().unwrap_or(0.0),
        mean,
        median,
        1.0 / median
    );
    // With one thread (RAYON_NUM_THREADS=1) all work runs on this thread, so its CPU time is
    // the compute cost per frame, robust to other processes sharing the machine.
    let mut c: Vec<f64> = cpu.iter().skip(2).flatten().copied().collect();
    if !c.is_empty() {
        c.sort_by(f64::total_cmp);
        println!("main-thread CPU time: median {:.3} s/frame", c[c.len() / 2]);
    }
    Ok(())
}

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`), if available.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}
