//! What a rendered frame spans of the mouse's visual field.

use serde::{Deserialize, Serialize};

/// A `width` x `height` frame covering `azimuth_deg` (left to right) and `elevation_deg`
/// (bottom to top); row 0 is the top. The mapping is linear in degrees: a convenient view of the
/// visual field (the twin's default). A real monitor's pixels go through
/// [`crate::geometry::MonitorGeometry`] (spherical correction) instead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ViewGeometry {
    pub width: usize,
    pub height: usize,
    pub azimuth_deg: (f64, f64),
    pub elevation_deg: (f64, f64),
}

impl ViewGeometry {
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Azimuth and elevation (degrees) of the centre of pixel (`row`, `col`).
    pub fn pixel_deg(&self, row: usize, col: usize) -> (f64, f64) {
        let (a0, a1) = self.azimuth_deg;
        let (e0, e1) = self.elevation_deg;
        let az = a0 + (col as f64 + 0.5) / self.width as f64 * (a1 - a0);
        let el = e1 - (row as f64 + 0.5) / self.height as f64 * (e1 - e0);
        (az, el)
    }
}

impl Default for ViewGeometry {
    fn default() -> Self {
        ViewGeometry {
            width: 64,
            height: 36,
            azimuth_deg: (-60.0, 60.0),
            elevation_deg: (-35.0, 35.0),
        }
    }
}
