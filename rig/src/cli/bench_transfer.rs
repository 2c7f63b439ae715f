//! `twinloop bench transfer`: the paper's foundation effect on simulated mice. A small core is
//! pretrained on several mice (different seeds: different neurons, tuning and behaviour), then a
//! new mouse is fitted with that core frozen (transfer: perspective, modulation, readouts) and,
//! for comparison, by a twin trained from scratch on the new mouse alone, with growing amounts
//! of its data. Accuracy is the median over units of the correlation between predicted and the
//! simulator's true expected counts on held-out stimuli. `--save DIR` writes the pretrained
//! twin (weights, config, report): the embedded default twin ships from such a run.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

use crate::sim::twin_recording::{SimRecording, SimRecordingPlan, record};
use twinloop_model::insilico::evaluate::{EvalOptions, evaluate};
use twinloop_model::train::{
    FitConfig, FitReport, FitScope, MouseFit, fit, fresh_weights, transfer_weights,
};
use twinloop_model::{Device, Tensor, Twin, TwinConfig, Weights};
use twinloop_stimulus::ViewGeometry;

#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// The twin's architecture (units are set per mouse).
    #[arg(long, default_value = "model/weights/sim/config.json")]
    config: PathBuf,
    /// Mice the core is pretrained on.
    #[arg(long, default_value_t = 3)]
    pretrain_mice: u64,
    /// Minutes of data per pretraining mouse.
    #[arg(long, default_value_t = 6.0)]
    pretrain_minutes: f64,
    /// Neurons per simulated mouse.
    #[arg(long, default_value_t = 80)]
    neurons: usize,
    /// Minutes of the new mouse's data for each point of the curve.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,4")]
    minutes: Vec<f64>,
    /// Minutes of held-out stimuli on the new mouse.
    #[arg(long, default_value_t = 1.5)]
    test_minutes: f64,
    /// Wall-clock budget of the pretraining, seconds.
    #[arg(long, default_value_t = 900.0)]
    pretrain_seconds: f64,
    /// Wall-clock budget of each fit on the new mouse, seconds.
    #[arg(long, default_value_t = 90.0)]
    fit_seconds: f64,
    /// Write the pretrained twin (first pretraining mouse's full weights) here.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Skip pretraining: take the core from this twin (e.g. `model/weights/sim/twin.safetensors`).
    #[arg(long, conflicts_with = "save")]
    pretrained: Option<PathBuf>,
    /// Seed of the new mouse (the pretraining mice are seeds 1..=N).
    #[arg(long, default_value_t = 100)]
    new_mouse_seed: u64,
    /// Results JSON.
    #[arg(long, default_value = "bench/results/transfer.json")]
    out: PathBuf,
}

#[derive(Debug, Serialize)]
struct CurvePoint {
    minutes: f64,
    frames: usize,
    transfer_r_true: Option<f64>,
    scratch_r_true: Option<f64>,
    transfer: FitReport,
    scratch: FitReport,
}

#[derive(Debug, Serialize)]
struct Results {
    neurons: usize,
    pretrain_mice: u64,
    pretrain_minutes: f64,
    test_minutes: f64,
    pretrain_r_true_on_new_mouse_start: Option<f64>,
    /// `None` when the core came from `--pretrained`.
    pretrain: Option<FitReport>,
    new_mouse_seed: u64,
    curve: Vec<CurvePoint>,
    seconds: f64,
}

pub(crate) fn view(cfg: &TwinConfig) -> ViewGeometry {
    ViewGeometry {
        width: cfg.stimulus_width,
        height: cfg.stimulus_height,
        azimuth_deg: (-60.0, 60.0),
        elevation_deg: (-35.0, 35.0),
    }
}

pub(crate) fn plan(
    mouse_seed: u64,
    stimulus_seed: u64,
    neurons: usize,
    minutes: f64,
) -> SimRecordingPlan {
    SimRecordingPlan {
        mouse_seed,
        neurons,
        stimulus_seed,
        minutes,
        stimulus_s: 2.0,
        gray_s: 0.5,
        rate_hz: 30.0,
    }
}

fn r_true(
    weights: &std::collections::HashMap<String, Tensor>,
    cfg: &TwinConfig,
    test: &SimRecording,
) -> Result<Option<f64>> {
    let cfg = TwinConfig {
        units: test.recording.units(),
        ..cfg.clone()
    };
    let mut twin = Twin::new(cfg, &Weights::from_params(weights.clone()), &Device::Cpu)?;
    let rep = evaluate(
        &mut twin,
        &test.recording,
        Some(&test.truth),
        &EvalOptions { burn_in: 10 },
    )?;
    Ok(rep.median.truth)
}

pub(crate) fn fit_config(scope: FitScope, seconds: f64, seed: u64) -> FitConfig {
    FitConfig {
        scope,
        clip_frames: 24,
        burn_in: 6,
        batch: 8,
        max_steps: 100_000,
        max_seconds: seconds,
        learning_rate: 5e-3,
        eval_every: 25,
        patience: 6,
        val_fraction: 0.15,
        place_readouts: true,
        seed,
    }
}

/// Records the pretraining mice and fits one shared core to them (`--save` writes the first
/// mouse's whole twin).
fn pretrain(
    args: &TransferArgs,
    base: &TwinConfig,
    v: ViewGeometry,
) -> Result<(Weights, FitReport)> {
    tracing::info!("recording {} pretraining mice", args.pretrain_mice);
    let pretrain: Vec<SimRecording> = (1..=args.pretrain_mice)
        .map(|s| record(&plan(s, 1000 + s, args.neurons, args.pretrain_minutes), v))
        .collect::<Result<_, _>>()?;
    let mice = pretrain
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cfg = TwinConfig {
                units: r.recording.units(),
                ..base.clone()
            };
            Ok(MouseFit {
                recording: &r.recording,
                weights: fresh_weights(&cfg, 7 + i as u64)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let pre = fit(
        base,
        mice,
        &fit_config(FitScope::Full, args.pretrain_seconds, 1),
        &Device::Cpu,
    )?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)?;
        Weights::save(&pre.weights[0], &dir.join("twin.safetensors"))?;
        let cfg = TwinConfig {
            units: pretrain[0].recording.units(),
            ..base.clone()
        };
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
        std::fs::write(
            dir.join("pretrain.json"),
            serde_json::to_string_pretty(&pre.report)?,
        )?;
    }
    Ok((Weights::from_params(pre.weights[0].clone()), pre.report))
}

pub fn run(args: &TransferArgs) -> Result<()> {
    if args.pretrain_mice == 0 || args.neurons == 0 || args.minutes.is_empty() {
        bail!("--pretrain-mice, --neurons and --minutes need at least one each");
    }
    let started = std::time::Instant::now();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let base = TwinConfig::from_json(&text)?;
    let v = view(&base);
    let new_seed = args.new_mouse_seed;
    if args.pretrained.is_none() && (1..=args.pretrain_mice).contains(&new_seed) {
        bail!(
            "--new-mouse-seed {new_seed} is one of the pretraining mice (1..={})",
            args.pretrain_mice
        );
    }
    let max_minutes = args.minutes.iter().cloned().fold(0.0, f64::max);
    let new_train = record(&plan(new_seed, 2000, args.neurons, max_minutes), v)?;
    let new_test = record(&plan(new_seed, 3000, args.neurons, args.test_minutes), v)?;
    let (pretrained, pre_report) = match &args.pretrained {
        Some(path) => (
            Weights::load(path)
                .with_context(|| format!("reading the pretrained twin {}", path.display()))?,
            None,
        ),
        None => {
            let (w, report) = pretrain(args, &base, v)?;
            (w, Some(report))
        }
    };
    let new_cfg = TwinConfig {
        units: new_train.recording.units(),
        ..base.clone()
    };
    let mut curve = Vec::new();
    let mut start_r = None;
    for &m in &args.minutes {
        let frames = (m * 60.0 * 30.0).round() as usize;
        let data = new_train.recording.head(frames);
        let transfer_start = transfer_weights(&pretrained, &new_cfg, 11)?;
        let transfer = fit(
            &base,
            vec![MouseFit {
                recording: &data,
                weights: transfer_start,
            }],
            &fit_config(FitScope::Transfer, args.fit_seconds, 2),
            &Device::Cpu,
        )?;
        if start_r.is_none() {
            // The pretrained core with readouts only placed (no training): the floor of transfer.
            let placed = fit(
                &base,
                vec![MouseFit {
                    recording: &data,
                    weights: transfer_weights(&pretrained, &new_cfg, 11)?,
                }],
                &FitConfig {
                    max_steps: 0,
                    ..fit_config(FitScope::Transfer, 1.0, 2)
                },
                &Device::Cpu,
            )?;
            start_r = r_true(&placed.weights[0], &base, &new_test)?;
        }
        let scratch = fit(
            &base,
            vec![MouseFit {
                recording: &data,
                weights: fresh_weights(&new_cfg, 13)?,
            }],
            &fit_config(FitScope::Full, args.fit_seconds, 3),
            &Device::Cpu,
        )?;
        let point = CurvePoint {
            minutes: m,
            frames: data.len(),
            transfer_r_true: r_true(&transfer.weights[0], &base, &new_test)?,
            scratch_r_true: r_true(&scratch.weights[0], &base, &new_test)?,
            transfer: transfer.report,
            scratch: scratch.report,
        };
        tracing::info!(
            minutes = m,
            transfer = ?point.transfer_r_true,
            scratch = ?point.scratch_r_true,
            "curve point"
        );
        println!(
            "{m:>5.1} min: transfer r_true {:.3}, scratch r_true {:.3}",
            point.transfer_r_true.unwrap_or(f64::NAN),
            point.scratch_r_true.unwrap_or(f64::NAN)
        );
        curve.push(point);
    }
    let results = Results {
        neurons: args.neurons,
        pretrain_mice: args.pretrain_mice,
        pretrain_minutes: args.pretrain_minutes,
        test_minutes: args.test_minutes,
        pretrain_r_true_on_new_mouse_start: start_r,
        pretrain: pre_report,
        new_mouse_seed: new_seed,
        curve,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("results -> {}", args.out.display());
    Ok(())
}
