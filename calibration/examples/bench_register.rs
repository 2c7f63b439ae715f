//! Per-frame cost of registration at 512 x 512 on one thread: rigid shift estimate only, rigid
//! estimate + bilinear shift, and rigid + piecewise-rigid + warp. Also counts heap allocations
//! inside the timed loop (expected: none).
//!
//! ```text
//! cargo run --release -p twinloop-calibration --example bench_register            # synthetic frames
//! python tests/fixtures/register/bench_numpy.py --write /tmp/reg_bench             # numpy timings + frames
//! cargo run --release -p twinloop-calibration --example bench_register -- /tmp/reg_bench
//! ```
//!
//! With a directory argument it reads `frames.u16` (`[n][512][512]` little-endian u16) and
//! `reference.f32` (`[512][512]` little-endian f32) written by `bench_numpy.py`, so both
//! benchmarks see the same frames.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use twinloop_calibration::imaging::register::{Registrar, RegistrationParams};

struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const H: usize = 512;
const W: usize = 512;
const N_TIMED: usize = 600;

/// xorshift64*: deterministic synthetic frames without dependencies.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Cell-like blobs on a smooth background, moved by `(dy, dx)` px, with Gaussian noise.
fn synthetic(blobs: &[(f32, f32, f32, f32)], dy: f32, dx: f32, rng: &mut Rng) -> Vec<f32> {
    let mut img = vec![0.0f32; H * W];
    for y in 0..H {
        for x in 0..W {
            let (sy, sx) = (y as f32 - dy, x as f32 - dx);
            img[y * W + x] = 300.0 + 40.0 * (sy * 0.11 + 0.7).sin() * (sx * 0.07).cos();
        }
    }
    for &(cy, cx, s, a) in blobs {
        let r = (4.0 * s + 12.0) as isize;
        for y in (cy as isize - r).max(0)..(cy as isize + r).min(H as isize) {
            for x in (cx as isize - r).max(0)..(cx as isize + r).min(W as isize) {
                let (ey, ex) = (y as f32 - dy - cy, x as f32 - dx - cx);
                img[y as usize * W + x as usize] +=
                    a * (-(ey * ey + ex * ex) / (2.0 * s * s)).exp();
            }
        }
    }
    for v in &mut img {
        let noise = (rng.uniform() + rng.uniform() + rng.uniform() - 1.5) * 2.0;
        *v += noise * v.sqrt();
    }
    img
}

fn load(dir: &str) -> std::io::Result<(Vec<Vec<u16>>, Vec<f32>)> {
    let raw = std::fs::read(format!("{dir}/frames.u16"))?;
    let frames = raw
        .chunks_exact(H * W * 2)
        .map(|f| {
            f.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect()
        })
        .collect();
    let raw = std::fs::read(format!("{dir}/reference.f32"))?;
    let reference = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((frames, reference))
}

fn make_frames() -> (Vec<Vec<u16>>, Vec<f32>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let blobs: Vec<(f32, f32, f32, f32)> = (0..2000)
        .map(|_| {
            let big = rng.uniform() < 0.2;
            let (s, a) = if big {
                (2.5 + 1.5 * rng.uniform(), 300.0 + 600.0 * rng.uniform())
            } else {
                (1.0 + 0.6 * rng.uniform(), 60.0 + 140.0 * rng.uniform())
            };
            (rng.uniform() * W as f32, rng.uniform() * H as f32, s, a)
        })
        .collect();
    let reference = synthetic(&blobs, 0.0, 0.0, &mut rng);
    let frames = (0..50)
        .map(|_| {
            let (dy, dx) = (16.0 * rng.uniform() - 8.0, 16.0 * rng.uniform() - 8.0);
            synthetic(&blobs, dy, dx, &mut rng)
                .iter()
                .map(|&v| v.round().clamp(0.0, 65535.0) as u16)
                .collect()
        })
        .collect();
    (frames, reference)
}

struct Stats {
    median_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    allocations: usize,
}

fn time(frames: &[Vec<u16>], mut f: impl FnMut(&[u16])) -> Stats {
    for fr in frames.iter().take(20) {
        f(fr);
    }
    let mut ms = Vec::with_capacity(N_TIMED);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..N_TIMED {
        let fr = &frames[i % frames.len()];
        let t = Instant::now();
        f(fr);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Stats {
        median_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        allocations,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (frames, reference) = match std::env::args().nth(1) {
        Some(dir) => load(&dir)?,
        None => make_frames(),
    };
    println!(
        "{} distinct {H}x{W} u16 frames, {N_TIMED} timed calls per mode, one thread",
        frames.len()
    );
    let full_params = RegistrationParams::default();
    let rigid_params = RegistrationParams {
        nonrigid: false,
        ..Default::default()
    };
    let t = Instant::now();
    let mut full = Registrar::new(&reference, H, W, &full_params)?;
    println!(
        "Registrar::new (rigid + 36 blocks): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut rigid = Registrar::new(&reference, H, W, &rigid_params)?;
    let mut out = vec![0.0f32; H * W];
    let mut sink = 0.0f32;

    let report = |name: &str, s: Stats| {
        println!(
            "{name:<34} median {:6.3} ms  p99 {:6.3} ms  max {:6.3} ms  allocations in loop: {}",
            s.median_ms, s.p99_ms, s.max_ms, s.allocations
        );
    };
    let s = time(&frames, |f| {
        sink += rigid.rigid_shift(f).map(|r| r.dy).unwrap_or(f32::NAN)
    });
    report("rigid shift estimate", s);
    let s = time(&frames, |f| {
        sink += rigid
            .register(f, &mut out)
            .map(|r| r.rigid_dy)
            .unwrap_or(f32::NAN)
    });
    report("rigid estimate + bilinear shift", s);
    let s = time(&frames, |f| {
        sink += full
            .register(f, &mut out)
            .map(|r| r.rigid_dy)
            .unwrap_or(f32::NAN)
    });
    report("rigid + 36 blocks + warp", s);
    println!("(checksum {sink:.1})");
    Ok(())
}
