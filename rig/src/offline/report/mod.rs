//! `twinloop report`: one self-contained HTML page describing a recorded session.
//!
//! The page is built from the session directory alone (see
//! [`sinks::session_log`](crate::backbone::session_log) for its layout): `manifest.json` for the
//! configuration and seeds, `summary.json` and `latency.json` for the counters and latency
//! figures written when a session ends, and `records.log` for everything else — trial onsets,
//! decisions (with their mode, score, alternatives and the twin's held-out accuracy), anomalies,
//! activity and behaviour. Figures are SVG drawn with plotters and embedded inline; there are
//! no scripts, fonts, images or links to fetch.
//!
//! ## Sections
//! Session facts; the twin's held-out accuracy (CC_norm) against trials; the score
//! (information gain) of each scored decision against trial, by mode, with the share of each
//! mode; adaptive against random trials; latency percentiles; drops, skips, underruns, late
//! decisions and anomalies; the tuning of six example cells; the repeated test block; pupil
//! radius and running speed. Each is always present and says "not recorded" when the session
//! does not hold its data.
//!
//! ## Bad input
//! - A directory that is not a session (no `manifest.json`) or does not exist is an error
//!   ([`ReportError`]) naming the path and what is missing.
//! - A session whose daemon was killed (the log ends inside a record, no `summary.json`)
//!   gives a report of what was recorded, under a visible "cut short" note.
//! - Records are read leniently: fields added or missing across twinloop versions (decisions
//!   without `accuracy`, say) are defaulted, and a record that does not decode is counted and
//!   named on the page rather than failing the report.
//!
//! ## Definitions
//! - A trial's *response* is each cell's activity averaged over the imaging frames whose time
//!   lies in `[onset, onset + trials.stimulus_s)`.
//! - The *example cells* are the six whose responses have the largest sample variance over
//!   trials.
//! - *Test-block* trials are those whose decision has mode `test` (or, for a trial without a
//!   logged decision, whose stimulus name starts with `test `).
//!
//! ## Files
//! - `data`: reading the directory ([`SessionData`]);
//! - `analysis`: the numbers shown ([`Analysis`]); `health`: the drops table's counts;
//! - `plots`: the SVG figures; `html`: the page.

pub(crate) mod analysis;
pub mod data;
mod health;
pub(crate) mod html;
mod inception;
mod plots;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

pub use analysis::Analysis;
pub use data::SessionData;
pub use html::SECTIONS;

use crate::backbone::session_log::{LogError, SessionError, write_atomic};

/// File name of the report inside the session directory, the default output.
pub const REPORT_FILE: &str = "report.html";

/// Errors that stop a report from being made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("session directory {path} does not exist")]
    DirMissing { path: PathBuf },

    #[error(
        "{path} is not a twinloop session directory: manifest.json is missing ({found}); \
         a session directory, as `twinloop run` writes it, holds {expected}"
        , expected = data::expected_layout()
    )]
    NotASession { path: PathBuf, found: String },

    #[error("cannot read the manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: SessionError,
    },

    #[error("cannot read the record log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: LogError,
    },

    #[error("cannot write the report {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The whole page.
    pub html: String,
    /// Everything the page shows, as numbers.
    pub analysis: Analysis,
}

impl Report {
    /// True when the session's log ended inside a record (or is missing).
    pub fn cut_short(&self) -> bool {
        self.analysis.cut_short.is_some()
    }
}

/// `<session-dir>/report.html`.
pub fn default_output(session_dir: &Path) -> PathBuf {
    session_dir.join(REPORT_FILE)
}

/// Reads the session in `session_dir` and renders its report.
pub fn render(session_dir: &Path) -> Result<Report, ReportError> {
    let data = SessionData::load(session_dir)?;
    let analysis = Analysis::of(&data);
    let html = html::page(&analysis);
    Ok(Report { html, analysis })
}

/// Renders the report of `session_dir` and writes it to `out` (through a temporary file
/// beside it, renamed into place, so a reader never sees half a page).
pub fn write_report(session_dir: &Path, out: &Path) -> Result<Report, ReportError> {
    let report = render(session_dir)?;
    let write_err = |source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    };
    write_atomic(out, report.html.as_bytes()).map_err(|e| write_err(std::io::Error::other(e)))?;
    tracing::info!(
        report = %out.display(),
        bytes = report.html.len(),
        cut_short = report.cut_short(),
        "report written"
    );
    Ok(report)
}
