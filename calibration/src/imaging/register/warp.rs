//! Resampling a frame by a shift: constant (rigid) or a per-pixel field interpolated from block
//! shifts (suite2p `nonrigid.transform_data`).
//!
//! Both sample `out(y, x) = frame(y + dy(y, x), x + dx(y, x))` bilinearly, with coordinates
//! clamped to the frame (border replication, like `grid_sample(padding_mode="border",
//! align_corners=True)`). The per-pixel field is the bilinear interpolation of the block shifts
//! placed at the block centres, held constant beyond the outermost centres. Interpolation
//! tables are built once; per frame the field is formed row by row (two lerps per pixel per
//! axis) without a full-frame field buffer.

use super::nonrigid::BlockGrid;

/// Bilinear sample of `src` (`[h][w]`, `h, w >= 2`) at `(py, px)`, clamped to the frame.
#[inline(always)]
fn sample(src: &[f32], h: usize, w: usize, py: f32, px: f32) -> f32 {
    let py = py.clamp(0.0, (h - 1) as f32);
    let px = px.clamp(0.0, (w - 1) as f32);
    let y0 = (py as usize).min(h - 2);
    let x0 = (px as usize).min(w - 2);
    let (fy, fx) = (py - y0 as f32, px - x0 as f32);
    let r0 = &src[y0 * w + x0..y0 * w + x0 + 2];
    let r1 = &src[(y0 + 1) * w + x0..(y0 + 1) * w + x0 + 2];
    let top = r0[0] + fx * (r0[1] - r0[0]);
    let bot = r1[0] + fx * (r1[1] - r1[0]);
    top + fy * (bot - top)
}

/// Rigid shift by bilinear interpolation: `out(y, x) = src(y + dy, x + dx)`, clamped.
/// `src`, `out`: `[h][w]`, `h, w >= 2`.
#[inline(always)]
pub(crate) fn warp_rigid(src: &[f32], h: usize, w: usize, dy: f32, dx: f32, out: &mut [f32]) {
    // Columns whose two source samples are both inside need no clamping.
    let ix = dx.floor();
    let fx = dx - ix;
    let ix = ix as isize;
    let x_lo = (-ix).clamp(0, w as isize) as usize;
    let x_hi = ((w as isize - 1 - ix).clamp(0, w as isize) as usize).max(x_lo);
    for y in 0..h {
        let py = (y as f32 + dy).clamp(0.0, (h - 1) as f32);
        let y0 = (py as usize).min(h - 2);
        let fy = py - y0 as f32;
        let r0 = &src[y0 * w..(y0 + 1) * w];
        let r1 = &src[(y0 + 1) * w..(y0 + 2) * w];
        let dst = &mut out[y * w..(y + 1) * w];
        if x_hi > x_lo {
            let s = (x_lo as isize + ix) as usize;
            let n = x_hi - x_lo;
            let (a0, a1) = (&r0[s..s + n + 1], &r1[s..s + n + 1]);
            for (k, d) in dst[x_lo..x_hi].iter_mut().enumerate() {
                let top = a0[k] + fx * (a0[k + 1] - a0[k]);
                let bot = a1[k] + fx * (a1[k + 1] - a1[k]);
                *d = top + fy * (bot - top);
            }
        }
        for x in (0..x_lo).chain(x_hi..w) {
            dst[x] = sample(src, h, w, y as f32 + dy, x as f32 + dx);
        }
    }
}

/// Interpolation weights of one axis: pixel `p` lies between centres `i0` and `i1` at
/// fraction `a`.
fn axis_table(n_pixels: usize, centres: &[f32]) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let n = centres.len();
    let mut i0 = Vec::with_capacity(n_pixels);
    let mut i1 = Vec::with_capacity(n_pixels);
    let mut a = Vec::with_capacity(n_pixels);
    for p in 0..n_pixels {
        let p = p as f32;
        let (lo, hi, f) = if n == 1 || p <= centres[0] {
            (0, 0, 0.0)
        } else if p >= centres[n - 1] {
            (n - 1, n - 1, 0.0)
        } else {
            let k = centres
                .iter()
                .rposition(|&c| c <= p)
                .unwrap_or(0)
                .min(n - 2);
            (k, k + 1, (p - centres[k]) / (centres[k + 1] - centres[k]))
        };
        i0.push(lo as u32);
        i1.push(hi as u32);
        a.push(f);
    }
    (i0, i1, a)
}

/// Warp by a shift field interpolated from block shifts; tables and scratch made once.
pub(crate) struct FieldWarp {
    h: usize,
    w: usize,
    nx: usize,
    ny: usize,
    row_i0: Vec<u32>,
    row_i1: Vec<u32>,
    row_a: Vec<f32>,
    col_j0: Vec<u32>,
    col_j1: Vec<u32>,
    col_b: Vec<f32>,
    /// `[ny][w]`: block shifts interpolated along x for each block row.
    rows_dy: Vec<f32>,
    rows_dx: Vec<f32>,
    /// `[w]` per output row: top-left source index and fractions of each pixel's sample.
    idx: Vec<u32>,
    frac_y: Vec<f32>,
    frac_x: Vec<f32>,
    /// `[h + 1][w + 1]`: the source with its last row and column repeated, so that a sample at
    /// the far edge (fraction 0) may read one past it without clamping the index.
    padded: Vec<f32>,
}

impl FieldWarp {
    /// `(h + 1) * (w + 1)` below 2^24 (checked by `check_dims` before any registrar is built),
    /// so indices are exact in f32.
    pub(crate) fn new(grid: &BlockGrid, h: usize, w: usize) -> Self {
        let cy: Vec<f32> = (0..grid.ny()).map(|i| grid.centre_y(i)).collect();
        let cx: Vec<f32> = (0..grid.nx()).map(|j| grid.centre_x(j)).collect();
        let (row_i0, row_i1, row_a) = axis_table(h, &cy);
        let (col_j0, col_j1, col_b) = axis_table(w, &cx);
        Self {
            h,
            w,
            nx: grid.nx(),
            ny: grid.ny(),
            row_i0,
            row_i1,
            row_a,
            col_j0,
            col_j1,
            col_b,
            rows_dy: vec![0.0; grid.ny() * w],
            rows_dx: vec![0.0; grid.ny() * w],
            idx: vec![0; w],
            frac_y: vec![0.0; w],
            frac_x: vec![0.0; w],
            padded: vec![0.0; (h + 1) * (w + 1)],
        }
    }

    fn fill_rows(&mut self, dy: &[f32], dx: &[f32]) {
        let (w, nx) = (self.w, self.nx);
        for i in 0..self.ny {
            for x in 0..w {
                let (j0, j1, b) = (
                    self.col_j0[x] as usize,
                    self.col_j1[x] as usize,
                    self.col_b[x],
                );
                let (k0, k1) = (i * nx + j0, i * nx + j1);
                self.rows_dy[i * w + x] = dy[k0] + b * (dy[k1] - dy[k0]);
                self.rows_dx[i * w + x] = dx[k0] + b * (dx[k1] - dx[k0]);
            }
        }
    }

    /// Shift at pixel `(y, x)` for block shifts `dy`, `dx` (`[ny][nx]`), px.
    #[cfg(test)]
    pub(crate) fn field_at(&mut self, dy: &[f32], dx: &[f32], y: usize, x: usize) -> (f32, f32) {
        self.fill_rows(dy, dx);
        let w = self.w;
        let (i0, i1, a) = (
            self.row_i0[y] as usize,
            self.row_i1[y] as usize,
            self.row_a[y],
        );
        let (u0, u1) = (self.rows_dy[i0 * w + x], self.rows_dy[i1 * w + x]);
        let (v0, v1) = (self.rows_dx[i0 * w + x], self.rows_dx[i1 * w + x]);
        (u0 + a * (u1 - u0), v0 + a * (v1 - v0))
    }

    /// `out(y, x) = src(y + field_y, x + field_x)`, bilinear, clamped. `dy`, `dx`: block
    /// shifts `[ny][nx]`, px.
    ///
    /// Each output row is done in two passes so that the arithmetic vectorises: first the
    /// source index and fractions of every pixel (no memory dependence), then the gathers.
    #[inline(always)]
    pub(crate) fn warp(&mut self, src: &[f32], dy: &[f32], dx: &[f32], out: &mut [f32]) {
        self.fill_rows(dy, dx);
        let (h, w) = (self.h, self.w);
        let stride = w + 1;
        for y in 0..=h {
            let row = &src[y.min(h - 1) * w..(y.min(h - 1) + 1) * w];
            let dst = &mut self.padded[y * stride..(y + 1) * stride];
            dst[..w].copy_from_slice(row);
            dst[w] = row[w - 1];
        }
        let (hmax, wmax, stride_f) = ((h - 1) as f32, (w - 1) as f32, stride as f32);
        for y in 0..h {
            let (i0, i1, a) = (
                self.row_i0[y] as usize,
                self.row_i1[y] as usize,
                self.row_a[y],
            );
            let (dy0, dy1) = (
                &self.rows_dy[i0 * w..(i0 + 1) * w],
                &self.rows_dy[i1 * w..(i1 + 1) * w],
            );
            let (dx0, dx1) = (
                &self.rows_dx[i0 * w..(i0 + 1) * w],
                &self.rows_dx[i1 * w..(i1 + 1) * w],
            );
            let yf = y as f32;
            let idx = &mut self.idx[..w];
            let (fy, fx) = (&mut self.frac_y[..w], &mut self.frac_x[..w]);
            for x in 0..w {
                // max/min rather than clamp, and unchecked conversions: this loop vectorises.
                // `f32::max` drops a NaN, so `py`, `px` are finite, in `[0, h - 1]`, `[0, w - 1]`.
                let py = (yf + dy0[x] + a * (dy1[x] - dy0[x])).max(0.0).min(hmax);
                let px = (x as f32 + dx0[x] + a * (dx1[x] - dx0[x]))
                    .max(0.0)
                    .min(wmax);
                // SAFETY: `py`, `px` are finite and within `[0, 2^24)` (see above).
                let (y0, x0) = unsafe {
                    (
                        py.to_int_unchecked::<i32>() as f32,
                        px.to_int_unchecked::<i32>() as f32,
                    )
                };
                fy[x] = py - y0;
                fx[x] = px - x0;
                // SAFETY: `y0 * stride + x0 < (h + 1) * (w + 1)`, exact in f32 below 2^24.
                idx[x] = unsafe { (y0 * stride_f + x0).to_int_unchecked::<i32>() } as u32;
            }
            let dst = &mut out[y * w..(y + 1) * w];
            let padded = &self.padded;
            for (x, d) in dst.iter_mut().enumerate() {
                let i = idx[x] as usize;
                let q = &padded[i..i + stride + 2];
                let top = q[0] + fx[x] * (q[1] - q[0]);
                let bot = q[stride] + fx[x] * (q[stride + 1] - q[stride]);
                *d = top + fy[x] * (bot - top);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| (i / w) as f32 * 3.0 + (i % w) as f32 * 0.5)
            .collect()
    }

    #[test]
    fn rigid_warp_of_a_linear_ramp_is_exact_inside() {
        let (h, w) = (20, 30);
        let src = ramp(h, w);
        let mut out = vec![0.0; h * w];
        warp_rigid(&src, h, w, 1.25, -2.5, &mut out);
        for y in 0..h - 3 {
            for x in 3..w {
                let want = (y as f32 + 1.25) * 3.0 + (x as f32 - 2.5) * 0.5;
                assert!((out[y * w + x] - want).abs() < 1e-4, "({y},{x})");
            }
        }
        // Clamped at the border: row 0 shifted up by 3 rows samples row... clamp to 0.
        warp_rigid(&src, h, w, -3.0, 0.0, &mut out);
        assert_eq!(out[0], src[0]);
        // Agrees with the general sampler everywhere.
        warp_rigid(&src, h, w, 0.4, 7.7, &mut out);
        for y in 0..h {
            for x in 0..w {
                let s = sample(&src, h, w, y as f32 + 0.4, x as f32 + 7.7);
                assert!((out[y * w + x] - s).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn field_is_exact_at_block_centres_and_constant_shift_matches_rigid() {
        // Odd blocks so that block centres fall on pixels: starts 0, 16, 33; centres 16, 32, 49.
        let (h, w) = (66, 66);
        let grid = BlockGrid::new(h, w, [33, 33]);
        assert_eq!(grid.y_starts, vec![0, 16, 33]);
        let nb = grid.len();
        let mut fw = FieldWarp::new(&grid, h, w);
        let dy: Vec<f32> = (0..nb).map(|b| b as f32 * 0.1).collect();
        let dx: Vec<f32> = (0..nb).map(|b| -(b as f32) * 0.2).collect();
        for iy in 0..grid.ny() {
            for ix in 0..grid.nx() {
                let (cy, cx) = (grid.centre_y(iy), grid.centre_x(ix));
                assert_eq!((cy.fract(), cx.fract()), (0.0, 0.0));
                let (fy, fx) = fw.field_at(&dy, &dx, cy as usize, cx as usize);
                assert!((fy - dy[iy * grid.nx() + ix]).abs() < 1e-5);
                assert!((fx - dx[iy * grid.nx() + ix]).abs() < 1e-5);
            }
        }
        // Beyond the outermost centres the field is constant.
        assert_eq!(fw.field_at(&dy, &dx, 0, 0), fw.field_at(&dy, &dx, 16, 16));
        let src = ramp(h, w);
        let (mut a, mut b) = (vec![0.0; h * w], vec![0.0; h * w]);
        fw.warp(&src, &vec![0.75; nb], &vec![-1.5; nb], &mut a);
        warp_rigid(&src, h, w, 0.75, -1.5, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-4);
        }
    }
}
