//! Readout (fnn `PositionFeature`): each neuron reads the core's features bilinearly at its own
//! position `tanh(mu)` (border padding, align_corners=False), weights them with standardised
//! feature weights (fnn `features.Norm`) and adds a bias. One `Readout` per stream; positions
//! are shared across streams.

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, Result};
use crate::layers::WNORM_EPS;
use crate::ops::grid_sample::sample_dot_slices;
use crate::ops::{Padding, fast_path, grid_sample, with_cpu_slices};
use crate::weights::Weights;

/// Positions `tanh(mu)` as a grid `[1, U, 1, 2]`.
pub fn load_positions(w: &Weights, cfg: &TwinConfig, dev: &Device) -> Result<Tensor> {
    let u = cfg.units;
    let mu = w.get("readout.position.mu", &[u, 2])?;
    // Training-time spread: checked, unused at inference.
    w.get("readout.position.sigma", &[u, 2, 2])?;
    mu.tanh()
        .and_then(|t| t.reshape((1, u, 1, 2)))
        .and_then(|t| t.to_device(dev))
        .ctx("readout.position.mu")
}

#[derive(Clone)]
pub struct Readout {
    /// `[U, C]` standardised feature weights.
    features: Tensor,
    /// `[1, U]`.
    bias: Tensor,
}

impl Readout {
    pub fn load(w: &Weights, cfg: &TwinConfig, s: usize, dev: &Device) -> Result<Self> {
        let u = cfg.units;
        let c = cfg.recurrent.out_channels;
        let g = cfg.readout.feature_groups;
        let name = format!("readout.feature.weights.{s}");
        let raw = w.get(&name, &[u, 1, g, c / g])?;
        let gain = w.get(&format!("readout.feature.gains.{s}"), &[u, 1, g])?;
        let mean = raw.mean_keepdim(3).ctx(&name)?;
        let centred = raw.broadcast_sub(&mean).ctx(&name)?;
        let var = centred.sqr().and_then(|v| v.mean_keepdim(3)).ctx(&name)?;
        // fnn scales by the total input count, not the per-group count.
        let scale = var
            .affine(c as f64, WNORM_EPS)
            .and_then(|v| v.sqrt())
            .and_then(|v| v.recip())
            .and_then(|v| v.broadcast_mul(&gain.unsqueeze(3)?))
            .ctx(&name)?;
        let features = centred
            .broadcast_mul(&scale)
            .and_then(|t| t.reshape((u, c)))
            .and_then(|t| t.to_device(dev))
            .ctx(&name)?;
        let bname = format!("readout.biases.{s}");
        let bias = w
            .get(&bname, &[u, 1])?
            .reshape((1, u))
            .and_then(|t| t.to_device(dev))
            .ctx(&bname)?;
        Ok(Self { features, bias })
    }

    /// Standardised feature weights `[U, C]` and biases `[1, U]`, as the forward pass uses them.
    pub fn weights(&self) -> (&Tensor, &Tensor) {
        (&self.features, &self.bias)
    }

    /// Core `[N, C, h, w]` at positions `[1, U, 1, 2]` → log-rates `[N, U]`.
    pub fn forward(&self, core: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = core.dims4().ctx("readout core")?;
        let (_, u, _, _) = positions.dims4().ctx("readout positions")?;
        if fast_path(&[core, positions, &self.features, &self.bias]) {
            return self.forward_cpu(core, positions);
        }
        let grid = positions.repeat((n, 1, 1, 1)).ctx("readout grid")?;
        let sampled = grid_sample(core, &grid, Padding::Border)?; // [N, C, U, 1]
        sampled
            .reshape((n, c, u))
            .and_then(|t| t.transpose(1, 2)) // [N, U, C]
            .and_then(|t| t.broadcast_mul(&self.features))
            .and_then(|t| t.sum(2))
            .and_then(|t| t.broadcast_add(&self.bias))
            .ctx("readout")
    }
}

impl Readout {
    /// The fused CPU forward ([`sample_dot_slices`]), for inference.
    fn forward_cpu(&self, core: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = core.dims4().ctx("readout core")?;
        let out = with_cpu_slices(
            [core, positions, &self.features, &self.bias],
            "readout input",
            |[x, p, f, b]| sample_dot_slices(x, [n, c, h, w], p, f, b, Padding::Border),
        )?;
        let units = out.len() / n.max(1);
        Tensor::from_vec(out, (n, units), core.device()).ctx("readout")
    }
}

/// Number of units in a weight file (rows of `readout.position.mu`).
pub fn count_units(w: &Weights, mu_name: &str) -> Result<usize> {
    w.dims(mu_name)
        .map(|d| d[0])
        .ok_or_else(|| crate::error::ModelError::MissingTensor {
            name: mu_name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::Readout;

    fn ramp(seed: u64, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        let len: usize = shape.iter().product();
        let v: Vec<f32> = (0..len)
            .map(|i| {
                let x = (i as u64 * 2_654_435_761 + seed * 7919) % 10_007;
                lo + (hi - lo) * x as f32 / 10_007.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused CPU forward equals grid_sample + weighted sum through candle (the path taken
    /// when the core tracks gradients), with positions inside, on and beyond the border.
    #[test]
    fn fused_forward_matches_grid_sample_path() {
        let (n, c, h, w, u) = (2, 6, 5, 7, 41);
        let readout = Readout {
            features: ramp(1, &[u, c], -1.0, 1.0),
            bias: ramp(2, &[1, u], -0.5, 0.5),
        };
        let core = ramp(3, &[n, c, h, w], -2.0, 2.0);
        let positions = ramp(4, &[1, u, 1, 2], -1.2, 1.2);
        let fast = readout.forward(&core, &positions).unwrap();
        let tracked = Var::from_tensor(&core).unwrap();
        let reference = readout.forward(tracked.as_tensor(), &positions).unwrap();
        assert_eq!(fast.dims(), &[n, u]);
        let (a, b) = (
            fast.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
