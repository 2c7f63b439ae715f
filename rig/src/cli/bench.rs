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
use twinloop_model::design::{Criterion, FeatureSource, Posterior, PosteriorConfig, score};

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
    /// Time the design maths at rig scale: scoring candidate clips and one posterior update.
    Design(DesignArgs),
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

#[derive(Debug, Clone, clap::Args)]
pub struct DesignArgs {
    /// Units (cells) in the posterior.
    #[arg(long, default_value_t = 10_000)]
    pub units: usize,
    /// Features per unit (core channels at the readout, behaviour and bias).
    #[arg(long, default_value_t = 128)]
    pub features: usize,
    /// Frames per candidate clip.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Candidates to time (the full pool's time is extrapolated linearly to --pool).
    #[arg(long, default_value_t = 4)]
    pub candidates: usize,
    /// The pool size the scoring time is quoted for.
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Repeats (the median is quoted).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Loop(a) => super::bench_loop::run(a),
        BenchWhat::Design(a) => run_design(a),
        BenchWhat::Pool(a) => run_pool(a),
        BenchWhat::Clocks(a) => super::bench_clocks::run(a),
        BenchWhat::Display(a) => super::bench_display::run(a),
        BenchWhat::Imaging(a) => super::bench_imaging::run(a),
        BenchWhat::Transfer(a) => super::bench_transfer::run(a),
        BenchWhat::Inception(a) => super::bench_inception::run(a),
    }
}

/// Random features standing in for the core's (the cost does not depend on their values).
struct SyntheticFeatures {
    dim: usize,
    frames: usize,
    values: Vec<f32>,
}

impl FeatureSource for SyntheticFeatures {
    fn dim(&self) -> usize {
        self.dim
    }

    fn frames(&self, _candidate: usize) -> usize {
        self.frames
    }

    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
        let n = out.len();
        let start = (candidate * 7919 + unit * 104_729) % (self.values.len() - n);
        out.copy_from_slice(&self.values[start..start + n]);
    }
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run_design(a: &DesignArgs) -> Result<()> {
    use rand::{Rng, SeedableRng};
    if a.units == 0 || a.features < 2 || a.frames == 0 || a.candidates == 0 || a.repeats == 0 {
        bail!(
            "--units, --frames, --candidates and --repeats must be positive, --features at least 2"
        );
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let src = SyntheticFeatures {
        dim: a.features,
        frames: a.frames,
        values: (0..(a.frames * a.features * 64).max(1 << 16))
            .map(|_| rng.random_range(0.0..0.3f32))
            .collect(),
    };
    let cfg = PosteriorConfig::isotropic(a.features, 0.5);
    let mut post = Posterior::new(a.units, cfg).map_err(anyhow::Error::msg)?;
    // Some data first, so the covariances are not all the prior's.
    let mut x = vec![0.0f32; a.units * a.features];
    let mut y = vec![0.0f32; a.units];
    for _ in 0..3 {
        for v in x.iter_mut() {
            *v = rng.random_range(0.0..0.3f32);
        }
        for v in y.iter_mut() {
            *v = f32::from(rng.random_bool(0.1));
        }
        post.observe_threads(&x, &y, 1.0 / 30.0, a.threads);
    }
    let mut update = Vec::new();
    for _ in 0..a.repeats {
        let t = std::time::Instant::now();
        post.observe_threads(&x, &y, 1.0 / 30.0, a.threads);
        update.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let candidates: Vec<usize> = (0..a.candidates).collect();
    let mut scoring = Vec::new();
    for _ in 0..a.repeats {
        let t = std::time::Instant::now();
        let s = score(
            &post,
            &src,
            &candidates,
            &Criterion::InfoGain,
            1.0 / 30.0,
            a.threads,
        )
        .map_err(anyhow::Error::msg)?;
        scoring.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(s.iter().all(|v| v.is_finite()), "non-finite scores");
    }
    let score_ms = median_ms(scoring);
    let per_pool_s = score_ms / a.candidates as f64 * a.pool as f64 / 1e3;
    println!(
        "design maths on {} thread(s): {} units x {} features, clips of {} frames",
        a.threads, a.units, a.features, a.frames
    );
    println!(
        "| posterior update, one imaging frame | {:.1} ms (median of {}) |",
        median_ms(update),
        a.repeats
    );
    println!(
        "| scoring {} candidates (information gain) | {:.0} ms, {:.2} ms per candidate |",
        a.candidates,
        score_ms,
        score_ms / a.candidates as f64
    );
    println!(
        "| scoring {} candidates, extrapolated | {:.1} s |",
        a.pool, per_pool_s
    );
    Ok(())
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
