//! The uniform block the shaders read (`Params` in `common.wgsl`), built from a frame's
//! content, the projection and the output stage.

use super::shaders::ShaderKind;
use crate::content::{Carrier, Dot, Field, FrameContent, Sampling};
use crate::geometry::Projection;
use crate::photodiode::PatchFrame;
use crate::spec::Waveform;
use bytemuck::{Pod, Zeroable};

/// Mirrors `struct Params` in `common.wgsl`: twelve 16-byte rows.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct Params {
    pub flags: [u32; 4],
    pub lin: [f32; 4],
    pub screen: [f32; 4],
    pub rot0: [f32; 4],
    pub rot1: [f32; 4],
    pub rot2: [f32; 4],
    pub s0: [f32; 4],
    pub s1: [f32; 4],
    pub s2: [f32; 4],
    pub s3: [f32; 4],
    pub patch_rect: [f32; 4],
    pub patch_level: [f32; 4],
}

pub const OUT_GAMMA: u32 = 1;
pub const OUT_PATCH: u32 = 2;

/// What a frame needs beyond the uniforms.
pub struct Resolved<'a> {
    pub kind: ShaderKind,
    pub params: Params,
    pub field: Option<&'a Field>,
    pub dots: &'a [Dot],
}

fn carrier(c: &Carrier) -> [f32; 4] {
    let (s, co) = c.direction_deg.to_radians().sin_cos();
    [co as f32, s as f32, c.sf_cpd as f32, c.phase_cycles as f32]
}

/// Fill the projection rows.
fn projection(p: &mut Params, proj: &Projection) {
    match proj {
        Projection::Linear(v) => {
            let (a0, a1) = v.azimuth_deg;
            let (e0, e1) = v.elevation_deg;
            p.flags[0] = 0;
            p.lin = [
                ((a1 - a0) / v.width as f64) as f32,
                a0 as f32,
                (-(e1 - e0) / v.height as f64) as f32,
                e1 as f32,
            ];
        }
        Projection::Monitor(m) => {
            p.flags[0] = 1;
            p.screen = [
                (m.width_cm / m.width_px as f64) as f32,
                (-0.5 * m.width_cm - m.eye_x_cm) as f32,
                (-m.height_cm / m.height_px as f64) as f32,
                (0.5 * m.height_cm - m.eye_y_cm) as f32,
            ];
            let r = m.rotation();
            let col = |c: [f64; 3], w: f64| [c[0] as f32, c[1] as f32, c[2] as f32, w as f32];
            p.rot0 = col(r[0], m.distance_cm);
            p.rot1 = col(r[1], 0.0);
            p.rot2 = col(r[2], 0.0);
        }
    }
}

/// Uniforms and resources for one frame. `gamma` says whether the LUT is applied.
pub fn resolve<'a>(
    content: &FrameContent<'a>,
    proj: &Projection,
    gamma: bool,
    patch: Option<&PatchFrame>,
) -> Resolved<'a> {
    let mut p = Params::default();
    projection(&mut p, proj);
    if gamma {
        p.flags[3] |= OUT_GAMMA;
    }
    if let Some(pf) = patch {
        p.flags[3] |= OUT_PATCH;
        let (x0, y0, x1, y1) = pf.patch.rect(proj.width() as u32, proj.height() as u32);
        p.patch_rect = [x0 as f32, y0 as f32, x1 as f32, y1 as f32];
        p.patch_level = [pf.level, 0.0, 0.0, 0.0];
    }
    let mut field = None;
    let mut dots: &[Dot] = &[];
    let kind = match *content {
        FrameContent::Gray => ShaderKind::Gray,
        FrameContent::Grating {
            carrier: c,
            contrast,
            waveform,
            aperture_radius_deg,
        } => {
            p.s0 = carrier(&c);
            p.s1 = [
                c.reference.0 as f32,
                c.reference.1 as f32,
                contrast as f32,
                aperture_radius_deg.unwrap_or(0.0) as f32,
            ];
            p.flags[1] =
                (waveform == Waveform::Square) as u32 | (aperture_radius_deg.is_some() as u32) << 1;
            ShaderKind::Grating
        }
        FrameContent::Gabor {
            carrier: c,
            contrast,
            sigma_deg,
        } => {
            p.s0 = carrier(&c);
            p.s1 = [
                c.reference.0 as f32,
                c.reference.1 as f32,
                contrast as f32,
                sigma_deg as f32,
            ];
            ShaderKind::Gabor
        }
        FrameContent::Field {
            field: f,
            corner_deg,
            texel_deg,
            shift_deg,
            sampling,
            wrap,
            contrast,
        } => {
            p.s2 = [
                corner_deg.0 as f32,
                corner_deg.1 as f32,
                texel_deg.0 as f32,
                texel_deg.1 as f32,
            ];
            p.s3 = [shift_deg.0 as f32, shift_deg.1 as f32, contrast as f32, 0.0];
            p.flags[1] = (sampling == Sampling::Bilinear) as u32 | (wrap as u32) << 1;
            field = Some(f);
            ShaderKind::Field
        }
        FrameContent::Dots {
            dots: d,
            radius_deg,
            contrast,
        } => {
            p.s1 = [0.0, 0.0, contrast as f32, radius_deg as f32];
            p.flags[2] = d.len() as u32;
            dots = d;
            ShaderKind::Dots
        }
    };
    Resolved {
        kind,
        params: p,
        field,
        dots,
    }
}
