//! The lock-free backbone: a preallocated pool of buffers and SPSC rings of handles to them.
//!
//! # Design constraints
//! - Pixels never travel through a ring: a ring carries [`pool::Pooled`] handles (a pointer and
//!   an index), so moving a 512 KiB frame costs the same as moving a byte.
//! - One producer and one consumer per ring (`ringbuf`'s SPSC `HeapRb`); a thread that consumes
//!   several rings registers one [`Wakeup`], which every producer pokes after a push, so a
//!   consumer sleeps without polling and wakes within microseconds.
//! - A ring never blocks its producer: `try_push` hands the item back when full and the producer
//!   decides (the recorder's ring applies back-pressure, a stage's ring drops and counts).
//! - Closing is explicit: dropping a [`RingTx`] marks the ring closed, so consumers drain what is
//!   left and then stop.

pub mod pool;

pub use pool::{Pool, PoolWriter, Pooled};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// Wakes one consumer thread when any of its rings gets an item.
#[derive(Default)]
pub struct Wakeup {
    thread: OnceLock<Thread>,
}

impl Wakeup {
    pub fn new() -> Arc<Wakeup> {
        Arc::new(Wakeup::default())
    }

    /// Called once by the consuming thread before it first waits.
    pub fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    pub fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Sleep until woken or `timeout` passes (spurious wake-ups are fine: callers re-check).
    pub fn wait(&self, timeout: Duration) {
        std::thread::park_timeout(timeout);
    }
}

struct Shared {
    closed: AtomicBool,
    /// The consumer is gone: nothing pushed will ever be read.
    abandoned: AtomicBool,
    wake: Arc<Wakeup>,
}

pub struct RingTx<T> {
    prod: HeapProd<T>,
    shared: Arc<Shared>,
}

pub struct RingRx<T> {
    cons: HeapCons<T>,
    shared: Arc<Shared>,
}

/// A ring of `capacity` items whose consumer is woken through `wake`.
pub fn ring<T>(capacity: usize, wake: Arc<Wakeup>) -> (RingTx<T>, RingRx<T>) {
    let (prod, cons) = HeapRb::<T>::new(capacity.max(1)).split();
    let shared = Arc::new(Shared {
        closed: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        wake,
    });
    (
        RingTx {
            prod,
            shared: Arc::clone(&shared),
        },
        RingRx { cons, shared },
    )
}

impl<T> RingTx<T> {
    /// Push, waking the consumer; hands the item back when the ring is full.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        let r = self.prod.try_push(item);
        if r.is_ok() {
            self.shared.wake.wake();
        }
        r
    }

    pub fn is_full(&self) -> bool {
        self.prod.is_full()
    }

    pub fn len(&self) -> usize {
        self.prod.occupied_len()
    }

    pub fn is_empty(&self) -> bool {
        self.prod.is_empty()
    }

    /// The consumer was dropped: waiting for room would wait forever.
    pub fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }
}

impl<T> Drop for RingTx<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.wake();
    }
}

impl<T> Drop for RingRx<T> {
    fn drop(&mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
    }
}

impl<T> RingRx<T> {
    pub fn try_pop(&mut self) -> Option<T> {
        self.cons.try_pop()
    }

    pub fn len(&self) -> usize {
        self.cons.occupied_len()
    }

    pub fn is_empty(&self) -> bool {
        self.cons.is_empty()
    }

    /// The producer is gone and nothing is left to read.
    pub fn is_finished(&self) -> bool {
        // Read `closed` first: an item pushed before closing is then visible to `is_empty`.
        self.shared.closed.load(Ordering::Acquire) && self.cons.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_hands_the_item_back_and_close_is_seen_after_drain() {
        let wake = Wakeup::new();
        let (mut tx, mut rx) = ring::<u32>(2, wake);
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        assert_eq!(tx.try_push(3), Err(3));
        drop(tx);
        assert!(!rx.is_finished(), "items remain");
        assert_eq!(rx.try_pop(), Some(1));
        assert_eq!(rx.try_pop(), Some(2));
        assert!(rx.is_finished());
    }

    #[test]
    fn a_parked_consumer_is_woken_by_a_push() {
        let wake = Wakeup::new();
        let (mut tx, mut rx) = ring::<u32>(4, Arc::clone(&wake));
        let consumer = std::thread::spawn(move || {
            wake.register_current();
            let mut got = Vec::new();
            while !rx.is_finished() {
                match rx.try_pop() {
                    Some(v) => got.push(v),
                    None => wake.wait(Duration::from_secs(5)),
                }
            }
            got
        });
        for i in 0..100 {
            while tx.try_push(i).is_err() {
                std::thread::yield_now();
            }
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
    }
}
