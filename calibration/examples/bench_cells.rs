//! Benchmark of cell detection and per-frame fluorescence on a synthetic field.
//!
//! `cargo run --release -p twinloop-calibration --example bench_cells [cells] [size] [frames]`
//! (defaults 1,000 cells, 512x512, 500 frames). The movie is synthetic (this crate cannot use
//! the simulator): somata as soft discs of radius 5-7 px with dim nuclei on a jittered grid,
//! sparse calcium transients, a neuropil that follows the population, shot and read noise.
//! Prints the time of each detection stage, the recall of the planted cells, and p50/p99 of
//! F, Fneu and dF/F per frame over 2,000 frames (wall clock: on a loaded machine the p99 is
//! other processes' preemption, so the load average is printed too).

use std::time::Instant;
use twinloop_calibration::imaging::cells::{BlockAccumulator, CellDetectionParams, detect_cells};
use twinloop_calibration::imaging::fluorescence::{FluorescenceExtractor, FluorescenceParams};

/// xorshift64* with a few samplers: enough for a benchmark movie.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

struct Cell {
    y: f64,
    x: f64,
    /// (pixel, weight) of the footprint.
    footprint: Vec<(usize, f32)>,
    f0: f32,
    calcium: f32,
    rate: f64,
}

/// Cells on a jittered grid filling the field.
fn plant(n: usize, size: usize, rng: &mut Rng) -> Vec<Cell> {
    let per_side = (n as f64).sqrt().ceil() as usize;
    let step = size as f64 / per_side as f64;
    let mut cells = Vec::with_capacity(n);
    for k in 0..n {
        let (gy, gx) = (k / per_side, k % per_side);
        let y = (gy as f64 + 0.5) * step + (rng.uniform() - 0.5) * 0.2 * step;
        let x = (gx as f64 + 0.5) * step + (rng.uniform() - 0.5) * 0.2 * step;
        let r = 5.0 + 2.0 * rng.uniform();
        let mut footprint = Vec::new();
        let reach = (r + 3.0) as isize;
        for py in (y as isize - reach).max(0)..(y as isize + reach + 1).min(size as isize) {
            for px in (x as isize - reach).max(0)..(x as isize + reach + 1).min(size as isize) {
                let d = ((py as f64 - y).powi(2) + (px as f64 - x).powi(2)).sqrt();
                let body = 1.0 / (1.0 + ((d - r) / 0.7).exp());
                let nucleus = 1.0 / (1.0 + ((d - 0.55 * r) / 0.8).exp());
                let wgt = body * (1.0 - 0.45 * nucleus);
                if wgt > 0.03 {
                    footprint.push((py as usize * size + px as usize, wgt as f32));
                }
            }
        }
        cells.push(Cell {
            y,
            x,
            footprint,
            f0: (6.0 * (0.5 * rng.normal()).exp()) as f32,
            calcium: 0.0,
            rate: 0.02 + 0.1 * rng.uniform(),
        });
    }
    cells
}

/// Renders the next frame into `out` (photons to ADU: gain 60, offset 400, read noise 20).
fn render(cells: &mut [Cell], size: usize, rng: &mut Rng, ideal: &mut [f32], out: &mut [u16]) {
    let mut population = 0.0;
    for c in cells.iter_mut() {
        c.calcium *= 0.97;
        if rng.uniform() < c.rate {
            c.calcium += 1.0;
        }
        population += c.calcium;
    }
    let neuropil = 2.0 * (1.0 + 0.1 * population / cells.len() as f32);
    ideal.fill(neuropil);
    for c in cells.iter() {
        let f = c.f0 * (1.0 + 0.3 * c.calcium);
        for &(p, w) in &c.footprint {
            ideal[p] += f * w;
        }
    }
    for (o, &lam) in out.iter_mut().zip(ideal.iter()).take(size * size) {
        let photons = lam as f64 + (lam as f64).sqrt() * rng.normal();
        let adu = 400.0 + 60.0 * photons.max(0.0) + 20.0 * rng.normal();
        *o = adu.round().clamp(0.0, 65535.0) as u16;
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_cells = args.first().copied().unwrap_or(1000);
    let size = args.get(1).copied().unwrap_or(512);
    let n_frames = args.get(2).copied().unwrap_or(500);
    let mut rng = Rng(0x5eed);
    let mut cells = plant(n_cells, size, &mut rng);
    let mut ideal = vec![0.0f32; size * size];
    let mut frame = vec![0u16; size * size];
    let params = CellDetectionParams {
        calibration_frames: n_frames,
        ..CellDetectionParams::default()
    };

    // Calibration block: streamed in, as the daemon does.
    let mut acc = BlockAccumulator::new(size, size, &params)?;
    let mut push_s = 0.0;
    for _ in 0..n_frames {
        render(&mut cells, size, &mut rng, &mut ideal, &mut frame);
        let t = Instant::now();
        acc.push(&frame)?;
        push_s += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    let block = acc.finish()?;
    let finish_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let detection = detect_cells(&block, &params)?;
    let detect_s = t.elapsed().as_secs_f64();
    let masks = &detection.masks;
    let found = cells
        .iter()
        .filter(|c| {
            masks.info().iter().any(|m| {
                (f64::from(m.centroid_y_px) - c.y).hypot(f64::from(m.centroid_x_px) - c.x) <= 4.0
            })
        })
        .count();
    println!(
        "detection, {n_frames} frames of {size}x{size}, {n_cells} planted cells: streaming \
         {:.3} s ({:.2} ms/frame), images {:.3} s, detection {:.3} s, total {:.3} s",
        push_s,
        1e3 * push_s / n_frames as f64,
        finish_s,
        detect_s,
        push_s + finish_s + detect_s
    );
    println!(
        "  {} cells found, {found} of {n_cells} planted cells within 4 px",
        masks.len()
    );

    // Per-frame fluorescence on 2,000 frames (a few pre-rendered frames, cycled).
    let fp = FluorescenceParams {
        dark_offset_adu: 400.0,
        ..FluorescenceParams::default()
    };
    let mut ex = FluorescenceExtractor::new(masks, &fp, 30.0)?;
    ex.prime(&block)?;
    let frames: Vec<Vec<u16>> = (0..16)
        .map(|_| {
            render(&mut cells, size, &mut rng, &mut ideal, &mut frame);
            frame.clone()
        })
        .collect();
    let mut times = Vec::with_capacity(2000);
    for k in 0..2000 {
        let f = &frames[k % frames.len()];
        let t = Instant::now();
        ex.process(f)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "fluorescence, {} cells ({:.0} mask px, {:.0} neuropil px each): per frame p50 {:.0} us, \
         p99 {:.0} us, max {:.0} us",
        masks.len(),
        masks
            .info()
            .iter()
            .map(|c| f64::from(c.pixels))
            .sum::<f64>()
            / masks.len() as f64,
        masks
            .info()
            .iter()
            .map(|c| f64::from(c.neuropil_pixels))
            .sum::<f64>()
            / masks.len() as f64,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    // Wall-clock times: on a shared machine, the tail is other processes' (say so).
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "  (load average {} on {cores} cores)",
            load.split_whitespace().next().unwrap_or("?")
        );
    }
    Ok(())
}
