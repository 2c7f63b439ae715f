//! Clips of a recording as tensors: B clips of T frames, one tensor set per frame, so the twin
//! streams them exactly as it does live (state carried frame to frame within a clip).

use candle_core::{Device, Tensor};

use crate::error::{CandleContext, Result};
use crate::train::recording::Recording;

/// Where clips may start: every `stride` frames such that `frames` frames fit inside one
/// gap-free segment and inside `range` (a time split: train before, validation after).
pub fn clip_starts(
    rec: &Recording,
    frames: usize,
    stride: usize,
    range: std::ops::Range<usize>,
) -> Vec<usize> {
    let stride = stride.max(1);
    let mut out = Vec::new();
    for seg in &rec.meta.segments {
        let lo = seg.start.max(range.start);
        let hi = seg.end.min(range.end);
        let mut s = lo;
        while s + frames <= hi {
            out.push(s);
            s += stride;
        }
    }
    out
}

/// One frame of a batch of clips.
pub struct BatchFrame {
    /// `[B, 1, H, W]` in [0, 1].
    pub stimulus: Tensor,
    /// `[B, 2]`.
    pub perspective: Tensor,
    /// `[B, 2]`.
    pub modulation: Tensor,
    /// `[B, U]`, unobserved entries 0.
    pub responses: Tensor,
    /// `[B, U]`, 1 where observed.
    pub mask: Tensor,
}

/// A batch of equal-length clips, frame by frame.
pub struct ClipBatch {
    pub frames: Vec<BatchFrame>,
    /// Observed (unit, clip) entries over all frames.
    pub observed: usize,
}

/// Stacks the clips starting at `starts` (each `frames` long) into per-frame tensors on `dev`.
pub fn batch(rec: &Recording, starts: &[usize], frames: usize, dev: &Device) -> Result<ClipBatch> {
    let b = starts.len();
    let (h, w, u) = (rec.height, rec.width, rec.units());
    let mut out = Vec::with_capacity(frames);
    let mut observed = 0usize;
    for t in 0..frames {
        let mut stim = Vec::with_capacity(b * h * w);
        let mut per = Vec::with_capacity(b * 2);
        let mut modu = Vec::with_capacity(b * 2);
        let mut resp = Vec::with_capacity(b * u);
        let mut mask: Vec<f32> = Vec::with_capacity(b * u);
        for &s in starts {
            let f = s + t;
            stim.extend(rec.frame(f).iter().map(|&p| f32::from(p) / 255.0));
            per.extend_from_slice(&rec.perspective[2 * f..2 * f + 2]);
            modu.extend_from_slice(&rec.modulation[2 * f..2 * f + 2]);
            for &r in rec.response(f) {
                let seen = r.is_finite();
                observed += usize::from(seen);
                resp.push(if seen { r } else { 0.0 });
                mask.push(if seen { 1.0f32 } else { 0.0 });
            }
        }
        out.push(BatchFrame {
            stimulus: Tensor::from_vec(stim, (b, 1, h, w), dev).ctx("clip stimulus")?,
            perspective: Tensor::from_vec(per, (b, 2), dev).ctx("clip perspective")?,
            modulation: Tensor::from_vec(modu, (b, 2), dev).ctx("clip modulation")?,
            responses: Tensor::from_vec(resp, (b, u), dev).ctx("clip responses")?,
            mask: Tensor::from_vec(mask, (b, u), dev).ctx("clip mask")?,
        });
    }
    Ok(ClipBatch {
        frames: out,
        observed,
    })
}
