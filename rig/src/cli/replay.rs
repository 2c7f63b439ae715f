//! `twinloop replay <session-dir>`: re-run a logged session and compare with the live run.

use crate::replay;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A session directory written by `twinloop run`.
    pub session_dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let r = replay::replay(&args.session_dir)
        .with_context(|| format!("cannot replay {}", args.session_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
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
        println!(
            "  decisions        {} of {} reproduced",
            r.decisions_reproduced, r.decisions_logged
        );
        if let Some(m) = &r.first_decision_mismatch {
            println!("  first mismatch   {m}");
        }
    }
    anyhow::ensure!(r.reproduced(), "the replay did not reproduce the live run");
    Ok(())
}
