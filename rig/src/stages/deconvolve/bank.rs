//! [`DeconvolveBank`]: OASIS for many cells at once, one call per imaging frame.
//!
//! Design constraints
//! - One [`DeconvolveBank::push_frame`] per frame writes every cell's *provisional* spike for that
//!   frame: what offline OASIS on the segment so far would give at its last frame. It changes
//!   later as pools merge; the *settled* value comes out of [`DeconvolveBank::pop_settled`].
//! - Storage is contiguous: all cells' pool rings in one arena (`pools`), settled rows in one
//!   `frames × cells` ring. In steady state nothing is allocated per frame.
//! - With `max_lag = Some(L)` every pool starting `L` or more frames ago is settled after each
//!   frame, so frame `t` is settled once frame `t + L` is pushed: latency and memory are bounded
//!   (at most `L + 2` pools per cell; the arena starts at `min(L + 2, 64)` pools per cell and
//!   doubles at most `log2(L / 64)` times, when a cell first needs more). Settled pools pin the
//!   next one (see `ar1`), so the result is an approximation whose error decays like `g^L`.
//!   AR(2) holds two frames back, so `L` is raised to at least 2 there.
//! - With `max_lag = None` nothing settles before [`DeconvolveBank::flush`] or a restarting gap,
//!   and the result equals offline OASIS on each segment exactly; memory grows with the number
//!   of pools and unread frames (amortised doubling).
//!
//! Gaps. [`DeconvolveBank::push_gap`] with `n > bridge_max_frames` closes every cell's segment
//! (the end-of-trace λ is applied, all frames so far settle) and the next frame starts fresh
//! segments, as if a new recording began: the first frame (AR(2): two frames) of a segment
//! carries no spike, as in OASIS. Gap frames get no rows; `pop_settled` reports frame indices,
//! which jump over the gap. Short gaps (`n ≤ bridge_max_frames`) are bridged instead: each gap
//! frame is a missing sample in every cell (the calcium decays through it, its row is NaN).
//!
//! Missing samples (NaN/inf in a frame) are counted in [`BankStats::missing_samples`] and
//! handled as described in the [module docs](super).

use serde::{Deserialize, Serialize};

use super::ar1::Ar1;
use super::ar2::Ar2;
use super::pools::{Frozen, PoolArena};
use super::{DeconvolveError, Kernel, Params};

/// Pools per cell allocated up front when `max_lag` is large or unbounded.
const INITIAL_POOLS: usize = 64;
/// Rows allocated up front with `max_lag = None`.
const INITIAL_ROWS: usize = 1024;
/// How many cells ahead [`Cells::push`] prefetches pools: enough misses in flight to cover a
/// memory latency (about 100 ns) with a cell taking about 30 ns when its pools are cached.
const PREFETCH_CELLS: usize = 8;
/// Bytes per AR(1) pool.
pub const AR1_POOL_BYTES: usize = 48;
/// Bytes per AR(2) pool.
pub const AR2_POOL_BYTES: usize = 88;

/// How the bank trades latency for exactness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BankConfig {
    /// Frames after which a pool is settled (its spike final). `None`: never before a flush or a
    /// restarting gap — exact offline equivalence, memory growing with the recording.
    pub max_lag: Option<u32>,
    /// Gaps of at most this many frames are bridged as missing samples; longer gaps close the
    /// segments. `0`: every gap restarts.
    pub bridge_max_frames: u32,
}

impl Default for BankConfig {
    /// 128 frames (4.3 s at 30 Hz; `g^128 ≈ 0.014` for a 1 s decay), every gap restarts.
    fn default() -> Self {
        Self {
            max_lag: Some(128),
            bridge_max_frames: 0,
        }
    }
}

/// Counters; nothing is dropped silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BankStats {
    /// Frames pushed with [`DeconvolveBank::push_frame`].
    pub frames: u64,
    /// Non-finite samples received.
    pub missing_samples: u64,
    /// Gaps bridged as missing samples.
    pub bridged_gaps: u64,
    /// Gaps that closed the segments.
    pub restarts: u64,
    /// Frames reported missing by all gaps.
    pub gap_frames: u64,
    /// Times the pool arena doubled.
    pub pool_grows: u64,
    /// Times the settled-row ring doubled (the caller did not drain it, or `max_lag = None`).
    pub row_grows: u64,
}

/// Settled spikes, `frames × cells`, as a ring indexed by tick.
#[derive(Clone, Debug)]
struct Rows {
    n_cells: usize,
    cap: usize,
    buf: Vec<f32>,
    frame_of: Vec<u64>,
    /// Oldest unread tick.
    read: u64,
    /// Ticks below this are settled.
    settled: u64,
    grows: u64,
}

impl Rows {
    fn new(n_cells: usize, cap: usize) -> Self {
        let cap = cap.max(4).next_power_of_two();
        Self {
            n_cells,
            cap,
            buf: vec![0.0; n_cells * cap],
            frame_of: vec![0; cap],
            read: 0,
            settled: 0,
            grows: 0,
        }
    }

    #[inline]
    fn slot(&self, tick: u64) -> usize {
        (tick as usize) & (self.cap - 1)
    }

    /// Makes room for the row of `tick`, doubling if every slot holds an unread row.
    fn open(&mut self, tick: u64, frame: u64) {
        if (tick - self.read) as usize == self.cap {
            let new_cap = self.cap * 2;
            let mut buf = vec![0.0; self.n_cells * new_cap];
            let mut frame_of = vec![0; new_cap];
            for t in self.read..tick {
                let (o, n) = (self.slot(t), (t as usize) & (new_cap - 1));
                buf[n * self.n_cells..(n + 1) * self.n_cells]
                    .copy_from_slice(&self.buf[o * self.n_cells..(o + 1) * self.n_cells]);
                frame_of[n] = self.frame_of[o];
            }
            (self.buf, self.frame_of, self.cap) = (buf, frame_of, new_cap);
            self.grows += 1;
        }
        let s = self.slot(tick);
        self.frame_of[s] = frame;
    }

    /// Records a settled spike unless the sample was missing.
    #[inline]
    fn write(&mut self, f: &Frozen, cell: usize) {
        let i = self.slot(f.start) * self.n_cells + cell;
        if !self.buf[i].is_nan() {
            self.buf[i] = f.spike as f32;
        }
    }
}

/// The cells of one AR order.
#[derive(Clone, Debug)]
struct Cells<K: Kernel> {
    consts: Vec<K::Consts>,
    cells: Vec<K::Cell>,
    arena: PoolArena<K::Pool>,
}

impl<K: Kernel> Cells<K> {
    fn new(consts: Vec<K::Consts>, pools: usize) -> Self {
        let n = consts.len();
        Self {
            consts,
            cells: vec![K::Cell::default(); n],
            arena: PoolArena::new(n, pools),
        }
    }

    /// Pushes one row (`y(c)` for cell `c`) at `tick`; settles pools starting at or before `cutoff`.
    #[inline]
    fn push(
        &mut self,
        tick: u64,
        y: impl Fn(usize) -> f64,
        mut provisional: Option<&mut [f32]>,
        rows: &mut Rows,
        cutoff: Option<u64>,
    ) {
        let row = rows.slot(tick) * rows.n_cells;
        let n = self.consts.len();
        for c in 0..n {
            // Between frames the rest of the pipeline (a frame's registration streams several
            // MB) evicts the pools from cache; fetching a few cells ahead overlaps those misses.
            if c + PREFETCH_CELLS < n {
                self.arena.prefetch(c + PREFETCH_CELLS);
            }
            let v = y(c);
            self.arena.reserve(c, K::MAX_PUSH);
            let mut stack = self.arena.stack(c);
            let p = K::push(
                &self.consts[c],
                &mut self.cells[c],
                &mut stack,
                tick,
                v,
                provisional.is_some(),
            );
            if let Some(out) = provisional.as_deref_mut() {
                out[c] = p as f32;
            }
            rows.buf[row + c] = if v.is_finite() { 0.0 } else { f32::NAN };
            if let Some(cut) = cutoff {
                K::freeze_through(
                    &self.consts[c],
                    &mut self.cells[c],
                    &mut stack,
                    cut,
                    &mut |f| rows.write(f, c),
                );
            }
        }
    }

    fn close(&mut self, rows: &mut Rows) {
        for c in 0..self.consts.len() {
            self.arena.reserve(c, K::MAX_PUSH);
            K::close(
                &self.consts[c],
                &mut self.cells[c],
                &mut self.arena.stack(c),
                &mut |f| rows.write(f, c),
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Engine {
    Ar1(Cells<Ar1>),
    Ar2(Cells<Ar2>),
}

/// OASIS for many cells, frame by frame. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct DeconvolveBank {
    engine: Engine,
    n_cells: usize,
    /// Effective lag bound (raised to the kernel's hold-back).
    max_lag: Option<u64>,
    bridge_max_frames: u64,
    /// Next tick (row counter; gaps that restart do not advance it).
    tick: u64,
    /// Next frame index.
    frame: u64,
    rows: Rows,
    stats: BankStats,
}

impl DeconvolveBank {
    /// A bank with one parameter set per cell (all AR(1) or all AR(2)).
    pub fn new(params: &[Params], config: BankConfig) -> Result<Self, DeconvolveError> {
        let order = params.first().map_or(1, Params::order);
        if let Some((cell, p)) = params.iter().enumerate().find(|(_, p)| p.order() != order) {
            return Err(DeconvolveError::MixedOrder {
                cell,
                expected: order,
                got: p.order(),
            });
        }
        let hold = if order == 1 { Ar1::LAG } else { Ar2::LAG };
        let max_lag = config.max_lag.map(|l| u64::from(l).max(hold));
        let pools = max_lag.map_or(INITIAL_POOLS, |l| (l as usize + 2).min(INITIAL_POOLS));
        // Room for the rows a drained bank still holds (the lag) plus a bridged gap's, which
        // arrive in one `push_gap` before the caller can drain again.
        let rows = max_lag.map_or(INITIAL_ROWS, |l| {
            l as usize + 2 + config.bridge_max_frames as usize
        });
        let engine = if order == 1 {
            Engine::Ar1(Cells::new(
                params
                    .iter()
                    .filter_map(|p| {
                        if let Params::Ar1(a) = p {
                            Some(a.into())
                        } else {
                            None
                        }
                    })
                    .collect(),
                pools,
            ))
        } else {
            Engine::Ar2(Cells::new(
                params
                    .iter()
                    .filter_map(|p| {
                        if let Params::Ar2(a) = p {
                            Some(a.into())
                        } else {
                            None
                        }
                    })
                    .collect(),
                pools,
            ))
        };
        Ok(Self {
            engine,
            n_cells: params.len(),
            max_lag,
            bridge_max_frames: u64::from(config.bridge_max_frames),
            tick: 0,
            frame: 0,
            rows: Rows::new(params.len(), rows),
            stats: BankStats::default(),
        })
    }

    /// A bank with the same parameters for `n_cells` cells.
    pub fn uniform(
        n_cells: usize,
        params: Params,
        config: BankConfig,
    ) -> Result<Self, DeconvolveError> {
        Self::new(&vec![params; n_cells], config)
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// The lag bound in force (`max_lag` raised to 2 for AR(2)); `None`: unbounded.
    pub fn max_lag(&self) -> Option<u64> {
        self.max_lag
    }

    /// Index the next pushed frame gets (frames pushed plus gap frames).
    pub fn next_frame(&self) -> u64 {
        self.frame
    }

    /// Counters.
    pub fn stats(&self) -> BankStats {
        let (pool_grows, row_grows) = match &self.engine {
            Engine::Ar1(e) => (e.arena.grows(), self.rows.grows),
            Engine::Ar2(e) => (e.arena.grows(), self.rows.grows),
        };
        BankStats {
            pool_grows,
            row_grows,
            ..self.stats
        }
    }

    /// Pools per cell the arena holds now; the arena takes `n_cells ×` this `×`
    /// [`AR1_POOL_BYTES`] or [`AR2_POOL_BYTES`].
    pub fn pool_capacity(&self) -> usize {
        match &self.engine {
            Engine::Ar1(e) => e.arena.capacity(),
            Engine::Ar2(e) => e.arena.capacity(),
        }
    }

    /// Pushes one imaging frame (one value per cell; NaN/inf = missing sample) and writes each
    /// cell's provisional spike for it into `provisional` (NaN for missing samples).
    pub fn push_frame<T: Copy + Into<f64>>(
        &mut self,
        frame: &[T],
        provisional: &mut [f32],
    ) -> Result<(), DeconvolveError> {
        self.check_len("frame", frame.len())?;
        self.check_len("provisional output", provisional.len())?;
        self.stats.missing_samples +=
            frame.iter().filter(|v| !(**v).into().is_finite()).count() as u64;
        self.stats.frames += 1;
        self.advance(|c| frame[c].into(), Some(provisional));
        Ok(())
    }

    /// Declares `n_missing` frames that never arrived (see the module docs: bridged as missing
    /// samples if `n_missing ≤ bridge_max_frames`, otherwise every segment is closed).
    pub fn push_gap(&mut self, n_missing: u64) {
        if n_missing == 0 {
            return;
        }
        self.stats.gap_frames += n_missing;
        if n_missing <= self.bridge_max_frames {
            self.stats.bridged_gaps += 1;
            for _ in 0..n_missing {
                self.advance(|_| f64::NAN, None);
            }
        } else {
            self.stats.restarts += 1;
            self.flush();
            self.frame += n_missing;
        }
    }

    /// Closes every segment (end of recording, or before a pause): applies the end-of-trace λ,
    /// settles everything pushed so far. The next frame starts new segments.
    pub fn flush(&mut self) {
        match &mut self.engine {
            Engine::Ar1(e) => e.close(&mut self.rows),
            Engine::Ar2(e) => e.close(&mut self.rows),
        }
        self.rows.settled = self.tick;
    }

    /// Copies the oldest unread settled row (one spike per cell; NaN for missing samples) into
    /// `out` and returns its frame index, or `None` if no row is settled yet.
    pub fn pop_settled(&mut self, out: &mut [f32]) -> Result<Option<u64>, DeconvolveError> {
        self.check_len("settled output", out.len())?;
        if self.rows.read >= self.rows.settled {
            return Ok(None);
        }
        let s = self.rows.slot(self.rows.read);
        out.copy_from_slice(&self.rows.buf[s * self.n_cells..(s + 1) * self.n_cells]);
        self.rows.read += 1;
        Ok(Some(self.rows.frame_of[s]))
    }

    fn check_len(&self, what: &'static str, got: usize) -> Result<(), DeconvolveError> {
        if got == self.n_cells {
            Ok(())
        } else {
            Err(DeconvolveError::Length {
                what,
                got,
                expected: self.n_cells,
            })
        }
    }

    fn advance(&mut self, y: impl Fn(usize) -> f64, provisional: Option<&mut [f32]>) {
        let tick = self.tick;
        self.rows.open(tick, self.frame);
        let cutoff = self.max_lag.and_then(|l| tick.checked_sub(l));
        match &mut self.engine {
            Engine::Ar1(e) => e.push(tick, y, provisional, &mut self.rows, cutoff),
            Engine::Ar2(e) => e.push(tick, y, provisional, &mut self.rows, cutoff),
        }
        self.tick += 1;
        self.frame += 1;
        if let Some(cut) = cutoff {
            self.rows.settled = self.rows.settled.max(cut + 1);
        }
    }
}
