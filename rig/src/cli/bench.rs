//! `twinloop bench`: the closed-loop experiment (`bench_loop.rs`), the scoring/update timings of
//! the design maths, the pool build and the other benchmarks' entry points.
//!
//! ```text
//! twinloop bench pool --twin model/fixtures/parity_weights.safetensors \
//!     --twin-config model/fixtures/parity_config.json
//! ```

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

use crate::config::{Config, CoreKind};
use crate::stages::decide::default_pool;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchWhat {
    /// Adaptive vs random trial selection on the simulated mouse: held-out accuracy against
    /// trials, per arm, paired by seed.
    Loop(super::bench_loop::LoopArgs),
    /// Time the design maths: one posterior update and scoring; `--scoring`: every candidate
    /// for every cell at rig scale, cached fast path against today's paths and numpy.
    Design(super::bench_design::DesignArgs),
    /// Building the candidate pool on the energy bank and on an fnn core (`--twin`).
    Pool(PoolArgs),
    /// The online clock fit on the simulator's jittered device clocks: drift, residual,
    /// mapping error and refit time.
    Clocks(super::bench_clocks::ClocksArgs),
    /// Flip-interval statistics of the display loop on the stimulus window (or offscreen).
    Display(super::bench_display::DisplayArgs),
    /// The online imaging pipeline at rig scale on simulated frames: calibration time, per-frame
    /// p50/p99 on one core (per stage, in line, and ring to emitted through the extraction
    /// stage), throughput on two cores, and the numpy-suite2p and oasis-deconv peers.
    Imaging(super::bench_imaging::ImagingArgs),
    /// The foundation effect on simulated mice: pretrain a small core on several mice, then fit
    /// a new mouse with it frozen vs from scratch, accuracy against minutes of data.
    Transfer(super::bench_transfer::TransferArgs),
    /// The inception loop on simulated v1_rich mice against their ground truth: MEIs vs the
    /// best measured pool stimulus and the true optimum, per twin and record length.
    Inception(super::bench_inception::InceptionArgs),
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Loop(a) => super::bench_loop::run(a),
        BenchWhat::Design(a) => super::bench_design::run(a),
        BenchWhat::Pool(a) => run_pool(a),
        BenchWhat::Clocks(a) => super::bench_clocks::run(a),
        BenchWhat::Display(a) => super::bench_display::run(a),
        BenchWhat::Imaging(a) => super::bench_imaging::run(a),
        BenchWhat::Transfer(a) => super::bench_transfer::run(a),
        BenchWhat::Inception(a) => super::bench_inception::run(a),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PoolArgs {
    /// fnn weights (safetensors) to time beside the energy bank.
    #[arg(long)]
    pub twin: Option<PathBuf>,
    /// The --twin network's config JSON (default: fnn's released network).
    #[arg(long, requires = "twin")]
    pub twin_config: Option<PathBuf>,
    /// Builds per core (the median is quoted).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

/// `twinloop bench pool`: building the candidate pool (every candidate and test stimulus rendered
/// at the core's input size and passed through the frozen core) on the energy bank, on the
/// embedded pretrained core and, given `--twin`, on an fnn core from those weights (CPU).
fn run_pool(a: &PoolArgs) -> Result<()> {
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let base = Config::default_sim();
    let mut cores = vec![("energy bank", base.clone())];
    let mut pretrained = base.clone();
    pretrained.twin.core = CoreKind::Pretrained;
    cores.push(("embedded pretrained core", pretrained));
    if let Some(w) = &a.twin {
        let mut cfg = base.clone();
        cfg.twin.core = CoreKind::Fnn;
        cfg.twin.weights = Some(w.clone());
        cfg.twin.config = a.twin_config.clone();
        cores.push(("fnn core", cfg));
    }
    let mut medians = Vec::new();
    for (name, cfg) in &cores {
        let mut times = Vec::new();
        let mut describe = String::new();
        let mut shape = (0, 0);
        for _ in 0..a.repeats {
            let started = std::time::Instant::now();
            let pool = default_pool(&cfg.decide_setup())
                .with_context(|| format!("building the pool on the {name}"))?;
            times.push(started.elapsed().as_secs_f64());
            describe = pool.core().describe();
            shape = (pool.len(), pool.frames());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{name}: {} entries x {} frames in {:.2} s (median of {}; {describe})",
            shape.0, shape.1, median, a.repeats
        );
        medians.push(median);
    }
    if let [energy, pretrained, ..] = medians[..] {
        println!("pretrained / energy: {:.1}x", pretrained / energy);
    }
    if let [energy, _, fnn] = medians[..] {
        println!("fnn / energy: {:.1}x", fnn / energy);
    }
    Ok(())
}
