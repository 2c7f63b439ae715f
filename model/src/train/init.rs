//! Starting weights for a fit: fnn-style fresh parameters for any config, or a pretrained core
//! with fresh per-mouse parts (perspective, modulation, readout) for a new mouse.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, Result};
use crate::network::Twin;
use crate::weights::Weights;

/// Fresh weights for `cfg`: every tensor the twin asks for, drawn deterministically from `seed`
/// (raw weights are standardised by the modules, so their scale does not matter), with the
/// perspective starting at the identity (the eye looks straight ahead whatever the pupil does)
/// and readout positions at the centre until data place them.
pub fn fresh_weights(cfg: &TwinConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let w = Weights::synthetic(seed);
    Twin::new(cfg.clone(), &w, &Device::Cpu)?;
    let mut out = w.synthesised();
    let small = |t: &Tensor, k: f64| t.affine(k, 0.0);
    let mut replace = |name: &str, f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
        if let Some(t) = out.get(name) {
            let v = f(t).ctx(name)?;
            out.insert(name.to_string(), v);
        }
        Ok::<(), crate::error::ModelError>(())
    };
    replace("perspective.out.gains.0", &|t| small(t, 0.05))?;
    replace("perspective.out.biases.0", &|t| t.zeros_like())?;
    replace("readout.position.mu", &|t| small(t, 0.0))?;
    for s in 0..cfg.streams {
        replace(&format!("readout.biases.{s}"), &|t| t.zeros_like())?;
    }
    Ok(out)
}

/// A new mouse on a pretrained core: the `core.*` tensors of `pretrained`, everything else fresh
/// for `cfg` (its own unit count). The core's shapes are checked when the twin is built.
pub fn transfer_weights(
    pretrained: &Weights,
    cfg: &TwinConfig,
    seed: u64,
) -> Result<HashMap<String, Tensor>> {
    let mut out = fresh_weights(cfg, seed)?;
    let core = pretrained.to_map();
    out.retain(|k, _| !k.starts_with("core."));
    for (k, t) in core {
        if k.starts_with("core.") {
            out.insert(k, t);
        }
    }
    // Build once so a core of the wrong shape fails here, naming the tensor.
    Twin::new(
        cfg.clone(),
        &Weights::from_params(out.clone()),
        &Device::Cpu,
    )?;
    Ok(out)
}
