//! Times the pupil tracker per frame on the fixture frames (`tests/fixtures/pupil`), and
//! counts heap allocations in the timed loop (and in a treadmill + behaviour-aligner loop):
//! both must be zero after construction.
//!
//! Run in release: `cargo run --release -p twinloop-calibration --example bench_pupil`
//! (optional argument: passes over the frames, default 200). Compare with
//! `tests/fixtures/pupil/bench_opencv.py`, which times OpenCV's pipeline on the same frames.
//! Both report wall time and the thread's CPU time per frame: on a shared machine the wall-time
//! tail is the scheduler's, the CPU-time tail the code's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use twinloop_calibration::body::{BehaviourAligner, BehaviourConfig, Treadmill, TreadmillConfig};
use twinloop_calibration::eye::{PupilConfig, PupilTracker};

/// Counts every allocation of the process (this binary is single-threaded while counting).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let passes: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 200,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pupil/frames.npy");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])?;
    let shape = npy.shape().to_vec();
    let frames: Vec<u8> = npy.into_vec()?;
    let (n, h, w) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    let mut tracker = PupilTracker::new(w, h, PupilConfig::default())?;
    // Warm up caches and branch predictors.
    for k in 0..n {
        tracker.track(&frames[k * w * h..(k + 1) * w * h])?;
    }
    let mut times_us = Vec::with_capacity(passes * n);
    let mut good_us = Vec::with_capacity(passes * n);
    let mut cpu_us = Vec::with_capacity(passes * n);
    let mut good_cpu_us = Vec::with_capacity(passes * n);
    let mut good = 0usize;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..passes {
        for k in 0..n {
            let frame = &frames[k * w * h..(k + 1) * w * h];
            let c0 = thread_cpu_ns();
            let t0 = Instant::now();
            let m = tracker.track(frame)?;
            let us = t0.elapsed().as_secs_f64() * 1e6;
            let cpu = (thread_cpu_ns() - c0) as f64 * 1e-3;
            cpu_us.push(cpu);
            times_us.push(us);
            if m.is_good() {
                good += 1;
                good_us.push(us);
                good_cpu_us.push(cpu);
            }
        }
    }
    let tracker_allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "pupil tracker, {w}x{h}, {} frames ({} good) x {passes} passes, one thread",
        n,
        good / passes
    );
    report("wall time, all frames", &mut times_us);
    report("wall time, good frames", &mut good_us);
    report("thread CPU time, all frames", &mut cpu_us);
    report("thread CPU time, good frames", &mut good_cpu_us);
    println!("heap allocations in the timed loop: {tracker_allocs}");
    let body_allocs = body_loop(&mut tracker, &frames[..w * h])?;
    println!(
        "heap allocations in 20 s of treadmill (1 kHz) + aligner (30 Hz frames): {body_allocs}"
    );
    if tracker_allocs + body_allocs > 0 {
        return Err("the per-frame path allocated".into());
    }
    Ok(())
}

/// CPU time of this thread, ns (not counting time the scheduler gave to other processes,
/// which on a shared machine dominates wall-time tails).
fn thread_cpu_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// A steady-state loop of the other per-sample paths: encoder counts at 1 kHz through the
/// treadmill, pupil measurements at 60 Hz and velocities into the aligner, a frame at 30 Hz.
fn body_loop(tracker: &mut PupilTracker, frame: &[u8]) -> Result<u64, Box<dyn std::error::Error>> {
    let mut treadmill = Treadmill::new(TreadmillConfig::default())?;
    let mut aligner = BehaviourAligner::new(BehaviourConfig::default())?;
    let m = tracker.track(frame)?;
    let ms = 1_000_000i64;
    let mut run = |from: i64, to: i64, count: bool| -> u64 {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for k in from..to {
            let t = k * ms;
            if let Some(v) = treadmill.push(t, (k * 7) % (1 << 20)) {
                aligner.push_velocity(&v);
            }
            if k % 17 == 0 {
                aligner.push_pupil(t, &m);
            }
            if k % 33 == 0 {
                std::hint::black_box(aligner.frame(t - 20 * ms));
            }
        }
        if count {
            ALLOCATIONS.load(Ordering::Relaxed) - before
        } else {
            0
        }
    };
    // Warm up past the history lengths, then count.
    run(0, 5_000, false);
    Ok(run(5_000, 25_000, true))
}

fn report(what: &str, times_us: &mut [f64]) {
    if times_us.is_empty() {
        return;
    }
    times_us.sort_by(f64::total_cmp);
    let q = |p: f64| times_us[((times_us.len() - 1) as f64 * p).round() as usize];
    let mean = times_us.iter().sum::<f64>() / times_us.len() as f64;
    println!(
        "{what}: p50 {:.1} us, p99 {:.1} us, max {:.1} us, mean {mean:.1} us",
        q(0.5),
        q(0.99),
        q(1.0)
    );
}
