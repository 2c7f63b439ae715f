//! Motion correction of two-photon frames against a fixed reference: suite2p's method, rigid
//! then piecewise-rigid, built for one call per frame inside the online latency budget.
//!
//! # Method
//! 1. **Rigid** (`rigid`): whitened phase correlation of the edge-tapered frame with the
//!    reference, the cross-power spectrum smoothed by a Gaussian (`smooth_sigma_px`), the peak
//!    searched within `max_shift_fraction` of the frame and refined to `1 / subpixel` px by
//!    kriging (`subpixel`).
//! 2. **Piecewise-rigid** (`nonrigid`): the frame, displaced by the rounded rigid shift, is cut
//!    into overlapping blocks (6 x 6 of 128 px at 512 x 512); each block is phase-correlated
//!    with the same block of the reference, low-SNR blocks fall back to maps smoothed over
//!    their neighbours, and peaks are refined by kriging.
//! 3. **Warp** (`warp`): block shifts are interpolated bilinearly between block centres to a
//!    per-pixel field and the frame is resampled bilinearly (rigid only: by the rigid shift).
//!
//! [`compute_reference`] builds the reference from a calibration block (seed from the most
//! mutually correlated frames, then register and re-average).
//!
//! # Conventions
//! Images are row-major `[height][width]` slices. Shifts are in pixels, **y first**, with
//! suite2p's sign: a frame whose content moved by `(dy, dx)` from the reference has
//! `frame(y, x) = reference(y - dy, x - dx)` and registers to `out(y, x) = frame(y + dy, x + dx)`.
//! Samples outside the frame take the nearest edge pixel.
//!
//! # Layout
//! - `params`: [`RegistrationParams`], suite2p's defaults, `validate()`.
//! - `error`: [`RegistrationError`].
//! - `fft`: 2-D real FFT, column-major half spectrum, windowed inverse.
//! - `phasecorr`: taper, whitening, Gaussian smoothing, peak and SNR of a correlation window.
//! - `subpixel`: kriging refinement of a peak.
//! - `rigid`, `nonrigid`, `warp`: the three steps above; `reference`: [`compute_reference`].
//!
//! # Performance
//! [`Registrar::new`] computes everything that depends only on the reference: FFT plans, the
//! whitened and smoothed reference spectra (whole frame and each block), taper masks, block
//! layout and smoothing weights, kriging weights, warp interpolation tables, and all scratch.
//! [`Registrar::register`] then allocates nothing. `calibration/examples/bench_register.rs`
//! times it (and checks the no-allocation claim) at 512 x 512.

mod error;
mod fft;
mod nonrigid;
mod params;
mod phasecorr;
mod reference;
mod rigid;
mod subpixel;
mod warp;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod simd_tests;
#[cfg(test)]
mod tests;

pub use error::RegistrationError;
pub use nonrigid::{BlockGrid, BlockShifts};
pub use params::RegistrationParams;
pub use reference::compute_reference;
pub use rigid::RigidShift;

use crate::simd::SimdPath;
use fft::Planners;
use nonrigid::BlockCorrelator;
use rigid::RigidCorrelator;
use warp::FieldWarp;

/// Smallest frame side accepted, px.
pub const MIN_FRAME_PX: usize = 16;

/// `(height + 1) * (width + 1)` must stay under this (2^24: exact f32 indices in the warp).
pub const MAX_PADDED_PIXELS: usize = 1 << 24;

/// A pixel type frames may arrive in.
pub trait Pixel: Copy {
    /// The value as f32.
    fn to_f32(self) -> f32;
    /// Whether the value is the top of the type's range (a saturated detector).
    fn is_saturated(self) -> bool {
        false
    }
}

impl Pixel for u16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn is_saturated(self) -> bool {
        self == u16::MAX
    }
}

impl Pixel for i16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn is_saturated(self) -> bool {
        self == i16::MAX
    }
}

impl Pixel for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

/// Conditions worth a look; none stops registration except `blank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegistrationFlags {
    /// The frame is constant after clipping (all zero, all saturated, ...): nothing to
    /// register; the output is the frame unchanged and the shifts are 0.
    pub blank: bool,
    /// The rigid peak lies on the edge of the search window: the motion may exceed
    /// `max_shift_fraction`.
    pub at_shift_limit: bool,
    /// The rigid peak's SNR is below `snr_thresh`: the shift is doubtful.
    pub low_snr: bool,
}

impl RegistrationFlags {
    /// No flag raised.
    pub fn is_clean(&self) -> bool {
        !(self.blank || self.at_shift_limit || self.low_snr)
    }
}

/// What registering one frame found. Per-block shifts: [`Registrar::block_shifts`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegistrationResult {
    /// Rigid row shift, px (see the module's sign convention).
    pub rigid_dy: f32,
    /// Rigid column shift, px.
    pub rigid_dx: f32,
    /// Phase correlation at the rigid peak (suite2p `cmax`; ~0.12 at most for the default
    /// smoothing).
    pub rigid_corr: f32,
    /// Rigid peak over the largest correlation away from it (suite2p `getSNR`).
    pub rigid_snr: f32,
    /// `rigid_corr` relative to the reference registered to itself: about 1 for a frame as good
    /// as the reference, falling with noise, blur, z-motion or a changed field of view.
    pub quality: f32,
    /// Blocks of the piecewise-rigid step (0 when it is off or the frame was blank).
    pub n_blocks: usize,
    /// Blocks whose own map was below `snr_thresh` and used smoothed maps.
    pub n_blocks_smoothed: usize,
    /// Largest `|block shift - rigid shift|` over blocks and both axes, px.
    pub max_block_residual_px: f32,
    /// Fraction of pixels at the top of the pixel type's range.
    pub saturated_fraction: f32,
    /// Conditions raised.
    pub flags: RegistrationFlags,
}

/// Per-frame statistics gathered while converting to f32.
struct FrameStats {
    min: f32,
    max: f32,
    n_saturated: usize,
    finite: bool,
}

#[inline(always)]
fn load<P: Pixel>(frame: &[P], dst: &mut [f32]) -> FrameStats {
    // Eight independent lanes with compare-select min/max, so the loop vectorises.
    const L: usize = 8;
    let (mut mn, mut mx) = ([f32::INFINITY; L], [f32::NEG_INFINITY; L]);
    let (mut sat, mut bad) = ([0u32; L], [0u32; L]);
    let n_main = frame.len() / L * L;
    for (d, p) in dst[..n_main]
        .chunks_exact_mut(L)
        .zip(frame[..n_main].chunks_exact(L))
    {
        for k in 0..L {
            let v = p[k].to_f32();
            d[k] = v;
            bad[k] |= u32::from(v.abs() >= f32::INFINITY || v.is_nan());
            mn[k] = if v < mn[k] { v } else { mn[k] };
            mx[k] = if v > mx[k] { v } else { mx[k] };
            sat[k] += u32::from(p[k].is_saturated());
        }
    }
    let mut s = FrameStats {
        min: mn.iter().fold(f32::INFINITY, |a, &b| a.min(b)),
        max: mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
        n_saturated: sat.iter().map(|&c| c as usize).sum(),
        finite: bad.iter().all(|&b| b == 0),
    };
    for (d, &p) in dst[n_main..].iter_mut().zip(&frame[n_main..]) {
        let v = p.to_f32();
        *d = v;
        s.finite &= v.is_finite();
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        s.n_saturated += usize::from(p.is_saturated());
    }
    s
}

/// Linear-interpolated percentile of `sorted` (numpy's default method), `q` in `[0, 100]`.
fn percentile(sorted: &[f32], q: f64) -> f32 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let f = (pos - lo as f64) as f32;
    sorted[lo] + f * (sorted[hi] - sorted[lo])
}

pub(crate) fn check_dims(h: usize, w: usize) -> Result<(), RegistrationError> {
    if h < MIN_FRAME_PX || w < MIN_FRAME_PX {
        return Err(RegistrationError::FrameTooSmall {
            height: h,
            width: w,
            min: MIN_FRAME_PX,
        });
    }
    // The warp computes source indices in f32 (see `warp::FieldWarp`).
    if (h + 1).saturating_mul(w + 1) >= MAX_PADDED_PIXELS {
        return Err(RegistrationError::FrameTooLarge {
            height: h,
            width: w,
            max: MAX_PADDED_PIXELS,
        });
    }
    Ok(())
}

/// Registers frames to one fixed reference. Build once per reference; [`register`](Self::register)
/// each frame.
pub struct Registrar {
    h: usize,
    w: usize,
    params: RegistrationParams,
    clip: Option<(f32, f32)>,
    rigid: RigidCorrelator,
    blocks: Option<(BlockCorrelator, FieldWarp)>,
    /// `[h][w]`: the current frame as f32.
    frame: Vec<f32>,
    /// Rigid peak correlation of the reference with itself.
    self_corr: f32,
    /// Instruction set of the per-pixel kernels.
    simd: SimdPath,
}

impl Registrar {
    /// Prepares registration to `reference` (`[height][width]`, row-major, finite, not flat).
    pub fn new(
        reference: &[f32],
        height: usize,
        width: usize,
        params: &RegistrationParams,
    ) -> Result<Self, RegistrationError> {
        params.validate()?;
        check_dims(height, width)?;
        let (h, w) = (height, width);
        if reference.len() != h * w {
            return Err(RegistrationError::LengthMismatch {
                what: "reference",
                expected: h * w,
                got: reference.len(),
                height,
                width,
            });
        }
        if let Some(index) = reference.iter().position(|v| !v.is_finite()) {
            return Err(RegistrationError::NonFiniteReference { index });
        }
        let mut reference = reference.to_vec();
        let clip = if params.norm_frames {
            let mut sorted = reference.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            let (lo, hi) = (percentile(&sorted, 1.0), percentile(&sorted, 99.0));
            reference.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
            Some((lo, hi))
        } else {
            None
        };
        let (lo, hi) = reference
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if hi <= lo {
            return Err(RegistrationError::FlatReference);
        }
        let simd = SimdPath::active();
        let mut planners = Planners::new();
        let mut rigid = RigidCorrelator::new(&reference, h, w, params, &mut planners)?;
        let self_corr = rigid.estimate(&reference, clip, simd)?.corr;
        let blocks = if params.nonrigid {
            let bc = BlockCorrelator::new(&reference, h, w, params, &mut planners)?;
            let fw = FieldWarp::new(&bc.grid, h, w);
            Some((bc, fw))
        } else {
            None
        };
        Ok(Self {
            h,
            w,
            params: params.clone(),
            clip,
            rigid,
            blocks,
            frame: vec![0.0; h * w],
            self_corr,
            simd,
        })
    }

    /// Instruction set of the per-pixel kernels ([`SimdPath::active`] unless set).
    pub fn simd(&self) -> SimdPath {
        self.simd
    }

    /// Runs the per-pixel kernels on `simd` (every path gives the same bits; this is for
    /// measuring and testing them).
    pub fn set_simd(&mut self, simd: SimdPath) {
        self.simd = simd;
    }

    /// Frame height, px.
    pub fn height(&self) -> usize {
        self.h
    }

    /// Frame width, px.
    pub fn width(&self) -> usize {
        self.w
    }

    /// The settings in use.
    pub fn params(&self) -> &RegistrationParams {
        &self.params
    }

    /// Intensity range frames are clipped to before shifts are estimated (the reference's 1st
    /// and 99th percentiles), when `norm_frames` is on.
    pub fn clip_range(&self) -> Option<(f32, f32)> {
        self.clip
    }

    /// Largest rigid shift searched, px.
    pub fn max_rigid_shift_px(&self) -> usize {
        self.rigid.lcorr()
    }

    /// Largest block shift searched relative to the rigid shift, px, if the piecewise-rigid
    /// step is on.
    pub fn max_block_shift_px(&self) -> Option<usize> {
        self.blocks.as_ref().map(|(bc, _)| bc.lcorr())
    }

    /// Block layout of the piecewise-rigid step, if on.
    pub fn block_grid(&self) -> Option<&BlockGrid> {
        self.blocks.as_ref().map(|(bc, _)| &bc.grid)
    }

    /// Per-block shifts of the last registered frame, if the piecewise-rigid step is on.
    pub fn block_shifts(&self) -> Option<BlockShifts<'_>> {
        self.blocks.as_ref().map(|(bc, _)| bc.shifts())
    }

    fn check_len(&self, what: &'static str, got: usize) -> Result<(), RegistrationError> {
        let expected = self.h * self.w;
        if got != expected {
            return Err(RegistrationError::LengthMismatch {
                what,
                expected,
                got,
                height: self.h,
                width: self.w,
            });
        }
        Ok(())
    }

    /// Converts `frame` into the f32 scratch; `None` if it is blank after clipping.
    fn load_frame<P: Pixel>(
        &mut self,
        frame: &[P],
    ) -> Result<Option<FrameStats>, RegistrationError> {
        self.check_len("frame", frame.len())?;
        let dst = &mut self.frame;
        let stats = self.simd.run(
            #[inline(always)]
            || load(frame, dst),
        );
        if !stats.finite {
            let index = self.frame.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(RegistrationError::NonFiniteFrame { index });
        }
        let (lo, hi) = self.clip.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        if stats.min.clamp(lo, hi) >= stats.max.clamp(lo, hi) {
            return Ok(None);
        }
        Ok(Some(stats))
    }

    /// Rigid shift of `frame` (`[height][width]`) only: no blocks, no warp, no allocation.
    /// A blank frame (constant after clipping) gives a zero shift with `corr` and `snr` 0.
    pub fn rigid_shift<P: Pixel>(&mut self, frame: &[P]) -> Result<RigidShift, RegistrationError> {
        match self.load_frame(frame)? {
            None => Ok(RigidShift {
                dy: 0.0,
                dx: 0.0,
                corr: 0.0,
                snr: 0.0,
                at_limit: false,
            }),
            Some(_) => self.rigid.estimate(&self.frame, self.clip, self.simd),
        }
    }

    /// Registers `frame` (`[height][width]`) into `out` (`[height][width]`): rigid shift, then
    /// (if on) block shifts and the warp by their field, else the rigid shift applied
    /// bilinearly. No allocation.
    ///
    /// Errors on a wrong length or a non-finite pixel (nothing is written). A blank frame
    /// (constant after clipping, e.g. all zero or all saturated) is copied unchanged and
    /// flagged.
    pub fn register<P: Pixel>(
        &mut self,
        frame: &[P],
        out: &mut [f32],
    ) -> Result<RegistrationResult, RegistrationError> {
        self.check_len("output", out.len())?;
        let Some(stats) = self.load_frame(frame)? else {
            out.copy_from_slice(&self.frame);
            return Ok(RegistrationResult {
                rigid_dy: 0.0,
                rigid_dx: 0.0,
                rigid_corr: 0.0,
                rigid_snr: 0.0,
                quality: 0.0,
                n_blocks: 0,
                n_blocks_smoothed: 0,
                max_block_residual_px: 0.0,
                saturated_fraction: saturated_fraction(frame),
                flags: RegistrationFlags {
                    blank: true,
                    ..Default::default()
                },
            });
        };
        let simd = self.simd;
        let rigid = self.rigid.estimate(&self.frame, self.clip, simd)?;
        let mut result = RegistrationResult {
            rigid_dy: rigid.dy,
            rigid_dx: rigid.dx,
            rigid_corr: rigid.corr,
            rigid_snr: rigid.snr,
            quality: rigid.corr / self.self_corr,
            n_blocks: 0,
            n_blocks_smoothed: 0,
            max_block_residual_px: 0.0,
            saturated_fraction: stats.n_saturated as f32 / frame.len() as f32,
            flags: RegistrationFlags {
                blank: false,
                at_shift_limit: rigid.at_limit,
                low_snr: rigid.snr < self.params.snr_thresh,
            },
        };
        match &mut self.blocks {
            Some((bc, fw)) => {
                let (ry, rx) = (rigid.dy.round() as isize, rigid.dx.round() as isize);
                result.n_blocks_smoothed = bc.estimate(&self.frame, self.clip, ry, rx, simd)?;
                result.n_blocks = bc.grid.len();
                result.max_block_residual_px = bc
                    .dy
                    .iter()
                    .map(|&v| (v - rigid.dy).abs())
                    .chain(bc.dx.iter().map(|&v| (v - rigid.dx).abs()))
                    .fold(0.0, f32::max);
                let frame = &self.frame;
                simd.run(
                    #[inline(always)]
                    || fw.warp(frame, &bc.dy, &bc.dx, out),
                );
            }
            None => {
                let (frame, h, w) = (&self.frame, self.h, self.w);
                simd.run(
                    #[inline(always)]
                    || warp::warp_rigid(frame, h, w, rigid.dy, rigid.dx, out),
                )
            }
        }
        Ok(result)
    }
}

fn saturated_fraction<P: Pixel>(frame: &[P]) -> f32 {
    frame.iter().filter(|p| p.is_saturated()).count() as f32 / frame.len().max(1) as f32
}

/// Rigid shift of one `frame` against `reference` (both `[height][width]`), for one-off use:
/// it builds a rigid-only [`Registrar`] (FFT plans, reference spectrum) each call, so
/// per-frame callers should keep a `Registrar` and call [`Registrar::rigid_shift`].
pub fn rigid_shift<P: Pixel>(
    frame: &[P],
    reference: &[f32],
    height: usize,
    width: usize,
    params: &RegistrationParams,
) -> Result<RigidShift, RegistrationError> {
    let rigid_only = RegistrationParams {
        nonrigid: false,
        ..params.clone()
    };
    Registrar::new(reference, height, width, &rigid_only)?.rigid_shift(frame)
}
