//! Session and rig configuration: one TOML file, every section a `deny_unknown_fields` struct
//! whose doc comments are the reference. `configs/sim.toml` is embedded as the default.
//!
//! Each section is defined by the component it configures (`[imaging]` by the extraction stage,
//! `[trials]` and `[twin]` by the decision stage, `[clocks]` by the clock fit, `[sim]` by the
//! simulator; the rest in [`sections`]) and checks itself ([`Section`]). Only the session sees
//! the whole [`Config`]; it hands each component its own section.

#[cfg(test)]
mod bounds_tests;
pub mod memory;
mod sections;
#[cfg(test)]
mod tests;
pub mod twin_behaviour;

pub use crate::stages::decide::config::{
    CoreKind, DecideSetup, Policy, TrialsConfig, TwinSettings,
};
pub use crate::stages::decide::inception::InceptionConfig;
pub use crate::stages::extract::config::{Extraction, ImagingConfig};
pub use crate::vocab::section::{Invalid, Section};
pub use sections::{
    DashboardSettings, DisplayBackend, DisplayConfig, DisplayLatency, EyeConfig, LogErrorPolicy,
    RingsConfig, SessionConfig, SourceConfig, SourceKind, TreadmillConfig,
};

use crate::sim::{SimConfig, SimGeometry, TwinMode};
use crate::stages::behaviour::BehaviourStageConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The embedded default: a full simulated closed-loop session.
pub const DEFAULT_SIM_TOML: &str = include_str!("../../../configs/sim.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A section's check failed: the field, its value and what is allowed.
    #[error("invalid config: {0}")]
    Invalid(#[from] Invalid),
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
    /// Which streams carry device times, and the online clock fit (`stages/clocks.rs`).
    #[serde(default)]
    pub clocks: crate::stages::clocks::ClocksConfig,
    /// The frozen core the adaptive selector's readouts read (`[twin]`).
    #[serde(default)]
    pub twin: TwinSettings,
    /// The in-session inception protocol (`[inception]`); absent: record only, as before.
    /// Left out of manifests that lack it, so they read back as they were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inception: Option<InceptionConfig>,
}

impl Config {
    /// The embedded default (`configs/sim.toml`).
    pub fn default_sim() -> Config {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Config::from_toml(DEFAULT_SIM_TOML, "configs/sim.toml (embedded)")
            .expect("embedded configs/sim.toml is valid")
    }

    /// Reads and checks a config file. The twin's files (`[source.twin]` `weights`, `config`)
    /// given as relative paths are taken from the file's directory, so a config and the twin
    /// it names move together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        if let (Some(t), Some(base)) = (&mut cfg.source.twin, path.parent()) {
            t.weights = base.join(&t.weights);
            t.config = base.join(&t.config);
            t.behaviour = t.behaviour.as_ref().map(|b| base.join(b));
            if let crate::sim::TwinNoise::Recorded(dir) = &mut t.noise {
                *dir = base.join(&*dir);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and checks config text; relative paths are from the working directory.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse(text, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: format!(" {origin}"),
            message: e.to_string(),
        })
    }

    /// Checks every section ([`Section::validate`]), then what spans sections; the error names
    /// the field and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.session.validate()?;
        self.source.validate()?;
        self.imaging.validate()?;
        self.eye.validate()?;
        self.treadmill.validate()?;
        self.display.validate()?;
        self.trials.validate()?;
        self.rings.validate()?;
        self.behaviour.validate()?;
        self.dashboard.validate()?;
        self.clocks.validate()?;
        self.twin.validate()?;
        if let Some(inception) = &self.inception {
            inception.validate()?;
            let trial_s = self.trials.stimulus_s + self.trials.gray_s;
            inception.check_fits(trial_s, Some(self.session.duration_s))?;
            // The design reads the adaptive designer's held-out scores, history and twin.
            if self.trials.policy != crate::stages::decide::Policy::Adaptive {
                return Err(ConfigError::from(Invalid::new(
                    "trials.policy",
                    format!("{:?}", self.trials.policy).to_lowercase(),
                    "must be \"adaptive\" with [inception] (the design reads the adaptive \
                     designer's twin and held-out scores; set trials.design.objective = \
                     \"random\" for a random record phase)",
                )));
            }
        }
        // Each section's own bounds first, so the sums below cannot overflow into nonsense.
        memory::check(self)?;
        // The last moment to decide must come while imaging frames still arrive before the
        // onset: a few frame periods of every plane, and a display frame.
        let lead_min_s = 3.0 * f64::from(self.imaging.planes.max(1)) / self.imaging.frame_rate_hz
            + 1.0 / self.display.refresh_hz;
        if !(self.trials.decision_lead_s.is_finite() && self.trials.decision_lead_s >= lead_min_s) {
            return Err(Invalid::new(
                "trials.decision_lead_s",
                self.trials.decision_lead_s,
                "must be at least three imaging frame periods (every plane's) plus one \
                 display frame, in seconds (0.5 s by default)",
            )
            .into());
        }
        if self.imaging.extraction == Extraction::TruthFootprints && !self.source.kind.in_process()
        {
            return Err(Invalid::new(
                "imaging.extraction",
                "\"truth_footprints\"",
                "needs source.kind = \"sim\" or \"twin\" (only the simulator knows true \
                 footprints); use \"grid\"",
            )
            .into());
        }
        if let (SourceKind::Twin, Some(t)) = (self.source.kind, &self.source.twin) {
            // Fast mode's frames carry counts, not an image: only the one-pixel footprints
            // read them (`sim/twin_source.rs`).
            if t.mode == TwinMode::Fast && self.imaging.extraction != Extraction::TruthFootprints {
                let given = serde_json::to_value(self.imaging.extraction)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                return Err(Invalid::new(
                    "imaging.extraction",
                    given,
                    "needs pixels, and source.twin.mode = \"fast\" sends none (each frame holds \
                     the twin's spike counts): set imaging.extraction = \"truth_footprints\", or \
                     source.twin.mode = \"full\" to image the twin's cells",
                )
                .into());
            }
            if let Some(dir) = &t.behaviour {
                let track = twin_behaviour::read_recorded(dir)?;
                twin_behaviour::check_covers(&track, dir, self.session.duration_s)?;
            }
            let loaded = t.load()?;
            t.check_fits(
                loaded.identity.units,
                &self.sim,
                &self.sim_geometry(),
                self.imaging.planes,
            )?;
        }
        Ok(())
    }

    /// The twin that stands in for the mouse, loaded and checked (`source.kind = "twin"`);
    /// `None` for other sources.
    pub fn source_twin(&self) -> Result<Option<crate::sim::LoadedTwin>, Invalid> {
        match (self.source.kind, &self.source.twin) {
            (SourceKind::Twin, Some(t)) => {
                let mut loaded = t.load()?;
                if let Some(dir) = &t.behaviour {
                    loaded.behaviour = Some(twin_behaviour::read_recorded(dir)?);
                }
                Ok(Some(loaded))
            }
            _ => Ok(None),
        }
    }

    /// What building the selector needs ([`crate::stages::decide::build_selector`]).
    pub fn decide_setup(&self) -> DecideSetup {
        DecideSetup {
            trials: self.trials.clone(),
            twin: self.twin.clone(),
            view: self.display.view(),
            frame_rate_hz: self.imaging.frame_rate_hz,
            planes: self.imaging.planes,
            seed: self.session.seed,
            planned_trials: self.planned_trials(),
            inception: self.inception.clone(),
        }
    }

    /// Geometry the simulator needs, from the rig config.
    pub fn sim_geometry(&self) -> SimGeometry {
        SimGeometry {
            imaging_width: self.imaging.width as usize,
            imaging_height: self.imaging.height as usize,
            imaging_rate_hz: self.imaging.frame_rate_hz,
            eye_width: self.eye.width as usize,
            eye_height: self.eye.height as usize,
            eye_rate_hz: self.eye.frame_rate_hz,
            treadmill_rate_hz: self.treadmill.sample_rate_hz,
            view_width: self.display.view_width,
            view_height: self.display.view_height,
            view_azimuth_deg: self.display.azimuth_deg,
            view_elevation_deg: self.display.elevation_deg,
        }
    }

    /// The simulated rig on the simulated monitor, not in real time: the simulator follows the
    /// display, which follows the imaging frames, so the whole rig runs as fast as the CPU
    /// allows and waits where it must (for the twin's next decision, say).
    pub fn lockstep(&self) -> bool {
        self.source.kind.in_process()
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
