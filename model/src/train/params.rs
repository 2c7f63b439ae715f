//! A fit's parameters: every tensor of a twin by its fnn name, some of them candle `Var`s the
//! optimiser moves, the rest held fixed.
//!
//! The modules standardise their weights when they are built, so a fit rebuilds the twin from
//! the current parameters at every step (cheap next to a clip's forward pass); the rebuilt
//! module's tensors hang on the variables' autodiff graph.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor, Var};

use crate::error::{CandleContext, Result};
use crate::weights::Weights;

/// Which parts of a twin a fit moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitScope {
    /// The paper's transfer to a new mouse: perspective MLP, modulation and readouts; the core
    /// stays frozen.
    Transfer,
    /// Everything learnable, core included (training from scratch, pretraining).
    Full,
    /// Readouts only (positions, feature weights, biases): perspective, modulation and core as
    /// loaded. The quickest refit, and what the closed loop's online posterior covers.
    Readout,
}

/// Tensors that describe the rig or only shape training noise: never trained here. The monitor
/// pose and pixel transfer come from the weight file (or the defaults); fnn's training-time
/// jitter scales and readout spread are not used by our fit.
fn fixed_by_nature(name: &str) -> bool {
    name.starts_with("perspective.monitor")
        || name.starts_with("perspective.retina_pixel")
        || name == "readout.position.sigma"
}

/// Is `name` moved by a fit of this scope?
pub fn trains(scope: FitScope, name: &str) -> bool {
    if fixed_by_nature(name) {
        return false;
    }
    match scope {
        FitScope::Transfer => !name.starts_with("core."),
        FitScope::Full => true,
        FitScope::Readout => name.starts_with("readout."),
    }
}

/// Named parameters, trainable ones as variables.
pub struct ParamSet {
    vars: BTreeMap<String, Var>,
    fixed: HashMap<String, Tensor>,
}

impl ParamSet {
    /// Splits `tensors` into variables (where `trainable(name)`) and fixed tensors, on `dev`.
    pub fn new(
        tensors: &HashMap<String, Tensor>,
        trainable: impl Fn(&str) -> bool,
        dev: &Device,
    ) -> Result<Self> {
        let mut vars = BTreeMap::new();
        let mut fixed = HashMap::new();
        for (name, t) in tensors {
            let t = t.to_device(dev).ctx(name)?;
            if trainable(name) {
                vars.insert(name.clone(), Var::from_tensor(&t).ctx(name)?);
            } else {
                fixed.insert(name.clone(), t);
            }
        }
        Ok(Self { vars, fixed })
    }

    /// The variables, for the optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// Number of trained scalars.
    pub fn trained_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// The tensors as a twin is built from them (variables on the graph).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = self.fixed.clone();
        for (k, v) in &self.vars {
            out.insert(k.clone(), v.as_tensor().clone());
        }
        out
    }

    /// A copy of the current values, off the graph and on the CPU (to save or to evaluate).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::with_capacity(self.fixed.len() + self.vars.len());
        for (k, t) in self
            .fixed
            .iter()
            .chain(self.vars.iter().map(|(k, v)| (k, v.as_tensor())))
        {
            let c = t
                .detach()
                .to_device(&Device::Cpu)
                .and_then(|t| t.copy())
                .ctx(k)?;
            out.insert(k.clone(), c);
        }
        Ok(out)
    }

    /// Sets variable `name` to `value` (same shape), e.g. readout positions placed from data.
    pub fn set(&self, name: &str, value: &Tensor) -> Result<()> {
        match self.vars.get(name) {
            Some(v) => v.set(&value.to_device(v.device()).ctx(name)?).ctx(name),
            None => Err(crate::error::config_err(name, "not a trained parameter")),
        }
    }
}

/// Weights for a twin from several parameter sets (shared core + one mouse's own parts).
pub fn weights_of(sets: &[&ParamSet]) -> Weights {
    let mut all = HashMap::new();
    for s in sets {
        all.extend(s.tensors());
    }
    Weights::from_params(all)
}
