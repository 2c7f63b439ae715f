//! Speed of the design criterion at rig scale, against numpy in the same invocation.
//!
//! ```text
//! TWINLOOP_PYTHON=/path/to/python \
//!   cargo run --release -p twinloop-model --example bench_criterion -- [rounds] [d] [frames]
//! ```
//! Defaults: 21 rounds, `d = 19` (the pretrained core's 16 channels, 2 behaviour covariates and
//! a bias), `T = 10` frames per clip (2 s at 30 Hz, every 6th frame: the rig's `score_stride`),
//! `dt = 0.2 s`. Two feature sources: `maps` is the rig's kind (per candidate and frame one
//! core map of 6 × 10 positions × 16 channels shared by every cell, sampled bilinearly at each
//! cell's position, plus behaviour and bias), `table` stores every (cell, candidate)'s features
//! (389 MB at 1000 × 512: memory-bound). For (cells, candidates) = (946, 128) and (1000, 512)
//! it times `score` for `Criterion::InfoGain` (the f32 lane path) on 2 threads (with the CPU
//! time per round: on a shared machine the wall time depends on the other jobs) and 1 thread,
//! the f64 reference on 1 thread, and `model/scripts/bench_criterion.py` (numpy, float64 and
//! float32, from the materialised features, at most 3 rounds: a round of the large case takes
//! tens of seconds) on the same posteriors, written to a temporary folder as `.npy`. It prints
//! median / p90, the numpy/Rust ratio, and the largest relative difference between the scores
//! of every implementation and the f64 reference. Without a Python (no
//! `TWINLOOP_PYTHON` and no `python3` with numpy) the numpy rows are reported as missing.

use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinloop_model::design::{
    Criterion, FeatureSource, Posterior, PosteriorConfig, score, score_reference,
};

/// Features held as `(units, candidates, frames, dim)`, the layout numpy reads.
struct Table {
    cands: usize,
    frames: usize,
    dim: usize,
    data: Vec<f32>,
}

impl FeatureSource for Table {
    fn dim(&self) -> usize {
        self.dim
    }
    fn frames(&self, _candidate: usize) -> usize {
        self.frames
    }
    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
        let n = self.frames * self.dim;
        let start = (unit * self.cands + candidate) * n;
        out.copy_from_slice(&self.data[start..start + n]);
    }
}

/// Core-like features (`U(0, 0.6)`), per-unit behaviour covariates constant over clips, a bias.
fn table(units: usize, cands: usize, frames: usize, dim: usize, rng: &mut ChaCha8Rng) -> Table {
    let mut data = Vec::with_capacity(units * cands * frames * dim);
    for _ in 0..units {
        let behaviour: [f32; 2] = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)];
        for _ in 0..cands * frames {
            data.extend((0..dim - 3).map(|_| rng.random_range(0.0..0.6f32)));
            data.extend_from_slice(&behaviour);
            data.push(1.0);
        }
    }
    Table {
        cands,
        frames,
        dim,
        data,
    }
}

/// The rig's kind of source (`rig/src/scheduler/design/designer.rs`, `Features`): per
/// candidate and frame one core feature map of `GRID` positions × `dim − 3` channels shared by
/// all cells, sampled bilinearly at each cell's readout position, then the cell's behaviour
/// covariates and a bias. Only the maps are stored (`candidates × frames × 60 × 16` f32).
struct Maps {
    cands: usize,
    frames: usize,
    dim: usize,
    maps: Vec<f32>,
    /// Per unit: the 4 grid corners around its position and their bilinear weights.
    corners: Vec<([usize; 4], [f32; 4])>,
    behaviour: Vec<[f32; 2]>,
}

/// The pretrained core's readout grid (`configs/sim.toml`: 6 × 10).
const GRID: (usize, usize) = (6, 10);

impl Maps {
    fn new(units: usize, cands: usize, frames: usize, dim: usize, rng: &mut ChaCha8Rng) -> Self {
        let positions = GRID.0 * GRID.1;
        let maps = (0..cands * frames * positions * (dim - 3))
            .map(|_| rng.random_range(0.0..0.6f32))
            .collect();
        let corners = (0..units)
            .map(|_| {
                let r: f32 = rng.random_range(0.0..(GRID.0 - 1) as f32);
                let c: f32 = rng.random_range(0.0..(GRID.1 - 1) as f32);
                let (r0, c0) = (r as usize, c as usize);
                let (fr, fc) = (r - r0 as f32, c - c0 as f32);
                let at = |i: usize, j: usize| i * GRID.1 + j;
                (
                    [
                        at(r0, c0),
                        at(r0, c0 + 1),
                        at(r0 + 1, c0),
                        at(r0 + 1, c0 + 1),
                    ],
                    [
                        (1.0 - fr) * (1.0 - fc),
                        (1.0 - fr) * fc,
                        fr * (1.0 - fc),
                        fr * fc,
                    ],
                )
            })
            .collect();
        let behaviour = (0..units)
            .map(|_| [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)])
            .collect();
        Maps {
            cands,
            frames,
            dim,
            maps,
            corners,
            behaviour,
        }
    }

    /// Every (unit, candidate)'s features, `(units, candidates, frames, dim)`, for numpy.
    fn materialise(&self) -> Vec<f32> {
        let n = self.frames * self.dim;
        let mut out = vec![0.0; self.corners.len() * self.cands * n];
        for (k, chunk) in out.chunks_exact_mut(n).enumerate() {
            self.fill(k % self.cands, k / self.cands, chunk);
        }
        out
    }
}

impl FeatureSource for Maps {
    fn dim(&self) -> usize {
        self.dim
    }
    fn frames(&self, _candidate: usize) -> usize {
        self.frames
    }
    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
        let ch = self.dim - 3;
        let per_frame = GRID.0 * GRID.1 * ch;
        let (idx, w) = self.corners[unit];
        for (t, row) in out.chunks_exact_mut(self.dim).enumerate() {
            let map = &self.maps[(candidate * self.frames + t) * per_frame..][..per_frame];
            let (feat, rest) = row.split_at_mut(ch);
            feat.fill(0.0);
            for (&p, &wk) in idx.iter().zip(&w) {
                for (o, &v) in feat.iter_mut().zip(&map[p * ch..(p + 1) * ch]) {
                    *o += wk * v;
                }
            }
            rest[..2].copy_from_slice(&self.behaviour[unit]);
            rest[2] = 1.0;
        }
    }
}

/// Posteriors after 300 frames of random data (anisotropic `Σ`, rates of a few Hz).
fn posterior(units: usize, dim: usize, rng: &mut ChaCha8Rng) -> Posterior {
    let mut cfg = PosteriorConfig::isotropic(dim, 0.5);
    cfg.prior_mean[dim - 1] = 5f64.ln();
    let mut post = Posterior::new(units, cfg).expect("valid config");
    let mut x = vec![0.0f32; units * dim];
    let mut y = vec![0.0f32; units];
    for _ in 0..300 {
        for (k, v) in x.iter_mut().enumerate() {
            *v = if k % dim == dim - 1 {
                1.0
            } else {
                rng.random_range(-0.3..0.9)
            };
        }
        for v in y.iter_mut() {
            *v = rng.random_range(0..3) as f32;
        }
        post.observe_threads(&x, &y, 1.0 / 30.0, 2);
    }
    post
}

/// This process's user + system CPU time in ms (`/proc/self/stat`, 10 ms ticks), or NaN: on a
/// machine shared with other jobs, CPU time per round is what the work costs, wall time is
/// what it cost then.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    if f.len() == 2 {
        (f[0] + f[1]) * 10.0
    } else {
        f64::NAN
    }
}

/// (median, p90) of `rounds` timings of `f`, in ms; `f`'s last result.
fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> ((f64, f64), T) {
    let mut last = None;
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            last = Some(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let p90 = ms[((0.9 * rounds as f64).ceil() as usize).clamp(1, rounds) - 1];
    ((ms[rounds / 2], p90), last.expect("at least one round"))
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-300))
        .fold(0.0, f64::max)
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    data: &[T],
) -> Result<(), Box<dyn std::error::Error>> {
    use npyz::WriterBuilder;
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(f)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(())
}

/// Runs the numpy peer on `src` and `post`; its JSON output, or why not.
fn numpy(
    python: &str,
    features: &[f32],
    (u, c, t, d): (usize, usize, usize, usize),
    post: &Posterior,
    dt: f64,
    rounds: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("bench_criterion_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    write_npy(
        &dir.join("features.npy"),
        &[u as u64, c as u64, t as u64, d as u64],
        features,
    )?;
    let means: Vec<f64> = (0..u).flat_map(|k| post.mean(k).to_vec()).collect();
    let covs: Vec<f64> = (0..u).flat_map(|k| post.cov(k).to_vec()).collect();
    write_npy(&dir.join("means.npy"), &[u as u64, d as u64], &means)?;
    write_npy(
        &dir.join("covs.npy"),
        &[u as u64, d as u64, d as u64],
        &covs,
    )?;
    std::fs::write(dir.join("meta.json"), format!("{{\"dt_s\": {dt}}}"))?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_criterion.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&dir)
        .arg(rounds.to_string())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (rounds, dim, frames) = (arg(1, 21)?, arg(2, 19)?, arg(3, 10)?);
    if rounds == 0 || dim < 4 || frames == 0 {
        return Err("rounds and frames must be positive, d at least 4".into());
    }
    let python = std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into());
    let dt = 0.2;
    let ig = Criterion::InfoGain;
    println!("d = {dim}, T = {frames}, dt = {dt} s, {rounds} rounds; numpy via {python}");
    println!(
        "| source | cells x candidates | lanes f32, 2 threads (CPU ms per round) | lanes f32, 1 thread | reference f64, 1 thread | numpy f64 | numpy f32 | numpy f64 / lanes 2 thr | max rel. diff to reference: lanes, numpy f64, numpy f32 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (kind, units, cands) in [
        ("maps", 946, 128),
        ("maps", 1000, 512),
        ("table", 946, 128),
        ("table", 1000, 512),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(units as u64 * 7 + cands as u64);
        let (src, features): (Box<dyn FeatureSource>, Vec<f32>) = if kind == "maps" {
            let maps = Maps::new(units, cands, frames, dim, &mut rng);
            let features = maps.materialise();
            (Box::new(maps), features)
        } else {
            let mut t = table(units, cands, frames, dim, &mut rng);
            let features = std::mem::take(&mut t.data);
            t.data = features.clone();
            (Box::new(t), features)
        };
        let src = &*src;
        let post = posterior(units, dim, &mut rng);
        let all: Vec<usize> = (0..cands).collect();
        let cpu0 = cpu_ms();
        let (two, lanes) = time(rounds, || score(&post, src, &all, &ig, dt, 2));
        let cpu_two = (cpu_ms() - cpu0) / rounds as f64;
        let (one, _) = time(rounds, || score(&post, src, &all, &ig, dt, 1));
        let ref_rounds = rounds.min(5);
        let (reference, want) = time(ref_rounds, || score_reference(&post, src, &all, &ig, dt, 1));
        let (lanes, want) = (lanes?, want?);
        let cell = |(m, p): (f64, f64)| format!("{m:.1} / {p:.1} ms");
        let dims = (units, cands, frames, dim);
        let (np64, np32, ratio, diffs) =
            match numpy(&python, &features, dims, &post, dt, rounds.min(3)) {
                Ok(v) => {
                    let get = |k: &str| -> Option<((f64, f64), Vec<f64>)> {
                        let o = &v[k];
                        let s = o["scores"].as_array()?.iter().filter_map(|x| x.as_f64());
                        Some((
                            (o["median_ms"].as_f64()?, o["p90_ms"].as_f64()?),
                            s.collect(),
                        ))
                    };
                    match (get("float64"), get("float32")) {
                        (Some((t64, s64)), Some((t32, s32))) => (
                            cell(t64),
                            cell(t32),
                            format!("{:.1}x", t64.0 / two.0),
                            format!(
                                "{:.1e}, {:.1e}, {:.1e}",
                                max_rel(&lanes, &want),
                                max_rel(&s64, &want),
                                max_rel(&s32, &want)
                            ),
                        ),
                        _ => return Err(format!("unexpected numpy output: {v}").into()),
                    }
                }
                Err(e) => {
                    eprintln!("numpy peer not run: {e}");
                    let missing = || "not run".to_string();
                    let diffs = format!("{:.1e}, -, -", max_rel(&lanes, &want));
                    (missing(), missing(), missing(), diffs)
                }
            };
        println!(
            "| {kind} | {units} x {cands} | {} ({cpu_two:.0}) | {} | {} ({ref_rounds} rounds) | {np64} | {np32} | {ratio} | {diffs} |",
            cell(two),
            cell(one),
            cell(reference),
        );
    }
    Ok(())
}
