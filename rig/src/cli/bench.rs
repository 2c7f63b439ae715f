//! `twinloop bench loop`: the closed-loop experiment on the simulated rig — information-
//! maximising against random trial selection, paired by seed — and the scoring/update
//! timings of the design maths.
//!
//! ```text
//! twinloop bench loop --seeds 10 --trials 240 --neurons 300 --out bench-loop.json
//! ```

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, DEFAULT_SIM_TOML};
use crate::scheduler::core_config;
use crate::scheduler::design::experiment::{
    ArmRun, CurvePoint, DisplayFrames, LoopExperiment, compare,
};
use crate::scheduler::design::{CandidatePool, Objective, default_candidates, default_tests};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchWhat {
    /// Adaptive vs random trial selection on the simulated mouse: accuracy against trials.
    Loop(LoopArgs),
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
    /// Write every curve and the comparison here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    }
}

fn run_loop(args: &LoopArgs) -> Result<()> {
    if args.seeds == 0 || args.trials < 20 || args.neurons == 0 || args.jobs == 0 {
        bail!("--seeds, --neurons and --jobs must be at least 1 and --trials at least 20");
    }
    let cfg = Config::from_toml(DEFAULT_SIM_TOML, "(embedded sim.toml)")?;
    let mut design = cfg.trials.design.clone();
    if let Some(share) = args.random_share {
        design.random_share = share;
    }
    design.validate().map_err(anyhow::Error::msg)?;
    let view = cfg.display.view();
    let twin_hz = cfg.imaging.frame_rate_hz;
    let started = std::time::Instant::now();
    let candidates = default_candidates();
    let tests = default_tests(candidates.len() as u32);
    let pool = Arc::new(
        CandidatePool::build(
            candidates,
            tests,
            view,
            core_config(&view, twin_hz),
            cfg.trials.stimulus_s,
            twin_hz,
        )
        .context("building the candidate pool")?,
    );
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
