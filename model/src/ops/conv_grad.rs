//! A differentiable CPU convolution on im2col + gemm: the forward of [`conv_cpu`] with a
//! backward made of the same two pieces, for the graphs that need gradients (MEI synthesis,
//! the refit).
//!
//! Why: candle 0.11's CPU conv2d backward (a transposed convolution for the input, a conv2d
//! for the kernel) ran at about 5x its forward (BENCHMARKS.md, issue #18). Here, per image and
//! group, the input gradient is `colᵀ-scatter(Kᵀ · dY)` (one gemm, then col2im) and the kernel
//! gradient `dY · colᵀ` (one gemm), split over images on candle's barrier pool.
//! Grouped, strided, zero- or replicate-padded 2-D convolution, f32, no bias (the caller adds
//! it); candle's conv2d is the reference it is tested against.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use crate::error::{CandleContext, Result};

use super::conv_cpu::{ConvGemm, Geometry, SharedMut, im2col_rows, split_over_pool};

/// Whether `layers::Conv` takes this path for its graphs on the CPU (default on).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches the gemm path for graphs on or off process-wide (candle's conv2d runs when off):
/// for before/after measurements, not for tests running in parallel.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the gemm path is on (see [`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct ConvGradOp {
    /// Geometry of one image of the input (all groups' channels).
    geom: Geometry,
    groups: usize,
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    super::op_operand_f32("conv_grad", s, l)
}

impl ConvGradOp {
    /// The im2col matrix of image `n` (all rows).
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let g = &self.geom;
        // SAFETY: col holds rows * cols, and all output rows are written by this one call.
        unsafe { im2col_rows(x, g, col.as_mut_ptr(), 0, g.out_height()) };
    }

    /// Adds an image's im2col gradient into its input gradient (the adjoint of im2col).
    fn col2im(&self, dcol: &[f32], dx: &mut [f32]) {
        let g = &self.geom;
        let (h, w, k, s, p) = (g.height, g.width, g.kernel, g.stride, g.pad as isize);
        let (oh, ow, cols) = (g.out_height(), g.out_width(), g.cols());
        let index = |i: isize, n: usize| -> Option<usize> {
            if (0..n as isize).contains(&i) {
                Some(i as usize)
            } else if g.replicate {
                Some(i.clamp(0, n as isize - 1) as usize)
            } else {
                None
            }
        };
        for c in 0..g.channels {
            let plane = &mut dx[c * h * w..(c + 1) * h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let r = (c * k + ky) * k + kx;
                    let src = &dcol[r * cols..(r + 1) * cols];
                    for oy in 0..oh {
                        let Some(iy) = index((oy * s) as isize + ky as isize - p, h) else {
                            continue;
                        };
                        let row = &mut plane[iy * w..(iy + 1) * w];
                        for ox in 0..ow {
                            if let Some(ix) = index((ox * s) as isize + kx as isize - p, w) {
                                row[ix] += src[oy * ow + ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

impl CustomOp2 for ConvGradOp {
    fn name(&self) -> &'static str {
        "conv2d-im2col-gemm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, _, _, _) = l1.shape().dims4()?;
        let (o, _, _, _) = l2.shape().dims4()?;
        let x = contiguous_f32(s1, l1)?;
        let kernel = contiguous_f32(s2, l2)?;
        let g = self.geom;
        let mut col = vec![0f32; n * g.rows() * g.cols()];
        let run = ConvGemm {
            geom: g,
            batch: n,
            out_channels: o,
            groups: self.groups,
            kernel,
            bias: None,
        };
        let out = run.run(&[col.as_mut_ptr() as *const f32], &[(0, x)]);
        Ok((
            CpuStorage::F32(out),
            Shape::from((n, o, g.out_height(), g.out_width())),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geom;
        let (n, _, _, _) = x.dims4()?;
        let kshape = kernel.dims().to_vec();
        let o = kshape[0];
        let (rows, cols) = (g.rows(), g.cols());
        let (og, kg) = (o / self.groups, rows / self.groups);
        let in_len = g.channels * g.height * g.width;
        let want_kernel = kernel.track_op();
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ks = kernel.flatten_all()?.to_vec1::<f32>()?;
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; n * in_len];
        let pool_threads = candle_core::utils::barrier_pool().n_workers() + 1;
        let slots = pool_threads.min(n).max(1);
        let mut dk = vec![0f32; if want_kernel { slots * o * kg } else { 0 }];
        let (dx_p, dk_p) = (SharedMut(dx.as_mut_ptr()), SharedMut(dk.as_mut_ptr()));
        split_over_pool(slots, |tid, threads| {
            let (n0, n1) = (n * tid / threads, n * (tid + 1) / threads);
            let mut col = vec![0f32; rows * cols];
            let mut dcol = vec![0f32; rows * cols];
            // SAFETY: images n0..n1 of dx and slot tid of dk belong to this thread alone.
            let dk_t = unsafe {
                std::slice::from_raw_parts_mut(
                    dk_p.ptr().add(tid * o * kg),
                    if want_kernel { o * kg } else { 0 },
                )
            };
            for img in n0..n1 {
                let dy_n = &dy[img * o * cols..(img + 1) * o * cols];
                if want_kernel {
                    self.im2col(&xs[img * in_len..(img + 1) * in_len], &mut col);
                }
                for grp in 0..self.groups {
                    // SAFETY: every pointer stays inside its buffer (group blocks of
                    // og x kg kernel rows, og x cols output rows, kg x cols im2col rows).
                    unsafe {
                        // dcol_g [kg, cols] = K_gᵀ [kg, og] · dY_g [og, cols].
                        gemm::gemm(
                            kg,
                            cols,
                            og,
                            dcol.as_mut_ptr().add(grp * kg * cols),
                            1,
                            cols as isize,
                            false,
                            ks.as_ptr().add(grp * og * kg),
                            kg as isize,
                            1,
                            dy_n.as_ptr().add(grp * og * cols),
                            1,
                            cols as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                        if want_kernel {
                            // dK_g [og, kg] += dY_g [og, cols] · col_gᵀ [cols, kg].
                            gemm::gemm(
                                og,
                                kg,
                                cols,
                                dk_t.as_mut_ptr().add(grp * og * kg),
                                1,
                                kg as isize,
                                img > n0,
                                dy_n.as_ptr().add(grp * og * cols),
                                1,
                                cols as isize,
                                col.as_ptr().add(grp * kg * cols),
                                cols as isize,
                                1,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    }
                }
                let dx_n =
                    unsafe { std::slice::from_raw_parts_mut(dx_p.ptr().add(img * in_len), in_len) };
                self.col2im(&dcol, dx_n);
            }
            if n0 == n1 && want_kernel {
                dk_t.fill(0.0);
            }
        });
        let dev = x.device();
        let gx = Tensor::from_vec(dx, x.shape(), dev)?;
        let gk = if want_kernel {
            let mut sum = vec![0f32; o * kg];
            for part in dk.chunks(o * kg) {
                for (s, v) in sum.iter_mut().zip(part) {
                    *s += v;
                }
            }
            Some(Tensor::from_vec(sum, kshape, dev)?)
        } else {
            None
        };
        Ok((Some(gx), gk))
    }
}

/// Grouped 2-D convolution of `x` `[N, C, H, W]` (unpadded) with `kernel`
/// `[O, C / groups, k, k]`, padded by `pad` (zeros, or replicate), stride `stride`;
/// differentiable in both. CPU and f32 only (the caller checks).
pub fn conv2d(
    x: &Tensor,
    kernel: &Tensor,
    stride: usize,
    pad: usize,
    replicate: bool,
    groups: usize,
) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4().ctx("conv_grad input")?;
    let k = kernel.dim(3).ctx("conv_grad kernel")?;
    let geom = Geometry {
        channels: c,
        height: h,
        width: w,
        kernel: k,
        stride,
        pad,
        replicate,
    };
    let x = x.contiguous().ctx("conv_grad input")?;
    let kernel = kernel.contiguous().ctx("conv_grad kernel")?;
    x.apply_op2(&kernel, ConvGradOp { geom, groups })
        .ctx("conv_grad")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = crate::insilico::mei::normals(seed, n)
            .into_iter()
            .map(|z| z as f32)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Output, input gradient and kernel gradient against candle's conv2d on the explicitly
    /// padded input (its autograd is the reference), over strides, groups and paddings.
    #[test]
    fn matches_candle_conv2d_and_its_gradients() {
        for (case, &(c, o, groups, k, stride, replicate)) in [
            (3usize, 4usize, 1usize, 3usize, 1usize, false),
            (4, 6, 2, 3, 1, true),
            (1, 8, 1, 6, 2, true),
            (6, 6, 3, 1, 1, false),
            (2, 4, 2, 5, 2, false),
        ]
        .iter()
        .enumerate()
        {
            let pad = (k - stride) / 2;
            let (n, h, w) = (3, 9, 11);
            let x = Var::from_tensor(&randn(case as u64, &[n, c, h, w])).unwrap();
            let kv = Var::from_tensor(&randn(100 + case as u64, &[o, c / groups, k, k])).unwrap();
            let weight = randn(
                200 + case as u64,
                &[
                    n,
                    o,
                    (h + 2 * pad - k) / stride + 1,
                    (w + 2 * pad - k) / stride + 1,
                ],
            );
            let ours = conv2d(
                x.as_tensor(),
                kv.as_tensor(),
                stride,
                pad,
                replicate,
                groups,
            )
            .unwrap();
            let padded = if replicate {
                x.pad_with_same(2, pad, pad)
                    .and_then(|t| t.pad_with_same(3, pad, pad))
            } else {
                x.pad_with_zeros(2, pad, pad)
                    .and_then(|t| t.pad_with_zeros(3, pad, pad))
            }
            .unwrap();
            let reference = padded.conv2d(kv.as_tensor(), 0, stride, 1, groups).unwrap();
            assert!(max_diff(&ours, &reference) < 1e-4, "case {case}: forward");
            let go = (ours * &weight)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gr = (reference * &weight)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, v) in [("input", x.as_tensor()), ("kernel", kv.as_tensor())] {
                let (a, b) = (go.get(v).unwrap(), gr.get(v).unwrap());
                let scale = b
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    max_diff(a, b) <= 1e-4 * scale.max(1.0),
                    "case {case}: {name} gradient differs by {}",
                    max_diff(a, b)
                );
            }
        }
    }

    /// Where candle's own backward cannot serve as the reference (stride 2 with height and
    /// width leaving different remainders: it errors on the shape), the gradients are checked
    /// by the adjoint identity: the convolution is linear in the input and in the kernel, so
    /// the gradient `G` of `⟨conv(x, K), w⟩` must satisfy `⟨conv(x', K), w⟩ = ⟨x', G⟩` for
    /// every `x'` (and likewise for `K`), here several random ones.
    #[test]
    fn gradients_are_the_adjoint_where_candle_cannot_check() {
        let dot = |a: &Tensor, b: &Tensor| -> f64 {
            (a * b)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        for (case, &(c, o, groups, k, stride, replicate, h, w)) in [
            (
                2usize, 4usize, 2usize, 3usize, 2usize, true, 11usize, 8usize,
            ),
            (3, 3, 1, 6, 2, false, 10, 13),
        ]
        .iter()
        .enumerate()
        {
            let pad = (k - stride) / 2;
            let (oh, ow) = (
                (h + 2 * pad - k) / stride + 1,
                (w + 2 * pad - k) / stride + 1,
            );
            let x = Var::from_tensor(&randn(10 + case as u64, &[2, c, h, w])).unwrap();
            let kv = Var::from_tensor(&randn(20 + case as u64, &[o, c / groups, k, k])).unwrap();
            let weight = randn(30 + case as u64, &[2, o, oh, ow]);
            let y = conv2d(
                x.as_tensor(),
                kv.as_tensor(),
                stride,
                pad,
                replicate,
                groups,
            )
            .unwrap();
            let g = (y * &weight)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (gx, gk) = (
                g.get(x.as_tensor()).unwrap(),
                g.get(kv.as_tensor()).unwrap(),
            );
            for probe in 0..3u64 {
                let x2 = randn(40 + probe, &[2, c, h, w]);
                let lhs = dot(
                    &conv2d(&x2, kv.as_tensor(), stride, pad, replicate, groups).unwrap(),
                    &weight,
                );
                let rhs = dot(&x2, gx);
                assert!(
                    (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
                    "case {case}: input {lhs} vs {rhs}"
                );
                let k2 = randn(50 + probe, &[o, c / groups, k, k]);
                let lhs = dot(
                    &conv2d(x.as_tensor(), &k2, stride, pad, replicate, groups).unwrap(),
                    &weight,
                );
                let rhs = dot(&k2, gk);
                assert!(
                    (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
                    "case {case}: kernel {lhs} vs {rhs}"
                );
            }
        }
    }

    /// A kernel that tracks no gradient gets none (and costs no kernel gemm).
    #[test]
    fn an_untracked_kernel_gets_no_gradient() {
        let x = Var::from_tensor(&randn(1, &[2, 2, 5, 5])).unwrap();
        let k = randn(2, &[3, 2, 3, 3]);
        let y = conv2d(x.as_tensor(), &k, 1, 1, false, 1).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some());
        assert!(g.get(&k).is_none());
    }
}
