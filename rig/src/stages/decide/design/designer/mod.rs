//! The closed loop's decision maker: fits each cell's readout online on the frozen core and
//! picks the stimulus that teaches the twin most, within the rules that keep a design honest.
//!
//! The units are every imaging plane's cells, plane-major (plane 0's cells, then plane 1's,
//! ...); each plane's cell count is its own, so cells that appear or vanish on one plane
//! restart only that plane's readouts (logged and counted) and leave the others' fits alone.
//!
//! Per imaging frame ([`Designer::observe`], one plane's frame): each of that plane's units'
//! activity is matched to what was on the screen at the frame's time minus the response delay
//! (and plus the cell's scan-line offset within its plane's frame), its features are the core's
//! map of that stimulus frame sampled at the unit's readout position plus the behaviour
//! covariates and a bias, and its Gaussian posterior takes one Laplace rank-one Poisson update
//! (Lewi, Butera & Paninski 2009) over the plane's frame period (the volume period: planes ×
//! the rig's frame period), with a little process noise so slow drift is tracked. The other
//! planes' units are untouched by that frame.
//!
//! Per trial ([`Designer::decide`]), in this order, from one seeded stream so replay agrees:
//! every `test_every`-th trial shows the next stimulus of the repeated test block; the first
//! `warmup_trials` are random (they locate each cell's receptive field); then a `random_share`
//! of trials is random; the rest maximise the objective over the candidates whose kind is under
//! its share cap. When held-out accuracy (CC_norm on the test block) has not improved for
//! `patience` evaluations the designer falls back to random until it does again. A decision
//! that overruns its time limit (`deadline_ms`, or the time to its onset when shorter) is
//! counted as late; an adaptive one is replaced by the random one. The upkeep (adopting a twin
//! refit, re-placing readouts) runs in [`Designer::prepare`], while the previous decision waits
//! for its onset; a decision not prepared for does it itself, on its own clock.
//!
//! Readout positions start at the receptive field estimated from the warm-up trials (the grid
//! position whose stimulus energy correlates best with the unit's activity, refined by a local
//! centroid) and are re-estimated every `refit_every` trials; a unit whose position moved is
//! refitted by batch MAP over the kept history.

use super::pool::CandidatePool;

mod cached;
mod choice;
mod config;
mod heldout;
mod history;
mod readouts;
mod rules;

pub use choice::{AccuracyPoint, Alternative, DecisionMode, DesignChoice, DesignCounts};
pub use config::{DesignConfig, Objective};
use heldout::TestPresentation;
pub use history::NO_FNN_TWIN;
use history::{FrameRef, Onset};
use readouts::{Features, PlaneUnits, RunningStats};

use super::receptive_field::RfMapper;
use super::twin_refit::{HistoryRow, TwinRefit};
use crate::vocab::clock::RigTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use twinloop_model::design::{
    Criterion, DesignError, FeatureSource, Posterior, PosteriorConfig, greedy_batch_as,
    score_within_as,
};
use twinloop_model::metrics;

/// Response bins per test clip for CC_norm.
const TEST_BINS: usize = 6;

/// Test-block evaluations averaged for the fallback's view of accuracy.
const SMOOTH_EVALUATIONS: usize = 3;

/// Alternatives logged per adaptive decision.
const ALTERNATIVES: usize = 5;

/// Behaviour covariates per frame: running speed and pupil size, as measured; the designer
/// standardises them (running mean and s.d. of what it has seen, clamped to ±3 s.d.).
pub const BEHAVIOUR_DIMS: usize = 2;

/// Standardised covariates are clamped to this many s.d.
const BEHAVIOUR_CLAMP_SD: f64 = 3.0;

/// The online twin of one mouse (readouts on a frozen core) and the rules of the design.
pub struct Designer {
    pool: Arc<CandidatePool>,
    cfg: DesignConfig,
    rng: ChaCha8Rng,
    frame_period_s: f64,
    /// Time between two frames of one plane (`frame_period_s` × planes): each unit's
    /// observation length.
    volume_period_s: f64,
    /// All planes' units.
    units: usize,
    /// Each plane's units, by plane index.
    planes: Vec<PlaneUnits>,
    posterior: Option<Posterior>,
    /// Readout position per unit, grid units (row, col).
    positions: Vec<(f32, f32)>,
    /// The first trial at which positions are re-estimated again.
    next_refit: u64,
    refit_rounds: u64,
    onsets: Vec<Onset>,
    history: VecDeque<FrameRef>,
    history_values: VecDeque<Vec<f32>>,
    behaviour_now: [f32; BEHAVIOUR_DIMS],
    behaviour_stats: [RunningStats; BEHAVIOUR_DIMS],
    tests: BTreeMap<u64, TestPresentation>,
    test_cursor: usize,
    kind_counts: BTreeMap<&'static str, u64>,
    adaptive_total: u64,
    planned: VecDeque<(usize, f64)>,
    accuracy: Vec<AccuracyPoint>,
    /// Each unit's CC_norm at the last evaluation (`NaN` where undefined or not evaluated).
    unit_cc: Vec<f64>,
    best_accuracy: f64,
    since_best: u32,
    fallback: bool,
    decided: u64,
    counts: DesignCounts,
    dim: usize,
    /// Running mean and variance of each cell's activity, for the outlier clip.
    activity_stats: Vec<RunningStats>,
    /// Features of every unit for one frame (kept to avoid an allocation per frame).
    scratch_xs: Vec<f32>,
    /// The twin's prediction for the last observed frame's plane's units, made before that
    /// frame was folded in.
    prediction: Vec<f64>,
    prediction_valid: bool,
    /// The twin refit worker (fnn cores; `twin_refit.rs`).
    twin_refit: Option<TwinRefit>,
    /// The next decision's time budget, if the caller set one ([`Designer::set_budget`]).
    budget: Option<std::time::Duration>,
    /// The trial whose twin-refit upkeep [`Designer::prepare`] already ran, off its decision's
    /// clock.
    prepared: Option<u64>,
    /// The candidates' features cached between decisions (`cached.rs`).
    cached: Option<cached::CachedFeatures>,
    /// Feature caches built so far.
    cache_builds: u64,
    #[cfg(test)]
    slow_upkeep: Option<std::time::Duration>,
}

impl Designer {
    pub fn new(
        pool: Arc<CandidatePool>,
        cfg: DesignConfig,
        seed: u64,
        frame_period_s: f64,
    ) -> Designer {
        if cfg.test_every == 0 && cfg.objective != Objective::Random {
            // Valid (a session may want every trial adaptive), but it silently costs the two
            // safeguards that need repeats: say so where the experimenter reads.
            tracing::warn!(
                "trials.design.test_every = 0: no repeated test block, so no CC_norm and no \
                 fallback to random when adaptive selection stops helping; set it to 5 (the \
                 default) to keep them"
            );
        }
        let dim = pool.core().channels() + BEHAVIOUR_DIMS + 1;
        Designer {
            pool,
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            frame_period_s,
            volume_period_s: frame_period_s,
            units: 0,
            planes: Vec::new(),
            posterior: None,
            positions: Vec::new(),
            next_refit: 0,
            refit_rounds: 0,
            onsets: Vec::new(),
            history: VecDeque::new(),
            history_values: VecDeque::new(),
            behaviour_now: [0.0; BEHAVIOUR_DIMS],
            behaviour_stats: [RunningStats::default(); BEHAVIOUR_DIMS],
            tests: BTreeMap::new(),
            test_cursor: 0,
            kind_counts: BTreeMap::new(),
            adaptive_total: 0,
            planned: VecDeque::new(),
            accuracy: Vec::new(),
            unit_cc: Vec::new(),
            best_accuracy: f64::NEG_INFINITY,
            since_best: 0,
            fallback: false,
            decided: 0,
            counts: DesignCounts::default(),
            dim,
            activity_stats: Vec::new(),
            scratch_xs: Vec::new(),
            prediction: Vec::new(),
            prediction_valid: false,
            twin_refit: None,
            budget: None,
            prepared: None,
            cached: None,
            cache_builds: 0,
            #[cfg(test)]
            slow_upkeep: None,
        }
    }

    /// The time the next decision has (the daemon: until its trial's onset). With a
    /// `deadline_ms` set, scoring stops at the sooner of the two and the trial is random,
    /// counted as late, so a decision is never late for its onset; without one (`deadline_ms =
    /// 0`: machine speed must not decide the outcome) it is ignored. Applies to one decision.
    pub fn set_budget(&mut self, budget: Option<std::time::Duration>) {
        self.budget = budget;
    }

    /// The rig images `planes` planes in turn (1 by default): each plane's frames come every
    /// `planes` rig frame periods, which is how long each of its observations lasts.
    pub fn with_planes(mut self, planes: u8) -> Designer {
        self.volume_period_s = self.frame_period_s * f64::from(planes.max(1));
        self
    }

    /// Refits the twin itself between blocks (see `twin_refit.rs`).
    pub fn set_twin_refit(&mut self, refit: TwinRefit) {
        self.twin_refit = Some(refit);
    }

    pub fn twin_refit(&self) -> Option<&TwinRefit> {
        self.twin_refit.as_ref()
    }

    pub fn twin_refit_mut(&mut self) -> Option<&mut TwinRefit> {
        self.twin_refit.as_mut()
    }

    pub fn pool(&self) -> &CandidatePool {
        &self.pool
    }

    pub fn pool_arc(&self) -> Arc<CandidatePool> {
        Arc::clone(&self.pool)
    }

    pub fn config(&self) -> &DesignConfig {
        &self.cfg
    }

    /// Feature dimension of each readout: core channels, behaviour, bias.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All planes' units.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Plane `plane`'s units: where they start among all units and how many (0 for a plane not
    /// seen yet).
    pub fn plane_units(&self, plane: u8) -> std::ops::Range<usize> {
        self.planes
            .get(usize::from(plane))
            .map_or(self.units..self.units, PlaneUnits::range)
    }

    pub fn accuracy(&self) -> &[AccuracyPoint] {
        &self.accuracy
    }

    /// Each unit's (all planes, plane-major) CC_norm on the test block at the last evaluation;
    /// `NaN` where CC_max is undefined or the unit's plane was not placed.
    pub fn unit_cc_norm(&self) -> &[f64] {
        &self.unit_cc
    }

    pub fn counts(&self) -> &DesignCounts {
        &self.counts
    }

    pub fn positions(&self) -> &[(f32, f32)] {
        &self.positions
    }

    pub fn posterior(&self) -> Option<&Posterior> {
        self.posterior.as_ref()
    }

    /// Each of plane `plane`'s cells' acquisition time within its frame (its scan line),
    /// seconds after the frame's timestamp. Cells beyond the vector's end get 0.
    pub fn set_scan_offsets(&mut self, plane: u8, offsets_s: Vec<f64>) {
        self.plane_mut(plane).scan_offsets_s = offsets_s;
    }

    /// The twin's prediction of each cell's activity on the last observed frame, that frame's
    /// plane's cells in activity order (the value per frame the posterior mean expected before
    /// that frame was folded in, in the activity's units); `None` until that plane's receptive
    /// fields are placed.
    pub fn last_prediction(&self) -> Option<&[f64]> {
        self.prediction_valid.then_some(self.prediction.as_slice())
    }

    /// Plane 0's frame: [`Designer::observe_plane`] for a single-plane rig.
    pub fn observe(&mut self, t: RigTime, values: &[f32], behaviour: [f32; BEHAVIOUR_DIMS]) {
        self.observe_plane(0, t, values, behaviour);
    }

    /// One imaging frame of plane `plane`: its activity (one value per cell of that plane) and
    /// the behaviour covariates at it. Only that plane's units learn from it, and nothing learns
    /// from a frame of the repeated test block (it only scores CC_norm).
    pub fn observe_plane(
        &mut self,
        plane: u8,
        t: RigTime,
        values: &[f32],
        behaviour: [f32; BEHAVIOUR_DIMS],
    ) {
        self.prediction_valid = false;
        let p = usize::from(plane);
        if self.plane_mut(plane).units != values.len() {
            self.resize(p, values.len());
        }
        if values.is_empty() {
            return;
        }
        let start = self.planes[p].start;
        self.counts.frames += 1;
        self.behaviour_now = self.standardise(behaviour);
        let k = f64::from(self.cfg.outlier_sd);
        let mut clean = Vec::with_capacity(values.len());
        for (u, &v) in values.iter().enumerate() {
            if !v.is_finite() {
                clean.push(f32::NAN);
                continue;
            }
            let v = f64::from(v.max(0.0));
            let s = &mut self.activity_stats[start + u];
            // The scale is the cell's s.d., or its mean when that is larger (sparse spike
            // counts); a cell that has been silent so far has no scale yet and is not clipped.
            let scale = s.sd().max(s.mean);
            if s.n >= 100.0 && scale > 0.0 && v > s.mean + k * scale {
                self.counts.values_clipped += 1;
                clean.push((s.mean + k * scale) as f32);
                continue;
            }
            // Running mean and variance of the values that were not clipped.
            s.push(v);
            clean.push(v as f32);
        }
        let t_s = t.as_secs_f64() - self.cfg.response_delay_s;
        self.accumulate_test(p, t_s, &clean);
        // The repeated test block is held out: it scores CC_norm and nothing learns from it
        // (not the receptive-field map, the readouts or the refit history), so the score is not
        // of data the twin was fitted on.
        let held_out = self.cfg.hold_out_test_block
            && self
                .stimulus_at(t_s)
                .is_some_and(|(e, _, _)| self.pool.is_test(e));
        if !held_out {
            self.accumulate_rf(p, t_s, &clean);
        }
        if self.planes[p].positions_known {
            let dim = self.dim();
            let range = self.planes[p].range();
            let mut xs = std::mem::take(&mut self.scratch_xs);
            xs.resize(range.len() * dim, 0.0);
            for (k, u) in range.clone().enumerate() {
                let at = self.stimulus_at(t_s + self.scan_offset(p, u));
                self.features_into(
                    u,
                    at.map(|(e, f, _)| (e, f)),
                    &mut xs[k * dim..(k + 1) * dim],
                );
            }
            let dt = self.volume_period_s;
            if let Some(post) = self.posterior.as_mut() {
                // One step ahead: what the twin expected of this frame before seeing it.
                post.predict_rates_units(range.clone(), &xs, &mut self.prediction);
                for p in &mut self.prediction {
                    *p *= dt;
                }
                self.prediction_valid = true;
                if held_out {
                    // Predicted, not learnt from.
                } else if range.len() == post.units() {
                    self.counts.values_skipped += post.observe(&xs, &clean, dt) as u64;
                    post.diffuse(dt);
                } else {
                    // Another plane's units share the posterior: fold this frame into this
                    // plane's only (the same update, unit by unit).
                    for (k, u) in range.clone().enumerate() {
                        let x = &xs[k * dim..(k + 1) * dim];
                        if post.observe_unit(u, x, clean[k], dt).is_err() {
                            self.counts.values_skipped += 1;
                        }
                    }
                    post.diffuse_units(range, dt);
                }
            }
            self.scratch_xs = xs;
        }
        if held_out {
            return;
        }
        self.history.push_back(FrameRef {
            plane,
            t_s,
            behaviour: self.behaviour_now,
        });
        self.history_values.push_back(clean);
        // Each plane with cells keeps about `history_frames` of its own frames.
        let kept = self.cfg.history_frames * self.planes.iter().filter(|p| p.units > 0).count();
        while self.history.len() > kept.max(1) {
            self.history.pop_front();
            self.history_values.pop_front();
        }
    }

    /// The predicted rate (events per frame of its plane) of every unit, all planes, at one
    /// frame of a pool entry, with neutral behaviour; `None` before every plane's readouts are
    /// placed.
    pub fn predict(&self, entry: usize, frame: usize) -> Option<Vec<f64>> {
        let post = self.posterior.as_ref()?;
        if self.units == 0
            || !self
                .planes
                .iter()
                .all(|p| p.positions_known || p.units == 0)
        {
            return None;
        }
        let mut x = vec![0.0f32; self.dim()];
        Some(
            (0..self.units)
                .map(|u| {
                    self.features_with(u, Some((entry, frame)), [0.0; BEHAVIOUR_DIMS], &mut x);
                    post.predict_rate(u, &x) * self.volume_period_s
                })
                .collect(),
        )
    }

    /// Times the readout positions were (re-)estimated.
    pub fn refit_rounds(&self) -> u64 {
        self.refit_rounds
    }
}
