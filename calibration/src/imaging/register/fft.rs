//! 2-D real FFT with a transposed half spectrum and a windowed inverse.
//!
//! Phase correlation needs the forward transform of a whole image but only a small window of the
//! inverse (the correlation near zero shift). This plan does exactly that, with every buffer
//! allocated once in [`Fft2::new`]:
//!
//! - forward: each row `[w]` goes through a real-to-complex FFT (`realfft`), giving `wc = w/2 + 1`
//!   bins; the rows are transposed, in batches, into a spectrum laid out **column-major**,
//!   `spec[kx * h + ky]`, so each column FFT (length `h`) runs on contiguous memory.
//!   `realfft` rather than a complex FFT of the image: it halves the row work and, above all,
//!   halves the number of column FFTs (`w/2 + 1` instead of `w`) in both directions.
//! - inverse (windowed): all `wc` columns are inverse-transformed in place, then only the
//!   `2 * half + 1` rows with `|y| <= half` (wrapping) go through the complex-to-real row FFT,
//!   and of each only the `2 * half + 1` columns with `|x| <= half` are kept.
//!
//! Neither direction scales: forward then inverse multiplies by `h * w`.

use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
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
    r2c: Arc<dyn RealToComplex<f32>>,
    c2r: Arc<dyn ComplexToReal<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
    /// `[ROW_BATCH][wc]`: row spectra waiting to be transposed; also the gathered row of the
    /// inverse.
    rows: Vec<Complex32>,
    /// `[w]`: output row of the inverse.
    row_out: Vec<f32>,
    scratch: Vec<Complex32>,
}

fn fft_error(err: realfft::FftError) -> RegistrationError {
    RegistrationError::Internal(format!("FFT failed: {err}"))
}

impl Fft2 {
    pub(crate) fn new(h: usize, w: usize, planners: &mut Planners) -> Self {
        let r2c = planners.real.plan_fft_forward(w);
        let c2r = planners.real.plan_fft_inverse(w);
        let col_fwd = planners.complex.plan_fft_forward(h);
        let col_inv = planners.complex.plan_fft_inverse(h);
        let scratch_len = r2c
            .get_scratch_len()
            .max(c2r.get_scratch_len())
            .max(col_fwd.get_inplace_scratch_len())
            .max(col_inv.get_inplace_scratch_len());
        let wc = w / 2 + 1;
        Self {
            h,
            w,
            wc,
            r2c,
            c2r,
            col_fwd,
            col_inv,
            rows: vec![Complex32::default(); ROW_BATCH * wc],
            row_out: vec![0.0; w],
            scratch: vec![Complex32::default(); scratch_len],
        }
    }

    /// Number of complex values in a spectrum: `(w/2 + 1) * h`.
    pub(crate) fn spectrum_len(&self) -> usize {
        self.wc * self.h
    }

    /// Forward transform of `image` (`[h][w]`, row-major; **clobbered**, used as FFT scratch)
    /// into `spec` (`[w/2 + 1][h]`, column-major).
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
            for b in 0..nb {
                let row = &mut image[(y0 + b) * w..(y0 + b + 1) * w];
                let out = &mut self.rows[b * wc..(b + 1) * wc];
                self.r2c
                    .process_with_scratch(row, out, &mut self.scratch)
                    .map_err(fft_error)?;
            }
            for kx in 0..wc {
                let col = &mut spec[kx * h + y0..kx * h + y0 + nb];
                for (b, v) in col.iter_mut().enumerate() {
                    *v = self.rows[b * wc + kx];
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
        for i in 0..n {
            let y = wrap(i as isize - half as isize, h);
            let row = &mut self.rows[..wc];
            for (kx, v) in row.iter_mut().enumerate() {
                *v = spec[kx * h + y];
            }
            // A real image's spectrum has real DC and Nyquist bins; rounding leaves a trace.
            row[0].im = 0.0;
            if w % 2 == 0 {
                row[wc - 1].im = 0.0;
            }
            self.c2r
                .process_with_scratch(row, &mut self.row_out, &mut self.scratch)
                .map_err(fft_error)?;
            let dst = &mut out[i * n..(i + 1) * n];
            for (j, v) in dst.iter_mut().enumerate() {
                *v = self.row_out[wrap(j as isize - half as isize, w)];
            }
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
