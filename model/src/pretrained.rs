//! The embedded default twin: a small core pretrained on simulated mice (`twinloop bench
//! transfer --save model/weights/sim`, see BENCHMARKS.md), compiled into the binary so the
//! default session needs no weight file on disk. Its perspective, modulation and readout are
//! those of the first pretraining mouse; a new mouse reads the core (the closed loop's frozen
//! core, or `train::transfer_weights` for a fit).

use std::path::Path;

use candle_core::Device;

use crate::config::TwinConfig;
use crate::error::Result;
use crate::network::Twin;
use crate::weights::Weights;

/// Weights of the embedded twin (safetensors, fnn names).
pub const SIM_WEIGHTS: &[u8] = include_bytes!("../weights/sim/twin.safetensors");
/// Its architecture (`TwinConfig` JSON).
pub const SIM_CONFIG: &str = include_str!("../weights/sim/config.json");

/// The embedded twin's weights, checked like a file's.
pub fn sim_weights() -> Result<Weights> {
    Weights::from_bytes(
        SIM_WEIGHTS,
        Path::new("<embedded model/weights/sim/twin.safetensors>"),
    )
}

/// The embedded twin's config.
pub fn sim_config() -> Result<TwinConfig> {
    TwinConfig::from_json(SIM_CONFIG)
}

/// The embedded twin on `dev`.
pub fn sim_twin(dev: &Device) -> Result<Twin> {
    Twin::new(sim_config()?, &sim_weights()?, dev)
}
