//! fnn's building blocks: standardised convolutions with a kept temporal history, linears,
//! inter-group 1x1 convolutions, group-interleaved concatenation, scaled GELU.
//!
//! Design constraints
//! - Weights are standardised once at load, as fnn caches them at eval:
//!   `W = (w - mean) / sqrt(var * fan_in + eps) * gain`, mean/var per output channel over all
//!   other axes, population variance.
//! - A causal temporal kernel of length T is a sum of T 2-D convolutions over the last T
//!   (padded) inputs, oldest first. Before the first frame the history is filled with the first
//!   input (replicate padding) or zeros (zero padding), as fnn does.

use std::collections::VecDeque;

use candle_core::{D, DType, Device, Tensor};

use crate::error::{CandleContext, Result};
use crate::ops::conv_cpu::{ConvGemm, Geometry};
use crate::ops::cpu_slice;
use crate::weights::Weights;

/// fnn's variance-preserving GELU gain.
pub const GELU_GAMMA: f64 = 1.701_504_349_708_557_1;

/// fnn's weight-standardisation eps.
pub const WNORM_EPS: f64 = 1e-5;

/// Exact (erf) GELU times fnn's gain. On the CPU without gradients, one fused pass
/// ([`crate::ops::elementwise::gelu_scaled`]); otherwise candle's ops (the reference).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if crate::ops::fast_path(&[x]) {
        let y = crate::ops::with_cpu_slices([x], "gelu input", |[x]| {
            crate::ops::elementwise::gelu_scaled(x, GELU_GAMMA as f32)
        })?;
        return Tensor::from_vec(y, x.shape(), x.device()).ctx("gelu");
    }
    x.gelu_erf()
        .and_then(|y| y.affine(GELU_GAMMA, 0.0))
        .ctx("gelu")
}

/// Logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x).ctx("sigmoid")
}

/// Group-interleaved channel concatenation (fnn `cat_groups_2d`): each tensor `[N, C_i, H, W]`
/// is split into `groups` channel groups and the groups are concatenated group by group.
pub fn cat_groups_2d(tensors: &[&Tensor], groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return Tensor::cat(tensors, 1).ctx("cat_groups_2d");
    }
    let mut parts = Vec::with_capacity(tensors.len());
    let (mut n, mut h, mut w, mut total) = (0, 0, 0, 0);
    for t in tensors {
        let (tn, c, th, tw) = t.dims4().ctx("cat_groups_2d")?;
        (n, h, w) = (tn, th, tw);
        total += c;
        parts.push(
            t.reshape((tn, groups, c / groups, th, tw))
                .ctx("cat_groups_2d")?,
        );
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    Tensor::cat(&refs, 2)
        .and_then(|t| t.reshape((n, total, h, w)))
        .ctx("cat_groups_2d")
}

/// Standardises `w` over every axis but the first; `gain` (if any) is per output channel.
fn standardise(w: &Tensor, fan_in: usize, gain: Option<&Tensor>, name: &str) -> Result<Tensor> {
    let o = w.dim(0).ctx(name)?;
    let flat = w.reshape((o, ())).ctx(name)?;
    let mean = flat.mean_keepdim(1).ctx(name)?;
    let centred = flat.broadcast_sub(&mean).ctx(name)?;
    let var = centred.sqr().and_then(|v| v.mean_keepdim(1)).ctx(name)?;
    let mut scale = var
        .affine(fan_in as f64, WNORM_EPS)
        .and_then(|v| v.sqrt())
        .and_then(|v| v.recip())
        .ctx(name)?;
    if let Some(g) = gain {
        scale = scale.mul(&g.reshape((o, 1)).ctx(name)?).ctx(name)?;
    }
    centred
        .broadcast_mul(&scale)
        .and_then(|t| t.reshape(w.dims()))
        .ctx(name)
}

/// Spatial padding of a convolution's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Zeros,
    Replicate,
}

/// Shape and options of an fnn `Conv` (one stream).
#[derive(Debug, Clone)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_groups: usize,
    pub out_groups: usize,
    pub temporal: usize,
    pub spatial: usize,
    pub stride: usize,
    pub pad: Pad,
    pub gain: bool,
    pub bias: bool,
    pub wnorm: bool,
}

impl ConvSpec {
    /// A 1x1, single-frame conv with fnn's defaults (gain and bias on, wnorm on).
    pub fn pointwise(in_channels: usize, out_channels: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            in_groups: 1,
            out_groups: 1,
            temporal: 1,
            spatial: 1,
            stride: 1,
            pad: Pad::Zeros,
            gain: true,
            bias: true,
            wnorm: true,
        }
    }
    pub fn groups(mut self, in_groups: usize, out_groups: usize) -> Self {
        self.in_groups = in_groups;
        self.out_groups = out_groups;
        self
    }
    pub fn gain(mut self, on: bool) -> Self {
        self.gain = on;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
}

/// A standardised, possibly causal-temporal, grouped 2-D convolution with kept history.
///
/// The T taps run as one 2-D convolution: the kept inputs are concatenated group-interleaved
/// (per group: oldest tap's channels first) and the kernel is laid out to match,
/// `[O, T * I/in_groups, k, k]` — the same sum as T separate convolutions, one GEMM.
#[derive(Clone)]
pub struct Conv {
    spec: ConvSpec,
    padding: usize,
    /// `[O, T * I/in_groups, k, k]`, per group tap-major.
    kernel: Tensor,
    /// `[1, O, 1, 1]`.
    bias: Option<Tensor>,
    /// The last T inputs (unpadded), oldest first; each frame is padded / im2col'd once.
    history: VecDeque<Frame>,
    /// im2col buffers of frames that left the history, for reuse.
    spare: Vec<Vec<f32>>,
    /// Graphs run candle's conv2d even where [`crate::ops::conv_grad`] could: the reference
    /// the gemm graph path is tested against, per conv so tests need no global switch.
    candle_graph: bool,
}

/// One kept input frame and what each path derived from it (computed at most once).
#[derive(Clone)]
struct Frame {
    x: Tensor,
    /// Candle path: the spatially padded input.
    padded: Option<Tensor>,
    /// CPU fast path: the im2col matrix `[N, C*k*k, H'*W']`.
    col: Option<Vec<f32>>,
}

impl Frame {
    fn new(x: Tensor) -> Self {
        Self {
            x,
            padded: None,
            col: None,
        }
    }
}

impl Conv {
    /// Loads stream `stream` of the conv at `prefix` (fnn names `weights.s`, `gains.s`, `biases.s`).
    pub fn load(
        w: &Weights,
        prefix: &str,
        stream: usize,
        spec: ConvSpec,
        dev: &Device,
    ) -> Result<Self> {
        let s = &spec;
        let fan_in = s.in_channels / s.in_groups * s.temporal * s.spatial * s.spatial;
        let wname = format!("{prefix}.weights.{stream}");
        let raw = w.get(
            &wname,
            &[
                s.out_channels,
                s.in_channels / s.in_groups,
                s.temporal,
                s.spatial,
                s.spatial,
            ],
        )?;
        let fan_out = s.out_channels / s.out_groups;
        let kernel = if s.wnorm {
            let gain = if s.gain {
                Some(w.get(
                    &format!("{prefix}.gains.{stream}"),
                    &[s.out_groups, fan_out],
                )?)
            } else {
                None
            };
            standardise(&raw, fan_in, gain.as_ref(), &wname)?
        } else {
            raw
        };
        let (o, ci, t, k) = (
            s.out_channels,
            s.in_channels / s.in_groups,
            s.temporal,
            s.spatial,
        );
        let kernel = kernel
            .permute((0, 2, 1, 3, 4))
            .and_then(|k| k.contiguous())
            .and_then(|kk| kk.reshape((o, t * ci, k, k)))
            .and_then(|k| k.to_device(dev))
            .ctx(&wname)?;
        let bias = if s.bias {
            let name = format!("{prefix}.biases.{stream}");
            let b = w.get(&name, &[s.out_groups, fan_out])?;
            Some(
                b.reshape((1, s.out_channels, 1, 1))
                    .and_then(|b| b.to_device(dev))
                    .ctx(&name)?,
            )
        } else {
            None
        };
        let padding = (spec.spatial - spec.stride) / 2;
        Ok(Self {
            padding,
            kernel,
            bias,
            history: VecDeque::with_capacity(spec.temporal),
            spare: Vec::new(),
            candle_graph: false,
            spec,
        })
    }

    /// Forgets the temporal history (start of a new clip).
    pub fn reset(&mut self) {
        while let Some(f) = self.history.pop_front() {
            self.spare.extend(f.col);
        }
    }

    /// One frame: `[N, I, H, W]` → `[N, O, H', W']`.
    ///
    /// On the CPU with f32 and nothing tracking gradients (neither the input, any kept frame,
    /// nor the kernel: `Tensor::track_op`), this runs [`crate::ops::conv_cpu`], which has no
    /// backward. A graph on the CPU in f32 (MEIs, training) runs [`crate::ops::conv_grad`],
    /// the same gemm forward with a gemm backward; anything else (CUDA, other dtypes, or
    /// `conv_grad` switched off) runs candle's conv2d. All paths share the kept history, so a
    /// clip may switch between them.
    pub fn step(&mut self, x: &Tensor) -> Result<Tensor> {
        let t = self.spec.temporal;
        if self.history.is_empty() {
            let start = match self.spec.pad {
                Pad::Replicate => x.clone(),
                Pad::Zeros => x.zeros_like().ctx("conv history")?,
            };
            for _ in 0..t - 1 {
                self.history.push_back(Frame::new(start.clone()));
            }
        } else if self.history.len() == t
            && let Some(old) = self.history.pop_front()
        {
            self.spare.extend(old.col);
        }
        self.history.push_back(Frame::new(x.clone()));
        let fast = x.device().is_cpu()
            && x.dtype() == DType::F32
            && !self.kernel.track_op()
            && self.bias.as_ref().is_none_or(|b| !b.track_op())
            && self.history.iter().all(|f| !f.x.track_op());
        let gemm_graph = x.device().is_cpu()
            && x.dtype() == DType::F32
            && !self.candle_graph
            && crate::ops::conv_grad::enabled();
        let y = if fast {
            self.step_cpu()?
        } else if gemm_graph {
            self.step_gemm_graph()?
        } else {
            self.step_candle()?
        };
        if t == 1 {
            // Nothing to keep: the next frame replaces this one.
            if let Some(old) = self.history.pop_front() {
                self.spare.extend(old.col);
            }
        }
        Ok(y)
    }

    /// The CPU graph path: [`crate::ops::conv_grad`] over the group-interleaved unpadded
    /// history (it pads inside; padding each frame or the concatenation is the same sum, as
    /// the concatenation is along channels).
    fn step_gemm_graph(&mut self) -> Result<Tensor> {
        let xs: Vec<&Tensor> = self.history.iter().map(|f| &f.x).collect();
        let input = if xs.len() > 1 {
            cat_groups_2d(&xs, self.spec.in_groups)?
        } else {
            xs[0].clone()
        };
        let y = crate::ops::conv_grad::conv2d(
            &input,
            &self.kernel,
            self.spec.stride,
            self.padding,
            self.spec.pad == Pad::Replicate,
            self.spec.in_groups,
        )?;
        match &self.bias {
            Some(b) => y.broadcast_add(b).ctx("conv bias"),
            None => Ok(y),
        }
    }

    /// The reference graph path: candle's grouped conv2d over the group-interleaved padded
    /// history.
    fn step_candle(&mut self) -> Result<Tensor> {
        let p = self.padding;
        for f in self.history.iter_mut().filter(|f| f.padded.is_none()) {
            f.padded = Some(if p == 0 {
                f.x.clone()
            } else {
                match self.spec.pad {
                    Pad::Zeros => {
                        f.x.pad_with_zeros(2, p, p)
                            .and_then(|x| x.pad_with_zeros(3, p, p))
                    }
                    Pad::Replicate => {
                        f.x.pad_with_same(2, p, p)
                            .and_then(|x| x.pad_with_same(3, p, p))
                    }
                }
                .ctx("conv pad")?
            });
        }
        let padded: Vec<&Tensor> = self
            .history
            .iter()
            .filter_map(|f| f.padded.as_ref())
            .collect();
        let input = if padded.len() > 1 {
            cat_groups_2d(&padded, self.spec.in_groups)?
        } else {
            padded[0].clone()
        };
        let y = input
            .conv2d(&self.kernel, 0, self.spec.stride, 1, self.spec.in_groups)
            .ctx("conv2d")?;
        match &self.bias {
            Some(b) => y.broadcast_add(b).ctx("conv bias"),
            None => Ok(y),
        }
    }

    /// The CPU fast path (forward only; see [`crate::ops::conv_cpu`]).
    fn step_cpu(&mut self) -> Result<Tensor> {
        let (n, c, h, w) = self.history[0].x.dims4().ctx("conv input")?;
        let geom = Geometry {
            channels: c,
            height: h,
            width: w,
            kernel: self.spec.spatial,
            stride: self.spec.stride,
            pad: self.padding,
            replicate: self.spec.pad == Pad::Replicate,
        };
        // Contiguous views of every kept input (cheap clones when already contiguous).
        let xs: Vec<Tensor> = self
            .history
            .iter()
            .map(|f| f.x.contiguous())
            .collect::<candle_core::Result<_>>()
            .ctx("conv input")?;
        let guards: Vec<_> = xs.iter().map(|x| x.storage_and_layout()).collect();
        let inputs: Vec<&[f32]> = guards
            .iter()
            .map(|g| cpu_slice(g, "conv input"))
            .collect::<Result<_>>()?;
        let kguard = self.kernel.storage_and_layout();
        let kernel = cpu_slice(&kguard, "conv kernel")?;
        let bguard = self.bias.as_ref().map(|b| b.storage_and_layout());
        let bias = match &bguard {
            Some(g) => Some(cpu_slice(g, "conv bias")?),
            None => None,
        };
        let mut taps = Vec::with_capacity(inputs.len());
        let mut fill = Vec::new();
        if geom.is_identity() {
            taps.extend(inputs.iter().map(|x| x.as_ptr()));
        } else {
            let size = n * geom.rows() * geom.cols();
            for (i, f) in self.history.iter_mut().enumerate() {
                let col = match &mut f.col {
                    Some(col) if col.len() == size => col,
                    slot => {
                        let mut v = self.spare.pop().unwrap_or_default();
                        v.resize(size, 0.0);
                        fill.push((i, inputs[i]));
                        slot.insert(v)
                    }
                };
                taps.push(col.as_ptr());
            }
        }
        let run = ConvGemm {
            geom,
            batch: n,
            out_channels: self.spec.out_channels,
            groups: self.spec.in_groups,
            kernel,
            bias,
        };
        let out = run.run(&taps, &fill);
        Tensor::from_vec(
            out,
            (
                n,
                self.spec.out_channels,
                geom.out_height(),
                geom.out_width(),
            ),
            &Device::Cpu,
        )
        .ctx("conv output")
    }
}

/// A standardised linear layer (fnn `Linear`: a 1x1 `Conv` on `[N, F, 1, 1]`).
#[derive(Clone)]
pub struct Linear {
    /// `[I, O]`, transposed for `x @ w`.
    weight_t: Tensor,
    /// `[1, O]`.
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads stream `stream` of the linear at `prefix`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        stream: usize,
        in_features: usize,
        out_features: usize,
        gain: bool,
        dev: &Device,
    ) -> Result<Self> {
        let wname = format!("{prefix}.weights.{stream}");
        let raw = w.get(&wname, &[out_features, in_features, 1, 1, 1])?;
        let g = if gain {
            Some(w.get(&format!("{prefix}.gains.{stream}"), &[1, out_features])?)
        } else {
            None
        };
        let k = standardise(&raw, in_features, g.as_ref(), &wname)?;
        let weight_t = k
            .reshape((out_features, in_features))
            .and_then(|k| k.t())
            .and_then(|k| k.contiguous())
            .and_then(|k| k.to_device(dev))
            .ctx(&wname)?;
        let bname = format!("{prefix}.biases.{stream}");
        let b = w.get(&bname, &[1, out_features])?;
        let bias = Some(b.to_device(dev).ctx(&bname)?);
        Ok(Self { weight_t, bias })
    }

    /// `[N, I]` → `[N, O]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight_t).ctx("linear")?;
        match &self.bias {
            Some(b) => y.broadcast_add(b).ctx("linear bias"),
            None => Ok(y),
        }
    }
}

/// fnn `InterGroup`: a 1x1 conv where each output group reads every *other* input group.
#[derive(Clone)]
pub struct InterGroup {
    /// `[O, I, 1, 1]` block-off-diagonal kernel.
    kernel: Tensor,
}

impl InterGroup {
    pub fn load(
        w: &Weights,
        prefix: &str,
        stream: usize,
        in_channels: usize,
        out_channels: usize,
        groups: usize,
        dev: &Device,
    ) -> Result<Self> {
        let gi = in_channels / groups;
        let go = out_channels / groups;
        let wname = format!("{prefix}.weights.{stream}");
        let raw = w.get(&wname, &[groups, groups - 1, go, gi])?;
        let gain = w.get(&format!("{prefix}.gains.{stream}"), &[groups, go])?;
        // Standardise over (other group, input channel) per (group, output channel).
        let per = raw
            .permute((0, 2, 1, 3))
            .and_then(|t| t.contiguous())
            .ctx(&wname)?; // [G, go, G-1, gi]
        let per = per.reshape((groups * go, (groups - 1) * gi)).ctx(&wname)?;
        let std = standardise(
            &per,
            gi * (groups - 1),
            Some(&gain.flatten_all().ctx(&wname)?),
            &wname,
        )?;
        // Place the blocks in the full kernel with tensor ops (so a fit can train them): out
        // group g reads in group j != g from column block j' = j - (j > g) of its row.
        let std = std
            .reshape((groups, go, groups - 1, gi))
            .and_then(|t| t.to_device(dev))
            .ctx(&wname)?;
        let zeros = Tensor::zeros((go, gi), std.dtype(), dev).ctx(&wname)?;
        let mut rows = Vec::with_capacity(groups);
        for g in 0..groups {
            let mut cols = Vec::with_capacity(groups);
            for j in 0..groups {
                cols.push(if j == g {
                    zeros.clone()
                } else {
                    let jp = if j > g { j - 1 } else { j };
                    std.get(g)
                        .and_then(|t| t.narrow(1, jp, 1))
                        .and_then(|t| t.squeeze(1))
                        .ctx(&wname)?
                });
            }
            rows.push(Tensor::cat(&cols, 1).ctx(&wname)?);
        }
        let kernel = Tensor::cat(&rows, 0)
            .and_then(|t| t.reshape((out_channels, in_channels, 1, 1)))
            .ctx(&wname)?;
        Ok(Self { kernel })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.kernel, 0, 1, 1, 1).ctx("intergroup")
    }
}

/// L2-normalises along `dim` (no eps, as fnn).
pub fn l2_normalise(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x
        .sqr()
        .and_then(|s| s.sum_keepdim(dim))
        .and_then(|s| s.sqrt())
        .ctx("l2 norm")?;
    x.broadcast_div(&n).ctx("l2 normalise")
}

/// Softmax over the last axis.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1).ctx("softmax")
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{Conv, ConvSpec, Pad};
    use crate::weights::Weights;

    /// The same conv twice (same synthetic weights): the first with the default paths (fed
    /// plain inputs: the CPU fast path; fed tracked inputs: the gemm graph path), the second
    /// forced onto candle's conv2d for graphs (fed tracked inputs: the reference).
    fn pair(spec: &ConvSpec) -> (Conv, Conv) {
        let dev = Device::Cpu;
        let a = Conv::load(&Weights::synthetic(3), "c", 0, spec.clone(), &dev).unwrap();
        let mut b = Conv::load(&Weights::synthetic(3), "c", 0, spec.clone(), &dev).unwrap();
        b.candle_graph = true;
        (a, b)
    }

    /// Every conv shape of [`fast_path_equals_candle_conv2d`].
    fn cases() -> Vec<(ConvSpec, usize, usize, usize)> {
        vec![
            // fnn's input conv: 6x6, stride 2, replicate, one input channel.
            (spec(1, 8, (1, 2), 1, 6, 2, Pad::Replicate, true), 1, 20, 30),
            // Dense block conv: grouped, temporal 3, 3x3, zero padding.
            (spec(8, 8, (2, 2), 3, 3, 1, Pad::Zeros, true), 1, 9, 13),
            // Grouped temporal conv with replicate padding, stride 2, batch 2, no bias.
            (spec(6, 9, (3, 3), 2, 3, 2, Pad::Replicate, false), 2, 11, 8),
            // 5x5 temporal 4, ungrouped, odd sizes.
            (spec(3, 5, (1, 1), 4, 5, 1, Pad::Zeros, true), 1, 7, 10),
            // Pointwise grouped (skips, gates), in place of im2col.
            (spec(12, 8, (4, 4), 1, 1, 1, Pad::Zeros, false), 2, 5, 6),
            // Pointwise with replicate padding flag (no padding at 1x1) and a temporal tap.
            (spec(4, 6, (1, 2), 2, 1, 1, Pad::Replicate, true), 1, 4, 4),
        ]
    }

    fn tracked(x: &Tensor) -> Tensor {
        Var::from_tensor(x).unwrap().as_tensor().clone()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let s = b.abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap().max(1e-12)
    }

    #[allow(clippy::too_many_arguments)]
    fn spec(
        i: usize,
        o: usize,
        groups: (usize, usize),
        t: usize,
        k: usize,
        stride: usize,
        pad: Pad,
        bias: bool,
    ) -> ConvSpec {
        ConvSpec {
            in_channels: i,
            out_channels: o,
            in_groups: groups.0,
            out_groups: groups.1,
            temporal: t,
            spatial: k,
            stride,
            pad,
            gain: true,
            bias,
            wnorm: true,
        }
    }

    /// Every conv shape fnn uses (and a few more): the fast path equals candle's conv2d over
    /// a clip, frame by frame, with the history filled and rolled.
    #[test]
    fn fast_path_equals_candle_conv2d() {
        for (c, (spec, n, h, w)) in cases().iter().enumerate() {
            let (mut fast, mut reference) = pair(spec);
            for f in 0..5 {
                let x =
                    Tensor::randn(0f32, 1.0, (*n, spec.in_channels, *h, *w), &Device::Cpu).unwrap();
                let a = fast.step(&x).unwrap();
                let b = reference.step(&tracked(&x)).unwrap();
                assert!(
                    !a.track_op() && b.track_op(),
                    "case {c}: paths not as intended"
                );
                assert_eq!(a.dims(), b.dims(), "case {c} frame {f}");
                let e = max_rel(&a, &b);
                assert!(e < 1e-5, "case {c} frame {f}: max relative error {e}");
            }
        }
    }

    /// The gemm graph path equals candle's conv2d graph over a clip (history filled and
    /// rolled): the outputs, and the gradients of a random weighting of all outputs with
    /// respect to every input frame and to the kernel (candle's autograd is the reference).
    #[test]
    fn gemm_graph_path_equals_candle_in_value_and_gradient() {
        for (c, (spec, n, h, w)) in cases().iter().enumerate() {
            // candle 0.11's conv2d backward takes the transposed convolution's output padding
            // from the height alone: where height and width leave different remainders over
            // the stride, its input gradient has the wrong width (a shape error). Widen such
            // a case by one pixel here; `ops::conv_grad` checks that shape by the adjoint.
            let (k, s) = (spec.spatial, spec.stride);
            let p = (k - s) / 2;
            let w = if (h + 2 * p - k) % s != (w + 2 * p - k) % s {
                w + 1
            } else {
                *w
            };
            let (mut gemm, mut reference) = pair(spec);
            // One kernel Var shared by both, so both graphs differentiate the same leaf.
            let kernel = Var::from_tensor(&gemm.kernel).unwrap();
            gemm.kernel = kernel.as_tensor().clone();
            reference.kernel = kernel.as_tensor().clone();
            let frames: Vec<Var> = (0..5)
                .map(|_| {
                    let x = Tensor::randn(0f32, 1.0, (*n, spec.in_channels, *h, w), &Device::Cpu);
                    Var::from_tensor(&x.unwrap()).unwrap()
                })
                .collect();
            let (mut loss_a, mut loss_b) = (None::<Tensor>, None::<Tensor>);
            for (f, x) in frames.iter().enumerate() {
                let a = gemm.step(x.as_tensor()).unwrap();
                let b = reference.step(x.as_tensor()).unwrap();
                let e = max_rel(&a, &b);
                assert!(e < 1e-5, "case {c} frame {f}: output error {e}");
                let weight = Tensor::randn(0f32, 1.0, a.dims(), &Device::Cpu).unwrap();
                let (la, lb) = (
                    (a * &weight).unwrap().sum_all().unwrap(),
                    (b * &weight).unwrap().sum_all().unwrap(),
                );
                loss_a = Some(loss_a.map_or(la.clone(), |l| (l + la).unwrap()));
                loss_b = Some(loss_b.map_or(lb.clone(), |l| (l + lb).unwrap()));
            }
            let ga = loss_a.unwrap().backward().unwrap();
            let gb = loss_b.unwrap().backward().unwrap();
            let leaves = frames
                .iter()
                .map(|v| v.as_tensor())
                .chain([kernel.as_tensor()]);
            for (i, leaf) in leaves.enumerate() {
                let (a, b) = (ga.get(leaf).unwrap(), gb.get(leaf).unwrap());
                let e = max_rel(a, b);
                assert!(e < 1e-4, "case {c} leaf {i}: gradient error {e}");
            }
        }
    }

    /// The fused CPU GELU equals candle's `gelu_erf` times the gain (the tracked path).
    #[test]
    fn fused_gelu_matches_candle() {
        let v: Vec<f32> = (0..2001).map(|i| -8.0 + 16.0 * i as f32 / 2000.0).collect();
        let x = Tensor::from_vec(v, (1, 1, 1, 2001), &Device::Cpu).unwrap();
        let fast = super::gelu(&x).unwrap();
        let reference = super::gelu(&tracked(&x)).unwrap();
        let e = max_rel(&fast, &reference);
        assert!(e < 1e-6, "max relative error {e}");
    }

    /// A clip may switch paths (e.g. a gradient-tracked frame mid-clip): the kept history is
    /// shared, so the result equals running the reference throughout; reset restarts both.
    #[test]
    fn paths_share_the_history() {
        let spec = spec(4, 4, (2, 2), 3, 3, 1, Pad::Replicate, true);
        let (mut mixed, mut reference) = pair(&spec);
        for round in 0..2 {
            for f in 0..6 {
                let x = Tensor::randn(0f32, 1.0, (1, 4, 6, 7), &Device::Cpu).unwrap();
                let a = if f % 3 == 1 {
                    mixed.step(&tracked(&x)).unwrap()
                } else {
                    mixed.step(&x).unwrap()
                };
                let b = reference.step(&tracked(&x)).unwrap();
                let e = max_rel(&a, &b);
                assert!(e < 1e-5, "round {round} frame {f}: {e}");
            }
            mixed.reset();
            reference.reset();
        }
    }
}
