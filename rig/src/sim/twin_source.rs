//! `[source.twin]`: a fitted twin standing in for the mouse (`source.kind = "twin"`).
//!
//! The simulated rig runs as with `kind = "sim"` (behaviour, eye, treadmill, anatomy,
//! calcium, microscope), but plane 0's cells fire at the twin's predicted rates rather than the
//! simulated population's (`twin_cells.rs`). This file holds the section, loads and identifies
//! the twin, and states the rule that maps its units onto imaged cells:
//!
//! - **One cell per unit.** Unit `u` is cell `u` of the one imaging plane, so `sim.neurons`
//!   must equal the twin's unit count and `imaging.planes` must be 1.
//! - **The field of view must hold them apart.** A twin unit is only worth imaging if its soma
//!   does not overlap another's: the FOV (less a 2 px margin each side) must hold one square of
//!   side `2 * soma_radius_px[1] + 1` per unit. A twin with more units than that is refused,
//!   naming `source.twin.weights` and the fix (a larger `imaging.width`/`height` or smaller
//!   `sim.cells.soma_radius_px`), rather than imaged as overlapping, unrecoverable cells.
//!
//! **Two modes** (`mode`):
//! - `"full"`: the twin's spikes drive calcium and the simulated microscope, and the whole
//!   imaging pipeline runs on its frames (rehearses the pipeline too).
//! - `"fast"`: the twin's responses arrive as the session's activity. The rig still sends one
//!   two-photon message per imaging frame (the frame clock, acks, lock-step, log and replay
//!   are the same as a live session's), but its payload is no image: pixel `u` (row-major) holds
//!   unit `u`'s spike count in that frame, and cell `u`'s true footprint is that one pixel with
//!   weight 1, so `imaging.extraction = "truth_footprints"` reads each count back exactly. The
//!   microscope is never rendered and no imaging pipeline runs. The field of view must have a
//!   pixel per unit (`imaging.width * imaging.height >= units`); settings that need real pixels
//!   (`imaging.extraction = "pipeline"` or `"grid"`) are refused naming the field
//!   (`Config::validate`).
//!
//! **Behaviour**: the behaviour model's draw (from `sim.seed`), or, with `behaviour = "<session
//! dir>"`, the running and pupil that session logged (`recorded_behaviour.rs`).
//!
//! **Inputs**: `twin fit` output, or the live twin a closed-loop session saved at its end
//! (`online::session::live_twin`); that file is sealed (`twin_seal.rs`) and a damaged copy is
//! refused here, naming `source.twin.weights` and the file.
//!
//! **Noise**: Poisson spikes at the prediction, or the prediction plus a recorded session's
//! residuals (`noise = { recorded = "<bank dir>" }`, `twin_residuals.rs`, `twin_cells.rs`).
//!
//! Not built yet (placeholders, README "Placeholders"): the twin on a GPU.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinloop_model::train::BehaviourStandardisation;
use twinloop_model::{Device, Twin, TwinConfig, Weights};

use super::SimGeometry;
use super::config::SimConfig;
use super::recorded_behaviour::RecordedBehaviour;
use crate::vocab::section::Invalid;

/// How spikes are drawn from the twin's predicted rates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwinNoise {
    /// Poisson spikes at the predicted rate on every neural substep, so a frame's count is
    /// Poisson with the twin's predicted mean.
    #[default]
    Poisson,
    /// `noise = { recorded = "<bank dir>" }`: each frame's response is the prediction plus a
    /// residual row of a recorded session, drawn from the bank `twinloop twin residuals`
    /// wrote for this twin (`twin_residuals.rs`; a relative path is from the config file's
    /// directory). Fast mode's frame carries it as a count, rounded stochastically; full mode
    /// fires Poisson spikes at it (`twin_cells.rs`).
    Recorded(PathBuf),
}

/// How the twin's responses reach the session (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwinMode {
    /// Spikes drive calcium, the simulated microscope and the imaging pipeline.
    #[default]
    Full,
    /// Each frame's spike counts are the activity: no microscope, no imaging pipeline.
    Fast,
}

/// `[source.twin]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinSourceConfig {
    /// The twin's weights: safetensors, as `twinloop twin fit` writes `twin.safetensors`, or
    /// the live twin a session saved (`<session>/live_twin/twin.safetensors`, sealed: a damaged
    /// copy is refused here).
    /// A relative path is from the config file's directory (`Config::load`).
    pub weights: PathBuf,
    /// Its architecture: the JSON `twin fit` writes beside them (`config.json`).
    pub config: PathBuf,
    /// How spikes are drawn: `"poisson"`, or `{ recorded = "<bank dir>" }` (the prediction plus
    /// a recorded session's residuals, [`TwinNoise::Recorded`]). The twin's output is read as the expected spike count
    /// per imaging frame (it is stepped once per frame, as it was fitted on one row per
    /// frame), so a unit's rate in Hz is that count times `imaging.frame_rate_hz`.
    #[serde(default)]
    pub noise: TwinNoise,
    /// `"full"` (default) or `"fast"` (module docs).
    #[serde(default)]
    pub mode: TwinMode,
    /// A recorded session directory whose logged running and pupil the twin (and the simulated
    /// eye camera and treadmill) replay, from its first frame (`recorded_behaviour.rs`); a
    /// relative path is from the config file's directory. Absent: the behaviour model, from
    /// `sim.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<PathBuf>,
    /// Seed of the spike draws (the mouse's behaviour and anatomy come from `sim.seed`).
    #[serde(default)]
    pub seed: u64,
    /// How the raw behaviour is z-scored into the twin's inputs: perspective = gaze azimuth,
    /// elevation (deg); modulation = pupil radius (eye-camera px), running speed (cm/s), the
    /// columns of the truth's `behaviour.npy`. Absent: measured from the simulated behaviour
    /// model itself (its first 10 minutes from `sim.seed`).
    #[serde(default)]
    pub standardisation: Option<BehaviourStandardisation>,
}

/// Which twin ran: written in the session manifest (`twin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinIdentity {
    /// The weights file, absolute.
    pub weights: PathBuf,
    /// SHA-256 of the weights file's bytes, lowercase hex.
    pub weights_sha256: String,
    /// SHA-256 of the core's tensors, as `twinloop twin embeddings` identifies a core (absent
    /// for weights without `core.*` tensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_sha256: Option<String>,
    pub config: PathBuf,
    pub units: usize,
    /// The twin's stimulus input, `[height, width]` pixels.
    pub stimulus: [usize; 2],
}

/// A twin read and checked, ready to drive the mouse's cells.
#[derive(Clone)]
pub struct LoadedTwin {
    pub twin: Twin,
    pub identity: TwinIdentity,
    /// The recorded running and pupil it is given (`behaviour`; read by the config layer,
    /// which can read session logs); `None`: the behaviour model's.
    pub behaviour: Option<RecordedBehaviour>,
    /// The recorded-noise bank (`noise = { recorded = ... }`), checked against this twin.
    pub residuals: Option<super::twin_residuals::ResidualBank>,
}

impl TwinSourceConfig {
    /// Reads the config and the weights and builds the twin on the CPU; the error names the
    /// field whose file is missing or does not load.
    pub fn load(&self) -> Result<LoadedTwin, Invalid> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| {
            bad_file(
                "source.twin.config",
                &self.config,
                format!("cannot be read ({e})"),
            )
        })?;
        let cfg = TwinConfig::from_json(&text).map_err(|e| {
            bad_file(
                "source.twin.config",
                &self.config,
                format!("is not a twin config ({e})"),
            )
        })?;
        if cfg.perspectives != 2 || cfg.modulations != 2 {
            return Err(bad_file(
                "source.twin.config",
                &self.config,
                format!(
                    "has {} perspective and {} modulation inputs; the rig gives 2 and 2 (gaze; \
                     pupil radius and running)",
                    cfg.perspectives, cfg.modulations
                ),
            ));
        }
        let bytes = std::fs::read(&self.weights).map_err(|e| {
            bad_file(
                "source.twin.weights",
                &self.weights,
                format!("cannot be read ({e}): give the `twin.safetensors` of `twinloop twin fit`"),
            )
        })?;
        // A sealed file (a session's saved live twin) must be whole: a flipped byte is refused
        // here, not run as a slightly different twin.
        super::twin_seal::check(&bytes, &self.weights)
            .map_err(|e| bad_file("source.twin.weights", &self.weights, e))?;
        let weights = Weights::from_bytes(&bytes, &self.weights)
            .map_err(|e| bad_file("source.twin.weights", &self.weights, e.to_string()))?;
        let core_sha256 = super::twin_seal::core_sha256(&weights).ok();
        let units = cfg.units;
        let weights_sha256 = super::twin_seal::sha256_hex(&bytes);
        let residuals = match &self.noise {
            TwinNoise::Poisson => None,
            TwinNoise::Recorded(dir) => {
                let bank = super::twin_residuals::ResidualBank::load(dir, Some(&weights_sha256))
                    .map_err(|e| bad_file("source.twin.noise.recorded", &e.path, e.reason))?;
                if bank.meta.units != units {
                    return Err(bad_file(
                        "source.twin.noise.recorded",
                        dir,
                        format!(
                            "holds residuals of {} units; the twin has {units}",
                            bank.meta.units
                        ),
                    ));
                }
                Some(bank)
            }
        };
        let stimulus = [cfg.stimulus_height, cfg.stimulus_width];
        let twin = Twin::new(cfg, &weights, &Device::Cpu).map_err(|e| {
            bad_file(
                "source.twin.weights",
                &self.weights,
                format!(
                    "do not fit source.twin.config ({}): {e}",
                    self.config.display()
                ),
            )
        })?;
        // Absolute where the file system can say, so the manifest names the twin from anywhere.
        let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(LoadedTwin {
            twin,
            identity: TwinIdentity {
                weights: absolute(&self.weights),
                weights_sha256,
                core_sha256,
                config: absolute(&self.config),
                units,
                stimulus,
            },
            behaviour: None,
            residuals,
        })
    }

    /// The one-cell-per-unit rule (module docs) for a twin of `units` on this rig.
    pub fn check_fits(
        &self,
        units: usize,
        sim: &SimConfig,
        geom: &SimGeometry,
        planes: u8,
    ) -> Result<(), Invalid> {
        if planes != 1 {
            return Err(Invalid::new(
                "imaging.planes",
                planes,
                "must be 1 with source.kind = \"twin\" (the twin's units are one plane's cells)",
            ));
        }
        let capacity = fov_capacity(sim, geom);
        let pixels = geom.imaging_width * geom.imaging_height;
        if self.mode == TwinMode::Fast && units > pixels {
            return Err(Invalid::new(
                "imaging.width",
                geom.imaging_width,
                format!(
                    "with imaging.height = {} gives {pixels} pixels, fewer than the twin's {units} \
                     units: fast mode carries unit u's count in pixel u, so enlarge \
                     imaging.width/height",
                    geom.imaging_height
                ),
            ));
        }
        // Fast mode images nothing: somata need not be held apart.
        if self.mode == TwinMode::Full && units > capacity {
            return Err(bad_file(
                "source.twin.weights",
                &self.weights,
                format!(
                    "has {units} units, more than the {}x{} px field of view holds apart \
                     ({capacity} somata of radius up to {} px): enlarge imaging.width/height or \
                     shrink sim.cells.soma_radius_px",
                    geom.imaging_width, geom.imaging_height, sim.cells.soma_radius_px[1]
                ),
            ));
        }
        if sim.neurons != units {
            return Err(Invalid::new(
                "sim.neurons",
                sim.neurons,
                format!(
                    "must equal the twin's unit count with source.kind = \"twin\" (one imaged \
                     cell per unit): set sim.neurons = {units}"
                ),
            ));
        }
        Ok(())
    }
}

/// Somata that fit in the field of view without overlapping: one square of side
/// `2 r_max + 1` px each, inside the 2 px margin the anatomy keeps.
pub fn fov_capacity(sim: &SimConfig, geom: &SimGeometry) -> usize {
    let side = 2.0 * sim.cells.soma_radius_px[1] + 1.0;
    let inner = |px: usize| (px as f64 - 4.0).max(0.0);
    ((inner(geom.imaging_width) / side).floor() * (inner(geom.imaging_height) / side).floor())
        as usize
}

/// Fast mode: cell `u`'s footprint becomes pixel `u` (row-major in an `imaging_width`-wide
/// frame) with weight 1, and its soma a half-pixel disc there, so the truth the session writes
/// (and replay reads) extracts each count back exactly.
pub(crate) fn place_in_count_pixels(cells: &mut [super::CellTruth], imaging_width: usize) {
    let width = imaging_width.max(1);
    for (u, c) in cells.iter_mut().enumerate() {
        c.centre_y_px = (u / width) as f32;
        c.centre_x_px = (u % width) as f32;
        c.radius_px = 0.5;
        c.footprint = vec![(u as u32, 1.0)];
    }
}

/// Fast mode's frame: pixel `u` = unit `u`'s spike count (saturating at the u16 range), the
/// rest 0.
pub(crate) fn write_counts(spikes: &[u32], out: &mut [u16]) {
    out.fill(0);
    for (o, &s) in out.iter_mut().zip(spikes) {
        *o = u16::try_from(s).unwrap_or(u16::MAX);
    }
}

fn bad_file(field: &str, path: &Path, reason: String) -> Invalid {
    Invalid::new(field, format!("{:?}", path.display().to_string()), reason)
}
