//! Parity with fnn on its released network (4 streams, 10,000 units, 144x256): the files
//! `make_parity.py` writes with `PARITY_FULL=DIR` (too large to commit), streamed one frame at
//! a time; prints the largest relative error of the responses and the seconds per frame.
//! `cargo run --release -p twinloop-model --example parity_full -- DIR`

use std::path::PathBuf;
use std::time::Instant;

use twinloop_model::{Device, Tensor, Twin, TwinConfig, Weights};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: parity_full DIR"));
    let cfg = TwinConfig::from_json(
        &std::fs::read_to_string(dir.join("parity_config.json")).expect("config"),
    )
    .expect("config");
    let weights = Weights::load(&dir.join("parity_weights.safetensors")).expect("weights");
    let mut twin = Twin::new(cfg.clone(), &weights, &Device::Cpu).expect("twin");
    let io = Weights::load(&dir.join("parity_io.safetensors")).expect("io");
    let (h, w, u) = (cfg.stimulus_height, cfg.stimulus_width, cfg.units);
    let t = io.dims("response").expect("response")[0];
    let stim = io.get("stimulus_u8", &[t, h, w]).expect("stimulus");
    let pupil = io.get("perspective", &[t, 2]).expect("perspective");
    let behav = io.get("modulation", &[t, 2]).expect("modulation");
    let want = io.get("response", &[t, u]).expect("response");
    let (mut worst, mut times) = (0f32, Vec::new());
    for i in 0..t {
        let s: Tensor = stim
            .get(i)
            .and_then(|s| s.affine(1.0 / 255.0, 0.0))
            .and_then(|s| s.reshape((1, 1, h, w)))
            .expect("frame");
        let started = Instant::now();
        let out = twin
            .step(
                &s,
                &pupil.narrow(0, i, 1).unwrap(),
                &behav.narrow(0, i, 1).unwrap(),
            )
            .expect("step");
        let got: Vec<f32> = out.rate.flatten_all().unwrap().to_vec1().unwrap();
        times.push(started.elapsed().as_secs_f64());
        let exp: Vec<f32> = want.get(i).unwrap().to_vec1().unwrap();
        for (a, b) in got.iter().zip(&exp) {
            worst = worst.max((a - b).abs() / b.abs().max(1e-6));
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "fnn released network ({} streams, {u} units, {h}x{w}), {t} frames streamed: responses \
         max relative error {worst:.3e}; {:.3} s/frame (median)",
        cfg.streams,
        times[t / 2]
    );
}
