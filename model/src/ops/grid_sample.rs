//! Bilinear grid sampling, PyTorch's `grid_sample(mode="bilinear", align_corners=False)`.
//!
//! `input [N, C, H, W]`, `grid [N, Ho, Wo, 2]` with `(x, y)` in `[-1, 1]` spanning the *edges*
//! of the outer pixels (align_corners=False): `ix = ((x + 1) W - 1) / 2`. Output
//! `[N, C, Ho, Wo]`. Padding `Zeros` drops taps outside the image; `Border` clamps the
//! coordinate into `[0, W-1]` first (gradient zero where clamped), as PyTorch does.
//!
//! Forward and backward run on the CPU in f32 (the reference). On other devices the op copies
//! its operands to the CPU and back — correct, not fast.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use crate::error::{CandleContext, Result};

/// Out-of-range handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Taps outside the image read 0 (fnn's "dark" periphery).
    Zeros,
    /// Coordinates are clamped to the border (fnn's readout).
    Border,
}

/// One output sample: the four taps' flat offsets in the image plane and weights, plus the
/// derivatives of the weights in the unnormalised coordinates.
struct Taps {
    idx: [Option<usize>; 4],
    w: [f32; 4],
    /// d(ix)/d(x) and d(iy)/d(y), zero where clamped.
    dix: f32,
    diy: f32,
    /// Fractional offsets (tx, ty) used for the gradient.
    tx: f32,
    ty: f32,
}

fn unnormalise(coord: f32, size: usize, padding: Padding) -> (f32, f32) {
    let s = size as f32;
    let mut i = ((coord + 1.0) * s - 1.0) / 2.0;
    let mut d = s / 2.0;
    if padding == Padding::Border {
        let hi = s - 1.0;
        if i <= 0.0 {
            i = 0.0;
            d = 0.0;
        } else if i >= hi {
            i = hi;
            d = 0.0;
        }
    }
    (i, d)
}

fn taps(x: f32, y: f32, h: usize, w: usize, padding: Padding) -> Taps {
    let (ix, dix) = unnormalise(x, w, padding);
    let (iy, diy) = unnormalise(y, h, padding);
    let x0 = ix.floor();
    let y0 = iy.floor();
    let tx = ix - x0;
    let ty = iy - y0;
    let weights = [
        (1.0 - tx) * (1.0 - ty),
        tx * (1.0 - ty),
        (1.0 - tx) * ty,
        tx * ty,
    ];
    let corners = [
        (x0, y0),
        (x0 + 1.0, y0),
        (x0, y0 + 1.0),
        (x0 + 1.0, y0 + 1.0),
    ];
    let mut idx = [None; 4];
    for (k, (cx, cy)) in corners.iter().enumerate() {
        if *cx >= 0.0 && *cy >= 0.0 && *cx < w as f32 && *cy < h as f32 {
            idx[k] = Some(*cy as usize * w + *cx as usize);
        }
    }
    Taps {
        idx,
        w: weights,
        dix,
        diy,
        tx,
        ty,
    }
}

/// Plain forward on contiguous slices: `input [n,c,h,w]`, `grid [n,ho,wo,2]`.
pub fn grid_sample_slices(
    input: &[f32],
    dims: [usize; 4],
    grid: &[f32],
    out_hw: [usize; 2],
    padding: Padding,
) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let [ho, wo] = out_hw;
    let plane = h * w;
    let mut out = vec![0f32; n * c * ho * wo];
    for b in 0..n {
        for p in 0..ho * wo {
            let g = (b * ho * wo + p) * 2;
            let t = taps(grid[g], grid[g + 1], h, w, padding);
            for ch in 0..c {
                let base = (b * c + ch) * plane;
                let mut acc = 0f32;
                for k in 0..4 {
                    if let Some(i) = t.idx[k] {
                        acc += input[base + i] * t.w[k];
                    }
                }
                out[(b * c + ch) * ho * wo + p] = acc;
            }
        }
    }
    out
}

/// The readout's forward fused (no gradient): `core [N, C, H, W]` sampled at each unit's
/// `positions[u] = (x, y)` as [`grid_sample`] does, dotted with `features [U, C]`, plus
/// `bias [U]` → `[N, U]`.
///
/// Why: sampling into `[N, C, U]` and weighting through candle wrote and re-read a strided
/// `[N, U, C]` product (1.3 M elements a stream per frame for fnn's 10,000 units). Here each
/// image is transposed once to `[H*W, C]` so a unit's four taps are contiguous rows.
pub fn sample_dot_slices(
    core: &[f32],
    dims: [usize; 4],
    positions: &[f32],
    features: &[f32],
    bias: &[f32],
    padding: Padding,
) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let (units, plane) = (bias.len(), h * w);
    let mut out = vec![0f32; n * units];
    let mut by_pixel = vec![0f32; plane * c];
    let mut acc = vec![0f32; c];
    for b in 0..n {
        let img = &core[b * c * plane..(b + 1) * c * plane];
        for (ch, row) in img.chunks_exact(plane).enumerate() {
            for (p, &v) in row.iter().enumerate() {
                by_pixel[p * c + ch] = v;
            }
        }
        for (u, o) in out[b * units..(b + 1) * units].iter_mut().enumerate() {
            let t = taps(positions[2 * u], positions[2 * u + 1], h, w, padding);
            acc.fill(0.0);
            for (idx, tw) in t.idx.iter().zip(t.w) {
                if let Some(i) = idx {
                    for (a, &v) in acc.iter_mut().zip(&by_pixel[i * c..(i + 1) * c]) {
                        *a += v * tw;
                    }
                }
            }
            let f = &features[u * c..(u + 1) * c];
            *o = bias[u] + acc.iter().zip(f).map(|(a, f)| a * f).sum::<f32>();
        }
    }
    out
}

/// Plain backward: gradients of `sum(out * grad_out)` w.r.t. input and grid.
pub fn grid_sample_backward_slices(
    input: &[f32],
    dims: [usize; 4],
    grid: &[f32],
    out_hw: [usize; 2],
    grad_out: &[f32],
    padding: Padding,
) -> (Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = dims;
    let [ho, wo] = out_hw;
    let plane = h * w;
    let mut g_in = vec![0f32; input.len()];
    let mut g_grid = vec![0f32; grid.len()];
    for b in 0..n {
        for p in 0..ho * wo {
            let g = (b * ho * wo + p) * 2;
            let t = taps(grid[g], grid[g + 1], h, w, padding);
            let (mut gx, mut gy) = (0f32, 0f32);
            for ch in 0..c {
                let go = grad_out[(b * c + ch) * ho * wo + p];
                let base = (b * c + ch) * plane;
                let v = |k: usize| t.idx[k].map_or(0.0, |i| input[base + i]);
                let (v00, v10, v01, v11) = (v(0), v(1), v(2), v(3));
                for k in 0..4 {
                    if let Some(i) = t.idx[k] {
                        g_in[base + i] += go * t.w[k];
                    }
                }
                gx += go * ((v10 - v00) * (1.0 - t.ty) + (v11 - v01) * t.ty);
                gy += go * ((v01 - v00) * (1.0 - t.tx) + (v11 - v10) * t.tx);
            }
            g_grid[g] = gx * t.dix;
            g_grid[g + 1] = gy * t.diy;
        }
    }
    (g_in, g_grid)
}

struct GridSampleOp {
    padding: Padding,
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    super::op_operand_f32("grid_sample", s, l)
}

impl CustomOp2 for GridSampleOp {
    fn name(&self) -> &'static str {
        "grid-sample-bilinear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let (gn, ho, wo, two) = l2.shape().dims4()?;
        if gn != n || two != 2 {
            candle_core::bail!(
                "grid_sample: grid {:?} vs input {:?}",
                l2.shape(),
                l1.shape()
            );
        }
        let input = contiguous_f32(s1, l1)?;
        let grid = contiguous_f32(s2, l2)?;
        let out = grid_sample_slices(input, [n, c, h, w], grid, [ho, wo], self.padding);
        Ok((CpuStorage::F32(out), Shape::from((n, c, ho, wo))))
    }

    fn bwd(
        &self,
        input: &Tensor,
        grid: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dev = input.device().clone();
        let cpu = candle_core::Device::Cpu;
        let (n, c, h, w) = input.dims4()?;
        let (_, ho, wo, _) = grid.dims4()?;
        let i = input.to_device(&cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let g = grid.to_device(&cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let go = grad_res.to_device(&cpu)?.flatten_all()?.to_vec1::<f32>()?;
        let (gi, gg) =
            grid_sample_backward_slices(&i, [n, c, h, w], &g, [ho, wo], &go, self.padding);
        let gi = Tensor::from_vec(gi, (n, c, h, w), &cpu)?.to_device(&dev)?;
        let gg = Tensor::from_vec(gg, (n, ho, wo, 2), &cpu)?.to_device(&dev)?;
        Ok((Some(gi), Some(gg)))
    }
}

/// Samples `input [N, C, H, W]` at `grid [N, Ho, Wo, 2]`; differentiable in both.
pub fn grid_sample(input: &Tensor, grid: &Tensor, padding: Padding) -> Result<Tensor> {
    let dev = input.device().clone();
    let on_cpu = dev.is_cpu();
    let prep = |t: &Tensor| -> candle_core::Result<Tensor> {
        let t = if t.dtype() == DType::F32 {
            t.clone()
        } else {
            t.to_dtype(DType::F32)?
        };
        let t = if on_cpu {
            t
        } else {
            t.to_device(&candle_core::Device::Cpu)?
        };
        t.contiguous()
    };
    let i = prep(input).ctx("grid_sample input")?;
    let g = prep(grid).ctx("grid_sample grid")?;
    let out = i
        .apply_op2(&g, GridSampleOp { padding })
        .ctx("grid_sample")?;
    if on_cpu {
        Ok(out)
    } else {
        out.to_device(&dev).ctx("grid_sample to device")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Textbook bilinear sampling in f64, written independently of `taps`.
    fn reference(img: &[f32], h: usize, w: usize, x: f64, y: f64, padding: Padding) -> f64 {
        let mut ix = ((x + 1.0) * w as f64 - 1.0) / 2.0;
        let mut iy = ((y + 1.0) * h as f64 - 1.0) / 2.0;
        if padding == Padding::Border {
            ix = ix.clamp(0.0, (w - 1) as f64);
            iy = iy.clamp(0.0, (h - 1) as f64);
        }
        let pix = |xx: i64, yy: i64| -> f64 {
            if xx < 0 || yy < 0 || xx >= w as i64 || yy >= h as i64 {
                0.0
            } else {
                img[yy as usize * w + xx as usize] as f64
            }
        };
        let x0 = ix.floor() as i64;
        let y0 = iy.floor() as i64;
        let fx = ix - x0 as f64;
        let fy = iy - y0 as f64;
        pix(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + pix(x0 + 1, y0) * fx * (1.0 - fy)
            + pix(x0, y0 + 1) * (1.0 - fx) * fy
            + pix(x0 + 1, y0 + 1) * fx * fy
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32) / (1u64 << 31) as f32
    }

    #[test]
    fn matches_plain_reference_both_paddings() {
        let (n, c, h, w, ho, wo) = (2, 3, 5, 7, 4, 6);
        let mut s = 7u64;
        let img: Vec<f32> = (0..n * c * h * w).map(|_| lcg(&mut s)).collect();
        // Coordinates well beyond [-1, 1] to exercise both paddings.
        let grid: Vec<f32> = (0..n * ho * wo * 2)
            .map(|_| lcg(&mut s) * 3.0 - 1.5)
            .collect();
        let dev = Device::Cpu;
        let ti = Tensor::from_vec(img.clone(), (n, c, h, w), &dev).unwrap();
        let tg = Tensor::from_vec(grid.clone(), (n, ho, wo, 2), &dev).unwrap();
        for padding in [Padding::Zeros, Padding::Border] {
            let out = grid_sample(&ti, &tg, padding).unwrap();
            assert_eq!(out.dims(), &[n, c, ho, wo]);
            let out = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for b in 0..n {
                for ch in 0..c {
                    let plane = &img[(b * c + ch) * h * w..(b * c + ch + 1) * h * w];
                    for p in 0..ho * wo {
                        let g = (b * ho * wo + p) * 2;
                        let want =
                            reference(plane, h, w, grid[g] as f64, grid[g + 1] as f64, padding);
                        let got = out[(b * c + ch) * ho * wo + p] as f64;
                        assert!((want - got).abs() < 1e-5, "{padding:?} {want} vs {got}");
                    }
                }
            }
        }
    }

    #[test]
    fn pixel_centres_are_exact() {
        // With align_corners=False, x = (2i + 1) / W - 1 lands on pixel i's centre.
        let (h, w) = (3, 4);
        let img: Vec<f32> = (0..h * w).map(|v| v as f32).collect();
        let mut grid = Vec::new();
        for i in 0..h {
            for j in 0..w {
                grid.push((2 * j + 1) as f32 / w as f32 - 1.0);
                grid.push((2 * i + 1) as f32 / h as f32 - 1.0);
            }
        }
        let dev = Device::Cpu;
        let ti = Tensor::from_vec(img.clone(), (1, 1, h, w), &dev).unwrap();
        let tg = Tensor::from_vec(grid, (1, h, w, 2), &dev).unwrap();
        let out = grid_sample(&ti, &tg, Padding::Zeros).unwrap();
        let out = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in out.iter().zip(img.iter()) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (n, c, h, w, ho, wo) = (1, 2, 4, 5, 3, 3);
        let mut s = 11u64;
        let img: Vec<f32> = (0..n * c * h * w).map(|_| lcg(&mut s)).collect();
        // Keep away from integer pixel positions, where bilinear is not differentiable.
        let grid: Vec<f32> = (0..n * ho * wo * 2)
            .map(|_| lcg(&mut s) * 2.4 - 1.2)
            .collect();
        let wts: Vec<f32> = (0..n * c * ho * wo).map(|_| lcg(&mut s) - 0.5).collect();
        let dev = Device::Cpu;
        let wt = Tensor::from_vec(wts.clone(), (n, c, ho, wo), &dev).unwrap();
        for padding in [Padding::Zeros, Padding::Border] {
            let vi = Var::from_vec(img.clone(), (n, c, h, w), &dev).unwrap();
            let vg = Var::from_vec(grid.clone(), (n, ho, wo, 2), &dev).unwrap();
            let loss = grid_sample(vi.as_tensor(), vg.as_tensor(), padding)
                .unwrap()
                .mul(&wt)
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            let gg = grads
                .get(vg.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let gi = grads
                .get(vi.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let f = |img: &[f32], grid: &[f32]| -> f64 {
                let o = grid_sample_slices(img, [n, c, h, w], grid, [ho, wo], padding);
                o.iter()
                    .zip(wts.iter())
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum()
            };
            let eps = 1e-3f32;
            for k in 0..grid.len() {
                let mut gp = grid.clone();
                gp[k] += eps;
                let mut gm = grid.clone();
                gm[k] -= eps;
                let fd = (f(&img, &gp) - f(&img, &gm)) / (2.0 * eps as f64);
                assert!(
                    (fd - gg[k] as f64).abs() < 2e-2,
                    "{padding:?} grid {k}: {fd} vs {}",
                    gg[k]
                );
            }
            for k in 0..img.len() {
                let mut ip = img.clone();
                ip[k] += eps;
                let mut im = img.clone();
                im[k] -= eps;
                let fd = (f(&ip, &grid) - f(&im, &grid)) / (2.0 * eps as f64);
                assert!(
                    (fd - gi[k] as f64).abs() < 1e-2,
                    "{padding:?} input {k}: {fd} vs {}",
                    gi[k]
                );
            }
        }
    }
}
