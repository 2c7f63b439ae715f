//! A full disk: the session log on a small tmpfs fills up mid-session. The first failed write is
//! an error naming the file, counted and flagged; the session stops cleanly; no file is left
//! empty while claiming to be complete.
//!
//! Needs root to mount a tmpfs (CI runs as root). Where mounting is refused the test says so
//! and passes, unless `TWINLOOP_REQUIRE_TMPFS_TESTS=1`.

use std::path::Path;
use std::process::Command;
use twinloop_rig::backbone::session_log::LogReader;
use twinloop_rig::config::{Config, Extraction};
use twinloop_rig::online::session::{self, Hooks};
use twinloop_rig::online::sources::zmq_ingest::IngestEnd;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every file under `dir`, with its length.
fn files(dir: &Path, out: &mut Vec<(std::path::PathBuf, u64)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push((p.clone(), std::fs::metadata(&p).unwrap().len()));
        }
    }
}

#[test]
fn a_full_disk_stops_the_session_cleanly_and_leaves_no_empty_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(tmp.path(), "12m") else {
        assert!(
            std::env::var("TWINLOOP_REQUIRE_TMPFS_TESTS").as_deref() != Ok("1"),
            "cannot mount a tmpfs (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let mut cfg = Config::default_sim();
    cfg.session.duration_s = 60.0;
    cfg.session.realtime = false;
    cfg.session.progress = false;
    cfg.session.record_frames = true;
    cfg.session.out_dir = tmp.path().to_path_buf();
    cfg.imaging.width = 128;
    cfg.imaging.height = 128;
    cfg.imaging.extraction = Extraction::TruthFootprints;
    cfg.eye.width = 32;
    cfg.eye.height = 24;
    cfg.dashboard.enabled = false;
    // No final twin refit after it (rig/tests/final_refit.rs tests that).
    cfg.twin.final_refit_steps = 0;
    // 128 x 128 frames at 30 Hz are ~1 MB/s: the 12 MiB disk (4 MB of it the simulator's
    // truth) is full a few seconds in.
    let summary = session::run(&cfg, vec!["disk-full".into()], Hooks::default());
    let mut all = Vec::new();
    files(tmp.path(), &mut all);
    let empty: Vec<_> = all.iter().filter(|(_, n)| *n == 0).collect();
    assert!(empty.is_empty(), "empty files left: {empty:?}");
    let leftovers: Vec<_> = all
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // The log reads back up to where the disk filled.
    let log = all
        .iter()
        .find(|(p, _)| p.ends_with("records.log"))
        .expect("the log exists");
    let (records, _) = LogReader::open(&log.0).unwrap().read_to_end().unwrap();
    assert!(records.len() > 10, "records before the disk filled");
    match summary {
        Ok(s) => {
            // Written after the recording stopped, while there was room for it.
            let e = s.recorder_error.expect("the log error is reported");
            assert!(e.contains("records.log"), "the error names the file: {e}");
            assert!(s.counters.log_write_errors >= 1);
            assert_eq!(s.ingest_end, IngestEnd::Stopped, "the session stopped");
            assert!(
                s.rig_time_s < 55.0,
                "stopped long before its planned end: {} s",
                s.rig_time_s
            );
        }
        Err(e) => {
            // No room even for the summary: the error names it, and no empty one is left.
            let e = e.to_string();
            assert!(
                e.contains("summary.json") || e.contains("latency.json"),
                "{e}"
            );
        }
    }
}
