//! The twin's architecture, one struct per module, defaulting to fnn's released network
//! (Wang et al. 2025: `feedforwards.Dense`, `recurrents.CvtLstm`, `perspectives.MonitorRetina`,
//! `modulations.FlatLstm`, `readouts.PositionFeature` with `features.Norm`, 4 streams).
//!
//! Only the shapes live here; every learned number (and fnn's buffers such as the monitor pixel
//! power) comes from the weight file.

use serde::{Deserialize, Serialize};

use crate::error::{Result, config_err};

/// Whole-network configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinConfig {
    /// Ensemble streams (each owns modulation, core and readout; perspective is shared).
    pub streams: usize,
    /// Number of neurons read out.
    pub units: usize,
    /// Stimulus frame height in pixels (fnn: 144).
    pub stimulus_height: usize,
    /// Stimulus frame width in pixels (fnn: 256).
    pub stimulus_width: usize,
    /// Perspective inputs per frame (pupil centre x, y: 2).
    pub perspectives: usize,
    /// Modulation inputs per frame (pupil radius, treadmill velocity: 2).
    pub modulations: usize,
    pub perspective: PerspectiveConfig,
    pub modulation: ModulationConfig,
    pub feedforward: FeedforwardConfig,
    pub recurrent: RecurrentConfig,
    pub readout: ReadoutConfig,
}

/// `perspectives.MonitorRetina`: MLP → rotation → rays → plane monitor → bilinear sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveConfig {
    /// Retina image height (fnn: 128).
    pub height: usize,
    /// Retina image width (fnn: 192).
    pub width: usize,
    /// Hidden MLP widths (fnn: [16, 16]); the output layer (3 angles) is implied.
    pub features: Vec<usize>,
    /// Maximum visual angle of the retina grid, degrees (fnn: 75).
    pub degrees: f64,
    /// `SigmoidPower` maximum power (fnn: 1).
    pub retina_max_power: f64,
    /// `SigmoidPower` eps (fnn: 1e-5).
    pub retina_eps: f64,
    /// `Plane` monitor denominator clip (fnn: 1e-5).
    pub monitor_eps: f64,
}

/// `modulations.FlatLstm`: tanh(Linear) → LSTM → Linear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulationConfig {
    pub in_features: usize,
    pub hidden_features: usize,
    pub out_features: usize,
}

/// `feedforwards.Dense` (or `InputDense` when `input_wnorm` is false).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedforwardConfig {
    pub in_spatial: usize,
    pub in_stride: usize,
    /// Weight standardisation on the first input conv (Dense: true, InputDense: false).
    pub input_wnorm: bool,
    pub block_channels: Vec<usize>,
    pub block_groups: Vec<usize>,
    pub block_layers: Vec<usize>,
    pub block_temporals: Vec<usize>,
    pub block_spatials: Vec<usize>,
    pub block_pools: Vec<usize>,
    pub out_channels: usize,
}

/// `recurrents.CvtLstm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrentConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub hidden_channels: usize,
    pub common_channels: usize,
    pub groups: usize,
    pub spatial: usize,
}

/// `readouts.PositionFeature` with a `features.Norm` feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutConfig {
    /// `features.Norm` groups (fnn: 1).
    pub feature_groups: usize,
}

impl Default for TwinConfig {
    fn default() -> Self {
        Self {
            streams: 4,
            units: 10_000,
            stimulus_height: 144,
            stimulus_width: 256,
            perspectives: 2,
            modulations: 2,
            perspective: PerspectiveConfig {
                height: 128,
                width: 192,
                features: vec![16, 16],
                degrees: 75.0,
                retina_max_power: 1.0,
                retina_eps: 1e-5,
                monitor_eps: 1e-5,
            },
            modulation: ModulationConfig {
                in_features: 16,
                hidden_features: 16,
                out_features: 4,
            },
            feedforward: FeedforwardConfig {
                in_spatial: 6,
                in_stride: 2,
                input_wnorm: true,
                block_channels: vec![32, 64, 128],
                block_groups: vec![1, 2, 4],
                block_layers: vec![2, 2, 2],
                block_temporals: vec![3, 3, 3],
                block_spatials: vec![3, 3, 3],
                block_pools: vec![2, 2, 1],
                out_channels: 128,
            },
            recurrent: RecurrentConfig {
                in_channels: 256,
                out_channels: 128,
                hidden_channels: 256,
                common_channels: 512,
                groups: 8,
                spatial: 3,
            },
            readout: ReadoutConfig { feature_groups: 1 },
        }
    }
}

fn divisible(field: &str, a: usize, b: usize) -> Result<()> {
    if b == 0 || !a.is_multiple_of(b) {
        return Err(config_err(field, format!("{a} is not divisible by {b}")));
    }
    Ok(())
}

impl TwinConfig {
    /// Parses a JSON config and checks it.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: Self =
            serde_json::from_str(text).map_err(|e| config_err("<json>", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks divisibility and length rules fnn asserts at construction.
    pub fn validate(&self) -> Result<()> {
        if self.streams == 0 {
            return Err(config_err("streams", "must be at least 1"));
        }
        if self.units == 0 {
            return Err(config_err("units", "must be at least 1"));
        }
        let ff = &self.feedforward;
        let n = ff.block_channels.len();
        for (name, len) in [
            ("feedforward.block_groups", ff.block_groups.len()),
            ("feedforward.block_layers", ff.block_layers.len()),
            ("feedforward.block_temporals", ff.block_temporals.len()),
            ("feedforward.block_spatials", ff.block_spatials.len()),
            ("feedforward.block_pools", ff.block_pools.len()),
        ] {
            if len != n {
                return Err(config_err(
                    name,
                    format!("has {len} entries, block_channels has {n}"),
                ));
            }
        }
        if n == 0 {
            return Err(config_err("feedforward.block_channels", "needs a block"));
        }
        if (ff.in_spatial < ff.in_stride) || !(ff.in_spatial - ff.in_stride).is_multiple_of(2) {
            return Err(config_err(
                "feedforward.in_spatial",
                "in_spatial - in_stride must be even and non-negative",
            ));
        }
        for b in 0..n {
            divisible(
                "feedforward.block_channels",
                ff.block_channels[b],
                ff.block_groups[b],
            )?;
            if ff.block_spatials[b].is_multiple_of(2) {
                return Err(config_err("feedforward.block_spatials", "must be odd"));
            }
            if ff.block_pools[b] == 0 || ff.block_temporals[b] == 0 {
                return Err(config_err(
                    "feedforward.block_pools",
                    "pools and temporals must be at least 1",
                ));
            }
        }
        let r = &self.recurrent;
        divisible("recurrent.in_channels", r.in_channels, r.groups)?;
        divisible("recurrent.hidden_channels", r.hidden_channels, r.groups)?;
        divisible("recurrent.common_channels", r.common_channels, r.groups)?;
        if r.spatial.is_multiple_of(2) {
            return Err(config_err("recurrent.spatial", "must be odd"));
        }
        divisible(
            "readout.feature_groups",
            r.out_channels,
            self.readout.feature_groups,
        )?;
        if self.stimulus_height < 2 || self.stimulus_width < 2 {
            return Err(config_err(
                "stimulus_height",
                "stimulus must be at least 2x2",
            ));
        }
        if self.perspective.height < 2 || self.perspective.width < 2 {
            return Err(config_err(
                "perspective.height",
                "retina must be at least 2x2",
            ));
        }
        Ok(())
    }

    /// Spatial size of the core's output for this config's retina.
    pub fn core_size(&self) -> (usize, usize) {
        let ff = &self.feedforward;
        let pad = (ff.in_spatial - ff.in_stride) / 2;
        let mut h = (self.perspective.height + 2 * pad - ff.in_spatial) / ff.in_stride + 1;
        let mut w = (self.perspective.width + 2 * pad - ff.in_spatial) / ff.in_stride + 1;
        for p in &ff.block_pools {
            h /= p;
            w /= p;
        }
        (h, w)
    }
}
