//! The display loop in the daemon: the stimulus [`Player`] (twinloop-stimulus) on one of three
//! monitors (`display.backend`), every flip published and logged the same way.
//!
//! - **sim** ([`SimMonitor`]): the simulated monitor. Its display clock follows the imaging
//!   frame clock: it flips up to the newest imaging frame's time plus one imaging period (the
//!   lookahead the simulated mouse needs to produce the next frame), so a simulated session is
//!   lock-step and deterministic at any speed. It draws only the view.
//! - **offscreen** and **window** ([`super::live::LiveRenderer`]): the player on its own
//!   thread, paced by vsync (window) or a timer (offscreen), timestamped on the host clock
//!   mapped to rig time.
//!
//! All three run the same player over the same queue ([`DecisionQueue`]: the selector's
//! decisions, taken without waiting; gray and an underrun when empty) and draw the view the
//! bus carries from the same [`FrameContent`] the monitor gets ([`WithView`]), so the twin and
//! the simulated mouse see exactly what was shown. [`FlipSink`] turns each flip into the
//! records and messages (flip, view, stimulus onset, anomalies) and the selector's onsets.

use crate::backbone::bus::Bus;
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::Wakeup;
use crate::backbone::telemetry::{Anomaly, Counters};
use crate::stages::decide::{Decision, Onset};
use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{Dtype, Header, Message, Stream};
use crate::vocab::records::{FlipRecord, RecordKind};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use twinloop_stimulus::player::{
    self, Display, FlipSummary, Player, PlayerConfig, QueuedTrial, StimulusQueue,
};
use twinloop_stimulus::{FrameContent, PhotodiodePatch, Projection, ViewGeometry, cpu};

/// How far ahead of the wall clock a real-time simulated monitor may flip (s): enough for the
/// ordinary jitter of frames arriving, never a spin.
const PACE_SLACK_S: f64 = 1.0;

/// What every backend talks to: the selector's queue and onsets, the bus and the log.
pub struct RendererLink {
    pub queue: Receiver<Decision>,
    /// Each trial's onset, for the selector (never blocks: a full channel drops it, logged).
    pub onsets: Sender<Onset>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
    pub counters: Arc<Counters>,
}

/// What every backend shows: the view's geometry, the rate and the trial timing.
#[derive(Debug, Clone, Copy)]
pub struct RendererParams {
    pub view: ViewGeometry,
    pub refresh_hz: f64,
    pub stimulus_s: f64,
    pub gray_s: f64,
    pub patch: PhotodiodePatch,
}

impl RendererParams {
    pub fn player_config(&self) -> PlayerConfig {
        PlayerConfig {
            rate_hz: self.refresh_hz,
            gray_s: self.gray_s,
            patch: self.patch,
        }
    }
}

/// The selector's one-deep queue as the player's: keeps the decision it handed out so its
/// onset can be reported with its name and spec. A live display never waits on it; the
/// simulated monitor of a session not in real time waits (see [`DecisionQueue::waiting`]).
pub struct DecisionQueue {
    rx: Receiver<Decision>,
    stimulus_s: f64,
    taken: Option<Decision>,
    wait: Option<Duration>,
}

impl DecisionQueue {
    pub fn new(rx: Receiver<Decision>, stimulus_s: f64) -> DecisionQueue {
        DecisionQueue {
            rx,
            stimulus_s,
            taken: None,
            wait: None,
        }
    }

    /// Wait up to `wait` for a decision not yet queued. Only for the lock-step simulated rig:
    /// there the simulated mouse waits for the display, so the whole rig waits for the twin
    /// instead of counting an underrun, and the trial schedule does not depend on the CPU's
    /// speed. Past `wait` it is an underrun as on a live rig.
    pub fn waiting(mut self, wait: Option<Duration>) -> DecisionQueue {
        self.wait = wait;
        self
    }
}

impl StimulusQueue for DecisionQueue {
    fn try_next(&mut self) -> Option<QueuedTrial> {
        let d = match self.wait {
            None => self.rx.try_recv().ok()?,
            // Returns at once with a queued decision, or when the selector has gone.
            Some(wait) => self
                .rx
                .recv_timeout(wait)
                .map_err(|e| {
                    if e.is_timeout() {
                        tracing::warn!(
                            waited_s = wait.as_secs_f64(),
                            "the simulated monitor gave up waiting for the next decision: an underrun"
                        );
                    }
                })
                .ok()?,
        };
        let q = QueuedTrial {
            trial: d.trial,
            spec: d.spec.clone(),
            duration_s: self.stimulus_s,
        };
        self.taken = Some(d);
        Some(q)
    }
}

/// A monitor and the view: each frame's content is also drawn (CPU, pre-gamma, no patch) at
/// the view's resolution, which the bus carries to the twin and the simulated mouse.
pub struct WithView<D> {
    pub monitor: D,
    view: Projection,
    pub pixels: Vec<u8>,
}

impl<D> WithView<D> {
    pub fn new(monitor: D, view: ViewGeometry) -> WithView<D> {
        WithView {
            monitor,
            view: Projection::Linear(view),
            pixels: vec![cpu::MEAN_GRAY; view.pixels()],
        }
    }
}

impl<D: Display> Display for WithView<D> {
    fn show(
        &mut self,
        content: &FrameContent,
        patch: &twinloop_stimulus::photodiode::PatchFrame,
    ) -> Result<(), String> {
        cpu::render_content(content, &self.view, &mut self.pixels);
        self.monitor.show(content, patch)
    }
}

/// No monitor: the simulated one (and the fallback when no GPU starts) draws only the view.
pub struct NoMonitor;

impl Display for NoMonitor {
    fn show(
        &mut self,
        _: &FrameContent,
        _: &twinloop_stimulus::photodiode::PatchFrame,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// What the display loop did, for the session summary.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RendererReport {
    /// The backend that ran ("sim", "offscreen", "window", or "none" — timer-paced, view only).
    pub backend: String,
    /// Why the configured backend was not the one that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The adapter and window it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub flips: u64,
    pub trials: u64,
    pub underruns: u64,
    /// Vsyncs missed in all (a flip `k` periods late counts `k`).
    pub missed_vsyncs: u64,
    /// Flips that came late (interval over 1.5 periods).
    pub dropped_frames: u64,
    pub render_errors: u64,
    pub prepare_errors: u64,
    /// Flip intervals (the simulated monitor's are exact by construction).
    pub flip_intervals: FlipSummary,
    /// Flips paced by a timer rather than vsync (offscreen, or a window without vsync).
    pub timer_paced: bool,
}

impl RendererReport {
    pub fn new(backend: &str) -> RendererReport {
        RendererReport {
            backend: backend.into(),
            ..Default::default()
        }
    }

    /// Copy the player's counts and statistics.
    pub fn take_counts<Q, D, C>(&mut self, p: &Player<Q, D, C>) {
        let c = &p.counts;
        self.flips = c.flips;
        self.trials = c.trials;
        self.underruns = c.underruns;
        self.missed_vsyncs = c.missed_vsyncs;
        self.dropped_frames = c.dropped_frames;
        self.render_errors = c.render_errors;
        self.prepare_errors = c.prepare_errors;
        self.flip_intervals = p.stats.summary();
    }
}

/// Turns each flip into what the session records and publishes.
pub struct FlipSink {
    link: RendererLink,
    view: ViewGeometry,
    seen: player::PlayerCounts,
}

impl FlipSink {
    pub fn new(link: RendererLink, view: ViewGeometry) -> FlipSink {
        FlipSink {
            link,
            view,
            seen: Default::default(),
        }
    }

    /// Show the player's next frame and record its flip.
    pub fn step<D: Display, C: FnMut() -> i64>(
        &mut self,
        p: &mut Player<DecisionQueue, WithView<D>, C>,
    ) -> player::FlipRecord {
        let flip = p.step();
        let t = RigTime::from_nanos(flip.t_ns);
        let trial = flip.trial.map_or(-1, |n| n as i64);
        if flip.onset
            && let Some(decision) = p.queue.taken.take()
        {
            self.onset(&decision, t, flip.display_frame);
        }
        let c = p.counts;
        if c.underruns > self.seen.underruns {
            // The player never waits for the selector: gray now, counted, asked again next flip.
            Counters::inc(&self.link.counters.underruns);
            let _ = self
                .link
                .events
                .try_send(RecorderItem::Anomaly(Anomaly::Underrun {
                    display_frame: flip.display_frame,
                }));
        }
        if flip.missed_vsyncs > 0 {
            tracing::warn!(
                display_frame = flip.display_frame,
                missed = flip.missed_vsyncs,
                "missed vsync: the previous frame stayed up longer"
            );
            let _ = self
                .link
                .events
                .try_send(RecorderItem::Anomaly(Anomaly::MissedVsync {
                    display_frame: flip.display_frame,
                    missed: flip.missed_vsyncs,
                }));
        }
        if c.render_errors > self.seen.render_errors || c.prepare_errors > self.seen.prepare_errors
        {
            let error = p.last_error.clone().unwrap_or_default();
            tracing::error!(display_frame = flip.display_frame, %error, "stimulus shown as gray");
            let _ = self
                .link
                .events
                .try_send(RecorderItem::Anomaly(Anomaly::StimulusError {
                    display_frame: flip.display_frame,
                    error,
                }));
        }
        self.seen = c;
        self.flip(flip.display_frame, t, trial, flip.onset, &p.display.pixels);
        flip
    }

    fn onset(&self, decision: &Decision, t: RigTime, display_frame: u64) {
        tracing::debug!(
            trial = decision.trial,
            rig_s = t.as_nanos() as f64 * 1e-9,
            display_frame,
            "onset"
        );
        let onset = Onset {
            trial: decision.trial,
            stimulus: decision.stimulus,
            t,
        };
        if self.link.onsets.try_send(onset).is_err() {
            tracing::warn!(trial = decision.trial, "the selector did not take an onset");
        }
        let value = serde_json::json!({
            "trial": decision.trial,
            "stimulus": decision.stimulus,
            "name": decision.name,
            "spec": decision.spec,
            "onset_t_ns": t.as_nanos(),
            "display_frame": display_frame,
        });
        self.link.bus.publish(Message::json(
            Stream::Stimulus,
            decision.trial,
            t.as_nanos(),
            &value,
        ));
        let _ = self.link.events.send(RecorderItem::Json {
            kind: RecordKind::Stimulus,
            value,
        });
        Counters::inc(&self.link.counters.trials);
    }

    fn flip(&self, display_frame: u64, t: RigTime, trial: i64, onset: bool, pixels: &[u8]) {
        Counters::inc(&self.link.counters.flips);
        let _ = self.link.events.send(RecorderItem::Flip(FlipRecord {
            display_frame,
            t,
            trial,
            onset,
        }));
        let mut flip = Header::new(Stream::Flip, Dtype::U8, &[0], display_frame, t.as_nanos());
        flip.aux = trial;
        flip.flags = onset as u32;
        self.link.bus.publish(Message {
            header: flip,
            payload: Bytes::new(),
        });
        let mut view = Header::new(
            Stream::View,
            Dtype::U8,
            &[self.view.height as u32, self.view.width as u32],
            display_frame,
            t.as_nanos(),
        );
        view.aux = trial;
        view.flags = onset as u32;
        self.link.bus.publish(Message {
            header: view,
            payload: Bytes::copy_from_slice(pixels),
        });
    }
}

/// Wait for the first imaging frame's rig time (`None` if stopped first).
pub(crate) fn first_frame_t(
    latest_frame_t: &AtomicI64,
    stop: &AtomicBool,
    wake: &Wakeup,
) -> Option<RigTime> {
    loop {
        let t = latest_frame_t.load(Ordering::Acquire);
        if t != i64::MIN {
            return Some(RigTime::from_nanos(t));
        }
        if stop.load(Ordering::Acquire) {
            return None;
        }
        wake.wait(Duration::from_millis(5));
    }
}

/// The simulated monitor: lock-step with the imaging frames (see the module docs).
pub struct SimMonitor {
    link: RendererLink,
    params: RendererParams,
    clock: RendererClock,
    frame_period_ns: i64,
    wait_for_decisions: Option<Duration>,
}

/// What a renderer follows: the newest imaging frame's rig time, the session's stop flag and
/// its own wake-up (ingest wakes it at every frame).
#[derive(Clone)]
pub struct RendererClock {
    pub latest_frame_t: Arc<AtomicI64>,
    pub stop: Arc<AtomicBool>,
    pub wake: Arc<Wakeup>,
}

impl SimMonitor {
    /// `wait_for_decisions`: not in real time, wait this long for a decision at a trial's onset
    /// (see [`DecisionQueue::waiting`]); `None` in real time, where a late decision is an
    /// underrun.
    pub fn new(
        link: RendererLink,
        params: RendererParams,
        clock: RendererClock,
        frame_period_ns: i64,
        wait_for_decisions: Option<Duration>,
    ) -> SimMonitor {
        SimMonitor {
            link,
            params,
            clock,
            frame_period_ns,
            wait_for_decisions,
        }
    }

    pub fn run(self) -> RendererReport {
        let _span = tracing::info_span!("stage", name = "renderer").entered();
        self.clock.wake.register_current();
        let mut report = RendererReport::new("sim");
        let params = self.params;
        let Some(t0) = first_frame_t(
            &self.clock.latest_frame_t,
            &self.clock.stop,
            &self.clock.wake,
        ) else {
            return report;
        };
        // The first flip coincides with the first imaging frame; flip k at t0 + k periods.
        let period = (1e9 / params.refresh_hz).round() as i64;
        let flip_t = move |k: u64| t0.as_nanos() + k as i64 * period;
        let mut k = 0u64;
        let clock = move || {
            let t = flip_t(k);
            k += 1;
            t
        };
        let queue = DecisionQueue::new(self.link.queue.clone(), params.stimulus_s)
            .waiting(self.wait_for_decisions);
        let mut player = Player::new(
            queue,
            WithView::new(NoMonitor, params.view),
            clock,
            params.player_config(),
        );
        let mut sink = FlipSink::new(self.link, params.view);
        // In real time the monitor never flips faster than its refresh rate of wall time,
        // whatever rig time does (a bridge's clock gone wrong must not make it spin).
        let pace = self
            .wait_for_decisions
            .is_none()
            .then_some(params.refresh_hz);
        let started = std::time::Instant::now();
        loop {
            let latest = self.clock.latest_frame_t.load(Ordering::Acquire);
            let horizon = latest.saturating_add(self.frame_period_ns + period);
            let mut rendered = false;
            let mut paced = false;
            while flip_t(player.counts.flips) <= horizon {
                if let Some(rate) = pace {
                    let allowed = (started.elapsed().as_secs_f64() + PACE_SLACK_S) * rate;
                    if player.counts.flips as f64 >= allowed {
                        paced = true;
                        break;
                    }
                }
                sink.step(&mut player);
                rendered = true;
            }
            if !rendered || paced {
                if self.clock.stop.load(Ordering::Acquire) {
                    break;
                }
                self.clock.wake.wait(Duration::from_millis(2));
            }
        }
        report.take_counts(&player);
        report
    }
}
