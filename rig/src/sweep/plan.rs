//! The plan: a sweep file expanded into numbered jobs dealt into shards, checked job by job,
//! and written as `plan.json` in the sweep's folder. Every later step reads only the plan.

use super::SweepError;
use super::job::JobSetup;
use super::spec::{JobKind, LoopSection, SlurmSection, SweepSpec};
use crate::backbone::session_log::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The plan's file name in the sweep folder.
pub const PLAN_FILE: &str = "plan.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: u32,
    pub shard: u32,
    /// The job's value on each axis (`protocol`, `seed`, `twin`, dotted config keys, ...).
    pub axes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub kind: JobKind,
    pub shards: u32,
    pub jobs: Vec<Job>,
    /// Run sessions as fast as the pipeline consumes (`kind = "session"`).
    pub fast: bool,
    #[serde(rename = "loop")]
    pub loop_: LoopSection,
    /// `kind = "inception_arm"`: the benchmark's fixed settings.
    #[serde(default)]
    pub inception: crate::offline::inception_bench::BenchSettings,
    pub slurm: SlurmSection,
    /// The sweep file the plan came from, and the binary that made it.
    pub source: PathBuf,
    pub twinloop_version: String,
}

impl Plan {
    /// Expands and checks `spec` (loaded from `source`): every job's setup is built once here,
    /// so a bad override or an unloadable twin fails now, naming the job's entry.
    pub fn make(spec: &SweepSpec, source: &Path) -> Result<Plan, SweepError> {
        let combos = spec.expand();
        if combos.len() > u32::MAX as usize / 2 {
            return Err(SweepError::Spec {
                file: source.to_owned(),
                message: format!("the grid expands to {} jobs; split the sweep", combos.len()),
            });
        }
        // More shards than jobs would leave empty shards that Slurm still schedules.
        let shards = spec.sweep.shards.min(combos.len() as u32).max(1);
        let mut plan = Plan {
            name: spec.sweep.name.clone(),
            kind: spec.sweep.kind,
            shards,
            jobs: Vec::with_capacity(combos.len()),
            fast: spec.session.as_ref().is_none_or(|s| s.fast),
            loop_: spec.loop_.clone().unwrap_or_default(),
            inception: spec.inception.clone().unwrap_or_default(),
            slurm: spec.slurm.clone(),
            source: source.to_owned(),
            twinloop_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut twins_checked = BTreeMap::new();
        for (i, combo) in combos.into_iter().enumerate() {
            let axes = combo
                .into_iter()
                .map(|(k, v)| {
                    let json = serde_json::to_value(&v).unwrap_or(serde_json::Value::Null);
                    (k, json)
                })
                .collect();
            let job = Job {
                id: i as u32,
                shard: i as u32 % shards,
                axes,
            };
            // A twin is loaded once however many jobs name it.
            if let Some(twin) = job.axes.get("twin").and_then(|v| v.as_str())
                && !twins_checked.contains_key(twin)
            {
                twinloop_model::Weights::load(Path::new(twin)).map_err(|e| SweepError::Job {
                    job: job.id,
                    entry: format!("grid.twin = {twin:?}"),
                    message: format!("the twin's weights do not load: {e}"),
                })?;
                twins_checked.insert(twin.to_owned(), ());
            }
            JobSetup::of(&plan, &job)?;
            plan.jobs.push(job);
        }
        Ok(plan)
    }

    pub fn write(&self, dir: &Path) -> Result<PathBuf, SweepError> {
        std::fs::create_dir_all(dir).map_err(|source| SweepError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(PLAN_FILE);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| SweepError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        write_atomic(&path, &bytes).map_err(|e| SweepError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(path)
    }

    pub fn load(dir: &Path) -> Result<Plan, SweepError> {
        let path = dir.join(PLAN_FILE);
        let bytes = std::fs::read(&path).map_err(|source| SweepError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| SweepError::Spec {
            file: path,
            message: format!("not a sweep plan ({e}); make one with `twinloop sweep plan`"),
        })
    }

    /// The axes the jobs vary over (`protocol`, `seed`, ...), in name order.
    pub fn axes(&self) -> std::collections::BTreeSet<String> {
        self.jobs
            .iter()
            .flat_map(|j| j.axes.keys().cloned())
            .collect()
    }

    pub fn shard_jobs(&self, shard: u32) -> impl Iterator<Item = &Job> {
        self.jobs.iter().filter(move |j| j.shard == shard)
    }
}
