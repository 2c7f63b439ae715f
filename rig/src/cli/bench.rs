//! `twinloop bench loop`: the closed-loop experiment on the simulated rig — information-
//! maximising against random trial selection, paired by seed — and the scoring/update
//! timings of the design maths.
//!
//! ```text
//! twinloop bench loop --seeds 10 --trials 240 --neurons 300 --out bench-loop.json
//! twinloop bench pool --twin model/fixtures/parity_weights.safetensors \
//!     --twin-config model/fixtures/parity_config.json
//! ```

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, CoreKind, DEFAULT_SIM_TOML};
use crate::offline::design_bench::{
    ArmRun, CurvePoint, DisplayFrames, LoopExperiment, compare, median,
};
use crate::stages::decide::default_pool;
use crate::stages::decide::design::Objective;
use crate::stages::decide::design::twin_refit::TwinRefitRound;
use twinloop_model::design::{Criterion, FeatureSource, Posterior, PosteriorConfig, score};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchWhat {
    /// Adaptive vs random trial selection on the simulated mouse: accuracy against trials.
    Loop(LoopArgs),
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

#[derive(Debug, Clone, clap::Args)]
pub struct LoopArgs {
    /// Simulated mice (seeds 1..=N); each runs both arms.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Trials per run (every `test_every`-th is a test trial).
    #[arg(long, default_value_t = 240)]
    pub trials: u32,
    /// Neurons per simulated mouse.
    #[arg(long, default_value_t = 300)]
    pub neurons: usize,
    /// The adaptive arm's objective.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::InfoGain)]
    pub objective: ObjectiveArg,
    /// Share of random trials in the adaptive arm (default: the config's).
    #[arg(long)]
    pub random_share: Option<f64>,
    /// Runs in parallel (each on one thread).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// The frozen core the readouts read (default: the config's `[twin] core`).
    #[arg(long, value_enum)]
    pub core: Option<CoreArg>,
    /// An fnn core from these weights instead (`core = "fnn"`), e.g. a candidate for the
    /// embedded core; its config JSON with `--weights-config`.
    #[arg(long, conflicts_with = "core")]
    pub weights: Option<PathBuf>,
    #[arg(long, requires = "weights")]
    pub weights_config: Option<PathBuf>,
    /// Refit the twin itself (perspective, modulation, readouts) every this many trials, in
    /// both arms (fnn cores; 0 = off, the readouts-only loop).
    #[arg(long, default_value_t = 0)]
    pub twin_refit_every: u32,
    /// Optimiser steps per twin refit (default: the config's).
    #[arg(long)]
    pub twin_refit_steps: Option<u32>,
    /// Write every curve and the comparison here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CoreArg {
    Energy,
    Pretrained,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ObjectiveArg {
    InfoGain,
    VarianceReduction,
    ResponseMax,
}

impl From<ObjectiveArg> for Objective {
    fn from(o: ObjectiveArg) -> Objective {
        match o {
            ObjectiveArg::InfoGain => Objective::InfoGain,
            ObjectiveArg::VarianceReduction => Objective::VarianceReduction,
            ObjectiveArg::ResponseMax => Objective::ResponseMax,
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Loop(a) => run_loop(a),
        BenchWhat::Design(a) => run_design(a),
        BenchWhat::Pool(a) => run_pool(a),
        BenchWhat::Clocks(a) => super::bench_clocks::run(a),
        BenchWhat::Display(a) => super::bench_display::run(a),
        BenchWhat::Imaging(a) => super::bench_imaging::run(a),
        BenchWhat::Transfer(a) => super::bench_transfer::run(a),
    }
}

fn run_loop(args: &LoopArgs) -> Result<()> {
    if args.seeds == 0 || args.trials < 20 || args.neurons == 0 || args.jobs == 0 {
        bail!("--seeds, --neurons and --jobs must be at least 1 and --trials at least 20");
    }
    let mut cfg = Config::from_toml(DEFAULT_SIM_TOML, "(embedded sim.toml)")?;
    match args.core {
        Some(CoreArg::Energy) => cfg.twin.core = CoreKind::Energy,
        Some(CoreArg::Pretrained) => cfg.twin.core = CoreKind::Pretrained,
        None => {}
    }
    if let Some(w) = &args.weights {
        cfg.twin.core = CoreKind::Fnn;
        cfg.twin.weights = Some(w.clone());
        cfg.twin.config = args.weights_config.clone();
    }
    let mut design = cfg.trials.design.clone();
    if let Some(share) = args.random_share {
        design.random_share = share;
    }
    design.twin_refit_every = args.twin_refit_every;
    if let Some(steps) = args.twin_refit_steps {
        design.twin_refit_steps = steps;
    }
    design.validate().map_err(anyhow::Error::msg)?;
    let twin_refit = crate::stages::decide::design::twin_refit::setup_for(&cfg.twin, &design)
        .context("the twin refit")?;
    let started = std::time::Instant::now();
    let pool = Arc::new(default_pool(&cfg.decide_setup()).context("building the candidate pool")?);
    let display = DisplayFrames::render(&pool, cfg.trials.stimulus_s, cfg.display.refresh_hz);
    tracing::info!(
        candidates = pool.candidates().len(),
        tests = pool.tests().len(),
        s = started.elapsed().as_secs_f64(),
        "pool rendered and passed through the core"
    );
    let experiment = LoopExperiment {
        trials: args.trials,
        neurons: args.neurons,
        stimulus_s: cfg.trials.stimulus_s,
        gray_s: cfg.trials.gray_s,
        frame_rate_hz: cfg.imaging.frame_rate_hz,
        display_hz: cfg.display.refresh_hz,
        design,
        twin_refit,
    };
    let objective: Objective = args.objective.into();
    let jobs: Vec<(u64, Objective)> = (1..=args.seeds)
        .flat_map(|s| [(s, Objective::Random), (s, objective)])
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::<ArmRun>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(seed, obj)) = jobs.get(i) else {
                        break;
                    };
                    match experiment.run(&pool, &display, seed, obj) {
                        Ok(run) => {
                            tracing::info!(
                                seed,
                                objective = ?obj,
                                final_cc_norm = run.curve.last().map(|p| p.cc_norm),
                                final_r_true = run.curve.last().map(|p| p.r_true),
                                wall_s = run.wall_s,
                                "arm done"
                            );
                            if let Ok(mut r) = results.lock() {
                                r.push(run);
                            }
                        }
                        Err(e) => tracing::error!(seed, error = %e, "arm failed"),
                    }
                }
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| (r.seed, r.objective != Objective::Random));
    let random: Vec<ArmRun> = runs
        .iter()
        .filter(|r| r.objective == Objective::Random)
        .cloned()
        .collect();
    let adaptive: Vec<ArmRun> = runs
        .iter()
        .filter(|r| r.objective != Objective::Random)
        .cloned()
        .collect();
    if random.len() != adaptive.len() || random.is_empty() {
        bail!("some arms failed; see the log");
    }
    let levels = [0.8, 0.9, 0.95];
    let mut table = compare(&random, &adaptive, "cc_norm", &levels);
    table.extend(compare(&random, &adaptive, "r_true", &levels));
    println!(
        "closed loop on the simulated rig: {} seeds x {} trials, {} neurons, adaptive = {:?}, random share {}",
        args.seeds, args.trials, args.neurons, objective, experiment.design.random_share
    );
    println!(
        "| metric | level of random's final | random trials (median) | adaptive trials (median) | ratio random/adaptive (median) | adaptive faster |"
    );
    println!("|---|---|---|---|---|---|");
    for c in &table {
        println!(
            "| {} | {:.0}% | {:.1} | {:.1} | {:.2} | {}/{} |",
            c.metric,
            c.level * 100.0,
            c.random_trials,
            c.adaptive_trials,
            c.ratio,
            c.adaptive_wins,
            c.seeds
        );
    }
    let mean_final = |runs: &[ArmRun], f: fn(&CurvePoint) -> f64| {
        runs.iter()
            .filter_map(|r| r.curve.last().map(f))
            .sum::<f64>()
            / runs.len() as f64
    };
    println!(
        "final accuracy (mean over seeds): random CC_norm {:.3} r_true {:.3}; adaptive CC_norm {:.3} r_true {:.3}; wall {:.0} s",
        mean_final(&random, |p| p.cc_norm),
        mean_final(&random, |p| p.r_true),
        mean_final(&adaptive, |p| p.cc_norm),
        mean_final(&adaptive, |p| p.r_true),
        started.elapsed().as_secs_f64()
    );
    // The criterion's own target: posterior uncertainty of the readouts, at the midpoint and end.
    let sd_at = |runs: &[ArmRun], frac: f64| {
        runs.iter()
            .filter_map(|r| {
                let k = ((r.curve.len() as f64 - 1.0) * frac).round() as usize;
                r.curve.get(k).map(|p| p.posterior_sd)
            })
            .sum::<f64>()
            / runs.len() as f64
    };
    println!(
        "posterior s.d. of the readout weights (mean): random {:.4} -> {:.4}; adaptive {:.4} -> {:.4} (midpoint -> end)",
        sd_at(&random, 0.5),
        sd_at(&random, 1.0),
        sd_at(&adaptive, 0.5),
        sd_at(&adaptive, 1.0)
    );
    if experiment.twin_refit.is_some() {
        let applied: Vec<_> = runs
            .iter()
            .flat_map(|r| r.twin_refit_rounds.iter().filter(|x| x.applied))
            .collect();
        let of = |f: fn(&TwinRefitRound) -> f64| median(applied.iter().map(|x| f(x)).collect());
        println!(
            "twin refits: {} applied, {} failed; wall time per round median {:.1} s (fit {:.1} s, the rest the pool's features) over {} rounds; held-out loss drop per round median {:.4}",
            runs.iter().map(|r| r.twin_refits).sum::<u64>(),
            runs.iter().map(|r| r.twin_refit_failures).sum::<u64>(),
            of(|x| x.seconds),
            of(|x| x.fit_seconds),
            applied.len(),
            of(|x| x.initial_val_loss - x.best_val_loss),
        );
    }
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "experiment": experiment,
            "seeds": args.seeds,
            "runs": runs,
            "comparison": table,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
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
