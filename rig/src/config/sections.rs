//! The sections of the session's config that no stage owns: the session itself, the source,
//! the cameras, the display, the rings and the dashboard. Each checks itself ([`Section`]).

use crate::sim::TwinSourceConfig;
use crate::vocab::section::{Invalid, MAX_DEVICE_RATE_HZ, MAX_SESSION_S, MAX_WAIT_S, Section};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use twinloop_stimulus::ViewGeometry;

/// The live dashboard (`[dashboard]`), served over HTTP while the session runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    pub enabled: bool,
    /// `host:port`; port 0 picks a free one (the URL is logged). Anything but a loopback
    /// address needs `token`.
    pub bind: String,
    /// Required on every request when set (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// Connections served at once; more wait in the kernel's backlog until one closes, so a
    /// flood of clients cannot take the daemon's file descriptors.
    pub max_connections: usize,
    /// A client that has not sent its request headers within this many seconds is dropped.
    pub header_timeout_s: f64,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            enabled: false,
            bind: "127.0.0.1:8787".into(),
            token: None,
            max_connections: 64,
            header_timeout_s: 10.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Name used in the session directory.
    pub name: String,
    /// Session length in seconds of rig time.
    pub duration_s: f64,
    /// Pace the simulated rig to the wall clock; `false` runs as fast as the pipeline consumes.
    pub realtime: bool,
    /// Root under which each run makes its session directory.
    pub out_dir: PathBuf,
    /// Seed of every random choice the daemon makes (the selector).
    pub seed: u64,
    /// Also write raw two-photon and eye-camera pixels into the session log (needed to replay
    /// the imaging pipeline; about 15 MiB/s for 512x512 at 30 Hz).
    pub record_frames: bool,
    /// Show a progress bar on the terminal.
    pub progress: bool,
    /// What a failed write to the session log (a full disk) does: `"stop"` ends the session
    /// cleanly; `"continue"` keeps it running with nothing recorded, the status flag up.
    pub on_log_error: LogErrorPolicy,
    /// Sync the session log to the storage device this often (seconds; 0: only at the end).
    /// An ack or a publication means a frame is written out of the process, which survives
    /// kill -9; what survives a power loss is what was synced.
    pub fsync_every_s: f64,
    /// The most the session's preallocated buffers may take, in MiB (0: half of this
    /// machine's physical memory). A config that needs more is refused before anything is
    /// allocated, naming the fields that cost most (`config::memory`).
    pub memory_budget_mib: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            name: "session".into(),
            duration_s: 60.0,
            realtime: true,
            out_dir: "sessions".into(),
            seed: 1,
            record_frames: false,
            progress: true,
            fsync_every_s: 1.0,
            on_log_error: LogErrorPolicy::Stop,
            memory_budget_mib: 0,
        }
    }
}

/// What a failed write to the session log does (`session.on_log_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogErrorPolicy {
    /// End the session cleanly: nothing more can be recorded.
    #[default]
    Stop,
    /// Keep the session running (the display, the loop), recording nothing, the flag up.
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The simulated rig runs in-process and speaks the wire protocol over the same sockets.
    Sim,
    /// An external bridge (a microscope, `twinloop sim-rig`, a Python script) connects.
    Bridge,
    /// The simulated rig with a fitted twin's units as its cells (`[source.twin]`): the
    /// stimulus shown and the simulated behaviour drive the twin, its predicted rates the
    /// spikes, and the microscope and imaging pipeline run unchanged (`sim/twin_source.rs`).
    Twin,
}

impl SourceKind {
    /// The simulated rig runs in-process (`sim`, and `twin`, which is the simulator with a
    /// twin's cells): it ends the session itself and knows the truth.
    pub fn in_process(self) -> bool {
        matches!(self, SourceKind::Sim | SourceKind::Twin)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Endpoint the daemon binds a PULL socket on for rig data (`tcp://host:port`, port 0 picks
    /// a free one, or `ipc:///path`).
    pub ingest: String,
    /// Endpoint the daemon binds a PUB socket on for what it publishes.
    pub publish: String,
    /// End the session when no input arrives for this long (seconds).
    pub idle_timeout_s: f64,
    /// Frames a sender may have in flight before the daemon's ack (credit-based flow control).
    pub flow_window: u32,
    /// A sample whose time moves further than this (seconds, or 100 of its stream's recent
    /// intervals if longer) from the stream's last accepted time is refused as a `time_jump`.
    pub max_time_jump_s: f64,
    /// The twin that stands in for the mouse with `kind = "twin"`: `weights`, `config`,
    /// `noise`, `mode`, `behaviour`, `seed`, `standardisation` (`sim/twin_source.rs` documents
    /// each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twin: Option<TwinSourceConfig>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Sim,
            ingest: "tcp://127.0.0.1:0".into(),
            publish: "tcp://127.0.0.1:0".into(),
            idle_timeout_s: 10.0,
            flow_window: 32,
            max_time_jump_s: 10.0,
            twin: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EyeConfig {
    pub width: u32,
    pub height: u32,
    pub frame_rate_hz: f64,
}

impl Default for EyeConfig {
    fn default() -> Self {
        EyeConfig {
            width: 320,
            height: 240,
            frame_rate_hz: 60.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreadmillConfig {
    pub sample_rate_hz: f64,
}

impl Default for TreadmillConfig {
    fn default() -> Self {
        TreadmillConfig {
            sample_rate_hz: 100.0,
        }
    }
}

/// Which monitor the stimulus player shows frames on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayBackend {
    /// The simulated monitor: flips on a clock that follows the imaging frames (lock-step),
    /// so a simulated session is deterministic at any speed. Renders only the view.
    #[default]
    Sim,
    /// The wgpu renderer offscreen at the monitor's resolution, paced by a timer at
    /// `refresh_hz` on the host clock (a rig without a monitor, or a test).
    Offscreen,
    /// The stimulus monitor: a fullscreen window (`[display.window]`), paced by vsync.
    Window,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// "sim" (default), "offscreen" or "window". A window or GPU that cannot start falls back
    /// (logged) to "offscreen", then to a timer-paced monitor that renders only the view.
    pub backend: DisplayBackend,
    pub refresh_hz: f64,
    /// The twin-resolution view rendered for the twin and the simulated mouse.
    pub view_width: usize,
    pub view_height: usize,
    pub azimuth_deg: (f64, f64),
    pub elevation_deg: (f64, f64),
    /// The stimulus monitor's pixels, size and pose (spherical correction); "offscreen" and
    /// "window" render at its resolution. `twinloop calibrate geometry` writes it.
    pub monitor: twinloop_stimulus::MonitorGeometry,
    /// Which monitor and whether fullscreen ("window").
    pub window: twinloop_stimulus::window::WindowConfig,
    /// The photodiode patch drawn on the monitor's frames.
    pub photodiode: twinloop_stimulus::PhotodiodePatch,
    /// The inverse gamma LUT, `{ table = [256 drive levels] }` (`twinloop calibrate gamma`);
    /// none: identity (a linear or already linearised monitor).
    pub gamma: Option<twinloop_stimulus::GammaLut>,
    /// From a logged flip to its light on the screen, measured with a photodiode (`twinloop
    /// calibrate latency`); when set, the live display's flip times are when the light arrives.
    pub latency: Option<DisplayLatency>,
}

/// `[display.latency]`: the measured delay from a flip's timestamp to the light on the screen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayLatency {
    /// The median delay, ms; added to every flip time of a live display (window, offscreen).
    pub ms: f64,
    /// The delays' standard deviation, ms (recorded, not applied).
    #[serde(default)]
    pub jitter_ms: f64,
}

impl DisplayLatency {
    /// The shift applied to flip times, ns.
    pub fn shift_ns(&self) -> i64 {
        (self.ms * 1e6).round() as i64
    }
}

impl Default for DisplayConfig {
    fn default() -> Self {
        let v = ViewGeometry::default();
        DisplayConfig {
            backend: DisplayBackend::Sim,
            refresh_hz: 60.0,
            view_width: v.width,
            view_height: v.height,
            azimuth_deg: v.azimuth_deg,
            elevation_deg: v.elevation_deg,
            monitor: twinloop_stimulus::MonitorGeometry::default(),
            window: twinloop_stimulus::window::WindowConfig::default(),
            photodiode: twinloop_stimulus::PhotodiodePatch::default(),
            gamma: None,
            latency: None,
        }
    }
}

impl DisplayConfig {
    pub fn view(&self) -> ViewGeometry {
        ViewGeometry {
            width: self.view_width,
            height: self.view_height,
            azimuth_deg: self.azimuth_deg,
            elevation_deg: self.elevation_deg,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingsConfig {
    /// Preallocated two-photon frame buffers (each width*height u16).
    pub frame_pool: usize,
    /// Ring from ingest to the imaging stage; when full, that stage skips frames (counted).
    pub stage_ring: usize,
    /// Ring from ingest to the recorder; when full, ingest waits (the recorder loses nothing).
    pub recorder_ring: usize,
}

impl Default for RingsConfig {
    fn default() -> Self {
        RingsConfig {
            frame_pool: 256,
            stage_ring: 32,
            recorder_ring: 192,
        }
    }
}

impl Section for SessionConfig {
    const NAME: &'static str = "session";

    fn validate(&self) -> Result<(), Invalid> {
        Invalid::non_negative_at_most(
            "session.fsync_every_s",
            self.fsync_every_s,
            MAX_WAIT_S,
            "seconds",
        )?;
        Invalid::positive_at_most(
            "session.duration_s",
            self.duration_s,
            MAX_SESSION_S,
            "seconds",
        )
    }
}

impl Section for SourceConfig {
    const NAME: &'static str = "source";

    fn validate(&self) -> Result<(), Invalid> {
        let s = "seconds";
        Invalid::positive_at_most("source.idle_timeout_s", self.idle_timeout_s, MAX_WAIT_S, s)?;
        Invalid::positive_at_most(
            "source.max_time_jump_s",
            self.max_time_jump_s,
            MAX_WAIT_S,
            s,
        )?;
        Invalid::in_range(
            "source.flow_window",
            self.flow_window.into(),
            1,
            4096,
            "1 ..= 4096 frames",
        )?;
        // Loading the twin (its files, their fit) is checked with the rig it must fit on, in
        // `Config::validate`.
        if self.kind == SourceKind::Twin && self.twin.is_none() {
            return Err(Invalid::new(
                "source.twin",
                "(missing)",
                "required with source.kind = \"twin\": add [source.twin] with weights = \
                 \"<dir>/twin.safetensors\" and config = \"<dir>/config.json\" (as `twinloop \
                 twin fit` writes them)",
            ));
        }
        Ok(())
    }
}

impl Section for EyeConfig {
    const NAME: &'static str = "eye";

    fn validate(&self) -> Result<(), Invalid> {
        let px = "1 ..= 4096 pixels";
        Invalid::in_range("eye.width", self.width.into(), 1, 4096, px)?;
        Invalid::in_range("eye.height", self.height.into(), 1, 4096, px)?;
        Invalid::positive_at_most(
            "eye.frame_rate_hz",
            self.frame_rate_hz,
            MAX_DEVICE_RATE_HZ,
            "Hz",
        )
    }
}

impl Section for TreadmillConfig {
    const NAME: &'static str = "treadmill";

    fn validate(&self) -> Result<(), Invalid> {
        Invalid::positive_at_most(
            "treadmill.sample_rate_hz",
            self.sample_rate_hz,
            MAX_DEVICE_RATE_HZ,
            "Hz",
        )
    }
}

/// A display slower than this from flip to light is broken, not late (LCDs are 10–50 ms).
const MAX_DISPLAY_LATENCY_MS: f64 = 1000.0;

impl Section for DisplayConfig {
    const NAME: &'static str = "display";

    fn validate(&self) -> Result<(), Invalid> {
        Invalid::positive_at_most(
            "display.refresh_hz",
            self.refresh_hz,
            MAX_DEVICE_RATE_HZ,
            "Hz",
        )?;
        if self.backend != DisplayBackend::Sim {
            self.monitor.validate().map_err(|e| {
                // The stimulus crate names the field after `monitor.`; keep its message whole.
                Invalid::new("display.monitor", "", format!("display.{e}"))
            })?;
        }
        if let Some(l) = &self.latency {
            Invalid::non_negative_at_most(
                "display.latency.ms",
                l.ms,
                MAX_DISPLAY_LATENCY_MS,
                "ms",
            )?;
            Invalid::non_negative_at_most(
                "display.latency.jitter_ms",
                l.jitter_ms,
                MAX_DISPLAY_LATENCY_MS,
                "ms",
            )?;
        }
        let px = "4 ..= 4096 pixels";
        Invalid::in_range("display.view_width", self.view_width as u64, 4, 4096, px)?;
        Invalid::in_range("display.view_height", self.view_height as u64, 4, 4096, px)
    }
}

impl Section for RingsConfig {
    const NAME: &'static str = "rings";

    fn validate(&self) -> Result<(), Invalid> {
        let slots = "1 ..= 65536";
        Invalid::in_range(
            "rings.stage_ring",
            self.stage_ring as u64,
            1,
            1 << 16,
            slots,
        )?;
        Invalid::in_range(
            "rings.recorder_ring",
            self.recorder_ring as u64,
            1,
            1 << 16,
            slots,
        )?;
        let needed = self.stage_ring + self.recorder_ring + 4;
        if self.frame_pool < needed {
            return Err(Invalid::new(
                "rings.frame_pool",
                self.frame_pool,
                "must be at least rings.stage_ring + rings.recorder_ring + 4",
            ));
        }
        // What the pool costs in memory is checked across sections (`config::memory`).
        Ok(())
    }
}

impl Section for DashboardSettings {
    const NAME: &'static str = "dashboard";

    /// A dashboard asked for must be able to start: a bad address or token is an error before
    /// the session begins, not a session that runs without its dashboard.
    fn validate(&self) -> Result<(), Invalid> {
        Invalid::in_range(
            "dashboard.max_connections",
            self.max_connections as u64,
            1,
            1024,
            "1 ..= 1024 connections at once",
        )?;
        Invalid::positive_at_most(
            "dashboard.header_timeout_s",
            self.header_timeout_s,
            MAX_WAIT_S,
            "seconds",
        )?;
        if !self.enabled {
            return Ok(());
        }
        let bind: std::net::SocketAddr = self.bind.parse().map_err(|e| {
            Invalid::new(
                "dashboard.bind",
                format!("{:?}", self.bind),
                format!("must be an IP address and port such as \"127.0.0.1:8787\" ({e})"),
            )
        })?;
        match &self.token {
            Some(t) if t.trim().is_empty() => Err(Invalid::new(
                "dashboard.token",
                "\"\"",
                "must not be empty: set a token, or remove the line (loopback binds only)",
            )),
            None if !bind.ip().is_loopback() => Err(Invalid::new(
                "dashboard.token",
                "(missing)",
                format!(
                    "required because dashboard.bind = {bind} is not a loopback address: set a \
                     token (clients add ?token=...) or bind to 127.0.0.1"
                ),
            )),
            _ => Ok(()),
        }
    }
}
