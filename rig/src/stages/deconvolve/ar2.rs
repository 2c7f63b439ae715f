//! AR(2) OASIS kernel: `c_t = g1 c_{t−1} + g2 c_{t−2} + s_t`, with roots `1 > d > r > 0`.
//!
//! A pool starting at `t` with start value `v`, after a pool whose last value is `w_b`, follows
//! `c_{t+k} = h_k v + g2 h_{k−1} w_b` with `h_k = (d^{k+1} − r^{k+1}) / (d − r)`. Its least-squares
//! `v = (Σ h_k y'_k − w_b Σ h_k g2 h_{k−1}) / Σ h_k²` (OASIS's `g11`, `g12`, `g11g11`, `g11g12`).
//! OASIS recomputes those sums with an O(len) dot product per merge; here every pool keeps the
//! geometric sums `A = Σ d^k y'_k`, `B = Σ r^k y'_k`, `S_dd = Σ d^{2k}`, `S_dr = Σ (dr)^k`,
//! `S_rr = Σ r^{2k}` over its observed frames, which merge in O(1) (`A += d^len A_next`, …) and
//! give every sum in closed form, so no trace history is stored. The first pool of a segment is a
//! pure exponential, `v = max(0, A / S_dd)`. Violation: the value the previous pool predicts for
//! the next frame exceeds `v − s_min` (Friedrich, Zhou & Paninski 2017, AR(2) section).
//!
//! End of trace. OASIS shifts the last two frames by λ(1−g1) and λ instead of λ(1−g1−g2); unlike
//! AR(1) that cannot be patched afterwards (it moves two pools), so each cell holds its last two
//! frames back and commits them with the interior shift only once newer frames exist. The
//! provisional answer pushes the held frames with the end shifts onto an [`Overlay`].
//!
//! Bounded lag: as AR(1), settled pools leave `(c_last, c_prev)`; the oldest live pool is pinned
//! to `g1 c_last + g2 c_prev` when its fit falls below that plus `s_min`.

use super::Kernel;
use super::params::Ar2Params;
use super::pools::{Frozen, Overlay, PoolSeq, RingStack};

/// Per-cell constants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ar2Consts {
    g1: f64,
    g2: f64,
    d: f64,
    r: f64,
    inv_dr: f64,
    inv_dr2: f64,
    /// Interior shift λ(1 − g1 − g2).
    shift: f64,
    /// Shift of the second-to-last frame, λ(1 − g1).
    shift_pen: f64,
    /// Shift of the last frame, λ.
    shift_last: f64,
    s_min: f64,
}

impl From<&Ar2Params> for Ar2Consts {
    fn from(p: &Ar2Params) -> Self {
        let (d, r) = p.roots();
        let (g1, g2, lambda) = (p.g1(), p.g2(), p.lambda());
        Self {
            g1,
            g2,
            d,
            r,
            inv_dr: 1.0 / (d - r),
            inv_dr2: 1.0 / ((d - r) * (d - r)),
            shift: lambda * (1.0 - g1 - g2),
            shift_pen: lambda * (1.0 - g1),
            shift_last: lambda,
            s_min: p.s_min(),
        }
    }
}

/// One pool.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pool {
    a: f64,
    b: f64,
    sdd: f64,
    sdr: f64,
    srr: f64,
    /// `d^{len−1}`, `r^{len−1}`.
    dp: f64,
    rp: f64,
    /// First and last calcium value.
    v: f64,
    w: f64,
    start: u64,
    len: u32,
    pinned: bool,
}

/// Settled history: the last two calcium values.
#[derive(Clone, Copy, Debug, Default)]
struct Tail {
    last: f64,
    prev: f64,
}

/// Per-cell segment state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cell {
    open: bool,
    seg_start: u64,
    /// Frames held back (NaN = missing), oldest first; they end at `last_tick`.
    pending: [f64; 2],
    n_pending: u8,
    last_tick: u64,
    tail: Option<Tail>,
}

/// The AR(2) kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ar2;

#[inline]
fn flush_tiny(x: f64) -> f64 {
    if x.abs() < f64::MIN_POSITIVE { 0.0 } else { x }
}

/// What precedes the pool at some index: nothing (segment start), a live pool's last value, or
/// the settled tail.
#[derive(Clone, Copy)]
enum Before {
    SegStart,
    Pool(f64),
    Tail(Tail),
}

impl Ar2Consts {
    #[inline]
    fn before<S: PoolSeq<Pool>>(tail: Option<Tail>, seq: &S, idx: usize) -> Before {
        if idx > 0 {
            Before::Pool(seq.get(idx - 1).w)
        } else {
            match tail {
                Some(t) => Before::Tail(t),
                None => Before::SegStart,
            }
        }
    }

    /// `h_m v + g2 h_{m−1} w_b` for `m = len − 1 + extra` from the stored powers.
    #[inline]
    fn value_at(&self, p: &Pool, extra: u32, wb: f64) -> f64 {
        let (dm, rm) = match extra {
            0 => (p.dp, p.rp),
            _ => (self.d * p.dp, self.r * p.rp),
        };
        (self.d * dm - self.r * rm) * self.inv_dr * p.v + self.g2 * (dm - rm) * self.inv_dr * wb
    }

    /// Recomputes `v` and `w` of a pool given what precedes it.
    #[inline]
    fn settle(&self, before: Before, p: &mut Pool) {
        match before {
            Before::SegStart => {
                p.v = (p.a / p.sdd).max(0.0);
                p.w = p.dp * p.v;
                p.pinned = false;
            }
            Before::Pool(wb) | Before::Tail(Tail { last: wb, .. }) => {
                let free = if p.sdd > 0.0 {
                    let hy = (self.d * p.a - self.r * p.b) * self.inv_dr;
                    let hh = (self.d * self.d * p.sdd - 2.0 * self.d * self.r * p.sdr
                        + self.r * self.r * p.srr)
                        * self.inv_dr2;
                    let hg = self.g2
                        * (self.d * p.sdd - (self.d + self.r) * p.sdr + self.r * p.srr)
                        * self.inv_dr2;
                    (hy - hg * wb) / hh
                } else {
                    f64::NEG_INFINITY
                };
                p.pinned = false;
                p.v = free;
                if let Before::Tail(t) = before {
                    let pred = self.g1 * t.last + self.g2 * t.prev;
                    if free < pred + self.s_min {
                        p.v = pred;
                        p.pinned = true;
                    }
                }
                p.w = if p.len == 1 {
                    p.v
                } else {
                    self.value_at(p, 0, wb)
                };
            }
        }
    }

    /// Calcium the pool predicts for the frame after it, without a spike.
    #[inline]
    fn predict_next(&self, before: Before, p: &Pool) -> f64 {
        match before {
            Before::SegStart => p.w * self.d,
            Before::Pool(wb) | Before::Tail(Tail { last: wb, .. }) => self.value_at(p, 1, wb),
        }
    }

    /// Calcium at the pool's second-to-last frame (or the frame before it when `len == 1`).
    #[inline]
    fn second_last(&self, before: Before, p: &Pool) -> f64 {
        match (before, p.len) {
            // Only reached for spikes that OASIS zeroes anyway (the segment's second frame).
            (Before::SegStart, 1) => p.w / self.d,
            (Before::SegStart, _) => p.dp / self.d * p.v,
            (Before::Pool(wb) | Before::Tail(Tail { last: wb, .. }), 1) => wb,
            (Before::Pool(wb) | Before::Tail(Tail { last: wb, .. }), _) => {
                let (dm, rm) = (p.dp / self.d, p.rp / self.r);
                (self.d * dm - self.r * rm) * self.inv_dr * p.v
                    + self.g2 * (dm - rm) * self.inv_dr * wb
            }
        }
    }

    /// `a` absorbs the following pool `b` (sums only; call [`Self::settle`] after).
    #[inline]
    fn merge(&self, a: &mut Pool, b: &Pool) {
        let (dl, rl) = (self.d * a.dp, self.r * a.rp);
        a.a += dl * b.a;
        a.b += rl * b.b;
        a.sdd += dl * dl * b.sdd;
        a.sdr += dl * rl * b.sdr;
        a.srr += rl * rl * b.srr;
        a.dp = flush_tiny(dl * b.dp);
        a.rp = flush_tiny(rl * b.rp);
        a.len += b.len;
    }

    fn backtrack<S: PoolSeq<Pool>>(&self, tail: Option<Tail>, seq: &mut S) {
        while seq.len() >= 2 {
            let n = seq.len();
            let top = seq.get(n - 1);
            let mut below = seq.get(n - 2);
            let before = Self::before(tail, seq, n - 2);
            if self.predict_next(before, &below) <= top.v - self.s_min {
                break;
            }
            seq.pop();
            self.merge(&mut below, &top);
            self.settle(before, &mut below);
            seq.set_top(below);
        }
    }

    /// Adds one frame with its shift (`NaN`: missing sample).
    fn commit<S: PoolSeq<Pool>>(
        &self,
        tail: Option<Tail>,
        seq: &mut S,
        tick: u64,
        y: f64,
        shift: f64,
    ) {
        if y.is_finite() {
            let y = y - shift;
            let mut p = Pool {
                a: y,
                b: y,
                sdd: 1.0,
                sdr: 1.0,
                srr: 1.0,
                dp: 1.0,
                rp: 1.0,
                v: y,
                w: y,
                start: tick,
                len: 1,
                pinned: false,
            };
            if seq.len() == 0 {
                self.settle(Self::before(tail, seq, 0), &mut p);
            }
            seq.push(p);
            self.backtrack(tail, seq);
        } else {
            let gap = Pool {
                dp: 1.0,
                rp: 1.0,
                start: tick,
                len: 1,
                ..Pool::default()
            };
            if seq.len() > 0 {
                // No data: the top pool gets longer, its start value stays.
                let n = seq.len();
                let mut top = seq.get(n - 1);
                self.merge(&mut top, &gap);
                self.settle(Self::before(tail, seq, n - 1), &mut top);
                seq.set_top(top);
            } else {
                let mut p = gap;
                self.settle(Self::before(tail, seq, 0), &mut p);
                seq.push(p);
            }
        }
    }

    /// Commits the held frames with the end-of-trace shifts.
    fn commit_pending<S: PoolSeq<Pool>>(&self, cell: &Cell, seq: &mut S) {
        let n = cell.n_pending as u64;
        if n == 2 {
            self.commit(
                cell.tail,
                seq,
                cell.last_tick - 1,
                cell.pending[0],
                self.shift_pen,
            );
        }
        if n >= 1 {
            self.commit(
                cell.tail,
                seq,
                cell.last_tick,
                cell.pending[n as usize - 1],
                self.shift_last,
            );
        }
    }

    fn freeze_bottom(
        &self,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        repin: bool,
        sink: &mut impl FnMut(&Frozen),
    ) {
        let before = Self::before(cell.tail, stack, 0);
        let p = stack.pop_front();
        let spike = match before {
            Before::Tail(t) if p.start >= cell.seg_start + 2 => {
                p.v - self.g1 * t.last - self.g2 * t.prev
            }
            _ => 0.0,
        };
        let tail = Tail {
            last: p.w,
            prev: self.second_last(before, &p),
        };
        sink(&Frozen {
            start: p.start,
            len: p.len,
            first: p.v,
            last: p.w,
            spike,
            seg_first: matches!(before, Before::SegStart),
        });
        cell.tail = Some(tail);
        if repin && stack.len() > 0 {
            let mut b = stack.get(0);
            self.settle(Before::Tail(tail), &mut b);
            stack.set(0, b);
            while stack.len() >= 2 {
                let (mut b, n) = (stack.get(0), stack.get(1));
                if self.predict_next(Before::Tail(tail), &b) <= n.v - self.s_min {
                    break;
                }
                self.merge(&mut b, &n);
                self.settle(Before::Tail(tail), &mut b);
                stack.set(1, b);
                stack.pop_front();
            }
        }
    }
}

impl Kernel for Ar2 {
    type Consts = Ar2Consts;
    type Pool = Pool;
    type Cell = Cell;
    const LAG: u64 = 2;
    const MAX_PUSH: usize = 2;

    #[inline]
    fn push(
        k: &Ar2Consts,
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
        if cell.n_pending == 2 {
            k.commit(cell.tail, stack, tick - 2, cell.pending[0], k.shift);
            cell.pending[0] = cell.pending[1];
            cell.n_pending = 1;
        }
        cell.pending[cell.n_pending as usize] = if observed { y } else { f64::NAN };
        cell.n_pending += 1;
        cell.last_tick = tick;
        if !observed {
            return f64::NAN;
        }
        if !provisional || tick < cell.seg_start + 2 {
            return 0.0;
        }
        let mut ov = Overlay::new(&*stack);
        k.commit_pending(cell, &mut ov);
        let n = ov.len();
        let top = ov.get(n - 1);
        if top.start != tick {
            return 0.0;
        }
        match Ar2Consts::before(cell.tail, &ov, n - 1) {
            Before::SegStart => 0.0,
            Before::Tail(t) => top.v - k.g1 * t.last - k.g2 * t.prev,
            Before::Pool(wb) => {
                let below = ov.get(n - 2);
                let c2 = k.second_last(Ar2Consts::before(cell.tail, &ov, n - 2), &below);
                top.v - k.g1 * wb - k.g2 * c2
            }
        }
    }

    fn freeze_through(
        k: &Ar2Consts,
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
        k: &Ar2Consts,
        cell: &mut Cell,
        stack: &mut RingStack<'_, Pool>,
        sink: &mut impl FnMut(&Frozen),
    ) {
        if !cell.open {
            return;
        }
        k.commit_pending(cell, stack);
        while stack.len() > 0 {
            k.freeze_bottom(cell, stack, false, sink);
        }
        *cell = Cell::default();
    }
}
