//! `twinloop twin evaluate | tuning`: in-silico experiments on a twin (`twin mei`: mei.rs)
//! (`twinloop_model::insilico`), files in, a JSON report and a short summary out.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use twinloop_model::cli::{load_twin, read_npy_f32};
use twinloop_model::device::{DevicePreference, select_device};
use twinloop_model::insilico::{self, EvalOptions, GratingParams, TuningOptions};
use twinloop_model::train::Recording;

/// The twin to run: weights, config, device.
#[derive(Debug, Args)]
pub struct TwinSource {
    /// Weights (safetensors with fnn's names; see model/scripts/convert_fnn.py).
    #[arg(long)]
    weights: PathBuf,
    /// Network config JSON; default: fnn's released network sized to the weights' units.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run on the CPU even when a CUDA device is available.
    #[arg(long)]
    cpu: bool,
}

impl TwinSource {
    pub(super) fn load(&self) -> anyhow::Result<twinloop_model::Twin> {
        let dev = select_device(if self.cpu {
            DevicePreference::Cpu
        } else {
            DevicePreference::Auto
        });
        load_twin(&self.weights, self.config.as_deref(), &dev)
            .with_context(|| format!("loading the twin from {}", self.weights.display()))
    }
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    twin: TwinSource,
    /// Recording directory: stimulus.npy, perspective.npy, modulation.npy, responses.npy,
    /// recording.json (one response column per twin unit, in order).
    #[arg(long)]
    recording: PathBuf,
    /// True rates [T, units] float32 `.npy` (the simulator's), for the truth correlation.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Frames at the start of each segment predicted but not scored.
    #[arg(long, default_value_t = 0)]
    burn_in: usize,
    /// Report JSON (per unit and medians).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TuningArgs {
    #[command(flatten)]
    twin: TwinSource,
    /// Equally spaced drift directions from 0° (rightward; 90° = upward).
    #[arg(long, default_value_t = 16)]
    directions: usize,
    /// Spatial frequency in cycles per stimulus width (4 ≈ 0.04 cycles/degree when the
    /// stimulus spans ≈ 100° of azimuth).
    #[arg(long, default_value_t = 4.0)]
    cycles_per_width: f64,
    /// Drift in cycles per second.
    #[arg(long, default_value_t = 2.0)]
    temporal_hz: f64,
    /// Twin frames per second.
    #[arg(long, default_value_t = 30.0)]
    frame_hz: f64,
    #[arg(long, default_value_t = 1.0)]
    contrast: f64,
    /// Gray frames before each grating.
    #[arg(long, default_value_t = 30)]
    pre_roll: usize,
    /// Grating frames.
    #[arg(long, default_value_t = 60)]
    frames: usize,
    /// Grating frames not averaged (onset transient).
    #[arg(long, default_value_t = 15)]
    burn_in: usize,
    /// Report JSON (responses per direction, preferred direction/orientation, OSI, DSI).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

pub fn evaluate(a: &EvaluateArgs) -> anyhow::Result<()> {
    let rec = Recording::load(&a.recording)
        .with_context(|| format!("reading the recording {}", a.recording.display()))?;
    let truth = match &a.truth {
        Some(p) => {
            let (shape, data) = read_npy_f32(p)?;
            let want = [rec.len() as u64, rec.units() as u64];
            if shape != want {
                bail!(
                    "{}: shape {shape:?}; the truth must be [frames, units] = {want:?} like \
                     responses.npy",
                    p.display()
                );
            }
            Some(data)
        }
        None => None,
    };
    let mut twin = a.twin.load()?;
    let rep = insilico::evaluate(
        &mut twin,
        &rec,
        truth.as_deref(),
        &EvalOptions { burn_in: a.burn_in },
    )
    .context("twin evaluate failed")?;
    if let Some(out) = &a.out {
        write_json(out, &rep)?;
    }
    let m = &rep.median;
    println!(
        "{} units, {} of {} frames scored (burn-in {}), {} repeated stimuli x {} repeats",
        rep.units.len(),
        rep.scored_frames,
        rep.frames,
        rep.burn_in,
        rep.repeated_stimuli,
        rep.repeats
    );
    println!(
        "median CC_abs {}  CC_max {}  CC_norm {}  single-trial {}  FEVE {}  truth {}",
        fmt(m.cc_abs),
        fmt(m.cc_max),
        fmt(m.cc_norm),
        fmt(m.single_trial),
        fmt(m.feve),
        fmt(m.truth)
    );
    if let Some(out) = &a.out {
        println!("report -> {}", out.display());
    }
    Ok(())
}

pub fn tuning(a: &TuningArgs) -> anyhow::Result<()> {
    let mut twin = a.twin.load()?;
    let opts = TuningOptions {
        directions: a.directions,
        grating: GratingParams {
            cycles_per_width: a.cycles_per_width,
            temporal_hz: a.temporal_hz,
            contrast: a.contrast,
            phase: 0.0,
            frame_hz: a.frame_hz,
        },
        pre_roll: a.pre_roll,
        frames: a.frames,
        burn_in: a.burn_in,
    };
    let rep = insilico::tuning(&mut twin, &opts).context("twin tuning failed")?;
    write_json(&a.out, &rep)?;
    let selective =
        |f: fn(&insilico::UnitTuning) -> f64| rep.units.iter().filter(|t| f(t) >= 0.3).count();
    println!(
        "{} units, {} directions: median OSI {}, median DSI {}; OSI ≥ 0.3: {}, DSI ≥ 0.3: {} -> {}",
        rep.units.len(),
        rep.directions_deg.len(),
        fmt(rep.median_osi),
        fmt(rep.median_dsi),
        selective(|t| t.osi),
        selective(|t| t.dsi),
        a.out.display()
    );
    Ok(())
}
