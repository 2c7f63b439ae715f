//! The sweep file (`sweep.toml`) and its expansion into jobs.
//!
//! ```toml
//! [sweep]
//! name = "adaptive-vs-random"
//! kind = "session"             # or "loop_arm": one arm of `twinloop bench loop`; or "replay":
//!                              # grid.recording = [session dirs], and policy/objective/twin;
//!                              # or "inception_arm": one mouse of `twinloop bench inception`
//!                              # (grid: seed, arm, record_min; fixed settings in [inception])
//! shards = 8                   # jobs are dealt round-robin into this many shards
//!
//! [session]                    # kind = "session" only
//! protocols = ["../sim.toml"]  # session configs, relative to this file
//! fast = true                  # run as fast as the pipeline consumes (default)
//!
//! [grid]                       # every combination is one job
//! seed = [1, 2, 3, 4]
//! twin = ["twin.safetensors"]  # session: a fitted twin's weights (fnn core)
//! "trials.policy" = ["adaptive", "random"]   # session: any config key, dotted
//!
//! [slurm]                      # `sweep submit --slurm`
//! cpus_per_task = 2
//! mem = "4G"
//! time = "00:30:00"
//! gres = "gpu:1"
//! ```
//!
//! Everything is checked at planning, before any job runs: an unknown key, an empty axis, a
//! protocol that does not load, an override the config refuses, or a twin whose weights do not
//! load is an error naming the entry.

use super::SweepError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A whole session (`twinloop run`) on a protocol config with the job's overrides.
    Session,
    /// One arm of one seed of the closed-loop design benchmark (`twinloop bench loop`).
    LoopArm,
    /// A recorded session replayed, exactly or as a counterfactual (`twinloop replay
    /// --policy/--objective/--twin`; `replay.rs`).
    Replay,
    /// One mouse of the inception-loop benchmark (`twinloop bench inception`;
    /// `inception_arm.rs`).
    InceptionArm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    pub name: String,
    pub kind: JobKind,
    pub shards: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// Session configs, relative to the sweep file; the `protocol` axis of the grid.
    pub protocols: Vec<PathBuf>,
    /// Run each session as fast as the pipeline consumes, not in real time.
    #[serde(default = "yes")]
    pub fast: bool,
}

fn yes() -> bool {
    true
}

/// The benchmark's fixed settings for `loop_arm` jobs (the grid varies the rest).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSection {
    pub trials: u32,
    pub neurons: usize,
}

impl Default for LoopSection {
    fn default() -> Self {
        LoopSection {
            trials: 240,
            neurons: 300,
        }
    }
}

/// Resources of one array task (`sbatch` options).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSection {
    #[serde(default = "one")]
    pub cpus_per_task: u32,
    /// Memory per task, Slurm's syntax (`4G`, `500M`).
    #[serde(default = "default_mem")]
    pub mem: String,
    /// Wall-clock limit per task, Slurm's syntax (`HH:MM:SS` or `D-HH:MM:SS`).
    #[serde(default = "default_time")]
    pub time: String,
    /// Generic resources per task, e.g. `gpu:1` for fnn-scale twins.
    #[serde(default)]
    pub gres: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    /// Array tasks running at once (`--array=0-N%K`); none: as many as fit.
    #[serde(default)]
    pub max_running: Option<u32>,
}

fn one() -> u32 {
    1
}
fn default_mem() -> String {
    "4G".into()
}
fn default_time() -> String {
    "01:00:00".into()
}

impl Default for SlurmSection {
    fn default() -> Self {
        SlurmSection {
            cpus_per_task: 1,
            mem: default_mem(),
            time: default_time(),
            gres: None,
            partition: None,
            max_running: None,
        }
    }
}

/// The sweep file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub sweep: SweepSection,
    #[serde(default)]
    pub session: Option<SessionSection>,
    #[serde(default, rename = "loop")]
    pub loop_: Option<LoopSection>,
    /// `inception_arm` only: the benchmark's fixed settings (`twinloop bench inception`'s
    /// flags, snake_case).
    #[serde(default)]
    pub inception: Option<crate::offline::inception_bench::BenchSettings>,
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub slurm: SlurmSection,
}

/// The `loop_arm` axes a grid may name.
pub const LOOP_AXES: [&str; 4] = ["seed", "objective", "core", "random_share"];

impl SweepSpec {
    pub fn load(path: &Path) -> Result<SweepSpec, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|source| SweepError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut spec: SweepSpec = toml::from_str(&text).map_err(|e| SweepError::Spec {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        // Paths in the file are relative to it, so a sweep file travels with its configs; they
        // are made absolute, as shards run from other folders (Slurm's --chdir).
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |entry: &str, p: &Path| {
            std::fs::canonicalize(base.join(p)).map_err(|e| SweepError::Spec {
                file: path.to_owned(),
                message: format!("{entry} = {:?}: {e}", p.display().to_string()),
            })
        };
        if let Some(s) = &mut spec.session {
            for p in &mut s.protocols {
                *p = resolve("session.protocols", p)?;
            }
        }
        for (axis, what) in [
            ("twin", "twins are weight files"),
            ("recording", "recordings are session directories"),
        ] {
            let Some(values) = spec.grid.get_mut(axis) else {
                continue;
            };
            for t in values.iter_mut() {
                match t {
                    toml::Value::String(s) => {
                        *s = resolve(&format!("grid.{axis}"), Path::new(s))?
                            .display()
                            .to_string();
                    }
                    other => {
                        return Err(SweepError::Spec {
                            file: path.to_owned(),
                            message: format!("grid.{axis} has {other}: {what}"),
                        });
                    }
                }
            }
        }
        spec.check(path)?;
        Ok(spec)
    }

    /// What does not depend on the jobs: the sections present for the kind, the grid's axes.
    fn check(&self, file: &Path) -> Result<(), SweepError> {
        let bad = |message: String| SweepError::Spec {
            file: file.to_owned(),
            message,
        };
        if self.sweep.name.is_empty()
            || !self
                .sweep
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(format!(
                "sweep.name = {:?}: use letters, digits, '-', '_' and '.' (it names Slurm jobs \
                 and folders)",
                self.sweep.name
            )));
        }
        if self.sweep.shards == 0 {
            return Err(bad("sweep.shards = 0: at least 1".into()));
        }
        for (axis, values) in &self.grid {
            if values.is_empty() {
                return Err(bad(format!(
                    "grid.{axis} is empty: give it at least one value, or remove it"
                )));
            }
        }
        match self.sweep.kind {
            JobKind::Session => {
                let Some(s) = &self.session else {
                    return Err(bad(
                        "kind = \"session\" needs a [session] table with `protocols`".into(),
                    ));
                };
                if s.protocols.is_empty() {
                    return Err(bad(
                        "session.protocols is empty: name at least one config".into()
                    ));
                }
                if self.loop_.is_some() {
                    return Err(bad("[loop] is for kind = \"loop_arm\"; remove it".into()));
                }
                if self.inception.is_some() {
                    return Err(bad(
                        "[inception] is for kind = \"inception_arm\"; remove it".into(),
                    ));
                }
                for axis in ["objective", "core", "random_share", "protocol"] {
                    if self.grid.contains_key(axis) {
                        return Err(bad(format!(
                            "grid.{axis} is not a session axis: sessions take `seed`, `twin`, \
                             and dotted config keys such as \"trials.policy\"; protocols go in \
                             session.protocols"
                        )));
                    }
                }
            }
            JobKind::Replay => {
                if self.session.is_some() || self.loop_.is_some() || self.inception.is_some() {
                    return Err(bad(
                        "kind = \"replay\" takes no [session], [loop] or [inception]; remove them"
                            .into(),
                    ));
                }
                let axes = super::replay::REPLAY_AXES;
                if let Some(axis) = self.grid.keys().find(|k| !axes.contains(&k.as_str())) {
                    return Err(bad(format!(
                        "grid.{axis} is not a replay axis; these are: {}",
                        axes.join(", ")
                    )));
                }
                if !self.grid.contains_key("recording") {
                    return Err(bad(
                        "kind = \"replay\" needs grid.recording: the session directories to replay"
                            .into(),
                    ));
                }
            }
            JobKind::InceptionArm => {
                if self.session.is_some() || self.loop_.is_some() {
                    return Err(bad(
                        "kind = \"inception_arm\" takes neither [session] nor [loop]; its \
                         settings go in [inception]"
                            .into(),
                    ));
                }
                let axes = super::inception_arm::INCEPTION_AXES;
                if let Some(axis) = self.grid.keys().find(|k| !axes.contains(&k.as_str())) {
                    return Err(bad(format!(
                        "grid.{axis} is not an inception_arm axis; these are: {}",
                        axes.join(", ")
                    )));
                }
            }
            JobKind::LoopArm => {
                if self.inception.is_some() {
                    return Err(bad(
                        "[inception] is for kind = \"inception_arm\"; remove it".into(),
                    ));
                }
                if self.session.is_some() {
                    return Err(bad("[session] is for kind = \"session\"; remove it".into()));
                }
                if let Some(axis) = self.grid.keys().find(|k| !LOOP_AXES.contains(&k.as_str())) {
                    return Err(bad(format!(
                        "grid.{axis} is not a loop_arm axis; these are: {}",
                        LOOP_AXES.join(", ")
                    )));
                }
            }
        }
        if let Some(seeds) = self.grid.get("seed")
            && let Some(v) = seeds.iter().find(|v| v.as_integer().is_none_or(|s| s < 0))
        {
            return Err(bad(format!(
                "grid.seed has {v}: seeds are non-negative integers"
            )));
        }
        Ok(())
    }

    /// Every combination of the grid's values (axes in name order, the last varying fastest),
    /// and for sessions every protocol: the jobs, numbered in that order.
    pub fn expand(&self) -> Vec<BTreeMap<String, toml::Value>> {
        let mut axes: Vec<(String, Vec<toml::Value>)> = self
            .grid
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(s) = &self.session {
            let protocols = s
                .protocols
                .iter()
                .map(|p| toml::Value::String(p.display().to_string()))
                .collect();
            axes.insert(0, ("protocol".into(), protocols));
        }
        let mut jobs = vec![BTreeMap::new()];
        for (axis, values) in &axes {
            jobs = jobs
                .into_iter()
                .flat_map(|job| {
                    values.iter().map(move |v| {
                        let mut j = job.clone();
                        j.insert(axis.clone(), v.clone());
                        j
                    })
                })
                .collect();
        }
        jobs
    }
}
