//! The experiment that shows whether the closed loop works (`twinloop bench loop`): on the
//! simulated mouse (the ground truth), the same designer runs in several arms — random, adaptive
//! with and without a random share — on the same mouse, designer seed and warm-up, and the
//! twin's accuracy is tracked against trials. With the usual cores the twin is a misspecified
//! student, as with a real mouse; with the oracle core (`oracle_core.rs`) it is correctly
//! specified, the positive control.
//!
//! The brain is driven by the same stimuli the daemon would show (the pool's specs rendered at
//! the twin rate on the simulator's view) and observed through its spike counts per imaging
//! frame; the microscope and the imaging pipeline are left out (their fidelity is measured by
//! the imaging benchmarks), so the experiment isolates the design. Accuracy is scored on a
//! held-out set no arm shows, against the cells' noise-free rates (`heldout.rs`); the
//! designer's own CC_norm on the repeated test block and the correlation with the true rates on
//! that block are kept beside it.

use super::heldout::HeldoutEval;
use crate::sim::{SimConfig, SimGeometry, SimMouse};
use crate::stages::decide::design::designer::{BEHAVIOUR_DIMS, DesignConfig, Designer, Objective};
use crate::stages::decide::design::pool::CandidatePool;
use crate::vocab::clock::RigTime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use twinloop_stimulus::{Prepared, Projection, ViewGeometry, cpu};

/// One run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct LoopExperiment {
    pub trials: u32,
    pub neurons: usize,
    pub stimulus_s: f64,
    pub gray_s: f64,
    pub frame_rate_hz: f64,
    pub display_hz: f64,
    pub design: DesignConfig,
    /// The twin to refit between blocks (`design.twin_refit_every` > 0, fnn cores).
    #[serde(skip)]
    pub twin_refit: Option<crate::stages::decide::design::TwinRefitSetup>,
    /// The pool's core is the oracle (the readouts' true weights are known).
    pub oracle: bool,
    /// The mouse's gain ignores running, pupil and the latent state, and its gaze does not move
    /// the view: with the oracle core the readouts are then exactly the cells (the correctly
    /// specified control; an awake mouse's state gain is outside their model).
    pub still_mouse: bool,
}

/// One arm: the designer's objective and random share (everything else is shared).
#[derive(Debug, Clone, Serialize)]
pub struct Arm {
    pub name: String,
    pub objective: Objective,
    pub random_share: f64,
}

/// Accuracy after some trials.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    pub trials: u64,
    /// Mean over cells of the correlation between the twin's predictions and the noise-free
    /// rates on the held-out set (`heldout.rs`; NaN before the readouts are placed).
    pub heldout_r: f64,
    /// Oracle core only (else NaN): mean over the cells whose readout sits at their own column
    /// of |stimulus weight − 1|, the one readout parameter whose true value is defined.
    pub param_error: f64,
    /// Oracle core only: the share of cells whose readout sits at their own column.
    pub placed_own: f64,
    /// The designer's CC_norm on the test block (NaN before two repeats).
    pub cc_norm: f64,
    /// Mean over units of the correlation between predicted and true rates on the test block.
    pub r_true: f64,
    /// Mean over units and weights of the posterior standard deviation: what the criterion
    /// reduces, whether or not accuracy follows.
    pub posterior_sd: f64,
}

/// One arm (policy) of one seed.
#[derive(Debug, Clone, Serialize)]
pub struct ArmRun {
    pub seed: u64,
    pub arm: String,
    pub objective: Objective,
    pub random_share: f64,
    pub curve: Vec<CurvePoint>,
    pub adaptive_trials: u64,
    /// Every pool entry this arm showed (for the check that none is held out).
    pub shown: std::collections::BTreeSet<usize>,
    pub late: u64,
    pub fallback_trials: u64,
    /// Twin refits applied and failed, and every round taken.
    pub twin_refits: u64,
    pub twin_refit_failures: u64,
    pub twin_refit_rounds: Vec<crate::stages::decide::design::twin_refit::TwinRefitRound>,
    pub wall_s: f64,
}

/// Rendered display frames per pool entry, shared by runs.
pub struct DisplayFrames {
    frames: BTreeMap<usize, Vec<u8>>,
    per_clip: usize,
    pixels: usize,
}

impl DisplayFrames {
    /// Renders every pool entry for `stimulus_s` at `display_hz` on the pool's view.
    pub fn render(pool: &CandidatePool, stimulus_s: f64, display_hz: f64) -> DisplayFrames {
        let view = pool.view();
        let projection = Projection::Linear(view);
        let per_clip = ((stimulus_s * display_hz).round() as usize).max(1);
        let mut frames = BTreeMap::new();
        for (i, e) in pool.entries().iter().enumerate() {
            let mut clip = vec![cpu::MEAN_GRAY; per_clip * view.pixels()];
            if let Ok(mut p) = Prepared::new(&e.spec) {
                for (k, out) in clip.chunks_exact_mut(view.pixels()).enumerate() {
                    cpu::render_content(&p.frame(k as f64 / display_hz), &projection, out);
                }
            }
            frames.insert(i, clip);
        }
        DisplayFrames {
            frames,
            per_clip,
            pixels: view.pixels(),
        }
    }

    /// Every frame of one entry's clip, frame-major.
    pub fn clip(&self, entry: usize) -> &[u8] {
        &self.frames[&entry]
    }

    fn frame(&self, entry: usize, k: usize) -> &[u8] {
        let clip = &self.frames[&entry];
        &clip[k * self.pixels..(k + 1) * self.pixels]
    }
}

/// The rig the benchmarks' simulated mice sit in: a 256x256 field of view (no imaging runs:
/// responses are spike counts) at `frame_rate_hz`, the view the pool's.
pub fn bench_geometry(frame_rate_hz: f64, view: ViewGeometry) -> SimGeometry {
    SimGeometry {
        imaging_width: 256,
        imaging_height: 256,
        imaging_rate_hz: frame_rate_hz,
        view_width: view.width,
        view_height: view.height,
        view_azimuth_deg: view.azimuth_deg,
        view_elevation_deg: view.elevation_deg,
        ..SimGeometry::default()
    }
}

impl LoopExperiment {
    /// The simulated mouse of `seed`, its view the pool's.
    pub fn mouse(&self, view: ViewGeometry, seed: u64) -> Result<SimMouse, crate::sim::SimError> {
        let mut sim_cfg = SimConfig {
            seed,
            neurons: self.neurons,
            ..SimConfig::default()
        };
        if self.still_mouse {
            sim_cfg.cells.run_coupling = [0.0, 0.0];
            sim_cfg.cells.pupil_coupling = [0.0, 0.0];
            sim_cfg.cells.latent_coupling = [0.0, 0.0];
            sim_cfg.cells.gaze_shifts_view = false;
        }
        SimMouse::new(&sim_cfg, &bench_geometry(self.frame_rate_hz, view))
    }

    /// Runs one arm on the simulated mouse of `seed`. The designer's seed is the same for every
    /// arm of a seed, so they share the test schedule, the warm-up and the random draws.
    pub fn run(
        &self,
        pool: &Arc<CandidatePool>,
        display: &DisplayFrames,
        heldout: Option<&HeldoutEval>,
        seed: u64,
        arm: &Arm,
    ) -> Result<ArmRun, crate::sim::SimError> {
        let started = std::time::Instant::now();
        let view = pool.view();
        let mut mouse = self.mouse(view, seed)?;
        let n = mouse.cells().len();
        let design = DesignConfig {
            objective: arm.objective,
            random_share: arm.random_share,
            deadline_ms: 0.0,
            ..self.design.clone()
        };
        let frame_s = 1.0 / self.frame_rate_hz;
        let every = design.twin_refit_every;
        let mut designer = Designer::new(Arc::clone(pool), design, seed ^ 0x5eed, frame_s);
        if let Some(setup) = self.twin_refit.as_ref().filter(|_| every > 0) {
            let mut refit = crate::stages::decide::design::TwinRefit::new(setup.clone(), every);
            refit.set_horizon(u64::from(self.trials));
            designer.set_twin_refit(refit);
        }
        let gray = vec![cpu::MEAN_GRAY; view.pixels()];
        let mut spikes = vec![0.0f32; n];
        let mut rates = vec![0.0f32; n];
        let tests = pool.tests();
        let bins = 6usize;
        // True mean events per frame on the test block: [test][bin][unit] sums and counts.
        let mut truth_sum = vec![0.0f64; tests.len() * bins * n];
        let mut truth_count = vec![0u32; tests.len() * bins];
        let mut curve = Vec::new();
        let mut adaptive = 0u64;
        let mut shown = std::collections::BTreeSet::new();
        let mut t_s = 1.0;
        let mut next_frame = 1usize;
        for trial in 0..u64::from(self.trials) {
            let choice = designer.decide(trial, false);
            if choice.mode == crate::stages::decide::design::DecisionMode::Adaptive {
                adaptive += 1;
            }
            shown.insert(choice.entry);
            if choice.mode == crate::stages::decide::design::DecisionMode::Test {
                let (param_error, placed_own) = self.param_error(&designer);
                curve.push(CurvePoint {
                    trials: trial,
                    heldout_r: heldout.map_or(f64::NAN, |h| h.accuracy(&designer)),
                    param_error,
                    placed_own,
                    cc_norm: designer.accuracy().last().map_or(f64::NAN, |a| a.cc_norm),
                    r_true: r_true(&designer, pool, &tests, &truth_sum, &truth_count, n, bins),
                    posterior_sd: posterior_sd(&designer),
                });
            }
            let onset = t_s;
            designer.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
            for k in 0..display.per_clip {
                mouse.show(
                    display.frame(choice.entry, k),
                    RigTime::from_secs_f64(onset + k as f64 / self.display_hz),
                );
            }
            let end_stim = onset + self.stimulus_s;
            mouse.show(&gray, RigTime::from_secs_f64(end_stim));
            let end = end_stim + self.gray_s;
            let test_index = tests.iter().position(|&e| e == choice.entry);
            loop {
                let tf = next_frame as f64 * frame_s;
                if tf >= end {
                    break;
                }
                next_frame += 1;
                let (speed, pupil) =
                    mouse.neural_frame(RigTime::from_secs_f64(tf), &mut spikes, &mut rates);
                let behaviour: [f32; BEHAVIOUR_DIMS] = [speed as f32, pupil as f32];
                designer.observe(RigTime::from_secs_f64(tf), &spikes, behaviour);
                if let Some(ti) = test_index {
                    let f = ((tf - onset) * pool.twin_hz()).floor();
                    if f >= 0.0 && (f as usize) < pool.frames() {
                        let bin = f as usize * bins / pool.frames();
                        let row = (ti * bins + bin) * n;
                        truth_count[ti * bins + bin] += 1;
                        for (acc, &r) in truth_sum[row..row + n].iter_mut().zip(&rates) {
                            *acc += f64::from(r) * frame_s;
                        }
                    }
                }
            }
            t_s = end;
        }
        let (param_error, placed_own) = self.param_error(&designer);
        curve.push(CurvePoint {
            trials: u64::from(self.trials),
            heldout_r: heldout.map_or(f64::NAN, |h| h.accuracy(&designer)),
            param_error,
            placed_own,
            cc_norm: designer.accuracy().last().map_or(f64::NAN, |a| a.cc_norm),
            r_true: r_true(&designer, pool, &tests, &truth_sum, &truth_count, n, bins),
            posterior_sd: posterior_sd(&designer),
        });
        let counts = designer.counts();
        Ok(ArmRun {
            seed,
            arm: arm.name.clone(),
            objective: arm.objective,
            random_share: arm.random_share,
            curve,
            adaptive_trials: adaptive,
            shown,
            late: counts.late,
            fallback_trials: counts.fallback_trials,
            twin_refits: counts.twin_refits,
            twin_refit_failures: counts.twin_refit_failures,
            twin_refit_rounds: designer
                .twin_refit()
                .map_or_else(Vec::new, |r| r.rounds().to_vec()),
            wall_s: started.elapsed().as_secs_f64(),
        })
    }
}

impl LoopExperiment {
    /// The oracle's readout error: cell u's true readout sits at its column
    /// ([`super::oracle_core::column_of`]) with stimulus weight 1. Returns (mean |weight − 1| over the cells placed there, the share
    /// placed there); NaN for other cores and before the readouts are placed.
    fn param_error(&self, designer: &Designer) -> (f64, f64) {
        let Some(post) = designer.posterior().filter(|_| self.oracle) else {
            return (f64::NAN, f64::NAN);
        };
        let positions = designer.positions();
        if post.units() == 0 || positions.len() != post.units() {
            return (f64::NAN, f64::NAN);
        }
        let n = post.units();
        let own: Vec<usize> = (0..n)
            .filter(|&u| {
                positions[u].1.round() as i64 == super::oracle_core::column_of(u, n) as i64
            })
            .collect();
        let err = own
            .iter()
            .map(|&u| (post.mean(u)[0] - 1.0).abs())
            .sum::<f64>()
            / own.len().max(1) as f64;
        let share = own.len() as f64 / post.units() as f64;
        (if own.is_empty() { f64::NAN } else { err }, share)
    }
}

/// Mean posterior standard deviation of the readout weights (NaN before the readouts are placed).
fn posterior_sd(designer: &Designer) -> f64 {
    let Some(post) = designer.posterior() else {
        return f64::NAN;
    };
    if post.units() == 0 {
        return f64::NAN;
    }
    let d = post.dim();
    let mut total = 0.0;
    for u in 0..post.units() {
        let cov = post.cov(u);
        total += (0..d).map(|i| cov[i * d + i].max(0.0).sqrt()).sum::<f64>() / d as f64;
    }
    total / post.units().max(1) as f64
}

/// Mean over units of the correlation between the twin's predicted events per frame and the
/// simulator's true ones, over test stimuli x response bins.
fn r_true(
    designer: &Designer,
    pool: &CandidatePool,
    tests: &[usize],
    truth_sum: &[f64],
    truth_count: &[u32],
    n: usize,
    bins: usize,
) -> f64 {
    if truth_count.contains(&0) {
        return f64::NAN;
    }
    let frames = pool.frames();
    // Predicted mean per (test, bin, unit).
    let mut pred = vec![0.0f64; tests.len() * bins * n];
    let mut pred_n = vec![0u32; tests.len() * bins];
    for (ti, &e) in tests.iter().enumerate() {
        for f in 0..frames {
            let Some(p) = designer.predict(e, f) else {
                return f64::NAN;
            };
            let b = f * bins / frames;
            pred_n[ti * bins + b] += 1;
            let row = (ti * bins + b) * n;
            for (acc, v) in pred[row..row + n].iter_mut().zip(p) {
                *acc += v;
            }
        }
    }
    let mut total = 0.0;
    let mut counted = 0;
    let points = tests.len() * bins;
    for u in 0..n {
        let truth: Vec<f64> = (0..points)
            .map(|k| truth_sum[k * n + u] / f64::from(truth_count[k]))
            .collect();
        let p: Vec<f64> = (0..points)
            .map(|k| pred[k * n + u] / f64::from(pred_n[k].max(1)))
            .collect();
        if let Ok(r) = twinloop_model::metrics::pearson(&truth, &p)
            && r.is_finite()
        {
            total += r;
            counted += 1;
        }
    }
    if counted == 0 {
        f64::NAN
    } else {
        total / counted as f64
    }
}

/// Paired comparison over seeds: trials each arm needs to reach a fraction of the random arm's
/// final accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metric: &'static str,
    pub level: f64,
    /// Median over seeds of the trials random needed.
    pub random_trials: f64,
    /// Median over seeds of the trials the adaptive arm needed (NaN where it never got there).
    pub adaptive_trials: f64,
    /// Median over seeds of random / adaptive.
    pub ratio: f64,
    /// Seeds where the adaptive arm got there in fewer trials.
    pub adaptive_wins: usize,
    pub seeds: usize,
}

/// First trial count at which `curve` reaches `target` (linear in trials between points).
pub fn trials_to_reach(curve: &[(u64, f64)], target: f64) -> Option<f64> {
    let mut prev: Option<(u64, f64)> = None;
    for &(t, v) in curve {
        if !v.is_finite() {
            continue;
        }
        if v >= target {
            return Some(match prev {
                Some((t0, v0)) if v > v0 => t0 as f64 + (target - v0) / (v - v0) * (t - t0) as f64,
                _ => t as f64,
            });
        }
        prev = Some((t, v));
    }
    None
}

/// Median ignoring NaNs (NaN when nothing is left).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Compares arms paired by seed at `levels` of random's final accuracy (the mean of its last
/// two points, to steady the target).
pub fn compare(
    random: &[ArmRun],
    adaptive: &[ArmRun],
    metric: &'static str,
    levels: &[f64],
) -> Vec<Comparison> {
    let pick = |p: &CurvePoint| {
        if metric == "cc_norm" {
            p.cc_norm
        } else {
            p.r_true
        }
    };
    levels
        .iter()
        .map(|&level| {
            let mut rt = Vec::new();
            let mut at = Vec::new();
            let mut ratios = Vec::new();
            let mut wins = 0;
            for (r, a) in random.iter().zip(adaptive) {
                let rc: Vec<(u64, f64)> = r.curve.iter().map(|p| (p.trials, pick(p))).collect();
                let ac: Vec<(u64, f64)> = a.curve.iter().map(|p| (p.trials, pick(p))).collect();
                let finals: Vec<f64> = rc.iter().rev().take(2).map(|p| p.1).collect();
                let target = level * finals.iter().sum::<f64>() / finals.len().max(1) as f64;
                let tr = trials_to_reach(&rc, target);
                let ta = trials_to_reach(&ac, target);
                rt.push(tr.unwrap_or(f64::NAN));
                at.push(ta.unwrap_or(f64::NAN));
                if let (Some(tr), Some(ta)) = (tr, ta) {
                    ratios.push(tr / ta.max(1.0));
                    if ta < tr {
                        wins += 1;
                    }
                } else if tr.is_some() {
                    ratios.push(0.0);
                }
            }
            Comparison {
                metric,
                level,
                random_trials: median(rt),
                adaptive_trials: median(at),
                ratio: median(ratios),
                adaptive_wins: wins,
                seeds: random.len().min(adaptive.len()),
            }
        })
        .collect()
}
