//! Rigid shift of a whole frame by whitened phase correlation (suite2p `registration/rigid.py`),
//! refined to subpixel by kriging.
//!
//! Steps per frame, all in buffers made by [`RigidCorrelator::new`]:
//! 1. clip to the reference's 1st-99th percentiles (optional), taper the edges to the
//!    reference mean;
//! 2. real 2-D FFT, whiten, multiply by the precomputed reference factor (conjugate, whitened,
//!    Gaussian-smoothed);
//! 3. inverse FFT of only the window `|dy|, |dx| <= lcorr + 3`,
//!    `lcorr = min(round(max_shift_fraction * min(h, w)), min(h, w) / 2)`;
//! 4. integer peak within `|dy|, |dx| <= lcorr`, then kriging on the `7 x 7` around it.

use rustfft::num_complex::Complex32;

use super::error::RegistrationError;
use super::fft::{Fft2, Planners};
use super::params::RegistrationParams;
use super::phasecorr::{self, LPAD, PATCH_LEN, Window};
use super::subpixel::Kriging;
use crate::simd::SimdPath;

/// A rigid shift estimate: where the frame's content sits relative to the reference.
///
/// `frame(y, x) ~ reference(y - dy, x - dx)`: positive `dy` means the content moved down
/// (towards larger row index), positive `dx` right. Registration samples
/// `frame(y + dy, x + dx)`. This is suite2p's sign (`yoff`, `xoff`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RigidShift {
    /// Row shift, px (y first).
    pub dy: f32,
    /// Column shift, px.
    pub dx: f32,
    /// Phase correlation at the integer peak (suite2p `cmax`); unitless, at most the smoothing
    /// Gaussian's central value (~0.12 at `smooth_sigma_px` 1.15).
    pub corr: f32,
    /// Peak over the largest correlation outside its `6 x 6` neighbourhood (suite2p `getSNR`
    /// applied to the rigid map); below `snr_thresh` the estimate is doubtful.
    pub snr: f32,
    /// The integer peak is on the edge of the search window (`|shift| = lcorr`): the true
    /// shift may be larger than searched.
    pub at_limit: bool,
}

/// Everything rigid registration needs that depends only on the reference.
pub(crate) struct RigidCorrelator {
    h: usize,
    w: usize,
    window: Window,
    mask_mul: Vec<f32>,
    /// The reference's mean, what the taper fades to (`mean * (1 - mask)` per pixel).
    mean: f32,
    ref_spec: Vec<Complex32>,
    fft: Fft2,
    /// `[h][w]`: the tapered frame (clobbered by the FFT).
    tapered: Vec<f32>,
    spec: Vec<Complex32>,
    /// `[n][n]` correlation window.
    cc: Vec<f32>,
    kriging: Kriging,
}

/// `lcorr` of the rigid step: suite2p's `min(round(maxregshift * min_dim), min_dim // 2)`.
pub(crate) fn rigid_lcorr(h: usize, w: usize, max_shift_fraction: f32) -> usize {
    let min_dim = h.min(w);
    ((max_shift_fraction as f64 * min_dim as f64).round() as usize)
        .min(min_dim / 2)
        .max(1)
}

impl RigidCorrelator {
    /// `reference`: `[h][w]`, finite, already clipped when frames will be.
    pub(crate) fn new(
        reference: &[f32],
        h: usize,
        w: usize,
        params: &RegistrationParams,
        planners: &mut Planners,
    ) -> Result<Self, RegistrationError> {
        let mut fft = Fft2::new(h, w, planners);
        let ref_spec = phasecorr::reference_spectrum(
            reference,
            h,
            w,
            params.smooth_sigma_px as f64,
            &mut fft,
        )?;
        let mask_mul = phasecorr::spatial_taper(params.spatial_taper_px as f64, h, w);
        let mean = (reference.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32;
        let window = Window {
            lcorr: rigid_lcorr(h, w, params.max_shift_fraction),
        };
        let n = window.side();
        Ok(Self {
            h,
            w,
            window,
            mask_mul,
            mean,
            spec: vec![Complex32::default(); fft.spectrum_len()],
            ref_spec,
            fft,
            tapered: vec![0.0; h * w],
            cc: vec![0.0; n * n],
            kriging: Kriging::new(params.subpixel),
        })
    }

    /// Largest shift searched, px.
    pub(crate) fn lcorr(&self) -> usize {
        self.window.lcorr
    }

    /// Estimates the shift of `frame` (`[h][w]`, finite) against the reference.
    pub(crate) fn estimate(
        &mut self,
        frame: &[f32],
        clip: Option<(f32, f32)>,
        simd: SimdPath,
    ) -> Result<RigidShift, RegistrationError> {
        debug_assert_eq!(frame.len(), self.h * self.w);
        let (tapered, mask, mean) = (&mut self.tapered, &self.mask_mul, self.mean);
        simd.run(
            #[inline(always)]
            || phasecorr::taper_into(tapered, frame, mask, mean, clip),
        );
        self.fft.forward(&mut self.tapered, &mut self.spec)?;
        let (spec, reference) = (&mut self.spec, &self.ref_spec);
        simd.run(
            #[inline(always)]
            || phasecorr::whiten_and_multiply(spec, reference),
        );
        self.fft
            .inverse_window(&mut self.spec, self.window.half(), &mut self.cc)?;
        Ok(shift_from_window(self.window, &self.cc, &mut self.kriging))
    }
}

/// Integer peak, SNR and kriging refinement of one correlation window.
pub(crate) fn shift_from_window(window: Window, cc: &[f32], kriging: &mut Kriging) -> RigidShift {
    let peak = window.peak(cc);
    let snr = window.snr(cc, peak);
    let mut patch = [0.0f32; PATCH_LEN];
    window.patch(cc, peak, &mut patch);
    let (fy, fx, _) = kriging.refine(&patch);
    let half = window.half() as f32;
    let lcorr = window.lcorr;
    let at_limit = [peak.iy, peak.ix]
        .iter()
        .any(|&i| i == LPAD || i == LPAD + 2 * lcorr);
    RigidShift {
        dy: peak.iy as f32 - half + fy,
        dx: peak.ix as f32 - half + fx,
        corr: peak.value,
        snr,
        at_limit,
    }
}
