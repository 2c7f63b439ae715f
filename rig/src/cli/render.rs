//! `twinloop render`: a stimulus or trial list to files, offline.
//!
//! ```text
//! twinloop render grating.toml --out frames/
//! ```
//! Writes the monitor's frames (`frame_NNNNN.png`, after gamma and with the photodiode patch
//! when the file sets them), what the twin sees (`twin.npy`, u8 [T, H, W], pre-gamma) and a
//! frame table (`frames.csv`). The file format is documented in
//! `twinloop_stimulus::batch`; rendering uses the GPU when one is found and the CPU
//! reference otherwise (`--cpu` forces it).

use std::path::PathBuf;

use anyhow::{Context, Result};
use twinloop_stimulus::batch::{RenderFile, render_to_dir};

/// Render a stimulus or trial list to PNG frames and the twin's `.npy`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Render file (TOML): `[stimulus]` + `duration_s`, or `[[trials]]`; optional
    /// `[monitor]`/`[view]`, `[twin]`, `[photodiode]`, `gamma`, `fps`, `gray_s`.
    pub spec: PathBuf,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Render on the CPU reference even if a GPU is available.
    #[arg(long)]
    pub cpu: bool,
}

pub fn run(args: &RenderArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading {}", args.spec.display()))?;
    let mut file = RenderFile::parse(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("parsing {}", args.spec.display()))?;
    if args.cpu {
        file.gpu = false;
    }
    let s = render_to_dir(&file, &args.out)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("rendering {}", args.spec.display()))?;
    tracing::info!(
        frames = s.frames,
        display = ?s.display_size,
        twin = ?s.twin_size,
        renderer = %s.renderer,
        seconds = s.seconds,
        out = %args.out.display(),
        "rendered"
    );
    eprintln!(
        "{} frames ({}x{} display PNGs, {}x{} twin.npy) in {:.1} s on {} -> {}",
        s.frames,
        s.display_size.0,
        s.display_size.1,
        s.twin_size.0,
        s.twin_size.1,
        s.seconds,
        s.renderer,
        args.out.display()
    );
    Ok(())
}
