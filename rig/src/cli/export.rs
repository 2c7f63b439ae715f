//! `twinloop export nwb <session-dir> <out.nwb>`: a recorded session as an NWB 2.x file (see
//! [`crate::offline::export::nwb`]).

use crate::offline::export::nwb;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Format {
    /// Neurodata Without Borders 2.x (HDF5; needs a build with the `nwb` feature).
    Nwb {
        /// A session directory written by `twinloop run`.
        session_dir: PathBuf,
        /// The NWB file to write (replaced if it exists).
        out: PathBuf,
        /// A fitted twin of this session's cells (`twin fit`'s `twin.safetensors`) whose
        /// per-unit embeddings go into `/analysis/twin_embeddings`; without it, the session's
        /// live twin (`live_twin.safetensors`) when it saved one.
        #[arg(long, requires = "twin_config")]
        twin_weights: Option<PathBuf>,
        /// Its architecture (`config.json` beside the weights).
        #[arg(long, requires = "twin_weights")]
        twin_config: Option<PathBuf>,
    },
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    match &args.format {
        Format::Nwb {
            session_dir,
            out,
            twin_weights,
            twin_config,
        } => {
            let started = Instant::now();
            let options = nwb::ExportOptions {
                twin: twin_weights
                    .clone()
                    .zip(twin_config.clone())
                    .map(|(weights, config)| nwb::TwinFiles { weights, config }),
            };
            let done = nwb::export_with(session_dir, out, &options)
                .with_context(|| format!("cannot export {}", session_dir.display()))?;
            if !done.warnings.is_empty() {
                tracing::warn!(
                    session = %session_dir.display(),
                    warnings = done.warnings.len(),
                    "the session is incomplete; the file holds what was recorded"
                );
            }
            tracing::info!(
                out = %done.out.display(),
                mb = done.bytes as f64 / 1e6,
                rois = done.rois,
                frames = done.frames,
                raw_frames = done.movie_frames,
                trials = done.trials,
                twin_units = done.twin.as_ref().map_or(0, |t| t.1),
                seconds = started.elapsed().as_secs_f64(),
                "NWB file written"
            );
            Ok(())
        }
    }
}
