//! The real-time display loop (`display.backend = "window"` or `"offscreen"`): the stimulus
//! player on the renderer thread, which owns the window (or the offscreen GPU renderer), paced
//! by vsync or by a timer, never waiting on the rest of the daemon.
//!
//! # Time
//! Flips are stamped on the host's monotonic clock mapped to rig time at the first imaging
//! frame (rig time of that frame ↔ the host time the renderer saw it): on a real rig the two
//! clocks are then reconciled offline by the sync fit; in a simulated session the simulated
//! mouse follows these flips (it waits for each view), so it runs at the display's pace.
//!
//! # Fallback
//! A window that cannot open (no X server, no adapter that presents) falls back to the
//! offscreen renderer; no GPU at all falls back to a monitor that draws only the view, paced
//! by the timer. Each is logged with its reason and kept in the summary; the session goes on
//! recording. A display that presents faster than `refresh_hz` (no vsync, as under Xvfb) is
//! paced by the timer too, with one warning.

use super::renderer::{
    DecisionQueue, FlipSink, NoMonitor, RendererClock, RendererLink, RendererParams,
    RendererReport, WithView, first_frame_t,
};
use crate::config::{DisplayBackend, DisplayConfig};
use crate::vocab::clock::host_monotonic_ns;
use std::sync::atomic::Ordering;
use std::time::Duration;
use twinloop_stimulus::gpu::AdapterSummary;
use twinloop_stimulus::photodiode::PatchFrame;
use twinloop_stimulus::player::{Display, GpuDisplay, Player};
use twinloop_stimulus::window::{WindowConfig, WindowDisplay};
use twinloop_stimulus::{FrameContent, GammaLut, MonitorGeometry, Projection};

/// The monitor a live loop shows frames on.
pub enum Monitor {
    Window(Box<WindowDisplay>),
    Offscreen(Box<GpuDisplay>),
    /// No GPU: the view only, paced by the timer.
    None,
}

impl Monitor {
    fn name(&self) -> &'static str {
        match self {
            Monitor::Window(_) => "window",
            Monitor::Offscreen(_) => "offscreen",
            Monitor::None => "none",
        }
    }

    /// Whether a present waits for vsync (else the loop paces itself with a timer).
    fn vsync(&self) -> bool {
        matches!(self, Monitor::Window(_))
    }
}

impl Display for Monitor {
    fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String> {
        match self {
            Monitor::Window(w) => w.show(content, patch),
            Monitor::Offscreen(g) => g.show(content, patch),
            Monitor::None => NoMonitor.show(content, patch),
        }
    }
}

fn describe(a: &AdapterSummary) -> String {
    format!("{} ({}, {})", a.name, a.backend, a.driver.trim())
}

/// Open the configured monitor on this thread, falling back as the module docs say. Returns
/// the monitor, what it runs on, and why it is not the configured one (if it is not).
pub fn open_monitor(
    backend: DisplayBackend,
    geometry: MonitorGeometry,
    gamma: &GammaLut,
    window: &WindowConfig,
) -> (Monitor, Option<String>, Option<String>) {
    let projection = Projection::Monitor(geometry);
    let mut fallback = None;
    if backend == DisplayBackend::Window {
        match WindowDisplay::open(projection, gamma.clone(), window) {
            Ok(w) => {
                let i = w.info();
                let device = format!(
                    "window {}x{} on {} ({}) by {}",
                    i.size.0,
                    i.size.1,
                    i.monitor,
                    i.format,
                    describe(&i.adapter)
                );
                return (Monitor::Window(Box::new(w)), Some(device), None);
            }
            Err(e) => {
                tracing::error!(error = %e, "the stimulus window could not open; falling back to the offscreen renderer");
                fallback = Some(format!("window: {e}"));
            }
        }
    }
    match GpuDisplay::new(projection, gamma.clone()) {
        Ok(g) => {
            let device = format!(
                "offscreen {}x{} on {}",
                geometry.width_px,
                geometry.height_px,
                describe(g.renderer.adapter())
            );
            (Monitor::Offscreen(Box::new(g)), Some(device), fallback)
        }
        Err(e) => {
            tracing::error!(error = %e, "no GPU renderer; showing the view only, paced by a timer");
            let why = match fallback {
                Some(w) => format!("{w}; offscreen: {e}"),
                None => format!("offscreen: {e}"),
            };
            (Monitor::None, None, Some(why))
        }
    }
}

/// The live display loop.
pub struct LiveRenderer {
    link: RendererLink,
    params: RendererParams,
    backend: DisplayBackend,
    geometry: MonitorGeometry,
    gamma: GammaLut,
    window: WindowConfig,
    clock: RendererClock,
    /// `[display.latency]` in ns (0 unmeasured): flip times are when the light arrives.
    latency_ns: i64,
}

impl LiveRenderer {
    /// The monitor `[display]` describes (`backend`: offscreen or window).
    pub fn new(
        link: RendererLink,
        params: RendererParams,
        display: &DisplayConfig,
        clock: RendererClock,
    ) -> LiveRenderer {
        LiveRenderer {
            link,
            params,
            backend: display.backend,
            geometry: display.monitor,
            gamma: display.gamma.clone().unwrap_or_default(),
            window: display.window.clone(),
            clock,
            latency_ns: display.latency.map_or(0, |l| l.shift_ns()),
        }
    }

    pub fn run(self) -> RendererReport {
        let _span = tracing::info_span!("stage", name = "renderer").entered();
        self.clock.wake.register_current();
        let params = self.params;
        // The window opens before the first frame, so a failure is known (and logged) early.
        let (monitor, device, fallback) =
            open_monitor(self.backend, self.geometry, &self.gamma, &self.window);
        let mut report = RendererReport::new(monitor.name());
        report.device = device;
        report.fallback = fallback;
        let Some(t0) = first_frame_t(
            &self.clock.latest_frame_t,
            &self.clock.stop,
            &self.clock.wake,
        ) else {
            return report;
        };
        let host0 = host_monotonic_ns();
        let latency_ns = self.latency_ns;
        let clock = move || t0.as_nanos() + (host_monotonic_ns() - host0) + latency_ns;
        let mut pacer = Pacer::new(params.refresh_hz, !monitor.vsync());
        let queue = DecisionQueue::new(self.link.queue.clone(), params.stimulus_s);
        let mut player = Player::new(
            queue,
            WithView::new(monitor, params.view),
            clock,
            params.player_config(),
        );
        let mut sink = FlipSink::new(self.link, params.view);
        while !self.clock.stop.load(Ordering::Acquire) {
            pacer.wait();
            let flip = sink.step(&mut player);
            pacer.flipped(flip.display_frame);
        }
        report.take_counts(&player);
        report.timer_paced = pacer.timer();
        tracing::info!(
            backend = %report.backend,
            flips = report.flips,
            missed_vsyncs = report.missed_vsyncs,
            mean_ms = report.flip_intervals.mean_ms,
            sd_ms = report.flip_intervals.sd_ms,
            "display loop ended"
        );
        report
    }
}

/// Paces the loop at the nominal rate when nothing else does (offscreen, or a window without
/// vsync): sleeps until the next due time, re-anchoring after a late frame rather than
/// bursting to catch up.
pub struct Pacer {
    period_ns: i64,
    timer: bool,
    due: Option<i64>,
    last: Option<i64>,
    fast: u32,
}

impl Pacer {
    pub fn new(rate_hz: f64, timer: bool) -> Pacer {
        Pacer {
            period_ns: (1e9 / rate_hz).round() as i64,
            timer,
            due: None,
            last: None,
            fast: 0,
        }
    }

    /// Sleep until the next flip is due (timer pacing only).
    pub fn wait(&mut self) {
        if !self.timer {
            return;
        }
        let now = host_monotonic_ns();
        match self.due {
            Some(due) if due > now => {
                std::thread::sleep(Duration::from_nanos((due - now) as u64));
                self.due = Some(due + self.period_ns);
            }
            // Late (or first): this flip goes now, the next one period on.
            _ => self.due = Some(now + self.period_ns),
        }
    }

    /// After each flip: a vsync'd display that keeps presenting in under half a period has
    /// no vsync (Xvfb, a compositor ignoring FIFO); from then on the timer paces it.
    pub fn flipped(&mut self, display_frame: u64) {
        let now = host_monotonic_ns();
        if !self.timer
            && let Some(last) = self.last
        {
            if now - last < self.period_ns / 2 {
                self.fast += 1;
            } else {
                self.fast = 0;
            }
            if self.fast >= 10 {
                tracing::warn!(
                    display_frame,
                    "the display presents faster than display.refresh_hz (no vsync, e.g. Xvfb, \
                     or the monitor runs at another rate); pacing with a timer"
                );
                self.timer = true;
            }
        }
        self.last = Some(now);
    }

    pub fn timer(&self) -> bool {
        self.timer
    }
}
