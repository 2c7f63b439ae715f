//! Adaptive stimulus selection: the twin of this mouse learns online on a frozen core and the
//! next trial is the one expected to teach it most.
//!
//! - [`pool`]: the candidates and the repeated test block, rendered once at the twin's view and
//!   passed through the frozen core (features cached).
//! - [`designer`]: the online readout posterior, receptive-field placement, the design's rules
//!   (test block, random share, kind cap, fallback, deadline) and the choice.
//! - [`twin_refit`]: between blocks, the transfer fit of the twin itself (perspective,
//!   modulation, readouts) on a worker thread, folded into the pool and the readouts.
//! - [`AdaptiveSelector`]: the designer behind the daemon's [`Selector`] interface.
//!
//! The maths (Laplace posterior, information criterion, greedy batches) is in
//! `twinloop_model::design`; the core is any `twinloop_model::frozen_core::FrozenCore`, chosen
//! by `[twin]`: by default the embedded pretrained fnn core (`twinloop_model::pretrained`), an
//! fnn core from weights, or the baseline motion-energy bank (`twinloop_model::energy_core`).

pub mod designer;
pub mod pool;
mod receptive_field;
pub mod twin_refit;

#[cfg(test)]
pub(crate) mod tests;

pub use designer::{
    AccuracyPoint, Alternative, DecisionMode, DesignChoice, DesignConfig, Designer, Objective,
};
pub use pool::{CandidatePool, PoolError, default_candidates, default_tests};
pub use twin_refit::{LiveTwin, TwinRefit, TwinRefitNote, TwinRefitSetup};

use super::{Decision, FrameBehaviour, Onset, Selector};
use crate::backbone::frames::ActivityBuf;
use crate::vocab::clock::RigTime;
use std::sync::Arc;
use twinloop_stimulus::StimulusId;

/// The designer as the daemon's selector. Pool entry `i` has stimulus id `i`. Every imaging
/// plane's frames are observed; each updates only its own plane's units.
///
/// Onsets and activity reach the selector from two threads, so their arrival order varies from
/// run to run; the designer sees them in one canonical order instead — an onset is applied just
/// before the first frame at or after its time — so a replay that feeds the same onsets and
/// frames reproduces every decision whatever the live interleaving was.
pub struct AdaptiveSelector {
    designer: Designer,
    pending: std::collections::VecDeque<Onset>,
    last_seq: Option<u64>,
    last_t_ns: i64,
    seen: u64,
    onsets_seen: u64,
}

impl AdaptiveSelector {
    pub fn new(
        pool: Arc<CandidatePool>,
        cfg: DesignConfig,
        seed: u64,
        frame_period_s: f64,
    ) -> AdaptiveSelector {
        AdaptiveSelector {
            designer: Designer::new(pool, cfg, seed, frame_period_s),
            pending: std::collections::VecDeque::new(),
            last_seq: None,
            last_t_ns: 0,
            seen: 0,
            onsets_seen: 0,
        }
    }

    /// The rig images `planes` planes in turn: each plane's cells are units of the twin, and
    /// each of their observations lasts `planes` frame periods.
    pub fn with_planes(mut self, planes: u8) -> AdaptiveSelector {
        self.designer = self.designer.with_planes(planes);
        self
    }

    pub fn designer(&self) -> &Designer {
        &self.designer
    }

    /// Refits the twin between blocks (see [`twin_refit`]).
    pub fn set_twin_refit(&mut self, refit: TwinRefit) {
        self.designer.set_twin_refit(refit);
    }
}

impl Selector for AdaptiveSelector {
    fn name(&self) -> &'static str {
        match self.designer.config().objective {
            Objective::InfoGain => "info_gain",
            Objective::VarianceReduction => "variance_reduction",
            Objective::ResponseMax => "response_max",
            Objective::Random => "random_design",
        }
    }

    fn observe(&mut self, activity: &ActivityBuf, behaviour: FrameBehaviour) {
        self.last_seq = Some(activity.frame.seq);
        self.last_t_ns = activity.frame.t.as_nanos();
        self.seen += 1;
        while let Some(o) = self.pending.front().copied()
            && o.t <= activity.frame.t
        {
            self.pending.pop_front();
            self.designer.onset(o.trial, o.stimulus.0 as usize, o.t);
        }
        self.designer.observe_plane(
            activity.frame.plane,
            activity.frame.t,
            activity.values(),
            [behaviour.running_cm_s, behaviour.pupil_radius_px],
        );
    }

    fn onset(&mut self, trial: u64, stimulus: StimulusId, t: RigTime) {
        self.onsets_seen += 1;
        self.pending.push_back(Onset { trial, stimulus, t });
    }

    fn set_scan_offsets(&mut self, plane: u8, offsets_s: Vec<f64>) {
        self.designer.set_scan_offsets(plane, offsets_s);
    }

    fn frames_seen(&self) -> u64 {
        self.seen
    }

    fn onsets_seen(&self) -> u64 {
        self.onsets_seen
    }

    fn prediction(&self) -> Option<&[f64]> {
        self.designer.last_prediction()
    }

    fn prepare(&mut self, next_trial: u64) {
        self.designer.prepare(next_trial);
    }

    fn set_budget(&mut self, budget: Option<std::time::Duration>) {
        self.designer.set_budget(budget);
    }

    fn design_counts(&self) -> Option<&crate::backbone::telemetry::DesignCounts> {
        Some(self.designer.counts())
    }

    fn script_twin_refits(&mut self, trials: std::collections::BTreeSet<u64>) {
        if let Some(r) = self.designer.twin_refit_mut() {
            r.script(trials);
        }
    }

    fn live_twin(&self) -> Result<LiveTwin, String> {
        match self.designer.twin_refit() {
            Some(r) => r.live_twin(),
            None => Err(designer::NO_FNN_TWIN.into()),
        }
    }

    fn final_refit(&self) -> Result<twin_refit::FinalRefitJob, String> {
        self.designer.final_refit_job()
    }

    fn decide(&mut self, trial: u64, force_late: bool) -> Decision {
        let choice = self.designer.decide(trial, force_late);
        let e = self.designer.pool().entry(choice.entry);
        Decision {
            trial,
            stimulus: e.id,
            name: e.name.clone(),
            spec: e.spec.clone(),
            policy: self.name().to_string(),
            after_frame_seq: self.last_seq,
            frames_seen: self.seen,
            after_frame_t_ns: self.last_t_ns,
            mode: choice.mode,
            score: choice.score,
            alternatives: choice.alternatives,
            onsets_seen: self.onsets_seen,
            accuracy: self.designer.accuracy().last().copied(),
            twin_refit: self.designer.twin_refit().and_then(|r| r.last_note()),
        }
    }
}
