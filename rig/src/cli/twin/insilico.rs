//! `twinloop twin evaluate | tuning | mei`: in-silico experiments on a twin
//! (`twinloop_model::insilico`), files in, a JSON report and a short summary out.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use twinloop_model::cli::{load_twin, read_npy_f32};
use twinloop_model::device::{DevicePreference, select_device};
use twinloop_model::insilico::{
    self, EvalOptions, GratingParams, MeiOptions, TuningOptions, response_to_clip,
};
use twinloop_model::train::Recording;
use twinloop_model::train::recording::write_npy_u8;

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
    fn load(&self) -> anyhow::Result<twinloop_model::Twin> {
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

#[derive(Debug, Args)]
pub struct MeiArgs {
    #[command(flatten)]
    twin: TwinSource,
    /// Twin unit indices, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    units: Vec<usize>,
    /// Output directory: unit_<u>.npy (u8 [T, H, W]), unit_<u>.png (last frame), mei.json.
    #[arg(long)]
    out: PathBuf,
    /// Presentation length in twin frames.
    #[arg(long, default_value_t = 10)]
    frames: usize,
    /// The objective averages the last this many frames.
    #[arg(long, default_value_t = 5)]
    score_frames: usize,
    /// Optimise a clip (one image per frame) instead of one static image.
    #[arg(long)]
    clip: bool,
    /// Norm bound as RMS contrast around mean gray, in [0, 1] pixel units.
    #[arg(long, default_value_t = 0.1)]
    rms_contrast: f64,
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Step length as a fraction of the norm bound.
    #[arg(long, default_value_t = 0.1)]
    step_size: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
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

/// One MEI's line in `mei.json`.
#[derive(serde::Serialize)]
struct MeiRecord {
    unit: usize,
    response: f64,
    /// The objective of the rounded u8 clip as written.
    response_u8: f64,
    start_response: f64,
    rms_contrast: f64,
    npy: String,
}

pub fn mei(a: &MeiArgs) -> anyhow::Result<()> {
    let mut twin = a.twin.load()?;
    let opts = MeiOptions {
        frames: a.frames,
        static_image: !a.clip,
        score_frames: a.score_frames,
        rms_contrast: a.rms_contrast,
        steps: a.steps,
        step_size: a.step_size,
        seed: a.seed,
    };
    let meis = insilico::mei(&mut twin, &a.units, &opts).context("twin mei failed")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
    let mut records = Vec::new();
    for m in &meis {
        let npy = format!("unit_{}.npy", m.unit);
        write_npy_u8(
            &a.out.join(&npy),
            &[opts.frames as u64, h as u64, w as u64],
            &m.clip,
        )?;
        let last = &m.clip[(opts.frames - 1) * h * w..];
        let png = a.out.join(format!("unit_{}.png", m.unit));
        twinloop_stimulus::content::clip::write_png(&png, w, h, last)
            .map_err(anyhow::Error::msg)?;
        let response_u8 =
            response_to_clip(&mut twin, &m.clip, m.unit, opts.frames, opts.score_frames)?;
        println!(
            "unit {}: response {:.4} (start {:.4}, as u8 {:.4}), RMS contrast {:.3}",
            m.unit, m.response, m.start_response, response_u8, m.rms_contrast
        );
        records.push(MeiRecord {
            unit: m.unit,
            response: m.response,
            response_u8,
            start_response: m.start_response,
            rms_contrast: m.rms_contrast,
            npy,
        });
    }
    write_json(&a.out.join("mei.json"), &records)?;
    println!("{} MEIs -> {}", meis.len(), a.out.display());
    Ok(())
}
