//! `process`'s memory budget (`--memory-gb`).
//!
//! The movie itself is never held: pass 1 keeps each plane's detection block, pass 2 one page
//! at a time. What remains grows with the recording's cells × frames: the traces, kept until
//! the end because the output files are cell-major. So the budget bounds the detection block
//! outright, and the traces are checked against it before pass 2 reads the movie.

use super::StackMeta;
use anyhow::bail;

/// Bytes per pixel per block frame: the raw u16 frame (2) and detection's binned
/// accumulators (about 1: ~0.5 GB for 2,000 frames at 512x512).
const BLOCK_BYTES_PER_PX: f64 = 3.0;
/// The detection block may take this share of the budget (reference, registration buffers and
/// the projection images take the rest while it runs).
const BLOCK_SHARE: f64 = 0.5;
/// Bytes per cell-frame held to the end: F, Fneu, F0 and dF/F (16), and at writing the
/// deconvolved trace and suite2p's F, Fneu and spks (16).
const TRACE_BYTES: f64 = 32.0;
/// The traces may take this share (the pipelines, masks and images take the rest).
const TRACE_SHARE: f64 = 0.8;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy)]
pub(super) struct MemoryBudget {
    bytes: f64,
}

impl MemoryBudget {
    pub fn new(gb: f64) -> anyhow::Result<MemoryBudget> {
        if !gb.is_finite() || !(0.25..=4096.0).contains(&gb) {
            bail!("--memory-gb {gb}: must be 0.25 to 4096 (GiB of memory process may use)");
        }
        Ok(MemoryBudget { bytes: gb * GIB })
    }

    /// Frames of each plane's detection block: `wanted`, unless the budget holds fewer.
    pub fn detection_frames(&self, wanted: usize, planes: usize, pixels: usize) -> usize {
        let per_frame = BLOCK_BYTES_PER_PX * (planes * pixels).max(1) as f64;
        let cap = ((self.bytes * BLOCK_SHARE / per_frame) as usize).max(1);
        if wanted > cap && wanted != usize::MAX {
            tracing::warn!(
                wanted,
                cap,
                "--detection-frames {wanted} does not fit --memory-gb {:.2}: detecting on {cap} frames",
                self.bytes / GIB
            );
        }
        wanted.min(cap)
    }

    /// Refuses, before pass 2, traces that would not fit: `rois` over all planes (cells and the
    /// classifier's rejected candidates, traced for suite2p's files), the movie's frames
    /// estimated from the files' size.
    pub fn check_traces(
        &self,
        rois: usize,
        movie_bytes: u64,
        meta: &StackMeta,
    ) -> anyhow::Result<()> {
        let page = 2.0 * f64::from(meta.width) * f64::from(meta.height);
        let slots = f64::from(meta.channels) * f64::from(meta.planes + meta.flyback);
        let frames = movie_bytes as f64 / page / slots.max(1.0);
        let need = rois as f64 * frames * TRACE_BYTES;
        if need > self.bytes * TRACE_SHARE {
            bail!(
                "--memory-gb {:.2}: the traces of {rois} ROIs over about {frames:.0} frames need \
                 {:.2} GiB; pass --memory-gb {:.1} or more",
                self.bytes / GIB,
                need / GIB,
                (need / TRACE_SHARE / GIB).ceil()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_fits_the_budget_and_a_bad_budget_is_named() {
        let b = MemoryBudget::new(4.0).unwrap();
        // 512x512, one plane: 2 GiB / 768 KiB = 2730 frames.
        assert_eq!(b.detection_frames(2000, 1, 512 * 512), 2000);
        assert_eq!(b.detection_frames(usize::MAX, 1, 512 * 512), 2730);
        assert_eq!(b.detection_frames(usize::MAX, 2, 512 * 512), 1365);
        let tiny = MemoryBudget::new(0.25).unwrap();
        assert_eq!(tiny.detection_frames(2000, 1, 512 * 512), 170);
        // 1,000 cells over 30 minutes at 30 Hz (a 28 GB movie): 1.6 GiB of traces.
        let meta = StackMeta {
            width: 512,
            height: 512,
            dtype: crate::vocab::protocol::Dtype::U16,
            channels: 1,
            planes: 1,
            flyback: 0,
            frame_rate_hz: Some(30.0),
            plane_rate: crate::offline::scanimage::header::Rate::Hz(30.0),
            scanimage: true,
            timestamps: true,
        };
        let movie = 54_000u64 * 512 * 512 * 2;
        assert!(b.check_traces(1000, movie, &meta).is_ok());
        let e = MemoryBudget::new(1.0)
            .unwrap()
            .check_traces(1000, movie, &meta)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--memory-gb 1.00")
                && e.contains("1000 ROIs")
                && e.contains("pass --memory-gb 3.0"),
            "{e}"
        );
        for gb in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.1, 1e9] {
            let e = MemoryBudget::new(gb).unwrap_err().to_string();
            assert!(e.starts_with("--memory-gb"), "{e}");
        }
    }
}
