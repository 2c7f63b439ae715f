//! Spherical correction: where each pixel of a flat monitor close to the eye lies on the
//! sphere of directions, so stimuli are specified in azimuth/elevation degrees.
//!
//! # The mapping (Marshel et al. 2011, as used by the Allen Brain Observatory)
//! Eye at the origin; world axes forward `f`, right `r`, up `u`. The monitor is a plane at
//! perpendicular distance `d` from the eye; the perpendicular's foot lies `(eye_x, eye_y)` cm
//! from the screen centre (right, up), and the perpendicular points at azimuth `α` and
//! elevation (tilt) `τ`. A pixel at screen position `(x, y)` cm from the foot (right, up) has,
//! in the monitor's frame, the direction `(d, x, y)`; rotating by `τ` about the right axis and
//! then by `α` about the up axis gives the world direction `(f, r, u)`, and
//!
//! `azimuth = atan2(r, f)`, `elevation = atan2(u, √(f² + r²))`.
//!
//! With `α = τ = 0` this is Marshel's `azimuth = atan(x / d)`,
//! `elevation = asin(y / √(d² + x² + y²))`: lines of constant elevation curve on the screen,
//! and a grating defined in (azimuth, elevation) keeps its spatial frequency in cycles/deg
//! across the monitor.

use crate::spec::FieldOfView;
use crate::view::ViewGeometry;
use serde::{Deserialize, Serialize};

/// A flat monitor in front of the eye: its resolution, physical size and pose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorGeometry {
    pub width_px: u32,
    pub height_px: u32,
    /// Visible area, cm.
    pub width_cm: f64,
    pub height_cm: f64,
    /// Eye to the screen plane along its perpendicular, cm.
    pub distance_cm: f64,
    /// Where the perpendicular from the eye meets the screen, from the screen centre (cm,
    /// right positive).
    #[serde(default)]
    pub eye_x_cm: f64,
    /// Likewise, up positive.
    #[serde(default)]
    pub eye_y_cm: f64,
    /// Azimuth of the perpendicular from the eye (deg, right positive).
    #[serde(default)]
    pub azimuth_deg: f64,
    /// Elevation of the perpendicular from the eye (deg, up positive): the screen's tilt.
    #[serde(default)]
    pub tilt_deg: f64,
}

impl Default for MonitorGeometry {
    /// A 52 × 29 cm, 1920 × 1080 monitor 15 cm from the eye, perpendicular at its centre.
    fn default() -> Self {
        MonitorGeometry {
            width_px: 1920,
            height_px: 1080,
            width_cm: 52.0,
            height_cm: 29.25,
            distance_cm: 15.0,
            eye_x_cm: 0.0,
            eye_y_cm: 0.0,
            azimuth_deg: 0.0,
            tilt_deg: 0.0,
        }
    }
}

/// Why a geometry was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("monitor.{field} = {value} is out of range: {allowed}")]
pub struct GeometryError {
    pub field: &'static str,
    pub value: f64,
    pub allowed: &'static str,
}

impl MonitorGeometry {
    pub fn validate(&self) -> Result<(), GeometryError> {
        let c = |field, value: f64, ok: bool, allowed| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(GeometryError {
                    field,
                    value,
                    allowed,
                })
            }
        };
        let px = |v: u32| (1..=16384).contains(&v);
        c(
            "width_px",
            self.width_px as f64,
            px(self.width_px),
            "[1, 16384]",
        )?;
        c(
            "height_px",
            self.height_px as f64,
            px(self.height_px),
            "[1, 16384]",
        )?;
        c("width_cm", self.width_cm, self.width_cm > 0.0, "> 0 cm")?;
        c("height_cm", self.height_cm, self.height_cm > 0.0, "> 0 cm")?;
        c(
            "distance_cm",
            self.distance_cm,
            self.distance_cm > 0.0,
            "> 0 cm",
        )?;
        c("eye_x_cm", self.eye_x_cm, true, "finite")?;
        c("eye_y_cm", self.eye_y_cm, true, "finite")?;
        c(
            "azimuth_deg",
            self.azimuth_deg,
            self.azimuth_deg.abs() <= 180.0,
            "[-180, 180] deg",
        )?;
        c(
            "tilt_deg",
            self.tilt_deg,
            self.tilt_deg.abs() < 90.0,
            "(-90, 90) deg",
        )
    }

    /// The same monitor sampled at another resolution (e.g. the twin's input).
    pub fn with_resolution(&self, width_px: u32, height_px: u32) -> MonitorGeometry {
        MonitorGeometry {
            width_px,
            height_px,
            ..*self
        }
    }

    /// The rotation taking monitor-frame directions (d, x, y) to world (f, r, u), as columns.
    pub fn rotation(&self) -> [[f64; 3]; 3] {
        let (st, ct) = self.tilt_deg.to_radians().sin_cos();
        let (sa, ca) = self.azimuth_deg.to_radians().sin_cos();
        // Pitch by τ about the right axis: (d, x, y) -> (d cτ − y sτ, x, d sτ + y cτ);
        // then yaw by α about up: (f, r, u) -> (f cα − r sα, f sα + r cα, u).
        let apply = |d: f64, x: f64, y: f64| {
            let (f1, r1, u1) = (d * ct - y * st, x, d * st + y * ct);
            [f1 * ca - r1 * sa, f1 * sa + r1 * ca, u1]
        };
        [
            apply(1.0, 0.0, 0.0),
            apply(0.0, 1.0, 0.0),
            apply(0.0, 0.0, 1.0),
        ]
    }

    /// Screen position (cm from the perpendicular's foot, right/up) of a pixel centre.
    pub fn pixel_cm(&self, row: f64, col: f64) -> (f64, f64) {
        let x = (col + 0.5) / self.width_px as f64 * self.width_cm
            - 0.5 * self.width_cm
            - self.eye_x_cm;
        let y = 0.5 * self.height_cm
            - (row + 0.5) / self.height_px as f64 * self.height_cm
            - self.eye_y_cm;
        (x, y)
    }

    /// Azimuth and elevation (deg) of the screen point `(x, y)` cm from the foot.
    pub fn cm_to_deg(&self, x: f64, y: f64) -> (f64, f64) {
        let m = self.rotation();
        let d = self.distance_cm;
        let w = [0, 1, 2].map(|k| m[0][k] * d + m[1][k] * x + m[2][k] * y);
        let az = w[1].atan2(w[0]).to_degrees();
        let el = w[2].atan2(w[0].hypot(w[1])).to_degrees();
        (az, el)
    }

    /// Azimuth and elevation (deg) of the centre of pixel (`row`, `col`).
    pub fn pixel_deg(&self, row: usize, col: usize) -> (f64, f64) {
        let (x, y) = self.pixel_cm(row as f64, col as f64);
        self.cm_to_deg(x, y)
    }

    /// The inverse: where on the screen plane (cm from the foot) the direction (az, el) lands;
    /// `None` when it points away from the screen plane.
    pub fn deg_to_cm(&self, az_deg: f64, el_deg: f64) -> Option<(f64, f64)> {
        let (sa, ca) = az_deg.to_radians().sin_cos();
        let (se, ce) = el_deg.to_radians().sin_cos();
        let w = [ce * ca, ce * sa, se];
        // The rotation is orthonormal: its transpose takes world to monitor frame.
        let m = self.rotation();
        let dot = |c: [f64; 3]| c[0] * w[0] + c[1] * w[1] + c[2] * w[2];
        let (dm, xm, ym) = (dot(m[0]), dot(m[1]), dot(m[2]));
        if dm <= 1e-12 {
            return None;
        }
        let s = self.distance_cm / dm;
        Some((xm * s, ym * s))
    }

    /// The inverse in pixels: fractional (row, col) of the direction, `None` when off the
    /// screen plane's front side (it may still be outside the visible area).
    pub fn deg_to_pixel(&self, az_deg: f64, el_deg: f64) -> Option<(f64, f64)> {
        let (x, y) = self.deg_to_cm(az_deg, el_deg)?;
        let col =
            (x + self.eye_x_cm + 0.5 * self.width_cm) / self.width_cm * self.width_px as f64 - 0.5;
        let row = (0.5 * self.height_cm - self.eye_y_cm - y) / self.height_cm
            * self.height_px as f64
            - 0.5;
        Some((row, col))
    }
}

/// How a frame's pixels map to directions: the flat linear view (the placeholder's and a
/// convenient twin view) or a spherically corrected monitor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Projection {
    Linear(ViewGeometry),
    Monitor(MonitorGeometry),
}

impl From<ViewGeometry> for Projection {
    fn from(v: ViewGeometry) -> Self {
        Projection::Linear(v)
    }
}

impl From<MonitorGeometry> for Projection {
    fn from(m: MonitorGeometry) -> Self {
        Projection::Monitor(m)
    }
}

impl Projection {
    pub fn width(&self) -> usize {
        match self {
            Projection::Linear(v) => v.width,
            Projection::Monitor(m) => m.width_px as usize,
        }
    }

    pub fn height(&self) -> usize {
        match self {
            Projection::Linear(v) => v.height,
            Projection::Monitor(m) => m.height_px as usize,
        }
    }

    pub fn pixels(&self) -> usize {
        self.width() * self.height()
    }

    /// Azimuth and elevation (deg) of the centre of pixel (`row`, `col`).
    pub fn pixel_deg(&self, row: usize, col: usize) -> (f64, f64) {
        match self {
            Projection::Linear(v) => v.pixel_deg(row, col),
            Projection::Monitor(m) => m.pixel_deg(row, col),
        }
    }

    /// Azimuth and elevation (deg) at a fractional pixel position; integer values are pixel
    /// centres (so `(row, col) = (r as f64, c as f64)` agrees with [`pixel_deg`](Self::pixel_deg)).
    pub fn point_deg(&self, row: f64, col: f64) -> (f64, f64) {
        match self {
            Projection::Linear(v) => {
                let (a0, a1) = v.azimuth_deg;
                let (e0, e1) = v.elevation_deg;
                (
                    a0 + (col + 0.5) / v.width as f64 * (a1 - a0),
                    e1 - (row + 0.5) / v.height as f64 * (e1 - e0),
                )
            }
            Projection::Monitor(m) => {
                let (x, y) = m.pixel_cm(row, col);
                m.cm_to_deg(x, y)
            }
        }
    }

    /// The same view at another resolution.
    pub fn with_resolution(&self, width: usize, height: usize) -> Projection {
        match self {
            Projection::Linear(v) => Projection::Linear(ViewGeometry {
                width,
                height,
                ..*v
            }),
            Projection::Monitor(m) => {
                Projection::Monitor(m.with_resolution(width as u32, height as u32))
            }
        }
    }

    /// The azimuth/elevation bounds of the frame (scanning its border pixels, where the
    /// extremes of both mappings lie).
    pub fn field_of_view(&self) -> FieldOfView {
        let (w, h) = (self.width(), self.height());
        let mut fov = FieldOfView {
            az_deg: [f64::INFINITY, f64::NEG_INFINITY],
            el_deg: [f64::INFINITY, f64::NEG_INFINITY],
        };
        let mut add = |r: usize, c: usize| {
            let (az, el) = self.pixel_deg(r, c);
            fov.az_deg = [fov.az_deg[0].min(az), fov.az_deg[1].max(az)];
            fov.el_deg = [fov.el_deg[0].min(el), fov.el_deg[1].max(el)];
        };
        for c in 0..w {
            add(0, c);
            add(h.saturating_sub(1), c);
        }
        for r in 0..h {
            add(r, 0);
            add(r, w.saturating_sub(1));
        }
        fov
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-9;

    fn mon() -> MonitorGeometry {
        MonitorGeometry {
            width_px: 1000,
            height_px: 600,
            width_cm: 60.0,
            height_cm: 36.0,
            distance_cm: 10.0,
            ..Default::default()
        }
    }

    fn close(a: (f64, f64), b: (f64, f64), tol: f64) -> bool {
        (a.0 - b.0).abs() < tol && (a.1 - b.1).abs() < tol
    }

    #[test]
    fn known_points_match_marshels_formulas() {
        let m = mon();
        // The perpendicular's foot looks straight ahead.
        assert!(close(m.cm_to_deg(0.0, 0.0), (0.0, 0.0), EPS));
        // x = d: 45 deg to the right on the horizon.
        assert!(close(m.cm_to_deg(10.0, 0.0), (45.0, 0.0), EPS));
        // y = d: 45 deg up straight ahead.
        assert!(close(m.cm_to_deg(0.0, 10.0), (0.0, 45.0), EPS));
        // x = y = d: azimuth atan(1) = 45, elevation asin(1/√3) = 35.264... deg.
        let e = (1.0f64 / 3.0f64.sqrt()).asin().to_degrees();
        assert!(close(m.cm_to_deg(10.0, 10.0), (45.0, e), EPS));
        // Marshel's closed form at arbitrary points.
        for (x, y) in [(-23.0, 7.5), (12.0, -17.0), (29.0, 17.9)] {
            let d: f64 = 10.0;
            let az = (x / d).atan().to_degrees();
            let el = (y / (d * d + x * x + y * y).sqrt()).asin().to_degrees();
            assert!(close(m.cm_to_deg(x, y), (az, el), EPS), "({x}, {y})");
        }
    }

    #[test]
    fn pixel_centres_and_eye_offset() {
        let m = mon();
        // Pixel (299.5, 499.5) would be the centre; pixel (299, 499)'s centre is half a pixel
        // (0.03 cm) up-left of it.
        let (x, y) = m.pixel_cm(299.0, 499.0);
        assert!(close((x, y), (-0.03, 0.03), EPS));
        // Shift the perpendicular's foot 5 cm right of the centre: the centre pixel moves left.
        let m2 = MonitorGeometry { eye_x_cm: 5.0, ..m };
        let (az, _) = m2.cm_to_deg(-5.0, 0.0);
        assert!((az - (-0.5f64).atan().to_degrees()).abs() < EPS);
    }

    #[test]
    fn azimuth_and_tilt_rotate_the_perpendicular() {
        let m = MonitorGeometry {
            azimuth_deg: 30.0,
            tilt_deg: 10.0,
            ..mon()
        };
        assert!(close(m.cm_to_deg(0.0, 0.0), (30.0, 10.0), EPS));
        // With azimuth only, the Marshel azimuth shifts by α and elevation is unchanged.
        let m = MonitorGeometry {
            azimuth_deg: 30.0,
            ..mon()
        };
        let (az, el) = m.cm_to_deg(10.0, 10.0);
        assert!((az - 75.0).abs() < EPS);
        assert!((el - (1.0f64 / 3.0f64.sqrt()).asin().to_degrees()).abs() < EPS);
    }

    #[test]
    fn inverse_round_trips() {
        let m = MonitorGeometry {
            azimuth_deg: -20.0,
            tilt_deg: 15.0,
            eye_x_cm: 3.0,
            eye_y_cm: -2.0,
            ..mon()
        };
        for (r, c) in [(0, 0), (599, 999), (123, 456), (300, 10)] {
            let (az, el) = m.pixel_deg(r, c);
            let (rr, cc) = m.deg_to_pixel(az, el).unwrap();
            assert!((rr - r as f64).abs() < 1e-6 && (cc - c as f64).abs() < 1e-6);
        }
        // Directly behind the eye never lands on the screen.
        assert!(m.deg_to_cm(160.0, 0.0).is_none());
    }

    #[test]
    fn field_of_view_of_a_centred_monitor() {
        let fov = Projection::from(mon()).field_of_view();
        let half = (30.0f64 / 10.0).atan().to_degrees();
        assert!((fov.az_deg[1] - half).abs() < 0.2 && (fov.az_deg[0] + half).abs() < 0.2);
        // The top edge's centre has the highest elevation: atan(18 / 10).
        assert!((fov.el_deg[1] - (18.0f64 / 10.0).atan().to_degrees()).abs() < 0.2);
    }

    #[test]
    fn bad_geometry_names_the_field() {
        let m = MonitorGeometry {
            distance_cm: 0.0,
            ..mon()
        };
        assert!(
            m.validate()
                .unwrap_err()
                .to_string()
                .contains("distance_cm")
        );
        assert!(mon().validate().is_ok());
    }
}
