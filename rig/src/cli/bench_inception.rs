//! `twinloop bench inception`: the inception loop on simulated `v1_rich` mice against their
//! ground truth (`offline::inception_bench`), per arm (the design's twin) and record length,
//! with a table of medians and 95% intervals across mice.
//!
//! ```text
//! twinloop bench inception --seeds 2001,2002 --arms pretrained --record-min 10 \
//!     --out bench/results/inception.json
//! ```

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

use crate::offline::inception_bench::{
    Across, BenchSettings, MouseRun, RecordPolicy, Shared, TwinArm, across_mice,
};
use crate::stages::decide::inception::config::MIN_LIBRARY;
use crate::stages::decide::inception::records::Contrast;

#[derive(Debug, Clone, clap::Args)]
pub struct InceptionArgs {
    /// Simulated mice, by seed (new seeds: tests and configs use 1-10).
    #[arg(long, value_delimiter = ',', default_values_t = (2001..=2010).collect::<Vec<u64>>())]
    pub seeds: Vec<u64>,
    /// The design's twin: `pretrained` (the embedded core, transfer-fitted), `scratch` (the
    /// same architecture from random weights, everything fitted); `energy` is refused.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ArmArg::Pretrained])]
    pub arms: Vec<ArmArg>,
    /// Record-phase lengths, minutes of rig time.
    #[arg(long, value_delimiter = ',', default_values_t = [10.0, 20.0, 40.0])]
    pub record_min: Vec<f64>,
    /// Cells per simulated mouse.
    #[arg(long, default_value_t = BenchSettings::default().neurons)]
    pub neurons: usize,
    /// How the record phase picks trials (the live protocol: adaptive).
    #[arg(long, value_enum, default_value_t = RecordPolicy::Adaptive)]
    pub policy: RecordPolicy,
    /// Poisson repeats per verify stimulus (10-20).
    #[arg(long, default_value_t = BenchSettings::default().repeats)]
    pub repeats: u32,
    #[arg(long, default_value_t = BenchSettings::default().max_targets)]
    pub max_targets: u32,
    #[arg(long, default_value_t = BenchSettings::default().min_heldout_cc)]
    pub min_heldout_cc: f64,
    #[arg(long, default_value_t = BenchSettings::default().library_size)]
    pub library_size: u64,
    #[arg(long, default_value_t = BenchSettings::default().mei_steps)]
    pub mei_steps: u32,
    /// Twin frames per in-silico presentation.
    #[arg(long, default_value_t = BenchSettings::default().design_frames)]
    pub design_frames: u32,
    /// Optimiser steps of the design's twin fit.
    #[arg(long, default_value_t = BenchSettings::default().refit_steps)]
    pub refit_steps: u32,
    /// The true optimum's search: starts refined, and gradient steps each.
    #[arg(long, default_value_t = BenchSettings::default().optimum_starts)]
    pub optimum_starts: usize,
    #[arg(long, default_value_t = BenchSettings::default().optimum_steps)]
    pub optimum_steps: usize,
    /// An fnn twin from these weights instead of the embedded pretrained core (the record's
    /// pool core and the design's twin alike).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The --weights network's config JSON.
    #[arg(long, requires = "weights")]
    pub weights_config: Option<PathBuf>,
    /// Mice run in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// The results as JSON (every target's rates, predictions and samples).
    /// Each mouse is also appended to `<out without .json>.runs.jsonl` as it finishes, so a
    /// run stopped early keeps its mice.
    #[arg(long, default_value = "bench/results/inception.json")]
    pub out: PathBuf,
    /// Run nothing: the table and --out from the mice of a `.runs.jsonl` an earlier run wrote.
    #[arg(long)]
    pub from_runs: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArmArg {
    Pretrained,
    Scratch,
    Energy,
}

impl InceptionArgs {
    fn settings(&self) -> BenchSettings {
        BenchSettings {
            neurons: self.neurons,
            policy: self.policy,
            repeats: self.repeats,
            max_targets: self.max_targets,
            min_heldout_cc: self.min_heldout_cc,
            library_size: self.library_size,
            mei_steps: self.mei_steps,
            design_frames: self.design_frames,
            refit_steps: self.refit_steps,
            optimum_starts: self.optimum_starts,
            optimum_steps: self.optimum_steps,
            weights: self.weights.clone(),
            weights_config: self.weights_config.clone(),
        }
    }

    /// The arms, or the flag that is wrong.
    fn arms(&self) -> Result<Vec<TwinArm>> {
        let mut arms = Vec::new();
        for a in &self.arms {
            let arm = match a {
                ArmArg::Pretrained => TwinArm::Pretrained,
                ArmArg::Scratch => TwinArm::Scratch,
                ArmArg::Energy => bail!(
                    "--arms energy: the motion-energy bank has no differentiable twin to \
                     synthesise MEIs through (a live session with twin.core = \"energy\" \
                     refuses the design too); fix: --arms pretrained,scratch"
                ),
            };
            if !arms.contains(&arm) {
                arms.push(arm);
            }
        }
        if arms.is_empty() {
            bail!("--arms is empty; fix: name pretrained and/or scratch");
        }
        Ok(arms)
    }
}

/// Checks every flag before anything is built; the error names the flag.
fn check(args: &InceptionArgs) -> Result<(BenchSettings, Vec<TwinArm>)> {
    if args.seeds.is_empty() {
        bail!("--seeds is empty; fix: name at least one seed");
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if args.record_min.is_empty() {
        bail!("--record-min is empty; fix: e.g. --record-min 10,20,40");
    }
    let arms = args.arms()?;
    let settings = args.settings();
    for &m in &args.record_min {
        settings.validate(m * 60.0).map_err(|e| {
            anyhow::anyhow!(
                "--{}: {} (got --record-min {m})",
                e.field.replace('_', "-"),
                e.reason
            )
        })?;
    }
    Ok((settings, arms))
}

/// Where each finished mouse is appended.
fn runs_path(out: &std::path::Path) -> PathBuf {
    out.with_extension("runs.jsonl")
}

/// `--from-runs`: the mice an earlier run wrote, in the table and --out.
fn from_runs(args: &InceptionArgs, path: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--from-runs: reading {}", path.display()))?;
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        runs.push(MouseRun::read(line).with_context(|| {
            format!(
                "--from-runs: {} line {} is not a mouse's run",
                path.display(),
                i + 1
            )
        })?);
    }
    if runs.is_empty() {
        bail!("--from-runs: {} holds no mouse", path.display());
    }
    let mut arms: Vec<TwinArm> = Vec::new();
    let mut minutes: Vec<f64> = Vec::new();
    for r in &runs {
        if !arms.contains(&r.arm) {
            arms.push(r.arm);
        }
        if !minutes.contains(&(r.record_s / 60.0)) {
            minutes.push(r.record_s / 60.0);
        }
    }
    println!(
        "inception loop on simulated v1_rich mice: {} mice read from {}",
        runs.len(),
        path.display()
    );
    let header = serde_json::json!({ "from_runs": path });
    report(args, (&arms, &minutes), runs, Vec::new(), header, f64::NAN)
}

pub fn run(args: &InceptionArgs) -> Result<()> {
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out: creating {}", dir.display()))?;
    }
    if let Some(path) = &args.from_runs {
        return from_runs(args, path);
    }
    let (settings, arms) = check(args)?;
    let jsonl = runs_path(&args.out);
    let appended = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jsonl)
            .with_context(|| format!("--out: opening {}", jsonl.display()))?,
    );
    let started = std::time::Instant::now();
    let shared = Shared::build(&settings)?;
    let mut cells: Vec<(TwinArm, f64, u64)> = Vec::new();
    for &arm in &arms {
        for &m in &args.record_min {
            for &seed in &args.seeds {
                cells.push((arm, m, seed));
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::<MouseRun>::new());
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(cells.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(arm, m, seed)) = cells.get(i) else {
                        break;
                    };
                    let exp = settings.experiment(&shared.cfg, arm, m * 60.0);
                    let run = arm
                        .setup(&shared.pretrained, seed)
                        .map_err(anyhow::Error::msg)
                        .and_then(|twin| {
                            exp.run(&shared.pool, &shared.display, &twin, seed)
                                .map_err(anyhow::Error::from)
                        });
                    match run {
                        Ok(r) => {
                            tracing::info!(
                                seed,
                                arm = arm.name(),
                                record_min = m,
                                targets = r.targets.len(),
                                log_ratio_low = r.metrics.low.median_log_ratio,
                                optimum_low = r.metrics.low.median_optimum_fraction,
                                wall_s = r.wall_s,
                                "mouse done"
                            );
                            if let Ok(mut f) = appended.lock() {
                                use std::io::Write;
                                let line = serde_json::to_string(&r).unwrap_or_default();
                                if let Err(e) = writeln!(f, "{line}").and_then(|()| f.flush()) {
                                    tracing::error!(error = %e, "cannot append the mouse to {}", jsonl.display());
                                }
                            }
                            if let Ok(mut v) = results.lock() {
                                v.push(r);
                            }
                        }
                        Err(e) => {
                            let msg = format!("mouse {seed} ({}, {m} min): {e:#}", arm.name());
                            tracing::error!("{msg}");
                            if let Ok(mut v) = failures.lock() {
                                v.push(msg);
                            }
                        }
                    }
                }
            });
        }
    });
    let runs = results.into_inner().unwrap_or_default();
    let failures = failures.into_inner().unwrap_or_default();
    let wall_s = started.elapsed().as_secs_f64();
    println!(
        "inception loop on simulated v1_rich mice: {} mice x {} arm(s) x {} record length(s), {} neurons, {:?} record, {} targets at most (held-out CC_norm > {}), library {}{}, {} MEI steps, {} refit steps, {} repeats; wall {:.0} s",
        args.seeds.len(),
        arms.len(),
        args.record_min.len(),
        settings.neurons,
        settings.policy,
        settings.max_targets,
        settings.min_heldout_cc,
        settings.library_size,
        if settings.library_size < MIN_LIBRARY {
            " (below the live minimum)"
        } else {
            ""
        },
        settings.mei_steps,
        settings.refit_steps,
        settings.repeats,
        wall_s
    );
    let header = serde_json::json!({ "settings": settings, "seeds": args.seeds });
    report(
        args,
        (&arms, &args.record_min),
        runs,
        failures,
        header,
        wall_s,
    )
}

/// The table across mice per arm, record length and contrast, and --out.
fn report(
    args: &InceptionArgs,
    (arms, minutes): (&[TwinArm], &[f64]),
    mut runs: Vec<MouseRun>,
    failures: Vec<String>,
    header: serde_json::Value,
    wall_s: f64,
) -> Result<()> {
    runs.sort_by(|a, b| {
        (a.arm.name(), a.record_s, a.seed)
            .partial_cmp(&(b.arm.name(), b.record_s, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut groups = Vec::new();
    for &arm in arms {
        for &m in minutes {
            let of: Vec<&MouseRun> = runs
                .iter()
                .filter(|r| r.arm == arm && r.record_s == m * 60.0)
                .collect();
            let metrics: Vec<_> = of.iter().map(|r| &r.metrics).collect();
            for c in [Contrast::Low, Contrast::Full] {
                groups.push((arm, m, c, across_mice(&metrics, c)));
            }
        }
    }
    print_table(&groups);
    let json = serde_json::json!({
        "run": header,
        "arms": arms,
        "record_min": minutes,
        "summary": groups.iter().map(|(arm, m, c, a)| serde_json::json!({
            "arm": arm, "record_min": m, "contrast": c, "across": a,
        })).collect::<Vec<_>>(),
        "failures": failures,
        "runs": runs,
        "wall_s": if wall_s.is_finite() { serde_json::json!(wall_s) } else { serde_json::Value::Null },
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("--out: writing {}", args.out.display()))?;
    println!("results: {}", args.out.display());
    if !failures.is_empty() {
        bail!(
            "{} mouse run(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

fn iv(i: &crate::offline::inception_bench::Interval, digits: usize) -> String {
    if i.median.is_finite() {
        format!(
            "{:.*} [{:.*}, {:.*}]",
            digits, i.median, digits, i.lo, digits, i.hi
        )
    } else {
        "—".into()
    }
}

fn print_table(groups: &[(TwinArm, f64, Contrast, Across)]) {
    println!(
        "\nmedians across mice [bootstrap 95% interval]; per mouse each figure is the median over its targets"
    );
    println!(
        "| arm | record | contrast | mice | ln(MEI / best pool) | MEI beats pool (mice) | significant share | measured / predicted gain | MEI / true optimum | ≥ 80% of optimum (mice) | best pool / optimum | library best / optimum | ln(library / pool) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (arm, m, c, a) in groups {
        println!(
            "| {} | {m} min | {c:?} | {} | {} | {}/{} | {} | {} | {} | {}/{} | {} | {} | {} |",
            arm.name(),
            a.mice,
            iv(&a.median_log_ratio, 3),
            a.mice_mei_beats_pool,
            a.mice,
            iv(&a.significant_fraction, 2),
            iv(&a.gain_ratio, 2),
            iv(&a.optimum_fraction, 3),
            a.mice_at_80_percent,
            a.mice,
            iv(&a.pool_optimum_fraction, 3),
            iv(&a.library_optimum_fraction, 3),
            iv(&a.library_log_ratio, 3),
        );
    }
}
