//! `twinloop replay <session-dir>...`: re-run logged sessions and compare with the live runs —
//! exactly (the default), or with another selection policy or frozen core as a counterfactual
//! (`--policy`, `--objective`, `--twin`): the same activity and onsets, the decisions the other
//! selector would have made, and how well each twin predicted the activity.

use crate::config::Policy;
use crate::offline::replay::{self, Overrides, ReplayReport, TwinOverride};
use crate::stages::decide::design::Objective;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Session directories written by `twinloop run` (several: one summary table).
    #[arg(required = true)]
    pub session_dirs: Vec<PathBuf>,
    /// Replay with this selection policy instead of the live one.
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// Replay the adaptive policy with this objective.
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveArg>,
    /// Replay the selector with an fnn core from these weights (safetensors with fnn's names)
    /// instead of the session's core; combines with --policy and --objective.
    #[arg(long)]
    pub twin: Option<PathBuf>,
    /// The --twin network's config JSON (default: fnn's released network).
    #[arg(long, requires = "twin")]
    pub twin_config: Option<PathBuf>,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PolicyArg {
    Random,
    Adaptive,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ObjectiveArg {
    InfoGain,
    VarianceReduction,
    ResponseMax,
    Random,
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        policy: args.policy.map(|p| match p {
            PolicyArg::Random => Policy::Random,
            PolicyArg::Adaptive => Policy::Adaptive,
        }),
        objective: args.objective.map(|o| match o {
            ObjectiveArg::InfoGain => Objective::InfoGain,
            ObjectiveArg::VarianceReduction => Objective::VarianceReduction,
            ObjectiveArg::ResponseMax => Objective::ResponseMax,
            ObjectiveArg::Random => Objective::Random,
        }),
        twin: args.twin.as_ref().map(|w| TwinOverride {
            weights: w.clone(),
            config: args.twin_config.clone(),
        }),
    };
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for dir in &args.session_dirs {
        match replay::counterfactual(dir, &overrides)
            .with_context(|| format!("cannot replay {}", dir.display()))
        {
            Ok(r) => reports.push(r),
            Err(e) if args.session_dirs.len() > 1 => {
                tracing::error!("{e:#}");
                failures.push(format!("{}: {e:#}", dir.display()));
            }
            Err(e) => return Err(e),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.len() == 1 && failures.is_empty() {
        print_one(&reports[0]);
    } else {
        print_table(&reports);
    }
    for f in &failures {
        println!("  not replayed: {f}");
    }
    let bad = reports.iter().filter(|r| !r.reproduced()).count();
    anyhow::ensure!(
        bad == 0 && failures.is_empty(),
        "{bad} replay(s) did not reproduce the live run, {} could not be replayed",
        failures.len()
    );
    Ok(())
}

fn print_one(r: &ReplayReport) {
    println!("replay of {}", r.session_dir);
    println!(
        "  log              {} records, tail: {}",
        r.records, r.log_tail
    );
    println!(
        "  frames           {} logged, {} re-run through the pipeline ({:.0} frames/s)",
        r.frames_logged, r.frames_replayed, r.frames_per_s
    );
    if r.frames_replayed == 0 {
        println!(
            "                   (no pixels in the log: run with --record-frames to replay the imaging stage)"
        );
    }
    println!(
        "  activity         {} frames compared, {} differ, max |diff| {}",
        r.activity_compared, r.activity_mismatches, r.activity_max_abs_diff
    );
    if r.clock_updates_logged > 0 {
        println!(
            "  clocks           {} of {} fits refitted identically; {} frame times compared, {} differ",
            r.clock_updates_reproduced,
            r.clock_updates_logged,
            r.frame_times_compared,
            r.frame_time_mismatches
        );
    }
    if r.selector_notes_logged > 0 {
        println!(
            "  inception        {} of {} notes (phases, pre-registration, designs, verify trials) reproduced; verdict {}",
            r.selector_notes_reproduced,
            r.selector_notes_logged,
            match r.verdict_reproduced {
                Some(true) => "reproduced",
                Some(false) => "DIFFERS",
                None => "not logged (the session did not end)",
            }
        );
        if let Some(m) = &r.first_selector_note_mismatch {
            println!("  first mismatch   {m}");
        }
        if let Some(line) = r
            .verdict
            .as_ref()
            .and_then(|v| v.pointer("/rounds/0/verdict/line"))
        {
            println!("  verdict          {}", line.as_str().unwrap_or_default());
        }
    }
    match &r.counterfactual {
        None => {
            println!(
                "  decisions        {} of {} reproduced",
                r.decisions_reproduced, r.decisions_logged
            );
            if let Some(m) = &r.first_decision_mismatch {
                println!("  first mismatch   {m}");
            }
        }
        Some(c) => {
            println!(
                "  policy {:<10} {} decisions, {} chose the live stimulus ({:.0}%), modes {:?}, mean score {}",
                c.policy,
                c.decisions,
                c.same_stimulus,
                100.0 * c.same_stimulus as f64 / c.decisions.max(1) as f64,
                c.modes,
                c.mean_score.map_or("-".into(), |s| format!("{s:.3}"))
            );
            if let Some(t) = &c.twin {
                println!("  twin             fnn core from {t}");
            }
            println!(
                "  live selector    {} of {} decisions reproduced",
                r.decisions_reproduced, r.decisions_logged
            );
            if c.live_prediction_cc.is_some() || c.prediction_cc.is_some() {
                println!(
                    "  predictions      median cell correlation with activity over {} frames after warm-up: live twin {}, replayed twin {}; between the twins {}",
                    c.prediction_frames,
                    cc(c.live_prediction_cc),
                    cc(c.prediction_cc),
                    cc(c.twins_prediction_cc)
                );
            }
        }
    }
}

/// A correlation for the tables (`-` when there is none).
fn cc(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn print_table(reports: &[ReplayReport]) {
    println!(
        "| session | tail | activity differs | decisions | reproduced / same stimulus | prediction cc live / replayed / between |"
    );
    println!("|---|---|---|---|---|---|");
    for r in reports {
        let (agreement, predictions) = match &r.counterfactual {
            None => (format!("{} reproduced", r.decisions_reproduced), "-".into()),
            Some(c) => (
                format!(
                    "{} same ({}{})",
                    c.same_stimulus,
                    c.policy,
                    if c.twin.is_some() { ", fnn core" } else { "" }
                ),
                format!(
                    "{} / {} / {}",
                    cc(c.live_prediction_cc),
                    cc(c.prediction_cc),
                    cc(c.twins_prediction_cc)
                ),
            ),
        };
        println!(
            "| {} | {} | {} of {} | {} | {} | {} |",
            r.session_dir,
            r.log_tail,
            r.activity_mismatches,
            r.activity_compared,
            r.decisions_logged,
            agreement,
            predictions
        );
    }
}
