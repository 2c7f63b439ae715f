//! The final refit: one more transfer fit of the twin at the session's end, on everything the
//! designer kept, so that every closed-loop session on an fnn core saves a live twin
//! (`[twin] save`), not only those long enough for a refit round (`twin_refit_every` trials).
//!
//! The session is over when it runs (`online::session` calls [`FinalRefitJob::run`] after every
//! thread has joined and the log is closed), so it is off the real-time path. It is the same fit
//! as a round ([`super::transfer_fit_until`]: perspective, modulation and readouts; readouts
//! placed from the data when no round has made them this mouse's), with its own seed, bounded
//! by `[twin] final_refit_steps` and `final_refit_max_s` (`FinalRefitBudget`). Its `stop` flag
//! (the session's stop signals, re-armed for it) ends it before its next step: the fitted
//! weights are then dropped, never saved, and the report says so.
//!
//! What the designer kept is the last `trials.design.history_frames` frames (20,000 by default,
//! 11 minutes at 30 Hz): a longer session's final refit sees its end only.

use super::{CandidatePool, Snapshot, TwinRefitError, TwinRefitSetup, transfer_fit_until};
use crate::stages::decide::design::LiveTwin;
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The final refit's budget (`[twin] final_refit_steps`, `final_refit_max_s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinalRefitBudget {
    /// Optimiser steps at most (the fit's held-out loss is checked four times along them).
    pub steps: usize,
    /// Wall-clock seconds at most; the best evaluated weights so far are kept when it runs out.
    pub max_s: f64,
}

/// A final refit, ready to run: the designer's kept history, copied at the session's end.
pub struct FinalRefitJob {
    pub(super) setup: TwinRefitSetup,
    pub(super) pool: Arc<CandidatePool>,
    pub(super) rendered: Arc<OnceLock<Vec<u8>>>,
    pub(super) snapshot: Snapshot,
    /// The round number its seed derives from (after every periodic round).
    pub(super) round: u64,
    /// Periodic rounds applied before it.
    pub(super) rounds_applied: usize,
    /// Frames kept, and how many of them had a trial's stimulus on screen.
    pub(super) frames: usize,
    pub(super) stimulus_frames: usize,
}

/// What the final refit did (`summary.json`, `final_refit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FinalRefitReport {
    /// It ran to its budget; its twin is the one saved.
    Fitted {
        /// Optimiser steps taken, and the step whose weights were kept.
        steps: usize,
        best_step: usize,
        /// Why it stopped: `max_steps` or `max_seconds`.
        stopped: String,
        /// The held-out Poisson loss (per observed unit-frame, the last 15% of the frames,
        /// never trained on) before the fit and at the kept step.
        initial_held_out_loss: f64,
        best_held_out_loss: f64,
        frames: usize,
        units: usize,
        /// Wall time of the refit (rendering the pool at the core's input and the fit), s.
        seconds: f64,
    },
    /// A stop signal ended it before its budget; its weights were dropped.
    Interrupted {
        steps: usize,
        seconds: f64,
        /// The signal (2 SIGINT, 15 SIGTERM, 1 SIGHUP), when the caller knows it.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// It ran and failed (too few frames, a diverged fit): the reason says which.
    Failed { reason: String, seconds: f64 },
    /// It did not run: nothing to fit, or it is turned off; the reason says which.
    Skipped { reason: String },
}

impl std::fmt::Display for FinalRefitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FinalRefitReport::Fitted {
                steps,
                initial_held_out_loss,
                best_held_out_loss,
                frames,
                seconds,
                ..
            } => write!(
                f,
                "{steps} steps on {frames} frames in {seconds:.1} s, held-out Poisson loss \
                 {initial_held_out_loss:.4} -> {best_held_out_loss:.4}"
            ),
            FinalRefitReport::Interrupted {
                steps,
                seconds,
                signal,
            } => write!(
                f,
                "interrupted{} after {steps} steps ({seconds:.1} s); its weights were dropped",
                signal
                    .map(|s| format!(" by signal {s}"))
                    .unwrap_or_default()
            ),
            FinalRefitReport::Failed { reason, seconds } => {
                write!(f, "failed after {seconds:.1} s: {reason}")
            }
            FinalRefitReport::Skipped { reason } => write!(f, "not run: {reason}"),
        }
    }
}

impl FinalRefitJob {
    /// Periodic rounds applied before it.
    pub fn rounds_applied(&self) -> usize {
        self.rounds_applied
    }

    /// Frames it would fit on.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Runs the fit within `budget`, stopping early once `stop` is raised; returns the refitted
    /// twin when it ran to its budget.
    pub fn run(
        self,
        budget: FinalRefitBudget,
        stop: &AtomicBool,
    ) -> (Option<LiveTwin>, FinalRefitReport) {
        let started = Instant::now();
        let frames = self.frames;
        let _span = tracing::info_span!(
            "final_refit",
            frames,
            stimulus_frames = self.stimulus_frames,
            max_steps = budget.steps,
            max_s = budget.max_s
        )
        .entered();
        tracing::info!(
            "final twin refit started (the recording is complete; a stop signal skips the \
             refit and saves no refitted twin)"
        );
        let mut setup = self.setup;
        // The rounds' fit settings, with the final refit's step budget (the held-out loss
        // checked four times along it, as in a round).
        setup.fit.max_steps = budget.steps.max(1);
        setup.fit.eval_every = (budget.steps / 4).max(1);
        // The final fit alone takes the device (no rig thread runs now), so it is not niced.
        let fitted = transfer_fit_until(
            &setup,
            self.round,
            &self.pool,
            &self.rendered,
            self.snapshot,
            stop,
            budget.max_s,
        );
        let seconds = started.elapsed().as_secs_f64();
        let (twin, report) = match fitted {
            Ok((_, _, r)) if r.stopped == twinloop_model::train::STOPPED_BY_FLAG => (
                None,
                FinalRefitReport::Interrupted {
                    steps: r.steps,
                    seconds,
                    signal: None,
                },
            ),
            Ok((config, weights, r)) => {
                // CPU copies: the saved file is written from them.
                let weights = weights
                    .into_iter()
                    .map(|(k, t)| {
                        let t = t.to_device(&twinloop_model::Device::Cpu).unwrap_or(t);
                        (k, t)
                    })
                    .collect();
                let report = FinalRefitReport::Fitted {
                    steps: r.steps,
                    best_step: r.best_step,
                    stopped: r.stopped.clone(),
                    initial_held_out_loss: r.initial_val_loss,
                    best_held_out_loss: r.best_val_loss,
                    frames,
                    units: config.units,
                    seconds,
                };
                let twin = LiveTwin {
                    config,
                    weights,
                    rounds_applied: self.rounds_applied,
                };
                (Some(twin), report)
            }
            Err(e) => (
                None,
                FinalRefitReport::Failed {
                    reason: match e {
                        TwinRefitError::NoData => nothing_to_fit(frames, self.stimulus_frames),
                        e => e.to_string(),
                    },
                    seconds,
                },
            ),
        };
        tracing::info!(outcome = %report, "final twin refit ended");
        (twin, report)
    }
}

/// Why a history of `frames` kept frames, `stimulus_frames` of them during a trial, has
/// nothing to fit.
pub(super) fn nothing_to_fit(frames: usize, stimulus_frames: usize) -> String {
    if frames == 0 {
        "nothing to fit: no imaging frame with activity reached the designer".into()
    } else if stimulus_frames > 0 {
        format!(
            "nothing to fit: {frames} frames kept, {stimulus_frames} of them during a trial, but \
             no unit had activity"
        )
    } else {
        format!(
            "nothing to fit: none of the {frames} frames kept had a trial's stimulus on screen \
             (no trial was shown)"
        )
    }
}
