//! Each cell's scan offset: when within a frame its rows were scanned, so a cell's activity
//! time is the frame's time plus its offset (`calibration::clock::scan_offset_s`).
//!
//! The imaging stage fills a plane's entry of the [`ScanSlot`] once that plane's cells are
//! known, before it emits their first activity; the selector thread hands the offsets to the
//! selector before observing that activity, logs them (`Cells` record, one per plane) and
//! publishes them (`cells` stream, the plane in the header and the JSON), so live and replay
//! apply them from the same first frame of each plane.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use twinloop_calibration::clock::scan_offset_s;

/// Per-cell scan offsets of one plane, and where each cell is (for displays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanOffsets {
    /// The imaging plane these cells are on (older logs: plane 0).
    #[serde(default)]
    pub plane: u8,
    /// Lines per frame (the imaging height).
    pub lines: u32,
    /// Frame period of the plane, s.
    pub frame_period_s: f64,
    /// Each cell's scan row in pixel-edge coordinates (a mask centroid on line `i`'s centre is
    /// `i + 0.5`), in activity order.
    pub rows: Vec<f64>,
    /// Each cell's offset after its frame's timestamp, s: `rows[i] / lines · frame_period_s`.
    pub offsets_s: Vec<f64>,
    /// Each cell's centroid column, px from the left (pixel centres at integers).
    #[serde(default)]
    pub x_px: Vec<f64>,
    /// Each cell's radius (a disc of its mask's area), px.
    #[serde(default)]
    pub radius_px: Vec<f64>,
}

/// Where one cell is in the frame, px (pixel centres at integers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellPlace {
    pub y_px: f64,
    pub x_px: f64,
    pub radius_px: f64,
}

impl ScanOffsets {
    /// From the cells' places as the cell masks give them (weighted centroids, line centres at
    /// integers).
    pub fn from_cells(
        cells: impl IntoIterator<Item = CellPlace>,
        lines: u32,
        frame_period_s: f64,
    ) -> ScanOffsets {
        let cells: Vec<CellPlace> = cells.into_iter().collect();
        let rows: Vec<f64> = cells.iter().map(|c| c.y_px + 0.5).collect();
        let offsets_s = rows
            .iter()
            .map(|&r| scan_offset_s(r, lines, frame_period_s))
            .collect();
        ScanOffsets {
            plane: 0,
            lines,
            frame_period_s,
            rows,
            offsets_s,
            x_px: cells.iter().map(|c| c.x_px).collect(),
            radius_px: cells.iter().map(|c| c.radius_px).collect(),
        }
    }
}

/// Each plane's offsets, each filled once, when that plane's cells are known.
#[derive(Debug, Clone)]
pub struct ScanSlot(Arc<[OnceLock<ScanOffsets>]>);

impl ScanSlot {
    /// Empty, for `planes` imaging planes (at least one).
    pub fn new(planes: u8) -> ScanSlot {
        ScanSlot((0..planes.max(1)).map(|_| OnceLock::new()).collect())
    }

    /// Fills `offsets.plane`'s entry (once; a later call, or a plane beyond the rig's, is
    /// ignored).
    pub fn set(&self, offsets: ScanOffsets) {
        if let Some(slot) = self.0.get(usize::from(offsets.plane)) {
            let _ = slot.set(offsets);
        }
    }

    /// Plane `plane`'s offsets, once filled.
    pub fn get(&self, plane: u8) -> Option<&ScanOffsets> {
        self.0.get(usize::from(plane)).and_then(OnceLock::get)
    }

    pub fn planes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plane_is_filled_once_and_on_its_own() {
        let slot = ScanSlot::new(2);
        let at = |plane, y_px| ScanOffsets {
            plane,
            ..ScanOffsets::from_cells(
                [CellPlace {
                    y_px,
                    x_px: 1.0,
                    radius_px: 2.0,
                }],
                64,
                0.1,
            )
        };
        slot.set(at(1, 10.0));
        assert!(slot.get(0).is_none());
        assert_eq!(slot.get(1).map(|s| s.rows.clone()), Some(vec![10.5]));
        slot.set(at(1, 20.0));
        slot.set(at(0, 30.0));
        slot.set(at(5, 40.0));
        assert_eq!(
            slot.get(1).map(|s| s.rows.clone()),
            Some(vec![10.5]),
            "filled once"
        );
        assert_eq!(slot.get(0).map(|s| s.rows.clone()), Some(vec![30.5]));
        assert!(slot.get(5).is_none());
    }

    #[test]
    fn offsets_follow_the_centroid_row() {
        let at = |y_px| CellPlace {
            y_px,
            x_px: 3.0,
            radius_px: 4.0,
        };
        let s = ScanOffsets::from_cells([at(0.0), at(255.5), at(511.0)], 512, 1.0 / 30.0);
        let want = |row: f64| row / 512.0 / 30.0;
        assert_eq!(s.rows, vec![0.5, 256.0, 511.5]);
        for (got, row) in s.offsets_s.iter().zip(&s.rows) {
            assert!((got - want(*row)).abs() < 1e-15);
        }
    }
}
