//! Sweeps: many sessions (or benchmark arms) from one file, in independent shards that run on
//! this machine or as a Slurm job array, gathered into one table.
//!
//! - [`spec`]: the sweep file, its grid (twins × protocols × seeds × config overrides) and its
//!   checks.
//! - [`plan`]: the grid expanded into numbered jobs dealt round-robin into shards, each job's
//!   setup built once at planning so bad entries fail before anything runs (`plan.json`).
//! - [`shard`]: one shard run all or nothing (`shards/NNNN/` appears by one rename, with its
//!   rows' CRC); rerunning a finished shard does nothing, a killed one is moved aside and redone.
//! - [`gather`]: every shard checked, one CSV table, a page comparing the arms with 95% CIs.
//! - `inception_arm`: one mouse of `twinloop bench inception` per job.
//! - [`paired`]: each arm against the random baseline of the same seed (`bench loop`'s pairing).
//! - [`slurm`]: the job-array and gather scripts, and their submission with `sbatch`.
//!
//! Rows hold only what a job computes from its seed; wall times go to `timings.json`, so two
//! runs of a deterministic job (a benchmark arm) give the same bytes. A session's rows depend on
//! how its threads interleaved, like any live session's.

pub mod gather;
mod inception_arm;
mod job;
pub mod paired;
pub mod plan;
mod replay;
pub mod shard;
pub mod slurm;
pub mod spec;

pub use gather::{Gathered, gather};
pub use plan::Plan;
pub use spec::SweepSpec;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweep file {file}: {message}")]
    Spec { file: PathBuf, message: String },
    #[error("job {job} ({entry}): {message}")]
    Job {
        job: u32,
        entry: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(
        "the sweep is incomplete: missing shards {missing:?}, failed {failed:?}; rerun them with \
         `twinloop sweep run DIR --shard N`, or gather what there is with --partial"
    )]
    Incomplete {
        missing: Vec<u32>,
        failed: Vec<(u32, String)>,
    },
    #[error("slurm: {0}")]
    Slurm(String),
}
