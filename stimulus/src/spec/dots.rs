//! Dot stimuli: flashing dots and random-dot kinematograms.
//!
//! A dot is a disc on the sphere: every point within `dot_radius_deg` (great-circle distance)
//! of its centre. Dots live in `area` (azimuth × elevation rectangle).

use super::Rect;
use super::check::{SpecError, check, check_rect, invalid};
use serde::{Deserialize, Serialize};

/// Dot luminance: white (`+contrast`), black (`−contrast`) or either with probability ½.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    #[default]
    White,
    Black,
    Mixed,
}

/// `n_dots` dots at uniformly random positions in `area`, shown for `on_s`, then `off_s` of
/// gray, repeated with fresh positions; drawn from `seed` and the flash's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashingDotsSpec {
    pub seed: u64,
    pub area: Rect,
    pub n_dots: u32,
    pub dot_radius_deg: f64,
    pub on_s: f64,
    #[serde(default)]
    pub off_s: f64,
    #[serde(default)]
    pub polarity: Polarity,
    pub contrast: f64,
}

impl FlashingDotsSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "flashing_dots";
        check_rect(K, "area", &self.area)?;
        check_dot(K, self.dot_radius_deg, self.contrast)?;
        if self.n_dots == 0 || self.n_dots > MAX_DOTS {
            return Err(invalid(
                K,
                "n_dots",
                format!("{} not in [1, {MAX_DOTS}]", self.n_dots),
            ));
        }
        check(
            K,
            "on_s",
            self.on_s,
            self.on_s > 0.0 && self.on_s <= 60.0,
            "(0, 60] s",
        )?;
        check(
            K,
            "off_s",
            self.off_s,
            (0.0..=60.0).contains(&self.off_s),
            "[0, 60] s",
        )
    }
}

/// The most dots one frame may draw (the GPU loops over them per pixel).
pub const MAX_DOTS: u32 = 4096;

fn check_dot(kind: &'static str, radius: f64, contrast: f64) -> Result<(), SpecError> {
    check(
        kind,
        "dot_radius_deg",
        radius,
        radius > 0.0 && radius <= 30.0,
        "(0, 30] deg",
    )?;
    check(
        kind,
        "contrast",
        contrast,
        (0.0..=1.0).contains(&contrast),
        "[0, 1]",
    )
}

fn default_update_hz() -> f64 {
    60.0
}

/// A random-dot kinematogram. `round(density_per_deg2 · area)` dots; positions update at
/// `update_hz`. Each dot lives `lifetime_frames` updates and is then reborn at a random
/// position (initial ages are staggered); at birth it becomes a signal dot with probability
/// `coherence` (moving along `direction_deg`) or a noise dot moving in its own random
/// direction, both at `speed_dps`. Dots leaving `area` wrap around to the opposite side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomDotsSpec {
    pub seed: u64,
    pub area: Rect,
    pub density_per_deg2: f64,
    pub dot_radius_deg: f64,
    pub direction_deg: f64,
    pub speed_dps: f64,
    /// Fraction of signal dots, [0, 1].
    pub coherence: f64,
    /// Updates a dot lives before being reborn; 0 = forever.
    #[serde(default)]
    pub lifetime_frames: u32,
    #[serde(default = "default_update_hz")]
    pub update_hz: f64,
    #[serde(default)]
    pub polarity: Polarity,
    pub contrast: f64,
}

impl RandomDotsSpec {
    /// How many dots the area holds at this density.
    pub fn n_dots(&self) -> u32 {
        (self.density_per_deg2 * self.area.area_deg2())
            .round()
            .max(0.0) as u32
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "random_dots";
        check_rect(K, "area", &self.area)?;
        check_dot(K, self.dot_radius_deg, self.contrast)?;
        check(
            K,
            "density_per_deg2",
            self.density_per_deg2,
            self.density_per_deg2 > 0.0,
            "> 0 dots/deg²",
        )?;
        let n = self.n_dots();
        if n == 0 || n > MAX_DOTS {
            return Err(invalid(
                K,
                "density_per_deg2",
                format!(
                    "{} dots/deg² over {:.0} deg² gives {n} dots; allowed 1 to {MAX_DOTS}",
                    self.density_per_deg2,
                    self.area.area_deg2()
                ),
            ));
        }
        check(
            K,
            "direction_deg",
            self.direction_deg,
            true,
            "a finite angle",
        )?;
        check(
            K,
            "speed_dps",
            self.speed_dps,
            (0.0..=500.0).contains(&self.speed_dps),
            "[0, 500] deg/s",
        )?;
        check(
            K,
            "coherence",
            self.coherence,
            (0.0..=1.0).contains(&self.coherence),
            "[0, 1]",
        )?;
        check(
            K,
            "update_hz",
            self.update_hz,
            self.update_hz > 0.0 && self.update_hz <= 240.0,
            "(0, 240] Hz",
        )
    }
}
