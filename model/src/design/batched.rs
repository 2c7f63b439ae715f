//! Information gain at rig scale: every unit against every candidate, [`LANES`] candidates per
//! kernel call ([`super::lanes`]), units in fixed blocks spread over threads.
//!
//! Layout of one pass: per unit, `Σ`'s Cholesky factor (f64, then rounded to f32) and `μ` are
//! computed once; each block of 16 candidates' features is filled from the source and laid
//! lane-major (`[frame][feature][candidate]`), then scored by the kernel.
//!
//! Determinism: units are summed in blocks of [`UNIT_BLOCK`] whatever the thread count (threads
//! take contiguous runs of blocks, and the blocks' totals are added in block order), so the
//! scores are bit-identical for any `threads`. Within a block, a unit's gain `½ ln P` is added
//! as `P = m · 2^k` (`m ∈ [1, 2)`): the mantissas are multiplied and the exponents summed, and
//! one logarithm per (block, candidate) replaces one per (unit, candidate).

use std::time::Instant;

use super::criterion::info_gain_unit;
use super::lanes::{self, LANES, Lane, LaneGains, SAFE_PEAK, Scratch, UnitF32};
use super::linalg::cholesky;
use super::posterior::Posterior;
use super::{DesignError, check_len};
use crate::design::FeatureSource;

/// Units per block: the unit of determinism and of deadline checks (a block is a few
/// milliseconds at rig scale, so a passed deadline stops scoring within that).
pub(crate) const UNIT_BLOCK: usize = 8;

/// Whether the lane kernel takes clips of at most `max_frames` frames.
pub(crate) fn fits(max_frames: usize) -> bool {
    max_frames <= lanes::MAX_FRAMES
}

/// The candidates in lane blocks: indices into the source and each block's longest clip.
struct Blocks<'a> {
    candidates: &'a [usize],
    frames: Vec<usize>,
    block_frames: Vec<usize>,
}

impl<'a> Blocks<'a> {
    fn new(src: &dyn FeatureSource, candidates: &'a [usize]) -> Self {
        let frames: Vec<usize> = candidates.iter().map(|&c| src.frames(c)).collect();
        let block_frames = frames
            .chunks(LANES)
            .map(|f| f.iter().copied().max().unwrap_or(0))
            .collect();
        Blocks {
            candidates,
            frames,
            block_frames,
        }
    }
}

/// Per (unit-block, candidate) accumulators of `Σ_u ln P_u` in mantissa/exponent form.
pub(crate) struct Acc {
    mant: Vec<f64>,
    expo: Vec<i64>,
    /// `Σ ln P_u` of the pairs recomputed in f64 (peak above [`SAFE_PEAK`]).
    extra: Vec<f64>,
}

impl Acc {
    pub(crate) fn new(n: usize) -> Self {
        Acc {
            mant: vec![1.0; n],
            expo: vec![0; n],
            extra: vec![0.0; n],
        }
    }

    pub(crate) fn reset(&mut self) {
        self.mant.fill(1.0);
        self.expo.fill(0);
        self.extra.fill(0.0);
    }

    /// Adds `ln p` to candidate `c` (a normal, positive, finite `p`).
    #[inline]
    fn add(&mut self, c: usize, p: f64) {
        const MANT: u64 = (1u64 << 52) - 1;
        let bits = p.to_bits();
        self.expo[c] += ((bits >> 52) & 0x7ff) as i64 - 1023;
        self.mant[c] *= f64::from_bits((bits & MANT) | (1023u64 << 52));
    }

    /// Adds one kernel call's `members` lanes for candidates `first..`: a NaN peak (non-finite
    /// features) adds nothing, as in the reference; a peak above [`SAFE_PEAK`] adds `2 ·
    /// f64_gain(lane)` (the pair recomputed in f64).
    pub(crate) fn add_lanes(
        &mut self,
        first: usize,
        members: usize,
        gains: &LaneGains,
        mut f64_gain: impl FnMut(usize) -> f64,
    ) {
        for (lane, (&p, &peak)) in gains.det.iter().zip(&gains.peak).enumerate().take(members) {
            if peak.is_nan() {
                // Non-finite features: the pair contributes nothing, as in the reference.
            } else if peak > SAFE_PEAK {
                let gain = f64_gain(lane);
                if gain.is_finite() {
                    self.extra[first + lane] += 2.0 * gain;
                }
            } else if p.is_normal() {
                self.add(first + lane, p);
            }
        }
    }

    /// `½ Σ_u ln P_u` per candidate into `out`.
    pub(crate) fn finish(&self, out: &mut [f64]) {
        for (((o, m), e), x) in out
            .iter_mut()
            .zip(&self.mant)
            .zip(&self.expo)
            .zip(&self.extra)
        {
            *o = 0.5 * (m.ln() + *e as f64 * std::f64::consts::LN_2 + x);
        }
    }
}

/// Information gain of every candidate summed over units, with unit `u`'s covariance at
/// `covs[u·d²..]` (the posterior's, or a greedy batch's scratch copy). Same contract as
/// [`super::score_within`] for `Criterion::InfoGain`, in f32 (module docs of [`super::lanes`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn info_gain(
    post: &Posterior,
    covs: &[f64],
    src: &dyn FeatureSource,
    candidates: &[usize],
    dt_s: f64,
    threads: usize,
    deadline: Option<Instant>,
) -> Result<Vec<f64>, DesignError> {
    let (units, d) = (post.units(), post.dim());
    check_len("covariances length", units * d * d, covs.len())?;
    let blocks = Blocks::new(src, candidates);
    sum_unit_blocks(
        units,
        candidates.len(),
        threads,
        deadline,
        || Worker::new(d),
        |worker, u, acc| {
            let cov = &covs[u * d * d..(u + 1) * d * d];
            worker.unit(post.mean(u), cov, dt_s, src, u, &blocks, acc);
        },
    )
}

/// `Σ_u` of what `per_unit(worker, u, acc)` adds to `acc` for each of `n` candidates, units in
/// fixed blocks of [`UNIT_BLOCK`] spread over `threads` (one `new_worker()` each) and the
/// blocks' totals added in block order, so the result is bit-identical for any thread count.
/// Checks `deadline` before each block.
pub(crate) fn sum_unit_blocks<W>(
    units: usize,
    n: usize,
    threads: usize,
    deadline: Option<Instant>,
    new_worker: impl Fn() -> W + Sync,
    per_unit: impl Fn(&mut W, usize, &mut Acc) + Sync,
) -> Result<Vec<f64>, DesignError> {
    let unit_blocks = units.div_ceil(UNIT_BLOCK);
    let chunk = |range: std::ops::Range<usize>, (): ()| -> Option<Vec<f64>> {
        let mut out = vec![0.0; range.len() * n];
        let mut worker = new_worker();
        let mut acc = Acc::new(n);
        for (b, o) in range.zip(out.chunks_exact_mut(n.max(1))) {
            if deadline.is_some_and(|t| Instant::now() >= t) {
                return None;
            }
            acc.reset();
            for u in b * UNIT_BLOCK..((b + 1) * UNIT_BLOCK).min(units) {
                per_unit(&mut worker, u, &mut acc);
            }
            acc.finish(o);
        }
        Some(out)
    };
    let parts = super::par_ranges(unit_blocks, threads, |_| (), chunk);
    let mut total = vec![0.0; n];
    for part in parts {
        let part = part.ok_or(DesignError::DeadlinePassed)?;
        for block in part.chunks_exact(n.max(1)) {
            for (t, v) in total.iter_mut().zip(block) {
                *t += v;
            }
        }
    }
    Ok(total)
}

/// One thread's buffers.
pub(crate) struct Worker {
    d: usize,
    l64: Vec<f64>,
    pub(crate) l32: Vec<f32>,
    pub(crate) mean: Vec<f32>,
    /// `padded(d)` zeros: the offsets of a full block.
    zeros: Vec<f32>,
    row: Vec<f32>,
    x: Vec<Lane>,
    pub(crate) scratch: Scratch,
}

impl Worker {
    pub(crate) fn new(d: usize) -> Self {
        Worker {
            d,
            l64: vec![0.0; d * d],
            l32: vec![0.0; d * lanes::padded(d)],
            mean: vec![0.0; d],
            zeros: vec![0.0; lanes::padded(d)],
            row: Vec::new(),
            x: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// The f64 Cholesky factor of the last [`Self::prepare`]d covariance (row-major `d × d`).
    pub(crate) fn l64(&self) -> &[f64] {
        &self.l64
    }

    /// Rounds unit's `μ` and the Cholesky factor of `cov` to f32 into `mean` and `l32`; false
    /// when `cov` is not positive definite (the unit then adds nothing, as in the reference).
    pub(crate) fn prepare(&mut self, mean: &[f64], cov: &[f64]) -> bool {
        let d = self.d;
        self.l64.copy_from_slice(cov);
        if cholesky(&mut self.l64, d).is_err() {
            return false;
        }
        let dp = lanes::padded(d);
        for (row32, row64) in self.l32.chunks_exact_mut(dp).zip(self.l64.chunks_exact(d)) {
            for (a, &b) in row32.iter_mut().zip(row64) {
                *a = b as f32;
            }
        }
        for (a, &b) in self.mean.iter_mut().zip(mean) {
            *a = b as f32;
        }
        true
    }

    /// Adds unit `u`'s gains for every candidate to `acc`; a unit whose covariance is not
    /// positive definite adds nothing (as in the reference).
    #[allow(clippy::too_many_arguments)]
    fn unit(
        &mut self,
        mean: &[f64],
        cov: &[f64],
        dt_s: f64,
        src: &dyn FeatureSource,
        u: usize,
        blocks: &Blocks<'_>,
        acc: &mut Acc,
    ) {
        if !self.prepare(mean, cov) {
            return;
        }
        let d = self.d;
        let unit = UnitF32 {
            l: &self.l32,
            mean: &self.mean,
            half_ln_dt: (0.5 * dt_s.ln()) as f32,
            cols: d,
            rate_offset: 0.0,
            psi_offset: &self.zeros,
        };
        let mut gains = LaneGains {
            det: [0.0; LANES],
            peak: [0.0; LANES],
        };
        for (bi, &t_len) in blocks.block_frames.iter().enumerate() {
            let first = bi * LANES;
            let members = &blocks.candidates[first..(first + LANES).min(blocks.candidates.len())];
            // Lane-major features, zero-padded (exact: a zero frame adds nothing).
            self.x.clear();
            self.x.resize(t_len * d, [0.0; LANES]);
            for (lane, &c) in members.iter().enumerate() {
                let t = blocks.frames[first + lane];
                self.row.resize(t * d, 0.0);
                src.fill(c, u, &mut self.row[..t * d]);
                for (xl, &v) in self.x.iter_mut().zip(&self.row[..t * d]) {
                    xl[lane] = v;
                }
            }
            lanes::info_gain_lanes(&unit, &self.x, t_len, None, &mut self.scratch, &mut gains);
            let row = &mut self.row;
            acc.add_lanes(first, members.len(), &gains, |lane| {
                let t = blocks.frames[first + lane];
                row.resize(t * d, 0.0);
                src.fill(members[lane], u, &mut row[..t * d]);
                info_gain_unit(mean, cov, &row[..t * d], t, dt_s)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::criterion::score_reference;
    use crate::design::tests::TableSource;
    use crate::design::{Criterion, PosteriorConfig, score};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Posteriors shaped by random data: `frames_seen` random frames with Poisson-ish counts
    /// folded into each unit, so `Σ` is anisotropic and `μ` is non-trivial.
    fn random_posterior(units: usize, d: usize, frames_seen: usize, seed: u64) -> Posterior {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cfg = PosteriorConfig::isotropic(d, rng.random_range(0.1..1.5));
        cfg.prior_mean[d - 1] = rng.random_range(-1.0..2.0);
        let mut post = Posterior::new(units, cfg).unwrap();
        for u in 0..units {
            for _ in 0..frames_seen {
                let mut x: Vec<f32> = (0..d).map(|_| rng.random_range(-0.8..0.8)).collect();
                x[d - 1] = 1.0;
                let y = rng.random_range(0..4) as f32;
                post.observe_unit(u, &x, y, 0.05).unwrap();
            }
        }
        post
    }

    fn argmax(v: &[f64]) -> usize {
        (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
    }

    /// The f32 lane path agrees with the f64 reference to 2e-5 relative per candidate total
    /// (features of unit scale, clips of 1–14 frames of varying length, d from 3 to 21), and
    /// picks the same best candidate wherever the reference's best leads the runner-up by more
    /// than that tolerance; the margin cases are counted so the test cannot pass vacuously.
    #[test]
    fn lanes_match_the_f64_reference() {
        let (mut decided, mut worst) = (0, 0.0f64);
        for case in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + case);
            let d = rng.random_range(3..22);
            let units = rng.random_range(1..30);
            let n_cand = rng.random_range(1..45);
            let t_max = rng.random_range(1..15);
            let sd = rng.random_range(0.1..1.2);
            let src = TableSource::random(units, n_cand, d, |c| 1 + (c * 7) % t_max, sd, case);
            let post = random_posterior(units, d, rng.random_range(0..40), case + 7);
            let cands: Vec<usize> = (0..n_cand).collect();
            let dt = [0.02, 0.1, 0.5][case as usize % 3];
            let want = score_reference(&post, &src, &cands, &Criterion::InfoGain, dt, 1).unwrap();
            let got = score(&post, &src, &cands, &Criterion::InfoGain, dt, 2).unwrap();
            for (c, (g, w)) in got.iter().zip(&want).enumerate() {
                worst = worst.max((g - w).abs() / w.abs().max(1e-300));
                assert!(
                    (g - w).abs() <= 2e-5 * w.abs() + 1e-12,
                    "case {case} (d={d}, U={units}) candidate {c}: {g} vs {w}"
                );
            }
            let best = argmax(&want);
            let runner_up = (0..want.len())
                .filter(|&i| i != best)
                .map(|i| want[i])
                .fold(f64::NEG_INFINITY, f64::max);
            if want[best] - runner_up > 4e-5 * want[best] {
                decided += 1;
                assert_eq!(argmax(&got), best, "case {case}");
            }
        }
        assert!(decided >= 30, "only {decided} of 40 cases had a clear best");
        // f32 rounding shows, so the lane path (not the reference) was what got scored.
        assert!(worst > 1e-12, "worst relative difference {worst:e}");
    }

    /// Scores are bit-identical whatever the thread count, including counts that do not divide
    /// the unit blocks and more threads than blocks.
    #[test]
    fn lanes_are_bit_identical_across_thread_counts() {
        let (units, d) = (37, 9);
        let src = TableSource::random(units, 35, d, |c| 2 + c % 9, 0.5, 3);
        let post = random_posterior(units, d, 12, 4);
        let cands: Vec<usize> = (0..35).rev().collect();
        let one = score(&post, &src, &cands, &Criterion::InfoGain, 0.1, 1).unwrap();
        for threads in [2, 3, 5, 64] {
            let many = score(&post, &src, &cands, &Criterion::InfoGain, 0.1, threads).unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&many), "{threads} threads");
        }
    }

    /// Small gains (a tiny `dt`, so every pivot is within 1e-6 of 1) keep their relative
    /// precision: the pivots are carried as `e_i`, not `1 + e_i`.
    #[test]
    fn small_gains_keep_relative_precision() {
        let (units, d) = (5, 7);
        let src = TableSource::random(units, 20, d, |c| 1 + c % 10, 0.6, 9);
        let post = random_posterior(units, d, 5, 10);
        let cands: Vec<usize> = (0..20).collect();
        let ig = Criterion::InfoGain;
        let want = score_reference(&post, &src, &cands, &ig, 1e-7, 1).unwrap();
        let got = score(&post, &src, &cands, &ig, 1e-7, 1).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(*w > 0.0 && *w < 1e-4, "{w}");
            assert!((g - w).abs() <= 2e-5 * w, "{g} vs {w}");
        }
    }

    /// Bad units and bad features contribute nothing, as in the reference: a covariance that
    /// is not positive definite, a NaN feature in one (unit, candidate) pair. Pairs too
    /// informative for f32 (rates at the clamp) are recomputed in f64 and match tightly.
    #[test]
    fn failures_contribute_nothing_and_hot_pairs_go_to_f64() {
        let (units, d) = (3, 4);
        let mut src = TableSource::random(units, 18, d, |c| 1 + c % 5, 0.5, 1);
        src.data[2][1][0] = f32::NAN;
        let mut post = random_posterior(units, d, 3, 2);
        post.covs_mut_for_tests(0)[0] = -1.0;
        let cands: Vec<usize> = (0..18).collect();
        let ig = Criterion::InfoGain;
        let want = score_reference(&post, &src, &cands, &ig, 0.1, 1).unwrap();
        let got = score(&post, &src, &cands, &ig, 0.1, 2).unwrap();
        assert!(want[2] > 0.0, "the other units still count");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 2e-5 * w.abs() + 1e-12, "{g} vs {w}");
        }
        // Bias weight 40: every rate at the clamp e^30, peaks ~1e12 ≫ SAFE_PEAK. Half the
        // candidates are made cold (bias feature 0) so that one block mixes both paths.
        let mut hot_src = TableSource::random(2, 20, 12, |c| 3 + c % 8, 0.5, 6);
        for clip in hot_src.data.iter_mut().step_by(2) {
            for unit in clip.iter_mut() {
                unit.iter_mut().skip(11).step_by(12).for_each(|v| *v = 0.0);
            }
        }
        let mut cfg = PosteriorConfig::isotropic(12, 0.5);
        cfg.prior_mean[11] = 40.0;
        let hot = Posterior::new(2, cfg).unwrap();
        let cands: Vec<usize> = (0..20).collect();
        let want = score_reference(&hot, &hot_src, &cands, &ig, 0.1, 1).unwrap();
        let got = score(&hot, &hot_src, &cands, &ig, 0.1, 1).unwrap();
        for (c, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = if c % 2 == 1 { 1e-12 } else { 2e-5 };
            assert!((g - w).abs() <= tol * w, "candidate {c}: {g} vs {w}");
        }
        assert!(want[1] > 50.0 && want[0] < 5.0, "{want:?}");
    }
}
