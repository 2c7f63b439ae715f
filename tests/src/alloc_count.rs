//! A counting global allocator for tests that prove a hot path allocation-free: it counts the
//! heap allocations of threads that opted in ([`hot`]) while the window is open ([`window`]),
//! so the harness, warm-up and other threads do not count. A test binary installs it with
//! `#[global_allocator] static A: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Counting;

static WINDOW: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static HOT: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread's allocations count.
pub fn hot(on: bool) {
    HOT.with(|h| h.set(on));
}

/// Opens or closes the window in which hot threads' allocations count.
pub fn window(open: bool) {
    WINDOW.store(open, Ordering::SeqCst);
}

/// Allocations counted so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Allocations counted so far, and the count back to zero.
pub fn take() -> u64 {
    ALLOCATIONS.swap(0, Ordering::SeqCst)
}

fn count() {
    if WINDOW.load(Ordering::Relaxed) && HOT.try_with(|h| h.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to the system allocator unchanged; counting touches only atomics
// and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
