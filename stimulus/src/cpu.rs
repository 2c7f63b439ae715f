//! The CPU reference renderer: each stimulus written straight from its formula.

use crate::{StimulusSpec, ViewGeometry};
use std::f64::consts::TAU;

/// Mean gray as a u8 level (0.5 of full scale, rounded).
pub const MEAN_GRAY: u8 = 128;

/// Luminance in [0, 1] of `spec` at `(az, el)` degrees, `t_s` seconds after onset.
pub fn luminance(spec: &StimulusSpec, az: f64, el: f64, t_s: f64) -> f64 {
    match *spec {
        StimulusSpec::Gray => 0.5,
        StimulusSpec::Grating {
            direction_deg,
            sf_cpd,
            tf_hz,
            contrast,
            phase_deg,
        } => {
            let (s, c) = direction_deg.to_radians().sin_cos();
            // Position along the drift direction; the pattern moves that way at tf/sf deg/s.
            let along = az * c + el * s;
            let phase = TAU * (sf_cpd * along - tf_hz * t_s) + phase_deg.to_radians();
            0.5 + 0.5 * contrast * phase.sin()
        }
    }
}

/// Render `spec` at `t_s` after onset into `out` (row-major u8, `geom.pixels()` long).
pub fn render(spec: &StimulusSpec, t_s: f64, geom: &ViewGeometry, out: &mut [u8]) {
    for (i, px) in out.iter_mut().enumerate().take(geom.pixels()) {
        let (az, el) = geom.pixel_deg(i / geom.width, i % geom.width);
        let l = luminance(spec, az, el, t_s);
        *px = (l * 255.0).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grating(direction_deg: f64, tf_hz: f64) -> StimulusSpec {
        StimulusSpec::Grating {
            direction_deg,
            sf_cpd: 0.04,
            tf_hz,
            contrast: 1.0,
            phase_deg: 0.0,
        }
    }

    #[test]
    fn gray_is_mean_gray_everywhere() {
        let g = ViewGeometry::default();
        let mut out = vec![0u8; g.pixels()];
        render(&StimulusSpec::Gray, 0.3, &g, &mut out);
        assert!(out.iter().all(|&p| p == MEAN_GRAY));
    }

    #[test]
    fn grating_period_matches_spatial_frequency() {
        // sf 0.04 cpd -> a 25 deg period; with a 1 deg/pixel view, 25 pixels per cycle.
        let g = ViewGeometry {
            width: 100,
            height: 1,
            azimuth_deg: (0.0, 100.0),
            elevation_deg: (-0.5, 0.5),
        };
        let mut out = vec![0u8; 100];
        render(&grating(0.0, 0.0), 0.0, &g, &mut out);
        for x in 0..75 {
            assert!((out[x] as i32 - out[x + 25] as i32).abs() <= 1, "x={x}");
        }
        // Crest (6.5 deg, phase ~0.26 cycle) and trough (18.5 deg, ~0.74 cycle) half a period apart.
        assert!(out[6] > 250 && out[18] < 5, "{} {}", out[6], out[18]);
    }

    #[test]
    fn drifting_grating_moves_along_its_direction() {
        // After 1/4 cycle of drift (t = 0.25/tf), the pattern sits a quarter period further on.
        let spec = grating(0.0, 2.0);
        let (az, el) = (10.0, 0.0);
        let later = luminance(&spec, az + 25.0 / 4.0, el, 0.125);
        let now = luminance(&spec, az, el, 0.0);
        assert!((later - now).abs() < 1e-9);
    }

    #[test]
    fn invalid_parameters_name_the_field() {
        let bad = StimulusSpec::Grating {
            direction_deg: 0.0,
            sf_cpd: -1.0,
            tf_hz: 1.0,
            contrast: 0.5,
            phase_deg: 0.0,
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("sf_cpd"), "{e}");
    }

    #[test]
    fn specs_round_trip_through_toml() {
        let s = grating(45.0, 1.5);
        let text = toml::to_string(&s).unwrap();
        assert!(text.contains("kind = \"grating\""));
        assert_eq!(toml::from_str::<StimulusSpec>(&text).unwrap(), s);
    }
}
