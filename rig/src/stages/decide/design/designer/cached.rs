//! The candidates' features at every readout, cached between decisions
//! ([`twinloop_model::design::FeatureCache`], issue #19 item 6).
//!
//! A decision's features change only when the readouts move (placement, refit of positions),
//! when the pool is replaced (a twin refit brings new features) or when the cells change; the
//! behaviour covariates and the bias, which change every decision, are not cached but given at
//! scoring. So the cache is rebuilt when its key (the pool, the positions, the stride) differs
//! from the designer's — in [`Designer::prepare`], off the decision's clock, when the caller
//! prepares — and every decision in between scores from it with no feature sampling.

use super::*;
use twinloop_model::design::FeatureCache;

/// The cache and what it was built from.
pub(super) struct CachedFeatures {
    /// Held so that a pointer comparison cannot be fooled by a freed and reused allocation.
    pool: Arc<CandidatePool>,
    positions: Vec<(f32, f32)>,
    stride: usize,
    /// Position of each pool candidate in the cache, by candidate index.
    index: BTreeMap<usize, usize>,
    cache: FeatureCache,
}

impl Designer {
    /// Whether decisions score through the cache: information gain, one pick per decision,
    /// on the f32 lane path with `feature_cache` on, clips within the lane kernel's length.
    fn uses_feature_cache(&self) -> bool {
        self.cfg.feature_cache
            && self.cfg.fast_scoring
            && self.cfg.batch <= 1
            && self.cfg.objective == Objective::InfoGain
            && self.pool.frames().div_ceil(self.cfg.score_stride) <= 96
    }

    /// Rebuilds the cache when the pool, the positions or the stride changed since it was
    /// built (nothing to do otherwise). A failed build is logged and leaves no cache, so the
    /// decision scores on the uncached path.
    pub(super) fn refresh_feature_cache(&mut self) {
        if !self.uses_feature_cache() || self.posterior.is_none() {
            self.cached = None;
            return;
        }
        let fresh = self.cached.as_ref().is_some_and(|c| {
            Arc::ptr_eq(&c.pool, &self.pool)
                && c.positions == self.positions
                && c.stride == self.cfg.score_stride
        });
        if fresh {
            return;
        }
        self.cached = None;
        let started = Instant::now();
        let candidates = self.pool.candidates();
        let src = Features {
            designer: self,
            stride: self.cfg.score_stride,
        };
        let cols = self.pool.core().channels();
        match FeatureCache::build(&src, self.units, &candidates, cols, self.cfg.threads) {
            Ok(cache) => {
                self.cache_builds += 1;
                tracing::debug!(
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    mb = cache.bytes() as f64 / 1e6,
                    "candidate feature cache built"
                );
                self.cached = Some(CachedFeatures {
                    pool: Arc::clone(&self.pool),
                    positions: self.positions.clone(),
                    stride: self.cfg.score_stride,
                    index: candidates
                        .iter()
                        .enumerate()
                        .map(|(k, &c)| (c, k))
                        .collect(),
                    cache,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "candidate feature cache not built; scoring uncached")
            }
        }
    }

    /// Candidate feature caches built so far (placements and moves of the readouts, new pools),
    /// and whether one is held now.
    pub fn feature_caches(&self) -> (u64, bool) {
        (self.cache_builds, self.cached.is_some())
    }

    /// Information gain of `allowed` from the cache (after [`Self::refresh_feature_cache`]),
    /// in `allowed`'s order; `None` when the cache is not in use.
    pub(super) fn score_cached(
        &self,
        allowed: &[usize],
        dt_s: f64,
        stop: Option<Instant>,
    ) -> Option<Result<Vec<f64>, DesignError>> {
        let cached = self.cached.as_ref()?;
        let post = self.posterior.as_ref()?;
        // Behaviour and bias, the same for every cell at this decision (`features_with`).
        let mut tail = self.behaviour_now.to_vec();
        tail.push(1.0);
        let tails = tail.repeat(self.units);
        let all = cached
            .cache
            .info_gain(post, &tails, dt_s, self.cfg.threads, stop);
        Some(all.map(|all| {
            allowed
                .iter()
                .map(|c| cached.index.get(c).map_or(f64::NAN, |&k| all[k]))
                .collect()
        }))
    }
}
