//! Each cell's scan offset: when within a frame its rows were scanned, so a cell's activity
//! time is the frame's time plus its offset (`calibration::clock::scan_offset_s`).
//!
//! The imaging stage fills a [`ScanSlot`] once its cells are known, before it emits their
//! first activity; the selector thread hands the offsets to the selector before observing that
//! activity, logs them (`Cells` record) and publishes them (`cells` stream), so live and replay
//! apply them from the same first frame.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use twinloop_calibration::clock::scan_offset_s;

/// Per-cell scan offsets of one plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanOffsets {
    /// Lines per frame (the imaging height).
    pub lines: u32,
    /// Frame period of the plane, s.
    pub frame_period_s: f64,
    /// Each cell's scan row in pixel-edge coordinates (a mask centroid on line `i`'s centre is
    /// `i + 0.5`), in activity order.
    pub rows: Vec<f64>,
    /// Each cell's offset after its frame's timestamp, s: `rows[i] / lines · frame_period_s`.
    pub offsets_s: Vec<f64>,
}

impl ScanOffsets {
    /// From mask centroids as the cell masks give them (mean row index, line centres at
    /// integers).
    pub fn from_centroids(
        centroid_rows: impl IntoIterator<Item = f64>,
        lines: u32,
        frame_period_s: f64,
    ) -> ScanOffsets {
        let rows: Vec<f64> = centroid_rows.into_iter().map(|y| y + 0.5).collect();
        let offsets_s = rows
            .iter()
            .map(|&r| scan_offset_s(r, lines, frame_period_s))
            .collect();
        ScanOffsets {
            lines,
            frame_period_s,
            rows,
            offsets_s,
        }
    }
}

/// Filled once, when the cells are known.
pub type ScanSlot = Arc<OnceLock<ScanOffsets>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_centroid_row() {
        let s = ScanOffsets::from_centroids([0.0, 255.5, 511.0], 512, 1.0 / 30.0);
        let want = |row: f64| row / 512.0 / 30.0;
        assert_eq!(s.rows, vec![0.5, 256.0, 511.5]);
        for (got, row) in s.offsets_s.iter().zip(&s.rows) {
            assert!((got - want(*row)).abs() < 1e-15);
        }
    }
}
