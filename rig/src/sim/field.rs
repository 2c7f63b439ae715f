//! Smooth random images: neuropil structure, tissue texture, iris and fur.
//!
//! A coarse grid of independent normals is upsampled with a cubic B-spline, which is smooth
//! (twice differentiable), costs a few operations per pixel, and has features about one grid
//! spacing across.

use super::random::normal;
use rand::Rng;

/// Cubic B-spline weights for the four control points around fractional position `t` in [0, 1).
fn bspline(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        (1.0 - t).powi(3) / 6.0,
        (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
        t3 / 6.0,
    ]
}

/// A `height` x `width` row-major random field with features about `scale_px` across, shifted
/// and scaled to mean 0 and s.d. 1.
pub(crate) fn smooth_field(
    width: usize,
    height: usize,
    scale_px: f64,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let scale = scale_px.max(1.0);
    let gw = (width as f64 / scale).ceil() as usize + 4;
    let gh = (height as f64 / scale).ceil() as usize + 4;
    let grid: Vec<f64> = (0..gw * gh).map(|_| normal(rng)).collect();

    // Interpolate along x for every grid row, then along y.
    let mut rows = vec![0.0f64; gh * width];
    for x in 0..width {
        let gx = x as f64 / scale;
        let i = gx.floor() as usize;
        let w = bspline(gx - i as f64);
        for gy in 0..gh {
            let g = &grid[gy * gw + i..gy * gw + i + 4];
            rows[gy * width + x] = w[0] * g[0] + w[1] * g[1] + w[2] * g[2] + w[3] * g[3];
        }
    }
    let mut out = vec![0.0f64; width * height];
    for y in 0..height {
        let gy = y as f64 / scale;
        let j = gy.floor() as usize;
        let w = bspline(gy - j as f64);
        for x in 0..width {
            out[y * width + x] = (0..4).map(|k| w[k] * rows[(j + k) * width + x]).sum();
        }
    }
    standardise(&out)
}

fn standardise(v: &[f64]) -> Vec<f32> {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
    let sd = var.sqrt().max(1e-12);
    v.iter().map(|a| ((a - mean) / sd) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::{Stream, stream};

    #[test]
    fn field_is_standardised_and_smooth() {
        let mut rng = stream(5, Stream::Anatomy);
        let (w, h) = (96, 64);
        let f = smooth_field(w, h, 16.0, &mut rng);
        let mean = f.iter().map(|&a| a as f64).sum::<f64>() / f.len() as f64;
        let var = f.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / f.len() as f64;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3);
        // Neighbouring pixels are far more alike than the field's spread.
        let mut d2 = 0.0f64;
        for y in 0..h {
            for x in 1..w {
                d2 += ((f[y * w + x] - f[y * w + x - 1]) as f64).powi(2);
            }
        }
        let rms_step = (d2 / (h * (w - 1)) as f64).sqrt();
        assert!(rms_step < 0.2, "rms step {rms_step}");
    }
}
