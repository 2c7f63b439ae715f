//! `twinloop sweep plan|run|gather|submit`: many sessions from one sweep file, in shards, on
//! this machine or on Slurm (rig/src/sweep/ has the layout and guarantees).
//!
//! ```text
//! twinloop sweep plan configs/sweeps/bench-loop.toml --out sweeps/loop
//! twinloop sweep run sweeps/loop --shard 3        # or --all, one after another
//! twinloop sweep gather sweeps/loop               # table.csv and report.html
//! twinloop sweep submit sweeps/loop --slurm       # job array + dependent gather job
//! ```

use crate::sweep::{self, Plan, SweepSpec, shard, slurm};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(subcommand)]
    what: SweepWhat,
}

#[derive(Debug, Subcommand)]
enum SweepWhat {
    /// Expand a sweep file into numbered shards (`OUT/plan.json`), checking every job.
    Plan {
        /// The sweep file (TOML).
        sweep: PathBuf,
        /// The sweep's folder (default: sweeps/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one shard's jobs (a finished shard is left as it is), or every shard in turn.
    Run {
        /// The sweep's folder (made by `sweep plan`).
        dir: PathBuf,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        shard: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// Check every shard finished and write `table.csv` and `report.html`.
    Gather {
        dir: PathBuf,
        /// Accept a partial sweep: write the table from the shards that finished, list the
        /// others, and exit 0.
        #[arg(long)]
        partial: bool,
    },
    /// Submit the sweep: a Slurm job array, one task per shard, and a gather job after it.
    Submit {
        dir: PathBuf,
        /// Submit to Slurm with sbatch (the only scheduler so far).
        #[arg(long, required = true)]
        slurm: bool,
        /// Write the scripts into DIR/slurm/ without submitting them.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: &SweepArgs) -> Result<()> {
    match &args.what {
        SweepWhat::Plan { sweep, out } => {
            let spec = SweepSpec::load(sweep)?;
            let plan = Plan::make(&spec, sweep)?;
            let dir = out
                .clone()
                .unwrap_or_else(|| PathBuf::from("sweeps").join(&plan.name));
            if dir.join(sweep::plan::PLAN_FILE).exists() {
                bail!(
                    "{} already holds a plan; plan into a new folder (--out), so finished shards \
                     are never mixed with another plan's",
                    dir.display()
                );
            }
            let path = plan.write(&dir)?;
            println!(
                "{} jobs in {} shards: {}",
                plan.jobs.len(),
                plan.shards,
                path.display()
            );
            Ok(())
        }
        SweepWhat::Run { dir, shard, all } => {
            let plan = Plan::load(dir)?;
            let shards: Vec<u32> = match (shard, all) {
                (Some(s), _) => vec![*s],
                (None, _) => (0..plan.shards).collect(),
            };
            let mut failed = Vec::new();
            for s in shards {
                match shard::run(&plan, dir, s) {
                    Ok(shard::Outcome::Ran { jobs }) => println!("shard {s}: {jobs} jobs done"),
                    Ok(shard::Outcome::AlreadyDone) => println!("shard {s}: already done"),
                    Err(e) => {
                        tracing::error!(shard = s, error = %e, "shard failed");
                        failed.push(s);
                    }
                }
            }
            if !failed.is_empty() {
                bail!("shards {failed:?} failed (see above and SHARD.failed.json)");
            }
            Ok(())
        }
        SweepWhat::Gather { dir, partial } => {
            let plan = Plan::load(dir)?;
            let g = sweep::gather(&plan, dir, *partial)?;
            println!(
                "{} rows from {} of {} shards: {} and {}",
                g.rows,
                g.done.len(),
                plan.shards,
                g.table.display(),
                g.report.display()
            );
            if !g.complete() {
                // Only reached with --partial: said plainly, and accepted as asked.
                println!(
                    "partial, as accepted: missing shards {:?}, failed {:?}",
                    g.missing, g.failed
                );
            }
            Ok(())
        }
        SweepWhat::Submit { dir, dry_run, .. } => {
            let plan = Plan::load(dir)?;
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("resolving {}", dir.display()))?;
            let binary = std::env::current_exe().context("finding this binary")?;
            let scripts = slurm::write_scripts(&plan, &dir, &binary)?;
            if *dry_run {
                println!(
                    "wrote {} and {}",
                    scripts.array.display(),
                    scripts.gather.display()
                );
                return Ok(());
            }
            let ids = slurm::submit(&scripts)?;
            println!("array job {} ({} tasks)", ids.array_job, plan.shards);
            println!("gather job {}", ids.gather_job);
            println!("watch: squeue -j {},{}", ids.array_job, ids.gather_job);
            println!("logs: {}/slurm/shard-*.out, gather.out", dir.display());
            std::fs::write(
                dir.join("slurm").join("submitted.json"),
                serde_json::to_vec_pretty(&ids)?,
            )?;
            Ok(())
        }
    }
}
