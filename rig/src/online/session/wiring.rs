//! The pipeline of one session, built in one place: pools, rings and channels sized from the
//! config, and every thread's struct. [`Pipeline::spawn`] starts the threads that need no
//! socket; [`Running::join_all`] always joins every one of them, even after one has panicked.
//!
//! ```text
//! ingest ─► frame pool ─┬─► stage ring ─► extract ─┬─► recorder ring ─► recorder
//!                       │                          ├─► selector ring ─► selector ─► queue(1) ─► renderer
//!                       │                          └─► bus ring ─► publisher          ▲ onsets ◄──┘
//!                       └─► recorder ring ─► recorder
//! ingest ─► eye pool ─┬─► recorder      ingest ─► behaviour inputs ─► behaviour ─► selector
//!                     └─► behaviour     everything else ─► events channel ─► recorder
//! ```

use super::SessionError;
use crate::backbone::bus::bus;
use crate::backbone::frames::{ActivityBuf, EyeBuf, FrameBuf};
use crate::backbone::ring::{Pool, Wakeup, ring};
use crate::backbone::session_log::LogWriter;
use crate::backbone::telemetry::Counters;
use crate::config::{Config, DisplayBackend, LogErrorPolicy};
use crate::online::dashboard::DashFeed;
use crate::online::dashboard::bus::DashBridge;
use crate::online::decide::{DecisionTiming, SelectorLinks, SelectorThread, SelectorTimes};
use crate::online::display::{
    LiveRenderer, RendererClock, RendererLink, RendererParams, RendererReport, SimMonitor,
};
use crate::online::sinks::event_bus::Publisher;
use crate::online::sinks::recorder::{Recorder, RecorderInputs, RecorderReport};
use crate::online::sources::{BehaviourFeed, Ingest, IngestOutputs};
use crate::stages::behaviour::{BehaviourLinks, BehaviourStage};
use crate::stages::decide::Selector;
use crate::stages::extract::{ExtractStage, Extractor, StageOutputs, StageReport};
use crate::vocab::scan::ScanSlot;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Called at the start of every thread the pipeline spawns, with the thread's name (tests mark
/// the threads they watch; the daemon needs nothing).
pub type ThreadStart = Arc<dyn Fn(&'static str) + Send + Sync>;

/// What the pipeline is built from besides the config: the log, the extractor and the
/// selector (built by the caller: replay builds them the same way).
pub struct PipelineParts {
    pub writer: LogWriter,
    pub extractor: Extractor,
    pub scan: ScanSlot,
    pub selector: Box<dyn Selector>,
    /// The live dashboard's feed, when one is served.
    pub dashboard: Option<DashFeed>,
}

/// State every thread shares.
#[derive(Clone)]
pub struct Shared {
    pub counters: Arc<Counters>,
    /// The newest imaging frame's rig time (ingest's; `i64::MIN` before the first).
    pub latest_frame_t: Arc<AtomicI64>,
    /// Stops the renderer once ingest has ended.
    pub stop_renderer: Arc<AtomicBool>,
    /// Stops the session: a signal, or the recorder's first failed write.
    pub stop: Arc<AtomicBool>,
    pub renderer_wake: Arc<Wakeup>,
    /// How ingest ended (`IngestEnd` in snake case), set before it closes its rings, so the
    /// recorder's `End` record can say.
    pub session_end: Arc<OnceLock<String>>,
}

impl Shared {
    /// Tells the renderer to stop (ingest has ended, or the session could not start).
    pub fn stop_renderer(&self) {
        self.stop_renderer.store(true, Ordering::Release);
        self.renderer_wake.wake();
    }
}

/// Every thread's struct of one session, built and connected, none started. A test may run
/// some of them itself (`tests/tests/no_alloc.rs`); the session runs them all ([`Pipeline::spawn`]).
pub struct Pipeline {
    /// Runs on the ingest thread with the PULL socket (the caller's, after binding).
    pub ingest: Ingest,
    /// Runs on the publish thread with the PUB socket (the caller's, after binding).
    pub publisher: Publisher,
    pub shared: Shared,
    pub recorder: Recorder,
    pub behaviour: BehaviourStage,
    pub stage: ExtractStage,
    pub selector: SelectorThread,
    pub renderer: Box<dyn FnOnce() -> RendererReport + Send>,
}

impl Pipeline {
    /// Builds the pools, rings and channels `cfg` sizes, and every thread's struct.
    pub fn build(cfg: &Config, parts: PipelineParts) -> Result<Pipeline, SessionError> {
        let counters = Arc::new(Counters::default());
        let n_cells = parts.extractor.max_cells();
        let frame_px = (cfg.imaging.width * cfg.imaging.height) as usize;
        let eye_px = (cfg.eye.width * cfg.eye.height) as usize;
        let rings = &cfg.rings;
        let frame_pool = Pool::new(rings.frame_pool, || FrameBuf::with_capacity(frame_px));
        let eye_pool = Pool::new(64, || EyeBuf::with_capacity(eye_px));
        let activity_pool = Pool::new(rings.recorder_ring * 2 + 16, || {
            ActivityBuf::with_capacity(n_cells)
        });

        let stage_wake = Wakeup::new();
        let recorder_wake = Wakeup::new();
        let selector_wake = Wakeup::new();
        let renderer_wake = Wakeup::new();
        let behaviour_wake = Wakeup::new();
        let (to_stage, stage_rx) = ring(rings.stage_ring, Arc::clone(&stage_wake));
        let (to_recorder, rec_frames) = ring(rings.recorder_ring, Arc::clone(&recorder_wake));
        let (eye_to_recorder, rec_eye) = ring(32, Arc::clone(&recorder_wake));
        let (act_to_recorder, rec_activity) = ring(rings.recorder_ring, Arc::clone(&recorder_wake));
        let (act_to_selector, sel_activity) = ring(rings.recorder_ring, Arc::clone(&selector_wake));
        let (events_tx, events_rx) = crossbeam_channel::bounded(8192);
        let (eye_to_behaviour, behaviour_eye) = ring(16, Arc::clone(&behaviour_wake));
        let (behaviour_tx, behaviour_rx) = crossbeam_channel::bounded(4096);
        let (bus, bus_inbox) = bus(4096, Arc::clone(&counters));
        let (act_to_bus, bus_activity) = ring(rings.stage_ring, bus.wakeup());
        let (queue_tx, queue_rx) = crossbeam_channel::bounded(1);
        let (onsets_tx, onsets_rx) = crossbeam_channel::bounded(64);
        let (behaviour_to_selector, selector_behaviour) = crossbeam_channel::bounded(1024);
        let (thumbnails_tx, dash_bridge) = match parts.dashboard {
            Some(feed) => {
                let (tx, rx) = ring(2, bus.wakeup());
                (Some(tx), Some(DashBridge::new(feed, Some(rx))))
            }
            None => (None, None),
        };

        let mut ingest = Ingest::new(
            &cfg.imaging,
            &cfg.eye,
            &cfg.clocks,
            &cfg.source,
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
        let durable = Arc::clone(&ingest.durable);
        {
            let renderer_wake = Arc::clone(&renderer_wake);
            ingest.set_on_frame(move || renderer_wake.wake());
        }
        let shared = Shared {
            counters: Arc::clone(&counters),
            latest_frame_t: Arc::clone(&latest_frame_t),
            stop_renderer: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            renderer_wake: Arc::clone(&renderer_wake),
            session_end: Arc::new(OnceLock::new()),
        };
        ingest.set_stop(Arc::clone(&shared.stop));

        let recorder = Recorder::new(
            parts.writer,
            RecorderInputs {
                frames: rec_frames,
                eye: rec_eye,
                activity: rec_activity,
                events: events_rx,
                wake: recorder_wake,
                durable: Arc::clone(&ingest.durable),
                on_written: Some(bus.wakeup()),
                stop_on_error: (cfg.session.on_log_error == LogErrorPolicy::Stop)
                    .then(|| Arc::clone(&shared.stop)),
            },
            Arc::clone(&counters),
            cfg.session.record_frames,
            frame_px * 2,
            (cfg.session.fsync_every_s > 0.0)
                .then(|| Duration::from_secs_f64(cfg.session.fsync_every_s.min(3600.0))),
        )
        .with_end_reason(Arc::clone(&shared.session_end));
        let stage = ExtractStage::new(
            parts.extractor,
            stage_rx,
            stage_wake,
            StageOutputs {
                pool: activity_pool,
                to_recorder: act_to_recorder,
                to_selector: act_to_selector,
                to_bus: act_to_bus,
                bus: bus.clone(),
                events: events_tx.clone(),
                to_dashboard: thumbnails_tx,
            },
            Arc::clone(&counters),
            (cfg.imaging.late_after_ms * 1e6) as i64,
        );
        let selector = SelectorThread::new(
            parts.selector,
            SelectorLinks {
                activity: sel_activity,
                behaviour: Some(selector_behaviour),
                onsets: onsets_rx,
                wake: selector_wake,
                queue: queue_tx,
                bus: bus.clone(),
                events: events_tx.clone(),
                counters: Arc::clone(&counters),
                scan: Some(parts.scan),
                latest_frame_t: Arc::clone(&latest_frame_t),
            },
            DecisionTiming::new(&cfg.trials, cfg.lockstep()),
        );
        let behaviour = BehaviourStage::new(
            &cfg.behaviour,
            BehaviourLinks {
                eye: behaviour_eye,
                inputs: behaviour_rx,
                wake: behaviour_wake,
                bus: bus.clone(),
                events: events_tx.clone(),
                to_selector: Some(behaviour_to_selector),
                counters: Arc::clone(&counters),
            },
        )
        .map_err(|e| SessionError::Config(e.to_string()))?;
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
        let clock = RendererClock {
            latest_frame_t: Arc::clone(&latest_frame_t),
            stop: Arc::clone(&shared.stop_renderer),
            wake: Arc::clone(&renderer_wake),
        };
        // The renderer thread runs one of these; a live one owns its window (opened on that
        // thread).
        let renderer: Box<dyn FnOnce() -> RendererReport + Send> = match cfg.display.backend {
            DisplayBackend::Sim => {
                // A generous bound: a twin's first placement takes seconds on a loaded CPU.
                let wait = cfg.lockstep().then(|| Duration::from_secs(30));
                let sim = SimMonitor::new(link, params, clock, cfg.frame_period_ns(), wait);
                Box::new(move || sim.run())
            }
            DisplayBackend::Offscreen | DisplayBackend::Window => {
                let live = LiveRenderer::new(link, params, &cfg.display, clock);
                Box::new(move || live.run())
            }
        };
        let publisher = Publisher {
            inbox: bus_inbox,
            activity: bus_activity,
            durable,
            latest_frame_t,
            counters,
            heartbeat: Duration::from_millis(100),
            info: serde_json::json!({
                "protocol_version": crate::vocab::protocol::VERSION,
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
        Ok(Pipeline {
            ingest,
            publisher,
            shared,
            recorder,
            behaviour,
            stage,
            selector,
            renderer,
        })
    }

    /// Starts the recorder, behaviour, extract, selector and renderer threads; returns them with
    /// ingest and the publisher, which the caller runs on their sockets. A thread that cannot
    /// be spawned stops the ones already started before the error returns.
    pub fn spawn(
        self,
        on_start: ThreadStart,
    ) -> Result<(Running, Ingest, Publisher), SessionError> {
        let Pipeline {
            ingest,
            publisher,
            shared,
            recorder,
            behaviour,
            stage,
            selector,
            renderer,
        } = self;
        let mut running = Running {
            shared,
            on_start,
            recorder: None,
            behaviour: None,
            stage: None,
            selector: None,
            renderer: None,
        };
        // Ingest is dropped on error below, closing its rings: started threads drain and end.
        let started = (|| -> std::io::Result<()> {
            running.recorder = Some(running.spawn("recorder", move || recorder.run())?);
            running.behaviour = Some(running.spawn("behaviour", move || behaviour.run())?);
            running.stage = Some(running.spawn("extract", move || stage.run())?);
            running.selector = Some(running.spawn("selector", move || selector.run())?);
            running.renderer = Some(running.spawn("renderer", renderer)?);
            Ok(())
        })();
        match started {
            Ok(()) => Ok((running, ingest, publisher)),
            Err(e) => {
                drop((ingest, publisher));
                running.shared.stop_renderer();
                let _ = running.join_all();
                Err(SessionError::Io(e))
            }
        }
    }
}

/// The pipeline's threads once started.
pub struct Running {
    pub shared: Shared,
    on_start: ThreadStart,
    recorder: Option<JoinHandle<RecorderReport>>,
    behaviour: Option<JoinHandle<()>>,
    stage: Option<JoinHandle<StageReport>>,
    selector: Option<JoinHandle<SelectorTimes>>,
    renderer: Option<JoinHandle<RendererReport>>,
}

/// What every thread returned.
pub struct Joined {
    pub recorder: RecorderReport,
    pub stage: StageReport,
    pub selector: SelectorTimes,
    pub renderer: RendererReport,
}

impl Running {
    /// Spawns another thread of this session (ingest, publish, the simulated rig), announced to
    /// the same [`ThreadStart`].
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &'static str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<JoinHandle<T>> {
        let on_start = Arc::clone(&self.on_start);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                on_start(name);
                f()
            })
    }

    /// Joins every thread in the order data drains (extract, selector, renderer, behaviour,
    /// recorder), each even when one before it panicked; the first panic is the error.
    pub fn join_all(self) -> Result<Joined, SessionError> {
        let stage = join("extract", self.stage);
        let selector = join("selector", self.selector);
        let renderer = join("renderer", self.renderer);
        let behaviour = join("behaviour", self.behaviour);
        let recorder = join("recorder", self.recorder);
        behaviour?;
        Ok(Joined {
            stage: stage?,
            selector: selector?,
            renderer: renderer?,
            recorder: recorder?,
        })
    }
}

/// Joins a thread; one that never started or panicked is named.
pub fn join<T>(name: &'static str, h: Option<JoinHandle<T>>) -> Result<T, SessionError> {
    match h {
        Some(h) => h.join().map_err(|_| {
            tracing::error!(thread = name, "thread panicked");
            SessionError::Panicked(name)
        }),
        None => Err(SessionError::Panicked(name)),
    }
}
