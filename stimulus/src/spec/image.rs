//! Images and movies: clips from files and in-memory images from the twin.
//!
//! A picture of W × H pixels is stretched over `area`: pixel (row 0, col 0) is the top-left
//! corner (smallest azimuth, largest elevation), sampled bilinearly between pixel centres and
//! clamped at the edges; outside `area` the screen is mean gray. Pixel values are luminance
//! levels (0 = black, 255 = white) before gamma linearisation.

use super::check::{SpecError, check, check_rect, invalid};
use crate::content::clip;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A rectangle of the visual field: azimuth and elevation bounds in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    /// `[left, right]`, degrees.
    pub az_deg: [f64; 2],
    /// `[bottom, top]`, degrees.
    pub el_deg: [f64; 2],
}

impl Rect {
    pub fn area_deg2(&self) -> f64 {
        (self.az_deg[1] - self.az_deg[0]) * (self.el_deg[1] - self.el_deg[0])
    }
}

/// A movie clip: `.npy` u8 [T, H, W] (C order) or a folder of PNG frames (8-bit gray, RGB or
/// RGBA; colour is reduced to Rec. 601 luma), played at `frame_rate_hz`; after its last frame
/// it loops or holds the last frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovieSpec {
    pub path: PathBuf,
    pub frame_rate_hz: f64,
    pub area: Rect,
    #[serde(default)]
    pub looped: bool,
}

impl MovieSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "movie";
        check(
            K,
            "frame_rate_hz",
            self.frame_rate_hz,
            self.frame_rate_hz > 0.0 && self.frame_rate_hz <= 240.0,
            "(0, 240] Hz",
        )?;
        check_rect(K, "area", &self.area)?;
        clip::probe_movie(&self.path).map_err(|e| invalid(K, "path", e))?;
        Ok(())
    }
}

/// A static image from a file: `.npy` u8 [H, W] or [1, H, W], or a PNG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub path: PathBuf,
    pub area: Rect,
}

impl ImageSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "image";
        check_rect(K, "area", &self.area)?;
        clip::probe_image(&self.path).map_err(|e| invalid(K, "path", e))?;
        Ok(())
    }
}

/// An in-memory u8 [height, width] image, row-major, row 0 at the top (e.g. an image the twin
/// produced, such as a most exciting input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinImageSpec {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    pub area: Rect,
}

impl TwinImageSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "twin_image";
        check_rect(K, "area", &self.area)?;
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(invalid(
                K,
                "width",
                format!(
                    "{} x {} (width x height): each must be 1 to 8192",
                    self.width, self.height
                ),
            ));
        }
        let want = self.width as usize * self.height as usize;
        if self.pixels.len() != want {
            return Err(invalid(
                K,
                "pixels",
                format!(
                    "{} values for a [{}, {}] image: need height x width = {want}",
                    self.pixels.len(),
                    self.height,
                    self.width
                ),
            ));
        }
        Ok(())
    }
}
