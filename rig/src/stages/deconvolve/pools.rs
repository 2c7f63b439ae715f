//! Pool storage shared by the AR(1) and AR(2) kernels.
//!
//! Design constraints: many cells, one contiguous arena, no allocation per frame.
//! - [`PoolArena`] holds `n_cells × cap` pools; cell `c` owns slots `c·cap .. (c+1)·cap`, used as
//!   a ring ([`RingStack`]): OASIS pushes and merges at the top, settling pops at the bottom.
//!   `cap` is a power of two. It only changes in [`PoolArena::reserve`], which doubles it for
//!   every cell when one cell's ring is full (amortised; `log2` of the longest stack reallocations).
//! - [`Overlay`] is a copy-on-write view over a ring for "what if the trace ended now" questions:
//!   merges pull the touched top pools into a small local array, the ring is left as it was.
//! - [`Frozen`] is what a kernel reports when a pool is settled.

/// Head and length of one cell's ring.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RingHdr {
    head: u32,
    len: u32,
}

/// The stack operations OASIS needs (index 0 is the oldest live pool).
pub(crate) trait PoolSeq<P: Copy> {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> P;
    /// Replaces the top pool.
    fn set_top(&mut self, p: P);
    fn push(&mut self, p: P);
    fn pop(&mut self) -> P;
}

/// One cell's ring of pools inside the arena.
pub(crate) struct RingStack<'a, P> {
    buf: &'a mut [P],
    hdr: &'a mut RingHdr,
}

impl<P: Copy> RingStack<'_, P> {
    #[inline]
    fn slot(&self, i: usize) -> usize {
        (self.hdr.head as usize + i) & (self.buf.len() - 1)
    }
    /// Replaces pool `i`.
    #[inline]
    pub(crate) fn set(&mut self, i: usize, p: P) {
        let s = self.slot(i);
        self.buf[s] = p;
    }
    /// Removes and returns the oldest pool; the caller checks `len() > 0`.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> P {
        let p = self.buf[self.slot(0)];
        self.hdr.head = ((self.hdr.head as usize + 1) & (self.buf.len() - 1)) as u32;
        self.hdr.len -= 1;
        p
    }
}

impl<P: Copy> PoolSeq<P> for RingStack<'_, P> {
    #[inline]
    fn len(&self) -> usize {
        self.hdr.len as usize
    }
    #[inline]
    fn get(&self, i: usize) -> P {
        self.buf[self.slot(i)]
    }
    #[inline]
    fn set_top(&mut self, p: P) {
        let s = self.slot(self.hdr.len as usize - 1);
        self.buf[s] = p;
    }
    /// The caller has made room with [`PoolArena::reserve`].
    #[inline]
    fn push(&mut self, p: P) {
        debug_assert!((self.hdr.len as usize) < self.buf.len());
        let s = self.slot(self.hdr.len as usize);
        self.buf[s] = p;
        self.hdr.len += 1;
    }
    #[inline]
    fn pop(&mut self) -> P {
        self.hdr.len -= 1;
        self.buf[self.slot(self.hdr.len as usize)]
    }
}

/// Pools an overlay can hold above its base: a what-if pushes at most two frames, and merges
/// collapse into the lower of them.
const OVERLAY_CAP: usize = 2;

/// Copy-on-write view: `base[..prefix]` followed by up to [`OVERLAY_CAP`] local pools.
pub(crate) struct Overlay<'a, P, S> {
    base: &'a S,
    prefix: usize,
    top: [P; OVERLAY_CAP],
    ntop: usize,
}

impl<'a, P: Copy + Default, S: PoolSeq<P>> Overlay<'a, P, S> {
    pub(crate) fn new(base: &'a S) -> Self {
        Self {
            base,
            prefix: base.len(),
            top: [P::default(); OVERLAY_CAP],
            ntop: 0,
        }
    }
}

impl<P: Copy, S: PoolSeq<P>> PoolSeq<P> for Overlay<'_, P, S> {
    #[inline]
    fn len(&self) -> usize {
        self.prefix + self.ntop
    }
    #[inline]
    fn get(&self, i: usize) -> P {
        if i < self.prefix {
            self.base.get(i)
        } else {
            self.top[i - self.prefix]
        }
    }
    #[inline]
    fn set_top(&mut self, p: P) {
        if self.ntop == 0 {
            // Copy-on-write: the base's top becomes local.
            self.prefix -= 1;
            self.ntop = 1;
        }
        self.top[self.ntop - 1] = p;
    }
    #[inline]
    fn push(&mut self, p: P) {
        debug_assert!(self.ntop < OVERLAY_CAP);
        self.top[self.ntop] = p;
        self.ntop += 1;
    }
    #[inline]
    fn pop(&mut self) -> P {
        if self.ntop > 0 {
            self.ntop -= 1;
            self.top[self.ntop]
        } else {
            self.prefix -= 1;
            self.base.get(self.prefix)
        }
    }
}

/// All cells' rings in one allocation.
#[derive(Clone, Debug)]
pub(crate) struct PoolArena<P> {
    cap: usize,
    pools: Vec<P>,
    hdrs: Vec<RingHdr>,
    grows: u64,
}

impl<P: Copy + Default> PoolArena<P> {
    /// `cap` is rounded up to a power of two (at least 4).
    pub(crate) fn new(n_cells: usize, cap: usize) -> Self {
        let cap = cap.max(4).next_power_of_two();
        Self {
            cap,
            pools: vec![P::default(); n_cells * cap],
            hdrs: vec![RingHdr::default(); n_cells],
            grows: 0,
        }
    }

    /// Pools per cell the arena holds now.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// How many times the arena doubled.
    pub(crate) fn grows(&self) -> u64 {
        self.grows
    }

    /// Makes room for `extra` more pools in `cell`'s ring, doubling every ring while it is short.
    #[inline]
    pub(crate) fn reserve(&mut self, cell: usize, extra: usize) {
        while self.hdrs[cell].len as usize + extra > self.cap {
            self.grow();
        }
    }

    #[cold]
    fn grow(&mut self) {
        let (old_cap, new_cap) = (self.cap, self.cap * 2);
        let mut pools = vec![P::default(); self.hdrs.len() * new_cap];
        for (c, hdr) in self.hdrs.iter_mut().enumerate() {
            for i in 0..hdr.len as usize {
                pools[c * new_cap + i] =
                    self.pools[c * old_cap + ((hdr.head as usize + i) & (old_cap - 1))];
            }
            hdr.head = 0;
        }
        self.pools = pools;
        self.cap = new_cap;
        self.grows += 1;
    }

    /// Asks the cache for the pools a push and a settle of `cell` touch (its two top pools,
    /// the slot above them and its bottom pool), so a loop over cells can overlap the misses of
    /// cells ahead instead of waiting for each in turn. A hint only: no effect on results.
    #[inline(always)]
    pub(crate) fn prefetch(&self, cell: usize) {
        let hdr = self.hdrs[cell];
        let mask = self.cap - 1;
        let base = cell * self.cap;
        let top = hdr.head as usize + hdr.len as usize;
        for i in [top.wrapping_sub(1), top, hdr.head as usize] {
            prefetch_read(self.pools.as_ptr().wrapping_add(base + (i & mask)));
        }
    }

    /// The ring of `cell`.
    #[inline]
    pub(crate) fn stack(&mut self, cell: usize) -> RingStack<'_, P> {
        let cap = self.cap;
        RingStack {
            buf: &mut self.pools[cell * cap..(cell + 1) * cap],
            hdr: &mut self.hdrs[cell],
        }
    }
}

/// A hint to bring the line holding `p` into the first-level cache.
#[inline(always)]
pub(crate) fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and reads nothing into the program, so any
    // address is sound (SSE is part of the x86-64 baseline).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A settled pool: its frames' calcium and the spike at its first frame are final.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Frozen {
    /// Tick (frame counter within the bank, see `bank`) of the pool's first frame.
    pub start: u64,
    /// Frames in the pool.
    pub len: u32,
    /// Calcium at the first frame (after OASIS's output clamps).
    pub first: f64,
    /// Calcium at the last frame.
    pub last: f64,
    /// Spike at the first frame (`0` for the first one or two frames of a segment, as OASIS).
    pub spike: f64,
    /// The pool opens its segment.
    pub seg_first: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_grows_in_order() {
        let mut a = PoolArena::<u32>::new(2, 4);
        for round in 0..3u32 {
            for v in 0..3 {
                a.reserve(1, 1);
                a.stack(1).push(round * 10 + v);
            }
            for v in 0..3 {
                assert_eq!(a.stack(1).pop_front(), round * 10 + v);
            }
        }
        for v in 0..9u32 {
            a.reserve(1, 1);
            a.stack(1).push(v);
        }
        assert_eq!(a.capacity(), 16);
        assert_eq!(a.grows(), 2);
        let s = a.stack(1);
        assert_eq!(
            (0..9).map(|i| s.get(i)).collect::<Vec<_>>(),
            (0..9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn overlay_leaves_base_untouched() {
        let mut a = PoolArena::<u32>::new(1, 4);
        for v in [1, 2, 3] {
            a.stack(0).push(v);
        }
        let base = a.stack(0);
        let mut o = Overlay::new(&base);
        o.push(9);
        assert_eq!(o.pop(), 9);
        assert_eq!(o.pop(), 3);
        o.set_top(20);
        o.push(7);
        assert_eq!(
            (0..o.len()).map(|i| o.get(i)).collect::<Vec<_>>(),
            vec![1, 20, 7]
        );
        assert_eq!(
            (0..base.len()).map(|i| base.get(i)).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
