//! The design benchmark's stimuli for one core: the candidate pool and test block the designer
//! draws from, and the held-out set no arm shows, each rendered at the twin rate and passed
//! through the core once. Shared by `twinloop bench loop` and the sweep's `loop_arm` jobs, so a
//! sweep scores the same clips as the benchmark.

use super::design_bench::DisplayFrames;
use super::heldout::{HeldoutError, check_disjoint, heldout_entries};
use crate::config::Config;
use crate::stages::decide::design::{CandidatePool, PoolError, default_candidates, default_tests};
use std::sync::Arc;
use twinloop_model::frozen_core::FrozenCore;

#[derive(Debug, thiserror::Error)]
pub enum LoopPoolsError {
    #[error("building the {what}: {source}")]
    Pool {
        what: &'static str,
        source: PoolError,
    },
    #[error("the held-out set: {0}")]
    Heldout(#[from] HeldoutError),
}

/// A mouse's pools and held-out clips: shared by every mouse for a fixed core, per mouse for
/// the oracle.
pub struct LoopPools {
    pub pool: Arc<CandidatePool>,
    pub display: Arc<DisplayFrames>,
    pub heldout: Arc<CandidatePool>,
    pub heldout_display: Arc<DisplayFrames>,
}

impl LoopPools {
    /// Builds both sets through `core()` (called once for each), shown at `twin_hz`.
    pub fn build(
        cfg: &Config,
        core: impl Fn() -> Result<Box<dyn FrozenCore>, PoolError>,
        twin_hz: f64,
    ) -> Result<LoopPools, LoopPoolsError> {
        let setup = cfg.decide_setup();
        let candidates = default_candidates();
        let tests = default_tests(candidates.len() as u32);
        let pool_err = |what| move |source| LoopPoolsError::Pool { what, source };
        let pool = CandidatePool::build(
            candidates,
            tests,
            setup.view,
            core().map_err(pool_err("core"))?,
            cfg.trials.stimulus_s,
            twin_hz,
        )
        .map_err(pool_err("candidate pool"))?;
        let entries = heldout_entries();
        check_disjoint(&entries, pool.entries())?;
        let heldout = CandidatePool::build(
            entries,
            Vec::new(),
            setup.view,
            core().map_err(pool_err("core"))?,
            cfg.trials.stimulus_s,
            twin_hz,
        )
        .map_err(pool_err("held-out set"))?;
        let display = DisplayFrames::render(&pool, cfg.trials.stimulus_s, twin_hz);
        let heldout_display = DisplayFrames::render(&heldout, cfg.trials.stimulus_s, twin_hz);
        Ok(LoopPools {
            pool: Arc::new(pool),
            display: Arc::new(display),
            heldout: Arc::new(heldout),
            heldout_display: Arc::new(heldout_display),
        })
    }
}
