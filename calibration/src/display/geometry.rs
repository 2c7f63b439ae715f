//! Geometry: from what can be measured at the rig to the monitor pose of the renderer's
//! spherical correction.
//!
//! Measured: the straight-line distance from the eye to the screen centre and the centre's
//! direction (azimuth, elevation: a laser or protractor from the eye), and the monitor's
//! orientation: the azimuth and elevation of its normal (the direction the screen faces away
//! from the eye; a level and a protractor on its back). Derived (the renderer's
//! `MonitorGeometry` fields): the perpendicular distance `d = D (ĉ · n̂)` and where the
//! perpendicular meets the screen relative to its centre, `(d n̂ − D ĉ)` along the screen's
//! right and up axes.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GeometryFitError {
    #[error("{field} = {value} is out of range: {allowed}")]
    OutOfRange {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error(
        "the screen does not face the eye: the centre's direction is {angle_deg:.1} deg from the \
         screen normal (must be < 90); check the signs of the measured angles"
    )]
    FacingAway { angle_deg: f64 },
}

/// Rig measurements, centimetres and degrees (azimuth right positive, elevation up positive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorMeasurements {
    pub width_px: u32,
    pub height_px: u32,
    /// Visible area of the screen, cm.
    pub width_cm: f64,
    pub height_cm: f64,
    /// Eye to the screen centre, straight line, cm.
    pub center_distance_cm: f64,
    /// Direction of the screen centre from the eye.
    pub center_azimuth_deg: f64,
    pub center_elevation_deg: f64,
    /// Direction of the screen's normal (pointing away from the eye).
    pub normal_azimuth_deg: f64,
    pub normal_elevation_deg: f64,
}

/// The renderer's monitor geometry (same fields as `twinloop_stimulus::MonitorGeometry`, so
/// it serialises into the `[monitor]` table the renderer reads).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorPose {
    pub width_px: u32,
    pub height_px: u32,
    pub width_cm: f64,
    pub height_cm: f64,
    pub distance_cm: f64,
    pub eye_x_cm: f64,
    pub eye_y_cm: f64,
    pub azimuth_deg: f64,
    pub tilt_deg: f64,
}

fn unit(az_deg: f64, el_deg: f64) -> [f64; 3] {
    let (sa, ca) = az_deg.to_radians().sin_cos();
    let (se, ce) = el_deg.to_radians().sin_cos();
    [ce * ca, ce * sa, se]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The screen's right and up axes for a normal at (azimuth α, elevation τ): the monitor frame
/// pitched by τ then yawed by α, as the renderer builds it.
fn screen_axes(az_deg: f64, el_deg: f64) -> ([f64; 3], [f64; 3]) {
    let (st, ct) = el_deg.to_radians().sin_cos();
    let (sa, ca) = az_deg.to_radians().sin_cos();
    let right = [-sa, ca, 0.0];
    let up = [-st * ca, -st * sa, ct];
    (right, up)
}

impl MonitorMeasurements {
    pub fn fit(&self) -> Result<MonitorPose, GeometryFitError> {
        let c = |field, value: f64, ok: bool, allowed| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(GeometryFitError::OutOfRange {
                    field,
                    value,
                    allowed,
                })
            }
        };
        c("width_px", self.width_px as f64, self.width_px > 0, "> 0")?;
        c(
            "height_px",
            self.height_px as f64,
            self.height_px > 0,
            "> 0",
        )?;
        c("width_cm", self.width_cm, self.width_cm > 0.0, "> 0 cm")?;
        c("height_cm", self.height_cm, self.height_cm > 0.0, "> 0 cm")?;
        c(
            "center_distance_cm",
            self.center_distance_cm,
            self.center_distance_cm > 0.0,
            "> 0 cm",
        )?;
        c(
            "center_elevation_deg",
            self.center_elevation_deg,
            self.center_elevation_deg.abs() < 90.0,
            "(-90, 90)",
        )?;
        c(
            "normal_elevation_deg",
            self.normal_elevation_deg,
            self.normal_elevation_deg.abs() < 90.0,
            "(-90, 90)",
        )?;
        c(
            "center_azimuth_deg",
            self.center_azimuth_deg,
            self.center_azimuth_deg.abs() <= 180.0,
            "[-180, 180]",
        )?;
        c(
            "normal_azimuth_deg",
            self.normal_azimuth_deg,
            self.normal_azimuth_deg.abs() <= 180.0,
            "[-180, 180]",
        )?;
        let ch = unit(self.center_azimuth_deg, self.center_elevation_deg);
        let n = unit(self.normal_azimuth_deg, self.normal_elevation_deg);
        let cos = dot(ch, n);
        if cos <= 1e-6 {
            return Err(GeometryFitError::FacingAway {
                angle_deg: cos.clamp(-1.0, 1.0).acos().to_degrees(),
            });
        }
        let big_d = self.center_distance_cm;
        let d = big_d * cos;
        let foot_minus_centre = [0, 1, 2].map(|k| d * n[k] - big_d * ch[k]);
        let (right, up) = screen_axes(self.normal_azimuth_deg, self.normal_elevation_deg);
        Ok(MonitorPose {
            width_px: self.width_px,
            height_px: self.height_px,
            width_cm: self.width_cm,
            height_cm: self.height_cm,
            distance_cm: d,
            eye_x_cm: dot(foot_minus_centre, right),
            eye_y_cm: dot(foot_minus_centre, up),
            azimuth_deg: self.normal_azimuth_deg,
            tilt_deg: self.normal_elevation_deg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meas() -> MonitorMeasurements {
        MonitorMeasurements {
            width_px: 1920,
            height_px: 1080,
            width_cm: 52.0,
            height_cm: 29.0,
            center_distance_cm: 15.0,
            center_azimuth_deg: 30.0,
            center_elevation_deg: 0.0,
            normal_azimuth_deg: 30.0,
            normal_elevation_deg: 0.0,
        }
    }

    #[test]
    fn centred_monitor_has_no_offset() {
        let p = meas().fit().unwrap();
        assert!((p.distance_cm - 15.0).abs() < 1e-12);
        assert!(p.eye_x_cm.abs() < 1e-12 && p.eye_y_cm.abs() < 1e-12);
        assert_eq!((p.azimuth_deg, p.tilt_deg), (30.0, 0.0));
    }

    #[test]
    fn off_centre_eye_round_trips() {
        // Build a pose, compute what one would measure, fit it back.
        let (d, ex, ey, az, tilt) = (12.0, 4.0, -3.0, 25.0, 10.0);
        let n = unit(az, tilt);
        let (right, up) = screen_axes(az, tilt);
        // Screen centre = foot − (ex·right + ey·up).
        let centre = [0, 1, 2].map(|k| d * n[k] - ex * right[k] - ey * up[k]);
        let dist = dot(centre, centre).sqrt();
        let c_az = centre[1].atan2(centre[0]).to_degrees();
        let c_el = (centre[2] / dist).asin().to_degrees();
        let p = MonitorMeasurements {
            center_distance_cm: dist,
            center_azimuth_deg: c_az,
            center_elevation_deg: c_el,
            normal_azimuth_deg: az,
            normal_elevation_deg: tilt,
            ..meas()
        }
        .fit()
        .unwrap();
        assert!((p.distance_cm - d).abs() < 1e-9, "{}", p.distance_cm);
        assert!(
            (p.eye_x_cm - ex).abs() < 1e-9 && (p.eye_y_cm - ey).abs() < 1e-9,
            "{p:?}"
        );
    }

    #[test]
    fn a_screen_facing_away_is_refused() {
        let m = MonitorMeasurements {
            normal_azimuth_deg: -90.0,
            center_azimuth_deg: 60.0,
            ..meas()
        };
        let e = m.fit().unwrap_err().to_string();
        assert!(e.contains("does not face the eye"), "{e}");
        let m = MonitorMeasurements {
            center_distance_cm: -1.0,
            ..meas()
        };
        assert!(
            m.fit()
                .unwrap_err()
                .to_string()
                .contains("center_distance_cm")
        );
    }
}
