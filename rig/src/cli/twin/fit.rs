//! `twinloop twin fit`: fit this mouse's twin to a recorded session (or a recording directory)
//! with `twinloop_model::train::fit`. Transfer (default): the core of `--weights` frozen,
//! perspective, modulation and readouts fresh and trained. Readout: only fresh readouts
//! trained on the loaded twin. Full: everything trained, from `--weights` or from scratch.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use twinloop_model::train::{
    FitConfig, FitScope, MouseFit, Recording, fit, fresh_weights, transfer_weights,
};
use twinloop_model::{TwinConfig, Weights};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scope {
    Transfer,
    Readout,
    Full,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// A session directory (records.log) or a recording directory (recording.json, as
    /// `twinloop twin recording` writes it).
    input: PathBuf,
    /// The twin's architecture (JSON); units are taken from the recording.
    #[arg(long)]
    config: PathBuf,
    /// Starting weights: the pretrained core for transfer, the twin for readout or full. Full
    /// without weights trains from scratch.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Scope::Transfer)]
    scope: Scope,
    /// Frames per training clip.
    #[arg(long, default_value_t = 24)]
    clip_frames: usize,
    /// Frames at the start of each clip left out of the loss.
    #[arg(long, default_value_t = 6)]
    burn_in: usize,
    /// Clips per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 2000)]
    max_steps: usize,
    /// Wall-clock budget, seconds (the best weights so far are kept).
    #[arg(long)]
    max_seconds: Option<f64>,
    #[arg(long, default_value_t = 5e-3)]
    learning_rate: f64,
    /// Steps between held-out evaluations.
    #[arg(long, default_value_t = 25)]
    eval_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory: twin.safetensors, config.json, fit.json.
    #[arg(long)]
    out: PathBuf,
}

/// The recording: a recording directory as is, or a session exported at the twin's size.
fn load_recording(input: &Path, cfg: &TwinConfig) -> anyhow::Result<Recording> {
    if input.join("recording.json").exists() {
        return Recording::load(input)
            .with_context(|| format!("reading recording {}", input.display()));
    }
    let rec = crate::offline::twin_data::recording_from_session(
        input,
        cfg.stimulus_height,
        cfg.stimulus_width,
    )
    .with_context(|| format!("reading session {}", input.display()))?;
    for warning in &rec.warnings {
        tracing::warn!(session = %input.display(), "{warning}");
    }
    Ok(rec.recording)
}

pub fn run(args: &FitArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let base = TwinConfig::from_json(&text)
        .with_context(|| format!("config {}", args.config.display()))?;
    let rec = load_recording(&args.input, &base)?;
    let cfg = TwinConfig {
        units: rec.units(),
        ..base.clone()
    };
    let loaded = match &args.weights {
        Some(p) => {
            Some(Weights::load(p).with_context(|| format!("reading weights {}", p.display()))?)
        }
        None => None,
    };
    let start = match (args.scope, &loaded) {
        (Scope::Transfer, Some(w)) => transfer_weights(w, &cfg, args.seed)?,
        (Scope::Transfer | Scope::Readout, None) => {
            bail!("--scope transfer and readout start from a twin: give --weights")
        }
        (Scope::Readout | Scope::Full, Some(w)) => {
            // This mouse's readout is new (its own cells); the rest comes from the file.
            let mut m = w.to_map();
            m.retain(|k, _| !k.starts_with("readout."));
            for (k, v) in fresh_weights(&cfg, args.seed)? {
                if k.starts_with("readout.") {
                    m.insert(k, v);
                }
            }
            m
        }
        (Scope::Full, None) => fresh_weights(&cfg, args.seed)?,
    };
    let fc = FitConfig {
        scope: match args.scope {
            Scope::Transfer => FitScope::Transfer,
            Scope::Readout => FitScope::Readout,
            Scope::Full => FitScope::Full,
        },
        clip_frames: args.clip_frames,
        burn_in: args.burn_in,
        batch: args.batch,
        max_steps: args.max_steps,
        max_seconds: args.max_seconds.unwrap_or(f64::INFINITY),
        learning_rate: args.learning_rate,
        eval_every: args.eval_every,
        seed: args.seed,
        ..FitConfig::default()
    };
    let fitted = fit(
        &base,
        vec![MouseFit {
            recording: &rec,
            weights: start,
        }],
        &fc,
        // The GPU when built with `cuda` and one answers; the CPU (with a notice) otherwise.
        &twinloop_model::select_device(twinloop_model::DevicePreference::Auto),
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    Weights::save(&fitted.weights[0], &args.out.join("twin.safetensors"))?;
    std::fs::write(
        args.out.join("config.json"),
        serde_json::to_string_pretty(&cfg)?,
    )?;
    std::fs::write(
        args.out.join("fit.json"),
        serde_json::to_string_pretty(&fitted.report)?,
    )?;
    let r = &fitted.report;
    println!(
        "fitted {} units on {} frames ({:?}, {} trained values): held-out loss {:.4} -> {:.4} \
         at step {} of {} ({}), {:.0} s -> {}",
        cfg.units,
        rec.len(),
        r.scope,
        r.trained_elements,
        r.initial_val_loss,
        r.best_val_loss,
        r.best_step,
        r.steps,
        r.stopped,
        r.seconds,
        args.out.display()
    );
    Ok(())
}
