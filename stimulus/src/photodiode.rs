//! The photodiode patch: a square in one corner of the monitor whose level encodes, frame by
//! frame, stimulus onsets and the frame's parity, so a photodiode taped over it records when
//! each frame really reached the screen.
//!
//! Levels (drive values, not gamma-corrected): an onset frame (and the `onset_frames − 1`
//! frames after it) is white (1.0); other frames alternate black (0.0) on even display frames
//! and `parity_level` on odd ones. A rising edge through ½ is therefore an onset; an edge
//! through `parity_level / 2` is any flip.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corner {
    TopLeft,
    TopRight,
    #[default]
    BottomLeft,
    BottomRight,
}

fn default_size() -> u32 {
    64
}
fn default_parity_level() -> f32 {
    0.3
}
fn default_onset_frames() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotodiodePatch {
    #[serde(default)]
    pub corner: Corner,
    /// Side of the square, pixels.
    #[serde(default = "default_size")]
    pub size_px: u32,
    /// Level of odd frames (even frames are black), in [0, 0.5).
    #[serde(default = "default_parity_level")]
    pub parity_level: f32,
    /// Frames the onset stays white, ≥ 1.
    #[serde(default = "default_onset_frames")]
    pub onset_frames: u32,
}

impl Default for PhotodiodePatch {
    fn default() -> Self {
        PhotodiodePatch {
            corner: Corner::default(),
            size_px: default_size(),
            parity_level: default_parity_level(),
            onset_frames: default_onset_frames(),
        }
    }
}

impl PhotodiodePatch {
    /// The patch's level on display frame `display_frame`, `frames_since_onset` frames after
    /// the current stimulus's onset (`None` while gray).
    pub fn level(&self, display_frame: u64, frames_since_onset: Option<u64>) -> f32 {
        match frames_since_onset {
            Some(k) if k < self.onset_frames.max(1) as u64 => 1.0,
            _ if display_frame % 2 == 1 => self.parity_level,
            _ => 0.0,
        }
    }

    /// The patch's pixel rectangle `(x0, y0, x1, y1)` (exclusive ends) in a `w` × `h` frame.
    pub fn rect(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        let s = self.size_px.min(w).min(h);
        let (x0, y0) = match self.corner {
            Corner::TopLeft => (0, 0),
            Corner::TopRight => (w - s, 0),
            Corner::BottomLeft => (0, h - s),
            Corner::BottomRight => (w - s, h - s),
        };
        (x0, y0, x0 + s, y0 + s)
    }

    pub fn contains(&self, w: u32, h: u32, x: u32, y: u32) -> bool {
        let (x0, y0, x1, y1) = self.rect(w, h);
        (x0..x1).contains(&x) && (y0..y1).contains(&y)
    }
}

/// The patch and its level for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchFrame {
    pub patch: PhotodiodePatch,
    pub level: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_are_white_and_parity_alternates() {
        let p = PhotodiodePatch::default();
        assert_eq!(p.level(10, Some(0)), 1.0);
        assert_eq!(p.level(11, Some(2)), 1.0);
        assert_eq!(p.level(12, Some(3)), 0.0);
        assert_eq!(p.level(13, Some(4)), 0.3);
        assert_eq!(p.level(13, None), 0.3);
        assert_eq!(p.level(14, None), 0.0);
    }

    #[test]
    fn corners() {
        let mut p = PhotodiodePatch {
            size_px: 10,
            ..Default::default()
        };
        assert_eq!(p.rect(100, 50), (0, 40, 10, 50));
        p.corner = Corner::TopRight;
        assert_eq!(p.rect(100, 50), (90, 0, 100, 10));
        assert!(p.contains(100, 50, 99, 9) && !p.contains(100, 50, 89, 0));
    }
}
