//! AR(1) OASIS kernel: `c_t = g c_{t−1} + s_t`.
//!
//! A pool is a run of frames sharing one spike at its start, so `c = val · g^k` inside it. It
//! keeps `v = Σ g^k y'_k` and `w = Σ g^{2k}` over its observed frames (`y' = y − λ(1−g)`), and
//! `val = v / w`, the least-squares start value. Two neighbours violate the constraints when
//! `val_prev · g^{len_prev} + s_min > val_next` and are merged: `v += v_next g^len`,
//! `w += w_next g^{2 len}` (Friedrich, Zhou & Paninski 2017, Algorithm 1).
//!
//! End of trace. OASIS shifts the last frame by λ instead of λ(1−g) (the last spike has nothing
//! after it to pay for). Every frame is committed with the interior shift; the extra `λ g` on the
//! last frame only lowers the top pool, so it can only cause *more* merges after the ones already
//! done — applying it to the top pool and backtracking gives OASIS's pools exactly. Online this
//! is done on an [`Overlay`] (the provisional answer "if the trace ended now"); at the end of a
//! segment it is done for real.
//!
//! Bounded lag. Settled pools leave the stack; the prediction they make for the next frame,
//! `tail = c_last · g`, then bounds the oldest live pool: if its fit is below `tail + s_min` it is
//! *pinned* to `tail` (no spike), as OASIS would have merged it into the settled pool.

use super::Kernel;
use super::params::Ar1Params;
use super::pools::{Frozen, Overlay, PoolSeq, RingStack};

/// Per-cell constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ar1Consts {
    g: f64,
    lambda: f64,
    /// Interior shift `λ (1 − g)`.
    shift: f64,
    s_min: f64,
}

impl From<&Ar1Params> for Ar1Consts {
    fn from(p: &Ar1Params) -> Self {
        Self {
            g: p.g(),
            lambda: p.lambda(),
            shift: p.lambda() * (1.0 - p.g()),
            s_min: p.s_min(),
        }
    }
}

/// One pool.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pool {
    v: f64,
    w: f64,
    /// `g^len`.
    gl: f64,
    /// Start value: `v / w`, or the tail's prediction when pinned.
    val: f64,
    start: u64,
    len: u32,
    pinned: bool,
}

/// Per-cell segment state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cell {
    open: bool,
    seg_start: u64,
    last_tick: u64,
    last_observed: bool,
    /// Calcium the settled part predicts for the frame after it; `None` while nothing is settled.
    tail: Option<f64>,
}

/// The AR(1) kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ar1;

#[inline]
fn flush_tiny(x: f64) -> f64 {
    if x < f64::MIN_POSITIVE { 0.0 } else { x }
}

impl Ar1Consts {
    /// Recomputes `val` of the pool at index `idx`.
    #[inline]
    fn settle(&self, tail: Option<f64>, idx: usize, p: &mut Pool) {
        match tail {
            Some(pred) if idx == 0 => {
                let free = if p.w > 0.0 {
                    p.v / p.w
                } else {
                    f64::NEG_INFINITY
                };
                p.pinned = free < pred + self.s_min;
                p.val = if p.pinned { pred } else { free };
            }
            _ => {
                p.val = p.v / p.w;
                p.pinned = false;
            }
        }
    }

    #[inline]
    fn violates(&self, below: &Pool, top: &Pool) -> bool {
        below.val * below.gl + self.s_min > top.val
    }

    /// `a` absorbs the following pool `b`.
    #[inline]
    fn merge(a: &mut Pool, b: &Pool) {
        a.v += b.v * a.gl;
        a.w += b.w * a.gl * a.gl;
        a.gl = flush_tiny(a.gl * b.gl);
        a.len += b.len;
    }

    /// OASIS's output value: the first pool of a segment is clamped at 0, other free pools below
    /// `s_min` are set to 0, pinned pools keep the tail's prediction.
    #[inline]
    fn out(&self, p: &Pool, seg_first: bool) -> f64 {
        if seg_first {
            p.val.max(0.0)
        } else if !p.pinned && p.val < self.s_min {
            0.0
        } else {
            p.val
        }
    }

    fn backtrack<S: PoolSeq<Pool>>(&self, tail: Option<f64>, seq: &mut S) {
        while seq.len() >= 2 {
            let n = seq.len();
            let top = seq.get(n - 1);
            let mut below = seq.get(n - 2);
            if !self.violates(&below, &top) {
                break;
            }
            seq.pop();
            Self::merge(&mut below, &top);
            self.settle(tail, n - 2, &mut below);
            seq.set_top(below);
        }
    }

    /// Adds one frame with shift already applied (`None`: missing sample).
    fn commit<S: PoolSeq<Pool>>(&self, tail: Option<f64>, seq: &mut S, tick: u64, y: Option<f64>) {
        match y {
            Some(y) => {
                let mut p = Pool {
                    v: y,
                    w: 1.0,
                    gl: self.g,
                    val: y,
                    start: tick,
                    len: 1,
                    pinned: false,
                };
                if seq.len() == 0 {
                    self.settle(tail, 0, &mut p);
                }
                seq.push(p);
                self.backtrack(tail, seq);
            }
            None => {
                let gap = Pool {
                    v: 0.0,
                    w: 0.0,
                    gl: self.g,
                    val: 0.0,
                    start: tick,
                    len: 1,
                    pinned: false,
                };
                if seq.len() > 0 {
                    // No data: the frame extends the top pool, whose value does not change.
                    let mut top = seq.get(seq.len() - 1);
                    Self::merge(&mut top, &gap);
                    seq.set_top(top);
                } else {
                    let mut p = gap;
                    self.settle(tail, 0, &mut p);
                    seq.push(p);
                }
            }
        }
    }

    /// Applies the end-of-trace shift to the top pool (holding the segment's last frame).
    fn end_correction<S: PoolSeq<Pool>>(&self, tail: Option<f64>, seq: &mut S) {
        let n = seq.len();
        let mut top = seq.get(n - 1);
        // The last frame carries weight g^{len−1}; its extra shift is λ g.
        top.v -= self.lambda * top.gl;
        self.settle(tail, n - 1, &mut top);
        seq.set_top(top);
        self.backtrack(tail, seq);
    }

    /// Spike at `tick` (the last frame) from a stack that already has the end correction.
    #[inline]
    fn provisional<S: PoolSeq<Pool>>(&self, cell: &Cell, seq: &S, tick: u64) -> f64 {
        let n = seq.len();
        let top = seq.get(n - 1);
        if top.start != tick {
            return 0.0;
        }
        let pred = if n >= 2 {
            let below = seq.get(n - 2);
            self.out(&below, n == 2 && cell.tail.is_none()) * below.gl
        } else {
            match cell.tail {
                Some(pred) => pred,
                None => return 0.0,
            }
        };
        self.out(&top, false) - pred
    }

    fn freeze_bottom(
        &self,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        repin: bool,
        sink: &mut impl FnMut(&Frozen),
    ) {
        let p = stack.pop_front();
        let seg_first = cell.tail.is_none();
        let first = self.out(&p, seg_first);
        let spike = match cell.tail {
            Some(pred) if p.start != cell.seg_start => first - pred,
            _ => 0.0,
        };
        let pred_next = first * p.gl;
        sink(&Frozen {
            start: p.start,
            len: p.len,
            first,
            last: pred_next / self.g,
            spike,
            seg_first,
        });
        cell.tail = Some(pred_next);
        if repin && stack.len() > 0 {
            let mut b = stack.get(0);
            self.settle(cell.tail, 0, &mut b);
            stack.set(0, b);
            // A raised bottom pool may now violate against the next one: merge forward.
            while stack.len() >= 2 {
                let (mut b, n) = (stack.get(0), stack.get(1));
                if !self.violates(&b, &n) {
                    break;
                }
                Self::merge(&mut b, &n);
                self.settle(cell.tail, 0, &mut b);
                stack.set(1, b);
                stack.pop_front();
            }
        }
    }
}

impl Kernel for Ar1 {
    type Consts = Ar1Consts;
    type Pool = Pool;
    type Cell = Cell;
    const LAG: u64 = 0;
    const MAX_PUSH: usize = 1;

    #[inline]
    fn push(
        k: &Ar1Consts,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        tick: u64,
        y: f64,
        provisional: bool,
    ) -> f64 {
        let observed = y.is_finite();
        if !cell.open {
            if !observed {
                return f64::NAN;
            }
            *cell = Cell {
                open: true,
                seg_start: tick,
                ..Cell::default()
            };
        }
        k.commit(cell.tail, stack, tick, observed.then_some(y - k.shift));
        cell.last_tick = tick;
        cell.last_observed = observed;
        if !observed {
            return f64::NAN;
        }
        if !provisional || tick == cell.seg_start {
            return 0.0;
        }
        if k.lambda == 0.0 {
            // No end-of-trace shift: the committed stack is the answer.
            return k.provisional(cell, &*stack, tick);
        }
        let mut ov = Overlay::new(&*stack);
        k.end_correction(cell.tail, &mut ov);
        k.provisional(cell, &ov, tick)
    }

    fn freeze_through(
        k: &Ar1Consts,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        cutoff: u64,
        sink: &mut impl FnMut(&Frozen),
    ) {
        while stack.len() > 0 && stack.get(0).start <= cutoff {
            k.freeze_bottom(cell, stack, true, sink);
        }
    }

    fn close(
        k: &Ar1Consts,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        sink: &mut impl FnMut(&Frozen),
    ) {
        if !cell.open {
            return;
        }
        // OASIS applies the full λ to the last frame only when the trace has more than one frame.
        if k.lambda != 0.0
            && cell.last_observed
            && cell.last_tick != cell.seg_start
            && stack.len() > 0
        {
            k.end_correction(cell.tail, stack);
        }
        while stack.len() > 0 {
            k.freeze_bottom(cell, stack, false, sink);
        }
        *cell = Cell::default();
    }
}
