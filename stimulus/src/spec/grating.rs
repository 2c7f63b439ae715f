//! Gratings and Gabors.
//!
//! Luminance `L = 0.5 + 0.5 · contrast · w(2π(sf · s + φ₀/360 − tf · t))` where `s` is the
//! position along the drift direction, `s = (az − az_c) cos θ + (el − el_c) sin θ`, relative to
//! the phase reference `(az_c, el_c)`: the aperture or Gabor centre, else (0, 0). `w` is `sin`
//! or its sign (square wave, `w(0) = +1`). The pattern drifts along θ at `tf / sf` deg/s.

use super::check::{SpecError, check};
use serde::{Deserialize, Serialize};

/// Waveform of a grating's carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waveform {
    #[default]
    Sine,
    /// The sign of the sine: a 50 % duty-cycle square wave.
    Square,
}

/// A circular aperture: inside the grating, outside mean gray. The radius is an angle on the
/// sphere (great-circle distance from the centre).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aperture {
    pub center_az_deg: f64,
    pub center_el_deg: f64,
    pub radius_deg: f64,
}

/// A drifting (`tf_hz > 0`) or static (`tf_hz = 0`) grating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GratingSpec {
    /// Drift direction, degrees (0 = rightward, 90 = upward); the bars are orthogonal to it.
    pub direction_deg: f64,
    /// Spatial frequency, cycles/deg, in (0, 2].
    pub sf_cpd: f64,
    /// Temporal frequency, cycles/s, in [0, 30]; 0 is a static grating.
    pub tf_hz: f64,
    /// Michelson contrast in [0, 1].
    pub contrast: f64,
    /// Phase at the reference point at onset, degrees.
    #[serde(default)]
    pub phase_deg: f64,
    #[serde(default)]
    pub waveform: Waveform,
    /// Circular aperture; absent = full field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aperture: Option<Aperture>,
}

impl Default for GratingSpec {
    fn default() -> Self {
        GratingSpec {
            direction_deg: 0.0,
            sf_cpd: 0.04,
            tf_hz: 2.0,
            contrast: 1.0,
            phase_deg: 0.0,
            waveform: Waveform::Sine,
            aperture: None,
        }
    }
}

const KIND: &str = "grating";

pub(crate) fn check_carrier(
    kind: &'static str,
    direction_deg: f64,
    sf_cpd: f64,
    tf_hz: f64,
    contrast: f64,
    phase_deg: f64,
) -> Result<(), SpecError> {
    check(kind, "direction_deg", direction_deg, true, "a finite angle")?;
    check(
        kind,
        "sf_cpd",
        sf_cpd,
        sf_cpd > 0.0 && sf_cpd <= 2.0,
        "(0, 2] cycles/deg",
    )?;
    check(
        kind,
        "tf_hz",
        tf_hz,
        (0.0..=30.0).contains(&tf_hz),
        "[0, 30] Hz",
    )?;
    check(
        kind,
        "contrast",
        contrast,
        (0.0..=1.0).contains(&contrast),
        "[0, 1]",
    )?;
    check(kind, "phase_deg", phase_deg, true, "a finite angle")
}

pub(crate) fn check_center(kind: &'static str, az: f64, el: f64) -> Result<(), SpecError> {
    check(
        kind,
        "center_az_deg",
        az,
        (-180.0..=180.0).contains(&az),
        "[-180, 180] deg",
    )?;
    check(
        kind,
        "center_el_deg",
        el,
        (-90.0..=90.0).contains(&el),
        "[-90, 90] deg",
    )
}

impl GratingSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        check_carrier(
            KIND,
            self.direction_deg,
            self.sf_cpd,
            self.tf_hz,
            self.contrast,
            self.phase_deg,
        )?;
        if let Some(a) = &self.aperture {
            check_center(KIND, a.center_az_deg, a.center_el_deg)?;
            check(
                KIND,
                "aperture.radius_deg",
                a.radius_deg,
                a.radius_deg > 0.0 && a.radius_deg <= 180.0,
                "(0, 180] deg",
            )?;
        }
        Ok(())
    }

    /// The phase reference point: the aperture centre, else (0, 0).
    pub fn reference(&self) -> (f64, f64) {
        self.aperture
            .map_or((0.0, 0.0), |a| (a.center_az_deg, a.center_el_deg))
    }
}

/// A grating under a circular Gaussian envelope `exp(−d² / 2σ²)`, `d` the great-circle
/// distance from the centre; the phase reference is the centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaborSpec {
    pub center_az_deg: f64,
    pub center_el_deg: f64,
    /// Envelope standard deviation, degrees, in (0, 90].
    pub sigma_deg: f64,
    pub direction_deg: f64,
    pub sf_cpd: f64,
    #[serde(default)]
    pub tf_hz: f64,
    pub contrast: f64,
    #[serde(default)]
    pub phase_deg: f64,
}

impl GaborSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        const K: &str = "gabor";
        check_center(K, self.center_az_deg, self.center_el_deg)?;
        check(
            K,
            "sigma_deg",
            self.sigma_deg,
            self.sigma_deg > 0.0 && self.sigma_deg <= 90.0,
            "(0, 90] deg",
        )?;
        check_carrier(
            K,
            self.direction_deg,
            self.sf_cpd,
            self.tf_hz,
            self.contrast,
            self.phase_deg,
        )
    }
}
