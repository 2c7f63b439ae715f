//! 2-D real FFT with a transposed half spectrum and a windowed inverse.
//!
//! Phase correlation needs the forward transform of a whole image but only a small window of the
//! inverse (the correlation near zero shift). This plan does exactly that, with every buffer
//! allocated once in [`Fft2::new`]:
//!
//! - forward: the rows go through a complex FFT two at a time (`z = a + i b`), and each pair's
//!   `wc = w/2 + 1` bins of both rows are separated while being transposed, in batches, into a
//!   spectrum laid out **column-major**, `spec[kx * h + ky]`, so each column FFT (length `h`)
//!   runs on contiguous memory. Keeping only the half spectrum halves the number of column
//!   FFTs (`w/2 + 1` instead of `w`) in both directions.
//! - inverse (windowed): all `wc` columns are inverse-transformed in place, then only the
//!   `2 * half + 1` rows with `|y| <= half` (wrapping) go through the complex-to-real row FFT,
//!   and of each only the `2 * half + 1` columns with `|x| <= half` are kept.
//!
//! Neither direction scales: forward then inverse multiplies by `h * w`.

use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::error::RegistrationError;

/// Rows transformed before each transpose into the column-major spectrum (one cache line of
/// `Complex32` per column and batch).
const ROW_BATCH: usize = 8;

/// FFT planners shared by every [`Fft2`] built for one registrar (plans of equal length are
/// reused).
pub(crate) struct Planners {
    real: RealFftPlanner<f32>,
    complex: FftPlanner<f32>,
}

impl Planners {
    pub(crate) fn new() -> Self {
        Self {
            real: RealFftPlanner::new(),
            complex: FftPlanner::new(),
        }
    }
}

/// A 2-D real FFT plan for `h x w` images with its scratch buffers.
pub(crate) struct Fft2 {
    h: usize,
    w: usize,
    wc: usize,
    /// Complex FFT of the rows, two real rows at a time.
    row_fwd: Arc<dyn Fft<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
    /// `[ROW_BATCH][wc]`: row spectra waiting to be transposed; also the gathered rows of the
    /// inverse.
    rows: Vec<Complex32>,
    /// `[ROW_BATCH / 2][w]`: pairs of rows as complex rows, transformed in place.
    pairs: Vec<Complex32>,
    /// `[w]`: output row of the inverse.
    row_out: Vec<f32>,
    scratch: Vec<Complex32>,
}

fn fft_error(err: realfft::FftError) -> RegistrationError {
    RegistrationError::Internal(format!("FFT failed: {err}"))
}

impl Fft2 {
    pub(crate) fn new(h: usize, w: usize, planners: &mut Planners) -> Self {
        let row_fwd = planners.complex.plan_fft_forward(w);
        let c2r = planners.real.plan_fft_inverse(w);
        let col_fwd = planners.complex.plan_fft_forward(h);
        let col_inv = planners.complex.plan_fft_inverse(h);
        let scratch_len = row_fwd
            .get_inplace_scratch_len()
            .max(c2r.get_scratch_len())
            .max(col_fwd.get_inplace_scratch_len())
            .max(col_inv.get_inplace_scratch_len());
        let wc = w / 2 + 1;
        Self {
            h,
            w,
            wc,
            row_fwd,
            c2r,
            col_fwd,
            col_inv,
            rows: vec![Complex32::default(); ROW_BATCH * wc],
            pairs: vec![Complex32::default(); ROW_BATCH.div_ceil(2) * w],
            row_out: vec![0.0; w],
            scratch: vec![Complex32::default(); scratch_len],
        }
    }

    /// Number of complex values in a spectrum: `(w/2 + 1) * h`.
    pub(crate) fn spectrum_len(&self) -> usize {
        self.wc * self.h
    }

    /// Forward transform of `image` (`[h][w]`, row-major; not modified) into `spec`
    /// (`[w/2 + 1][h]`, column-major).
    ///
    /// Rows go through the complex FFT two at a time, `z = a + i b` (a batch of
    /// `ROW_BATCH / 2` such pairs per call, which rustfft's vector code runs back to back), and
    /// are separated while being transposed: `A[k] = (Z[k] + conj Z[w - k]) / 2`,
    /// `B[k] = (Z[k] - conj Z[w - k]) / 2i`. Cheaper than a real FFT per row, whose pre- and
    /// post-processing is scalar code.
    pub(crate) fn forward(
        &mut self,
        image: &mut [f32],
        spec: &mut [Complex32],
    ) -> Result<(), RegistrationError> {
        let (h, w, wc) = (self.h, self.w, self.wc);
        debug_assert_eq!(image.len(), h * w);
        debug_assert_eq!(spec.len(), wc * h);
        let mut y0 = 0;
        while y0 < h {
            let nb = ROW_BATCH.min(h - y0);
            let np = nb.div_ceil(2);
            let pairs = &mut self.pairs[..np * w];
            for (j, dst) in pairs.chunks_exact_mut(w).enumerate() {
                let a = &image[(y0 + 2 * j) * w..(y0 + 2 * j + 1) * w];
                if 2 * j + 1 < nb {
                    let b = &image[(y0 + 2 * j + 1) * w..(y0 + 2 * j + 2) * w];
                    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
                        *d = Complex32::new(a, b);
                    }
                } else {
                    for (d, &a) in dst.iter_mut().zip(a) {
                        *d = Complex32::new(a, 0.0);
                    }
                }
            }
            self.row_fwd.process_with_scratch(pairs, &mut self.scratch);
            for kx in 0..wc {
                let km = (w - kx) % w;
                let col = &mut spec[kx * h + y0..kx * h + y0 + nb];
                for j in 0..np {
                    let z = pairs[j * w + kx];
                    let zc = pairs[j * w + km].conj();
                    col[2 * j] = (z + zc) * 0.5;
                    if 2 * j + 1 < nb {
                        let d = z - zc;
                        col[2 * j + 1] = Complex32::new(d.im * 0.5, -d.re * 0.5);
                    }
                }
            }
            y0 += nb;
        }
        self.col_fwd.process_with_scratch(spec, &mut self.scratch);
        Ok(())
    }

    /// Inverse transform of `spec` (column-major, **clobbered**) restricted to shifts
    /// `|y|, |x| <= half`: `out[(i * n) + j]` = correlation at `(i - half, j - half)` (wrapping),
    /// `n = 2 * half + 1`. Unscaled.
    pub(crate) fn inverse_window(
        &mut self,
        spec: &mut [Complex32],
        half: usize,
        out: &mut [f32],
    ) -> Result<(), RegistrationError> {
        let (h, w, wc) = (self.h, self.w, self.wc);
        let n = 2 * half + 1;
        debug_assert_eq!(spec.len(), wc * h);
        debug_assert_eq!(out.len(), n * n);
        self.col_inv.process_with_scratch(spec, &mut self.scratch);
        // Rows are gathered from the column-major spectrum in batches: the `ROW_BATCH` values a
        // column gives a batch are adjacent (one cache line), where one row at a time reads a
        // line per column (stride `h`) and uses one value of it.
        let mut i0 = 0;
        while i0 < n {
            let nb = ROW_BATCH.min(n - i0);
            for kx in 0..wc {
                let col = &spec[kx * h..(kx + 1) * h];
                for b in 0..nb {
                    self.rows[b * wc + kx] = col[wrap((i0 + b) as isize - half as isize, h)];
                }
            }
            for b in 0..nb {
                let row = &mut self.rows[b * wc..(b + 1) * wc];
                // A real image's spectrum has real DC and Nyquist bins; rounding leaves a trace.
                row[0].im = 0.0;
                if w % 2 == 0 {
                    row[wc - 1].im = 0.0;
                }
                self.c2r
                    .process_with_scratch(row, &mut self.row_out, &mut self.scratch)
                    .map_err(fft_error)?;
                let dst = &mut out[(i0 + b) * n..(i0 + b + 1) * n];
                for (j, v) in dst.iter_mut().enumerate() {
                    *v = self.row_out[wrap(j as isize - half as isize, w)];
                }
            }
            i0 += nb;
        }
        Ok(())
    }
}

/// `i mod n` for a possibly negative `i`.
pub(crate) fn wrap(i: isize, n: usize) -> usize {
    i.rem_euclid(n as isize) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 2-D DFT at one frequency, for checking the layout.
    fn dft_at(img: &[f32], h: usize, w: usize, ky: usize, kx: usize) -> Complex32 {
        let mut acc = (0.0f64, 0.0f64);
        for y in 0..h {
            for x in 0..w {
                let ph = -2.0
                    * std::f64::consts::PI
                    * ((ky * y) as f64 / h as f64 + (kx * x) as f64 / w as f64);
                acc.0 += img[y * w + x] as f64 * ph.cos();
                acc.1 += img[y * w + x] as f64 * ph.sin();
            }
        }
        Complex32::new(acc.0 as f32, acc.1 as f32)
    }

    #[test]
    fn forward_matches_direct_dft_and_window_inverts() {
        for &(h, w) in &[(12usize, 10usize), (9, 15), (16, 16)] {
            let img: Vec<f32> = (0..h * w)
                .map(|i| ((i * 37 % 101) as f32 * 0.13).sin() + 0.2)
                .collect();
            let mut planners = Planners::new();
            let mut fft = Fft2::new(h, w, &mut planners);
            let mut spec = vec![Complex32::default(); fft.spectrum_len()];
            let mut work = img.clone();
            fft.forward(&mut work, &mut spec).expect("forward");
            for ky in 0..h {
                for kx in 0..w / 2 + 1 {
                    let d = dft_at(&img, h, w, ky, kx);
                    let s = spec[kx * h + ky];
                    assert!(
                        (d - s).norm() < 1e-3 * (1.0 + d.norm()),
                        "{h}x{w} ({ky},{kx})"
                    );
                }
            }
            let half = 3;
            let n = 2 * half + 1;
            let mut out = vec![0.0; n * n];
            fft.inverse_window(&mut spec, half, &mut out)
                .expect("inverse");
            for i in 0..n {
                for j in 0..n {
                    let y = wrap(i as isize - half as isize, h);
                    let x = wrap(j as isize - half as isize, w);
                    let want = img[y * w + x] * (h * w) as f32;
                    assert!((out[i * n + j] - want).abs() < 1e-3 * (h * w) as f32);
                }
            }
        }
    }
}
