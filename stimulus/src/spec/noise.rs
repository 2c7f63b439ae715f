//! Noise stimuli: sparse noise on a grid, pink (1/f^α) noise, moving pink noise.

use super::Rect;
use super::check::{SpecError, check, check_rect, invalid};
use serde::{Deserialize, Serialize};

fn default_exponent() -> f64 {
    1.0
}
fn default_texel_deg() -> f64 {
    1.0
}
fn default_size_texels() -> u32 {
    128
}

/// White and black squares on mean gray. The grid covers `grid` (a whole number of
/// `square_deg` squares each way, row 0 at the top); every `frame_s` a new pattern of
/// `squares_per_frame` distinct squares, each white or black with probability ½, drawn from
/// `seed` and the pattern's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseNoiseSpec {
    pub seed: u64,
    pub grid: Rect,
    /// Side of one square, degrees (in azimuth and elevation), in (0, 60].
    pub square_deg: f64,
    /// How long each pattern stays up, seconds, > 0.
    pub frame_s: f64,
    /// Squares lit per pattern, 1 up to the number of grid squares.
    pub squares_per_frame: u32,
    pub contrast: f64,
}

impl SparseNoiseSpec {
    /// Columns and rows of the grid (valid specs only).
    pub fn grid_shape(&self) -> (u32, u32) {
        let cols = ((self.grid.az_deg[1] - self.grid.az_deg[0]) / self.square_deg).round();
        let rows = ((self.grid.el_deg[1] - self.grid.el_deg[0]) / self.square_deg).round();
        (cols.max(0.0) as u32, rows.max(0.0) as u32)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "sparse_noise";
        check_rect(K, "grid", &self.grid)?;
        check(
            K,
            "square_deg",
            self.square_deg,
            self.square_deg > 0.0 && self.square_deg <= 60.0,
            "(0, 60] deg",
        )?;
        check(
            K,
            "frame_s",
            self.frame_s,
            self.frame_s > 0.0 && self.frame_s <= 60.0,
            "(0, 60] s",
        )?;
        check(
            K,
            "contrast",
            self.contrast,
            (0.0..=1.0).contains(&self.contrast),
            "[0, 1]",
        )?;
        for (span, field) in [
            (self.grid.az_deg[1] - self.grid.az_deg[0], "grid.az_deg"),
            (self.grid.el_deg[1] - self.grid.el_deg[0], "grid.el_deg"),
        ] {
            let n = span / self.square_deg;
            if (n - n.round()).abs() > 1e-6 || n.round() < 1.0 || n.round() > 4096.0 {
                return Err(invalid(
                    K,
                    field,
                    format!(
                        "spans {span} deg = {n:.3} squares of {} deg: must be a whole number of \
                         squares, 1 to 4096",
                        self.square_deg
                    ),
                ));
            }
        }
        let (c, r) = self.grid_shape();
        let cells = c as u64 * r as u64;
        if self.squares_per_frame == 0 || self.squares_per_frame as u64 > cells {
            return Err(invalid(
                K,
                "squares_per_frame",
                format!(
                    "{} not in [1, {cells}] (the grid's squares)",
                    self.squares_per_frame
                ),
            ));
        }
        Ok(())
    }
}

/// Pink noise: a periodic field of `size_texels`² texels of `texel_deg`, with amplitude
/// spectrum 1/f^`exponent` and random phases, scaled so its largest |value| reaches
/// `contrast`; tiled over the whole field of view, centred on (0, 0) and interpolated
/// bilinearly. `refresh_hz = 0` is static; otherwise a new independent field every
/// 1/`refresh_hz` s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinkNoiseSpec {
    pub seed: u64,
    #[serde(default = "default_exponent")]
    pub exponent: f64,
    pub contrast: f64,
    #[serde(default = "default_texel_deg")]
    pub texel_deg: f64,
    #[serde(default = "default_size_texels")]
    pub size_texels: u32,
    #[serde(default)]
    pub refresh_hz: f64,
}

/// Pink noise translating at `speed_dps` along `direction_deg`; `orientation_kappa > 0`
/// concentrates the spectrum on wave vectors along the motion (a von Mises weight
/// `exp(κ (cos 2(φ − θ) − 1))`), which makes the motion look coherent ("directional" noise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovingPinkNoiseSpec {
    pub seed: u64,
    #[serde(default = "default_exponent")]
    pub exponent: f64,
    pub contrast: f64,
    #[serde(default = "default_texel_deg")]
    pub texel_deg: f64,
    #[serde(default = "default_size_texels")]
    pub size_texels: u32,
    pub direction_deg: f64,
    pub speed_dps: f64,
    #[serde(default)]
    pub orientation_kappa: f64,
}

pub(crate) fn check_pink(
    kind: &'static str,
    exponent: f64,
    contrast: f64,
    texel_deg: f64,
    size_texels: u32,
) -> Result<(), SpecError> {
    check(
        kind,
        "exponent",
        exponent,
        (0.0..=4.0).contains(&exponent),
        "[0, 4]",
    )?;
    check(
        kind,
        "contrast",
        contrast,
        (0.0..=1.0).contains(&contrast),
        "[0, 1]",
    )?;
    check(
        kind,
        "texel_deg",
        texel_deg,
        texel_deg > 0.0 && texel_deg <= 10.0,
        "(0, 10] deg",
    )?;
    if !(8..=1024).contains(&size_texels) {
        return Err(invalid(
            kind,
            "size_texels",
            format!("{size_texels} not in [8, 1024]"),
        ));
    }
    Ok(())
}

impl PinkNoiseSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "pink_noise";
        check_pink(
            K,
            self.exponent,
            self.contrast,
            self.texel_deg,
            self.size_texels,
        )?;
        check(
            K,
            "refresh_hz",
            self.refresh_hz,
            (0.0..=120.0).contains(&self.refresh_hz),
            "[0, 120] Hz",
        )
    }
}

impl MovingPinkNoiseSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "moving_pink_noise";
        check_pink(
            K,
            self.exponent,
            self.contrast,
            self.texel_deg,
            self.size_texels,
        )?;
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
            "orientation_kappa",
            self.orientation_kappa,
            (0.0..=50.0).contains(&self.orientation_kappa),
            "[0, 50]",
        )
    }
}
