//! `kind = "replay"`: replay validation as a sweep. Each job replays one recorded session
//! (`grid.recording`, a session directory), exactly or as a counterfactual (`grid.policy`,
//! `grid.objective`, `grid.twin`: `twinloop replay --policy/--objective/--twin`), and its row says
//! whether the live run was reproduced and how the other selector's decisions and its twin's
//! predictions compare. Rows are gathered into the same table and report as any sweep's.

use super::SweepError;
use super::job::{JobOutput, finite};
use super::plan::Job;
use crate::backbone::session_log::SessionDir;
use crate::offline::replay::{self, Overrides, TwinOverride};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The axes a replay job takes.
pub const REPLAY_AXES: [&str; 4] = ["recording", "policy", "objective", "twin"];

/// One recorded session and what to change when replaying it.
#[derive(Debug, Clone)]
pub struct ReplayJob {
    pub recording: PathBuf,
    pub overrides: Overrides,
}

impl ReplayJob {
    /// The job's recording and overrides; an entry that is no session, policy, objective or
    /// twin is an error naming it.
    pub fn of(job: &Job) -> Result<ReplayJob, SweepError> {
        let fail = |entry: String, message: String| SweepError::Job {
            job: job.id,
            entry,
            message,
        };
        let recording = job
            .axes
            .get("recording")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| fail("grid.recording".into(), "no recorded session".into()))?;
        // Opened now, so a directory that is no session fails at planning.
        SessionDir::open(&recording)
            .and_then(|d| d.read_manifest())
            .map_err(|e| {
                fail(
                    format!("grid.recording = {:?}", recording.display().to_string()),
                    format!("is not a recorded session: {e}"),
                )
            })?;
        let parse = |axis: &str, what: &str| -> Result<Option<Value>, SweepError> {
            match job.axes.get(axis) {
                None => Ok(None),
                Some(v) if v.is_string() => Ok(Some(v.clone())),
                Some(v) => Err(fail(format!("grid.{axis}"), format!("{v} is not {what}"))),
            }
        };
        let policy = parse("policy", "a policy")?
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|_| {
                    fail(
                        "grid.policy".into(),
                        format!("{v} is not a policy: adaptive or random"),
                    )
                })
            })
            .transpose()?;
        let objective = parse("objective", "an objective")?
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|_| {
                    fail(
                        "grid.objective".into(),
                        format!(
                            "{v} is not an objective: info_gain, variance_reduction, \
                             response_max or random"
                        ),
                    )
                })
            })
            .transpose()?;
        // The weights were loaded once at planning (`Plan::make`); fnn's released network
        // config, as `replay --twin` without `--twin-config`.
        let twin = parse("twin", "a weights file")?
            .and_then(|v| v.as_str().map(PathBuf::from))
            .map(|weights| TwinOverride {
                weights,
                config: None,
            });
        Ok(ReplayJob {
            recording,
            overrides: Overrides {
                policy,
                objective,
                twin,
            },
        })
    }

    /// Replays the recording; the row is reproducible (the same log gives the same row).
    pub fn run(&self) -> Result<JobOutput, String> {
        let r = replay::counterfactual(&self.recording, &self.overrides)
            .map_err(|e| format!("the replay failed: {e}"))?;
        let mut m = Map::new();
        m.insert("reproduced".into(), r.reproduced().into());
        for (k, v) in [
            ("frames_replayed", r.frames_replayed),
            ("activity_compared", r.activity_compared),
            ("activity_mismatches", r.activity_mismatches),
            ("decisions_logged", r.decisions_logged),
            ("decisions_reproduced", r.decisions_reproduced),
            ("frame_time_mismatches", r.frame_time_mismatches),
        ] {
            m.insert(k.into(), v.into());
        }
        m.insert(
            "activity_max_abs_diff".into(),
            finite(f64::from(r.activity_max_abs_diff)),
        );
        if let Some(c) = &r.counterfactual {
            m.insert("decisions".into(), c.decisions.into());
            m.insert("same_stimulus".into(), c.same_stimulus.into());
            m.insert("prediction_frames".into(), c.prediction_frames.into());
            let opt = |v: Option<f64>| v.map_or(Value::Null, finite);
            m.insert("mean_score".into(), opt(c.mean_score));
            m.insert("live_prediction_cc".into(), opt(c.live_prediction_cc));
            m.insert("prediction_cc".into(), opt(c.prediction_cc));
        }
        Ok(JobOutput {
            metrics: m,
            wall_s: r.wall_s,
            detail: None,
        })
    }
}
