//! The eye camera: an infrared side view of the eye, rendered from the behaviour at each frame.
//!
//! The scene is fur around an elliptical lid opening; inside it a textured iris that moves with
//! the eye, a dark pupil (an ellipse foreshortened by the eye's rotation, radius following
//! arousal), and a bright corneal reflection of the infrared illuminator. During a blink the
//! opening closes and hides the pupil. Edges are anti-aliased, so the pupil's centre is
//! recoverable to subpixel precision.
//!
//! Camera model (linear, exact for rendering, stored in the truth as `eye_camera.json`):
//! `x_px = centre_x_px + px_per_deg_x * azimuth_deg`, `y_px = centre_y_px + px_per_deg_y *
//! elevation_deg` (`px_per_deg_y` is negative: looking up moves the pupil up in the image).

use super::behaviour::BehaviourSample;
use super::config::EyeConfig;
use super::field::smooth_field;
use super::random::normal_from_bits32;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const PUPIL_LEVEL: f32 = 22.0;
const REFLECTION_LEVEL: f32 = 250.0;
/// Iris radius around the pupil centre, mm.
const IRIS_RADIUS_MM: f64 = 1.3;
/// Corneal reflection radius, mm.
const REFLECTION_RADIUS_MM: f64 = 0.07;

/// Where the pupil lands on the camera sensor.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EyeCameraModel {
    /// Pupil centre at zero gaze, px.
    pub centre_x_px: f64,
    /// Pupil centre at zero gaze, px.
    pub centre_y_px: f64,
    /// Horizontal image shift per degree of azimuth, px/deg.
    pub px_per_deg_x: f64,
    /// Vertical image shift per degree of elevation, px/deg (negative: up is up).
    pub px_per_deg_y: f64,
    /// Image scale at the eye, px/mm.
    pub px_per_mm: f64,
}

impl EyeCameraModel {
    /// Pupil centre (x, y) in px for gaze (azimuth, elevation) in deg.
    pub fn project(&self, azimuth_deg: f64, elevation_deg: f64) -> (f64, f64) {
        (
            self.centre_x_px + self.px_per_deg_x * azimuth_deg,
            self.centre_y_px + self.px_per_deg_y * elevation_deg,
        )
    }
}

/// What the eye camera showed in one frame: (centre x, centre y, radius) px and blink.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct PupilTruth {
    pub centre_x_px: f64,
    pub centre_y_px: f64,
    pub radius_px: f64,
    pub blinking: bool,
}

pub(crate) struct EyeCamera {
    cfg: EyeConfig,
    width: usize,
    height: usize,
    pub model: EyeCameraModel,
    /// Fur, with the illuminator's fall-off folded in.
    skin: Vec<f32>,
    /// Iris texture, indexed relative to the pupil's offset so it moves with the eye.
    iris: Vec<f32>,
    vignette: Vec<f32>,
    rng: ChaCha8Rng,
}

/// Anti-aliased coverage of the ellipse centred at (cx, cy) with semi-axes (a, b) at (x, y):
/// 1 inside, 0 outside, linear across one pixel at the edge.
#[inline]
fn ellipse_cover(x: f64, y: f64, cx: f64, cy: f64, a: f64, b: f64) -> f32 {
    if a < 0.5 || b < 0.5 {
        return 0.0;
    }
    let (dx, dy) = (x - cx, y - cy);
    let f = (dx / a).powi(2) + (dy / b).powi(2) - 1.0;
    let grad = 2.0 * ((dx / (a * a)).powi(2) + (dy / (b * b)).powi(2)).sqrt();
    // Signed distance to the edge (positive inside), first order.
    let sd = if grad > 1e-9 { -f / grad } else { a.min(b) };
    (0.5 + sd).clamp(0.0, 1.0) as f32
}

impl EyeCamera {
    pub(crate) fn new(
        cfg: &EyeConfig,
        width: usize,
        height: usize,
        texture_rng: &mut impl Rng,
        noise_rng: ChaCha8Rng,
    ) -> EyeCamera {
        let px_per_mm = width as f64 / cfg.camera_fov_mm;
        // A rotation by theta moves the pupil by R sin(theta); linearised at 0.
        let px_per_deg = cfg.eyeball_radius_mm * px_per_mm * std::f64::consts::PI / 180.0;
        let model = EyeCameraModel {
            centre_x_px: width as f64 * 0.5,
            centre_y_px: height as f64 * 0.5,
            px_per_deg_x: px_per_deg,
            px_per_deg_y: -px_per_deg,
            px_per_mm,
        };
        let fur_fine = smooth_field(width, height, 0.08 * px_per_mm, texture_rng);
        let fur_broad = smooth_field(width, height, 0.8 * px_per_mm, texture_rng);
        let iris_fine = smooth_field(width, height, 0.06 * px_per_mm, texture_rng);
        let iris_broad = smooth_field(width, height, 0.3 * px_per_mm, texture_rng);
        let skin = (0..width * height)
            .map(|p| 110.0 + 8.0 * fur_fine[p] + 5.0 * fur_broad[p])
            .collect();
        let iris = (0..width * height)
            .map(|p| 130.0 + 10.0 * iris_fine[p] + 8.0 * iris_broad[p])
            .collect();
        let (cx, cy) = (model.centre_x_px, model.centre_y_px);
        let r_max2 = cx * cx + cy * cy;
        let vignette = (0..width * height)
            .map(|p| {
                let (x, y) = ((p % width) as f64 + 0.5, (p / width) as f64 + 0.5);
                (1.0 - 0.12 * ((x - cx).powi(2) + (y - cy).powi(2)) / r_max2) as f32
            })
            .collect();
        EyeCamera {
            cfg: cfg.clone(),
            width,
            height,
            model,
            skin,
            iris,
            vignette,
            rng: noise_rng,
        }
    }

    /// Renders the eye in state `b` into `out` (height x width, row-major).
    pub(crate) fn render(&mut self, b: &BehaviourSample, out: &mut [u8]) -> PupilTruth {
        let (w, h) = (self.width, self.height);
        let m = self.model;
        let (px, py) = m.project(b.gaze_azimuth_deg, b.gaze_elevation_deg);
        let radius = b.pupil_radius_mm * m.px_per_mm;
        let (rx, ry) = (
            radius * b.gaze_azimuth_deg.to_radians().cos(),
            radius * b.gaze_elevation_deg.to_radians().cos(),
        );
        let (ox, oy) = (m.centre_x_px, m.centre_y_px);
        let open_a = self.cfg.opening_mm[0] * m.px_per_mm;
        let open_b = self.cfg.opening_mm[1] * m.px_per_mm * b.lid_opening.clamp(0.0, 1.0);
        // The reflection sits up and to the side of the cornea's apex and follows it partly.
        let (crx, cry) = (
            ox + 0.3 * (px - ox) - 0.15 * open_a,
            oy + 0.3 * (py - oy) - 0.2 * open_a,
        );
        let cr_r = REFLECTION_RADIUS_MM * m.px_per_mm + 0.5;
        let iris_r = IRIS_RADIUS_MM * m.px_per_mm;
        let (shift_x, shift_y) = ((px - ox).round() as i64, (py - oy).round() as i64);
        let (y_lo, y_hi) = ((oy - open_b - 2.0).floor(), (oy + open_b + 2.0).ceil());
        let (x_lo, x_hi) = ((ox - open_a - 2.0).floor(), (ox + open_a + 2.0).ceil());
        let noise = self.cfg.noise_dn as f32;
        for (y, row) in out.chunks_mut(w).enumerate().take(h) {
            let yc = y as f64 + 0.5;
            let in_rows = yc >= y_lo && yc <= y_hi;
            for (x, o) in row.iter_mut().enumerate() {
                let p = y * w + x;
                let mut v = self.skin[p];
                let xc = x as f64 + 0.5;
                if in_rows && xc >= x_lo && xc <= x_hi {
                    let open = ellipse_cover(xc, yc, ox, oy, open_a, open_b);
                    if open > 0.0 {
                        let ix = (x as i64 - shift_x).clamp(0, w as i64 - 1) as usize;
                        let iy = (y as i64 - shift_y).clamp(0, h as i64 - 1) as usize;
                        let iris_cover = ellipse_cover(xc, yc, px, py, iris_r, iris_r);
                        let mut eye = 150.0 + iris_cover * (self.iris[iy * w + ix] - 150.0);
                        let pupil = ellipse_cover(xc, yc, px, py, rx, ry);
                        eye += pupil * (PUPIL_LEVEL - eye);
                        let cr = ellipse_cover(xc, yc, crx, cry, cr_r, cr_r);
                        eye += cr * (REFLECTION_LEVEL - eye);
                        v += open * (eye - v);
                    }
                }
                let bits = self.rng.next_u32();
                let val = v * self.vignette[p] + noise * normal_from_bits32(bits);
                *o = (val + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
        PupilTruth {
            centre_x_px: px,
            centre_y_px: py,
            radius_px: radius,
            blinking: b.blinking,
        }
    }
}
