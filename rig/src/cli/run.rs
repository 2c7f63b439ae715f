//! `twinloop run [config.toml]`: one session from a config, then its summary.

use crate::config::Config;
use crate::online::session::{self, Hooks};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Session config (TOML); without it, the embedded configs/sim.toml.
    pub config: Option<PathBuf>,
    /// Override `session.duration_s` (seconds of rig time).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run as fast as the pipeline consumes instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Override `session.out_dir`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Record raw frames into the session log (`session.record_frames`).
    #[arg(long)]
    pub record_frames: bool,
}

pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default_sim(),
    })
}

/// A session that saved its live twin gets the twin's per-unit embeddings beside it, by the
/// code of `twinloop twin embeddings`. The session is complete without them: a failure is
/// reported, not fatal.
fn live_twin_embeddings(summary: &session::SessionSummary) {
    if !matches!(
        summary.live_twin,
        session::live_twin::LiveTwinReport::Saved { .. }
    ) {
        return;
    }
    let _span = tracing::info_span!("live_twin_embeddings").entered();
    match super::twin::embeddings::live_twin_embeddings(&summary.session_dir) {
        Ok(dir) => println!("  live twin embeddings {}", dir.display()),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the live twin's embeddings were not written");
            println!("  live twin embeddings not written: {e:#}");
        }
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    if let Some(d) = args.duration {
        cfg.session.duration_s = d;
    }
    if args.fast {
        cfg.session.realtime = false;
    }
    if let Some(out) = &args.out {
        cfg.session.out_dir = out.clone();
    }
    cfg.session.record_frames |= args.record_frames;
    cfg.validate()?;
    let command_line = std::env::args().collect();
    let summary = session::run(&cfg, command_line, Hooks::default()).context("session failed")?;
    println!("{summary}");
    live_twin_embeddings(&summary);
    if let Some(e) = &summary.recorder_error {
        anyhow::bail!("the session log could not be written completely: {e}");
    }
    if let Some(sig) = summary.signal {
        // The shell's convention: 128 + the signal that ended it. The session itself ended
        // cleanly (summary written, log closed).
        tracing::warn!(signal = sig, "the session was ended by a signal");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(128 + sig);
    }
    Ok(())
}
