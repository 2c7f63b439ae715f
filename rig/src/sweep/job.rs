//! One job: a session on a protocol with the job's overrides, one arm of the closed-loop
//! benchmark, or a replay of a recorded session (`replay.rs`). Each gives a row of metrics; what depends on the machine's speed (wall time) is
//! kept apart, so a rerun's rows can be compared byte for byte.

use super::SweepError;
use super::plan::{Job, Plan};
use super::replay::ReplayJob;
use super::spec::JobKind;
use crate::config::{Config, CoreKind, DEFAULT_SIM_TOML};
use crate::offline::design_bench::{Arm, ArmRun, LoopExperiment};
use crate::offline::heldout::HeldoutEval;
use crate::offline::loop_pools::LoopPools;
use crate::online::session::{self, Hooks};
use crate::stages::decide::build_core;
use crate::stages::decide::design::Objective;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A job made ready to run: the session's whole config, or the arm's settings.
pub enum JobSetup {
    Session(Box<Config>),
    LoopArm(LoopArm),
    Replay(ReplayJob),
    InceptionArm(super::inception_arm::InceptionArm),
}

/// One arm of one seed of `twinloop bench loop`.
#[derive(Debug, Clone)]
pub struct LoopArm {
    pub seed: u64,
    pub objective: Objective,
    pub core: CoreKind,
    pub random_share: Option<f64>,
}

/// What a job gives: its row (reproducible) and its wall time (not).
pub struct JobOutput {
    pub metrics: Map<String, Value>,
    pub wall_s: f64,
    /// Further reproducible detail written beside the rows (a loop arm's learning curve).
    pub detail: Option<Value>,
}

impl JobSetup {
    /// Builds the job's setup from the plan; every error names the job and the entry.
    pub fn of(plan: &Plan, job: &Job) -> Result<JobSetup, SweepError> {
        let fail = |entry: &str, message: String| SweepError::Job {
            job: job.id,
            entry: entry.to_owned(),
            message,
        };
        match plan.kind {
            JobKind::Session => {
                let protocol = job
                    .axes
                    .get("protocol")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fail("protocol", "no protocol".into()))?;
                let text = std::fs::read_to_string(protocol).map_err(|e| {
                    fail(
                        &format!("session.protocols: {protocol}"),
                        format!("cannot read it: {e}"),
                    )
                })?;
                let mut table: toml::Table = toml::from_str(&text)
                    .map_err(|e| fail(&format!("session.protocols: {protocol}"), e.to_string()))?;
                for (axis, value) in &job.axes {
                    if axis == "protocol" {
                        continue;
                    }
                    let value: toml::Value = serde_json::from_value(value.clone())
                        .map_err(|e| fail(&format!("grid.{axis}"), e.to_string()))?;
                    apply_axis(&mut table, axis, value)
                        .map_err(|m| fail(&format!("grid.{axis}"), m))?;
                }
                let text = toml::to_string(&table)
                    .map_err(|e| fail("grid", format!("the overrides do not encode: {e}")))?;
                let mut cfg = Config::from_toml(&text, &format!("{protocol} with job {}", job.id))
                    .map_err(|e| fail("grid", e.to_string()))?;
                if plan.fast {
                    cfg.session.realtime = false;
                }
                cfg.session.progress = false;
                // Nobody watches a sweep's sessions live, and shards side by side would contend
                // for the dashboard's port.
                cfg.dashboard.enabled = false;
                Ok(JobSetup::Session(Box::new(cfg)))
            }
            JobKind::LoopArm => {
                let get = |axis: &str| job.axes.get(axis);
                let seed = get("seed")
                    .map_or(Some(1), Value::as_u64)
                    .ok_or_else(|| fail("grid.seed", "seeds are non-negative integers".into()))?;
                let objective = match get("objective") {
                    None => Objective::InfoGain,
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                        fail(
                            "grid.objective",
                            format!(
                                "{v} is not an objective: info_gain, variance_reduction, \
                                 response_max or random"
                            ),
                        )
                    })?,
                };
                let core = match get("core") {
                    None => CoreKind::Pretrained,
                    Some(v) => match serde_json::from_value(v.clone()) {
                        Ok(c @ (CoreKind::Energy | CoreKind::Pretrained)) => c,
                        _ => {
                            return Err(fail(
                                "grid.core",
                                format!("{v} is not a loop core: energy or pretrained"),
                            ));
                        }
                    },
                };
                let random_share = match get("random_share") {
                    None => None,
                    Some(v) => match v.as_f64() {
                        Some(s) if (0.0..=1.0).contains(&s) => Some(s),
                        _ => {
                            return Err(fail(
                                "grid.random_share",
                                format!("{v}: a share between 0 and 1"),
                            ));
                        }
                    },
                };
                if plan.loop_.trials < 20 || plan.loop_.neurons == 0 {
                    return Err(fail(
                        "loop",
                        "loop.trials must be at least 20 and loop.neurons at least 1".into(),
                    ));
                }
                Ok(JobSetup::LoopArm(LoopArm {
                    seed,
                    objective,
                    core,
                    random_share,
                }))
            }
            JobKind::Replay => ReplayJob::of(job).map(JobSetup::Replay),
            JobKind::InceptionArm => super::inception_arm::InceptionArm::of(plan, job)
                .map(JobSetup::InceptionArm)
                .map_err(|(entry, message)| fail(&entry, message)),
        }
    }
}

/// Sets one grid axis in a session config's TOML: `seed` seeds the selector and the simulated
/// mouse, `twin` makes the core an fnn twin from those weights, any other axis is a dotted key.
fn apply_axis(table: &mut toml::Table, axis: &str, value: toml::Value) -> Result<(), String> {
    match axis {
        "seed" => {
            set_dotted(table, "session.seed", value.clone())?;
            set_dotted(table, "sim.seed", value)
        }
        "twin" => {
            set_dotted(table, "twin.core", toml::Value::String("fnn".into()))?;
            set_dotted(table, "twin.weights", value)
        }
        key => set_dotted(table, key, value),
    }
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|l| !l.is_empty())
        .ok_or("an empty key")?;
    let mut at = table;
    for (i, p) in parts.iter().enumerate() {
        let entry = at
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        at = entry
            .as_table_mut()
            .ok_or_else(|| format!("{} is a value, not a section", parts[..=i].join(".")))?;
    }
    at.insert(last.to_owned(), value);
    Ok(())
}

/// The benchmark's pools for each core, built once within a shard.
#[derive(Default)]
pub struct PoolCache {
    pools: BTreeMap<String, Arc<LoopPools>>,
    inception: Option<Arc<crate::offline::inception_bench::Shared>>,
}

impl JobSetup {
    /// Runs the job with `dir` as its folder (sessions write their session folder under it).
    pub fn run(
        self,
        job: &Job,
        plan: &Plan,
        dir: &Path,
        pools: &mut PoolCache,
    ) -> Result<JobOutput, SweepError> {
        let fail = |message: String| SweepError::Job {
            job: job.id,
            entry: "run".into(),
            message,
        };
        match self {
            JobSetup::Session(mut cfg) => {
                cfg.session.out_dir = dir.to_owned();
                cfg.session.name = format!("job-{:05}", job.id);
                let command_line = vec![
                    "twinloop".into(),
                    "sweep".into(),
                    "run".into(),
                    format!("--job={}", job.id),
                ];
                let summary = session::run(&cfg, command_line, Hooks::default())
                    .map_err(|e| fail(format!("the session failed: {e}")))?;
                if let Some(e) = &summary.recorder_error {
                    return Err(fail(format!(
                        "the session log was not written completely: {e}"
                    )));
                }
                let mut metrics = Map::new();
                metrics.insert("cells".into(), summary.cells.into());
                metrics.insert("rig_time_s".into(), summary.rig_time_s.into());
                metrics.insert("log_records".into(), summary.log_records.into());
                let ended = serde_json::to_value(summary.ingest_end).unwrap_or(Value::Null);
                metrics.insert("ended".into(), ended);
                if let Ok(Value::Object(counters)) = serde_json::to_value(&summary.counters) {
                    metrics.extend(counters.into_iter().filter(|(_, v)| v.is_number()));
                }
                Ok(JobOutput {
                    metrics,
                    wall_s: summary.wall_s,
                    detail: None,
                })
            }
            JobSetup::LoopArm(arm) => loop_arm(&arm, plan, pools).map_err(fail),
            JobSetup::Replay(r) => r.run().map_err(fail),
            JobSetup::InceptionArm(a) => a.run(plan, &mut pools.inception).map_err(fail),
        }
    }
}

fn loop_arm(arm: &LoopArm, plan: &Plan, pools: &mut PoolCache) -> Result<JobOutput, String> {
    let mut cfg =
        Config::from_toml(DEFAULT_SIM_TOML, "(embedded sim.toml)").map_err(|e| e.to_string())?;
    cfg.twin.core = arm.core;
    let design = cfg.trials.design.clone();
    let random_share = arm.random_share.unwrap_or(design.random_share);
    // Named as `bench loop` names its arms.
    let name = match (arm.objective, random_share) {
        (Objective::Random, _) => "random",
        (_, 0.0) => "adaptive-share0",
        _ => "adaptive",
    };
    let bench_arm = Arm {
        name: name.into(),
        objective: arm.objective,
        random_share,
    };
    let twin_hz = cfg.imaging.frame_rate_hz;
    let view = cfg.decide_setup().view;
    let key = format!("{:?}", arm.core);
    let shared = match pools.pools.get(&key) {
        Some(p) => Arc::clone(p),
        None => {
            let twin = cfg.twin.clone();
            let built = LoopPools::build(&cfg, || build_core(&twin, &view, twin_hz), twin_hz)
                .map_err(|e| e.to_string())?;
            let built = Arc::new(built);
            pools.pools.insert(key, Arc::clone(&built));
            built
        }
    };
    let experiment = LoopExperiment {
        trials: plan.loop_.trials,
        neurons: plan.loop_.neurons,
        stimulus_s: cfg.trials.stimulus_s,
        gray_s: cfg.trials.gray_s,
        frame_rate_hz: twin_hz,
        // As `bench loop`: clips shown at the twin rate, exactly what the mouse sees.
        display_hz: twin_hz,
        design,
        twin_refit: None,
        oracle: false,
        still_mouse: false,
    };
    let mouse = experiment
        .mouse(view, arm.seed)
        .map_err(|e| e.to_string())?;
    let heldout = HeldoutEval::new(
        Arc::clone(&shared.heldout),
        &shared.heldout_display,
        &mut mouse.noise_free_cells(),
    )
    .map_err(|e| e.to_string())?;
    let run = experiment
        .run(
            &shared.pool,
            &shared.display,
            Some(&heldout),
            arm.seed,
            &bench_arm,
        )
        .map_err(|e| e.to_string())?;
    Ok(JobOutput {
        metrics: arm_metrics(&run),
        wall_s: run.wall_s,
        detail: Some(reproducible(&run)),
    })
}

/// The arm's figures: accuracy at the end and averaged over the learning curve (its area,
/// normalised to trials), and what the design did.
fn arm_metrics(run: &ArmRun) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(last) = run.curve.last() {
        m.insert("final_heldout_r".into(), finite(last.heldout_r));
        m.insert("final_cc_norm".into(), finite(last.cc_norm));
        m.insert("final_r_true".into(), finite(last.r_true));
        m.insert("final_posterior_sd".into(), finite(last.posterior_sd));
    }
    m.insert(
        "auc_heldout_r".into(),
        finite(curve_mean(run, |p| p.heldout_r)),
    );
    m.insert("auc_r_true".into(), finite(curve_mean(run, |p| p.r_true)));
    m.insert("adaptive_trials".into(), run.adaptive_trials.into());
    m.insert("late".into(), run.late.into());
    m.insert("fallback_trials".into(), run.fallback_trials.into());
    m
}

/// The trapezoid mean of a curve over its trials.
fn curve_mean(run: &ArmRun, f: fn(&crate::offline::design_bench::CurvePoint) -> f64) -> f64 {
    let pts: Vec<(f64, f64)> = run
        .curve
        .iter()
        .map(|p| (p.trials as f64, f(p)))
        .filter(|(_, y)| y.is_finite())
        .collect();
    let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
        return f64::NAN;
    };
    let span = last.0 - first.0;
    if span <= 0.0 {
        return first.1;
    }
    pts.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum::<f64>()
        / span
}

/// JSON has no NaN: an undefined figure is null.
pub(super) fn finite(v: f64) -> Value {
    if v.is_finite() { v.into() } else { Value::Null }
}

/// The run without its wall-clock figures.
fn reproducible(run: &ArmRun) -> Value {
    let mut v = serde_json::to_value(run).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.remove("wall_s");
        o.remove("twin_refit_rounds");
    }
    v
}
