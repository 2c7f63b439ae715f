//! Cost of one fit step on the CPU: forward and backward of a batch of clips, per scope.
//! `cargo run --release -p twinloop-model --example bench_fit -- [config.json] [batch] [frames]`

use std::time::Instant;

use twinloop_model::train::clips::batch;
use twinloop_model::train::fit::clip_loss;
use twinloop_model::train::params::{FitScope, ParamSet, trains, weights_of};
use twinloop_model::train::{RecordedTrial, Recording, RecordingMeta, fresh_weights};
use twinloop_model::{Device, Twin, TwinConfig};

fn main() {
    twinloop_model::confine_candle_pool();
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map_or("model/weights/sim/config.json", String::as_str);
    let b: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let frames: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(24);
    let cfg =
        TwinConfig::from_json(&std::fs::read_to_string(path).expect("config")).expect("config");
    let (h, w, u) = (cfg.stimulus_height, cfg.stimulus_width, cfg.units);
    let t = b * frames;
    let rec = Recording {
        height: h,
        width: w,
        frames: (0..t * h * w).map(|i| (i * 31 % 251) as u8).collect(),
        perspective: (0..t * 2).map(|i| (i as f32 * 0.01).sin()).collect(),
        modulation: (0..t * 2).map(|i| (i as f32 * 0.02).cos()).collect(),
        responses: (0..t * u).map(|i| (i % 3) as f32).collect(),
        meta: RecordingMeta {
            frame_hz: 30.0,
            unit_ids: (0..u as u32).collect(),
            segments: std::iter::once(0..t).collect(),
            trials: vec![RecordedTrial {
                start: 0,
                frames: t,
                stimulus: "x".into(),
            }],
            standardisation: None,
        },
    };
    let starts: Vec<usize> = (0..b).map(|i| i * frames).collect();
    let clips = batch(&rec, &starts, frames, &Device::Cpu).expect("batch");
    let weights = fresh_weights(&cfg, 1).expect("weights");
    for scope in [FitScope::Readout, FitScope::Transfer, FitScope::Full] {
        let ps = ParamSet::new(&weights, |n| trains(scope, n), &Device::Cpu).expect("params");
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let mut twin = Twin::new(cfg.clone(), &weights_of(&[&ps]), &Device::Cpu).expect("twin");
            let loss = clip_loss(&mut twin, &clips, 4).expect("loss");
            let t1 = Instant::now();
            let _g = loss.backward().expect("backward");
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push(t1.elapsed().as_secs_f64());
        }
        fwd.sort_by(f64::total_cmp);
        bwd.sort_by(f64::total_cmp);
        println!(
            "{scope:?}: batch {b} x {frames} frames: forward {:.3} s, backward {:.3} s (medians of 3); {:.0} clip-frames/s",
            fwd[1],
            bwd[1],
            (b * frames) as f64 / (fwd[1] + bwd[1])
        );
    }
}
