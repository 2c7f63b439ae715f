//! `twinloop bench display`: the display loop alone — drifting gratings through the stimulus
//! player on the stimulus window (or offscreen), paced exactly as the daemon paces it, and the
//! flip-interval statistics (mean, jitter, p99, missed vsyncs).
//!
//! ```text
//! twinloop bench display --seconds 600 --fullscreen --out bench-display.json   # a rig
//! twinloop bench display --seconds 60 --out bench-display.json                 # Xvfb
//! ```
//! With `--backend window` and `DISPLAY` unset it starts its own Xvfb, which has no vsync:
//! then the intervals measure the timer the loop falls back to, not a monitor.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::time::Instant;

use crate::config::DisplayBackend;
use crate::online::display::live::{Pacer, open_monitor};
use crate::vocab::clock::host_monotonic_ns;
use twinloop_stimulus::player::{
    Display, FlipStats, FlipSummary, Player, PlayerConfig, QueuedTrial, StimulusQueue,
};
use twinloop_stimulus::window::xvfb::Xvfb;
use twinloop_stimulus::window::{MonitorChoice, WindowConfig};
use twinloop_stimulus::{GammaLut, MonitorGeometry, PhotodiodePatch, StimulusSpec};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Window,
    Offscreen,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DisplayArgs {
    #[arg(long, value_enum, default_value_t = BackendArg::Window)]
    pub backend: BackendArg,
    /// Seconds of flips (10 minutes on a rig: 600).
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// The monitor's nominal refresh rate.
    #[arg(long, default_value_t = 60.0)]
    pub refresh_hz: f64,
    #[arg(long, default_value_t = 1920)]
    pub width: u32,
    #[arg(long, default_value_t = 1080)]
    pub height: u32,
    /// Borderless fullscreen (a rig); default a plain window.
    #[arg(long)]
    pub fullscreen: bool,
    /// Monitor index or name (default: the primary).
    #[arg(long)]
    pub monitor: Option<String>,
    /// Write the statistics as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Drifting gratings, one after another, never empty.
struct Gratings(u64);

impl StimulusQueue for Gratings {
    fn try_next(&mut self) -> Option<QueuedTrial> {
        self.0 += 1;
        Some(QueuedTrial {
            trial: self.0,
            spec: StimulusSpec::grating((self.0 * 45 % 360) as f64, 0.04, 2.0, 1.0, 0.0),
            duration_s: 2.0,
        })
    }
}

/// Times each `show` (render + present, including any wait for vsync).
struct Timed<D> {
    inner: D,
    show: FlipStats,
}

impl<D: Display> Display for Timed<D> {
    fn show(
        &mut self,
        content: &twinloop_stimulus::FrameContent,
        patch: &twinloop_stimulus::photodiode::PatchFrame,
    ) -> Result<(), String> {
        let t = host_monotonic_ns();
        let r = self.inner.show(content, patch);
        self.show.add(host_monotonic_ns() - t);
        r
    }
}

#[derive(Debug, serde::Serialize)]
struct DisplayBench {
    backend: String,
    device: Option<String>,
    fallback: Option<String>,
    virtual_x_server: bool,
    timer_paced: bool,
    seconds: f64,
    flips: u64,
    missed_vsyncs: u64,
    dropped_frames: u64,
    render_errors: u64,
    intervals: FlipSummary,
    /// Time in render + present per frame (ms).
    show: FlipSummary,
}

pub fn run(a: &DisplayArgs) -> Result<()> {
    if !(a.seconds > 0.0 && a.refresh_hz > 0.0) {
        bail!("--seconds and --refresh-hz must be positive");
    }
    let backend = match a.backend {
        BackendArg::Window => DisplayBackend::Window,
        BackendArg::Offscreen => DisplayBackend::Offscreen,
    };
    let xvfb = if matches!(a.backend, BackendArg::Window) && std::env::var_os("DISPLAY").is_none() {
        let x = Xvfb::start(97, a.width.max(640), a.height.max(480)).map_err(anyhow::Error::msg)?;
        tracing::warn!(display = %x.display, "DISPLAY unset: started Xvfb, which has no vsync");
        // SAFETY: set before any other thread exists in this command.
        unsafe { std::env::set_var("DISPLAY", &x.display) };
        Some(x)
    } else {
        None
    };
    let geometry = MonitorGeometry {
        width_px: a.width,
        height_px: a.height,
        ..MonitorGeometry::default()
    };
    let window = WindowConfig {
        monitor: a.monitor.as_ref().map(|m| match m.parse() {
            Ok(i) => MonitorChoice::Index(i),
            Err(_) => MonitorChoice::Name(m.clone()),
        }),
        fullscreen: a.fullscreen,
    };
    let (monitor, device, fallback) =
        open_monitor(backend, geometry, &GammaLut::identity(), &window);
    let name = match &monitor {
        crate::online::display::live::Monitor::Window(_) => "window",
        crate::online::display::live::Monitor::Offscreen(_) => "offscreen",
        crate::online::display::live::Monitor::None => "none",
    };
    let vsync = name == "window";
    let config = PlayerConfig {
        rate_hz: a.refresh_hz,
        gray_s: 0.0,
        patch: PhotodiodePatch::default(),
    };
    let display = Timed {
        inner: monitor,
        show: FlipStats::new(a.refresh_hz),
    };
    let mut player = Player::new(Gratings(0), display, host_monotonic_ns, config);
    let mut pacer = Pacer::new(a.refresh_hz, !vsync);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < a.seconds {
        pacer.wait();
        let f = player.step();
        pacer.flipped(f.display_frame);
    }
    let result = DisplayBench {
        backend: name.into(),
        device,
        fallback,
        virtual_x_server: xvfb.is_some(),
        timer_paced: pacer.timer(),
        seconds: started.elapsed().as_secs_f64(),
        flips: player.counts.flips,
        missed_vsyncs: player.counts.missed_vsyncs,
        dropped_frames: player.counts.dropped_frames,
        render_errors: player.counts.render_errors,
        intervals: player.stats.summary(),
        show: player.display.show.summary(),
    };
    let i = &result.intervals;
    println!(
        "display bench: {} on {}{}",
        result.backend,
        result.device.as_deref().unwrap_or("(no GPU)"),
        if result.virtual_x_server {
            " — Xvfb, no real display, no vsync"
        } else {
            ""
        }
    );
    println!(
        "  {} flips in {:.1} s, paced by {}",
        result.flips,
        result.seconds,
        if result.timer_paced {
            "a timer"
        } else {
            "vsync"
        }
    );
    println!(
        "  interval mean {:.3} ms, sd (jitter) {:.3} ms, p50 {:.1}, p99 {:.1}, max {:.1} ms (nominal {:.3})",
        i.mean_ms, i.sd_ms, i.p50_ms, i.p99_ms, i.max_ms, i.nominal_ms
    );
    println!(
        "  missed vsyncs {}, dropped frames {}, render errors {}; render+present median {:.1} ms, p99 {:.1} ms",
        result.missed_vsyncs,
        result.dropped_frames,
        result.render_errors,
        result.show.p50_ms,
        result.show.p99_ms
    );
    if let Some(out) = &a.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}
