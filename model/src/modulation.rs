//! Modulation (fnn `FlatLstm`): pupil radius and running speed → behavioural state.
//! `x = tanh(Linear(m))`; LSTM over `[x, h]` (plain concat, one stream); output `Linear(h)`.

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, Result};
use crate::layers::{Linear, sigmoid};
use crate::weights::Weights;

#[derive(Clone)]
pub struct Modulation {
    proj_x: Linear,
    proj_i: Linear,
    proj_f: Linear,
    proj_g: Linear,
    proj_o: Linear,
    out: Linear,
    hidden: usize,
    state: Option<(Tensor, Tensor)>,
}

impl Modulation {
    pub fn load(w: &Weights, cfg: &TwinConfig, stream: usize, dev: &Device) -> Result<Self> {
        let m = &cfg.modulation;
        let lin = |name: &str, i: usize, o: usize| {
            Linear::load(w, &format!("modulation.{name}"), stream, i, o, true, dev)
        };
        let xh = m.in_features + m.hidden_features;
        Ok(Self {
            proj_x: lin("proj_x", cfg.modulations, m.in_features)?,
            proj_i: lin("proj_i", xh, m.hidden_features)?,
            proj_f: lin("proj_f", xh, m.hidden_features)?,
            proj_g: lin("proj_g", xh, m.hidden_features)?,
            proj_o: lin("proj_o", xh, m.hidden_features)?,
            out: lin("out", m.hidden_features, m.out_features)?,
            hidden: m.hidden_features,
            state: None,
        })
    }

    pub fn reset(&mut self) {
        self.state = None;
    }

    /// `[N, M_in]` → `[N, M_out]`.
    pub fn step(&mut self, m: &Tensor) -> Result<Tensor> {
        let x = self.proj_x.forward(m)?.tanh().ctx("modulation tanh")?;
        let (h, c) = match self.state.take() {
            Some(s) => s,
            None => {
                let n = m.dim(0).ctx("modulation")?;
                let z = Tensor::zeros((n, self.hidden), m.dtype(), m.device()).ctx("modulation")?;
                (z.clone(), z)
            }
        };
        let xh = Tensor::cat(&[&x, &h], 1).ctx("modulation cat")?;
        let i = sigmoid(&self.proj_i.forward(&xh)?)?;
        let f = sigmoid(&self.proj_f.forward(&xh)?)?;
        let g = self.proj_g.forward(&xh)?.tanh().ctx("modulation g")?;
        let o = sigmoid(&self.proj_o.forward(&xh)?)?;
        let c = ((f * c).ctx("lstm")? + (i * g).ctx("lstm")?).ctx("lstm c")?;
        let h = (o * c.tanh().ctx("lstm")?).ctx("lstm h")?;
        let y = self.out.forward(&h)?;
        self.state = Some((h, c));
        Ok(y)
    }
}
