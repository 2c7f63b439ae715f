//! `twinloop sim-movie`: the simulated mouse's imaging as a ScanImage acquisition on disk, to
//! try `twinloop process` on (and to measure it on long movies: BENCHMARKS.md). The cells see
//! drifting gratings that turn 45° every second; the truth (cells, motion) goes beside it.

use super::run::load_config;
use crate::offline::scanimage::{Acquisition, write_acquisition};
use crate::sim::SimMouse;
use crate::vocab::clock::RigTime;
use anyhow::{Context, bail};
use clap::Args;
use std::path::PathBuf;
use twinloop_stimulus::{StimulusSpec, cpu};

#[derive(Debug, Args)]
pub struct SimMovieArgs {
    /// Session config whose `[sim]` mouse and microscope are used (default: configs/sim.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory: `acq_00001_<n>.tif` files and `truth/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Frames in all.
    #[arg(long, default_value_t = 1800)]
    pub frames: usize,
    /// Frames per file (ScanImage's logFramesPerFile).
    #[arg(long, default_value_t = 1800)]
    pub frames_per_file: usize,
    /// Frame side, px (overrides `imaging.width`/`height`).
    #[arg(long)]
    pub size: Option<u32>,
    /// Simulated neurons (overrides `sim.neurons`).
    #[arg(long)]
    pub neurons: Option<usize>,
}

pub fn run(args: &SimMovieArgs) -> anyhow::Result<()> {
    if args.frames == 0 || args.frames_per_file == 0 {
        bail!("--frames and --frames-per-file must be at least 1");
    }
    let mut cfg = load_config(args.config.as_deref())?;
    if let Some(side) = args.size {
        if !(16..=4096).contains(&side) {
            bail!("--size {side}: must be 16 to 4096 px");
        }
        cfg.imaging.width = side;
        cfg.imaging.height = side;
    }
    if let Some(n) = args.neurons {
        cfg.sim.neurons = n;
    }
    let geometry = cfg.sim_geometry();
    let mut mouse = SimMouse::new(&cfg.sim, &geometry).context("the simulated mouse")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out {}", args.out.display()))?;
    let rate = cfg.imaging.frame_rate_hz;
    let acq = Acquisition {
        width: cfg.imaging.width,
        height: cfg.imaging.height,
        frames: args.frames,
        frames_per_file: args.frames_per_file,
        rate_hz: rate,
    };
    let view_spec = cfg.display.view();
    let mut view = vec![0u8; geometry.view_width * geometry.view_height];
    let files = write_acquisition(&args.out, "acq", &acq, |k, px| {
        let s = k as f64 / rate;
        let t = RigTime::from_nanos((s * 1e9) as i64);
        let spec = StimulusSpec::grating(45.0 * (s as usize % 8) as f64, 0.04, 2.0, 1.0, 0.0);
        cpu::render(&spec, s, &view_spec, &mut view);
        mouse.show(&view, t);
        mouse.imaging_frame(t, px);
        Ok(())
    })?;
    let truth = args.out.join("truth");
    mouse
        .write_truth(&truth)
        .with_context(|| format!("cannot write the truth in {}", truth.display()))?;
    println!(
        "{} frames of {}x{} at {rate} Hz in {} file(s) -> {} (truth in {})",
        args.frames,
        acq.width,
        acq.height,
        files.len(),
        args.out.display(),
        truth.display()
    );
    Ok(())
}
