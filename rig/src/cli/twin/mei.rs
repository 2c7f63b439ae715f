//! `twinloop twin mei`: the inception design phase's MEIs on any fitted twin (`twin fit`'s
//! weights, or fnn's). The images come from
//! [`design::synthesise_meis`](crate::stages::decide::inception::design::synthesise_meis) and
//! the predictions from [`design::predict`], the functions the live design runs, so an MEI
//! made here with a session's budget, steps, frames and seed is the one the session showed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use twinloop_model::insilico::{ImageStats, StimulusBudget};
use twinloop_model::train::recording::write_npy_u8;

use super::insilico::{TwinSource, write_json};
use crate::stages::decide::inception::design;
use crate::stages::decide::inception::records::{Contrast, Role, RoleTag, StimulusId};

#[derive(Debug, Args)]
pub struct MeiArgs {
    #[command(flatten)]
    twin: TwinSource,
    /// Twin unit indices, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    units: Vec<usize>,
    /// Output directory: unit_<u>.npy (u8 [H, W]), unit_<u>.png, mei.json.
    #[arg(long)]
    out: PathBuf,
    /// The budget's mean luminance, in (0, 1) pixel units (`[inception] mean_luminance`).
    #[arg(long, default_value_t = 0.5)]
    mean_luminance: f64,
    /// The budget's RMS contrast around it, in [0, 1] pixel units (`[inception] low_contrast`
    /// or `full_contrast`).
    #[arg(long, default_value_t = 0.1)]
    rms_contrast: f64,
    /// Presentation length in twin frames; the objective averages the last half
    /// (`[inception] design_frames`, 2 ..= 60).
    #[arg(long, default_value_t = 10)]
    frames: usize,
    /// Gradient steps (`[inception] mei_steps`, 1 ..= 2000).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Seed of the random start (a session's round r used its `trials.seed`-derived design
    /// seed XOR r).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// One MEI's entry in `mei.json`.
#[derive(Serialize)]
struct MeiRecord {
    unit: usize,
    npy: String,
    png: String,
    /// Measured on the u8 image as written.
    mean_luminance: f64,
    rms_contrast: f64,
    /// The twin's predicted response of every requested unit to this image, in `units` order.
    predicted: Vec<f64>,
}

#[derive(Serialize)]
struct MeiReport {
    units: Vec<usize>,
    mean_luminance: f64,
    rms_contrast: f64,
    frames: usize,
    steps: usize,
    seed: u64,
    /// Wall seconds of the synthesis (all units together), for comparison with a design phase.
    seconds: f64,
    meis: Vec<MeiRecord>,
}

/// The flags as the design takes them; each bad one named with what it allows.
fn check(a: &MeiArgs, units: usize) -> anyhow::Result<StimulusBudget> {
    let budget = StimulusBudget {
        mean_luminance: a.mean_luminance,
        rms_contrast: a.rms_contrast,
    };
    let m = a.mean_luminance;
    if !(m.is_finite() && m > 0.0 && m < 1.0) {
        bail!("--mean-luminance {m}: need a value in (0, 1)");
    }
    if let Err(e) = budget.validate() {
        bail!(
            "--rms-contrast {}: {e} (at --mean-luminance {m} the largest is {:.4})",
            a.rms_contrast,
            (m * (1.0 - m)).sqrt()
        );
    }
    if !(2..=60).contains(&a.frames) {
        bail!("--frames {}: need 2 ..= 60 twin frames", a.frames);
    }
    if !(1..=2000).contains(&a.steps) {
        bail!("--steps {}: need 1 ..= 2000 gradient steps", a.steps);
    }
    if let Some(u) = a.units.iter().find(|&&u| u >= units) {
        bail!(
            "--units: unit {u} is not in the twin ({units} units: 0 ..= {})",
            units.saturating_sub(1)
        );
    }
    Ok(budget)
}

pub fn mei(a: &MeiArgs) -> anyhow::Result<()> {
    let mut twin = a.twin.load()?;
    let budget = check(a, twin.config().units)?;
    let mut model = design::responder(&mut twin, a.frames).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let images = design::synthesise_meis(&mut model, &a.units, budget, a.steps, a.seed)
        .map_err(anyhow::Error::msg)
        .context("twin mei failed")?;
    let seconds = started.elapsed().as_secs_f64();
    let (h, w) = twinloop_model::insilico::Responder::stimulus_size(&model);
    // The tag only names the images for the prediction batch.
    let tag = RoleTag {
        role: Role::Mei {
            contrast: Contrast::Low,
        },
        target: None,
    };
    let batch = a
        .units
        .iter()
        .zip(&images)
        .map(|(u, px)| (StimulusId(format!("unit_{u}")), tag, px.clone()))
        .collect();
    let predicted =
        design::predict(&mut model, &a.units, batch, (h, w)).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut meis = Vec::new();
    for ((&unit, px), p) in a.units.iter().zip(&images).zip(predicted) {
        let npy = format!("unit_{unit}.npy");
        let png = format!("unit_{unit}.png");
        write_npy_u8(&a.out.join(&npy), &[h as u64, w as u64], px)?;
        twinloop_stimulus::content::clip::write_png(&a.out.join(&png), w, h, px)
            .map_err(anyhow::Error::msg)?;
        let stats = ImageStats::of_u8(px);
        tracing::info!(
            unit,
            predicted = p.predicted.get(meis.len()).copied(),
            mean = stats.mean_luminance,
            rms = stats.rms_contrast,
            "MEI"
        );
        meis.push(MeiRecord {
            unit,
            npy,
            png,
            mean_luminance: stats.mean_luminance,
            rms_contrast: stats.rms_contrast,
            predicted: p.predicted,
        });
    }
    write_json(
        &a.out.join("mei.json"),
        &MeiReport {
            units: a.units.clone(),
            mean_luminance: a.mean_luminance,
            rms_contrast: a.rms_contrast,
            frames: a.frames,
            steps: a.steps,
            seed: a.seed,
            seconds,
            meis,
        },
    )?;
    println!(
        "{} MEIs in {seconds:.2} s -> {}",
        a.units.len(),
        a.out.display()
    );
    Ok(())
}
