//! A session: build the pipeline from a config, run it to the end, and summarise.
//!
//! # Threads (see `docs/ARCHITECTURE.md`)
//! - `ingest`: the PULL socket (libzmq) and [`Ingest`].
//! - `publish`: the PUB socket (libzmq): heartbeats and acks keep flowing while ingest waits on
//!   a slow recorder.
//! - `extract`: the imaging stage.
//! - `recorder`: the session log.
//! - `selector` and `renderer`: the scheduler.
//! - `sim-rig` (simulated sessions only): the simulated mouse behind its own sockets.
//!
//! Shutdown flows downstream: ingest ends (source's `end`, duration, idle or Ctrl-C) and drops
//! its ring producers; each stage drains its rings and drops its own; the recorder and the
//! publisher stop last.

mod summary;

pub use summary::SessionSummary;

use crate::config::{Config, SourceKind};
use crate::config::{DisplayBackend, Extraction};
use crate::dashboard::bus::DashBridge;
use crate::dashboard::{Dashboard, DashboardConfig};
use crate::frames::{ActivityBuf, EyeBuf, FrameBuf};
use crate::ring::{Pool, Wakeup, ring};
use crate::scheduler::RendererReport;
use crate::scheduler::{
    CellPlace, DecisionTiming, LiveRenderer, RendererLink, RendererParams, ScanOffsets, ScanSlot,
    SelectorThread, SimMonitor, build_selector,
};
use crate::sim::bridge::{SimRigOptions, SimRigReport};
use crate::sim::{SimGeometry, SimMouse};
use crate::sinks::event_bus::{self, Publisher};
use crate::sinks::recorder::Recorder;
use crate::sinks::session_log::{Manifest, SessionDir};
use crate::sources::clocks::DomainSummary;
use crate::sources::zmq_ingest::{self, IngestEnd};
use crate::sources::{BehaviourFeed, Ingest, IngestOutputs};
use crate::stages::behaviour::BehaviourStage;
use crate::stages::extract::{ExtractStage, Extractor, StageOutputs, build_extractor};
use crate::telemetry::{Counters, LatencyHist};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use thiserror::Error;
use twinloop_calibration::body::{BehaviourAligner, Treadmill};

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("session directory: {0}")]
    Dir(#[from] crate::sinks::session_log::SessionError),
    #[error("session log: {0}")]
    Log(#[from] crate::sinks::session_log::LogError),
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

/// Geometry the simulator needs, from the rig config.
pub fn sim_geometry(cfg: &Config) -> SimGeometry {
    SimGeometry {
        imaging_width: cfg.imaging.width as usize,
        imaging_height: cfg.imaging.height as usize,
        imaging_rate_hz: cfg.imaging.frame_rate_hz,
        eye_width: cfg.eye.width as usize,
        eye_height: cfg.eye.height as usize,
        eye_rate_hz: cfg.eye.frame_rate_hz,
        treadmill_rate_hz: cfg.treadmill.sample_rate_hz,
        view_width: cfg.display.view_width,
        view_height: cfg.display.view_height,
        view_azimuth_deg: cfg.display.azimuth_deg,
        view_elevation_deg: cfg.display.elevation_deg,
    }
}

/// Called with the session directory, the ingest endpoint and the publish endpoint.
pub type ReadyHook = Box<dyn FnOnce(&std::path::Path, &str, &str) + Send>;

/// Callbacks a caller may want while the session runs (the progress bar, tests).
#[derive(Default)]
pub struct Hooks {
    /// Called with the session directory and the bound endpoints once sockets are up.
    pub on_ready: Option<ReadyHook>,
}

pub fn run(
    cfg: &Config,
    command_line: Vec<String>,
    hooks: Hooks,
) -> Result<SessionSummary, SessionError> {
    let wall = Instant::now();
    let created = SystemTime::now();
    let dir = SessionDir::create(&cfg.session.out_dir, &cfg.session.name, created)?;
    let _span = tracing::info_span!("session", dir = %dir.path().display()).entered();
    let config_value = serde_json::to_value(cfg).unwrap_or_default();
    let mut manifest = Manifest::new(created, command_line, config_value);
    manifest.seeds.insert("session".into(), cfg.session.seed);
    if let Some(seed) = serde_json::to_value(&cfg.sim)
        .ok()
        .and_then(|v| v.get("seed")?.as_u64())
    {
        manifest.seeds.insert("sim".into(), seed);
    }
    dir.write_manifest(&manifest)?;
    let writer = dir.create_log()?;

    // The simulated mouse is built first: its true footprints feed the placeholder extraction.
    let mouse = match cfg.source.kind {
        SourceKind::Sim => Some(
            SimMouse::with_planes(&cfg.sim, &sim_geometry(cfg), cfg.imaging.planes.into())
                .map_err(|e| SessionError::Sim(e.to_string()))?,
        ),
        SourceKind::Bridge => None,
    };
    if let Some(m) = &mouse {
        // Written now, not only at the end, so a killed session can still be replayed.
        for plane in 0..m.planes() {
            let truth = crate::sim::truth::plane_dir(&dir.truth_dir(), plane);
            std::fs::create_dir_all(&truth)?;
            std::fs::write(
                truth.join("cells.json"),
                serde_json::to_vec(m.plane_cells(plane)).unwrap_or_default(),
            )?;
        }
    }
    let mut extractor = build_extractor(
        cfg,
        || {
            Ok(mouse
                .as_ref()
                .map(|m| m.cells().to_vec())
                .unwrap_or_default())
        },
        Some(dir.path().join("calibration")),
    )
    .map_err(SessionError::Config)?;
    let n_cells = extractor.max_cells();
    let scan = scan_slot(cfg, &mut extractor, mouse.as_ref());

    let counters = Arc::new(Counters::default());
    let frame_px = (cfg.imaging.width * cfg.imaging.height) as usize;
    let eye_px = (cfg.eye.width * cfg.eye.height) as usize;
    let frame_pool = Pool::new(cfg.rings.frame_pool, || FrameBuf::with_capacity(frame_px));
    let eye_pool = Pool::new(64, || EyeBuf::with_capacity(eye_px));
    let activity_pool = Pool::new(cfg.rings.recorder_ring * 2 + 16, || {
        ActivityBuf::with_capacity(n_cells)
    });

    let stage_wake = Wakeup::new();
    let recorder_wake = Wakeup::new();
    let selector_wake = Wakeup::new();
    let renderer_wake = Wakeup::new();
    let (to_stage, stage_rx) = ring(cfg.rings.stage_ring, Arc::clone(&stage_wake));
    let (to_recorder, rec_frames) = ring(cfg.rings.recorder_ring, Arc::clone(&recorder_wake));
    let (eye_to_recorder, rec_eye) = ring(32, Arc::clone(&recorder_wake));
    let (act_to_recorder, rec_activity) = ring(cfg.rings.recorder_ring, Arc::clone(&recorder_wake));
    let (act_to_selector, sel_activity) = ring(cfg.rings.recorder_ring, Arc::clone(&selector_wake));
    let (events_tx, events_rx) = crossbeam_channel::bounded(8192);
    let behaviour_wake = Wakeup::new();
    let (eye_to_behaviour, behaviour_eye) = ring(16, Arc::clone(&behaviour_wake));
    let (behaviour_tx, behaviour_rx) = crossbeam_channel::bounded(4096);
    let (bus, bus_inbox) = event_bus::bus(4096, Arc::clone(&counters));
    let (act_to_bus, bus_activity) = ring(cfg.rings.stage_ring, bus.wakeup());
    let (queue_tx, queue_rx) = crossbeam_channel::bounded(1);
    let dashboard = start_dashboard(cfg);
    let (thumbnails_tx, dash_bridge) = match &dashboard {
        Some(d) => {
            let (tx, rx) = ring(2, bus.wakeup());
            (Some(tx), Some(DashBridge::new(d.feed(), Some(rx))))
        }
        None => (None, None),
    };

    let mut ingest = Ingest::new(
        cfg,
        IngestOutputs {
            frame_pool,
            eye_pool,
            to_stage,
            to_recorder,
            eye_to_recorder,
            events: events_tx.clone(),
            behaviour: Some(BehaviourFeed {
                eye: eye_to_behaviour,
                inputs: behaviour_tx,
            }),
        },
        Arc::clone(&counters),
    );
    ingest.set_bus(bus.clone());
    let latest_frame_t = Arc::clone(&ingest.latest_frame_t);
    let acked = Arc::clone(&ingest.acked);
    {
        let renderer_wake = Arc::clone(&renderer_wake);
        ingest.set_on_frame(move || renderer_wake.wake());
    }
    let stop_renderer = Arc::new(AtomicBool::new(false));

    let recorder = Recorder {
        writer,
        frames: rec_frames,
        eye: rec_eye,
        activity: rec_activity,
        events: events_rx,
        wake: recorder_wake,
        counters: Arc::clone(&counters),
        record_frames: cfg.session.record_frames,
        max_frame_bytes: frame_px * 2,
        events_closed: false,
    };
    let stage = ExtractStage {
        extractor,
        input: stage_rx,
        wake: stage_wake,
        out: StageOutputs {
            pool: activity_pool,
            to_recorder: act_to_recorder,
            to_selector: act_to_selector,
            to_bus: act_to_bus,
            bus: bus.clone(),
            events: events_tx.clone(),
            to_dashboard: thumbnails_tx,
        },
        counters: Arc::clone(&counters),
        late_after_ns: (cfg.imaging.late_after_ms * 1e6) as i64,
    };
    let (onsets_tx, onsets_rx) = crossbeam_channel::bounded(64);
    let (behaviour_to_selector, selector_behaviour) = crossbeam_channel::bounded(1024);
    let selector = SelectorThread {
        selector: build_selector(cfg).map_err(|e| SessionError::Config(format!("trials: {e}")))?,
        activity: sel_activity,
        behaviour: Some(selector_behaviour),
        onsets: onsets_rx,
        wake: selector_wake,
        queue: queue_tx,
        bus: bus.clone(),
        events: events_tx.clone(),
        counters: Arc::clone(&counters),
        scan: Some(scan),
        timing: DecisionTiming::from_config(cfg),
        latest_frame_t: Arc::clone(&latest_frame_t),
    };
    let behaviour_cfg = &cfg.behaviour;
    let behaviour = BehaviourStage {
        eye: behaviour_eye,
        inputs: behaviour_rx,
        wake: behaviour_wake,
        tracker: None,
        treadmill: Treadmill::new(behaviour_cfg.treadmill.clone())
            .map_err(|e| SessionError::Config(format!("behaviour.treadmill: {e}")))?,
        aligner: BehaviourAligner::new(behaviour_cfg.aligner.clone())
            .map_err(|e| SessionError::Config(format!("behaviour.aligner: {e}")))?,
        eye_size: (0, 0),
        pupil_config: behaviour_cfg.pupil.clone(),
        bus: bus.clone(),
        events: events_tx.clone(),
        to_selector: Some(behaviour_to_selector),
        counters: Arc::clone(&counters),
    };
    let link = RendererLink {
        queue: queue_rx,
        onsets: onsets_tx,
        bus: bus.clone(),
        events: events_tx,
        counters: Arc::clone(&counters),
    };
    let params = RendererParams {
        view: cfg.display.view(),
        refresh_hz: cfg.display.refresh_hz,
        stimulus_s: cfg.trials.stimulus_s,
        gray_s: cfg.trials.gray_s,
        patch: cfg.display.photodiode,
    };
    // The renderer thread runs one of these; a live one owns its window (opened on that thread).
    let renderer: Box<dyn FnOnce() -> RendererReport + Send> = match cfg.display.backend {
        DisplayBackend::Sim => {
            let sim = SimMonitor {
                link,
                params,
                latest_frame_t: Arc::clone(&latest_frame_t),
                stop: Arc::clone(&stop_renderer),
                wake: Arc::clone(&renderer_wake),
                frame_period_ns: cfg.frame_period_ns(),
                // A generous bound: a twin's first placement takes seconds on a loaded CPU.
                wait_for_decisions: cfg.lockstep().then(|| Duration::from_secs(30)),
            };
            Box::new(move || sim.run())
        }
        backend @ (DisplayBackend::Offscreen | DisplayBackend::Window) => {
            let live = LiveRenderer {
                link,
                params,
                backend,
                geometry: cfg.display.monitor,
                gamma: cfg.display.gamma.clone().unwrap_or_default(),
                window: cfg.display.window.clone(),
                latest_frame_t: Arc::clone(&latest_frame_t),
                stop: Arc::clone(&stop_renderer),
                wake: Arc::clone(&renderer_wake),
            };
            Box::new(move || live.run())
        }
    };
    let publisher = Publisher {
        inbox: bus_inbox,
        activity: bus_activity,
        acked,
        latest_frame_t: Arc::clone(&latest_frame_t),
        counters: Arc::clone(&counters),
        heartbeat: Duration::from_millis(100),
        info: serde_json::json!({
            "protocol_version": crate::protocol::VERSION,
            "flow_window": cfg.source.flow_window,
            "imaging": {
                "height": cfg.imaging.height,
                "width": cfg.imaging.width,
                "planes": cfg.imaging.planes,
                "channels": cfg.imaging.channels,
            },
        }),
        dashboard: dash_bridge,
    };
    drop(bus);

    let recorder_h = spawn("recorder", move || recorder.run())?;
    let behaviour_h = spawn("behaviour", move || behaviour.run())?;
    let stage_h = spawn("extract", move || stage.run())?;
    let selector_h = spawn("selector", move || selector.run())?;
    let renderer_h = spawn("renderer", renderer)?;

    // libzmq refuses message parts larger than the largest legal one (a frame, with margin).
    let max_part_bytes = (frame_px * 2).max(eye_px).max(1 << 20) + 4096;
    let zmq_ctx = zmq::Context::new();
    let stop = Arc::new(AtomicBool::new(false));
    let sigint = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop)).ok();

    // The publisher has a thread of its own, so heartbeats and acks keep flowing while ingest
    // waits on a slow recorder.
    let publ =
        event_bus::bind_pub(&zmq_ctx, &cfg.source.publish, max_part_bytes).map_err(|source| {
            SessionError::Bind {
                what: "publish (PUB)",
                endpoint: cfg.source.publish.clone(),
                source,
            }
        });
    let pull =
        zmq_ingest::bind_pull(&zmq_ctx, &cfg.source.ingest, max_part_bytes).map_err(|source| {
            SessionError::Bind {
                what: "ingest (PULL)",
                endpoint: cfg.source.ingest.clone(),
                source,
            }
        });
    let bound = match (publ, pull) {
        (Ok(p), Ok(i)) => Ok((p, i)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let ((pub_sock, pub_ep), (pull_sock, pull_ep)) = match bound {
        Ok(b) => b,
        Err(e) => {
            // Nothing will arrive: let every thread drain and stop before reporting.
            drop(ingest);
            drop(publisher);
            stop_renderer.store(true, Ordering::Release);
            renderer_wake.wake();
            let _ = (
                recorder_h.join(),
                stage_h.join(),
                selector_h.join(),
                renderer_h.join(),
            );
            if let Some(id) = sigint {
                signal_hook::low_level::unregister(id);
            }
            return Err(e);
        }
    };
    let publish_h = spawn("publish", move || publisher.run(pub_sock))?;

    // Ingest thread: receive until the source is done, then close the rings.
    let idle = Duration::from_secs_f64(cfg.source.idle_timeout_s);
    let duration_ns = match cfg.source.kind {
        // The simulated rig ends the session itself, after exactly `duration_s` of frames.
        SourceKind::Sim => i64::MAX,
        SourceKind::Bridge => (cfg.session.duration_s * 1e9) as i64 - cfg.frame_period_ns(),
    };
    let io_stop = Arc::clone(&stop_renderer);
    let io_wake = Arc::clone(&renderer_wake);
    let ingest_stop = Arc::clone(&stop);
    let io_h = spawn(
        "ingest",
        move || -> Result<(IngestEnd, LatencyHist, Vec<DomainSummary>), SessionError> {
            let end = zmq_ingest::run(&pull_sock, &mut ingest, &ingest_stop, idle, duration_ns);
            if end == IngestEnd::Stopped {
                tracing::warn!("interrupted: ending the session after draining");
            }
            tracing::info!(?end, "ingest ended");
            let latency = ingest.latency().clone();
            let clocks = ingest.clock_summary();
            // Dropping ingest closes its rings: every stage drains and stops in turn.
            drop(ingest);
            drop(pull_sock);
            io_stop.store(true, Ordering::Release);
            io_wake.wake();
            Ok((end, latency, clocks))
        },
    )?;

    let endpoints = Some((pull_ep, pub_ep));
    let mut sim_h = None;
    if let Some((pull_ep, pub_ep)) = &endpoints {
        tracing::info!(ingest = %pull_ep, publish = %pub_ep, "daemon listening");
        if let Some(hook) = hooks.on_ready {
            hook(dir.path(), pull_ep, pub_ep);
        }
        if let Some(mouse) = mouse {
            let opts = SimRigOptions {
                ingest: pull_ep.clone(),
                publish: pub_ep.clone(),
                duration_s: cfg.session.duration_s,
                realtime: cfg.session.realtime,
                flow_window: cfg.source.flow_window,
                geometry: sim_geometry(cfg),
                truth_dir: Some(dir.truth_dir()),
                view_timeout: Duration::from_secs(2),
            };
            sim_h = Some(spawn(
                "sim-rig",
                move || -> Result<SimRigReport, SessionError> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(crate::sim::bridge::run(mouse, opts))
                        .map_err(|e| SessionError::Sim(e.to_string()))
                },
            )?);
        }
    }

    let progress =
        summary::Progress::start(cfg, Arc::clone(&counters), Arc::clone(&latest_frame_t));
    let io = join("io", io_h)?;
    progress.finish();
    let sim = match sim_h {
        Some(h) => Some(join("sim-rig", h)?),
        None => None,
    };
    let stage = join("extract", stage_h)?;
    let selector_times = join("selector", selector_h)?;
    let renderer = join("renderer", renderer_h)?;
    join("behaviour", behaviour_h)?;
    let recorder = join("recorder", recorder_h)?;
    join("publish", publish_h)?;
    if let Some(d) = dashboard {
        // Joins the dashboard's thread (at most a couple of seconds with a stalled client).
        d.shutdown();
    }
    if let Some(id) = sigint {
        signal_hook::low_level::unregister(id);
    }
    let (ingest_end, ingest_latency, clocks) = io?;
    let sim = match sim {
        Some(Err(e)) => {
            tracing::error!(error = %e, "simulated rig failed");
            None
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };

    let summary = SessionSummary {
        session_dir: dir.path().to_path_buf(),
        cells: stage.cells,
        wall_s: wall.elapsed().as_secs_f64(),
        ingest_end,
        counters: counters.snapshot(),
        latency: [
            &ingest_latency,
            &stage.stage,
            &stage.compute,
            &stage.end_to_end,
            &recorder.latency,
            &selector_times.compute,
            &selector_times.responses_to_decision,
        ]
        .iter()
        .map(|h| h.summary())
        .collect(),
        renderer,
        sim,
        log_records: recorder.stats.records,
        log_bytes: recorder.stats.bytes,
        recorder_error: recorder.error,
        clocks,
        rig_time_s: {
            let t = latest_frame_t.load(Ordering::Acquire);
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

fn spawn<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, SessionError> {
    Ok(std::thread::Builder::new().name(name.into()).spawn(f)?)
}

fn join<T>(name: &'static str, h: std::thread::JoinHandle<T>) -> Result<T, SessionError> {
    h.join().map_err(|_| SessionError::Panicked(name))
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
