//! The CPU reference renderer: each stimulus written straight from its formula, in f64, one
//! pixel at a time: pixel centre → (azimuth, elevation) through the [`Projection`] → the
//! kind's luminance → a u8 level. It is slow and obvious on purpose; the GPU renderer is
//! tested against it.

use crate::content::{Carrier, FrameContent, Prepared, Sampling};
use crate::gamma::GammaLut;
use crate::geometry::Projection;
use crate::photodiode::PatchFrame;
use crate::spec::Waveform;
use crate::{StimulusSpec, ViewGeometry};
use std::f64::consts::TAU;

/// Mean gray as a u8 level (0.5 of full scale, rounded).
pub const MEAN_GRAY: u8 = 128;

/// A luminance in [0, 1] as a u8 level (clamped, rounded to nearest).
pub fn to_level(l: f64) -> u8 {
    (l.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Great-circle distance (deg) between two directions, by the haversine formula (accurate at
/// small angles, unlike the arccosine of a dot product).
pub fn great_circle_deg(az1: f64, el1: f64, az2: f64, el2: f64) -> f64 {
    let (p1, p2) = (el1.to_radians(), el2.to_radians());
    let dp = p2 - p1;
    let dl = (az2 - az1).to_radians();
    let h = (0.5 * dp).sin().powi(2) + p1.cos() * p2.cos() * (0.5 * dl).sin().powi(2);
    (2.0 * h.min(1.0).sqrt().asin()).to_degrees()
}

/// The carrier's cycle count at (az, el): `sf · s + phase`, `s` along the direction from the
/// reference point.
fn cycles(c: &Carrier, az: f64, el: f64) -> f64 {
    let (s, co) = c.direction_deg.to_radians().sin_cos();
    let along = (az - c.reference.0) * co + (el - c.reference.1) * s;
    c.sf_cpd * along + c.phase_cycles
}

fn wave(x: f64, waveform: Waveform) -> f64 {
    match waveform {
        Waveform::Sine => (TAU * x).sin(),
        // sin(2πx) ≥ 0 on the first half of each cycle.
        Waveform::Square => {
            if x.rem_euclid(1.0) < 0.5 {
                1.0
            } else {
                -1.0
            }
        }
    }
}

/// Luminance in [0, 1] of one frame's content at (az, el) degrees.
pub fn content_luminance(content: &FrameContent, az: f64, el: f64) -> f64 {
    match *content {
        FrameContent::Gray => 0.5,
        FrameContent::Grating {
            carrier,
            contrast,
            waveform,
            aperture_radius_deg,
        } => {
            if let Some(r) = aperture_radius_deg
                && great_circle_deg(az, el, carrier.reference.0, carrier.reference.1) > r
            {
                return 0.5;
            }
            0.5 + 0.5 * contrast * wave(cycles(&carrier, az, el), waveform)
        }
        FrameContent::Gabor {
            carrier,
            contrast,
            sigma_deg,
        } => {
            let d = great_circle_deg(az, el, carrier.reference.0, carrier.reference.1);
            let envelope = (-d * d / (2.0 * sigma_deg * sigma_deg)).exp();
            0.5 + 0.5 * contrast * envelope * wave(cycles(&carrier, az, el), Waveform::Sine)
        }
        FrameContent::Field {
            field,
            corner_deg,
            texel_deg,
            shift_deg,
            sampling,
            wrap,
            contrast,
        } => {
            // Position in texels from the top-left corner (texel centres at i + 0.5).
            let u = (az - shift_deg.0 - corner_deg.0) / texel_deg.0;
            let w = (corner_deg.1 - (el - shift_deg.1)) / texel_deg.1;
            let (nw, nh) = (field.width as i64, field.height as i64);
            if !wrap && (u < 0.0 || w < 0.0 || u >= nw as f64 || w >= nh as f64) {
                return 0.5;
            }
            let index = |i: i64, n: i64| -> u32 {
                if wrap {
                    i.rem_euclid(n) as u32
                } else {
                    i.clamp(0, n - 1) as u32
                }
            };
            let v = match sampling {
                Sampling::Nearest => {
                    field.get(index(u.floor() as i64, nw), index(w.floor() as i64, nh)) as f64
                }
                Sampling::Bilinear => {
                    let (x, y) = (u - 0.5, w - 0.5);
                    let (x0, y0) = (x.floor(), y.floor());
                    let (fx, fy) = (x - x0, y - y0);
                    let (i0, j0) = (x0 as i64, y0 as i64);
                    let g = |i: i64, j: i64| field.get(index(i, nw), index(j, nh)) as f64;
                    let top = g(i0, j0) * (1.0 - fx) + g(i0 + 1, j0) * fx;
                    let bottom = g(i0, j0 + 1) * (1.0 - fx) + g(i0 + 1, j0 + 1) * fx;
                    top * (1.0 - fy) + bottom * fy
                }
            };
            0.5 + 0.5 * contrast * v
        }
        FrameContent::Dots {
            dots,
            radius_deg,
            contrast,
        } => {
            // Later dots are drawn over earlier ones.
            let v = dots
                .iter()
                .rev()
                .find(|d| great_circle_deg(az, el, d.az_deg, d.el_deg) <= radius_deg)
                .map_or(0.0, |d| d.sign);
            0.5 + 0.5 * contrast * v
        }
    }
}

/// Pre-gamma u8 levels of `content` over `projection`'s pixels (row-major, row 0 at the top);
/// this is also what the twin sees.
pub fn render_content(content: &FrameContent, projection: &Projection, out: &mut [u8]) {
    let w = projection.width();
    for (i, px) in out.iter_mut().enumerate().take(projection.pixels()) {
        let (az, el) = projection.pixel_deg(i / w, i % w);
        *px = to_level(content_luminance(content, az, el));
    }
}

/// What the monitor is sent: luminance through the inverse gamma LUT, then the photodiode
/// patch (its level is a drive level and bypasses the LUT).
pub fn render_display(
    content: &FrameContent,
    projection: &Projection,
    gamma: &GammaLut,
    patch: Option<&PatchFrame>,
    out: &mut [u8],
) {
    let (w, h) = (projection.width(), projection.height());
    for (i, px) in out.iter_mut().enumerate().take(projection.pixels()) {
        let (row, col) = (i / w, i % w);
        if let Some(p) = patch
            && p.patch.contains(w as u32, h as u32, col as u32, row as u32)
        {
            *px = to_level(p.level as f64);
            continue;
        }
        let (az, el) = projection.pixel_deg(row, col);
        *px = to_level(gamma.apply(content_luminance(content, az, el)));
    }
}

/// Luminance in [0, 1] of `spec` at `(az, el)` degrees, `t_s` seconds after onset. Resolves
/// the spec on every call (cheap for analytic kinds; kinds read from files read them each
/// time: use [`Prepared`] for those). A spec that cannot be prepared is mean gray.
pub fn luminance(spec: &StimulusSpec, az: f64, el: f64, t_s: f64) -> f64 {
    match Prepared::new(spec) {
        Ok(mut p) => content_luminance(&p.frame(t_s), az, el),
        Err(_) => 0.5,
    }
}

/// Render `spec` at `t_s` after onset into `out` (row-major u8, `geom.pixels()` long). A spec
/// that cannot be prepared renders mean gray. Prefer [`Prepared`] + [`render_content`] when
/// rendering many frames of one spec.
pub fn render(spec: &StimulusSpec, t_s: f64, geom: &ViewGeometry, out: &mut [u8]) {
    let projection = Projection::Linear(*geom);
    match Prepared::new(spec) {
        Ok(mut p) => render_content(&p.frame(t_s), &projection, out),
        Err(_) => out
            .iter_mut()
            .take(geom.pixels())
            .for_each(|p| *p = MEAN_GRAY),
    }
}

#[cfg(test)]
mod tests;
