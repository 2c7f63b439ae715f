//! `twinloop bench inception` (issue #18 item 5): the inception loop on simulated `v1_rich`
//! mice, faster than real time, scored against the simulator's ground truth.
//!
//! Per mouse: a **record** phase of `record_s` of rig time (the pool and its natural clips,
//! adaptive or random, the designer's own decisions as in `bench loop`: the simulated mouse's
//! spike counts per imaging frame, no microscope or imaging pipeline), each pool entry's
//! response measured in the live protocol's windows ([`Windows`], [`PoolMeasure`]); then the
//! **design** the live session runs: the pre-registered target rule ([`choose_targets`]), the
//! design job ([`design_job`]) and the design worker ([`design::spawn`]: transfer refit,
//! controls, library screen, MEIs at low and full contrast). No second implementation: the
//! bench calls the live code.
//!
//! The **verify** phase is replaced by the truth: each designed image is rendered as the
//! display shows it (a twin image stretched over the view) and scored on the cell's static
//! model ([`StaticCell`]: the noise-free steady-state rate), against the cell's true optimum
//! under the same budget ([`true_optimum`]); `repeats` Poisson counts over the response window
//! per stimulus feed the live verdict's Welch + Benjamini–Hochberg ([`verdict`]).
//! Metrics are in `metrics.rs`.

mod metrics;
mod settings;
mod truth;

pub use metrics::{Across, ContrastMetrics, Interval, MouseMetrics, across_mice, mouse_metrics};
pub use settings::{BENCH_MIN_LIBRARY, BadSetting, BenchSettings, Shared};
pub use truth::{Rates, Samples, TargetTruth};

use super::design_bench::DisplayFrames;
use crate::sim::v1::CellModel;
use crate::sim::{SimConfig, SimError, SimGeometry, SimMouse};
use crate::stages::decide::design::CandidatePool;
use crate::stages::decide::design::designer::{BEHAVIOUR_DIMS, DesignConfig, Designer, Objective};
use crate::stages::decide::design::twin_refit::TwinRefitSetup;
use crate::stages::decide::inception::InceptionConfig;
use crate::stages::decide::inception::design::{
    self, DesignMessage, DesignTimes, DesignedStimulus,
};
use crate::stages::decide::inception::driver::{choose_targets, design_job};
use crate::stages::decide::inception::windows::{PoolMeasure, Shown, Windows};
use crate::vocab::clock::RigTime;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use twinloop_stimulus::{ViewGeometry, cpu};

/// How the record phase picks its trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RecordPolicy {
    /// The live protocol's: the adaptive designer (information gain, its random share).
    Adaptive,
    /// Uniform over the pool.
    Random,
}

/// The twin the design refits and synthesises through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TwinArm {
    /// The embedded pretrained core, transfer-fitted (perspective, modulation, readouts), as
    /// the live design does.
    Pretrained,
    /// The same architecture from random weights, every parameter fitted (core included) for
    /// the same steps on the same record.
    Scratch,
}

impl TwinArm {
    pub fn name(self) -> &'static str {
        match self {
            TwinArm::Pretrained => "pretrained",
            TwinArm::Scratch => "scratch",
        }
    }

    /// The design's twin for this arm from the pretrained setup: scratch replaces every
    /// tensor by a fresh initialisation (seeded by `seed`) and fits them all.
    pub fn setup(self, pretrained: &TwinRefitSetup, seed: u64) -> Result<TwinRefitSetup, String> {
        match self {
            TwinArm::Pretrained => Ok(pretrained.clone()),
            TwinArm::Scratch => {
                let weights = twinloop_model::train::fresh_weights(&pretrained.config, seed)
                    .map_err(|e| format!("the scratch twin's initial weights: {e}"))?;
                let mut s = pretrained.clone();
                s.weights = weights;
                s.fit.scope = twinloop_model::train::FitScope::Full;
                Ok(s)
            }
        }
    }
}

/// One mouse's settings (everything but the seed).
#[derive(Debug, Clone, Serialize)]
pub struct InceptionExperiment {
    pub neurons: usize,
    /// Rig time of the record phase, s.
    pub record_s: f64,
    pub policy: RecordPolicy,
    pub arm: TwinArm,
    /// Poisson repeats per verify stimulus (10-20, as the live `verify_repeats`).
    pub repeats: u32,
    pub stimulus_s: f64,
    pub gray_s: f64,
    pub frame_rate_hz: f64,
    pub inception: InceptionConfig,
    pub design: DesignConfig,
    /// Starts and gradient steps of each true-optimum search.
    pub optimum_starts: usize,
    pub optimum_steps: usize,
}

/// Why a mouse's run stopped.
#[derive(Debug, thiserror::Error)]
pub enum InceptionBenchError {
    #[error("the simulated mouse: {0}")]
    Sim(#[from] SimError),
    #[error("the design: {0}")]
    Design(String),
    #[error("the truth: {0}")]
    Truth(String),
}

/// One mouse's run: the pre-registered targets, what the design made, the truth.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MouseRun {
    pub seed: u64,
    pub arm: TwinArm,
    pub record_s: f64,
    pub record_trials: u64,
    /// Units with a finite held-out CC_norm (the rule's candidates).
    pub candidates: u32,
    pub targets: Vec<TargetTruth>,
    pub design_times_s: DesignTimes,
    /// From `targets` ([`mouse_metrics`]); recomputed when read back ([`MouseRun::read`]).
    #[serde(skip_deserializing)]
    pub metrics: MouseMetrics,
    pub wall_s: f64,
}

impl MouseRun {
    /// A run written as one JSON line, its metrics recomputed from its targets.
    pub fn read(line: &str) -> Result<MouseRun, serde_json::Error> {
        let mut r: MouseRun = serde_json::from_str(line)?;
        r.metrics = mouse_metrics(&r.targets, r.seed);
        Ok(r)
    }
}

impl InceptionExperiment {
    /// The rig geometry the mouse sees: the pool's view at the twin's rate.
    pub fn geometry(&self, view: ViewGeometry) -> SimGeometry {
        super::design_bench::bench_geometry(self.frame_rate_hz, view)
    }

    /// The `v1_rich` mouse of `seed`.
    pub fn mouse(&self, view: ViewGeometry, seed: u64) -> Result<SimMouse, SimError> {
        let mut cfg = SimConfig {
            seed,
            neurons: self.neurons,
            ..SimConfig::default()
        };
        cfg.cells.model = CellModel::V1Rich;
        SimMouse::new(&cfg, &self.geometry(view))
    }

    /// Record, design through `twin` (this arm's setup), score on the truth.
    pub fn run(
        &self,
        pool: &Arc<CandidatePool>,
        display: &DisplayFrames,
        twin: &TwinRefitSetup,
        seed: u64,
    ) -> Result<MouseRun, InceptionBenchError> {
        let started = std::time::Instant::now();
        let view = pool.view();
        let mut mouse = self.mouse(view, seed)?;
        let (designer, measured, trials) = self.record(pool, display, &mut mouse, seed);
        let chosen = choose_targets(&designer, &self.inception);
        let job = design_job(
            &designer,
            &measured,
            Some(twin),
            &self.inception,
            (1, seed),
            chosen.units.clone(),
        )
        .map_err(InceptionBenchError::Design)?;
        let best_pool = job.best_pool.clone();
        drop(designer);
        let (tx, rx) = crossbeam_channel::bounded(4);
        design::spawn(job, tx);
        let mut screened: Vec<DesignedStimulus> = Vec::new();
        let (designed, times) = loop {
            match rx.recv() {
                Ok(DesignMessage::Screened { stimuli, .. }) => screened = stimuli,
                Ok(DesignMessage::Designed { stimuli, times }) => break (stimuli, times),
                Ok(DesignMessage::Failed { reason }) => {
                    return Err(InceptionBenchError::Design(reason));
                }
                Err(_) => {
                    return Err(InceptionBenchError::Design(
                        "the design worker stopped without a result".into(),
                    ));
                }
            }
        };
        let scorer = truth::Scorer::new(self, &mouse, view, twin, pool);
        let targets = chosen
            .units
            .iter()
            .zip(&chosen.targets)
            .enumerate()
            .map(|(t, (&unit, chosen))| {
                let measured_best = measured
                    .best(unit, |e| e < pool.len() && !pool.is_test(e))
                    .map_or(f64::NAN, |(_, m)| m);
                scorer.target(
                    t as u32,
                    unit,
                    chosen.heldout_cc,
                    (best_pool[t], measured_best),
                    &screened,
                    &designed,
                    seed,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(InceptionBenchError::Truth)?;
        let metrics = mouse_metrics(&targets, seed);
        Ok(MouseRun {
            seed,
            arm: self.arm,
            record_s: self.record_s,
            record_trials: trials,
            candidates: chosen.candidates,
            targets,
            design_times_s: times,
            metrics,
            wall_s: started.elapsed().as_secs_f64(),
        })
    }

    /// The record phase: the designer's trials on `mouse` until `record_s` of rig time, each
    /// pool trial's response measured as the live protocol measures it.
    fn record(
        &self,
        pool: &Arc<CandidatePool>,
        display: &DisplayFrames,
        mouse: &mut SimMouse,
        seed: u64,
    ) -> (Designer, PoolMeasure, u64) {
        let view = pool.view();
        let n = mouse.cells().len();
        let design = DesignConfig {
            objective: match self.policy {
                RecordPolicy::Adaptive => self.design.objective,
                RecordPolicy::Random => Objective::Random,
            },
            deadline_ms: 0.0,
            twin_refit_every: 0,
            ..self.design.clone()
        };
        let frame_s = 1.0 / self.frame_rate_hz;
        let mut windows = Windows::new(design.response_delay_s, self.stimulus_s);
        let mut designer = Designer::new(Arc::clone(pool), design, seed ^ 0x5eed, frame_s);
        let mut measured = PoolMeasure::default();
        let gray = vec![cpu::MEAN_GRAY; view.pixels()];
        let (mut spikes, mut rates) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut t_s = 1.0;
        let mut next_frame = 1usize;
        let mut trial = 0u64;
        // The live record phase ends at `record_s` after the first frame; a trial started
        // before then runs to its end.
        while t_s < 1.0 + self.record_s {
            let choice = designer.decide(trial, false);
            let onset = t_s;
            designer.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
            windows.onset(
                Shown::Pool {
                    entry: choice.entry,
                },
                RigTime::from_secs_f64(onset),
                n,
            );
            let clip = display.clip(choice.entry);
            for (k, frame) in clip.chunks_exact(view.pixels()).enumerate() {
                let at = onset + k as f64 * frame_s;
                mouse.show(frame, RigTime::from_secs_f64(at));
            }
            let end_stim = onset + self.stimulus_s;
            mouse.show(&gray, RigTime::from_secs_f64(end_stim));
            let end = end_stim + self.gray_s;
            loop {
                let tf = next_frame as f64 * frame_s;
                if tf >= end {
                    break;
                }
                next_frame += 1;
                let t = RigTime::from_secs_f64(tf);
                let (speed, pupil) = mouse.neural_frame(t, &mut spikes, &mut rates);
                let behaviour: [f32; BEHAVIOUR_DIMS] = [speed as f32, pupil as f32];
                designer.observe(t, &spikes, behaviour);
                for c in windows.frame(t, 0..n, &spikes) {
                    if let Shown::Pool { entry } = c.shown {
                        measured.add(entry, &c.means);
                    }
                }
            }
            t_s = end;
            trial += 1;
        }
        (designer, measured, trial)
    }
}
