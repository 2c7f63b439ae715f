//! `twinloop twin ...`: the digital twin from the command line.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use twinloop_model::cli::{PredictArgs, predict};
use twinloop_model::device::DevicePreference;

// `twin evaluate`, `twin tuning` (rig/src/cli/twin/insilico.rs).
mod insilico;
// `twin mei` (rig/src/cli/twin/mei.rs): the inception design's MEIs on any fitted twin.
mod mei;
// `twin fit` (rig/src/cli/twin/fit.rs).
mod fit;
// `twin embeddings` (rig/src/cli/twin/embeddings.rs); the chain in `analyze twin-chain` uses it.
pub(crate) mod embeddings;

#[derive(Debug, Args)]
pub struct TwinArgs {
    #[command(subcommand)]
    command: TwinCommand,
}

#[derive(Debug, Subcommand)]
enum TwinCommand {
    /// Predict responses to a stimulus clip: stimulus `.npy` u8 [T, H, W], pupil centre
    /// [T, 2] and pupil radius + treadmill velocity [T, 2] as float32 `.npy` → responses
    /// [T, units] float32 `.npy`.
    Predict {
        /// Weights (safetensors with fnn's names; see model/scripts/convert_fnn.py).
        #[arg(long)]
        weights: PathBuf,
        /// Network config JSON; default: fnn's released network sized to the weights' units.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        stimulus: PathBuf,
        #[arg(long)]
        pupil_center: PathBuf,
        /// Pupil radius and treadmill velocity per frame.
        #[arg(long)]
        behaviour: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Run on the CPU even when a CUDA device is available.
        #[arg(long)]
        cpu: bool,
    },
    /// Score a twin on a recording (a directory as `model::train::Recording` writes it):
    /// CC_abs, CC_max, CC_norm, single-trial correlation, FEVE and, with `--truth`,
    /// correlation with the true rates; per unit and medians.
    Evaluate(insilico::EvaluateArgs),
    /// Direction and orientation tuning of every unit from full-field drifting gratings.
    Tuning(insilico::TuningArgs),
    /// Most-exciting input per unit, synthesised by the inception design phase's own code: one
    /// static image under a mean-luminance and RMS-contrast budget, with the twin's predicted
    /// response of every requested unit to each.
    Mei(mei::MeiArgs),
    /// Fit this mouse's twin to a session or recording: transfer (core of --weights frozen;
    /// perspective, modulation, readouts trained), readout, or full (from scratch without
    /// --weights). Writes twin.safetensors, config.json and fit.json.
    Fit(fit::FitArgs),
    /// Per-unit embeddings for the anatomy analyses (analysis/SCHEMA.md): standardised readout
    /// feature weights, readout position in degrees, CC_abs and CC_max on a recording, responses
    /// to a fixed reference set, and the core's SHA-256. Writes embeddings.csv, features.npy,
    /// reference_responses.npy, embeddings.json.
    Embeddings(embeddings::EmbeddingsArgs),
    /// A recorded session as the twin's training/evaluation data: stimulus frames at the twin's
    /// resolution, z-scored pupil centre, pupil radius and treadmill velocity, and the activity,
    /// one row per imaging frame (plus the simulator's true rates as truth.npy when it has them).
    Recording(RecordingArgs),
    /// A twin's recorded-noise bank on a recording (as `twin recording` writes it): per unit,
    /// the responses minus the twin's prediction on every row past each segment's burn-in.
    /// Writes residuals.npy [N, U], prediction.npy [T, U] and residuals.json (hashes of the
    /// residuals and of the twin's weights).
    Residuals(ResidualsArgs),
}

#[derive(Debug, Args)]
struct ResidualsArgs {
    /// The twin (`twin.safetensors`, or a session's `live_twin.safetensors`).
    #[arg(long)]
    weights: PathBuf,
    /// Its architecture (`config.json` / `live_twin.json`).
    #[arg(long)]
    config: PathBuf,
    /// The recording (a `twin recording` output directory).
    #[arg(long)]
    recording: PathBuf,
    /// Frames at the start of each segment left out while the twin's state settles.
    #[arg(long, default_value_t = 10)]
    burn_in: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

fn residuals(a: &ResidualsArgs) -> anyhow::Result<()> {
    let m = crate::offline::twin_residuals::residual_bank(
        &a.weights,
        &a.config,
        &a.recording,
        &a.out,
        a.burn_in,
    )?;
    println!(
        "{} residual rows x {} units in {} runs -> {}",
        m.rows,
        m.units,
        m.runs.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
struct RecordingArgs {
    /// The session directory (holds manifest.json and records.log).
    session_dir: PathBuf,
    /// Where to write stimulus.npy, perspective.npy, modulation.npy, responses.npy,
    /// recording.json (and truth.npy).
    out_dir: PathBuf,
    /// Stimulus frame height, px.
    #[arg(long, default_value_t = 36)]
    height: usize,
    /// Stimulus frame width, px.
    #[arg(long, default_value_t = 64)]
    width: usize,
}

fn recording(args: &RecordingArgs) -> anyhow::Result<()> {
    let rec = crate::offline::twin_data::recording_from_session(
        &args.session_dir,
        args.height,
        args.width,
    )
    .with_context(|| format!("reading session {}", args.session_dir.display()))?;
    for warning in &rec.warnings {
        tracing::warn!(session = %args.session_dir.display(), "{warning}");
    }
    rec.save(&args.out_dir)?;
    let r = &rec.recording;
    let truth = match &rec.truth {
        Some(_) => format!(", true rates for {} units", rec.truth_matched),
        None => String::new(),
    };
    println!(
        "{} frames x {} units at {:.2} Hz, {} segments, {} trials{truth} -> {}",
        r.len(),
        r.units(),
        r.meta.frame_hz,
        r.meta.segments.len(),
        r.meta.trials.len(),
        args.out_dir.display()
    );
    Ok(())
}

pub fn run(args: &TwinArgs) -> anyhow::Result<()> {
    match &args.command {
        TwinCommand::Evaluate(a) => insilico::evaluate(a),
        TwinCommand::Tuning(a) => insilico::tuning(a),
        TwinCommand::Mei(a) => mei::mei(a),
        TwinCommand::Fit(a) => fit::run(a),
        TwinCommand::Embeddings(a) => embeddings::run(a),
        TwinCommand::Recording(a) => recording(a),
        TwinCommand::Residuals(a) => residuals(a),
        TwinCommand::Predict {
            weights,
            config,
            stimulus,
            pupil_center,
            behaviour,
            out,
            cpu,
        } => {
            let summary = predict(&PredictArgs {
                weights: weights.clone(),
                config: config.clone(),
                stimulus: stimulus.clone(),
                pupil_center: pupil_center.clone(),
                behaviour: behaviour.clone(),
                out: out.clone(),
                device: if *cpu {
                    DevicePreference::Cpu
                } else {
                    DevicePreference::Auto
                },
            })
            .context("twin predict failed")?;
            println!(
                "predicted {} frames x {} units in {:.2} s -> {}",
                summary.frames,
                summary.units,
                summary.seconds,
                out.display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of one f32 tensor, written by hand (the format is an 8-byte header
    /// length, a JSON header and the raw little-endian data).
    fn safetensors(name: &str, values: &[f32]) -> Vec<u8> {
        let header = format!(
            r#"{{"{name}":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}}}}"#,
            values.len(),
            4 * values.len()
        );
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    /// NaN weights used to give all-NaN predictions and exit code 0 (#16): now the file and the
    /// tensor are named before anything else is read.
    #[test]
    fn nan_weights_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("twin.safetensors");
        std::fs::write(&weights, safetensors("core.w", &[0.5, f32::NAN, 1.0])).unwrap();
        let missing = dir.path().join("absent.npy");
        let args = TwinArgs {
            command: TwinCommand::Predict {
                weights: weights.clone(),
                config: None,
                stimulus: missing.clone(),
                pupil_center: missing.clone(),
                behaviour: missing,
                out: dir.path().join("out.npy"),
                cpu: true,
            },
        };
        let e = format!("{:#}", run(&args).unwrap_err());
        assert!(
            e.contains(&weights.display().to_string()) && e.contains("core.w"),
            "{e}"
        );
        assert!(e.contains("NaN") && e.contains("index 1"), "{e}");
        assert!(!dir.path().join("out.npy").exists());
    }
}
