//! Pupil pixels → gaze in degrees, and running standardisation of the twin's behaviour inputs.
//!
//! # Gaze from the pupil centre
//! The eye is a sphere turning about its centre; the pupil sits on it at the radius of rotation
//! `R`. With the camera looking along the eye's primary (zero-gaze) axis and a known scale at
//! the eye (mm per pixel), a pupil displaced by `(dx, dy)` mm from its zero-gaze position has
//! turned by (Fick angles: azimuth about the vertical axis, then elevation about the carried
//! horizontal axis)
//!
//! `elevation = asin(dy / R)`, `azimuth = asin(dx / (R cos elevation))`,
//!
//! the relation video-oculography in rodents rests on (Stahl, van Alphen & De Zeeuw 2000,
//! J Neurosci Methods 99:101–110; Sakatani & Isa 2004, Neurosci Res 49:123–131, where `R` is
//! "Rp", the radius of pupil rotation). [`GazeModel::Linear`] is the small-angle form
//! `angle = d / R` (within 1.5 % of the arcsine up to 17°); it is also the simulator's camera
//! model (`rig/src/sim/eye.rs`). The default `R` = 1.682 mm is the mouse eye radius of the Allen
//! Brain Observatory's eye-tracking calibration (`allensdk.internal.brain_observatory.
//! eye_calibration.EyeCalibration`, `eye_radius = 0.1682` cm). Not modelled: corneal refraction
//! (the pupil seen is a virtual image, slightly in front of and larger than the real one), a
//! camera off the eye's axis, and camera roll.
//!
//! # Standardisation
//! The twin's modulation and perspective inputs are standardised (fnn: pupil centre x, y,
//! pupil radius, treadmill velocity). [`RunningStats`] is Welford's one-pass mean and variance
//! (Welford 1962, Technometrics 4:419), with Chan et al.'s merge for combining sessions;
//! [`BehaviourStats`] keeps one per input.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How displacement turns into angle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GazeModel {
    /// `sin(angle) = d / R` (exact for a spherical eye seen along its axis).
    #[default]
    Arcsine,
    /// `angle = d / R` in radians (small-angle approximation).
    Linear,
}

/// The eye camera's geometry at the eye.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EyeGeometry {
    /// Radius of rotation of the pupil (about the eye's radius), mm.
    pub eye_radius_mm: f64,
    /// Size of one camera pixel at the eye, mm.
    pub mm_per_px: f64,
    /// Pupil centre at zero gaze, px (see [`primary_position_px`]).
    pub centre_x_px: f64,
    pub centre_y_px: f64,
    /// Azimuth grows with image x (false flips it, e.g. for a mirrored camera).
    #[serde(default = "yes")]
    pub azimuth_along_x: bool,
    /// Elevation grows upwards, i.e. against image y (the usual camera orientation).
    #[serde(default = "yes")]
    pub elevation_up: bool,
    #[serde(default)]
    pub model: GazeModel,
}

fn yes() -> bool {
    true
}

/// Default radius of pupil rotation for a mouse, mm (Allen Brain Observatory).
pub const MOUSE_EYE_RADIUS_MM: f64 = 1.682;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum MappingError {
    #[error("eye_geometry.{field} = {value} is out of range: {allowed}")]
    Config {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
}

/// Where the eye looks, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gaze {
    pub azimuth_deg: f64,
    pub elevation_deg: f64,
    /// The displacement exceeded the eye radius and was clamped (±90°): a bad geometry or a
    /// bad pupil.
    pub clamped: bool,
}

impl EyeGeometry {
    /// A camera of `width_px` pixels across `fov_mm` at the eye, with the zero-gaze centre in
    /// the middle of the frame until calibrated.
    pub fn from_field_of_view(
        fov_mm: f64,
        width_px: usize,
        height_px: usize,
    ) -> Result<Self, MappingError> {
        let g = EyeGeometry {
            eye_radius_mm: MOUSE_EYE_RADIUS_MM,
            mm_per_px: fov_mm / width_px as f64,
            centre_x_px: 0.5 * width_px as f64,
            centre_y_px: 0.5 * height_px as f64,
            azimuth_along_x: true,
            elevation_up: true,
            model: GazeModel::Arcsine,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), MappingError> {
        let bad = |field, value: f64, allowed| {
            Err(MappingError::Config {
                field,
                value,
                allowed,
            })
        };
        if !(self.eye_radius_mm > 0.0 && self.eye_radius_mm.is_finite()) {
            return bad("eye_radius_mm", self.eye_radius_mm, "> 0");
        }
        if !(self.mm_per_px > 0.0 && self.mm_per_px.is_finite()) {
            return bad("mm_per_px", self.mm_per_px, "> 0");
        }
        if !self.centre_x_px.is_finite() {
            return bad("centre_x_px", self.centre_x_px, "finite");
        }
        if !self.centre_y_px.is_finite() {
            return bad("centre_y_px", self.centre_y_px, "finite");
        }
        Ok(())
    }

    /// Pupil displacement from the zero-gaze position, mm, signed along (azimuth, elevation).
    fn displacement_mm(&self, x_px: f64, y_px: f64) -> (f64, f64) {
        let sx = if self.azimuth_along_x { 1.0 } else { -1.0 };
        let sy = if self.elevation_up { -1.0 } else { 1.0 };
        (
            sx * (x_px - self.centre_x_px) * self.mm_per_px,
            sy * (y_px - self.centre_y_px) * self.mm_per_px,
        )
    }

    /// Gaze for a pupil centre in pixels.
    pub fn gaze_deg(&self, x_px: f64, y_px: f64) -> Gaze {
        let (dx, dy) = self.displacement_mm(x_px, y_px);
        let r = self.eye_radius_mm;
        match self.model {
            GazeModel::Linear => Gaze {
                azimuth_deg: (dx / r).to_degrees(),
                elevation_deg: (dy / r).to_degrees(),
                clamped: false,
            },
            GazeModel::Arcsine => {
                let sy = dy / r;
                let elevation = sy.clamp(-1.0, 1.0).asin();
                let horizontal_r = r * elevation.cos();
                let sx = if horizontal_r > 0.0 {
                    dx / horizontal_r
                } else {
                    0.0
                };
                Gaze {
                    azimuth_deg: sx.clamp(-1.0, 1.0).asin().to_degrees(),
                    elevation_deg: elevation.to_degrees(),
                    clamped: sy.abs() > 1.0 || sx.abs() > 1.0,
                }
            }
        }
    }

    /// The pupil centre in pixels for a gaze (the inverse of [`Self::gaze_deg`]).
    pub fn pupil_px(&self, azimuth_deg: f64, elevation_deg: f64) -> [f64; 2] {
        let r = self.eye_radius_mm;
        let (az, el) = (azimuth_deg.to_radians(), elevation_deg.to_radians());
        let (dx, dy) = match self.model {
            GazeModel::Linear => (az * r, el * r),
            GazeModel::Arcsine => (r * az.sin() * el.cos(), r * el.sin()),
        };
        let sx = if self.azimuth_along_x { 1.0 } else { -1.0 };
        let sy = if self.elevation_up { -1.0 } else { 1.0 };
        [
            self.centre_x_px + sx * dx / self.mm_per_px,
            self.centre_y_px + sy * dy / self.mm_per_px,
        ]
    }
}

/// The zero-gaze pupil position as the per-axis median of good pupil centres from a
/// calibration period (mice look mostly straight ahead; a rig with a calibrated camera angle
/// should set the centre from its own geometry instead). Reorders `centres`; `None` if empty.
pub fn primary_position_px(centres: &mut [[f64; 2]]) -> Option<[f64; 2]> {
    if centres.is_empty() {
        return None;
    }
    let mid = centres.len() / 2;
    let mut out = [0.0; 2];
    for (axis, o) in out.iter_mut().enumerate() {
        centres.select_nth_unstable_by(mid, |a, b| a[axis].total_cmp(&b[axis]));
        *o = centres[mid][axis];
    }
    Some(out)
}

/// Welford's running mean and variance. Non-finite values are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunningStats {
    n: u64,
    mean: f64,
    m2: f64,
}

/// Standard deviations below this are treated as zero by [`RunningStats::z`].
const MIN_STD: f64 = 1e-12;

impl RunningStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Combines two sets of statistics as if all values had been pushed into one.
    pub fn merge(&mut self, other: &RunningStats) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let n = self.n + other.n;
        let d = other.mean - self.mean;
        self.mean += d * other.n as f64 / n as f64;
        self.m2 += other.m2 + d * d * (self.n as f64 * other.n as f64) / n as f64;
        self.n = n;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean (NaN before any value).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean }
    }

    /// Sample variance (n − 1 denominator; NaN with fewer than 2 values).
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            f64::NAN
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }

    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// `(x − mean) / std`; 0 when the statistics cannot standardise yet (fewer than 2 values
    /// or no spread) or `x` is not finite, i.e. the input's mean.
    pub fn z(&self, x: f64) -> f64 {
        let s = self.std();
        if x.is_finite() && s.is_finite() && s > MIN_STD {
            (x - self.mean) / s
        } else {
            0.0
        }
    }
}

/// Running statistics of the twin's four behaviour inputs, in fnn's order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BehaviourStats {
    pub pupil_x_px: RunningStats,
    pub pupil_y_px: RunningStats,
    pub pupil_radius_px: RunningStats,
    pub treadmill_cm_s: RunningStats,
}

impl BehaviourStats {
    /// Adds one frame's `[pupil x, pupil y, pupil radius, treadmill velocity]`; missing values
    /// (NaN) are skipped per input.
    pub fn push(&mut self, v: [f64; 4]) {
        self.pupil_x_px.push(v[0]);
        self.pupil_y_px.push(v[1]);
        self.pupil_radius_px.push(v[2]);
        self.treadmill_cm_s.push(v[3]);
    }

    /// Standardised inputs; a missing value becomes 0 (the mean).
    pub fn standardize(&self, v: [f64; 4]) -> [f64; 4] {
        [
            self.pupil_x_px.z(v[0]),
            self.pupil_y_px.z(v[1]),
            self.pupil_radius_px.z(v[2]),
            self.treadmill_cm_s.z(v[3]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(model: GazeModel) -> EyeGeometry {
        EyeGeometry {
            model,
            ..EyeGeometry::from_field_of_view(8.0, 320, 240).expect("valid")
        }
    }

    #[test]
    fn arcsine_round_trips_and_matches_hand_values() {
        let g = geometry(GazeModel::Arcsine);
        // 0.841 mm right at R = 1.682 mm is asin(0.5) = 30 degrees.
        let x = 160.0 + 0.5 * MOUSE_EYE_RADIUS_MM / 0.025;
        let gaze = g.gaze_deg(x, 120.0);
        assert!((gaze.azimuth_deg - 30.0).abs() < 1e-9, "{gaze:?}");
        assert!(gaze.elevation_deg.abs() < 1e-12 && !gaze.clamped);
        // Up in the image (smaller y) is positive elevation.
        assert!(g.gaze_deg(160.0, 100.0).elevation_deg > 0.0);
        for (az, el) in [(10.0, -5.0), (-25.0, 20.0), (0.0, 0.0), (40.0, 30.0)] {
            let [x, y] = g.pupil_px(az, el);
            let back = g.gaze_deg(x, y);
            assert!((back.azimuth_deg - az).abs() < 1e-9 && (back.elevation_deg - el).abs() < 1e-9);
        }
    }

    #[test]
    fn linear_matches_the_simulators_camera_model() {
        // rig/src/sim/eye.rs: px_per_deg = R * px_per_mm * pi / 180.
        let g = EyeGeometry {
            eye_radius_mm: 1.7,
            ..geometry(GazeModel::Linear)
        };
        let px_per_deg = 1.7 * 40.0 * std::f64::consts::PI / 180.0;
        let gaze = g.gaze_deg(160.0 + 12.0 * px_per_deg, 120.0 - 7.0 * px_per_deg);
        assert!((gaze.azimuth_deg - 12.0).abs() < 1e-9 && (gaze.elevation_deg - 7.0).abs() < 1e-9);
        // The two models agree at small angles.
        let a = geometry(GazeModel::Arcsine).gaze_deg(165.0, 118.0);
        let l = geometry(GazeModel::Linear).gaze_deg(165.0, 118.0);
        assert!((a.azimuth_deg - l.azimuth_deg).abs() < 0.02 * l.azimuth_deg.abs());
    }

    #[test]
    fn beyond_the_eye_is_clamped_and_flipped_axes_flip() {
        let g = geometry(GazeModel::Arcsine);
        let gaze = g.gaze_deg(320.0, 120.0);
        assert!(gaze.clamped && (gaze.azimuth_deg - 90.0).abs() < 1e-9);
        let flipped = EyeGeometry {
            azimuth_along_x: false,
            elevation_up: false,
            ..g.clone()
        };
        let a = g.gaze_deg(170.0, 110.0);
        let b = flipped.gaze_deg(170.0, 110.0);
        assert_eq!(
            (a.azimuth_deg, a.elevation_deg),
            (-b.azimuth_deg, -b.elevation_deg)
        );
    }

    #[test]
    fn bad_geometry_names_the_field() {
        let g = EyeGeometry {
            mm_per_px: 0.0,
            ..geometry(GazeModel::Arcsine)
        };
        assert!(g.validate().unwrap_err().to_string().contains("mm_per_px"));
        assert!(EyeGeometry::from_field_of_view(-1.0, 320, 240).is_err());
    }

    #[test]
    fn primary_position_is_the_median() {
        let mut c = vec![
            [1.0, 9.0],
            [3.0, 7.0],
            [2.0, 8.0],
            [100.0, -50.0],
            [2.5, 8.5],
        ];
        assert_eq!(primary_position_px(&mut c), Some([2.5, 8.0]));
        assert_eq!(primary_position_px(&mut []), None);
    }

    #[test]
    fn welford_matches_two_pass_and_merges() {
        let xs: Vec<f64> = (0..1000)
            .map(|i| 1e6 + ((i * 37) % 101) as f64 * 0.1)
            .collect();
        let mut s = RunningStats::new();
        xs.iter().for_each(|&x| s.push(x));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!((s.mean() - mean).abs() < 1e-9 && (s.variance() - var).abs() < 1e-9 * var);
        let (mut a, mut b) = (RunningStats::new(), RunningStats::new());
        xs[..300].iter().for_each(|&x| a.push(x));
        xs[300..].iter().for_each(|&x| b.push(x));
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert!((a.mean() - mean).abs() < 1e-9 && (a.variance() - var).abs() < 1e-9 * var);
        assert!((s.z(mean + s.std()) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn standardisation_handles_missing_and_constant_inputs() {
        let mut st = BehaviourStats::default();
        assert_eq!(st.standardize([1.0, 2.0, 3.0, 4.0]), [0.0; 4]);
        for k in 0..10 {
            let k = k as f64;
            st.push([k, 5.0, if k > 4.0 { f64::NAN } else { k }, -k]);
        }
        assert_eq!(st.pupil_radius_px.count(), 5);
        let z = st.standardize([4.5, 5.0, f64::NAN, -4.5]);
        assert!(z[0].abs() < 1e-12 && z[1] == 0.0 && z[2] == 0.0 && z[3].abs() < 1e-12);
        assert!(st.standardize([10.0, 0.0, 0.0, 0.0])[0] > 1.0);
        assert!(RunningStats::new().mean().is_nan());
    }
}
