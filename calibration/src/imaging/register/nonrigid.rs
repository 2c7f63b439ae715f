//! Piecewise-rigid shifts: one phase correlation per overlapping block (suite2p
//! `registration/nonrigid.py`).
//!
//! Layout ([`BlockGrid`]): per side, a block of `block_size` px (cut to the frame if larger),
//! `n = ceil(1.5 * side / block)` blocks starting at `floor(i * (side - block) / (n - 1))`;
//! 6 x 6 blocks of 128 px starting at 0, 76, 153, 230, 307, 384 for 512 px. Blocks are numbered
//! row-major, `b = iy * nx + ix`.
//!
//! Per frame, after the rigid step, each block is cut from the frame displaced by the
//! rounded rigid shift (clamped at the frame edge; suite2p rolls), tapered with a sigmoid of
//! slope `2 * smooth_sigma` times the frame taper, and phase-correlated with the same block of
//! the reference, searching `lcorr = min(round(max_block_shift), block / 2 - 3)` px. A block
//! whose correlation peak SNR is under `snr_thresh` uses instead its map smoothed over
//! neighbouring blocks (weights `exp(-d^2)`, `d` in block steps, rows summing to 1), and if
//! still under, smoothed twice. The chosen map's peak is refined by kriging. Block shift =
//! rounded rigid shift + block estimate.

use rustfft::num_complex::Complex32;

use super::error::RegistrationError;
use super::fft::{Fft2, Planners};
use super::params::RegistrationParams;
use super::phasecorr::{self, LPAD, Window};
use super::rigid::shift_from_window;
use super::subpixel::Kriging;
use crate::simd::SimdPath;

/// Where the blocks are.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockGrid {
    /// Block height, px.
    pub block_h: usize,
    /// Block width, px.
    pub block_w: usize,
    /// First row of each block row, px (`ny` values).
    pub y_starts: Vec<usize>,
    /// First column of each block column, px (`nx` values).
    pub x_starts: Vec<usize>,
}

/// suite2p `calculate_nblocks`: `(block, n)` along one side of `len` px.
fn blocks_along(len: usize, block: usize) -> (usize, usize) {
    if block >= len {
        (len, 1)
    } else {
        (block, (3 * len).div_ceil(2 * block))
    }
}

fn starts(len: usize, block: usize, n: usize) -> Vec<usize> {
    if n == 1 {
        vec![0]
    } else {
        (0..n).map(|i| i * (len - block) / (n - 1)).collect()
    }
}

impl BlockGrid {
    /// The grid for an `h x w` frame and `block_size_px = [bh, bw]`.
    pub fn new(h: usize, w: usize, block_size_px: [usize; 2]) -> Self {
        let (block_h, ny) = blocks_along(h, block_size_px[0]);
        let (block_w, nx) = blocks_along(w, block_size_px[1]);
        Self {
            block_h,
            block_w,
            y_starts: starts(h, block_h, ny),
            x_starts: starts(w, block_w, nx),
        }
    }

    /// Block rows.
    pub fn ny(&self) -> usize {
        self.y_starts.len()
    }

    /// Block columns.
    pub fn nx(&self) -> usize {
        self.x_starts.len()
    }

    /// Number of blocks, `ny * nx`.
    pub fn len(&self) -> usize {
        self.ny() * self.nx()
    }

    /// Always false: a grid has at least one block.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Centre row of block row `iy`, px (`start + (block_h - 1) / 2`).
    pub fn centre_y(&self, iy: usize) -> f32 {
        self.y_starts[iy] as f32 + (self.block_h as f32 - 1.0) / 2.0
    }

    /// Centre column of block column `ix`, px.
    pub fn centre_x(&self, ix: usize) -> f32 {
        self.x_starts[ix] as f32 + (self.block_w as f32 - 1.0) / 2.0
    }

    /// Row-normalised neighbour weights `[nb][nb]`: `exp(-d^2)` with `d` the distance between
    /// blocks in grid steps (suite2p `kernelD2`).
    fn smoothing_matrix(&self) -> Vec<f32> {
        let (ny, nx) = (self.ny(), self.nx());
        let nb = ny * nx;
        let mut m = vec![0.0f64; nb * nb];
        for a in 0..nb {
            let (ya, xa) = ((a / nx) as f64, (a % nx) as f64);
            for b in 0..nb {
                let (yb, xb) = ((b / nx) as f64, (b % nx) as f64);
                m[a * nb + b] = (-((ya - yb).powi(2) + (xa - xb).powi(2))).exp();
            }
            let s: f64 = m[a * nb..(a + 1) * nb].iter().sum();
            m[a * nb..(a + 1) * nb].iter_mut().for_each(|v| *v /= s);
        }
        m.iter().map(|&v| v as f32).collect()
    }
}

/// Per-block results of the last frame; slices of length `nb`, row-major block order.
#[derive(Debug, Clone, Copy)]
pub struct BlockShifts<'a> {
    /// Total row shift of each block (rigid + block), px; same sign as [`RigidShift`](super::RigidShift).
    pub dy: &'a [f32],
    /// Total column shift of each block, px.
    pub dx: &'a [f32],
    /// Peak correlation of the map used.
    pub corr: &'a [f32],
    /// SNR of the map used.
    pub snr: &'a [f32],
    /// 0: the block's own map; 1 or 2: smoothed with neighbours once or twice (low SNR).
    pub smoothing: &'a [u8],
}

/// One block cut from the frame displaced by the rounded rigid shift, clamped at the frame's
/// edge, clipped and tapered to the reference block's mean.
struct Cut<'a> {
    frame: &'a [f32],
    h: usize,
    w: usize,
    bh: usize,
    bw: usize,
    /// Top-left source pixel (may lie outside the frame).
    at: (isize, isize),
    lo: f32,
    hi: f32,
    mask: &'a [f32],
    mean: f32,
}

impl Cut<'_> {
    /// Writes the `[bh][bw]` block into `dst`.
    #[inline(always)]
    fn write_to(&self, dst: &mut [f32]) {
        let (h, w) = (self.h as isize, self.w as isize);
        let (bh, bw) = (self.bh, self.bw);
        let (y0, x0) = self.at;
        let (lo, hi, mean) = (self.lo, self.hi, self.mean);
        let inside_x = x0 >= 0 && x0 + bw as isize <= w;
        for y in 0..bh {
            let sy = (y0 + y as isize).clamp(0, h - 1) as usize;
            let src_row = &self.frame[sy * self.w..(sy + 1) * self.w];
            let d = &mut dst[y * bw..(y + 1) * bw];
            let mrow = &self.mask[y * bw..(y + 1) * bw];
            if inside_x {
                let src = &src_row[x0 as usize..x0 as usize + bw];
                for ((d, &v), &m) in d.iter_mut().zip(src).zip(mrow) {
                    *d = v.clamp(lo, hi) * m + mean * (1.0 - m);
                }
            } else {
                for (x, d) in d.iter_mut().enumerate() {
                    let sx = (x0 + x as isize).clamp(0, w - 1) as usize;
                    let m = mrow[x];
                    *d = src_row[sx].clamp(lo, hi) * m + mean * (1.0 - m);
                }
            }
        }
    }
}

/// Everything the block step needs that depends only on the reference, plus its scratch.
pub(crate) struct BlockCorrelator {
    pub(crate) grid: BlockGrid,
    h: usize,
    w: usize,
    window: Window,
    snr_thresh: f32,
    /// `[nb][bh * bw]`: each block's taper (block sigmoid times the frame's).
    mask_mul: Vec<f32>,
    /// `[nb]`: each reference block's mean, what the taper fades to (`mean * (1 - mask)`,
    /// computed per pixel rather than stored: the same bits, a third less memory streamed).
    block_mean: Vec<f32>,
    /// `[nb][spectrum_len]`.
    ref_specs: Vec<Complex32>,
    nrsm: Vec<f32>,
    nrsm2: Vec<f32>,
    fft: Fft2,
    block: Vec<f32>,
    spec: Vec<Complex32>,
    /// `[nb][n * n]`: each block's own correlation window.
    maps: Vec<f32>,
    smoothed: Vec<f32>,
    kriging: Kriging,
    pub(crate) dy: Vec<f32>,
    pub(crate) dx: Vec<f32>,
    corr: Vec<f32>,
    snr: Vec<f32>,
    smoothing: Vec<u8>,
}

impl BlockCorrelator {
    /// `reference`: `[h][w]`, finite, already clipped when frames will be.
    pub(crate) fn new(
        reference: &[f32],
        h: usize,
        w: usize,
        params: &RegistrationParams,
        planners: &mut Planners,
    ) -> Result<Self, RegistrationError> {
        let grid = BlockGrid::new(h, w, params.block_size_px);
        let (bh, bw, nb) = (grid.block_h, grid.block_w, grid.len());
        let mut fft = Fft2::new(bh, bw, planners);
        let frame_taper = phasecorr::spatial_taper(params.spatial_taper_px as f64, h, w);
        let block_taper = phasecorr::spatial_taper(2.0 * params.smooth_sigma_px as f64, bh, bw);
        let mut mask_mul = Vec::with_capacity(nb * bh * bw);
        let mut block_mean = Vec::with_capacity(nb);
        let mut ref_specs = Vec::with_capacity(nb * fft.spectrum_len());
        let mut block = vec![0.0f32; bh * bw];
        for &ys in &grid.y_starts {
            for &xs in &grid.x_starts {
                for y in 0..bh {
                    block[y * bw..(y + 1) * bw]
                        .copy_from_slice(&reference[(ys + y) * w + xs..(ys + y) * w + xs + bw]);
                }
                let mean = (block.iter().map(|&v| v as f64).sum::<f64>() / (bh * bw) as f64) as f32;
                for y in 0..bh {
                    for x in 0..bw {
                        mask_mul.push(block_taper[y * bw + x] * frame_taper[(ys + y) * w + xs + x]);
                    }
                }
                block_mean.push(mean);
                ref_specs.extend(phasecorr::reference_spectrum(
                    &block,
                    bh,
                    bw,
                    params.smooth_sigma_px as f64,
                    &mut fft,
                )?);
            }
        }
        let lcorr = (params.max_block_shift_px.round() as usize)
            .min((bh.min(bw) / 2).saturating_sub(LPAD))
            .max(1);
        let window = Window { lcorr };
        let n = window.side();
        let nrsm = grid.smoothing_matrix();
        let mut nrsm2 = vec![0.0f32; nb * nb];
        for a in 0..nb {
            for c in 0..nb {
                nrsm2[a * nb + c] = (0..nb).map(|b| nrsm[a * nb + b] * nrsm[b * nb + c]).sum();
            }
        }
        Ok(Self {
            h,
            w,
            window,
            snr_thresh: params.snr_thresh,
            mask_mul,
            block_mean,
            ref_specs,
            nrsm,
            nrsm2,
            spec: vec![Complex32::default(); fft.spectrum_len()],
            fft,
            block,
            maps: vec![0.0; nb * n * n],
            smoothed: vec![0.0; n * n],
            kriging: Kriging::new(params.subpixel),
            dy: vec![0.0; nb],
            dx: vec![0.0; nb],
            corr: vec![0.0; nb],
            snr: vec![0.0; nb],
            smoothing: vec![0; nb],
            grid,
        })
    }

    /// Estimates every block's shift in `frame` (`[h][w]`, finite), the frame first displaced
    /// by the integer rigid shift `(ry, rx)`. Returns how many blocks fell back to smoothed
    /// maps.
    pub(crate) fn estimate(
        &mut self,
        frame: &[f32],
        clip: Option<(f32, f32)>,
        ry: isize,
        rx: isize,
        simd: SimdPath,
    ) -> Result<usize, RegistrationError> {
        let (bh, bw) = (self.grid.block_h, self.grid.block_w);
        let nxb = self.grid.nx();
        let n2 = self.window.side() * self.window.side();
        let spec_len = self.spec.len();
        let (lo, hi) = clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        for b in 0..self.grid.len() {
            let at = (
                self.grid.y_starts[b / nxb] as isize + ry,
                self.grid.x_starts[b % nxb] as isize + rx,
            );
            let cut = Cut {
                frame,
                h: self.h,
                w: self.w,
                bh,
                bw,
                at,
                lo,
                hi,
                mask: &self.mask_mul[b * bh * bw..(b + 1) * bh * bw],
                mean: self.block_mean[b],
            };
            let block = &mut self.block;
            simd.run(
                #[inline(always)]
                || cut.write_to(block),
            );
            self.fft.forward(&mut self.block, &mut self.spec)?;
            let (spec, reference) = (
                &mut self.spec,
                &self.ref_specs[b * spec_len..(b + 1) * spec_len],
            );
            simd.run(
                #[inline(always)]
                || phasecorr::whiten_and_multiply(spec, reference),
            );
            self.fft.inverse_window(
                &mut self.spec,
                self.window.half(),
                &mut self.maps[b * n2..(b + 1) * n2],
            )?;
        }
        let nb = self.grid.len();
        let mut n_smoothed = 0;
        for b in 0..nb {
            let own = &self.maps[b * n2..(b + 1) * n2];
            let mut est = shift_from_window(self.window, own, &mut self.kriging);
            let mut level = 0u8;
            for (lvl, weights) in [(1u8, &self.nrsm), (2u8, &self.nrsm2)] {
                if est.snr >= self.snr_thresh {
                    break;
                }
                self.smoothed.fill(0.0);
                for m in 0..nb {
                    let wgt = weights[b * nb + m];
                    for (s, &v) in self
                        .smoothed
                        .iter_mut()
                        .zip(&self.maps[m * n2..(m + 1) * n2])
                    {
                        *s += wgt * v;
                    }
                }
                est = shift_from_window(self.window, &self.smoothed, &mut self.kriging);
                level = lvl;
            }
            n_smoothed += usize::from(level > 0);
            self.dy[b] = ry as f32 + est.dy;
            self.dx[b] = rx as f32 + est.dx;
            self.corr[b] = est.corr;
            self.snr[b] = est.snr;
            self.smoothing[b] = level;
        }
        Ok(n_smoothed)
    }

    pub(crate) fn shifts(&self) -> BlockShifts<'_> {
        BlockShifts {
            dy: &self.dy,
            dx: &self.dx,
            corr: &self.corr,
            snr: &self.snr,
            smoothing: &self.smoothing,
        }
    }

    /// Largest block shift searched relative to the rigid shift, px.
    pub(crate) fn lcorr(&self) -> usize {
        self.window.lcorr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_matches_suite2p_at_512_and_small_frames() {
        let g = BlockGrid::new(512, 512, [128, 128]);
        assert_eq!(g.y_starts, vec![0, 76, 153, 230, 307, 384]);
        assert_eq!(g.len(), 36);
        let g = BlockGrid::new(128, 96, [128, 128]);
        assert_eq!((g.block_h, g.block_w, g.len()), (128, 96, 1));
        let g = BlockGrid::new(256, 512, [128, 128]);
        assert_eq!((g.ny(), g.nx()), (3, 6));
        assert_eq!(g.y_starts, vec![0, 64, 128]);
    }

    #[test]
    fn smoothing_rows_sum_to_one() {
        let g = BlockGrid::new(512, 384, [128, 128]);
        let m = g.smoothing_matrix();
        let nb = g.len();
        for a in 0..nb {
            let s: f32 = m[a * nb..(a + 1) * nb].iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
    }
}
