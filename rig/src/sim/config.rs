//! What the simulated rig is made of: the mouse's settings ([`SimConfig`], from `sim.toml`) and
//! the rig's sensor geometry ([`SimGeometry`], from the rig config).
//!
//! Every default is a plausible value for GCaMP6s imaging of mouse V1 layer 2/3 at 30 Hz. Ranges
//! given as `[low, high]` are sampled per cell (log-uniformly where the field says so).

use super::SimError;
use serde::{Deserialize, Serialize};

/// Settings of the simulated mouse and microscope. Sections mirror the modules that use them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random stream; each component draws from its own ChaCha8 stream of it.
    pub seed: u64,
    /// Number of neurons in the imaged plane.
    pub neurons: usize,
    /// Fixed integration step of the neural dynamics, in seconds.
    pub neural_dt_s: f64,
    /// Fixed integration step of behaviour (running, pupil, gaze, blinks) and brain motion, s.
    pub behaviour_dt_s: f64,
    /// Somata, retinotopy, receptive fields and firing.
    pub cells: CellConfig,
    /// Indicator kinetics and brightness.
    pub calcium: CalciumConfig,
    /// The two-photon microscope: optics, detector, neuropil, vessels, motion, bleaching.
    pub microscope: MicroscopeConfig,
    /// Locomotion, arousal, eye movements and blinks.
    pub behaviour: BehaviourConfig,
    /// The eye camera's view of the eye.
    pub eye: EyeConfig,
    /// The treadmill's wheel and encoder.
    pub treadmill: TreadmillConfig,
    /// Each device's own clock and the shared sync ticks (off by default: all on the rig clock).
    pub clocks: super::clocks::SimClocksConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            neurons: 1000,
            neural_dt_s: 1.0 / 60.0,
            behaviour_dt_s: 0.002,
            cells: CellConfig::default(),
            calcium: CalciumConfig::default(),
            microscope: MicroscopeConfig::default(),
            behaviour: BehaviourConfig::default(),
            eye: EyeConfig::default(),
            treadmill: TreadmillConfig::default(),
            clocks: super::clocks::SimClocksConfig::default(),
        }
    }
}

/// Somata, retinotopy, receptive fields and firing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellConfig {
    /// Soma radius range, imaging pixels.
    pub soma_radius_px: [f64; 2],
    /// Receptive-field centre (azimuth, elevation) of a cell at the centre of the field of view, deg.
    pub retinotopy_centre_deg: [f64; 2],
    /// Visual angle spanned by the field of view (azimuth along x, elevation along -y), deg.
    pub retinotopy_span_deg: [f64; 2],
    /// Scatter of receptive-field centres around the retinotopic map (s.d.), deg.
    pub rf_scatter_deg: f64,
    /// Gaussian envelope s.d. range of receptive fields, deg.
    pub rf_sigma_deg: [f64; 2],
    /// Preferred spatial frequency range (log-uniform), cycles/deg.
    pub spatial_freq_cpd: [f64; 2],
    /// Preferred temporal frequency range (log-uniform), Hz.
    pub temporal_freq_hz: [f64; 2],
    /// Fraction of the temporal filter's response that is sustained (passes a static stimulus).
    pub sustained_fraction: f64,
    /// Fraction of complex cells (quadrature energy); the rest are simple (half-rectified linear).
    pub complex_fraction: f64,
    /// Largest direction-selectivity index of the linear stage; drawn as max * u^2.
    pub direction_selectivity_max: f64,
    /// Median spontaneous rate (log-normal, s.d. of log 0.6), Hz.
    pub baseline_rate_hz: f64,
    /// Median rate added by an optimal full-contrast stimulus (log-normal, s.d. of log 0.4), Hz.
    pub max_rate_hz: f64,
    /// Semi-saturation of the Naka-Rushton output nonlinearity, range (log-uniform), drive units
    /// (1 = an optimal grating at full contrast).
    pub c50: [f64; 2],
    /// Exponent range of the Naka-Rushton output nonlinearity.
    pub nr_exponent: [f64; 2],
    /// Mean and s.d. of the per-cell gain coupling to running (gain 1 + k tanh(speed / 10 cm/s)).
    pub run_coupling: [f64; 2],
    /// Mean and s.d. of the per-cell gain coupling to pupil size (gain 1 + k z, z the pupil's
    /// relative dilation in [-1, 1]).
    pub pupil_coupling: [f64; 2],
    /// Mean and s.d. of the per-cell coupling to a shared, unobserved slow fluctuation of
    /// excitability (a unit-variance Ornstein-Uhlenbeck process): gain ... + k latent. It gives
    /// the population the shared variability that running and pupil do not explain.
    pub latent_coupling: [f64; 2],
    /// Time constant of the shared latent fluctuation, s.
    pub latent_tau_s: f64,
    /// Receptive fields move with the eye: the view is shifted by the gaze before filtering.
    pub gaze_shifts_view: bool,
    /// The cell model: `"gabor"` (default) or `"v1_rich"` (see [`super::v1`]). Left out of the
    /// serialised config while default, so a `gabor` mouse's truth files stay byte for byte
    /// what they were before the field existed.
    #[serde(skip_serializing_if = "super::v1::CellModel::is_gabor")]
    pub model: super::v1::CellModel,
    /// Ranges of the `v1_rich` model (read only when `model = "v1_rich"`; left out of the
    /// serialised config while default, like `model`).
    #[serde(skip_serializing_if = "super::v1::V1RichConfig::is_default")]
    pub v1_rich: super::v1::V1RichConfig,
}

impl Default for CellConfig {
    fn default() -> Self {
        CellConfig {
            soma_radius_px: [5.0, 7.0],
            retinotopy_centre_deg: [0.0, 0.0],
            retinotopy_span_deg: [30.0, 30.0],
            rf_scatter_deg: 3.0,
            rf_sigma_deg: [5.0, 10.0],
            spatial_freq_cpd: [0.02, 0.08],
            temporal_freq_hz: [1.0, 4.0],
            sustained_fraction: 0.2,
            complex_fraction: 0.6,
            direction_selectivity_max: 0.8,
            baseline_rate_hz: 1.0,
            max_rate_hz: 15.0,
            c50: [0.1, 0.4],
            nr_exponent: [1.5, 3.0],
            run_coupling: [0.4, 0.4],
            pupil_coupling: [0.2, 0.2],
            latent_coupling: [0.15, 0.1],
            latent_tau_s: 2.0,
            gaze_shifts_view: true,
            model: super::v1::CellModel::Gabor,
            v1_rich: super::v1::V1RichConfig::default(),
        }
    }
}

/// Calcium indicator kinetics (GCaMP6s-like by default) and per-cell brightness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalciumConfig {
    /// Decay time constant of the indicator, s.
    pub decay_s: f64,
    /// Rise time constant of the indicator, s.
    pub rise_s: f64,
    /// Range of the peak dF/F of one spike (uniform per cell).
    pub dff_per_spike: [f64; 2],
    /// Median resting brightness F0 of a soma pixel, photons per frame (log-normal, s.d. of log 0.5).
    pub f0_photons: f64,
    /// Keep the noiseless calcium of every cell per imaging frame for `calcium.npy`.
    pub record_calcium: bool,
}

impl Default for CalciumConfig {
    fn default() -> Self {
        CalciumConfig {
            decay_s: 1.2,
            rise_s: 0.1,
            dff_per_spike: [0.15, 0.4],
            f0_photons: 6.0,
            record_calcium: true,
        }
    }
}

/// The synthetic two-photon microscope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MicroscopeConfig {
    /// Detector gain, ADU per detected photon.
    pub gain_adu_per_photon: f64,
    /// Gaussian read noise, ADU (s.d.).
    pub read_noise_adu: f64,
    /// Dark offset added to every pixel, ADU.
    pub offset_adu: f64,
    /// Mean neuropil brightness, photons per pixel per frame.
    pub neuropil_photons: f64,
    /// Relative s.d. of the neuropil's slow fluctuation (two smooth spatial modes).
    pub neuropil_fluctuation: f64,
    /// How much the neuropil follows mean population calcium (dF/F of neuropil per unit mean dF/F).
    pub neuropil_coupling: f64,
    /// Number of blood vessels crossing the field of view.
    pub vessel_count: usize,
    /// Baseline loss from photobleaching, percent per minute.
    pub bleach_percent_per_min: f64,
    /// Slow laser-power drift, percent (s.d.).
    pub drift_percent: f64,
    /// Brain motion never exceeds this many pixels in y or x; 0 turns motion off.
    pub motion_max_px: f64,
    /// S.d. of the smooth random walk of brain motion, px.
    pub motion_sd_px: f64,
    /// Time constant of the smooth random walk, s.
    pub motion_tau_s: f64,
    /// Rate of sudden small jumps, Hz.
    pub motion_jump_rate_hz: f64,
    /// S.d. of a jump, px.
    pub motion_jump_px: f64,
}

impl Default for MicroscopeConfig {
    fn default() -> Self {
        MicroscopeConfig {
            gain_adu_per_photon: 60.0,
            read_noise_adu: 20.0,
            offset_adu: 400.0,
            neuropil_photons: 2.0,
            neuropil_fluctuation: 0.05,
            neuropil_coupling: 0.5,
            vessel_count: 4,
            bleach_percent_per_min: 2.0,
            drift_percent: 1.0,
            motion_max_px: 4.0,
            motion_sd_px: 1.0,
            motion_tau_s: 1.5,
            motion_jump_rate_hz: 0.05,
            motion_jump_px: 1.5,
        }
    }
}

/// Locomotion, arousal, gaze and blinks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourConfig {
    /// Rate of starting to run while still, Hz (mean still bout = 1 / rate).
    pub run_start_rate_hz: f64,
    /// Rate of stopping while running, Hz.
    pub run_stop_rate_hz: f64,
    /// Median speed of a running bout (log-normal per bout, s.d. of log 0.4), cm/s.
    pub run_speed_cm_s: f64,
    /// Time constant with which speed follows its target, s.
    pub run_speed_tau_s: f64,
    /// Pupil radius range from fully constricted to fully dilated, mm.
    pub pupil_radius_mm: [f64; 2],
    /// Time constant of arousal (drives pupil size), s.
    pub arousal_tau_s: f64,
    /// Rate of saccades while still, Hz (doubled while running).
    pub saccade_rate_hz: f64,
    /// S.d. of a saccade's horizontal amplitude, deg (vertical is 0.4 of it).
    pub saccade_amplitude_deg: f64,
    /// Gaze never leaves this many degrees from straight ahead.
    pub gaze_max_deg: f64,
    /// Rate of blinks, Hz.
    pub blink_rate_hz: f64,
    /// Duration of a blink (lid closed and open again), s.
    pub blink_duration_s: f64,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            run_start_rate_hz: 0.05,
            run_stop_rate_hz: 0.1,
            run_speed_cm_s: 15.0,
            run_speed_tau_s: 0.5,
            pupil_radius_mm: [0.25, 0.8],
            arousal_tau_s: 4.0,
            saccade_rate_hz: 0.3,
            saccade_amplitude_deg: 5.0,
            gaze_max_deg: 20.0,
            blink_rate_hz: 0.05,
            blink_duration_s: 0.25,
        }
    }
}

/// The eye camera (infrared, side view of the eye).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EyeConfig {
    /// Width of the scene the camera sees, mm.
    pub camera_fov_mm: f64,
    /// Radius of the eyeball (sets how far the pupil moves per degree of rotation), mm.
    pub eyeball_radius_mm: f64,
    /// Half-width and half-height of the lid opening, mm.
    pub opening_mm: [f64; 2],
    /// Gaussian pixel noise, grey levels (s.d.).
    pub noise_dn: f64,
}

impl Default for EyeConfig {
    fn default() -> Self {
        EyeConfig {
            camera_fov_mm: 8.0,
            eyeball_radius_mm: 1.7,
            opening_mm: [1.6, 1.25],
            noise_dn: 3.0,
        }
    }
}

/// The treadmill's wheel and rotary encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreadmillConfig {
    /// Wheel diameter, cm.
    pub wheel_diameter_cm: f64,
    /// Encoder counts per wheel revolution (after quadrature decoding).
    pub counts_per_rev: u32,
}

impl Default for TreadmillConfig {
    fn default() -> Self {
        TreadmillConfig {
            wheel_diameter_cm: 15.0,
            counts_per_rev: 1024,
        }
    }
}

/// The rig's sensors as the simulator must produce them (from the rig config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimGeometry {
    /// Two-photon frame width, px.
    pub imaging_width: usize,
    /// Two-photon frame height, px.
    pub imaging_height: usize,
    /// Two-photon frame rate, Hz.
    pub imaging_rate_hz: f64,
    /// Eye-camera frame width, px.
    pub eye_width: usize,
    /// Eye-camera frame height, px.
    pub eye_height: usize,
    /// Eye-camera frame rate, Hz.
    pub eye_rate_hz: f64,
    /// Treadmill sample rate, Hz.
    pub treadmill_rate_hz: f64,
    /// Width of the stimulus as the mouse sees it (u8 grayscale), px.
    pub view_width: usize,
    /// Height of the stimulus as the mouse sees it, px.
    pub view_height: usize,
    /// Azimuth spanned by the view, left edge to right edge, deg.
    pub view_azimuth_deg: (f64, f64),
    /// Elevation spanned by the view, bottom edge to top edge, deg (row 0 is the top).
    pub view_elevation_deg: (f64, f64),
}

impl Default for SimGeometry {
    fn default() -> Self {
        SimGeometry {
            imaging_width: 512,
            imaging_height: 512,
            imaging_rate_hz: 30.0,
            eye_width: 320,
            eye_height: 240,
            eye_rate_hz: 60.0,
            treadmill_rate_hz: 100.0,
            view_width: 64,
            view_height: 36,
            view_azimuth_deg: (-60.0, 60.0),
            view_elevation_deg: (-35.0, 35.0),
        }
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> SimError {
    SimError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn positive(field: &'static str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(bad(field, format!("must be a positive number, got {v}")))
    }
}

fn non_negative(field: &'static str, v: f64) -> Result<(), SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(bad(field, format!("must be >= 0, got {v}")))
    }
}

fn fraction(field: &'static str, v: f64) -> Result<(), SimError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(field, format!("must be in [0, 1], got {v}")))
    }
}

fn range(field: &'static str, r: [f64; 2]) -> Result<(), SimError> {
    if r[0].is_finite() && r[1].is_finite() && r[0] > 0.0 && r[0] <= r[1] {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("must be [low, high] with 0 < low <= high, got {r:?}"),
        ))
    }
}

impl SimConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.neurons == 0 || self.neurons > 200_000 {
            return Err(bad("neurons", "must be in 1..=200000"));
        }
        positive("neural_dt_s", self.neural_dt_s)?;
        if self.neural_dt_s > 0.05 {
            return Err(bad(
                "neural_dt_s",
                "must be <= 0.05 s to resolve 4 Hz tuning",
            ));
        }
        positive("behaviour_dt_s", self.behaviour_dt_s)?;
        if self.behaviour_dt_s > 0.01 {
            return Err(bad(
                "behaviour_dt_s",
                "must be <= 0.01 s to resolve saccades",
            ));
        }
        let n = &self.cells;
        range("cells.soma_radius_px", n.soma_radius_px)?;
        range("cells.retinotopy_span_deg", n.retinotopy_span_deg)?;
        non_negative("cells.rf_scatter_deg", n.rf_scatter_deg)?;
        range("cells.rf_sigma_deg", n.rf_sigma_deg)?;
        range("cells.spatial_freq_cpd", n.spatial_freq_cpd)?;
        range("cells.temporal_freq_hz", n.temporal_freq_hz)?;
        if n.temporal_freq_hz[1] >= 0.25 / self.neural_dt_s {
            return Err(bad(
                "cells.temporal_freq_hz",
                "must stay below a quarter of the neural substep rate",
            ));
        }
        fraction("cells.sustained_fraction", n.sustained_fraction)?;
        fraction("cells.complex_fraction", n.complex_fraction)?;
        fraction(
            "cells.direction_selectivity_max",
            n.direction_selectivity_max,
        )?;
        positive("cells.baseline_rate_hz", n.baseline_rate_hz)?;
        positive("cells.max_rate_hz", n.max_rate_hz)?;
        range("cells.c50", n.c50)?;
        range("cells.nr_exponent", n.nr_exponent)?;
        non_negative("cells.run_coupling[1]", n.run_coupling[1])?;
        non_negative("cells.pupil_coupling[1]", n.pupil_coupling[1])?;
        non_negative("cells.latent_coupling[1]", n.latent_coupling[1])?;
        positive("cells.latent_tau_s", n.latent_tau_s)?;
        n.v1_rich.validate()?;
        let c = &self.calcium;
        positive("calcium.decay_s", c.decay_s)?;
        positive("calcium.rise_s", c.rise_s)?;
        if c.rise_s >= c.decay_s {
            return Err(bad(
                "calcium.rise_s",
                "must be shorter than calcium.decay_s",
            ));
        }
        range("calcium.dff_per_spike", c.dff_per_spike)?;
        positive("calcium.f0_photons", c.f0_photons)?;
        let m = &self.microscope;
        positive("microscope.gain_adu_per_photon", m.gain_adu_per_photon)?;
        non_negative("microscope.read_noise_adu", m.read_noise_adu)?;
        non_negative("microscope.offset_adu", m.offset_adu)?;
        non_negative("microscope.neuropil_photons", m.neuropil_photons)?;
        non_negative("microscope.neuropil_fluctuation", m.neuropil_fluctuation)?;
        non_negative("microscope.neuropil_coupling", m.neuropil_coupling)?;
        if m.vessel_count > 50 {
            return Err(bad("microscope.vessel_count", "must be <= 50"));
        }
        non_negative(
            "microscope.bleach_percent_per_min",
            m.bleach_percent_per_min,
        )?;
        non_negative("microscope.drift_percent", m.drift_percent)?;
        non_negative("microscope.motion_max_px", m.motion_max_px)?;
        non_negative("microscope.motion_sd_px", m.motion_sd_px)?;
        positive("microscope.motion_tau_s", m.motion_tau_s)?;
        non_negative("microscope.motion_jump_rate_hz", m.motion_jump_rate_hz)?;
        non_negative("microscope.motion_jump_px", m.motion_jump_px)?;
        let b = &self.behaviour;
        non_negative("behaviour.run_start_rate_hz", b.run_start_rate_hz)?;
        non_negative("behaviour.run_stop_rate_hz", b.run_stop_rate_hz)?;
        positive("behaviour.run_speed_cm_s", b.run_speed_cm_s)?;
        positive("behaviour.run_speed_tau_s", b.run_speed_tau_s)?;
        range("behaviour.pupil_radius_mm", b.pupil_radius_mm)?;
        positive("behaviour.arousal_tau_s", b.arousal_tau_s)?;
        non_negative("behaviour.saccade_rate_hz", b.saccade_rate_hz)?;
        non_negative("behaviour.saccade_amplitude_deg", b.saccade_amplitude_deg)?;
        positive("behaviour.gaze_max_deg", b.gaze_max_deg)?;
        if b.gaze_max_deg >= 60.0 {
            return Err(bad("behaviour.gaze_max_deg", "must be < 60"));
        }
        non_negative("behaviour.blink_rate_hz", b.blink_rate_hz)?;
        positive("behaviour.blink_duration_s", b.blink_duration_s)?;
        let e = &self.eye;
        positive("eye.camera_fov_mm", e.camera_fov_mm)?;
        positive("eye.eyeball_radius_mm", e.eyeball_radius_mm)?;
        positive("eye.opening_mm[0]", e.opening_mm[0])?;
        positive("eye.opening_mm[1]", e.opening_mm[1])?;
        non_negative("eye.noise_dn", e.noise_dn)?;
        positive(
            "treadmill.wheel_diameter_cm",
            self.treadmill.wheel_diameter_cm,
        )?;
        if self.treadmill.counts_per_rev == 0 {
            return Err(bad("treadmill.counts_per_rev", "must be > 0"));
        }
        self.clocks.validate()
    }
}

impl SimGeometry {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        let dims = [
            ("imaging_width", self.imaging_width),
            ("imaging_height", self.imaging_height),
            ("eye_width", self.eye_width),
            ("eye_height", self.eye_height),
            ("view_width", self.view_width),
            ("view_height", self.view_height),
        ];
        for (field, v) in dims {
            if !(8..=8192).contains(&v) {
                return Err(bad(field, format!("must be in 8..=8192 px, got {v}")));
            }
        }
        positive("imaging_rate_hz", self.imaging_rate_hz)?;
        positive("eye_rate_hz", self.eye_rate_hz)?;
        positive("treadmill_rate_hz", self.treadmill_rate_hz)?;
        let (a0, a1) = self.view_azimuth_deg;
        if !(a0.is_finite() && a1.is_finite() && a0 < a1) {
            return Err(bad(
                "view_azimuth_deg",
                "must be (left, right) with left < right",
            ));
        }
        let (e0, e1) = self.view_elevation_deg;
        if !(e0.is_finite() && e1.is_finite() && e0 < e1) {
            return Err(bad(
                "view_elevation_deg",
                "must be (bottom, top) with bottom < top",
            ));
        }
        Ok(())
    }

    /// Azimuth and elevation of the centre of view pixel (`row`, `col`), deg.
    pub fn view_pixel_deg(&self, row: f64, col: f64) -> (f64, f64) {
        let (a0, a1) = self.view_azimuth_deg;
        let (e0, e1) = self.view_elevation_deg;
        let az = a0 + (col + 0.5) * (a1 - a0) / self.view_width as f64;
        let el = e1 - (row + 0.5) * (e1 - e0) / self.view_height as f64;
        (az, el)
    }

    /// Degrees per view pixel along azimuth (x) and elevation (y).
    pub fn view_deg_per_px(&self) -> (f64, f64) {
        let (a0, a1) = self.view_azimuth_deg;
        let (e0, e1) = self.view_elevation_deg;
        (
            (a1 - a0) / self.view_width as f64,
            (e1 - e0) / self.view_height as f64,
        )
    }
}
