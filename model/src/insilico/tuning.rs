//! Direction and orientation tuning from full-field drifting sinusoidal gratings.
//!
//! The grating is drawn directly at the twin's stimulus resolution, in the stimulus' own
//! coordinates (the rig's gratings in degrees of visual angle through the monitor's projection
//! live in `twinloop-stimulus`; the twin's perspective module does the eye's geometry here).
//! With `x` (right) and `y` (up) measured from the stimulus centre in units of the stimulus
//! width (so pixels are square), frame `f` at `t = f / frame_hz` seconds is
//!
//! `L = 128 + 127 · contrast · sin(2π (sf · (x cos θ + y sin θ) − tf · t) + phase)`
//!
//! rounded to u8: `sf` cycles per stimulus width, `tf` cycles per second, and the pattern drifts
//! along direction `θ` (0° = rightward, 90° = upward, as `twinloop-stimulus`). Defaults: 4
//! cycles per width ≈ 0.04 cycles/degree (mouse V1's preferred spatial frequency) when the
//! stimulus spans ≈ 100° of azimuth, as fnn's monitor does at the eye; 2 Hz; full contrast.
//!
//! Per direction the twin is reset, shown `pre_roll` frames of mean gray, then the grating clip,
//! with the pupil centre and behaviour at 0 (the standardised means); the unit's response to the
//! direction is its mean predicted rate over the clip after `burn_in` frames. All directions
//! run as one batch. Per unit, with responses `r_k ≥ 0` at directions `θ_k`:
//! - DSI = |Σ r_k e^{iθ_k}| / Σ r_k, preferred direction = arg Σ r_k e^{iθ_k};
//! - OSI = |Σ r_k e^{2iθ_k}| / Σ r_k, preferred orientation = arg Σ r_k e^{2iθ_k} / 2
//!   (the drift direction's axis, in [0°, 180°)); both are 1 − circular variance.

use std::f64::consts::PI;

use candle_core::Tensor;
use serde::Serialize;

use crate::error::{CandleContext, ModelError, Result};
use crate::network::Twin;

use super::{MEAN_GRAY_U8, median};

/// One drifting grating.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GratingParams {
    /// Cycles per stimulus width.
    pub cycles_per_width: f64,
    /// Drift, cycles per second.
    pub temporal_hz: f64,
    /// Michelson contrast in [0, 1].
    pub contrast: f64,
    /// Phase at the stimulus centre at t = 0, radians.
    pub phase: f64,
    /// Twin frames per second.
    pub frame_hz: f64,
}

impl Default for GratingParams {
    fn default() -> Self {
        Self {
            cycles_per_width: 4.0,
            temporal_hz: 2.0,
            contrast: 1.0,
            phase: 0.0,
            frame_hz: 30.0,
        }
    }
}

impl GratingParams {
    fn check(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| ModelError::Input {
            input: format!("grating {field}"),
            reason: reason.to_string(),
        };
        if !(self.cycles_per_width.is_finite() && self.cycles_per_width >= 0.0) {
            return Err(bad("cycles_per_width", "must be finite and ≥ 0"));
        }
        if !self.temporal_hz.is_finite() || !self.phase.is_finite() {
            return Err(bad("temporal_hz/phase", "must be finite"));
        }
        if !(0.0..=1.0).contains(&self.contrast) {
            return Err(bad("contrast", "must be in [0, 1]"));
        }
        if !(self.frame_hz.is_finite() && self.frame_hz > 0.0) {
            return Err(bad("frame_hz", "must be positive"));
        }
        Ok(())
    }

    /// Luminance level (before rounding) at pixel `(row, col)` of an `h x w` frame, frame `f`,
    /// drifting along `direction_deg`.
    pub fn level(
        &self,
        direction_deg: f64,
        h: usize,
        w: usize,
        row: usize,
        col: usize,
        f: usize,
    ) -> f64 {
        let th = direction_deg.to_radians();
        let x = (col as f64 + 0.5 - w as f64 / 2.0) / w as f64;
        let y = (h as f64 / 2.0 - row as f64 - 0.5) / w as f64;
        let t = f as f64 / self.frame_hz;
        let arg = 2.0
            * PI
            * (self.cycles_per_width * (x * th.cos() + y * th.sin()) - self.temporal_hz * t)
            + self.phase;
        MEAN_GRAY_U8 as f64 + 127.0 * self.contrast * arg.sin()
    }

    /// A clip `[frames, h, w]` u8 drifting along `direction_deg`.
    pub fn render(&self, direction_deg: f64, frames: usize, h: usize, w: usize) -> Result<Vec<u8>> {
        self.check()?;
        let mut out = Vec::with_capacity(frames * h * w);
        for f in 0..frames {
            for row in 0..h {
                for col in 0..w {
                    let v = self.level(direction_deg, h, w, row, col, f);
                    out.push(v.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Ok(out)
    }
}

/// How to run the tuning experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TuningOptions {
    /// Equally spaced drift directions from 0°.
    pub directions: usize,
    pub grating: GratingParams,
    /// Gray frames before the grating (the state settles from the reset).
    pub pre_roll: usize,
    /// Grating frames.
    pub frames: usize,
    /// Grating frames not averaged (onset transient).
    pub burn_in: usize,
}

impl Default for TuningOptions {
    fn default() -> Self {
        Self {
            directions: 16,
            grating: GratingParams::default(),
            pre_roll: 30,
            frames: 60,
            burn_in: 15,
        }
    }
}

/// One unit's tuning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitTuning {
    pub unit: usize,
    /// Mean response per direction (same order as the report's `directions_deg`).
    pub responses: Vec<f64>,
    pub preferred_direction_deg: f64,
    pub preferred_orientation_deg: f64,
    pub osi: f64,
    pub dsi: f64,
}

/// The tuning experiment's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuningReport {
    pub options: TuningOptions,
    pub directions_deg: Vec<f64>,
    pub median_osi: Option<f64>,
    pub median_dsi: Option<f64>,
    pub units: Vec<UnitTuning>,
}

/// Preferred direction (deg, [0, 360)), preferred orientation (deg, [0, 180)), OSI and DSI of
/// one tuning curve by the vector-sum definitions (module docs). A curve summing to zero has
/// indices 0 and angles 0.
pub fn vector_sum_indices(directions_deg: &[f64], responses: &[f64]) -> (f64, f64, f64, f64) {
    let total: f64 = responses.iter().sum();
    let (mut c1, mut s1, mut c2, mut s2) = (0.0, 0.0, 0.0, 0.0);
    for (d, r) in directions_deg.iter().zip(responses) {
        let th = d.to_radians();
        c1 += r * th.cos();
        s1 += r * th.sin();
        c2 += r * (2.0 * th).cos();
        s2 += r * (2.0 * th).sin();
    }
    if total.abs() <= f64::MIN_POSITIVE {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let dir = s1.atan2(c1).to_degrees().rem_euclid(360.0);
    let ori = (s2.atan2(c2).to_degrees() / 2.0).rem_euclid(180.0);
    let osi = (c2 * c2 + s2 * s2).sqrt() / total;
    let dsi = (c1 * c1 + s1 * s1).sqrt() / total;
    (dir, ori, osi, dsi)
}

/// Runs the tuning experiment on every unit of `twin`.
pub fn tuning(twin: &mut Twin, opts: &TuningOptions) -> Result<TuningReport> {
    opts.grating.check()?;
    if opts.directions < 2 {
        return Err(ModelError::Input {
            input: "directions".into(),
            reason: format!("{}; need at least 2", opts.directions),
        });
    }
    if opts.burn_in >= opts.frames {
        return Err(ModelError::Input {
            input: "burn_in".into(),
            reason: format!(
                "{} of {} grating frames leaves nothing to average",
                opts.burn_in, opts.frames
            ),
        });
    }
    let cfg = twin.config().clone();
    let (h, w, k, u) = (
        cfg.stimulus_height,
        cfg.stimulus_width,
        opts.directions,
        cfg.units,
    );
    let dirs: Vec<f64> = (0..k).map(|i| 360.0 * i as f64 / k as f64).collect();
    let clips = dirs
        .iter()
        .map(|&d| opts.grating.render(d, opts.frames, h, w))
        .collect::<Result<Vec<_>>>()?;
    let dev = twin.device().clone();
    let zeros = |m: usize| Tensor::zeros((k, m), candle_core::DType::F32, &dev).ctx("inputs");
    let (pupil, behaviour) = (zeros(cfg.perspectives)?, zeros(cfg.modulations)?);
    let plane = h * w;
    let gray = Tensor::full(MEAN_GRAY_U8 as f32 / 255.0, (k, 1, h, w), &dev).ctx("gray")?;
    twin.reset();
    for _ in 0..opts.pre_roll {
        twin.step(&gray, &pupil, &behaviour)?;
    }
    let mut sum = vec![0f64; k * u];
    for f in 0..opts.frames {
        let mut pix = Vec::with_capacity(k * plane);
        for c in &clips {
            pix.extend(
                c[f * plane..(f + 1) * plane]
                    .iter()
                    .map(|&v| v as f32 / 255.0),
            );
        }
        let stim = Tensor::from_vec(pix, (k, 1, h, w), &dev).ctx("grating frame")?;
        let out = twin.step(&stim, &pupil, &behaviour)?;
        if f >= opts.burn_in {
            let r: Vec<Vec<f32>> = out
                .rate
                .to_device(&candle_core::Device::Cpu)
                .and_then(|r| r.to_vec2())
                .ctx("rates")?;
            for (d, row) in r.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    sum[d * u + j] += *v as f64;
                }
            }
        }
    }
    twin.reset();
    let n = (opts.frames - opts.burn_in) as f64;
    let units: Vec<UnitTuning> = (0..u)
        .map(|j| {
            let responses: Vec<f64> = (0..k).map(|d| sum[d * u + j] / n).collect();
            let (dir, ori, osi, dsi) = vector_sum_indices(&dirs, &responses);
            UnitTuning {
                unit: j,
                responses,
                preferred_direction_deg: dir,
                preferred_orientation_deg: ori,
                osi,
                dsi,
            }
        })
        .collect();
    Ok(TuningReport {
        options: *opts,
        directions_deg: dirs,
        median_osi: median(units.iter().map(|t| t.osi)),
        median_dsi: median(units.iter().map(|t| t.dsi)),
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grating_matches_its_closed_form() {
        // Closed form written out independently: 8 cycles across 64 px → an 8 px period; the
        // stimulus centre lies between pixels 31 and 32 (x = ±0.5/64 width).
        let g = GratingParams {
            cycles_per_width: 8.0,
            temporal_hz: 3.75,
            contrast: 0.5,
            phase: 0.3,
            frame_hz: 30.0,
        };
        let (h, w) = (4, 64);
        let clip = g.render(0.0, 3, h, w).unwrap();
        for f in 0..3 {
            for col in 0..w {
                let x_px = col as f64 - 31.5;
                let want =
                    128.0 + 63.5 * (2.0 * PI * (x_px / 8.0 - 3.75 * f as f64 / 30.0) + 0.3).sin();
                for row in 0..h {
                    let got = clip[(f * h + row) * w + col] as f64;
                    assert!(
                        (got - want).abs() <= 0.5,
                        "f {f} col {col}: {got} vs {want}"
                    );
                }
            }
        }
        // 3.75 Hz at 30 Hz with an 8 px period: one pixel of drift per frame, rightward.
        for col in 0..w - 1 {
            assert_eq!(clip[(h + 1) * w + col + 1], clip[w + col]);
        }
        // Direction 90° is the 0° grating turned a quarter turn: it drifts upward (toward row
        // 0), a pixel per frame on a square frame.
        let (h, w) = (64, 64);
        let up = g.render(90.0, 2, h, w).unwrap();
        for row in 1..h {
            assert_eq!(up[h * w + (row - 1) * w + 5], up[row * w + 5], "row {row}");
        }
        // Columns are constant for a vertical bar pattern drifting up: rows vary, columns not.
        assert!((0..w).all(|c| up[10 * w + c] == up[10 * w]));
    }

    #[test]
    fn zero_contrast_is_mean_gray_and_bad_params_are_named() {
        let g = GratingParams {
            contrast: 0.0,
            ..GratingParams::default()
        };
        assert!(g.render(30.0, 2, 5, 7).unwrap().iter().all(|&v| v == 128));
        let g = GratingParams {
            contrast: 1.5,
            ..GratingParams::default()
        };
        let e = g.render(0.0, 1, 2, 2).unwrap_err().to_string();
        assert!(e.contains("contrast"), "{e}");
    }

    #[test]
    fn vector_sum_indices_match_cosine_tuning() {
        // r(θ) = 1 + a cos(θ − φ) + b cos(2(θ − ψ)) sampled at 16 equally spaced directions:
        // Σ r e^{iθ} = 8 a e^{iφ}, Σ r e^{2iθ} = 8 b e^{2iψ}, Σ r = 16 → DSI = a/2, OSI = b/2.
        let (a, phi, b, psi) = (0.6, 200.0f64, 0.4, 20.0f64);
        let dirs: Vec<f64> = (0..16).map(|i| 22.5 * i as f64).collect();
        let r: Vec<f64> = dirs
            .iter()
            .map(|d| {
                1.0 + a * (d - phi).to_radians().cos() + b * (2.0 * (d - psi).to_radians()).cos()
            })
            .collect();
        let (dir, ori, osi, dsi) = vector_sum_indices(&dirs, &r);
        assert!((dir - phi).abs() < 1e-9, "{dir}");
        assert!((ori - psi).abs() < 1e-9, "{ori}");
        assert!((osi - b / 2.0).abs() < 1e-12, "{osi}");
        assert!((dsi - a / 2.0).abs() < 1e-12, "{dsi}");
        // A single direction: both indices 1, orientation = direction mod 180.
        let mut one = vec![0.0; 16];
        one[11] = 2.0;
        let (dir, ori, osi, dsi) = vector_sum_indices(&dirs, &one);
        assert!((dir - 247.5).abs() < 1e-9 && (ori - 67.5).abs() < 1e-9);
        assert!((osi - 1.0).abs() < 1e-12 && (dsi - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tuning_on_the_parity_network() {
        let mut twin = super::super::testnet::twin();
        let opts = TuningOptions {
            directions: 8,
            pre_roll: 4,
            frames: 10,
            burn_in: 4,
            ..TuningOptions::default()
        };
        let rep = tuning(&mut twin, &opts).unwrap();
        assert_eq!(rep.units.len(), twin.config().units);
        assert_eq!(rep.directions_deg[2], 90.0);
        for t in &rep.units {
            assert!(t.responses.iter().all(|r| r.is_finite() && *r > 0.0));
            assert!((0.0..=1.0).contains(&t.osi) && (0.0..=1.0).contains(&t.dsi));
            let (d, o, osi, dsi) = vector_sum_indices(&rep.directions_deg, &t.responses);
            assert_eq!(
                (d, o, osi, dsi),
                (
                    t.preferred_direction_deg,
                    t.preferred_orientation_deg,
                    t.osi,
                    t.dsi
                )
            );
        }
        // Independently: direction 90° streamed alone through `step_u8` (u8 gray pre-roll,
        // then the clip), averaged after the burn-in by hand.
        let cfg = twin.config().clone();
        let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
        let clip = opts.grating.render(90.0, opts.frames, h, w).unwrap();
        twin.reset();
        let gray = vec![MEAN_GRAY_U8; h * w];
        for _ in 0..opts.pre_roll {
            twin.step_u8(&gray, &[0.0, 0.0], &[0.0, 0.0]).unwrap();
        }
        let mut mean = vec![0f64; cfg.units];
        for f in 0..opts.frames {
            let r = twin
                .step_u8(&clip[f * h * w..(f + 1) * h * w], &[0.0, 0.0], &[0.0, 0.0])
                .unwrap();
            if f >= opts.burn_in {
                for (m, v) in mean.iter_mut().zip(&r) {
                    *m += *v as f64 / (opts.frames - opts.burn_in) as f64;
                }
            }
        }
        for (t, m) in rep.units.iter().zip(&mean) {
            assert!(
                (t.responses[2] - m).abs() <= 1e-5 * m,
                "{} vs {m}",
                t.responses[2]
            );
        }
    }
}
