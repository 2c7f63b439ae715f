//! `twinloop report <session-dir> [--out report.html]`: one self-contained HTML page about a
//! recorded session (see [`crate::offline::report`]).

use crate::offline::report;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A session directory written by `twinloop run`.
    pub session_dir: PathBuf,
    /// Where to write the page [default: <session-dir>/report.html].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| report::default_output(&args.session_dir));
    let written = report::write_report(&args.session_dir, &out)
        .with_context(|| format!("cannot report on {}", args.session_dir.display()))?;
    if written.cut_short() {
        tracing::warn!(
            session = %args.session_dir.display(),
            "the session was cut short; the report covers what was recorded"
        );
    }
    tracing::info!(report = %out.display(), "open it in a browser");
    Ok(())
}
