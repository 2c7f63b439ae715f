//! Ingest benchmark: 512x512 u16 two-photon frames through the daemon's real ZeroMQ ingest path
//! (a session with `source.kind = "bridge"`, grid extraction, no raw-frame recording), from a
//! pyzmq sender and from a zmq.rs sender in a separate process, against a pyzmq PUSH->PULL pair
//! moving the same frames (`bench/ingest.py`). See `bench/INGEST.md`.
//!
//! ```text
//! cargo build --release --example bench_ingest -p twinloop-rig
//! TWINLOOP_PYTHON=/path/to/python target/release/examples/bench_ingest [--runs 3 --frames 3000]
//! ```
//! Each path runs unpaced (as fast as the ack window allows: the most ingest sustains) and paced
//! at each `--rate` (frames/s: latency and loss at a fixed load), `--runs` times; the table has
//! medians.
//! `--send` turns this binary into the zmq.rs sender (the benchmark runs it as a child).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use futures::FutureExt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use twinloop_rig::backbone::telemetry::LatencySummary;
use twinloop_rig::config::{Config, Extraction, SourceKind};
use twinloop_rig::online::session::{self, Hooks};
use twinloop_rig::vocab::clock::host_monotonic_ns;
use twinloop_rig::vocab::protocol::{Dtype, Header, Message, Stream};
use zeromq::{PushSocket, Socket, SocketRecv, SocketSend, SubSocket, ZmqMessage};

#[derive(Parser, Debug, Clone)]
#[command(about = "twinloop ingest benchmark (see bench/INGEST.md)")]
struct Args {
    /// Be the zmq.rs sender (needs --ingest and --publish) instead of running the benchmark.
    #[arg(long)]
    send: bool,
    #[arg(long)]
    ingest: Option<String>,
    #[arg(long)]
    publish: Option<String>,
    /// Frames per measurement.
    #[arg(long, default_value_t = 3000)]
    frames: u64,
    /// Frame side (square frames, u16).
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Frames a sender may have unacknowledged (`source.flow_window`).
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Paced rates in frames/s for the latency runs, comma-separated (with --send: one rate,
    /// 0 = unpaced).
    #[arg(long, value_delimiter = ',', default_value = "1000,1500")]
    rate: Vec<f64>,
    /// Repetitions of every measurement (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Python with pyzmq and numpy (default: $TWINLOOP_PYTHON, else python3).
    #[arg(long)]
    python: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.send {
        // zmq.rs writes from a task of its own: give it a worker thread, so that pacing with a
        // (precise, blocking) thread sleep in the sending loop does not hold it up.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let report = rt.block_on(zmq_rs_sender(&args))?;
        println!("{report}");
        return Ok(());
    }
    bench(&args)
}

// ---------------------------------------------------------------------------------------------
// The zmq.rs sender (a separate process).

async fn zmq_rs_sender(args: &Args) -> Result<serde_json::Value> {
    let (Some(ingest), Some(publish)) = (&args.ingest, &args.publish) else {
        bail!("--send needs --ingest and --publish");
    };
    let mut sub = SubSocket::new();
    sub.connect(publish).await?;
    for topic in [Stream::Status, Stream::Ack] {
        sub.subscribe(topic.topic()).await?;
    }
    let mut acked: Option<u64> = None;
    // SUB first: the first heartbeat proves the subscription is live.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(m) = sub.recv().await
                && m.get(0).is_some_and(|t| t.as_ref() == b"status")
            {
                return;
            }
        }
    })
    .await
    .context("no status heartbeat within 10 s")?;
    let mut push = PushSocket::new();
    push.connect(ingest).await?;
    let hello = serde_json::json!({"event": "hello", "source": "bench_ingest --send"});
    send_retrying(
        &mut push,
        Message::json(Stream::Control, 0, 0, &hello).into(),
    )
    .await?;

    let side = args.size;
    let frames = test_frames(side as usize, 8);
    let rate = args.rate.first().copied().unwrap_or(0.0);
    let start = Instant::now();
    for k in 0..args.frames {
        if rate > 0.0 {
            // tokio's timer has 1 ms resolution: too coarse to pace 1,000 frames/s.
            let due = Duration::from_secs_f64(k as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        while k.saturating_sub(acked.map_or(0, |a| a + 1)) >= args.window as u64 {
            let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .with_context(|| format!("no ack for 5 s at frame {k}"))?;
            note_ack(m, &mut acked);
        }
        while let Some(m) = sub.recv().now_or_never() {
            note_ack(m, &mut acked);
        }
        let mut h = Header::new(
            Stream::TwoPhoton,
            Dtype::U16,
            &[side, side],
            k,
            k as i64 * 33_333_333,
        );
        h.aux = k as i64;
        h.sent_ns = host_monotonic_ns();
        let m = Message {
            header: h,
            payload: frames[k as usize % frames.len()].clone(),
        };
        push.send(m.into()).await?;
    }
    while acked.is_none_or(|a| a + 1 < args.frames) {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .context("no ack for the last frame within 5 s")?;
        note_ack(m, &mut acked);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let end = serde_json::json!({"event": "end", "frames": args.frames});
    push.send(Message::json(Stream::Control, 1, 0, &end).into())
        .await?;
    // zmq.rs has no linger: give `end` time to leave.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mb = (args.frames * side as u64 * side as u64 * 2) as f64 / 1e6;
    Ok(serde_json::json!({
        "sender": "zmq.rs", "frames": args.frames, "elapsed_s": elapsed,
        "fps": args.frames as f64 / elapsed, "mb_s": mb / elapsed,
    }))
}

fn note_ack(m: zeromq::ZmqResult<ZmqMessage>, acked: &mut Option<u64>) {
    let Ok(m) = m else { return };
    if let Ok(m) = Message::parse(&m.into_vec())
        && m.header.stream == Stream::Ack
    {
        *acked = Some(m.header.seq);
    }
}

/// zmq.rs PUSH refuses to send until a peer is connected: retry for up to 10 s.
async fn send_retrying(push: &mut PushSocket, m: ZmqMessage) -> Result<()> {
    let started = Instant::now();
    loop {
        match push.send(m.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(10) => bail!("send refused: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// `n` pseudo-random side x side frames (12-bit, little-endian u16).
fn test_frames(side: usize, n: usize) -> Vec<Bytes> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            let mut b = Vec::with_capacity(side * side * 2);
            for _ in 0..side * side {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.extend_from_slice(&((x >> 52) as u16).to_le_bytes());
            }
            Bytes::from(b)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    PyzmqToDaemon,
    ZmqRsToDaemon,
    PyzmqToPyzmq,
}

impl Path {
    const ALL: [Path; 3] = [Path::PyzmqToDaemon, Path::ZmqRsToDaemon, Path::PyzmqToPyzmq];

    fn name(self) -> &'static str {
        match self {
            Path::PyzmqToDaemon => "pyzmq -> twinloop daemon",
            Path::ZmqRsToDaemon => "zmq.rs -> twinloop daemon",
            Path::PyzmqToPyzmq => "pyzmq -> pyzmq PULL (baseline)",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    fps: f64,
    mb_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Frames sent but not processed (daemon) or not received (baseline).
    lost: u64,
    stage_skips: u64,
    gaps: u64,
    /// Daemon only: receive to handed on (ingest), arrival to activity, extraction compute.
    ingest_p99_us: f64,
    arrival_p99_us: f64,
    compute_p50_us: f64,
}

fn python(args: &Args) -> String {
    args.python
        .clone()
        .or_else(|| std::env::var("TWINLOOP_PYTHON").ok())
        .unwrap_or_else(|| "python3".into())
}

fn ingest_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/ingest.py")
}

fn bench(args: &Args) -> Result<()> {
    let py = python(args);
    let probe = Command::new(&py).args(["-c", "import zmq, numpy"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        bail!(
            "{py} cannot import pyzmq and numpy: `pip install pyzmq numpy` and set TWINLOOP_PYTHON"
        );
    }
    println!(
        "ingest benchmark: {} frames of {s}x{s} u16 per measurement, window {}, {} runs, paced at {:?} frames/s",
        args.frames,
        args.window,
        args.runs,
        args.rate,
        s = args.size
    );
    let mut results: Vec<(Path, f64, Vec<Sample>)> = Vec::new();
    for rate in std::iter::once(0.0).chain(args.rate.iter().copied()) {
        for path in Path::ALL {
            results.push((path, rate, Vec::new()));
        }
    }
    for run in 0..args.runs {
        for (path, rate, samples) in results.iter_mut() {
            let rate = *rate;
            let s = measure(args, &py, *path, rate)
                .with_context(|| format!("{} (run {}, rate {rate})", path.name(), run + 1))?;
            println!(
                "  run {} {:<32} {:<13} {:>7.0} frames/s {:>7.0} MB/s  p50 {:>7.1} us  p99 {:>8.1} us  lost {} skips {} gaps {}{}",
                run + 1,
                path.name(),
                load(rate),
                s.fps,
                s.mb_s,
                s.p50_us,
                s.p99_us,
                s.lost,
                s.stage_skips,
                s.gaps,
                if s.ingest_p99_us.is_nan() {
                    String::new()
                } else {
                    format!(
                        "  [p99 ingest {:.0} us, arrival->activity {:.0} us; compute p50 {:.0} us]",
                        s.ingest_p99_us, s.arrival_p99_us, s.compute_p50_us
                    )
                }
            );
            samples.push(s);
        }
    }
    print_table(args, &results);
    Ok(())
}

fn measure(args: &Args, py: &str, path: Path, rate: f64) -> Result<Sample> {
    let common = |cmd: &mut Command| {
        cmd.args(["--frames", &args.frames.to_string()])
            .args(["--window", &args.window.to_string()])
            .args(["--rate", &rate.to_string()]);
    };
    match path {
        Path::PyzmqToDaemon => daemon_run(args, |ingest, publish| {
            let mut c = Command::new(py);
            c.arg(ingest_py())
                .arg("send")
                .args(["--ingest", ingest, "--publish", publish]);
            c.args(["--size", &format!("{0}x{0}", args.size)]);
            common(&mut c);
            c
        }),
        Path::ZmqRsToDaemon => daemon_run(args, |ingest, publish| {
            let exe = std::env::current_exe().unwrap_or_else(|_| "bench_ingest".into());
            let mut c = Command::new(exe);
            c.arg("--send")
                .args(["--ingest", ingest, "--publish", publish]);
            c.args(["--size", &args.size.to_string()]);
            common(&mut c);
            c
        }),
        Path::PyzmqToPyzmq => {
            let mut rx = Command::new(py);
            rx.arg(ingest_py()).arg("receive");
            rx.args([
                "--size",
                &format!("{0}x{0}", args.size),
                "--window",
                &args.window.to_string(),
            ]);
            let mut receiver = rx
                .stdout(Stdio::piped())
                .spawn()
                .context("start the pyzmq receiver")?;
            let stdout = receiver.stdout.take().context("receiver stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().context("receiver printed nothing")??;
            let eps: serde_json::Value = serde_json::from_str(&first)?;
            let (ingest, publish) = (
                eps["ingest"].as_str().unwrap_or_default().to_owned(),
                eps["publish"].as_str().unwrap_or_default().to_owned(),
            );
            let mut tx = Command::new(py);
            tx.arg(ingest_py())
                .arg("send")
                .args(["--ingest", &ingest, "--publish", &publish]);
            tx.args(["--size", &format!("{0}x{0}", args.size)]);
            common(&mut tx);
            let sent = run_sender(tx)?;
            let last = lines.last().context("receiver printed no result")??;
            wait_timeout(&mut receiver, Duration::from_secs(10))?;
            let r: serde_json::Value = serde_json::from_str(&last)?;
            let received = r["frames_in"].as_u64().unwrap_or(0);
            Ok(Sample {
                fps: sent["fps"].as_f64().unwrap_or(0.0),
                mb_s: sent["mb_s"].as_f64().unwrap_or(0.0),
                p50_us: r["p50_us"].as_f64().unwrap_or(f64::NAN),
                p99_us: r["p99_us"].as_f64().unwrap_or(f64::NAN),
                lost: args.frames.saturating_sub(received),
                ingest_p99_us: f64::NAN,
                arrival_p99_us: f64::NAN,
                compute_p50_us: f64::NAN,
                ..Sample::default()
            })
        }
    }
}

/// A session on the daemon's real ingest path, with `sender(ingest, publish)` feeding it.
fn daemon_run(args: &Args, sender: impl FnOnce(&str, &str) -> Command) -> Result<Sample> {
    let out = tempfile::tempdir()?;
    let mut cfg = Config::default_sim();
    cfg.source.kind = SourceKind::Bridge;
    cfg.source.flow_window = args.window;
    cfg.source.idle_timeout_s = 10.0;
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.grid_block_px = 32;
    cfg.imaging.width = args.size;
    cfg.imaging.height = args.size;
    cfg.session.out_dir = out.path().to_path_buf();
    cfg.session.record_frames = false;
    cfg.session.progress = false;
    cfg.session.realtime = false;
    cfg.session.duration_s = 86_400.0; // the bridge ends the session; a day is the bound
    cfg.validate()?;
    let (tx, rx) = mpsc::channel();
    let hooks = Hooks {
        on_ready: Some(Box::new(
            move |_dir: &std::path::Path, ingest: &str, publish: &str| {
                let _ = tx.send((ingest.to_owned(), publish.to_owned()));
            },
        )),
        ..Hooks::default()
    };
    let daemon = std::thread::spawn(move || session::run(&cfg, vec!["bench_ingest".into()], hooks));
    let (ingest, publish) = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the daemon did not bind")?;
    let sent = run_sender(sender(&ingest, &publish));
    let summary = daemon
        .join()
        .map_err(|_| anyhow::anyhow!("session thread panicked"))??;
    let sent = sent?;
    let c = &summary.counters;
    let e2e = summary
        .latency("end to end")
        .context("no end-to-end latency")?;
    let p = |stage: &str, f: fn(&LatencySummary) -> f64| summary.latency(stage).map_or(f64::NAN, f);
    Ok(Sample {
        fps: sent["fps"].as_f64().unwrap_or(0.0),
        mb_s: sent["mb_s"].as_f64().unwrap_or(0.0),
        p50_us: e2e.p50_us,
        p99_us: e2e.p99_us,
        lost: args.frames.saturating_sub(c.frames_processed),
        stage_skips: c.stage_skips,
        gaps: c.gaps,
        ingest_p99_us: p("ingest", |l| l.p99_us),
        arrival_p99_us: p("extract (arrival", |l| l.p99_us),
        compute_p50_us: p("extract (compute", |l| l.p50_us),
    })
}

/// Run a sender to completion; its last stdout line is its JSON report.
fn run_sender(mut cmd: Command) -> Result<serde_json::Value> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the sender")?;
    wait_timeout(&mut child, Duration::from_secs(120))?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "sender failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("sender report {line:?}"))
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("timed out after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn load(rate: f64) -> String {
    if rate > 0.0 {
        format!("paced {rate}/s")
    } else {
        "unpaced".into()
    }
}

fn print_table(args: &Args, results: &[(Path, f64, Vec<Sample>)]) {
    let baseline = |rate: f64| {
        results
            .iter()
            .find(|(p, r, _)| *p == Path::PyzmqToPyzmq && *r == rate)
            .map(|(_, _, s)| median(s.iter().map(|s| s.fps).collect()))
            .unwrap_or(f64::NAN)
    };
    println!();
    println!(
        "medians of {} runs ({} frames each):",
        args.runs, args.frames
    );
    println!(
        "| path | load | frames/s | MB/s | p50 latency (us) | p99 latency (us) | lost | stage skips | gaps | frames/s vs pyzmq |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (path, rate, samples) in results {
        let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let fps = m(|s| s.fps);
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.2} |",
            path.name(),
            load(*rate),
            fps,
            m(|s| s.mb_s),
            m(|s| s.p50_us),
            m(|s| s.p99_us),
            samples.iter().map(|s| s.lost).sum::<u64>(),
            samples.iter().map(|s| s.stage_skips).sum::<u64>(),
            samples.iter().map(|s| s.gaps).sum::<u64>(),
            fps / baseline(*rate),
        );
    }
    println!(
        "(lost, stage skips and gaps are totals over all runs; latency: daemon = sender's sent_ns to activity ready, baseline = sent_ns to pixels copied)"
    );
}
