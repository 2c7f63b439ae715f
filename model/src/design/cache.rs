//! Candidate features laid out for the lane kernel once and scored at every decision (issue
//! #19, item 6).
//!
//! Why: the candidates' features at each unit's readout do not change between decisions (only
//! the posteriors do, and the behaviour covariates); they change when readouts move or the
//! pool is rebuilt. [`super::batched`] re-fills and transposes every (unit, candidate) pair
//! from its [`FeatureSource`] on every call, which at rig scale costs about as much as the
//! kernel (more with the rig's bilinear map sampling). A [`FeatureCache`] does that once, in
//! the kernel's lane-major layout, so scoring streams it with no copy.
//!
//! The trailing `dim − cols` features (behaviour covariates and the bias) are constant over a
//! clip and the same for every candidate of a unit, so they are not cached: the caller gives
//! their current values per unit at scoring time ("tails"), and they enter the kernel as the
//! per-unit offsets `μ_tail·tail` and `L_tailᵀ tail` (computed in f64 from the posterior, then
//! rounded), a rank-one term per unit instead of `T` rows per pair. [`FeatureCache::build`]
//! checks that those columns are constant, so a source that breaks the premise is an error,
//! not a wrong score.
//!
//! Layout: `data[unit][block][frame][feature < cols][lane]`, blocks of [`LANES`] candidates in
//! cache order, each block as long as its longest clip (shorter clips zero-padded and masked:
//! with the offsets a zero frame is not a zero row of `Ψ`).
//! Memory: `4 · units · Σ_blocks(frames) · cols · 16` bytes (1,000 units × 512 candidates ×
//! 10 frames × 16 columns: 328 MB).

use std::time::Instant;

use super::batched::{Acc, Worker, sum_unit_blocks};
use super::criterion::info_gain_unit;
use super::lanes::{self, LANES, Lane, LaneGains, UnitF32};
use super::posterior::Posterior;
use super::{DesignError, FeatureSource, check_dt, check_finite, check_len, check_value};

/// Every (unit, candidate)'s leading `cols` features, lane-major (module docs).
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dim: usize,
    cols: usize,
    units: usize,
    candidates: Vec<usize>,
    frames: Vec<usize>,
    block_frames: Vec<usize>,
    /// Offset of each block within a unit's span, in lanes.
    block_start: Vec<usize>,
    /// Per block with clips of different lengths, 1/0 per frame and lane: the offsets make a
    /// zero-padded frame count, so the kernel masks it.
    masks: Vec<Option<Vec<Lane>>>,
    per_unit: usize,
    data: Vec<Lane>,
}

impl FeatureCache {
    /// Reads `candidates`' features for units `0..units` from `src` once, on `threads` threads.
    /// The last `src.dim() − cols` columns must be constant over every frame and candidate of a
    /// unit (they are supplied at scoring time); clips may be at most 96 frames long.
    pub fn build(
        src: &dyn FeatureSource,
        units: usize,
        candidates: &[usize],
        cols: usize,
        threads: usize,
    ) -> Result<Self, DesignError> {
        let dim = src.dim();
        check_value(
            (1..=dim).contains(&cols),
            "cached columns",
            "between 1 and the feature dimension",
            cols as f64,
        )?;
        check_value(threads >= 1, "threads", ">= 1", threads as f64)?;
        let frames: Vec<usize> = candidates.iter().map(|&c| src.frames(c)).collect();
        if let Some(&t) = frames.iter().find(|&&t| t > lanes::MAX_FRAMES) {
            return Err(DesignError::Value {
                what: "clip frames",
                expected: "at most 96 for the feature cache (score longer clips with `score`)",
                got: t as f64,
            });
        }
        let block_frames: Vec<usize> = frames
            .chunks(LANES)
            .map(|f| f.iter().copied().max().unwrap_or(0))
            .collect();
        let mut block_start = Vec::with_capacity(block_frames.len());
        let mut per_unit = 0;
        for &t in &block_frames {
            block_start.push(per_unit);
            per_unit += t * cols;
        }
        let masks = frames
            .chunks(LANES)
            .zip(&block_frames)
            .map(|(f, &t)| {
                f.iter().any(|&n| n < t).then(|| {
                    (0..t)
                        .map(|i| {
                            std::array::from_fn(|l| f32::from(f.get(l).is_some_and(|&n| i < n)))
                        })
                        .collect()
                })
            })
            .collect();
        let mut cache = FeatureCache {
            dim,
            cols,
            units,
            candidates: candidates.to_vec(),
            frames,
            block_frames,
            block_start,
            masks,
            per_unit,
            data: vec![[0.0; LANES]; units * per_unit],
        };
        let mut rest: &mut [Lane] = &mut cache.data;
        let view = (&cache.candidates, &cache.frames, &cache.block_start);
        let fill = |range: std::ops::Range<usize>, out: &mut [Lane]| -> Result<(), DesignError> {
            let (cands, frames, starts) = view;
            let mut row = Vec::new();
            for (u, span) in range.zip(out.chunks_exact_mut(per_unit.max(1))) {
                let mut tail: Option<Vec<f32>> = None;
                for (k, (&c, &t)) in cands.iter().zip(frames).enumerate() {
                    row.resize(t * dim, 0.0);
                    src.fill(c, u, &mut row);
                    let (block, lane) = (k / LANES, k % LANES);
                    let x = &mut span[starts[block]..];
                    for (f, r) in row.chunks_exact(dim).enumerate() {
                        let first = tail.get_or_insert_with(|| r[cols..].to_vec());
                        // Bitwise, so NaN tails are caught too.
                        if r[cols..]
                            .iter()
                            .zip(first.iter())
                            .any(|(a, b)| a.to_bits() != b.to_bits())
                        {
                            return Err(DesignError::Value {
                                what: "unit whose trailing (uncached) feature columns vary",
                                expected: "those columns constant over every frame and \
                                           candidate of each unit (cache more columns)",
                                got: u as f64,
                            });
                        }
                        for (xl, &v) in x[f * cols..(f + 1) * cols].iter_mut().zip(&r[..cols]) {
                            xl[lane] = v;
                        }
                    }
                }
            }
            Ok(())
        };
        let parts = super::par_ranges(
            units,
            threads,
            |r| {
                let (mine, others) = std::mem::take(&mut rest).split_at_mut(r.len() * per_unit);
                rest = others;
                mine
            },
            fill,
        );
        parts.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(cache)
    }

    /// Source indices of the cached candidates; scores come back in this order.
    pub fn candidates(&self) -> &[usize] {
        &self.candidates
    }

    /// Units the cache was built for.
    pub fn units(&self) -> usize {
        self.units
    }

    /// Cached leading columns; a tail has `dim − cols` values per unit.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<Lane>()
    }

    /// Writes unit `u`'s full `T × dim` features of the `k`-th cached candidate, with `tail`
    /// as its trailing columns, into `out` (resized).
    pub fn fill(&self, k: usize, u: usize, tail: &[f32], out: &mut Vec<f32>) {
        let (d, cols, t) = (self.dim, self.cols, self.frames[k]);
        let (block, lane) = (k / LANES, k % LANES);
        let x = &self.data[u * self.per_unit + self.block_start[block]..];
        out.resize(t * d, 0.0);
        for (f, row) in out.chunks_exact_mut(d).enumerate() {
            for (o, xl) in row[..cols].iter_mut().zip(&x[f * cols..(f + 1) * cols]) {
                *o = xl[lane];
            }
            row[cols..].copy_from_slice(tail);
        }
    }

    /// Information gain of every cached candidate, summed over units (in [`Self::candidates`]'
    /// order), with unit `u`'s trailing features `tails[u·(dim−cols)..]`: the same criterion
    /// and the same f32 kernel as `score(.., Criterion::InfoGain, ..)` on the lane path, with
    /// the same f64 recomputation of pairs too informative for f32. Bit-identical for any
    /// thread count. `Err(DeadlinePassed)` when `deadline` passes first.
    pub fn info_gain(
        &self,
        post: &Posterior,
        tails: &[f32],
        dt_s: f64,
        threads: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<f64>, DesignError> {
        let (d, cols) = (self.dim, self.cols);
        check_len("posterior feature dimension", d, post.dim())?;
        check_len("posterior units", self.units, post.units())?;
        check_len("tails length", self.units * (d - cols), tails.len())?;
        check_finite("tails", tails)?;
        check_dt(dt_s)?;
        check_value(threads >= 1, "threads", ">= 1", threads as f64)?;
        let dp = lanes::padded(d);
        let half_ln_dt = (0.5 * dt_s.ln()) as f32;
        let new_worker = || (Worker::new(d), vec![0.0f32; dp], Vec::new());
        sum_unit_blocks(
            self.units,
            self.candidates.len(),
            threads,
            deadline,
            new_worker,
            |(worker, offset, row): &mut (Worker, Vec<f32>, Vec<f32>), u, acc: &mut Acc| {
                let (mean, cov) = (post.mean(u), post.cov(u));
                if !worker.prepare(mean, cov) {
                    return;
                }
                let tail = &tails[u * (d - cols)..(u + 1) * (d - cols)];
                let rate_offset = offsets(worker.l64(), mean, tail, cols, offset);
                let unit = UnitF32 {
                    l: &worker.l32,
                    mean: &worker.mean,
                    half_ln_dt,
                    cols,
                    rate_offset,
                    psi_offset: offset.as_slice(),
                };
                let mut gains = LaneGains {
                    det: [0.0; LANES],
                    peak: [0.0; LANES],
                };
                let span = &self.data[u * self.per_unit..(u + 1) * self.per_unit];
                for (bi, (&t, &start)) in
                    self.block_frames.iter().zip(&self.block_start).enumerate()
                {
                    let x = &span[start..start + t * cols];
                    let mask = self.masks[bi].as_deref();
                    lanes::info_gain_lanes(&unit, x, t, mask, &mut worker.scratch, &mut gains);
                    let first = bi * LANES;
                    let members = (self.candidates.len() - first).min(LANES);
                    acc.add_lanes(first, members, &gains, |lane| {
                        self.fill(first + lane, u, tail, row);
                        info_gain_unit(mean, cov, row.as_slice(), self.frames[first + lane], dt_s)
                    });
                }
            },
        )
    }
}

/// The trailing columns' offsets: `psi[j] = Σ_{k ≥ max(j, cols)} L_kj tail_{k−cols}` (f64, then
/// rounded) and the returned `Σ_k μ_k tail_k` over the same columns.
fn offsets(l64: &[f64], mean: &[f64], tail: &[f32], cols: usize, psi: &mut [f32]) -> f32 {
    let d = mean.len();
    for (j, p) in psi.iter_mut().enumerate() {
        *p = (cols.max(j)..d)
            .map(|k| l64[k * d + j] * f64::from(tail[k - cols]))
            .sum::<f64>() as f32;
    }
    mean[cols..]
        .iter()
        .zip(tail)
        .map(|(m, &t)| m * f64::from(t))
        .sum::<f64>() as f32
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
