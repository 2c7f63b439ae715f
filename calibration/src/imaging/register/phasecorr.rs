//! Whitened, smoothed phase correlation: the pieces shared by the rigid and block steps.
//!
//! For a frame `f` and reference `r` (both `h x w`), with `F`, `R` their 2-D FFTs:
//!
//! ```text
//! C = IFFT( F / (eps + |F|)  *  conj(R) / (eps + |R|)  *  G_sigma ) ,   eps = 1e-5
//! ```
//!
//! where `G_sigma` is the FFT of a unit-sum Gaussian of `smooth_sigma` px (suite2p
//! `utils.ref_smooth_fft` and `utils.convolve`). Whitening makes every spatial frequency count
//! equally; the Gaussian discounts the noisiest, highest ones. If `f(y, x) = r(y - dy, x - dx)`
//! the map `C` peaks at `(dy, dx)`; an exact match peaks at the Gaussian's central value
//! (~0.12 at sigma 1.15). The reference factor, including the `1 / (h w)` of the inverse FFT,
//! is computed once per reference ([`reference_spectrum`]).
//!
//! Before the FFT the frame is tapered: `f * mask + mean(r) * (1 - mask)`, with `mask` a
//! product of two sigmoids falling to 1/2 at `2 * slope` px from each edge ([`spatial_taper`]),
//! so the FFT's wrap-around sees no edge. The reference itself is not tapered (as in suite2p).

use rustfft::num_complex::Complex32;

use super::error::RegistrationError;
use super::fft::Fft2;

/// Regulariser of the whitening division (suite2p's `eps`).
pub(crate) const WHITEN_EPS: f32 = 1e-5;

/// Half-width in px of the neighbourhood around a correlation peak used for the subpixel fit
/// and excluded when measuring the SNR (suite2p's `lpad`).
pub(crate) const LPAD: usize = 3;

/// Sigmoid edge taper, `[h][w]` row-major, values in (0, 1); computed in f64 as suite2p does.
pub(crate) fn spatial_taper(slope: f64, h: usize, w: usize) -> Vec<f32> {
    let axis = |n: usize| -> Vec<f64> {
        let centre = (n as f64 - 1.0) / 2.0;
        let m = centre - 2.0 * slope;
        (0..n)
            .map(|i| 1.0 / (1.0 + (((i as f64 - centre).abs() - m) / slope).exp()))
            .collect()
    };
    let (my, mx) = (axis(h), axis(w));
    let mut out = Vec::with_capacity(h * w);
    for &a in &my {
        out.extend(mx.iter().map(|&b| (a * b) as f32));
    }
    out
}

/// Real part of the FFT of a unit-sum Gaussian of `sigma` px centred (as suite2p does) at the
/// middle of the `h x w` grid and moved to the origin by `ifftshift`; in the column-major half
/// layout of [`Fft2`].
fn gaussian_spectrum(
    sigma: f64,
    h: usize,
    w: usize,
    fft: &mut Fft2,
) -> Result<Vec<f32>, RegistrationError> {
    let axis = |n: usize| -> Vec<f64> {
        let mean = (n as f64 - 1.0) / 2.0;
        (0..n)
            .map(|i| (-((i as f64 - mean).powi(2)) / (2.0 * sigma * sigma)).exp())
            .collect()
    };
    let (gy, gx) = (axis(h), axis(w));
    let total: f64 = gy.iter().sum::<f64>() * gx.iter().sum::<f64>();
    // ifftshift: out[i] = in[(i + n/2) % n].
    let mut kernel = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            kernel[y * w + x] = (gy[(y + h / 2) % h] * gx[(x + w / 2) % w] / total) as f32;
        }
    }
    let mut spec = vec![Complex32::default(); fft.spectrum_len()];
    fft.forward(&mut kernel, &mut spec)?;
    Ok(spec.iter().map(|c| c.re).collect())
}

/// `conj(R) / (eps + |R|) * G_sigma / (h w)` for the reference `image` (`[h][w]`, already
/// clipped if frames will be), in the column-major half layout of [`Fft2`].
pub(crate) fn reference_spectrum(
    image: &[f32],
    h: usize,
    w: usize,
    smooth_sigma: f64,
    fft: &mut Fft2,
) -> Result<Vec<Complex32>, RegistrationError> {
    let gauss = gaussian_spectrum(smooth_sigma, h, w, fft)?;
    let mut work = image.to_vec();
    let mut spec = vec![Complex32::default(); fft.spectrum_len()];
    fft.forward(&mut work, &mut spec)?;
    let scale = 1.0 / (h * w) as f32;
    for (c, &g) in spec.iter_mut().zip(&gauss) {
        *c = c.conj() * (g * scale / (WHITEN_EPS + c.norm()));
    }
    Ok(spec)
}

/// `spec <- spec / (eps + |spec|) * reference`, elementwise.
#[inline(always)]
pub(crate) fn whiten_and_multiply(spec: &mut [Complex32], reference: &[Complex32]) {
    for (c, r) in spec.iter_mut().zip(reference) {
        let inv = 1.0 / (WHITEN_EPS + (c.re * c.re + c.im * c.im).sqrt());
        let (a, b) = (c.re * inv, c.im * inv);
        *c = Complex32::new(a * r.re - b * r.im, a * r.im + b * r.re);
    }
}

/// `dst = image * mask + mean * (1 - mask)`, each pixel first clamped to `clip` (when given).
#[inline(always)]
pub(crate) fn taper_into(
    dst: &mut [f32],
    image: &[f32],
    mask: &[f32],
    mean: f32,
    clip: Option<(f32, f32)>,
) {
    match clip {
        Some((lo, hi)) => {
            for ((d, &v), &m) in dst.iter_mut().zip(image).zip(mask) {
                *d = v.clamp(lo, hi) * m + mean * (1.0 - m);
            }
        }
        None => {
            for ((d, &v), &m) in dst.iter_mut().zip(image).zip(mask) {
                *d = v * m + mean * (1.0 - m);
            }
        }
    }
}

/// A square correlation window `[n][n]`, `n = 2 * (lcorr + LPAD) + 1`, centred on zero shift:
/// entry `(i, j)` is the correlation at shift `(i - lcorr - LPAD, j - lcorr - LPAD)`.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    /// Largest shift searched, px.
    pub(crate) lcorr: usize,
}

/// Integer peak of a correlation window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Peak {
    /// Row of the peak in the window (so `iy - lcorr - LPAD` is the shift).
    pub(crate) iy: usize,
    /// Column of the peak in the window.
    pub(crate) ix: usize,
    /// Correlation at the peak.
    pub(crate) value: f32,
}

impl Window {
    /// Side of the window, `2 * (lcorr + LPAD) + 1`.
    pub(crate) fn side(self) -> usize {
        2 * (self.lcorr + LPAD) + 1
    }

    /// Half side, `lcorr + LPAD`: the inverse FFT window's `half`.
    pub(crate) fn half(self) -> usize {
        self.lcorr + LPAD
    }

    /// Largest value with `|shift| <= lcorr` (first in row-major order on ties, like numpy's
    /// `argmax`).
    pub(crate) fn peak(self, cc: &[f32]) -> Peak {
        let n = self.side();
        let mut best = Peak {
            iy: LPAD,
            ix: LPAD,
            value: f32::NEG_INFINITY,
        };
        for iy in LPAD..n - LPAD {
            let row = &cc[iy * n + LPAD..(iy + 1) * n - LPAD];
            for (k, &value) in row.iter().enumerate() {
                if value > best.value {
                    best = Peak {
                        iy,
                        ix: k + LPAD,
                        value,
                    };
                }
            }
        }
        best
    }

    /// suite2p's `getSNR`: the peak over the largest value left after zeroing the
    /// `2 LPAD x 2 LPAD` square that starts `LPAD` px above and left of the peak (suite2p's
    /// slightly off-centre exclusion, kept so the fallback decisions match).
    pub(crate) fn snr(self, cc: &[f32], peak: Peak) -> f32 {
        let n = self.side();
        let (y0, x0) = (peak.iy - LPAD, peak.ix - LPAD);
        let mut rest = f32::NEG_INFINITY;
        for iy in 0..n {
            let excluded_row = iy >= y0 && iy < y0 + 2 * LPAD;
            for ix in 0..n {
                let v = if excluded_row && ix >= x0 && ix < x0 + 2 * LPAD {
                    0.0
                } else {
                    cc[iy * n + ix]
                };
                rest = rest.max(v);
            }
        }
        peak.value / rest.max(1e-10)
    }

    /// Copies the `(2 LPAD + 1)^2` patch centred on `peak` into `patch` (row-major).
    pub(crate) fn patch(self, cc: &[f32], peak: Peak, patch: &mut [f32; PATCH_LEN]) {
        let n = self.side();
        let side = 2 * LPAD + 1;
        for a in 0..side {
            let src = &cc[(peak.iy - LPAD + a) * n + peak.ix - LPAD..][..side];
            patch[a * side..(a + 1) * side].copy_from_slice(src);
        }
    }
}

/// Values in a subpixel patch, `(2 LPAD + 1)^2`.
pub(crate) const PATCH_LEN: usize = (2 * LPAD + 1) * (2 * LPAD + 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taper_is_half_at_twice_the_slope_and_one_inside() {
        let m = spatial_taper(3.45, 64, 64);
        let centre = m[32 * 64 + 32];
        assert!(centre > 0.99, "{centre}");
        assert!(m[0] < 0.02, "{}", m[0]);
        // Along x at the middle row: 1/2 where |x - 31.5| = 31.5 - 6.9.
        let row = &m[32 * 64..33 * 64];
        let x_half = 6.9f32;
        let lo = row[6];
        let hi = row[7];
        assert!(lo < 0.5 && hi > 0.5, "{lo} {hi} around {x_half}");
    }

    #[test]
    fn snr_of_a_single_spike_is_huge_and_of_flat_is_one() {
        let win = Window { lcorr: 4 };
        let n = win.side();
        let mut cc = vec![0.01f32; n * n];
        cc[7 * n + 8] = 1.0;
        let p = win.peak(&cc);
        assert_eq!((p.iy, p.ix), (7, 8));
        assert!(win.snr(&cc, p) > 50.0);
        let flat = vec![0.5f32; n * n];
        let p = win.peak(&flat);
        assert!((win.snr(&flat, p) - 1.0).abs() < 1e-6);
    }
}
