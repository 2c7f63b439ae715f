//! Running one shard, all or nothing.
//!
//! A shard works in `shards/NNNN.partial/` and becomes `shards/NNNN/` by one rename, after its
//! rows and its `done.json` (the rows' count and CRC-32) are on disk. So a shard folder under
//! its final name is always whole; a killed shard leaves only `.partial`, which the next run
//! moves to `shards/attic/` (its session logs stay readable there) before starting again. A
//! job that fails leaves `NNNN.failed.json` naming the job and the error.

use super::SweepError;
use super::job::{JobSetup, PoolCache};
use super::plan::Plan;
use crate::backbone::session_log::write_atomic;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub const DONE_FILE: &str = "done.json";
pub const ROWS_FILE: &str = "rows.jsonl";
pub const TIMINGS_FILE: &str = "timings.json";

/// A finished shard's marker: what its rows must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Done {
    pub shard: u32,
    pub jobs: u32,
    pub rows_crc32: u32,
}

/// Why a shard failed (`NNNN.failed.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failed {
    pub shard: u32,
    pub job: Option<u32>,
    pub error: String,
}

/// Where a shard stands, as read from its folder.
#[derive(Debug, Clone)]
pub enum ShardState {
    Done {
        rows: Vec<serde_json::Value>,
    },
    Failed(Failed),
    /// Started and not finished: running now, or killed.
    Partial,
    Missing,
    /// A final folder whose rows do not match its marker.
    Corrupt(String),
}

pub fn shards_dir(root: &Path) -> PathBuf {
    root.join("shards")
}

pub fn shard_dir(root: &Path, shard: u32) -> PathBuf {
    shards_dir(root).join(format!("{shard:04}"))
}

fn partial_dir(root: &Path, shard: u32) -> PathBuf {
    shards_dir(root).join(format!("{shard:04}.partial"))
}

fn failed_file(root: &Path, shard: u32) -> PathBuf {
    shards_dir(root).join(format!("{shard:04}.failed.json"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    write_atomic(path, bytes).map_err(|e| SweepError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// What `run` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ran { jobs: u32 },
    AlreadyDone,
}

/// Runs shard `shard` of the plan in `root`, unless it is already done.
pub fn run(plan: &Plan, root: &Path, shard: u32) -> Result<Outcome, SweepError> {
    if shard >= plan.shards {
        return Err(SweepError::Usage(format!(
            "--shard {shard}: the plan has shards 0..{} ({} in all)",
            plan.shards.saturating_sub(1),
            plan.shards
        )));
    }
    let _span = tracing::info_span!("shard", shard).entered();
    if let ShardState::Done { .. } = state(plan, root, shard) {
        tracing::info!("already done; nothing to run");
        return Ok(Outcome::AlreadyDone);
    }
    let final_dir = shard_dir(root, shard);
    let partial = partial_dir(root, shard);
    let attic = shards_dir(root).join("attic");
    // What an earlier, killed or failed run left is kept for reading, not overwritten.
    for leftover in [&partial, &final_dir] {
        if leftover.exists() {
            fs::create_dir_all(&attic).map_err(io(&attic))?;
            let mut k = 0;
            let to = loop {
                let to = attic.join(format!("{shard:04}-{k}"));
                if !to.exists() {
                    break to;
                }
                k += 1;
            };
            tracing::warn!(from = %leftover.display(), to = %to.display(), "moving an unfinished shard aside");
            fs::rename(leftover, &to).map_err(io(leftover))?;
        }
    }
    let failed = failed_file(root, shard);
    if failed.exists() {
        fs::remove_file(&failed).map_err(io(&failed))?;
    }
    fs::create_dir_all(&partial).map_err(io(&partial))?;

    let mut rows = Vec::new();
    let mut timings = serde_json::Map::new();
    let mut pools = PoolCache::default();
    let mut jobs = 0u32;
    for job in plan.shard_jobs(shard) {
        let _span = tracing::info_span!("job", id = job.id).entered();
        let dir = partial.join("jobs").join(format!("{:05}", job.id));
        let out = fs::create_dir_all(&dir)
            .map_err(io(&dir))
            .and_then(|()| JobSetup::of(plan, job))
            .and_then(|setup| setup.run(job, plan, &dir, &mut pools));
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let why = Failed {
                    shard,
                    job: Some(job.id),
                    error: e.to_string(),
                };
                let bytes = serde_json::to_vec_pretty(&why).unwrap_or_default();
                write_file(&failed, &bytes)?;
                return Err(e);
            }
        };
        if let Some(detail) = &out.detail {
            let bytes = serde_json::to_vec(detail).unwrap_or_default();
            write_file(&dir.join("detail.json"), &bytes)?;
        }
        let mut row = serde_json::Map::new();
        row.insert("job".into(), job.id.into());
        row.insert("shard".into(), shard.into());
        for (k, v) in &job.axes {
            row.insert(k.clone(), v.clone());
        }
        for (k, v) in out.metrics {
            row.entry(k).or_insert(v);
        }
        rows.push(serde_json::Value::Object(row));
        timings.insert(job.id.to_string(), out.wall_s.into());
        jobs += 1;
        tracing::info!(wall_s = out.wall_s, "job done");
    }
    let mut text = Vec::new();
    for row in &rows {
        serde_json::to_writer(&mut text, row).map_err(|e| SweepError::Io {
            path: partial.join(ROWS_FILE),
            source: e.into(),
        })?;
        text.write_all(b"\n").map_err(io(&partial))?;
    }
    write_file(&partial.join(ROWS_FILE), &text)?;
    let timings = serde_json::to_vec_pretty(&timings).unwrap_or_default();
    write_file(&partial.join(TIMINGS_FILE), &timings)?;
    let done = Done {
        shard,
        jobs,
        rows_crc32: crc32fast::hash(&text),
    };
    let done = serde_json::to_vec_pretty(&done).unwrap_or_default();
    write_file(&partial.join(DONE_FILE), &done)?;
    // The rename is the commit: before it the shard is partial, after it whole.
    fs::rename(&partial, &final_dir).map_err(io(&final_dir))?;
    if let Ok(d) = fs::File::open(shards_dir(root)) {
        let _ = d.sync_all();
    }
    Ok(Outcome::Ran { jobs })
}

/// Reads where shard `shard` stands; a finished shard's rows are checked against its marker
/// and the plan.
pub fn state(plan: &Plan, root: &Path, shard: u32) -> ShardState {
    let dir = shard_dir(root, shard);
    let done_path = dir.join(DONE_FILE);
    if done_path.exists() {
        let check = || -> Result<Vec<serde_json::Value>, String> {
            let done: Done = fs::read(&done_path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| format!("{}: {e}", done_path.display()))?;
            let rows_path = dir.join(ROWS_FILE);
            let text = fs::read(&rows_path).map_err(|e| format!("{}: {e}", rows_path.display()))?;
            let planned = plan.shard_jobs(shard).count() as u32;
            if crc32fast::hash(&text) != done.rows_crc32 || done.jobs != planned {
                return Err(format!(
                    "{} does not match its done.json (CRC or {} rows against {planned} planned jobs)",
                    rows_path.display(),
                    done.jobs
                ));
            }
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    serde_json::from_slice(l).map_err(|e| format!("{}: {e}", rows_path.display()))
                })
                .collect()
        };
        return match check() {
            Ok(rows) => ShardState::Done { rows },
            Err(e) => ShardState::Corrupt(e),
        };
    }
    let failed = failed_file(root, shard);
    if let Ok(bytes) = fs::read(&failed) {
        return ShardState::Failed(serde_json::from_slice(&bytes).unwrap_or(Failed {
            shard,
            job: None,
            error: format!("{} is unreadable", failed.display()),
        }));
    }
    if partial_dir(root, shard).exists() || dir.exists() {
        return ShardState::Partial;
    }
    ShardState::Missing
}
