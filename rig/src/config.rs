//! Session and rig configuration: one TOML file, every section a `deny_unknown_fields` struct
//! whose doc comments are the reference. `configs/sim.toml` is embedded as the default.

use crate::sim::SimConfig;
use crate::stages::behaviour::BehaviourStageConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;
use twinloop_stimulus::ViewGeometry;

/// The embedded default: a full simulated closed-loop session.
pub const DEFAULT_SIM_TOML: &str = include_str!("../../configs/sim.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config: `{field}` = {value}: {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// A section's own check failed (its message names the field and the fix).
    #[error("invalid config: {0}")]
    Section(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub session: SessionConfig,
    pub source: SourceConfig,
    pub imaging: ImagingConfig,
    #[serde(default)]
    pub eye: EyeConfig,
    #[serde(default)]
    pub treadmill: TreadmillConfig,
    #[serde(default)]
    pub display: DisplayConfig,
    #[serde(default)]
    pub trials: TrialsConfig,
    #[serde(default)]
    pub rings: RingsConfig,
    #[serde(default)]
    pub behaviour: BehaviourStageConfig,
    #[serde(default)]
    pub sim: SimConfig,
    #[serde(default)]
    pub dashboard: DashboardSettings,
    /// Which streams carry device times, and the online clock fit (`sources/clocks.rs`).
    #[serde(default)]
    pub clocks: crate::sources::clocks::ClocksConfig,
    /// The frozen core the adaptive selector's readouts read (`[twin]`).
    #[serde(default)]
    pub twin: TwinSettings,
}

/// Which frozen core the closed loop's twin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreKind {
    /// A fixed motion-energy bank (`twinloop_model::energy_core`): no learned features; the
    /// baseline the pretrained core is measured against.
    Energy,
    /// An fnn twin's core (perspective, modulation at rest, streams) from `weights`.
    Fnn,
    /// The fnn-architecture core pretrained on simulated mice that ships inside the binary
    /// (`twinloop_model::pretrained`, `model/weights/sim/`).
    Pretrained,
}

/// The twin's frozen core (`[twin]`): the features every online readout reads, on a grid of
/// positions over the display view. Sessions logged before this section existed parse as the
/// energy bank on a 6 x 10 grid, which is what they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwinSettings {
    /// `"pretrained"` (the embedded core; `configs/sim.toml`), `"energy"` (the fixed
    /// motion-energy bank; the serde default, what sessions logged before this section ran) or
    /// `"fnn"` (a core from `weights`).
    pub core: CoreKind,
    /// `core = "fnn"`: safetensors with fnn's state-dict names (see
    /// `model/scripts/convert_fnn.py`).
    pub weights: Option<PathBuf>,
    /// `core = "fnn"`: the network's config JSON (`twinloop_model::TwinConfig`); default: fnn's
    /// released network sized to the weights' units.
    pub config: Option<PathBuf>,
    /// Rows of readout positions over the view (each cell's readout reads between them).
    pub grid_rows: usize,
    /// Columns of readout positions over the view.
    pub grid_cols: usize,
    /// `core = "fnn"`: mean-gray frames the core runs before each clip, so a clip starts as a
    /// trial does, after the inter-trial gray.
    pub preroll_frames: usize,
}

impl Default for TwinSettings {
    fn default() -> Self {
        TwinSettings {
            core: CoreKind::Energy,
            weights: None,
            config: None,
            grid_rows: 6,
            grid_cols: 10,
            preroll_frames: 10,
        }
    }
}

impl TwinSettings {
    /// Ranges and required fields; whether the files load is checked when the core is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("twin.grid_rows", self.grid_rows),
            ("twin.grid_cols", self.grid_cols),
        ] {
            if !(1..=64).contains(&v) {
                return Err(ConfigError::Invalid {
                    field,
                    value: v.to_string(),
                    allowed: "1 ..= 64 positions",
                });
            }
        }
        if self.preroll_frames > 10_000 {
            return Err(ConfigError::Invalid {
                field: "twin.preroll_frames",
                value: self.preroll_frames.to_string(),
                allowed: "0 ..= 10000 frames",
            });
        }
        if self.core == CoreKind::Fnn && self.weights.is_none() {
            return Err(ConfigError::Invalid {
                field: "twin.weights",
                value: "(missing)".into(),
                allowed: "required when twin.core = \"fnn\": the path of the core's safetensors weights (or use twin.core = \"pretrained\")",
            });
        }
        Ok(())
    }
}

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
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            enabled: false,
            bind: "127.0.0.1:8787".into(),
            token: None,
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The simulated rig runs in-process and speaks the wire protocol over the same sockets.
    Sim,
    /// An external bridge (a microscope, `twinloop sim-rig`, a Python script) connects.
    Bridge,
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
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Sim,
            ingest: "tcp://127.0.0.1:0".into(),
            publish: "tcp://127.0.0.1:0".into(),
            idle_timeout_s: 10.0,
            flow_window: 32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extraction {
    /// PLACEHOLDER: mean over each simulated cell's true footprint (from the simulator's truth).
    TruthFootprints,
    /// PLACEHOLDER: mean over square blocks tiling the frame, one "cell" per block.
    Grid,
    /// The imaging pipeline: registration, cell detection, dF/F and online deconvolution
    /// (`[imaging.pipeline]`).
    Pipeline,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagingConfig {
    pub width: u32,
    pub height: u32,
    pub planes: u8,
    pub channels: u8,
    pub frame_rate_hz: f64,
    pub extraction: Extraction,
    /// Block size for `extraction = "grid"`.
    pub grid_block_px: u32,
    /// A frame whose activity is published later than this after arrival counts as late.
    pub late_after_ms: f64,
    /// Parameters of `extraction = "pipeline"` (suite2p's and OASIS's defaults).
    pub pipeline: crate::stages::imaging::ImagingParams,
    /// A saved calibration to reuse instead of detecting cells (`extraction = "pipeline"`): an
    /// earlier session's `calibration` directory (holding `plane0/`, `plane1/`, ...). Each
    /// plane's saved masks are moved onto this session's field of view.
    pub masks: Option<std::path::PathBuf>,
}

impl Default for ImagingConfig {
    fn default() -> Self {
        ImagingConfig {
            width: 512,
            height: 512,
            planes: 1,
            channels: 1,
            frame_rate_hz: 30.0,
            extraction: Extraction::TruthFootprints,
            grid_block_px: 32,
            late_after_ms: 5.0,
            pipeline: Default::default(),
            masks: None,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Uniform random choice from the candidate pool, no design rules (no test block).
    Random,
    /// The closed loop: the twin's readouts learn online and `[trials.design]` chooses
    /// (objective, random share, test block, kind cap, fallback, deadline).
    Adaptive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrialsConfig {
    /// How long each stimulus is shown (seconds).
    pub stimulus_s: f64,
    /// Inter-trial gray at mean luminance (seconds).
    pub gray_s: f64,
    pub policy: Policy,
    /// How long after a stimulus ends its responses are awaited before the next trial is
    /// decided (seconds): the stimulus-to-activity delay and the calcium indicator's rise, so
    /// each decision sees the trial before it whole.
    pub response_wait_s: f64,
    /// The next trial is decided this long before its onset at the latest (seconds), with the
    /// responses seen so far: the time the decision has to be computed and queued. Set it to a
    /// whole trial (`stimulus_s + gray_s`) to decide a trial ahead, without the last trial's
    /// responses.
    pub decision_lead_s: f64,
    /// The adaptive design (used when `policy = "adaptive"`).
    pub design: crate::scheduler::design::DesignConfig,
}

impl Default for TrialsConfig {
    fn default() -> Self {
        TrialsConfig {
            stimulus_s: 2.0,
            gray_s: 1.0,
            policy: Policy::Adaptive,
            response_wait_s: 0.2,
            decision_lead_s: 0.5,
            design: crate::scheduler::design::DesignConfig::default(),
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

impl Config {
    /// The embedded default (`configs/sim.toml`).
    pub fn default_sim() -> Config {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Config::from_toml(DEFAULT_SIM_TOML, "configs/sim.toml (embedded)")
            .expect("embedded configs/sim.toml is valid")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: format!(" {origin}"),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check ranges that serde cannot; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(field: &'static str, v: f64) -> Result<(), ConfigError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    field,
                    value: v.to_string(),
                    allowed: "must be a positive number",
                })
            }
        }
        fn range(
            field: &'static str,
            v: u64,
            lo: u64,
            hi: u64,
            allowed: &'static str,
        ) -> Result<(), ConfigError> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    field,
                    value: v.to_string(),
                    allowed,
                })
            }
        }
        positive("session.duration_s", self.session.duration_s)?;
        positive("source.idle_timeout_s", self.source.idle_timeout_s)?;
        range(
            "source.flow_window",
            self.source.flow_window as u64,
            1,
            4096,
            "1 ..= 4096 frames",
        )?;
        range(
            "imaging.width",
            self.imaging.width as u64,
            8,
            8192,
            "8 ..= 8192 pixels",
        )?;
        range(
            "imaging.height",
            self.imaging.height as u64,
            8,
            8192,
            "8 ..= 8192 pixels",
        )?;
        range(
            "imaging.planes",
            self.imaging.planes as u64,
            1,
            64,
            "1 ..= 64",
        )?;
        range(
            "imaging.channels",
            self.imaging.channels as u64,
            1,
            4,
            "1 ..= 4",
        )?;
        positive("imaging.frame_rate_hz", self.imaging.frame_rate_hz)?;
        range(
            "imaging.grid_block_px",
            self.imaging.grid_block_px as u64,
            2,
            512,
            "2 ..= 512 pixels",
        )?;
        positive("eye.frame_rate_hz", self.eye.frame_rate_hz)?;
        positive("treadmill.sample_rate_hz", self.treadmill.sample_rate_hz)?;
        positive("display.refresh_hz", self.display.refresh_hz)?;
        if self.display.backend != DisplayBackend::Sim {
            self.display
                .monitor
                .validate()
                .map_err(|e| ConfigError::Section(format!("display.{e}")))?;
        }
        range(
            "display.view_width",
            self.display.view_width as u64,
            4,
            4096,
            "4 ..= 4096 pixels",
        )?;
        range(
            "display.view_height",
            self.display.view_height as u64,
            4,
            4096,
            "4 ..= 4096 pixels",
        )?;
        positive("trials.stimulus_s", self.trials.stimulus_s)?;
        if !(self.trials.gray_s.is_finite() && self.trials.gray_s >= 0.0) {
            return Err(ConfigError::Invalid {
                field: "trials.gray_s",
                value: self.trials.gray_s.to_string(),
                allowed: "must be zero or a positive number of seconds",
            });
        }
        if !(self.trials.response_wait_s.is_finite() && self.trials.response_wait_s >= 0.0) {
            return Err(ConfigError::Invalid {
                field: "trials.response_wait_s",
                value: self.trials.response_wait_s.to_string(),
                allowed: "must be zero or a positive number of seconds",
            });
        }
        // The last moment to decide must come while imaging frames still arrive before the
        // onset: a few frame periods of every plane, and a display frame.
        let lead_min_s = 3.0 * f64::from(self.imaging.planes.max(1)) / self.imaging.frame_rate_hz
            + 1.0 / self.display.refresh_hz;
        if !(self.trials.decision_lead_s.is_finite() && self.trials.decision_lead_s >= lead_min_s) {
            return Err(ConfigError::Invalid {
                field: "trials.decision_lead_s",
                value: self.trials.decision_lead_s.to_string(),
                allowed: "must be at least three imaging frame periods (every plane's) plus one \
                          display frame, in seconds (0.5 s by default)",
            });
        }
        self.trials
            .design
            .validate()
            .map_err(ConfigError::Section)?;
        range(
            "rings.stage_ring",
            self.rings.stage_ring as u64,
            1,
            1 << 16,
            "1 ..= 65536",
        )?;
        range(
            "rings.recorder_ring",
            self.rings.recorder_ring as u64,
            1,
            1 << 16,
            "1 ..= 65536",
        )?;
        let needed = self.rings.stage_ring + self.rings.recorder_ring + 4;
        if self.rings.frame_pool < needed {
            return Err(ConfigError::Invalid {
                field: "rings.frame_pool",
                value: self.rings.frame_pool.to_string(),
                allowed: "must be at least rings.stage_ring + rings.recorder_ring + 4",
            });
        }
        if self.imaging.pipeline.channel >= self.imaging.channels {
            return Err(ConfigError::Invalid {
                field: "imaging.pipeline.channel",
                value: self.imaging.pipeline.channel.to_string(),
                allowed: "must be below imaging.channels (channels count from 0)",
            });
        }
        if self.imaging.extraction == Extraction::TruthFootprints
            && self.source.kind != SourceKind::Sim
        {
            return Err(ConfigError::Invalid {
                field: "imaging.extraction",
                value: "\"truth_footprints\"".into(),
                allowed: "needs source.kind = \"sim\" (only the simulator knows true footprints); use \"grid\"",
            });
        }
        // PLACEHOLDER: the true-footprint extractor holds one plane's masks (the simulator's
        // plane 0); several planes need the pipeline, which detects each plane's own cells.
        if self.imaging.extraction == Extraction::TruthFootprints && self.imaging.planes > 1 {
            return Err(ConfigError::Invalid {
                field: "imaging.extraction",
                value: "\"truth_footprints\"".into(),
                allowed: "gives one plane's cells; with imaging.planes > 1 use \"pipeline\" (each plane's own cells) or \"grid\"",
            });
        }
        self.clocks.validate().map_err(ConfigError::Section)?;
        self.twin.validate()?;
        Ok(())
    }

    /// The simulated rig on the simulated monitor, not in real time: the simulator follows the
    /// display, which follows the imaging frames, so the whole rig runs as fast as the CPU
    /// allows and waits where it must (for the twin's next decision, say).
    pub fn lockstep(&self) -> bool {
        self.source.kind == SourceKind::Sim
            && self.display.backend == DisplayBackend::Sim
            && !self.session.realtime
    }

    /// Trials a session of `session.duration_s` shows when none starts late (an upper bound).
    pub fn planned_trials(&self) -> Option<u64> {
        let trial_s = self.trials.stimulus_s + self.trials.gray_s;
        (self.session.duration_s.is_finite() && trial_s > 0.0)
            .then(|| (self.session.duration_s / trial_s).floor() as u64)
    }

    pub fn frame_period_ns(&self) -> i64 {
        (1e9 / self.imaging.frame_rate_hz).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_validates() {
        let c = Config::default_sim();
        assert_eq!(c.source.kind, SourceKind::Sim);
        assert_eq!(c.session.duration_s, 90.0);
        assert_eq!(c.trials.policy, Policy::Adaptive);
        // 90 s of 2 s stimuli and 1 s gray: 30 trials, as the main job shows.
        assert_eq!(c.planned_trials(), Some(30));
    }

    #[test]
    fn unknown_field_is_named() {
        let text = DEFAULT_SIM_TOML.replace("[imaging]", "[imaging]\nwidht = 3");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("widht"), "{e}");
    }

    #[test]
    fn out_of_range_value_names_field_and_allowed() {
        let text = DEFAULT_SIM_TOML.replace("frame_rate_hz = 30.0", "frame_rate_hz = -3.0");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("imaging.frame_rate_hz") && e.contains("positive"),
            "{e}"
        );
    }

    #[test]
    fn several_planes_of_true_footprints_point_to_the_pipeline() {
        let text = DEFAULT_SIM_TOML
            .replace("planes = 1", "planes = 2")
            .replace(
                "extraction = \"pipeline\"",
                "extraction = \"truth_footprints\"",
            );
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("imaging.extraction") && e.contains("\"pipeline\""),
            "{e}"
        );
        // The pipeline detects each plane's own cells: two simulated planes are fine.
        let text = DEFAULT_SIM_TOML.replace("planes = 1", "planes = 2");
        assert_eq!(
            Config::from_toml(&text, "t.toml").unwrap().imaging.planes,
            2
        );
    }

    #[test]
    fn a_bad_design_setting_is_named() {
        let text = DEFAULT_SIM_TOML.replace("random_share = 0.5", "random_share = 1.5");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("trials.design.random_share"), "{e}");
        let text = DEFAULT_SIM_TOML.replace("decision_lead_s = 0.5", "decision_lead_s = 0.05");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("trials.decision_lead_s") && e.contains("three imaging frame periods"),
            "{e}"
        );
        let text = DEFAULT_SIM_TOML.replace("response_wait_s = 0.2", "response_wait_s = -1.0");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("trials.response_wait_s"), "{e}");
        let text = DEFAULT_SIM_TOML.replace("objective = \"info_gain\"", "objective = \"bogus\"");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("bogus") && e.contains("info_gain"), "{e}");
    }

    #[test]
    fn the_display_section_reads_a_live_monitor_and_names_bad_fields() {
        let gamma = (0..256)
            .map(|i| (i as f64 / 255.0).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let text = DEFAULT_SIM_TOML
            .replace(
                "backend = \"sim\"",
                &format!("backend = \"window\"\ngamma = {{ table = [{gamma}] }}"),
            )
            .replace(
                "[trials]\n",
                "[display.window]\nmonitor = \"DP-1\"\nfullscreen = false\n\
                 [display.monitor]\nwidth_px = 2560\nheight_px = 1440\nwidth_cm = 60.0\n\
                 height_cm = 34.0\ndistance_cm = 20.0\n[trials]\n",
            );
        let c = Config::from_toml(&text, "t.toml").unwrap();
        assert_eq!(c.display.backend, DisplayBackend::Window);
        assert_eq!(c.display.monitor.width_px, 2560);
        assert_eq!(
            c.display.window.monitor,
            Some(twinloop_stimulus::window::MonitorChoice::Name(
                "DP-1".into()
            ))
        );
        assert!(!c.display.window.fullscreen);
        assert!(c.display.gamma.is_some());
        let bad = text.replace("distance_cm = 20.0", "distance_cm = -1.0");
        let e = Config::from_toml(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("display.monitor.distance_cm"), "{e}");
        let bad = text.replace("backend = \"window\"", "backend = \"screen\"");
        let e = Config::from_toml(&bad, "t.toml").unwrap_err().to_string();
        assert!(e.contains("screen") && e.contains("offscreen"), "{e}");
    }

    #[test]
    fn wrong_type_is_a_parse_error_with_location() {
        let text = DEFAULT_SIM_TOML.replace("duration_s = 90.0", "duration_s = \"long\"");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("duration_s") && e.contains("t.toml"), "{e}");
    }

    #[test]
    fn twin_section_defaults_to_the_pretrained_core_and_names_a_missing_weights_file() {
        let c = Config::default_sim();
        assert_eq!(c.twin.core, CoreKind::Pretrained);
        assert_eq!(
            (c.twin.grid_rows, c.twin.grid_cols),
            (
                TwinSettings::default().grid_rows,
                TwinSettings::default().grid_cols
            )
        );
        // A manifest from before the section existed still parses.
        let mut json = serde_json::to_value(&c).unwrap();
        json.as_object_mut().unwrap().remove("twin");
        let old: Config = serde_json::from_value(json).unwrap();
        assert_eq!(old.twin, TwinSettings::default());
        let text = DEFAULT_SIM_TOML.replace("core = \"pretrained\"", "core = \"fnn\"");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("twin.weights") && e.contains("required"), "{e}");
        let text = DEFAULT_SIM_TOML.replace("grid_rows = 6", "grid_rows = 0");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("twin.grid_rows"), "{e}");
        let text = DEFAULT_SIM_TOML.replace("grid_cols = 10", "weigths = \"w.safetensors\"");
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("weigths"), "{e}");
    }

    #[test]
    fn pool_smaller_than_its_rings_is_rejected() {
        let mut c = Config::default_sim();
        c.rings.frame_pool = 8;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("rings.frame_pool"), "{e}");
    }
}
