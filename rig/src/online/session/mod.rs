//! A session: build the pipeline from a config, run it to the end, and summarise.
//!
//! # Threads (see `docs/ARCHITECTURE.md`)
//! - `ingest`: the PULL socket (libzmq) and [`Ingest`].
//! - `publish`: the PUB socket (libzmq): heartbeats and acks keep flowing while ingest waits on
//!   a slow recorder.
//! - `extract`: the imaging stage.
//! - `recorder`: the session log.
//! - `selector` and `renderer`: the next trial, and the display.
//! - `sim-rig` (simulated sessions only): the simulated mouse behind its own sockets.
//!
//! The pipeline is built and its threads started in one place ([`wiring`]). Shutdown flows
//! downstream: ingest ends (source's `end`, duration, idle or Ctrl-C) and drops
//! its ring producers; each stage drains its rings and drops its own; the recorder and the
//! publisher stop last.

pub mod live_twin;
mod space;
mod summary;
pub mod wiring;

pub use summary::SessionSummary;
pub use wiring::{Pipeline, PipelineParts, Running, ThreadStart};

use crate::backbone::session_log::{Manifest, SessionDir};
use crate::backbone::telemetry::LatencyHist;
use crate::config::{Config, Extraction, SourceKind};
use crate::online::dashboard::{Dashboard, DashboardConfig};
use crate::online::sinks::event_bus;
use crate::online::sources::zmq_ingest::{self, IngestEnd};
use crate::sim::SimMouse;
use crate::sim::bridge::{SimRigOptions, SimRigReport};
use crate::stages::clocks::DomainSummary;
use crate::stages::decide::build_selector;
use crate::stages::extract::{Extractor, build_extractor};
use crate::vocab::scan::{CellPlace, ScanOffsets, ScanSlot};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("session directory: {0}")]
    Dir(#[from] crate::backbone::session_log::SessionError),
    #[error("session log: {0}")]
    Log(#[from] crate::backbone::session_log::LogError),
    #[error("cannot bind {what} on {endpoint}: {source} (is another daemon using it?)")]
    Bind {
        what: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
    #[error("simulated rig: {0}")]
    Sim(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid config: {0}")]
    Config(String),
    #[error("thread {0} panicked")]
    Panicked(&'static str),
}

/// The signals that end a session cleanly.
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Called with the session directory, the ingest endpoint and the publish endpoint.
pub type ReadyHook = Box<dyn FnOnce(&std::path::Path, &str, &str) + Send>;

/// Callbacks a caller may want while the session runs (the progress bar, tests).
#[derive(Default)]
pub struct Hooks {
    /// Called with the session directory and the bound endpoints once sockets are up.
    pub on_ready: Option<ReadyHook>,
    /// Called at the start of every thread of the session, with its name.
    pub on_thread_start: Option<ThreadStart>,
}

/// The in-process simulator's idle watchdog (seconds): only a wedged simulator meets it.
const SIM_IDLE_S: f64 = 300.0;

pub fn run(
    cfg: &Config,
    command_line: Vec<String>,
    hooks: Hooks,
) -> Result<SessionSummary, SessionError> {
    let wall = Instant::now();
    let created = SystemTime::now();
    let dir = SessionDir::create(&cfg.session.out_dir, &cfg.session.name, created)?;
    let _span = tracing::info_span!("session", dir = %dir.path().display()).entered();
    let config_value = serde_json::to_value(cfg)
        .map_err(|e| SessionError::Config(format!("the config cannot be encoded as JSON: {e}")))?;
    let mut manifest = Manifest::new(created, command_line, config_value);
    manifest.seeds.insert("session".into(), cfg.session.seed);
    let twin = cfg
        .source_twin()
        .map_err(|e| SessionError::Config(e.to_string()))?;
    if let (Some(t), Some(c)) = (&twin, &cfg.source.twin) {
        manifest.twin = serde_json::to_value(&t.identity).ok();
        manifest.seeds.insert("twin".into(), c.seed);
    }
    if let Some(seed) = serde_json::to_value(&cfg.sim)
        .ok()
        .and_then(|v| v.get("seed")?.as_u64())
    {
        manifest.seeds.insert("sim".into(), seed);
    }
    dir.write_manifest(&manifest)?;
    space::check(dir.path(), cfg);
    // The log's first record is the manifest too, so every tool works from the log alone.
    let writer = dir.create_log_with_manifest(&manifest)?;

    // The simulated mouse is built first: its true footprints feed the baseline extraction.
    let mouse = match (cfg.source.kind, twin, &cfg.source.twin) {
        (SourceKind::Bridge, ..) => None,
        (_, Some(t), Some(c)) => Some(SimMouse::with_twin(&cfg.sim, &cfg.sim_geometry(), c, t)),
        _ => Some(SimMouse::with_planes(
            &cfg.sim,
            &cfg.sim_geometry(),
            cfg.imaging.planes.into(),
        )),
    }
    .transpose()
    .map_err(|e| SessionError::Sim(e.to_string()))?;
    if let Some(m) = &mouse {
        // Written now, not only at the end, so a killed session can still be replayed.
        for plane in 0..m.planes() {
            let truth = crate::sim::truth::plane_dir(&dir.truth_dir(), plane);
            std::fs::create_dir_all(&truth)?;
            std::fs::write(
                truth.join("cells.json"),
                serde_json::to_vec(m.plane_cells(plane)).map_err(|e| {
                    SessionError::Sim(format!("the true cells cannot be encoded as JSON: {e}"))
                })?,
            )?;
        }
    }
    let mut extractor = build_extractor(
        &cfg.imaging,
        || Ok(mouse.as_ref().map(true_masks).unwrap_or_default()),
        Some(dir.path().join("calibration")),
    )
    .map_err(SessionError::Config)?;
    let scan = scan_slot(cfg, &mut extractor, mouse.as_ref());
    let selector = build_selector(&cfg.decide_setup())
        .map_err(|e| SessionError::Config(format!("trials: {e}")))?;
    let dashboard = start_dashboard(cfg);
    let pipeline = Pipeline::build(
        cfg,
        PipelineParts {
            writer,
            extractor,
            scan,
            selector,
            dashboard: dashboard.as_ref().map(|d| d.feed()),
        },
    )?;
    let on_start = hooks.on_thread_start.unwrap_or_else(|| Arc::new(|_| {}));
    let (running, mut ingest, publisher) = pipeline.spawn(on_start)?;
    let shared = running.shared.clone();

    // libzmq refuses message parts larger than the largest legal one (a frame, with margin).
    let frame_px = (cfg.imaging.width * cfg.imaging.height) as usize;
    let eye_px = (cfg.eye.width * cfg.eye.height) as usize;
    let max_part_bytes = (frame_px * 2).max(eye_px).max(1 << 20) + 4096;
    let zmq_ctx = zmq::Context::new();
    // SIGINT (Ctrl-C), SIGTERM (`kill`, systemd, docker, `timeout`) and SIGHUP (a closed
    // terminal) all end the session cleanly: ingest stops, everything drains, the summary is
    // written, and the signal is named in it.
    let stop = Arc::clone(&shared.stop);
    let signal = Arc::new(AtomicUsize::new(0));
    let handlers = arm_stop_signals(&stop, &signal);
    let unregister = || disarm(&handlers);

    // The publisher has a thread of its own, so heartbeats and acks keep flowing while ingest
    // waits on a slow recorder.
    let bound = event_bus::bind_pub(&zmq_ctx, &cfg.source.publish, max_part_bytes)
        .map_err(|source| SessionError::Bind {
            what: "publish (PUB)",
            endpoint: cfg.source.publish.clone(),
            source,
        })
        .and_then(|p| {
            let i = zmq_ingest::bind_pull(&zmq_ctx, &cfg.source.ingest, max_part_bytes).map_err(
                |source| SessionError::Bind {
                    what: "ingest (PULL)",
                    endpoint: cfg.source.ingest.clone(),
                    source,
                },
            )?;
            Ok((p, i))
        });
    let ((pub_sock, pub_ep), (pull_sock, pull_ep)) = match bound {
        Ok(b) => b,
        Err(e) => {
            // Nothing will arrive: let every thread drain and stop before reporting.
            drop((ingest, publisher));
            shared.stop_renderer();
            let _ = running.join_all();
            unregister();
            return Err(e);
        }
    };
    let publish_h = running.spawn("publish", move || publisher.run(pub_sock));

    // Ingest thread: receive until the source is done, then close the rings.
    let idle = match cfg.source.kind {
        // The in-process simulator ends the session itself, and a failed simulator stops it
        // (below); a loaded machine can starve it for longer than a bridge's idle timeout, which
        // must not end a simulated session early. The watchdog stays, for a wedged simulator.
        SourceKind::Sim | SourceKind::Twin => {
            Duration::from_secs_f64(cfg.source.idle_timeout_s.max(SIM_IDLE_S))
        }
        SourceKind::Bridge => Duration::from_secs_f64(cfg.source.idle_timeout_s),
    };
    let duration_ns = match cfg.source.kind {
        // The simulated rig ends the session itself, after exactly `duration_s` of frames.
        SourceKind::Sim | SourceKind::Twin => i64::MAX,
        SourceKind::Bridge => (cfg.session.duration_s * 1e9) as i64 - cfg.frame_period_ns(),
    };
    let io_shared = shared.clone();
    let ingest_stop = Arc::clone(&stop);
    let io_h = running.spawn(
        "ingest",
        move || -> (IngestEnd, LatencyHist, Vec<DomainSummary>) {
            let end = zmq_ingest::run(&pull_sock, &mut ingest, &ingest_stop, idle, duration_ns);
            if end == IngestEnd::Stopped {
                tracing::warn!("interrupted: ending the session after draining");
            }
            tracing::info!(?end, "ingest ended");
            // Before the rings close: the recorder writes it in the log's `End` record.
            let how = serde_json::to_value(end)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{end:?}"));
            let _ = io_shared.session_end.set(how);
            let latency = ingest.latency().clone();
            let clocks = ingest.clock_summary();
            // Dropping ingest closes its rings: every stage drains and stops in turn.
            drop(ingest);
            drop(pull_sock);
            io_shared.stop_renderer();
            (end, latency, clocks)
        },
    );

    tracing::info!(ingest = %pull_ep, publish = %pub_ep, "daemon listening");
    if let Some(hook) = hooks.on_ready {
        hook(dir.path(), &pull_ep, &pub_ep);
    }
    let sim_h = match mouse {
        Some(mouse) if io_h.is_ok() => {
            let opts = SimRigOptions {
                ingest: pull_ep.clone(),
                publish: pub_ep.clone(),
                duration_s: cfg.session.duration_s,
                realtime: cfg.session.realtime,
                flow_window: cfg.source.flow_window,
                geometry: cfg.sim_geometry(),
                truth_dir: Some(dir.truth_dir()),
                view_timeout: Duration::from_secs(2),
            };
            let stop = Arc::clone(&stop);
            Some(
                running.spawn("sim-rig", move || -> Result<SimRigReport, SessionError> {
                    let ran = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(SessionError::from)
                        .and_then(|rt| {
                            rt.block_on(crate::sim::bridge::run(mouse, opts))
                                .map_err(|e| SessionError::Sim(e.to_string()))
                        });
                    if ran.is_err() {
                        // Nothing more will arrive: end the session now, not at the watchdog.
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    ran
                }),
            )
        }
        _ => None,
    };

    let progress = summary::Progress::start(
        cfg,
        Arc::clone(&shared.counters),
        Arc::clone(&shared.latest_frame_t),
    );
    // Every thread is joined whatever happened to the others; the first failure is reported.
    let io = wiring::join("ingest", io_h.ok());
    if io.is_err() {
        // No ingest thread: nothing will close the rings but the renderer's stop.
        shared.stop_renderer();
    }
    progress.finish();
    let sim = sim_h.map(|h| wiring::join("sim-rig", h.ok()));
    let joined = running.join_all();
    let published = wiring::join("publish", publish_h.ok());
    if let Some(d) = dashboard {
        // Joins the dashboard's thread (at most a couple of seconds with a stalled client).
        d.shutdown();
    }
    unregister();
    let (ingest_end, ingest_latency, clocks) = io?;
    let joined = joined?;
    published?;
    let sim = match sim {
        Some(Ok(Err(e))) => {
            tracing::error!(error = %e, "simulated rig failed");
            None
        }
        Some(Ok(Ok(r))) => Some(r),
        Some(Err(e)) => return Err(e),
        None => None,
    };

    // The final twin refit runs now that every thread has joined and the log is closed (off the
    // real-time path). A stop signal from here on ends it, not the session (already over).
    let refit_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refit_signal = Arc::new(AtomicUsize::new(0));
    let refit_handlers = arm_stop_signals(&refit_stop, &refit_signal);
    let (live_twin, final_refit) = live_twin::finish(
        &dir,
        joined.selector.live_twin,
        joined.selector.final_refit,
        &cfg.twin,
        &refit_stop,
        &refit_signal,
    );
    disarm(&refit_handlers);
    let summary = SessionSummary {
        session_dir: dir.path().to_path_buf(),
        cells: joined.stage.cells,
        wall_s: wall.elapsed().as_secs_f64(),
        ingest_end,
        counters: shared.counters.snapshot(),
        latency: [
            &ingest_latency,
            &joined.stage.stage,
            &joined.stage.compute,
            &joined.stage.end_to_end,
            &joined.recorder.latency,
            &joined.selector.compute,
            &joined.selector.responses_to_decision,
        ]
        .iter()
        .map(|h| h.summary())
        .collect(),
        renderer: joined.renderer,
        sim,
        log_records: joined.recorder.stats.records,
        log_bytes: joined.recorder.stats.bytes,
        recorder_error: joined.recorder.error,
        signal: match signal.load(Ordering::Acquire) {
            0 => None,
            sig => Some(sig as i32),
        },
        clocks,
        inception: joined.selector.finished.clone(),
        live_twin,
        final_refit,
        rig_time_s: {
            let t = shared.latest_frame_t.load(Ordering::Acquire);
            if t == i64::MIN {
                0.0
            } else {
                t as f64 * 1e-9 + 1.0 / cfg.imaging.frame_rate_hz
            }
        },
    };
    summary.write(&dir)?;
    Ok(summary)
}

/// Raises `stop` and stores the signal's number in `signal` on every [`STOP_SIGNALS`] signal.
fn arm_stop_signals(
    stop: &Arc<std::sync::atomic::AtomicBool>,
    signal: &Arc<AtomicUsize>,
) -> Vec<signal_hook::SigId> {
    let mut handlers = Vec::new();
    for sig in STOP_SIGNALS {
        handlers.extend(signal_hook::flag::register(sig, Arc::clone(stop)).ok());
        handlers
            .extend(signal_hook::flag::register_usize(sig, Arc::clone(signal), sig as usize).ok());
    }
    handlers
}

fn disarm(handlers: &[signal_hook::SigId]) {
    for id in handlers {
        signal_hook::low_level::unregister(*id);
    }
}

/// The simulator's true footprints, for the baseline extractor.
fn true_masks(mouse: &SimMouse) -> Vec<crate::stages::extract::TrueMask> {
    mouse.cells().iter().map(|c| c.footprint.clone()).collect()
}

/// Starts the live dashboard when the config asks for it. A dashboard that cannot start is
/// logged and the session goes on without it: the recording matters more than the view.
fn start_dashboard(cfg: &Config) -> Option<Dashboard> {
    let d = &cfg.dashboard;
    if !d.enabled {
        return None;
    }
    let bind = match d.bind.parse() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(bind = %d.bind, error = %e, "dashboard.bind is not host:port; no dashboard");
            return None;
        }
    };
    match Dashboard::start(DashboardConfig {
        bind,
        token: d.token.clone(),
        max_connections: d.max_connections,
        header_timeout: Duration::from_secs_f64(d.header_timeout_s),
        ..DashboardConfig::default()
    }) {
        Ok(dash) => {
            tracing::info!(url = %format!("http://{}/", dash.local_addr()), "dashboard serving");
            Some(dash)
        }
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not start; the session runs without it");
            None
        }
    }
}

/// The cells' scan offsets: filled by the imaging pipeline once it has detected its cells, or
/// now for the placeholder extractors (true footprints: the simulator's soma centres; grid: the
/// blocks' centres).
fn scan_slot(cfg: &Config, extractor: &mut Extractor, mouse: Option<&SimMouse>) -> ScanSlot {
    let slot = ScanSlot::new(cfg.imaging.planes);
    let lines = cfg.imaging.height;
    let period_s = cfg.frame_period_ns() as f64 * 1e-9;
    match extractor {
        Extractor::Pipeline(p) => p.set_scan_slot(slot.clone(), period_s),
        Extractor::Footprints(_) => {
            let cells: Vec<CellPlace> = match cfg.imaging.extraction {
                Extraction::TruthFootprints => mouse
                    .map(|m| {
                        m.cells()
                            .iter()
                            .map(|c| CellPlace {
                                y_px: f64::from(c.centre_y_px),
                                x_px: f64::from(c.centre_x_px),
                                radius_px: f64::from(c.radius_px),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => {
                    let b = cfg.imaging.grid_block_px.max(1);
                    let (rows, cols) = (cfg.imaging.height / b, cfg.imaging.width / b);
                    let centre = |k: u32| f64::from(k * b) + f64::from(b - 1) / 2.0;
                    (0..rows * cols)
                        .map(|i| CellPlace {
                            y_px: centre(i / cols),
                            x_px: centre(i % cols),
                            radius_px: f64::from(b) / 2.0,
                        })
                        .collect()
                }
            };
            // The placeholder extractors give every plane the same cells.
            for plane in 0..cfg.imaging.planes.max(1) {
                slot.set(ScanOffsets {
                    plane,
                    ..ScanOffsets::from_cells(cells.iter().copied(), lines, period_s)
                });
            }
        }
    }
    slot
}
