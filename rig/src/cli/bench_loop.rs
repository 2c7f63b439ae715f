//! `twinloop bench loop`: the closed-loop experiment on the simulated rig. Every arm (random,
//! adaptive with the config's random share, adaptive with none) runs on the same mice, designer
//! seeds and warm-up; accuracy is scored on a held-out set no arm shows, against the cells'
//! noise-free rates (`offline::heldout`), and summarised paired by seed (`offline::loop_summary`).
//!
//! ```text
//! twinloop bench loop --seeds 20 --trials 200 --neurons 60 --core oracle \
//!     --arms random,adaptive,adaptive-share0 --out bench/results/loop-oracle.json
//! ```

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, CoreKind, DEFAULT_SIM_TOML};
use crate::offline::design_bench::{Arm, ArmRun, CurvePoint, LoopExperiment, compare, median};
use crate::offline::heldout::{HeldoutEval, check_disjoint, heldout_entries};
use crate::offline::loop_pools::LoopPools;
use crate::offline::loop_summary::{Summary, summarise};
use crate::offline::oracle_core::OracleCore;
use crate::stages::decide::build_core;
use crate::stages::decide::design::PoolError;
use crate::stages::decide::design::designer::{DesignConfig, Objective};
use crate::stages::decide::design::twin_refit::TwinRefitRound;
use twinloop_model::frozen_core::FrozenCore;

/// Held-out accuracy is tabulated at these trial counts (those past `--trials` are left out).
const BUDGETS: [u64; 4] = [25, 50, 100, 200];

#[derive(Debug, Clone, clap::Args)]
pub struct LoopArgs {
    /// Simulated mice (seeds 1..=N); each runs every arm.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Trials per run (every `test_every`-th is a test trial).
    #[arg(long, default_value_t = 240)]
    pub trials: u32,
    /// Neurons per simulated mouse.
    #[arg(long, default_value_t = 300)]
    pub neurons: usize,
    /// The adaptive arms' objective.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::InfoGain)]
    pub objective: ObjectiveArg,
    /// Share of random trials in the `adaptive` arm (default: the config's).
    #[arg(long)]
    pub random_share: Option<f64>,
    /// The arms, comma-separated: `random`, `adaptive` (the share above), `adaptive-share0`
    /// (no random share).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ArmArg::Random, ArmArg::Adaptive])]
    pub arms: Vec<ArmArg>,
    /// Runs in parallel (one mouse, all its arms, per thread).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// The frozen core the readouts read (default: the config's `[twin] core`); `oracle` is the
    /// simulated mouse's own cells (the correctly specified positive control).
    #[arg(long, value_enum)]
    pub core: Option<CoreArg>,
    /// An fnn core from these weights instead (`core = "fnn"`), e.g. a candidate for the
    /// embedded core; its config JSON with `--weights-config`.
    #[arg(long, conflicts_with = "core")]
    pub weights: Option<PathBuf>,
    #[arg(long, requires = "weights")]
    pub weights_config: Option<PathBuf>,
    /// Refit the twin itself (perspective, modulation, readouts) every this many trials, in
    /// every arm (fnn cores; 0 = off, the readouts-only loop).
    #[arg(long, default_value_t = 0)]
    pub twin_refit_every: u32,
    /// Optimiser steps per twin refit (default: the config's).
    #[arg(long)]
    pub twin_refit_steps: Option<u32>,
    /// A mouse whose gain ignores running, pupil and the latent state and whose gaze does not
    /// move the view: with `--core oracle`, the correctly specified control.
    #[arg(long)]
    pub still_mouse: bool,
    /// Write every curve and the tables here as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CoreArg {
    Energy,
    Pretrained,
    Oracle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArmArg {
    Random,
    Adaptive,
    AdaptiveShare0,
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

fn arm(a: ArmArg, objective: Objective, design: &DesignConfig) -> Arm {
    let (name, objective, random_share) = match a {
        ArmArg::Random => ("random", Objective::Random, design.random_share),
        ArmArg::Adaptive => ("adaptive", objective, design.random_share),
        ArmArg::AdaptiveShare0 => ("adaptive-share0", objective, 0.0),
    };
    Arm {
        name: name.into(),
        objective,
        random_share,
    }
}

pub fn run(args: &LoopArgs) -> Result<()> {
    if args.seeds == 0 || args.trials < 20 || args.neurons == 0 || args.jobs == 0 {
        bail!("--seeds, --neurons and --jobs must be at least 1 and --trials at least 20");
    }
    if args.arms.is_empty() {
        bail!("--arms is empty; fix: name at least one of random, adaptive, adaptive-share0");
    }
    let mut cfg = Config::from_toml(DEFAULT_SIM_TOML, "(embedded sim.toml)")?;
    match args.core {
        Some(CoreArg::Energy) => cfg.twin.core = CoreKind::Energy,
        Some(CoreArg::Pretrained) => cfg.twin.core = CoreKind::Pretrained,
        Some(CoreArg::Oracle) | None => {}
    }
    let oracle = matches!(args.core, Some(CoreArg::Oracle));
    if oracle && args.twin_refit_every > 0 {
        bail!("--twin-refit-every needs an fnn core; the oracle core is the mouse's own cells");
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
    let twin_hz = cfg.imaging.frame_rate_hz;
    let objective: Objective = args.objective.into();
    let mut arms: Vec<Arm> = Vec::new();
    for a in &args.arms {
        let a = arm(*a, objective, &design);
        if !arms.iter().any(|b| b.name == a.name) {
            arms.push(a);
        }
    }
    let experiment = LoopExperiment {
        trials: args.trials,
        neurons: args.neurons,
        stimulus_s: cfg.trials.stimulus_s,
        gray_s: cfg.trials.gray_s,
        frame_rate_hz: twin_hz,
        // The clips are shown at the twin rate, so the pool's clips are exactly what the mouse
        // sees (the oracle core's features need it; the other cores lose nothing).
        display_hz: twin_hz,
        design,
        twin_refit,
        oracle,
        still_mouse: args.still_mouse,
    };
    let view = cfg.decide_setup().view;
    let shared = if oracle {
        None
    } else {
        let twin = cfg.twin.clone();
        let pools = LoopPools::build(&cfg, || build_core(&twin, &view, twin_hz), twin_hz)?;
        tracing::info!(
            candidates = pools.pool.candidates().len(),
            tests = pools.pool.tests().len(),
            heldout = pools.heldout.len(),
            s = started.elapsed().as_secs_f64(),
            "pools rendered and passed through the core"
        );
        Some(pools)
    };
    let run_seed = |seed: u64| -> Result<Vec<ArmRun>> {
        let mouse = experiment.mouse(view, seed)?;
        let per_mouse;
        let pools = match &shared {
            Some(p) => p,
            None => {
                let core = || -> Result<Box<dyn FrozenCore>, PoolError> {
                    Ok(Box::new(OracleCore::new(
                        mouse.noise_free_cells(),
                        view.height,
                        view.width,
                        twin_hz,
                    )))
                };
                per_mouse = LoopPools::build(&cfg, core, twin_hz)?;
                &per_mouse
            }
        };
        let heldout = HeldoutEval::new(
            Arc::clone(&pools.heldout),
            &pools.heldout_display,
            &mut mouse.noise_free_cells(),
        )?;
        let mut out = Vec::new();
        for a in &arms {
            let run = experiment.run(&pools.pool, &pools.display, Some(&heldout), seed, a)?;
            let shown: Vec<_> = run
                .shown
                .iter()
                .map(|&e| pools.pool.entry(e).clone())
                .collect();
            check_disjoint(pools.heldout.entries(), &shown)
                .with_context(|| format!("arm {} of mouse {seed}", a.name))?;
            tracing::info!(
                seed,
                arm = %a.name,
                final_heldout_r = run.curve.last().map(|p| p.heldout_r),
                final_param_error = run.curve.last().map(|p| p.param_error),
                adaptive_trials = run.adaptive_trials,
                wall_s = run.wall_s,
                "arm done"
            );
            out.push(run);
        }
        Ok(out)
    };
    let next = std::sync::atomic::AtomicU64::new(1);
    let results = std::sync::Mutex::new(Vec::<ArmRun>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(args.seeds as usize) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed > args.seeds {
                        break;
                    }
                    match run_seed(seed) {
                        Ok(runs) => {
                            if let Ok(mut r) = results.lock() {
                                r.extend(runs);
                            }
                        }
                        Err(e) => tracing::error!(seed, error = %format!("{e:#}"), "mouse failed"),
                    }
                }
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_default();
    let order = |name: &str| arms.iter().position(|a| a.name == name);
    runs.sort_by_key(|r| (r.seed, order(&r.arm)));
    if runs.len() != arms.len() * args.seeds as usize {
        bail!("some mice failed; see the log");
    }
    let names: Vec<String> = arms.iter().map(|a| a.name.clone()).collect();
    let budgets: Vec<u64> = BUDGETS
        .iter()
        .copied()
        .filter(|&b| b <= u64::from(args.trials))
        .collect();
    let summary = summarise(&runs, &names, &budgets, u64::from(args.trials));
    let core_name = if oracle {
        "oracle".to_string()
    } else {
        format!("{:?}", cfg.twin.core).to_lowercase()
    };
    println!(
        "closed loop on the simulated rig: core {core_name}{}, {} seeds x {} trials, {} neurons, objective {:?}, held-out set {} clips; wall {:.0} s",
        if args.still_mouse {
            " (still mouse)"
        } else {
            ""
        },
        args.seeds,
        args.trials,
        args.neurons,
        objective,
        heldout_entries().len(),
        started.elapsed().as_secs_f64()
    );
    print_summary(&summary, &runs, oracle);
    // The test-block comparison of earlier runs, kept for continuity.
    let random: Vec<ArmRun> = runs.iter().filter(|r| r.arm == "random").cloned().collect();
    let mut legacy = Vec::new();
    for a in names.iter().filter(|n| *n != "random") {
        let other: Vec<ArmRun> = runs.iter().filter(|r| &r.arm == a).cloned().collect();
        if random.len() == other.len() && !random.is_empty() {
            legacy.push((a.clone(), compare(&random, &other, "r_true", &[0.9])));
        }
    }
    if experiment.twin_refit.is_some() {
        print_refits(&runs);
    }
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "core": core_name,
            "experiment": experiment,
            "arms": arms,
            "seeds": args.seeds,
            "heldout_clips": heldout_entries().len(),
            "summary": summary,
            "test_block_r_true_comparison": legacy,
            "runs": runs,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn fmt(e: &crate::offline::loop_summary::Estimate, digits: usize) -> String {
    if e.mean.is_finite() {
        format!("{:.*} ± {:.*}", digits, e.mean, digits, e.ci95)
    } else {
        "—".into()
    }
}

fn print_summary(summary: &Summary, runs: &[ArmRun], oracle: bool) {
    let budgets: Vec<u64> = summary
        .arms
        .first()
        .map(|r| r.at_budget.iter().map(|b| b.0).collect())
        .unwrap_or_default();
    let head: String = budgets.iter().map(|b| format!(" {b} trials |")).collect();
    println!("\nheld-out accuracy (mean r with the noise-free rates, ± 95% CI over seeds):");
    println!("| arm |{head} AUC | AUC − random | AUC ahead of random | adaptive trials (median) |");
    println!("|---|{}---|---|---|---|", "---|".repeat(budgets.len()));
    for row in &summary.arms {
        let cells: String = row
            .at_budget
            .iter()
            .map(|(_, e)| format!(" {} |", fmt(e, 3)))
            .collect();
        let adaptive = median(
            runs.iter()
                .filter(|r| r.arm == row.arm)
                .map(|r| r.adaptive_trials as f64)
                .collect(),
        );
        println!(
            "| {} |{cells} {} | {} | {}/{} | {adaptive:.0} |",
            row.arm,
            fmt(&row.auc, 3),
            if row.arm == "random" {
                "—".into()
            } else {
                fmt(&row.auc_vs_random, 4)
            },
            row.auc_ahead,
            row.auc_vs_random.n,
        );
    }
    if oracle {
        println!("\nreadout-parameter error |stimulus weight − 1| (oracle core, ± 95% CI):");
        println!("| arm |{head} share of cells placed at their own column (end) |");
        println!("|---|{}---|", "---|".repeat(budgets.len()));
        for row in &summary.arms {
            let cells: String = row
                .param_error_at_budget
                .iter()
                .map(|(_, e)| format!(" {} |", fmt(e, 3)))
                .collect();
            let placed = median(
                runs.iter()
                    .filter(|r| r.arm == row.arm)
                    .filter_map(|r| r.curve.last().map(|p: &CurvePoint| p.placed_own))
                    .collect(),
            );
            println!("| {} |{cells} {placed:.2} |", row.arm);
        }
    }
    println!("\ntrials to reach random's final value (paired by seed):");
    println!("| arm | metric | target | median ratio random/arm | ≥ 2x fewer trials | reached |");
    println!("|---|---|---|---|---|---|");
    for r in &summary.reach {
        let target = if r.metric == "param_error" {
            "random's final error".to_string()
        } else {
            format!("{:.0}% of random's final", 100.0 * r.level)
        };
        println!(
            "| {} | {} | {target} | {:.2} | {}/{} | {}/{} |",
            r.arm, r.metric, r.median_ratio, r.at_least_2x, r.seeds, r.reached, r.seeds
        );
    }
}

fn print_refits(runs: &[ArmRun]) {
    let applied: Vec<_> = runs
        .iter()
        .flat_map(|r| r.twin_refit_rounds.iter().filter(|x| x.applied))
        .collect();
    let of = |f: fn(&TwinRefitRound) -> f64| median(applied.iter().map(|x| f(x)).collect());
    println!(
        "twin refits: {} applied, {} failed; wall time per round median {:.1} s (fit {:.1} s) over {} rounds; held-out loss drop per round median {:.4}",
        runs.iter().map(|r| r.twin_refits).sum::<u64>(),
        runs.iter().map(|r| r.twin_refit_failures).sum::<u64>(),
        of(|x| x.seconds),
        of(|x| x.fit_seconds),
        applied.len(),
        of(|x| x.initial_val_loss - x.best_val_loss),
    );
}
