//! `twinloop bench imaging`: the online imaging pipeline at rig scale on the simulator's frames.
//!
//! ```text
//! twinloop bench imaging --python /work/venv-bench/bin/python
//! ```
//!
//! A simulated mouse (`--neurons` cells, brain motion on, `--size`² u16 frames at 30 Hz,
//! watching gratings that turn every second) is rendered up front. Then, on the same frames:
//!
//! 1. **Calibration** in line on one thread ([`PlaneCalibration::from_block`]: reference,
//!    registration of the block, cell detection, dF/F priming), and on the daemon's own
//!    calibration workers: two [`OnlinePipeline`]s (two planes) calibrating at once, timed from
//!    the block being full to the worker's result being picked up.
//! 2. **Per stage, one pinned core**: the calibration's parts driven one by one as
//!    [`PlanePipeline::process`] and the daemon's deconvolution bank drive them — registration
//!    (piecewise-rigid), rounding + fluorescence/dF/F, OASIS AR(1) bank — p50/p99 each, and
//!    deconvolution in ns per cell per frame.
//! 3. **In line, one pinned core**: [`OnlinePipeline::on_frame`], the code the daemon runs,
//!    per frame p50/p99.
//! 4. **Ring to emitted**: the real [`ExtractStage`] thread (pinned once calibrated) with a
//!    ring in front, frames pushed at `--rate` frames/s; latency from a frame's push (its
//!    `recv_ns`) to its activity being ready for the recorder, selector and bus.
//! 5. **Throughput on two cores**: the two calibrated pipelines, one per pinned thread, fed
//!    as fast as they take frames.
//! 6. **Peers** (with `--python`): a numpy implementation of suite2p's registration
//!    (`tests/fixtures/register/bench_numpy.py`, 512x512, rigid + 36 blocks + warp) and
//!    `oasis-deconv`'s `oasisAR1` (`tests/fixtures/oasis/bench_oasis.py`, 1,000 cells x 3,000
//!    frames), run as subprocesses in the same run; ratios of medians are printed.
//!
//! Speed is never asserted; the test below only checks the command runs at a tiny size.

use crate::backbone::frames::{Activity, Frame, FrameBuf, FrameMeta};
use crate::backbone::ring::{Pool, RingRx};
use crate::backbone::telemetry::LatencyHist;
use crate::sim::{SimConfig, SimGeometry, SimMouse};
use crate::stages::deconvolve::params::g_from_tau;
use crate::stages::deconvolve::{Ar1Params, BankConfig, DeconvolveBank, Params};
use crate::stages::extract::{ExtractStage, Extractor, OfflineTaps};
use crate::stages::imaging::{FrameOutput, ImagingParams, OnlinePipeline, PlaneCalibration};
use crate::vocab::clock::{RigTime, host_monotonic_ns};
use crate::vocab::protocol::{Dtype, Stream};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twinloop_calibration::imaging::kernels::round_to_u16;
use twinloop_calibration::imaging::register::Registrar;

mod paths;

#[derive(Debug, Clone, clap::Args)]
pub struct ImagingArgs {
    /// Frame side, px (frames are square, u16).
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Simulated neurons in the field of view.
    #[arg(long, default_value_t = 1000)]
    pub neurons: usize,
    /// Frames in the calibration block (`imaging.pipeline.cells.calibration_frames`).
    #[arg(long, default_value_t = 500)]
    pub calibration_frames: usize,
    /// Frames timed after calibration (each timing pass cycles through them).
    #[arg(long, default_value_t = 1000)]
    pub frames: usize,
    /// Rate at which frames are pushed into the extraction stage's ring, frames/s (the rig's
    /// 30 Hz by default: latency, not throughput, is measured there).
    #[arg(long, default_value_t = 30.0)]
    pub rate: f64,
    /// Simulated mouse seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Python with numpy and oasis-deconv for the peers (default: $TWINLOOP_PYTHON; none: the
    /// peers are skipped).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Directory holding the peers' scripts (`register/bench_numpy.py`, `oasis/bench_oasis.py`).
    #[arg(long, default_value = "tests/fixtures")]
    pub fixtures: PathBuf,
    /// Timed calls per mode of the registration peer.
    #[arg(long, default_value_t = 300)]
    pub peer_calls: usize,
    /// Runs of the deconvolution peer (median quoted).
    #[arg(long, default_value_t = 3)]
    pub peer_runs: usize,
}

const FS: f64 = 30.0;

/// Median and p99 of a histogram, µs.
fn p50_p99(h: &LatencyHist) -> (f64, f64) {
    let s = h.summary();
    (s.p50_us, s.p99_us)
}

/// Pins the calling thread (`tid` 0) or thread `tid` to one CPU; false where that is not
/// possible (then the figures are "one thread", not "one core").
fn pin(tid: i32, cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (tid, cpu);
        false
    }
}

/// The CPU's model name (`/proc/cpuinfo`), for the benchmark's record.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The simulated movie, frame-major, and the microscope's dark offset.
fn render(a: &ImagingArgs, n_frames: usize) -> Result<(Vec<u16>, f64)> {
    let geom = SimGeometry {
        imaging_width: a.size,
        imaging_height: a.size,
        imaging_rate_hz: FS,
        ..SimGeometry::default()
    };
    let cfg = SimConfig {
        seed: a.seed,
        neurons: a.neurons,
        ..SimConfig::default()
    };
    let mut mouse = SimMouse::new(&cfg, &geom).context("the simulated mouse")?;
    let movie = mouse.record_turning_gratings(&geom, n_frames);
    Ok((movie, cfg.microscope.offset_adu))
}

fn meta(size: usize, seq: u64) -> FrameMeta {
    FrameMeta {
        stream: Stream::TwoPhoton,
        seq,
        t: RigTime::from_secs_f64(seq as f64 / FS),
        plane: 0,
        channel: 0,
        frame_number: seq as i64,
        width: size as u32,
        height: size as u32,
        dtype: Dtype::U16,
        recv_ns: 0,
        sent_ns: 0,
        ..FrameBuf::with_capacity(0).meta
    }
}

fn make_frame(pool: &Pool<FrameBuf>, pixels: &[u16], meta: FrameMeta) -> Result<Frame> {
    let mut slot = pool
        .try_take()
        .context("no free frame slot (the pipeline holds them all)")?;
    slot.pixels[..pixels.len()].copy_from_slice(pixels);
    slot.len = pixels.len();
    slot.meta = meta;
    Ok(slot.freeze())
}

/// One `OnlinePipeline` fed its calibration block and polled until calibrated (the daemon's
/// worker thread does the work); returns it, the calibration time (block full to result picked
/// up) and the next sequence number.
fn calibrated_online(
    movie: &[u16],
    size: usize,
    params: &ImagingParams,
) -> Result<(OnlinePipeline, f64, u64)> {
    let px = size * size;
    let mut online = OnlinePipeline::new(params.clone(), size, size, 1, FS, None, None)?;
    let pool = Pool::new(4, || FrameBuf::with_capacity(px));
    let block = params.cells.calibration_frames;
    let mut emitted = 0usize;
    let mut count = |_: &FrameMeta, _: &FrameOutput<'_>| emitted += 1;
    let mut full = Instant::now();
    for (k, pixels) in movie.chunks_exact(px).take(block).enumerate() {
        let f = make_frame(&pool, pixels, meta(size, k as u64))?;
        full = Instant::now();
        online.on_frame(&f, &mut count);
    }
    let mut calibration_s;
    loop {
        calibration_s = full.elapsed().as_secs_f64();
        online.poll(&mut count);
        if online.cells() > 0 {
            break;
        }
        if calibration_s > 600.0 {
            bail!("calibration still running after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in online.take_notes() {
        if n["event"] == "imaging_calibration_failed" {
            bail!("imaging calibration failed: {}", n["error"]);
        }
    }
    Ok((online, calibration_s, block as u64))
}

struct Stages {
    register: LatencyHist,
    fluorescence: LatencyHist,
    deconvolve: LatencyHist,
    /// The bank alone over the same dF/F frames back to back (its state stays in cache).
    deconvolve_alone: LatencyHist,
    total: LatencyHist,
    cells: usize,
}

/// The pipeline's parts one by one on the calling thread, as `PlanePipeline::process` and the
/// online bank run them.
fn time_stages(
    calibration: PlaneCalibration,
    frames: &[u16],
    size: usize,
    params: &ImagingParams,
) -> Result<Stages> {
    let px = size * size;
    let PlaneCalibration {
        reference,
        mut extractor,
        ..
    } = calibration;
    let mut registrar = Registrar::new(&reference, size, size, &params.registration)?;
    let cells = extractor.cells();
    // As `OnlinePipeline` builds its bank: AR(1), λ = 0, pools settled after `settle_frames`.
    let g = g_from_tau(params.tau_decay_s, FS)?;
    let new_bank = || {
        DeconvolveBank::uniform(
            cells,
            Params::Ar1(Ar1Params::new(g, 0.0, 0.0)?),
            BankConfig {
                max_lag: Some(params.settle_frames.max(1)),
                bridge_max_frames: params.bridge_gap_frames,
            },
        )
    };
    let mut bank = new_bank()?;
    let mut dff_frames: Vec<f32> = Vec::with_capacity(frames.len() / px * cells);
    let mut registered = vec![0f32; px];
    let mut rounded = vec![0u16; px];
    let mut spikes = vec![0f32; cells];
    let mut s = Stages {
        register: LatencyHist::new("register"),
        fluorescence: LatencyHist::new("fluorescence"),
        deconvolve: LatencyHist::new("deconvolve"),
        deconvolve_alone: LatencyHist::new("deconvolve alone"),
        total: LatencyHist::new("total"),
        cells,
    };
    for frame in frames.chunks_exact(px) {
        let t0 = host_monotonic_ns();
        registrar.register(frame, &mut registered)?;
        let t1 = host_monotonic_ns();
        round_to_u16(&registered, &mut rounded, registrar.simd());
        extractor.process(&rounded)?;
        let t2 = host_monotonic_ns();
        bank.push_frame(extractor.dff(), &mut spikes)?;
        let t3 = host_monotonic_ns();
        s.register.record_ns(t1 - t0);
        s.fluorescence.record_ns(t2 - t1);
        s.deconvolve.record_ns(t3 - t2);
        s.total.record_ns(t3 - t0);
        dff_frames.extend_from_slice(extractor.dff());
    }
    let mut bank = new_bank()?;
    for dff in dff_frames.chunks_exact(cells.max(1)) {
        let t0 = host_monotonic_ns();
        bank.push_frame(dff, &mut spikes)?;
        s.deconvolve_alone.record_ns(host_monotonic_ns() - t0);
    }
    Ok(s)
}

/// `OnlinePipeline::on_frame` per frame on the calling thread; returns the histogram and the
/// next sequence number.
fn time_online(
    online: &mut OnlinePipeline,
    frames: &[u16],
    size: usize,
    mut seq: u64,
) -> Result<(LatencyHist, u64)> {
    let px = size * size;
    let pool = Pool::new(4, || FrameBuf::with_capacity(px));
    let mut hist = LatencyHist::new("on_frame");
    let mut emitted = 0u64;
    for pixels in frames.chunks_exact(px) {
        let f = make_frame(&pool, pixels, meta(size, seq))?;
        seq += 1;
        let before = emitted;
        let t0 = host_monotonic_ns();
        online.on_frame(&f, &mut |_, _| emitted += 1);
        hist.record_ns(host_monotonic_ns() - t0);
        if emitted != before + 1 {
            bail!(
                "frame {} gave {} activities, not 1",
                seq - 1,
                emitted - before
            );
        }
    }
    Ok((hist, seq))
}

/// Frames per second of one pipeline fed as fast as it takes them (wall clock), and its
/// per-frame times.
fn throughput(
    online: &mut OnlinePipeline,
    frames: &[u16],
    size: usize,
    seq: u64,
) -> Result<(f64, LatencyHist)> {
    let px = size * size;
    let n = frames.len() / px;
    let started = Instant::now();
    let (hist, _) = time_online(online, frames, size, seq)?;
    Ok((n as f64 / started.elapsed().as_secs_f64(), hist))
}

/// The stage's three outputs, drained; latency of the stamped frames.
struct Collector {
    collected: RingRx<Activity>,
    selected: RingRx<Activity>,
    published: RingRx<Activity>,
    latency: LatencyHist,
    received: usize,
}

impl Collector {
    fn drain(&mut self) {
        while let Some(act) = self.collected.try_pop() {
            self.received += 1;
            if act.frame.recv_ns > 0 {
                self.latency.record_ns(act.ready_ns - act.frame.recv_ns);
            }
        }
        while self.selected.try_pop().is_some() {}
        while self.published.try_pop().is_some() {}
    }
}

struct RingRun {
    latency: LatencyHist,
    calibration_s: f64,
    pinned: bool,
}

/// The extraction stage's own thread with a ring in front, as the daemon (and replay) run it.
fn time_stage(movie: &[u16], a: &ImagingArgs, params: &ImagingParams) -> Result<RingRun> {
    let (size, block) = (a.size, a.calibration_frames);
    let px = size * size;
    let online = OnlinePipeline::new(params.clone(), size, size, 1, FS, None, None)?;
    let extractor = Extractor::Pipeline(Box::new(online));
    let frame_pool = Pool::new(64, || FrameBuf::with_capacity(px));
    let (stage, taps) = ExtractStage::offline(extractor, 256);
    let OfflineTaps {
        input: mut to_stage,
        recorder: collected,
        selector: selected,
        bus: published,
    } = taps;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let stage_h = std::thread::Builder::new()
        .name("bench-extract".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            #[cfg(not(target_os = "linux"))]
            let _ = tid_tx.send(-1);
            stage.run()
        })?;
    let tid = tid_rx.recv().context("the stage thread did not start")?;
    let mut out = Collector {
        collected,
        selected,
        published,
        latency: LatencyHist::new("ring to emitted"),
        received: 0,
    };
    // Waits for ring space and a frame slot while draining the outputs (the stage waits on a
    // full recorder ring, so not draining here would stall it).
    let mut push = |out: &mut Collector, k: usize, seq: u64, stamp: bool| {
        let pixels = &movie[(k * px)..((k + 1) * px)];
        loop {
            if !to_stage.is_full()
                && let Some(mut slot) = frame_pool.try_take()
            {
                slot.pixels[..px].copy_from_slice(pixels);
                slot.len = px;
                slot.meta = meta(size, seq);
                if stamp {
                    slot.meta.recv_ns = host_monotonic_ns();
                }
                // Not full, and this thread is the only producer: the push succeeds.
                let _ = to_stage.try_push(slot.freeze());
                return;
            }
            out.drain();
            std::thread::sleep(Duration::from_micros(50));
        }
    };
    // The calibration block (unstamped), then wait for its backlog to come out.
    let started = Instant::now();
    for k in 0..block {
        push(&mut out, k, k as u64, false);
        out.drain();
    }
    let full = Instant::now();
    while out.received < block {
        out.drain();
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the stage's calibration gave no activity after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let calibration_s = full.elapsed().as_secs_f64();
    let pinned = pin(tid, 0);
    let period = Duration::from_secs_f64(1.0 / a.rate);
    let t0 = Instant::now();
    for i in 0..a.frames {
        let due = t0 + period * i as u32;
        while Instant::now() < due {
            out.drain();
            std::thread::sleep(
                Duration::from_micros(200).min(due.saturating_duration_since(Instant::now())),
            );
        }
        push(&mut out, block + i, (block + i) as u64, true);
    }
    drop(to_stage);
    while out.received < block + a.frames {
        out.drain();
        if stage_h.is_finished() {
            out.drain();
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = stage_h.join();
    let received = out.received;
    if received != block + a.frames {
        bail!(
            "the stage emitted {received} activities for {} frames",
            block + a.frames
        );
    }
    Ok(RingRun {
        latency: out.latency,
        calibration_s,
        pinned,
    })
}

/// The number after `median` on the first line of `out` that starts with `label`.
fn peer_median(out: &str, label: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.trim_start().starts_with(label))?
        .split_whitespace()
        .skip_while(|w| *w != "median")
        .nth(1)?
        .parse()
        .ok()
}

fn run_peer(python: &Path, script: &Path, args: &[String]) -> Result<String> {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fmt_ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

pub fn run(a: &ImagingArgs) -> Result<()> {
    let python = a
        .python
        .clone()
        .or_else(|| std::env::var_os("TWINLOOP_PYTHON").map(PathBuf::from));
    run_with(a, python.as_deref())
}

/// The benchmark; the peers run with `python` (none: skipped).
fn run_with(a: &ImagingArgs, python: Option<&Path>) -> Result<()> {
    if a.size < 64 || a.neurons == 0 || a.frames == 0 || !a.rate.is_finite() || a.rate <= 0.0 {
        bail!("--size must be at least 64, --neurons and --frames at least 1, --rate positive");
    }
    if a.calibration_frames < 100 {
        bail!("--calibration-frames must be at least 100 (cell detection's min_frames)");
    }
    let (size, block) = (a.size, a.calibration_frames);
    let px = size * size;
    // A bad `TWINLOOP_SIMD` stops here, named, rather than being logged and ignored.
    let isa = twinloop_calibration::simd::init()?;
    let load_start = load_average();
    let started = Instant::now();
    let (movie, dark) = render(a, block + a.frames)?;
    let render_s = started.elapsed().as_secs_f64();
    let (block_px, timed) = movie.split_at(block * px);
    // A session's pipeline, as configs/sim.toml runs it (no ROI classifier).
    let mut params = ImagingParams::as_configured();
    params.cells.calibration_frames = block;
    params.fluorescence.dark_offset_adu = dark;
    tracing::info!(
        frames = block + a.frames,
        s = render_s,
        "movie rendered; calibrating in line"
    );

    // 1. Calibration, in line on this thread.
    let t = Instant::now();
    let frames: Vec<&[u16]> = block_px.chunks_exact(px).collect();
    let calibration = PlaneCalibration::from_block(&frames, size, size, FS, &params, None)
        .context("calibrating from the simulated block")?;
    let inline_calibration_s = t.elapsed().as_secs_f64();
    let detected = calibration.masks.len();

    // Registration per instruction-set path, interleaved (same frames, same load).
    let by_path = std::thread::scope(|s| {
        s.spawn(|| {
            pin(0, 0);
            paths::time_paths(&calibration.reference, timed, size, &params.registration)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the timing thread panicked"))?
    })?;

    // 2. Per stage on one pinned core.
    tracing::info!(cells = detected, "timing each stage on one core");
    let stages = std::thread::scope(|s| {
        s.spawn(|| {
            let pinned = pin(0, 0);
            time_stages(calibration, timed, size, &params).map(|st| (st, pinned))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the timing thread panicked"))?
    })?;
    let (stages, pinned_stages) = stages;

    // Two daemon pipelines calibrating at once on their workers (two planes).
    tracing::info!("calibrating two online pipelines at once (the daemon's workers)");
    let (mut pa, mut pb) = std::thread::scope(|s| {
        let ha = s.spawn(|| calibrated_online(&movie, size, &params));
        let hb = s.spawn(|| calibrated_online(&movie, size, &params));
        let a = ha
            .join()
            .map_err(|_| anyhow::anyhow!("calibration panicked"));
        let b = hb
            .join()
            .map_err(|_| anyhow::anyhow!("calibration panicked"));
        Ok::<_, anyhow::Error>((a??, b??))
    })?;
    let daemon_calibration_s = pa.1.max(pb.1);

    // 3. OnlinePipeline::on_frame in line on one pinned core.
    tracing::info!("timing OnlinePipeline::on_frame on one core");
    let (online, pinned_online, next_a) = std::thread::scope(|s| {
        s.spawn(|| {
            let pinned = pin(0, 0);
            time_online(&mut pa.0, timed, size, pa.2).map(|(h, n)| (h, pinned, n))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the timing thread panicked"))?
    })?;

    // 5. Throughput on two cores (before the ring run frees nothing: both pipelines are ready).
    tracing::info!("throughput: two pipelines on two pinned threads");
    let (fa, fb) = std::thread::scope(|s| {
        let next_b = pb.2;
        let (oa, ob) = (&mut pa.0, &mut pb.0);
        let ha = s.spawn(move || {
            pin(0, 0);
            throughput(oa, timed, size, next_a)
        });
        let hb = s.spawn(move || {
            pin(0, 1);
            throughput(ob, timed, size, next_b)
        });
        let a = ha
            .join()
            .map_err(|_| anyhow::anyhow!("throughput panicked"));
        let b = hb
            .join()
            .map_err(|_| anyhow::anyhow!("throughput panicked"));
        Ok::<_, anyhow::Error>((a??, b??))
    })?;
    drop((pa, pb));

    // 4. The extraction stage's thread with a ring in front.
    tracing::info!(
        rate = a.rate,
        "ring to emitted: the extraction stage's thread"
    );
    let ring_run = time_stage(&movie, a, &params)?;
    drop(movie);

    // 6. Peers.
    let peers = match python {
        Some(py) => {
            tracing::info!(python = %py.display(), "peers: numpy suite2p registration, oasis-deconv");
            let reg = run_peer(
                py,
                &a.fixtures.join("register/bench_numpy.py"),
                &["--calls".into(), a.peer_calls.to_string()],
            )?;
            let oasis = run_peer(
                py,
                &a.fixtures.join("oasis/bench_oasis.py"),
                &["--runs".into(), a.peer_runs.to_string()],
            )?;
            Some((
                peer_median(&reg, "rigid + 36 blocks + warp").context(
                    "the registration peer's output has no `rigid + 36 blocks + warp` median",
                )?,
                peer_median(&oasis, "oasisAR1 lam=0 ")
                    .context("the oasis peer's output has no `oasisAR1 lam=0` median")?,
            ))
        }
        None => None,
    };
    let load_end = load_average();

    let cells = stages.cells.max(1) as f64;
    let (d50, d99) = p50_p99(&stages.deconvolve);
    let (da50, da99) = p50_p99(&stages.deconvolve_alone);
    let ((fa, ha), (fb, hb)) = (fa, fb);
    // What the two cores sustain when nothing else runs on them: 1 / median frame time each.
    let median_rate = 1e6 / ha.summary().p50_us + 1e6 / hb.summary().p50_us;
    let one_core = |pinned: bool| {
        if pinned {
            "one pinned core"
        } else {
            "one thread"
        }
    };
    println!(
        "imaging pipeline at rig scale: {size}x{size} u16, {} simulated neurons, {} cells detected, piecewise-rigid on, one plane, {} timed frames; load average {load_start} (start), {load_end} (end)",
        a.neurons, detected, a.frames
    );
    println!(
        "kernels: {isa} path ({}; the CPU supports {}); CPU: {}",
        if std::env::var_os(twinloop_calibration::simd::ENV_VAR).is_some() {
            "forced by TWINLOOP_SIMD"
        } else {
            "detected"
        },
        twinloop_calibration::simd::Isa::supported_paths()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", "),
        cpu_model()
    );
    println!(
        "calibration ({block} frames): {inline_calibration_s:.2} s in line on one thread; {daemon_calibration_s:.2} s on the daemon's workers with two planes at once; {:.2} s in the extraction stage (to the backlog's last activity); movie rendered in {render_s:.1} s",
        ring_run.calibration_s
    );
    println!();
    println!("| measure | where | p50 (ms) | p99 (ms) |");
    println!("|---|---|---:|---:|");
    let row = |name: &str, at: &str, h: &LatencyHist| {
        let (p50, p99) = p50_p99(h);
        println!("| {name} | {at} | {} | {} |", fmt_ms(p50), fmt_ms(p99));
    };
    row(
        "registration (rigid + blocks + warp)",
        one_core(pinned_stages),
        &stages.register,
    );
    row(
        "round + fluorescence + dF/F",
        one_core(pinned_stages),
        &stages.fluorescence,
    );
    row(
        "deconvolution (OASIS AR(1) bank)",
        one_core(pinned_stages),
        &stages.deconvolve,
    );
    row("sum of the stages", one_core(pinned_stages), &stages.total);
    row(
        "`OnlinePipeline::on_frame`",
        one_core(pinned_online),
        &online,
    );
    row(
        &format!("ring to emitted, {} frames/s pushed", a.rate),
        &format!("extraction stage thread, {}", one_core(ring_run.pinned)),
        &ring_run.latency,
    );
    println!();
    println!(
        "deconvolution: {:.1} ns per cell per frame in the pipeline (p50; p99 {:.1}), {:.1} (p50; p99 {:.1}) alone over the same dF/F, {} cells",
        d50 * 1e3 / cells,
        d99 * 1e3 / cells,
        da50 * 1e3 / cells,
        da99 * 1e3 / cells,
        stages.cells
    );
    println!(
        "throughput, two pipelines on two pinned threads: {:.0} frames/s wall clock ({fa:.0} + {fb:.0}); {median_rate:.0} frames/s from the median frame times ({} and {} ms)",
        fa + fb,
        fmt_ms(ha.summary().p50_us),
        fmt_ms(hb.summary().p50_us),
    );
    println!();
    println!("| registration + rounding, paths interleaved frame by frame | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|");
    for (path, p50, p99) in &by_path {
        println!("| {} | {} | {} |", path.isa(), fmt_ms(*p50), fmt_ms(*p99));
    }
    match peers {
        Some((reg_ms, oasis_ns)) => {
            let (r50, _) = p50_p99(&stages.register);
            let ours_ns = da50 * 1e3 / cells;
            println!();
            println!("| peer (same run) | peer median | twinloop median | ratio peer/twinloop |");
            println!("|---|---:|---:|---:|");
            println!(
                "| numpy suite2p registration, rigid + 36 blocks + warp, 512x512 | {reg_ms:.2} ms | {} ms | {:.1}x |",
                fmt_ms(r50),
                reg_ms * 1e3 / r50
            );
            println!(
                "| oasis-deconv oasisAR1 λ=0 (offline, 1,000 x 3,000) vs the online bank alone | {oasis_ns:.1} ns/cell/frame | {ours_ns:.1} ns/cell/frame | {:.2}x |",
                oasis_ns / ours_ns
            );
        }
        None => println!("peers skipped (no --python and no $TWINLOOP_PYTHON)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command runs end to end at a tiny size (so it cannot rot); nothing about speed.
    #[test]
    fn bench_imaging_runs_at_a_tiny_size() {
        let args = ImagingArgs {
            size: 96,
            neurons: 40,
            calibration_frames: 120,
            frames: 20,
            rate: 500.0,
            seed: 2,
            python: None,
            fixtures: PathBuf::from("tests/fixtures"),
            peer_calls: 1,
            peer_runs: 1,
        };
        // No peers: CI's Python has no oasis-deconv, whatever $TWINLOOP_PYTHON says.
        run_with(&args, None).expect("bench imaging at a tiny size");
    }

    #[test]
    fn peer_medians_are_read_from_the_scripts_output() {
        let reg = "rigid shift estimate               median   2.000 ms  p99   6.000 ms  max 9.000 ms\n\
                   rigid + 36 blocks + warp           median  13.600 ms  p99  23.000 ms  max 40.000 ms\n";
        assert_eq!(peer_median(reg, "rigid + 36 blocks + warp"), Some(13.6));
        let oasis = "oasisAR1 lam=0     median     38.2 ns/cell/frame  (runs: 38.1 38.2)\n\
                     oasisAR1 lam=0.2   median     38.5 ns/cell/frame  (runs: 38.4)\n";
        assert_eq!(peer_median(oasis, "oasisAR1 lam=0 "), Some(38.2));
        assert_eq!(peer_median(oasis, "oasisAR2"), None);
    }
}
