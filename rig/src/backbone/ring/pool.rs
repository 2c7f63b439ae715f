//! A preallocated pool of buffers with shared, reference-counted handles.
//!
//! # Design constraints
//! - No heap allocation after construction: handing a buffer to several consumers (a stage and
//!   the recorder) clones a handle, which bumps an atomic count; the last handle to drop puts the
//!   slot back on the free list. The pool itself lives in one `Arc`, cloned per handle
//!   (an atomic increment, not an allocation).
//! - Lock-free: the free list is a bounded `crossbeam` `ArrayQueue` (slots come back from any
//!   consumer thread), and handles travel through `ringbuf` SPSC rings.
//! - A writer has exclusive access ([`PoolWriter`]) until it is frozen into a shared, read-only
//!   [`Pooled`] handle; after that nobody can write the slot until every handle is gone.
//! - Exhaustion is not an error but a signal: [`Pool::try_take`] returns `None` and the caller
//!   counts a stall (the ingest side applies back-pressure instead of allocating).

use crossbeam_queue::ArrayQueue;
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

struct Slot<T> {
    refs: AtomicU32,
    value: UnsafeCell<T>,
}

struct Inner<T> {
    slots: Box<[Slot<T>]>,
    free: ArrayQueue<u32>,
}

// SAFETY: a slot's value is only written through the unique `PoolWriter` (refs == 1, no other
// handle exists) and only read through `Pooled` handles after the writer was frozen; the atomic
// count with Acquire/Release orders the writes before any read and reads before reuse.
unsafe impl<T: Send> Send for Inner<T> {}
unsafe impl<T: Send + Sync> Sync for Inner<T> {}

/// A fixed set of preallocated `T`s.
pub struct Pool<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Send + Sync> Pool<T> {
    /// `capacity` slots, each made by `make` (all allocation happens here).
    pub fn new(capacity: usize, mut make: impl FnMut() -> T) -> Pool<T> {
        let capacity = capacity.max(1);
        let slots: Box<[Slot<T>]> = (0..capacity)
            .map(|_| Slot {
                refs: AtomicU32::new(0),
                value: UnsafeCell::new(make()),
            })
            .collect();
        let free = ArrayQueue::new(capacity);
        for i in 0..capacity {
            // Cannot fail: the queue has exactly `capacity` places.
            let _ = free.push(i as u32);
        }
        Pool {
            inner: Arc::new(Inner { slots, free }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.inner.slots.len()
    }

    /// Slots currently free.
    pub fn available(&self) -> usize {
        self.inner.free.len()
    }

    /// Take a free slot for writing, or `None` when every slot is in use.
    pub fn try_take(&self) -> Option<PoolWriter<T>> {
        let index = self.inner.free.pop()?;
        self.inner.slots[index as usize]
            .refs
            .store(1, Ordering::Relaxed);
        Some(PoolWriter {
            inner: Arc::clone(&self.inner),
            index,
        })
    }
}

/// Exclusive write access to one slot.
pub struct PoolWriter<T> {
    inner: Arc<Inner<T>>,
    index: u32,
}

impl<T> PoolWriter<T> {
    /// Publish the slot read-only; clone the result to share it.
    pub fn freeze(self) -> Pooled<T> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the Arc is moved out exactly once.
        let inner = unsafe { std::ptr::read(&this.inner) };
        Pooled {
            inner,
            index: this.index,
        }
    }
}

impl<T> Deref for PoolWriter<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the writer is the only handle to this slot (refs == 1).
        unsafe { &*self.inner.slots[self.index as usize].value.get() }
    }
}

impl<T> DerefMut for PoolWriter<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes this access unique.
        unsafe { &mut *self.inner.slots[self.index as usize].value.get() }
    }
}

impl<T> Drop for PoolWriter<T> {
    fn drop(&mut self) {
        // Abandoned without publishing: the slot goes straight back.
        release(&self.inner, self.index);
    }
}

/// A shared, read-only handle to a pooled value.
pub struct Pooled<T> {
    inner: Arc<Inner<T>>,
    index: u32,
}

impl<T> Clone for Pooled<T> {
    fn clone(&self) -> Self {
        self.inner.slots[self.index as usize]
            .refs
            .fetch_add(1, Ordering::Relaxed);
        Pooled {
            inner: Arc::clone(&self.inner),
            index: self.index,
        }
    }
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: while any `Pooled` exists the slot is never written (see `Inner`).
        unsafe { &*self.inner.slots[self.index as usize].value.get() }
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        release(&self.inner, self.index);
    }
}

fn release<T>(inner: &Inner<T>, index: u32) {
    if inner.slots[index as usize]
        .refs
        .fetch_sub(1, Ordering::AcqRel)
        == 1
    {
        // Cannot fail: only taken indices come back, so there is always a free place.
        let _ = inner.free.push(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_return_only_when_the_last_handle_drops() {
        let pool = Pool::new(2, || vec![0u16; 4]);
        let mut w = pool.try_take().unwrap();
        w[0] = 7;
        let a = w.freeze();
        let b = a.clone();
        assert_eq!(pool.available(), 1);
        drop(a);
        assert_eq!(pool.available(), 1, "b still holds the slot");
        assert_eq!(b[0], 7);
        drop(b);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn exhaustion_is_reported_not_allocated_around() {
        let pool = Pool::new(1, || 0u8);
        let held = pool.try_take().unwrap().freeze();
        assert!(pool.try_take().is_none());
        drop(held);
        assert!(pool.try_take().is_some());
    }

    #[test]
    fn an_abandoned_writer_returns_its_slot() {
        let pool = Pool::new(1, || 0u8);
        drop(pool.try_take());
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn handles_cross_threads_and_all_slots_come_back() {
        let pool = Pool::new(8, || 0u64);
        let (tx, rx) = crossbeam_channel::bounded::<Pooled<u64>>(8);
        let consumer = std::thread::spawn(move || {
            let mut sum = 0;
            while let Ok(v) = rx.recv() {
                sum += *v;
            }
            sum
        });
        let mut expected = 0;
        for i in 0..10_000u64 {
            let mut w = loop {
                if let Some(w) = pool.try_take() {
                    break w;
                }
                std::thread::yield_now();
            };
            *w = i;
            expected += i;
            tx.send(w.freeze()).unwrap();
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), expected);
        assert_eq!(pool.available(), 8);
    }
}
