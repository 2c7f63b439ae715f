//! Each cell's visual tuning, state coupling and brightness, drawn once from V1-like
//! distributions.
//!
//! Receptive-field centres follow a linear retinotopic map of the cell's position in the field
//! of view (azimuth along +x, elevation along -y, as in a dorsal view of left V1 rotated so that
//! the map is upright) plus scatter; orientation is salt-and-pepper, as in rodent V1.

use super::config::{SimConfig, SimGeometry};
use super::random::{log_uniform, normal, uniform};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a cell combines its two quadrature filters.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellType {
    /// Half-rectified output of one linear filter: phase-sensitive.
    Simple,
    /// Energy (amplitude) of a quadrature pair: phase-invariant.
    Complex,
}

/// The ground-truth parameters of one cell beyond its anatomy.
///
/// Angles: directions are measured on the screen from +azimuth towards +elevation (0 = moving
/// right, 90 = moving up). A grating `cos(2 pi f (az cos d + el sin d) - 2 pi tf t)` drifts in
/// direction `d`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellParams {
    /// Receptive-field centre at zero gaze, azimuth, deg.
    pub rf_azimuth_deg: f64,
    /// Receptive-field centre at zero gaze, elevation, deg.
    pub rf_elevation_deg: f64,
    /// S.d. of the Gaussian envelope, deg.
    pub rf_sigma_deg: f64,
    /// Drift direction that drives the cell most, deg in [0, 360).
    pub preferred_direction_deg: f64,
    /// `preferred_direction_deg` modulo 180: the axis of motion (grating convention), deg.
    pub preferred_orientation_deg: f64,
    /// Preferred spatial frequency (of the Gabor carrier), cycles/deg.
    pub spatial_freq_cpd: f64,
    /// Preferred temporal frequency (peak of the band-pass filter), Hz.
    pub temporal_freq_hz: f64,
    /// Spatial phase of the Gabor carrier, deg.
    pub phase_deg: f64,
    /// Direction selectivity of the linear stage, in [0, 1]: the null direction drives
    /// (1 - ds) / (1 + ds) as much as the preferred one.
    pub direction_selectivity: f64,
    /// Simple or complex.
    pub cell_type: CellType,
    /// Sustained fraction of the temporal filter.
    pub sustained_fraction: f64,
    /// Spontaneous rate, Hz.
    pub baseline_rate_hz: f64,
    /// Rate added at saturating drive, Hz.
    pub max_rate_hz: f64,
    /// Semi-saturation drive of the Naka-Rushton nonlinearity.
    pub c50: f64,
    /// Exponent of the Naka-Rushton nonlinearity.
    pub nr_exponent: f64,
    /// Gain coupling to running: gain 1 + k tanh(speed / 10 cm/s) + ...
    pub run_coupling: f64,
    /// Gain coupling to pupil dilation z in [-1, 1].
    pub pupil_coupling: f64,
    /// Gain coupling to the shared latent fluctuation (`latent.npy`).
    pub latent_coupling: f64,
    /// Resting brightness F0 of a footprint pixel of weight 1, photons per frame.
    pub f0_photons: f64,
    /// Peak dF/F of a single spike.
    pub dff_per_spike: f64,
    /// Surround, normalisation and conjunction tuning of a `v1_rich` cell; absent (and not
    /// serialised) for the `gabor` model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<super::v1::V1Tuning>,
}

/// Draws the parameters of a cell whose soma sits at (`y_px`, `x_px`).
pub(crate) fn draw(
    cfg: &SimConfig,
    geom: &SimGeometry,
    y_px: f64,
    x_px: f64,
    rng: &mut impl Rng,
) -> CellParams {
    let n = &cfg.cells;
    // Retinotopy: linear in position, plus scatter, kept inside the view.
    let fx = x_px / geom.imaging_width as f64 - 0.5;
    let fy = y_px / geom.imaging_height as f64 - 0.5;
    let (a0, a1) = geom.view_azimuth_deg;
    let (e0, e1) = geom.view_elevation_deg;
    let az =
        n.retinotopy_centre_deg[0] + fx * n.retinotopy_span_deg[0] + n.rf_scatter_deg * normal(rng);
    let el =
        n.retinotopy_centre_deg[1] - fy * n.retinotopy_span_deg[1] + n.rf_scatter_deg * normal(rng);
    let rf_sigma_deg = uniform(rng, n.rf_sigma_deg[0], n.rf_sigma_deg[1]);
    let direction = uniform(rng, 0.0, 360.0);
    let u: f64 = rng.random();
    let cell_type = if rng.random::<f64>() < n.complex_fraction {
        CellType::Complex
    } else {
        CellType::Simple
    };
    let run_coupling = n.run_coupling[0] + n.run_coupling[1] * normal(rng);
    let pupil_coupling = n.pupil_coupling[0] + n.pupil_coupling[1] * normal(rng);
    let latent_coupling = n.latent_coupling[0] + n.latent_coupling[1] * normal(rng);
    CellParams {
        rf_azimuth_deg: az.clamp(a0.min(a1), a0.max(a1)),
        rf_elevation_deg: el.clamp(e0.min(e1), e0.max(e1)),
        rf_sigma_deg,
        preferred_direction_deg: direction,
        preferred_orientation_deg: direction % 180.0,
        spatial_freq_cpd: log_uniform(rng, n.spatial_freq_cpd[0], n.spatial_freq_cpd[1]),
        temporal_freq_hz: log_uniform(rng, n.temporal_freq_hz[0], n.temporal_freq_hz[1]),
        phase_deg: uniform(rng, 0.0, 360.0),
        direction_selectivity: n.direction_selectivity_max * u * u,
        cell_type,
        sustained_fraction: n.sustained_fraction,
        baseline_rate_hz: n.baseline_rate_hz * (0.6 * normal(rng)).exp(),
        max_rate_hz: n.max_rate_hz * (0.4 * normal(rng)).exp(),
        c50: log_uniform(rng, n.c50[0], n.c50[1]),
        nr_exponent: uniform(rng, n.nr_exponent[0], n.nr_exponent[1]),
        run_coupling,
        pupil_coupling,
        latent_coupling,
        f0_photons: cfg.calcium.f0_photons * (0.5 * normal(rng)).exp(),
        dff_per_spike: uniform(
            rng,
            cfg.calcium.dff_per_spike[0],
            cfg.calcium.dff_per_spike[1],
        ),
        v1: None,
    }
}
