//! Core (fnn `FeedforwardRecurrent`): a dense causal-convolutional feedforward network
//! (`Dense`) followed by a convolutional LSTM with grouped self-attention (`CvtLstm`).
//! One `Core` per ensemble stream.

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, Result};
use crate::layers::{
    Conv, ConvSpec, InterGroup, Pad, cat_groups_2d, gelu, l2_normalise, sigmoid, softmax_last,
};
use crate::ops::attention_cpu::{AttentionShape, attention};
use crate::ops::{fast_path, with_cpu_slices};
use crate::weights::Weights;

/// One dense block: `layers` x (GELU → causal conv), dense skips, group-interleaved concat, pool.
#[derive(Clone)]
struct Block {
    convs: Vec<Conv>,
    /// `skips[l - 1]` for layer `l >= 1`.
    skips: Vec<Conv>,
    groups: usize,
    pool: usize,
}

impl Block {
    fn reset(&mut self) {
        self.convs.iter_mut().for_each(Conv::reset);
        self.skips.iter_mut().for_each(Conv::reset);
    }

    fn step(&mut self, x: &Tensor) -> Result<Tensor> {
        let layers = self.convs.len();
        let mut x = x.clone();
        let mut z = x.clone();
        let mut n = x.clone();
        for l in 0..layers {
            let y = gelu(&x)?;
            if l == 0 {
                x = self.convs[0].step(&y)?;
                n = y;
            } else {
                let a = self.convs[l].step(&y)?;
                let b = self.skips[l - 1].step(&n)?;
                x = (a + b).ctx("block skip")?;
                if l + 1 < layers {
                    n = cat_groups_2d(&[&n, &y], self.groups)?;
                }
            }
            z = cat_groups_2d(&[&z, &x], self.groups)?;
        }
        if self.pool > 1 {
            z.avg_pool2d(self.pool).ctx("avg pool")
        } else {
            Ok(z)
        }
    }
}

/// fnn `Dense` feedforward.
#[derive(Clone)]
pub struct Feedforward {
    inputs: Vec<Conv>,
    blocks: Vec<Block>,
    out: Conv,
}

impl Feedforward {
    pub fn load(w: &Weights, cfg: &TwinConfig, s: usize, dev: &Device) -> Result<Self> {
        let ff = &cfg.feedforward;
        let p = "core.feedforward";
        let mut inputs = Vec::new();
        let mut blocks = Vec::new();
        let mut in_ch = 1usize; // one stimulus channel
        for b in 0..ff.block_channels.len() {
            let (c, g, layers) = (ff.block_channels[b], ff.block_groups[b], ff.block_layers[b]);
            let first = b == 0;
            let spec = ConvSpec {
                in_channels: in_ch,
                out_channels: c,
                in_groups: 1,
                out_groups: g,
                temporal: 1,
                spatial: if first { ff.in_spatial } else { 1 },
                stride: if first { ff.in_stride } else { 1 },
                pad: Pad::Replicate,
                gain: true,
                bias: true,
                wnorm: !first || ff.input_wnorm,
            };
            inputs.push(Conv::load(w, &format!("{p}.inputs.{b}"), s, spec, dev)?);
            let mut convs = Vec::new();
            let mut skips = Vec::new();
            for l in 0..layers {
                let spec = ConvSpec {
                    in_channels: c,
                    out_channels: c,
                    in_groups: g,
                    out_groups: g,
                    temporal: ff.block_temporals[b],
                    spatial: ff.block_spatials[b],
                    stride: 1,
                    pad: Pad::Zeros,
                    gain: true,
                    bias: true,
                    wnorm: true,
                };
                convs.push(Conv::load(
                    w,
                    &format!("{p}.blocks.{b}.convs.{l}"),
                    s,
                    spec,
                    dev,
                )?);
                if l > 0 {
                    let spec = ConvSpec::pointwise(c * l, c).groups(g, g).bias(false);
                    skips.push(Conv::load(
                        w,
                        &format!("{p}.blocks.{b}.skips.{l}"),
                        s,
                        spec,
                        dev,
                    )?);
                }
            }
            blocks.push(Block {
                convs,
                skips,
                groups: g,
                pool: ff.block_pools[b],
            });
            in_ch = (layers + 1) * c;
        }
        let mut spec = ConvSpec::pointwise(in_ch, ff.out_channels);
        spec.pad = Pad::Replicate;
        let out = Conv::load(w, &format!("{p}.out"), s, spec, dev)?;
        Ok(Self {
            inputs,
            blocks,
            out,
        })
    }

    pub fn reset(&mut self) {
        self.inputs.iter_mut().for_each(Conv::reset);
        self.blocks.iter_mut().for_each(Block::reset);
        self.out.reset();
    }

    /// Retina `[N, 1, H', W']` → features `[N, O, h, w]`.
    pub fn step(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (inp, block) in self.inputs.iter_mut().zip(self.blocks.iter_mut()) {
            x = inp.step(&x)?;
            x = block.step(&x)?;
        }
        self.out.step(&x)
    }
}

/// fnn `CvtLstm`.
#[derive(Clone)]
pub struct Recurrent {
    intergroup: Option<InterGroup>,
    proj_f: Conv,
    proj_m: Conv,
    conv: Conv,
    proj_q: Conv,
    proj_k: Conv,
    proj_v: Conv,
    proj_i: Conv,
    proj_fg: Conv,
    proj_g: Conv,
    proj_o: Conv,
    out: Conv,
    /// `[1, G, gc, 1]` attention temperature per query channel.
    scales: Tensor,
    groups: usize,
    group_channels: usize,
    hidden: usize,
    state: Option<(Tensor, Tensor)>,
}

impl Recurrent {
    pub fn load(w: &Weights, cfg: &TwinConfig, s: usize, dev: &Device) -> Result<Self> {
        let r = &cfg.recurrent;
        let p = "core.recurrent";
        let g = r.groups;
        let gc = r.common_channels / g;
        let conv = |name: &str, spec: ConvSpec| Conv::load(w, &format!("{p}.{name}"), s, spec, dev);
        let (intergroup, first) = if g > 1 {
            let ig = InterGroup::load(
                w,
                &format!("{p}.proj_x.0"),
                s,
                r.hidden_channels,
                r.in_channels,
                g,
                dev,
            )?;
            (Some(ig), 1)
        } else {
            (None, 0)
        };
        let proj_f = conv(
            &format!("proj_x.{first}"),
            ConvSpec::pointwise(cfg.feedforward.out_channels, r.in_channels).groups(1, g),
        )?;
        let proj_m = conv(
            &format!("proj_x.{}", first + 1),
            ConvSpec::pointwise(cfg.modulation.out_features, r.in_channels)
                .groups(1, g)
                .bias(false),
        )?;
        let mut cspec = ConvSpec::pointwise(r.in_channels + r.hidden_channels, r.common_channels)
            .groups(g, g)
            .gain(false)
            .bias(false);
        cspec.spatial = r.spatial;
        let qkv = || {
            ConvSpec::pointwise(r.common_channels, r.common_channels)
                .groups(g, g)
                .gain(false)
                .bias(false)
        };
        let gate = || ConvSpec::pointwise(2 * r.common_channels, r.hidden_channels).groups(g, g);
        let sname = format!("{p}.scales.{s}");
        let scales = w
            .get(&sname, &[g, gc])?
            .reshape((1, g, gc, 1))
            .and_then(|t| t.to_device(dev))
            .ctx(&sname)?;
        Ok(Self {
            intergroup,
            proj_f,
            proj_m,
            conv: conv("conv", cspec)?,
            proj_q: conv("proj_q", qkv())?,
            proj_k: conv("proj_k", qkv())?,
            proj_v: conv("proj_v", qkv())?,
            proj_i: conv("proj_i", gate())?,
            proj_fg: conv("proj_f", gate())?,
            proj_g: conv("proj_g", gate())?,
            proj_o: conv("proj_o", gate())?,
            out: conv(
                "out",
                ConvSpec::pointwise(r.hidden_channels, r.out_channels),
            )?,
            scales,
            groups: g,
            group_channels: gc,
            hidden: r.hidden_channels,
            state: None,
        })
    }

    pub fn reset(&mut self) {
        self.state = None;
    }

    /// Features `[N, F, h, w]` and modulation `[N, M]` → core output `[N, O, h, w]`.
    pub fn step(&mut self, f: &Tensor, m: &Tensor) -> Result<Tensor> {
        let (n, _, hh, ww) = f.dims4().ctx("recurrent input")?;
        let (h, c) = match self.state.take() {
            Some(s) => s,
            None => {
                let z = Tensor::zeros((n, self.hidden, hh, ww), f.dtype(), f.device())
                    .ctx("recurrent state")?;
                (z.clone(), z)
            }
        };
        let (mn, mf) = m.dims2().ctx("recurrent modulation")?;
        let m4 = m.reshape((mn, mf, 1, 1)).ctx("recurrent modulation")?;
        let mut x = self.proj_f.step(f)?;
        x = x.broadcast_add(&self.proj_m.step(&m4)?).ctx("proj_x")?;
        if let Some(ig) = &self.intergroup {
            x = (x + ig.forward(&h)?).ctx("proj_x")?;
        }
        let x = x.tanh().ctx("proj_x tanh")?;
        let g = self.groups;
        let xh = cat_groups_2d(&[&x, &h], g)?;
        let z = self.conv.step(&xh)?;
        let hw = hh * ww;
        let view = |t: Tensor| {
            t.reshape((n, g, self.group_channels, hw))
                .ctx("attention view")
        };
        let q = view(self.proj_q.step(&z)?)?;
        let k = view(self.proj_k.step(&z)?)?;
        let v = view(self.proj_v.step(&z)?)?;
        let a = grouped_attention(&q, &k, &v, &self.scales)?
            .reshape((n, g * self.group_channels, hh, ww))
            .ctx("attention values")?;
        let za = cat_groups_2d(&[&z, &a], g)?;
        let i = sigmoid(&self.proj_i.step(&za)?)?;
        let fg = sigmoid(&self.proj_fg.step(&za)?)?;
        let gg = self.proj_g.step(&za)?.tanh().ctx("g")?;
        let o = sigmoid(&self.proj_o.step(&za)?)?;
        let c = ((fg * c).ctx("lstm")? + (i * gg).ctx("lstm")?).ctx("lstm c")?;
        let h = (o * c.tanh().ctx("lstm")?).ctx("lstm h")?;
        let y = self.out.step(&h)?;
        self.state = Some((h, c));
        Ok(y)
    }
}

/// Grouped attention over positions: `q`, `k`, `v` `[N, G, C, P]`, query `scales`
/// `[1, G, C, 1]` → `[N, G, C, P]`. On the CPU without gradients this is
/// `ops::attention_cpu`; otherwise candle ops (the reference, and the path that trains).
fn grouped_attention(q: &Tensor, k: &Tensor, v: &Tensor, scales: &Tensor) -> Result<Tensor> {
    let (n, g, c, p) = q.dims4().ctx("attention queries")?;
    if fast_path(&[q, k, v, scales]) {
        let shape = AttentionShape {
            batch: n,
            groups: g,
            channels: c,
            positions: p,
        };
        let a = with_cpu_slices([q, k, v, scales], "attention input", |[q, k, v, s]| {
            attention(shape, q, k, v, s)
        })?;
        return Tensor::from_vec(a, (n, g, c, p), q.device()).ctx("attention");
    }
    let q = l2_normalise(q, 2)?.broadcast_mul(scales).ctx("q scale")?;
    let k = l2_normalise(k, 2)?;
    // w[n, g, query, key] = sum_c q[c, query] k[c, key]
    let wts = q
        .transpose(2, 3)
        .and_then(|t| t.contiguous())
        .and_then(|t| t.matmul(&k))
        .ctx("attention logits")?;
    let wts = softmax_last(&wts)?;
    // a[n, g, c, query] = sum_key v[c, key] w[query, key]
    v.matmul(
        &wts.transpose(2, 3)
            .and_then(|t| t.contiguous())
            .ctx("attention")?,
    )
    .ctx("attention values")
}

/// One stream's core.
#[derive(Clone)]
pub struct Core {
    pub feedforward: Feedforward,
    pub recurrent: Recurrent,
}

impl Core {
    pub fn load(w: &Weights, cfg: &TwinConfig, s: usize, dev: &Device) -> Result<Self> {
        Ok(Self {
            feedforward: Feedforward::load(w, cfg, s, dev)?,
            recurrent: Recurrent::load(w, cfg, s, dev)?,
        })
    }

    pub fn reset(&mut self) {
        self.feedforward.reset();
        self.recurrent.reset();
    }

    pub fn step(&mut self, retina: &Tensor, modulation: &Tensor) -> Result<Tensor> {
        let f = self.feedforward.step(retina)?;
        self.recurrent.step(&f, modulation)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::grouped_attention;

    /// The CPU fast path (plain tensors) equals candle's ops (taken when inputs track
    /// gradients), on a shape with several images, groups and an odd position count.
    #[test]
    fn attention_fast_path_matches_candle() {
        let dev = Device::Cpu;
        let (n, g, c, p) = (2, 3, 5, 37);
        let rand = |seed: u64, shape: &[usize]| {
            let len: usize = shape.iter().product();
            let v: Vec<f32> = (0..len)
                .map(|i| {
                    let x = (i as u64 * 2_654_435_761 + seed * 97) % 1000;
                    x as f32 / 500.0 - 1.0
                })
                .collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        let (q, k, v) = (
            rand(1, &[n, g, c, p]),
            rand(2, &[n, g, c, p]),
            rand(3, &[n, g, c, p]),
        );
        let scales = (rand(4, &[1, g, c, 1]) * 3.0).unwrap();
        let fast = grouped_attention(&q, &k, &v, &scales).unwrap();
        let tracked = Var::from_tensor(&q).unwrap();
        let reference = grouped_attention(tracked.as_tensor(), &k, &v, &scales).unwrap();
        let (a, b) = (
            fast.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a.len(), n * g * c * p);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
