//! Online OASIS deconvolution: per-neuron dF/F traces to spike estimates, frame by frame.
//!
//! OASIS (Friedrich, Zhou & Paninski 2017, PLoS Comput Biol 13(3): e1005423) solves
//! `min ½‖c − y‖² + λ‖s‖₁` subject to `s = Gc ≥ 0` (and each non-zero `s_t ≥ s_min`), where `G`
//! is the AR(1) or AR(2) model of the indicator. It is an active-set method run in time order:
//! 1. each new frame opens a *pool* (a run of frames sharing one spike at its start);
//! 2. if the new pool's least-squares start value is below what the previous pool predicts
//!    for that frame plus `s_min` (a negative or too small spike), the two are merged and the
//!    check repeats backwards;
//! 3. pools never split, so all but the last few are settled early: that makes it online.
//!
//! Results equal the reference `oasis-deconv` (`oasis.functions.oasisAR1` / `oasisAR2`, no
//! jitter) to ~1e-14 relative on the committed fixtures (`tests/fixtures/oasis/`, checked by
//! `tests/fixtures.rs`), including its end-of-trace handling of λ, its output clamps, and (AR(1))
//! NaN samples inside the trace.
//!
//! # Layout
//! - [`params`]: [`Ar1Params`], [`Ar2Params`], [`Params`]; g from time constants or the data's
//!   autocovariance, σ from the PSD, λ from σ.
//! - `pools`: the per-cell ring of pools in one arena, and the copy-on-write overlay used to
//!   answer "what if the trace ended now" without disturbing the state.
//! - `ar1`, `ar2`: the two OASIS kernels (push a frame, settle old pools, close a segment).
//! - [`bank`]: [`DeconvolveBank`], many cells at once, one `push_frame` per imaging frame.
//! - [`deconvolve_trace`] here: a whole trace offline, through the same kernels.
//! - `tests/`: `fixtures.rs` (agreement with `oasis-deconv`), `online.rs` (bank behaviour).
//!
//! # Missing data
//! A non-finite sample (NaN, ±inf) is a *missing sample*: the frame joins the current pool,
//! contributes nothing to the fit (the calcium decays through it), cannot carry a spike, and its
//! output is NaN (a flag, not a value). Samples missing before a segment's first finite one are
//! outside the segment. This matches `oasisAR1`'s NaN handling except for a NaN *first* sample,
//! which OASIS seeds with a fake observation `0`. Whole missing frames (a gap in the frame
//! sequence) are handled by [`DeconvolveBank::push_gap`].
//!
//! Input must be baseline-subtracted (dF/F or F − F₀): OASIS has no baseline term here.

mod ar1;
mod ar2;
pub mod bank;
pub mod params;
mod pools;
#[cfg(test)]
mod tests;

pub use bank::{BankConfig, BankStats, DeconvolveBank};
pub use params::{Ar1Params, Ar2Params, Params};

use pools::{Frozen, PoolArena, RingStack};

/// Errors of the deconvolution stage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeconvolveError {
    /// A parameter outside its domain.
    #[error("{name} = {value} is out of range: expected {expected}")]
    Parameter {
        /// Parameter name.
        name: &'static str,
        /// Offending value.
        value: f64,
        /// What is accepted.
        expected: &'static str,
    },
    /// A frame or output buffer of the wrong length.
    #[error("{what} has {got} values, expected {expected} (one per cell)")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The bank's cell count.
        expected: usize,
    },
    /// Cells of one bank with different AR orders.
    #[error("cell {cell} is AR({got}) but cell 0 is AR({expected}); a bank runs one AR order")]
    MixedOrder {
        /// First offending cell.
        cell: usize,
        /// Order of cell 0.
        expected: u8,
        /// Order of `cell`.
        got: u8,
    },
    /// Parameters could not be estimated from the data.
    #[error("cannot estimate {what}: {why}")]
    Estimation {
        /// What was estimated.
        what: &'static str,
        /// Why it failed.
        why: String,
    },
}

/// The seam between the drivers (bank, offline) and the two OASIS kernels.
///
/// A cell's frames are numbered by *ticks* that are contiguous within a segment.
pub(crate) trait Kernel {
    /// Per-cell constants derived from the parameters.
    type Consts: Copy;
    /// One pool.
    type Pool: Copy + Default;
    /// Per-cell segment state.
    type Cell: Copy + Default;
    /// Frames a cell holds back before committing them (their λ shift depends on the end).
    const LAG: u64;
    /// Most pools one call adds to the stack (the bank reserves room for them).
    const MAX_PUSH: usize;

    /// Adds the frame at `tick` (`y` non-finite: missing). Returns the provisional spike at
    /// `tick`: OASIS's answer if the segment ended here (NaN for a missing sample, 0 unless
    /// `provisional`).
    fn push(
        k: &Self::Consts,
        cell: &mut Self::Cell,
        stack: &mut RingStack<'_, Self::Pool>,
        tick: u64,
        y: f64,
        provisional: bool,
    ) -> f64;

    /// Settles every pool starting at or before `cutoff` (committed frames only).
    fn freeze_through(
        k: &Self::Consts,
        cell: &mut Self::Cell,
        stack: &mut RingStack<'_, Self::Pool>,
        cutoff: u64,
        sink: &mut impl FnMut(&Frozen),
    );

    /// Ends the segment: applies the end-of-trace λ, settles every pool, resets the cell.
    fn close(
        k: &Self::Consts,
        cell: &mut Self::Cell,
        stack: &mut RingStack<'_, Self::Pool>,
        sink: &mut impl FnMut(&Frozen),
    );
}

/// Denoised calcium and spikes of one trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Denoised calcium `c`, one per frame (NaN at missing samples).
    pub c: Vec<f64>,
    /// Spikes `s` (`s_t = c_t − g c_{t−1}`, or the AR(2) analogue), NaN at missing samples.
    pub s: Vec<f64>,
}

/// Deconvolves a whole trace offline; equals `oasisAR1` / `oasisAR2` (see the module docs).
///
/// Runs the same kernels as [`DeconvolveBank`] with no lag bound, so a bank fed the same frames
/// and flushed at the end gives the same spikes.
pub fn deconvolve_trace(y: &[f64], params: &Params) -> Trace {
    match params {
        Params::Ar1(p) => {
            let k = ar1::Ar1Consts::from(p);
            let frozen = run_offline::<ar1::Ar1>(&k, y);
            let g = p.g();
            let mut c = vec![f64::NAN; y.len()];
            for f in &frozen {
                let mut tmp = f.first;
                for ck in &mut c[f.start as usize..f.start as usize + f.len as usize] {
                    *ck = tmp;
                    tmp *= g;
                }
            }
            let s = spikes(&c, &frozen, &[g], 1);
            finish(y, c, s)
        }
        Params::Ar2(p) => {
            let k = ar2::Ar2Consts::from(p);
            let frozen = run_offline::<ar2::Ar2>(&k, y);
            let (g1, g2) = (p.g1(), p.g2());
            let (d, _) = p.roots();
            let mut c = vec![f64::NAN; y.len()];
            for f in &frozen {
                let (t0, end) = (f.start as usize, f.start as usize + f.len as usize - 1);
                if f.seg_first {
                    let mut tmp = f.first;
                    for ck in &mut c[t0..=end] {
                        *ck = tmp;
                        tmp *= d;
                    }
                } else {
                    c[t0] = f.first;
                    for j in t0 + 1..end {
                        c[j] = g1 * c[j - 1] + g2 * c[j - 2];
                    }
                    c[end] = f.last;
                }
            }
            let s = spikes(&c, &frozen, &[g1, g2], 2);
            finish(y, c, s)
        }
    }
}

/// Deconvolves one trace with AR(1); see [`deconvolve_trace`].
pub fn oasis_ar1(y: &[f64], params: &Ar1Params) -> Trace {
    deconvolve_trace(y, &Params::Ar1(*params))
}

/// Deconvolves one trace with AR(2); see [`deconvolve_trace`].
pub fn oasis_ar2(y: &[f64], params: &Ar2Params) -> Trace {
    deconvolve_trace(y, &Params::Ar2(*params))
}

fn run_offline<K: Kernel>(k: &K::Consts, y: &[f64]) -> Vec<Frozen> {
    let mut arena = PoolArena::<K::Pool>::new(1, 64);
    let mut cell = K::Cell::default();
    for (t, &v) in y.iter().enumerate() {
        arena.reserve(0, K::MAX_PUSH);
        K::push(k, &mut cell, &mut arena.stack(0), t as u64, v, false);
    }
    let mut frozen = Vec::new();
    arena.reserve(0, K::MAX_PUSH);
    K::close(k, &mut cell, &mut arena.stack(0), &mut |f: &Frozen| {
        frozen.push(*f)
    });
    frozen
}

/// `s_t = c_t − Σ g_i c_{t−i}` inside each segment, 0 for its first `order` frames (as OASIS).
fn spikes(c: &[f64], frozen: &[Frozen], g: &[f64], order: usize) -> Vec<f64> {
    let mut s = vec![f64::NAN; c.len()];
    let mut seg_start = 0;
    for f in frozen {
        let t0 = f.start as usize;
        if f.seg_first {
            seg_start = t0;
        }
        for t in t0..t0 + f.len as usize {
            s[t] = if t < seg_start + order {
                0.0
            } else {
                c[t] - g
                    .iter()
                    .enumerate()
                    .map(|(i, gi)| gi * c[t - 1 - i])
                    .sum::<f64>()
            };
        }
    }
    s
}

/// Missing samples are NaN in both outputs.
fn finish(y: &[f64], mut c: Vec<f64>, mut s: Vec<f64>) -> Trace {
    for ((yt, ct), st) in y.iter().zip(&mut c).zip(&mut s) {
        if !yt.is_finite() {
            *ct = f64::NAN;
            *st = f64::NAN;
        }
    }
    Trace { c, s }
}
