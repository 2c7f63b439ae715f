//! The PNG thumbnails served at `/frame.png` and `/view.png`: downsampled, stretched to 8 bits,
//! cell outlines drawn.

use super::*;

/// A downsampled image ready for PNG encoding.
#[derive(Debug, Clone)]
pub(super) struct Thumbnail {
    pub(super) t_s: f64,
    pub(super) width: u32,
    pub(super) height: u32,
    /// Source pixels per thumbnail pixel along each axis.
    pub(super) scale: u32,
    pub(super) src_width: u32,
    pub(super) src_height: u32,
    pub(super) pixels: Vec<u8>,
}

impl DashState {
    /// The latest frame as an RGB PNG: the frame in gray, cell outlines as
    /// circles (traced cells in orange, the others in green). `None` before
    /// the first frame.
    pub fn frame_png(&self) -> Result<Option<Vec<u8>>, DashboardError> {
        let Some(frame) = &self.frame else {
            return Ok(None);
        };
        let (w, h) = (frame.width as usize, frame.height as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for &g in &frame.pixels {
            rgb.extend_from_slice(&[g, g, g]);
        }
        let selected = |i: usize| self.selected.binary_search(&i).is_ok();
        // Others first, so that traced cells are drawn on top.
        for pass_selected in [false, true] {
            let colour = if pass_selected {
                [255, 150, 0]
            } else {
                [0, 220, 110]
            };
            for i in 0..self.centres.len() {
                if selected(i) != pass_selected {
                    continue;
                }
                if let Some((cy, cx, r)) = self.cell_on_thumbnail(i) {
                    draw_circle(&mut rgb, w, h, cy, cx, r, colour);
                }
            }
        }
        encode_png(frame.width, frame.height, png::ColorType::Rgb, &rgb).map(Some)
    }

    /// The latest view as a grayscale PNG; `None` before the first view.
    pub fn view_png(&self) -> Result<Option<Vec<u8>>, DashboardError> {
        let Some(view) = &self.view else {
            return Ok(None);
        };
        encode_png(
            view.width,
            view.height,
            png::ColorType::Grayscale,
            &view.pixels,
        )
        .map(Some)
    }
}

/// Box-averages an image to at most [`THUMB_MAX_WIDTH`] x [`THUMB_MAX_HEIGHT`]
/// by an integer factor. Returns `(width, height, factor, pixels)`.
pub(super) fn downsample<P: Copy + Into<f32>>(
    width: u32,
    height: u32,
    pixels: &[P],
) -> Result<(u32, u32, u32, Vec<f32>), String> {
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width} x {height})"));
    }
    let n = u64::from(width) * u64::from(height);
    if n > MAX_IMAGE_PIXELS {
        return Err(format!("image too large ({width} x {height})"));
    }
    if pixels.len() as u64 != n {
        return Err(format!(
            "{} pixels for a {width} x {height} image",
            pixels.len()
        ));
    }
    let f = width
        .div_ceil(THUMB_MAX_WIDTH)
        .max(height.div_ceil(THUMB_MAX_HEIGHT))
        .max(1);
    let (w, h) = (width.div_ceil(f), height.div_ceil(f));
    let (sw, tw) = (width as usize, w as usize);
    let mut sum = vec![0f32; (w * h) as usize];
    let mut count = vec![0u32; (w * h) as usize];
    for (y, row) in pixels.chunks_exact(sw).enumerate() {
        let ty = y / f as usize;
        for (x, &p) in row.iter().enumerate() {
            let i = ty * tw + x / f as usize;
            sum[i] += p.into();
            count[i] += 1;
        }
    }
    for (s, &c) in sum.iter_mut().zip(&count) {
        *s /= c.max(1) as f32;
    }
    Ok((w, h, f, sum))
}

/// Maps values linearly so that the 0.5th..99.5th percentiles span 0..255.
pub(super) fn stretch_to_u8(px: &mut [f32]) -> Vec<u8> {
    if px.is_empty() {
        return Vec::new();
    }
    let mut sorted = px.to_vec();
    let lo_i = sorted.len() / 200;
    let hi_i = (sorted.len() - 1) - sorted.len() / 200;
    let lo = *sorted.select_nth_unstable_by(lo_i, f32::total_cmp).1;
    let hi = *sorted.select_nth_unstable_by(hi_i, f32::total_cmp).1;
    let span = if hi > lo { hi - lo } else { 1.0 };
    px.iter()
        .map(|&v| ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Draws a one-pixel circle outline into an RGB buffer.
pub(super) fn draw_circle(
    rgb: &mut [u8],
    w: usize,
    h: usize,
    cy: f32,
    cx: f32,
    r: f32,
    colour: [u8; 3],
) {
    if !(cy.is_finite() && cx.is_finite() && r.is_finite()) || r > (w + h) as f32 {
        return;
    }
    let steps = ((std::f32::consts::TAU * r * 2.0).ceil() as usize).max(8);
    for k in 0..steps {
        let a = std::f32::consts::TAU * k as f32 / steps as f32;
        let y = (cy + r * a.sin()).round();
        let x = (cx + r * a.cos()).round();
        if y < 0.0 || x < 0.0 || y >= h as f32 || x >= w as f32 {
            continue;
        }
        let i = (y as usize * w + x as usize) * 3;
        rgb[i..i + 3].copy_from_slice(&colour);
    }
}

pub(super) fn encode_png(
    width: u32,
    height: u32,
    colour: png::ColorType,
    data: &[u8],
) -> Result<Vec<u8>, DashboardError> {
    Ok(crate::backbone::image::encode_png(
        width, height, colour, data,
    )?)
}
