//! `twinloop bench design`: the design maths' timings. Plain: one posterior update and the
//! scoring of a few large candidates, extrapolated. `--scoring` (issue #19, item 6): the
//! information gain of every candidate for every cell at the rig's sizes, on the cached fast
//! path ([`FeatureCache`]), on today's uncached lane path and f64 reference, and in numpy
//! (`bench/design_criterion.py`, float64 and float32) in the same invocation.
//!
//! ```text
//! TWINLOOP_PYTHON=.venv/bin/python target/release/twinloop bench design --scoring
//! ```

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;

use twinloop_model::design::{
    Criterion, FeatureCache, FeatureSource, Posterior, PosteriorConfig, score, score_reference,
};

#[derive(Debug, Clone, clap::Args)]
pub struct DesignArgs {
    /// Units (cells) in the posterior.
    #[arg(long, default_value_t = 10_000)]
    pub units: usize,
    /// Features per unit (core channels at the readout, behaviour and bias).
    #[arg(long, default_value_t = 128)]
    pub features: usize,
    /// Frames per candidate clip.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Candidates to time (the full pool's time is extrapolated linearly to --pool).
    #[arg(long, default_value_t = 4)]
    pub candidates: usize,
    /// The pool size the scoring time is quoted for.
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Repeats (the median is quoted; with --scoring, of the cached fast path).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Score every candidate for every cell at the rig's sizes (946 x 128 and 1000 x 512,
    /// d = 19, T = 10): cached fast path, uncached lane path, f64 reference and numpy.
    /// --units/--features/--frames/--candidates/--pool/--threads are then ignored.
    #[arg(long)]
    pub scoring: bool,
    /// Python with numpy for the peer (default: $TWINLOOP_PYTHON, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

pub fn run(a: &DesignArgs) -> Result<()> {
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    match a.scoring {
        true => run_scoring(a),
        false => run_update_and_extrapolate(a),
    }
}

/// Random features standing in for the core's (the cost does not depend on their values).
struct SyntheticFeatures {
    dim: usize,
    frames: usize,
    values: Vec<f32>,
}

impl FeatureSource for SyntheticFeatures {
    fn dim(&self) -> usize {
        self.dim
    }

    fn frames(&self, _candidate: usize) -> usize {
        self.frames
    }

    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
        let n = out.len();
        let start = (candidate * 7919 + unit * 104_729) % (self.values.len() - n);
        out.copy_from_slice(&self.values[start..start + n]);
    }
}

/// (median, p99) of `v`, ms.
fn median_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let p99 = v[((0.99 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (v[v.len() / 2], p99)
}

fn run_update_and_extrapolate(a: &DesignArgs) -> Result<()> {
    if a.units == 0 || a.features < 2 || a.frames == 0 || a.candidates == 0 {
        bail!("--units, --frames and --candidates must be positive, --features at least 2");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let src = SyntheticFeatures {
        dim: a.features,
        frames: a.frames,
        values: (0..(a.frames * a.features * 64).max(1 << 16))
            .map(|_| rng.random_range(0.0..0.3f32))
            .collect(),
    };
    let cfg = PosteriorConfig::isotropic(a.features, 0.5);
    let mut post = Posterior::new(a.units, cfg).map_err(anyhow::Error::msg)?;
    // Some data first, so the covariances are not all the prior's.
    let mut x = vec![0.0f32; a.units * a.features];
    let mut y = vec![0.0f32; a.units];
    for _ in 0..3 {
        for v in x.iter_mut() {
            *v = rng.random_range(0.0..0.3f32);
        }
        for v in y.iter_mut() {
            *v = f32::from(rng.random_bool(0.1));
        }
        post.observe_threads(&x, &y, 1.0 / 30.0, a.threads);
    }
    let mut update = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        post.observe_threads(&x, &y, 1.0 / 30.0, a.threads);
        update.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let candidates: Vec<usize> = (0..a.candidates).collect();
    let mut scoring = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        let ig = &Criterion::InfoGain;
        let s = score(&post, &src, &candidates, ig, 1.0 / 30.0, a.threads)
            .map_err(anyhow::Error::msg)?;
        scoring.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(s.iter().all(|v| v.is_finite()), "non-finite scores");
    }
    let score_ms = median_p99(scoring).0;
    let per_pool_s = score_ms / a.candidates as f64 * a.pool as f64 / 1e3;
    println!(
        "design maths on {} thread(s): {} units x {} features, clips of {} frames",
        a.threads, a.units, a.features, a.frames
    );
    println!(
        "| posterior update, one imaging frame | {:.1} ms (median of {}) |",
        median_p99(update).0,
        a.repeats
    );
    println!(
        "| scoring {} candidates (information gain) | {:.0} ms, {:.2} ms per candidate |",
        a.candidates,
        score_ms,
        score_ms / a.candidates as f64
    );
    println!(
        "| scoring {} candidates, extrapolated | {per_pool_s:.1} s |",
        a.pool
    );
    Ok(())
}

/// The pretrained core's readout grid (`configs/sim.toml`: 6 × 10).
const GRID: (usize, usize) = (6, 10);

/// The rig's kind of source (`Features` in `stages/decide/design/designer/readouts.rs`): per
/// candidate and frame one core map of [`GRID`] positions × `dim − 3` channels shared by every
/// cell, sampled bilinearly at each cell's readout position, then the behaviour covariates
/// (the same for every cell and frame at one decision) and a bias of 1.
pub struct Maps {
    frames: usize,
    dim: usize,
    maps: Vec<f32>,
    /// Per unit: the 4 grid corners around its position and their bilinear weights.
    corners: Vec<([usize; 4], [f32; 4])>,
    behaviour: [f32; 2],
}

impl Maps {
    /// Core-like maps (`U(0, 0.6)`), random positions and behaviour.
    pub fn new(units: usize, cands: usize, frames: usize, dim: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
        let behaviour = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)];
        Maps {
            frames,
            dim,
            maps,
            corners,
            behaviour,
        }
    }

    /// The uncached trailing columns of every unit (behaviour, bias), for [`FeatureCache`].
    pub fn tails(&self) -> Vec<f32> {
        let [a, b] = self.behaviour;
        self.corners.iter().flat_map(|_| [a, b, 1.0]).collect()
    }

    /// Every (unit, candidate)'s features, `(units, candidates, frames, dim)`, for numpy.
    pub fn materialise(&self, cands: usize) -> Vec<f32> {
        let n = self.frames * self.dim;
        let mut out = vec![0.0; self.corners.len() * cands * n];
        for (k, chunk) in out.chunks_exact_mut(n).enumerate() {
            self.fill(k % cands, k / cands, chunk);
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
            rest[..2].copy_from_slice(&self.behaviour);
            rest[2] = 1.0;
        }
    }
}

/// Posteriors after 300 frames of random data (anisotropic `Σ`, rates of a few Hz).
pub fn learned_posterior(units: usize, dim: usize, seed: u64) -> Result<Posterior> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cfg = PosteriorConfig::isotropic(dim, 0.5);
    cfg.prior_mean[dim - 1] = 5f64.ln();
    let mut post = Posterior::new(units, cfg).map_err(anyhow::Error::msg)?;
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
    Ok(post)
}

/// This process's user + system CPU time in ms (`/proc/self/stat`, 10 ms ticks), or NaN: on a
/// shared machine, CPU time per round is what the work costs; wall time is what it cost then.
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
    match f[..] {
        [u, s] => (u + s) * 10.0,
        _ => f64::NAN,
    }
}

/// One timed path: (median, p99) wall ms over `rounds`, CPU ms per round, the last result.
struct Timed<T> {
    wall: (f64, f64),
    cpu: f64,
    last: T,
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> Result<T>) -> Result<Timed<T>> {
    let cpu0 = cpu_ms();
    let mut last = None;
    let mut ms = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        last = Some(f()?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timed {
        wall: median_p99(ms),
        cpu: (cpu_ms() - cpu0) / rounds.max(1) as f64,
        last: last.context("no round ran")?,
    })
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-300))
        .fold(0.0, f64::max)
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    data: &[T],
) -> Result<()> {
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

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The numpy peer's result for one dtype: (median, p90) ms and the scores.
pub struct NumpyRun {
    pub ms: (f64, f64),
    pub scores: Vec<f64>,
}

/// Runs `bench/design_criterion.py` with `python` on `features` (`(units, candidates, frames,
/// dim)`) and `post`'s means and covariances for `rounds` rounds: its float64 and float32 runs.
pub fn numpy_peer(
    python: &Path,
    features: &[f32],
    (u, c, t, d): (usize, usize, usize, usize),
    post: &Posterior,
    dt_s: f64,
    rounds: usize,
) -> Result<(NumpyRun, NumpyRun)> {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("twinloop_design_{}_{n}", std::process::id()));
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    let dir = TempDir(path);
    let shape = [u as u64, c as u64, t as u64, d as u64];
    write_npy(&dir.path().join("features.npy"), &shape, features)?;
    let means: Vec<f64> = (0..u).flat_map(|k| post.mean(k).to_vec()).collect();
    let covs: Vec<f64> = (0..u).flat_map(|k| post.cov(k).to_vec()).collect();
    write_npy(&dir.path().join("means.npy"), &[u as u64, d as u64], &means)?;
    let cov_shape = [u as u64, d as u64, d as u64];
    write_npy(&dir.path().join("covs.npy"), &cov_shape, &covs)?;
    std::fs::write(
        dir.path().join("meta.json"),
        format!("{{\"dt_s\": {dt_s}}}"),
    )?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/design_criterion.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .arg(rounds.to_string())
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {} (numpy needed: pip install numpy, or set TWINLOOP_PYTHON)",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}'s output", script.display()))?;
    let get = |k: &str| -> Result<NumpyRun> {
        let o = &v[k];
        let num = |f: &str| o[f].as_f64().with_context(|| format!("{k}.{f} in {v}"));
        let scores = o["scores"]
            .as_array()
            .with_context(|| format!("{k}.scores in {v}"))?
            .iter()
            .map(|x| x.as_f64().context("a score that is not a number"))
            .collect::<Result<_>>()?;
        Ok(NumpyRun {
            ms: (num("median_ms")?, num("p90_ms")?),
            scores,
        })
    };
    Ok((get("float64")?, get("float32")?))
}

/// The interpreter for the peers: `--python`, else `$TWINLOOP_PYTHON`, else `python3`.
fn python_of(a: &DesignArgs) -> PathBuf {
    a.python
        .clone()
        .or_else(|| std::env::var_os("TWINLOOP_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn run_scoring(a: &DesignArgs) -> Result<()> {
    let (dim, frames, cols, dt) = (19, 10, 16, 0.2);
    let python = python_of(a);
    let ig = &Criterion::InfoGain;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "d = {dim} ({cols} cached core channels, 2 behaviour, bias), T = {frames}, dt = {dt} s; \
         cached path {} rounds; load average at start: {}",
        a.repeats.max(1),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| cells x candidates | cached, 2 thr: median / p99 (CPU per round) | cached, 1 thr | \
         cache build, 2 thr | uncached lanes, 2 thr | f64 reference, 1 thr | numpy f64 | \
         numpy f32 | numpy f64 / cached 2 thr | max rel. diff to reference: cached, numpy f64, \
         numpy f32 | same best |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (units, cands) in [(946, 128), (1000, 512)] {
        let src = Maps::new(units, cands, frames, dim, units as u64 * 7 + cands as u64);
        let post = learned_posterior(units, dim, cands as u64)?;
        let tails = src.tails();
        let all: Vec<usize> = (0..cands).collect();
        let err = anyhow::Error::msg;
        let build = time(3, || {
            FeatureCache::build(&src, units, &all, cols, 2).map_err(err)
        })?;
        let cache = build.last;
        let fast = |threads| {
            time(a.repeats, || {
                cache
                    .info_gain(&post, &tails, dt, threads, None)
                    .map_err(err)
            })
        };
        let (two, one) = (fast(2)?, fast(1)?);
        let lanes = time(5, || score(&post, &src, &all, ig, dt, 2).map_err(err))?;
        let reference = time(3, || {
            score_reference(&post, &src, &all, ig, dt, 1).map_err(err)
        })?;
        let want = &reference.last;
        let cell = |t: (f64, f64)| format!("{:.1} / {:.1} ms", t.0, t.1);
        let features = src.materialise(cands);
        let dims = (units, cands, frames, dim);
        let (np64, np32, ratio, diffs) = match numpy_peer(&python, &features, dims, &post, dt, 3) {
            Ok((f64_run, f32_run)) => (
                cell(f64_run.ms),
                cell(f32_run.ms),
                format!("{:.0}x", f64_run.ms.0 / two.wall.0),
                format!(
                    "{:.1e}, {:.1e}, {:.1e}",
                    max_rel(&two.last, want),
                    max_rel(&f64_run.scores, want),
                    max_rel(&f32_run.scores, want)
                ),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "numpy peer not run");
                let diffs = format!("{:.1e}, -, -", max_rel(&two.last, want));
                ("not run".into(), "not run".into(), "-".into(), diffs)
            }
        };
        let same = argmax(&two.last) == argmax(want) && argmax(&lanes.last) == argmax(want);
        println!(
            "| {units} x {cands} | {} ({:.0} ms) | {} | {:.0} ms ({:.0} MB) | {} | {} | {np64} | \
             {np32} | {ratio} | {diffs} | {same} |",
            cell(two.wall),
            two.cpu,
            cell(one.wall),
            build.wall.0,
            cache.bytes() as f64 / 1e6,
            cell(lanes.wall),
            cell(reference.wall),
        );
    }
    Ok(())
}
