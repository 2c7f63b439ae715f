//! `kind = "inception_arm"`: one mouse of `twinloop bench inception` per job (its seed, the
//! design's twin `arm`, the record length `record_min`), the fixed settings from the sweep
//! file's `[inception]` table ([`BenchSettings`]). The row holds the mouse's figures at low and
//! full contrast; the targets' rates, predictions and samples go to the detail.

use super::job::{JobOutput, finite};
use super::plan::{Job, Plan};
use crate::offline::inception_bench::{ContrastMetrics, MouseRun, Shared, TwinArm};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The axes an `inception_arm` grid may name.
pub const INCEPTION_AXES: [&str; 3] = ["seed", "arm", "record_min"];

/// One mouse, one twin, one record length.
#[derive(Debug, Clone)]
pub struct InceptionArm {
    pub seed: u64,
    pub arm: TwinArm,
    pub record_min: f64,
}

impl InceptionArm {
    /// The job's axes read and checked, with the plan's settings; errors are `(entry, why)`.
    pub fn of(plan: &Plan, job: &Job) -> Result<InceptionArm, (String, String)> {
        let get = |axis: &str| job.axes.get(axis);
        let seed = get("seed").map_or(Some(1), Value::as_u64).ok_or_else(|| {
            (
                "grid.seed".to_string(),
                "seeds are non-negative integers".to_string(),
            )
        })?;
        let arm = match get("arm") {
            None => TwinArm::Pretrained,
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                (
                    "grid.arm".to_string(),
                    format!(
                        "{v} is not an inception arm: pretrained or scratch (the energy bank has \
                         no twin to synthesise MEIs through)"
                    ),
                )
            })?,
        };
        let record_min = match get("record_min") {
            None => 10.0,
            Some(v) => v.as_f64().ok_or_else(|| {
                (
                    "grid.record_min".to_string(),
                    format!("{v}: minutes of rig time, a number"),
                )
            })?,
        };
        plan.inception.validate(record_min * 60.0).map_err(|e| {
            let entry = if e.field == "record_min" {
                "grid.record_min".to_string()
            } else {
                format!("inception.{}", e.field)
            };
            (entry, e.reason)
        })?;
        Ok(InceptionArm {
            seed,
            arm,
            record_min,
        })
    }

    /// Runs the mouse; `shared` is built once per shard.
    pub fn run(&self, plan: &Plan, shared: &mut Option<Arc<Shared>>) -> Result<JobOutput, String> {
        let s = &plan.inception;
        let built = match shared {
            Some(b) => Arc::clone(b),
            None => {
                let b = Arc::new(Shared::build(s).map_err(|e| format!("{e:#}"))?);
                *shared = Some(Arc::clone(&b));
                b
            }
        };
        let exp = s.experiment(&built.cfg, self.arm, self.record_min * 60.0);
        let twin = self.arm.setup(&built.pretrained, self.seed)?;
        let run = exp
            .run(&built.pool, &built.display, &twin, self.seed)
            .map_err(|e| e.to_string())?;
        Ok(JobOutput {
            metrics: row(&run),
            wall_s: run.wall_s,
            detail: Some(serde_json::json!({
                "targets": run.targets,
                "record_trials": run.record_trials,
                "candidates": run.candidates,
            })),
        })
    }
}

/// The mouse's figures, flattened `low_*` and `full_*`.
fn row(run: &MouseRun) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("targets".into(), run.targets.len().into());
    m.insert("candidates".into(), run.candidates.into());
    m.insert("record_trials".into(), run.record_trials.into());
    let mut put = |prefix: &str, c: &ContrastMetrics| {
        let mut f = |k: &str, v: f64| {
            m.insert(format!("{prefix}_{k}"), finite(v));
        };
        f("median_log_ratio", c.median_log_ratio);
        f("significant_fraction", c.significant_fraction);
        f("gain_ratio", c.gain_ratio.unwrap_or(f64::NAN));
        f("optimum_fraction", c.median_optimum_fraction);
        f("pool_optimum_fraction", c.pool_median_optimum_fraction);
        f(
            "library_optimum_fraction",
            c.library_median_optimum_fraction,
        );
        f("library_log_ratio", c.library_median_log_ratio);
    };
    put("low", &run.metrics.low);
    put("full", &run.metrics.full);
    m
}
