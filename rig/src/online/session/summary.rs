//! The end-of-session summary (printed, and written as `summary.json` and `latency.json`) and
//! the progress bar shown while a session runs.

use crate::backbone::session_log::SessionDir;
use crate::backbone::session_log::{SessionError, write_atomic};
use crate::backbone::telemetry::{Counters, CountersSnapshot, LatencySummary};
use crate::config::Config;
use crate::online::display::RendererReport;
use crate::online::sources::zmq_ingest::IngestEnd;
use crate::sim::bridge::SimRigReport;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub session_dir: PathBuf,
    pub cells: usize,
    pub rig_time_s: f64,
    pub wall_s: f64,
    pub ingest_end: IngestEnd,
    pub counters: CountersSnapshot,
    pub latency: Vec<LatencySummary>,
    pub renderer: RendererReport,
    pub sim: Option<SimRigReport>,
    pub log_records: u64,
    pub log_bytes: u64,
    pub recorder_error: Option<String>,
    /// The signal that ended the session (2 SIGINT, 15 SIGTERM, 1 SIGHUP), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Each device clock's fit at the end (empty when every stream is on the rig clock).
    pub clocks: Vec<crate::stages::clocks::DomainSummary>,
    /// The inception protocol's rounds and verdicts (`[inception]` sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inception: Option<serde_json::Value>,
    /// The live twin saved at the end (`[twin] save`), or why not.
    pub live_twin: super::live_twin::LiveTwinReport,
    /// The final twin refit at the end (`[twin] final_refit_steps`): steps, held-out loss and
    /// seconds, or why it did not run or was interrupted.
    pub final_refit: crate::stages::decide::design::twin_refit::FinalRefitReport,
}

impl SessionSummary {
    /// Writes `summary.json` and `latency.json`, each whole or not at all (a full disk leaves
    /// no empty file behind); the error names the file.
    pub fn write(&self, dir: &SessionDir) -> Result<(), SessionError> {
        let json = |path: &std::path::Path, v: serde_json::Result<Vec<u8>>| {
            v.map_err(|e| SessionError::Io {
                path: path.to_path_buf(),
                action: "encoding",
                source: e.into(),
            })
        };
        let summary = dir.summary_path();
        write_atomic(&summary, &json(&summary, serde_json::to_vec_pretty(self))?)?;
        let latency = dir.latency_path();
        write_atomic(
            &latency,
            &json(&latency, serde_json::to_vec_pretty(&self.latency))?,
        )
    }

    pub fn latency(&self, stage_prefix: &str) -> Option<&LatencySummary> {
        self.latency
            .iter()
            .find(|l| l.stage.starts_with(stage_prefix))
    }
}

impl fmt::Display for SessionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        writeln!(f, "twinloop session summary")?;
        writeln!(f, "  session dir      {}", self.session_dir.display())?;
        writeln!(
            f,
            "  rig time         {:.1} s in {:.1} s wall ({:.1}x real time), ended: {:?}",
            self.rig_time_s,
            self.wall_s,
            self.rig_time_s / self.wall_s.max(1e-9),
            self.ingest_end
        )?;
        if let Some(sig) = self.signal {
            writeln!(f, "  stopped by       signal {sig}")?;
        }
        writeln!(
            f,
            "  frames in        {} two-photon ({} processed, {} cells), {} eye, {} treadmill, {} sync",
            c.frames_in, c.frames_processed, self.cells, c.eye_frames_in, c.treadmill_in, c.sync_in
        )?;
        for d in &self.clocks {
            write!(
                f,
                "  clock {:<10} {:?}, {} ticks, {} jumps",
                d.domain.name(),
                d.state,
                d.dev_ticks,
                d.jumps
            )?;
            if let Some(fit) = &d.fit {
                write!(
                    f,
                    ", drift {:+.2} ppm, residual {:.1} us rms, {} used, {}/{} unmatched (device/rig), {} segments",
                    fit.drift_ppm,
                    fit.residual_rms_ns * 1e-3,
                    fit.ticks_used,
                    fit.dev_unmatched,
                    fit.rig_unmatched,
                    fit.segments
                )?;
            }
            writeln!(
                f,
                "; samples {} fitted, {} provisional, {} flagged, {} unmapped",
                d.samples_fitted, d.samples_provisional, d.samples_flagged, d.samples_unmapped
            )?;
        }
        writeln!(
            f,
            "  drops            {} gaps ({} missing), {} rejected, {} stage skips, {} late, {} bus drops",
            c.gaps,
            c.missing,
            c.rejected_total(),
            c.stage_skips,
            c.late_frames,
            c.bus_drops
        )?;
        writeln!(
            f,
            "  trials shown     {} ({} decisions, {} before their last trial's responses; {} flips, {} underruns)",
            c.trials, c.decisions, c.decisions_before_responses, c.flips, c.underruns
        )?;
        let d = &c.design;
        if c.decisions > 0 && d.frames > 0 {
            writeln!(
                f,
                "  design           {} late, {} fallback trials, {}/{} refits failed, {}/{} twin refits failed, {} unit-count changes, {} values clipped, {} skipped",
                d.late,
                d.fallback_trials,
                d.refit_failures,
                d.refits,
                d.twin_refit_failures,
                d.twin_refits,
                d.unit_count_changes,
                d.values_clipped,
                d.values_skipped
            )?;
        }
        let r = &self.renderer;
        let i = &r.flip_intervals;
        writeln!(
            f,
            "  display          {}{}: flip interval mean {:.2} ms, sd {:.2}, p99 {:.1}; {} missed vsyncs, {} dropped{}",
            r.backend,
            if r.timer_paced { " (timer-paced)" } else { "" },
            i.mean_ms,
            i.sd_ms,
            i.p99_ms,
            r.missed_vsyncs,
            r.dropped_frames,
            match &r.fallback {
                Some(why) => format!(" — FALLBACK: {why}"),
                None => String::new(),
            }
        )?;
        writeln!(f, "  final refit      {}", self.final_refit)?;
        writeln!(f, "  live twin        {}", self.live_twin)?;
        writeln!(f, "  latency          p50        p99        max   stage")?;
        for l in &self.latency {
            if l.count > 0 {
                writeln!(
                    f,
                    "                   {:>7.1} us {:>7.1} us {:>7.1} us  {}",
                    l.p50_us, l.p99_us, l.max_us, l.stage
                )?;
            }
        }
        write!(
            f,
            "  session log      {} records, {:.1} MB{}",
            self.log_records,
            self.log_bytes as f64 / 1e6,
            match &self.recorder_error {
                Some(e) => format!(" — RECORDING FAILED: {e}"),
                None => String::new(),
            }
        )
    }
}

/// A progress bar over rig time, on its own thread (drawn only on a terminal).
pub(crate) struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(cfg: &Config, counters: Arc<Counters>, latest: Arc<AtomicI64>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        // Only sessions longer than a few seconds get a bar.
        if !cfg.session.progress || cfg.session.duration_s < 3.0 {
            return Progress { done, handle: None };
        }
        let total = cfg.session.duration_s;
        let flag = Arc::clone(&done);
        let handle = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let bar = ProgressBar::new((total * 10.0) as u64);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                let mut first: Option<i64> = None;
                while !flag.load(Ordering::Acquire) {
                    let t = latest.load(Ordering::Acquire);
                    if t != i64::MIN {
                        let t0 = *first.get_or_insert(t);
                        bar.set_position(((t - t0) as f64 * 1e-8) as u64);
                    }
                    let c = counters.snapshot();
                    bar.set_message(format!(
                        "{} frames, {} trials, {} drops",
                        c.frames_in,
                        c.trials,
                        c.gaps + c.rejected_total() + c.stage_skips
                    ));
                    std::thread::sleep(Duration::from_millis(200));
                }
                bar.finish_and_clear();
            })
            .ok();
        Progress { done, handle }
    }

    pub(crate) fn finish(mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
