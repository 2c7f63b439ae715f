//! Image statistics for detection: local backgrounds, robust scales, smoothing.
//!
//! Calcium-imaging fields are dense: somata can cover half the pixels, so the median and the
//! median absolute deviation of an image describe the cells as much as the background. The
//! background is instead taken where it dominates:
//! - locally, as a low percentile (`BACKGROUND_PERCENTILE`) of each tile of a grid (tiles of
//!   the background box, half-overlapping), bilinearly interpolated;
//! - globally, as the **mode** of the image's histogram, with the s.d. read off the side of
//!   the mode below it (where the density falls to exp(-1/2) of its peak), which a positive
//!   tail of cells, however heavy, does not reach.

/// Percentile of a tile taken as its local background.
const BACKGROUND_PERCENTILE: f64 = 0.2;
/// Histogram bins across the central 98% of values when looking for the mode.
const MODE_BINS: usize = 400;

/// Mode of `v` and the s.d. of the values around it, from the side below the mode (see the
/// module docs). The s.d. is at least one histogram bin; (0, 0) for empty input.
pub(crate) fn mode_and_sd(v: &[f32]) -> (f32, f32) {
    let finite: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 0.0);
    }
    let lo = quantile(&finite, 0.01);
    let hi = quantile(&finite, 0.99);
    if hi <= lo {
        return (lo, 0.0);
    }
    let width = (hi - lo) / MODE_BINS as f32;
    let mut hist = vec![0.0f32; MODE_BINS];
    for &x in &finite {
        let b = ((x - lo) / width).floor();
        if b >= 0.0 && (b as usize) < MODE_BINS {
            hist[b as usize] += 1.0;
        }
    }
    // Smooth with a 9-bin triangle so the peak is not one lucky bin.
    let smooth: Vec<f32> = (0..MODE_BINS)
        .map(|i| {
            let mut acc = 0.0;
            for k in -4i32..=4 {
                let j = i as i32 + k;
                if j >= 0 && (j as usize) < MODE_BINS {
                    acc += (5 - k.abs()) as f32 * hist[j as usize];
                }
            }
            acc
        })
        .collect();
    let mut peak = 0;
    for (i, &c) in smooth.iter().enumerate() {
        if c > smooth[peak] {
            peak = i;
        }
    }
    let mode = lo + (peak as f32 + 0.5) * width;
    let level = smooth[peak] * (-0.5f32).exp();
    let mut i = peak;
    while i > 0 && smooth[i] > level {
        i -= 1;
    }
    // Interpolate where the density crosses the level between bins i and i + 1.
    let (a, b) = (smooth[i], smooth[i + 1]);
    let frac = if b > a { (level - a) / (b - a) } else { 0.0 };
    let crossing = lo + (i as f32 + 0.5 + frac.clamp(0.0, 1.0)) * width;
    (mode, (mode - crossing).max(width))
}

/// `(v - mode) / sd` with [`mode_and_sd`] (an s.d. of 0 is replaced by a tiny one, so a
/// constant image gives zeros).
pub(crate) fn robust_z(v: &[f32]) -> Vec<f32> {
    let (mode, sd) = mode_and_sd(v);
    let sd = sd.max(1e-6 * mode.abs().max(1e-6));
    v.iter().map(|&x| (x - mode) / sd).collect()
}

/// `img` minus its local background (see the module docs), tiles of `box_px`.
pub(crate) fn above_local_background(img: &[f32], h: usize, w: usize, box_px: usize) -> Vec<f32> {
    let bg = local_background(img, h, w, box_px);
    img.iter().zip(&bg).map(|(v, b)| v - b).collect()
}

/// Low-percentile background of `img` on a grid of half-overlapping `box_px` tiles,
/// bilinearly interpolated to every pixel.
pub(crate) fn local_background(img: &[f32], h: usize, w: usize, box_px: usize) -> Vec<f32> {
    let step = (box_px / 2).max(1);
    let half = box_px / 2;
    let gy: Vec<usize> = grid(h, step);
    let gx: Vec<usize> = grid(w, step);
    let mut values = vec![0.0f32; gy.len() * gx.len()];
    let mut tile = Vec::with_capacity((2 * half + 1) * (2 * half + 1));
    for (iy, &cy) in gy.iter().enumerate() {
        for (ix, &cx) in gx.iter().enumerate() {
            tile.clear();
            for y in cy.saturating_sub(half)..(cy + half + 1).min(h) {
                tile.extend_from_slice(
                    &img[y * w + cx.saturating_sub(half)..y * w + (cx + half + 1).min(w)],
                );
            }
            values[iy * gx.len() + ix] = quantile(&tile, BACKGROUND_PERCENTILE);
        }
    }
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        let (iy, fy) = locate(&gy, y);
        for x in 0..w {
            let (ix, fx) = locate(&gx, x);
            let iy1 = (iy + 1).min(gy.len() - 1);
            let ix1 = (ix + 1).min(gx.len() - 1);
            let v = |a: usize, b: usize| values[a * gx.len() + b];
            out[y * w + x] = (1.0 - fy) * ((1.0 - fx) * v(iy, ix) + fx * v(iy, ix1))
                + fy * ((1.0 - fx) * v(iy1, ix) + fx * v(iy1, ix1));
        }
    }
    out
}

/// Grid points 0, step, 2 step, ... and the last index.
fn grid(len: usize, step: usize) -> Vec<usize> {
    let mut g: Vec<usize> = (0..len).step_by(step).collect();
    if g.last() != Some(&(len - 1)) {
        g.push(len - 1);
    }
    g
}

/// The grid interval holding `p` and the fraction of the way through it.
fn locate(g: &[usize], p: usize) -> (usize, f32) {
    let i = g.partition_point(|&v| v <= p).saturating_sub(1);
    if i + 1 >= g.len() {
        return (g.len() - 1, 0.0);
    }
    (i, (p - g[i]) as f32 / (g[i + 1] - g[i]) as f32)
}

/// The `q` quantile of `v` (nearest rank); 0 when empty.
pub(crate) fn quantile(v: &[f32], q: f64) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    let k = ((s.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, m, _) = s.select_nth_unstable_by(k, f32::total_cmp);
    *m
}

/// Median of `v` (upper median for an even count); 0 when empty.
pub(crate) fn median(v: &[f32]) -> f32 {
    quantile(v, 0.5)
}

/// `out` = mean of `src` over a `size` x `size` box centred on each pixel (clipped at borders,
/// normalised by the pixels inside). Running sums: O(pixels) whatever the size.
pub(crate) fn box_mean(src: &[f32], out: &mut [f32], height: usize, width: usize, size: usize) {
    let r = size / 2;
    // Horizontal pass into `out`, storing row sums; then vertical pass in place, column by
    // column with a running sum over a small column buffer.
    for y in 0..height {
        let row = &src[y * width..(y + 1) * width];
        let dst = &mut out[y * width..(y + 1) * width];
        let mut acc = 0.0f64;
        for &v in row.iter().take(r.min(width)) {
            acc += f64::from(v);
        }
        for x in 0..width {
            if x + r < width {
                acc += f64::from(row[x + r]);
            }
            if x > r {
                acc -= f64::from(row[x - r - 1]);
            }
            let lo = x.saturating_sub(r);
            let hi = (x + r).min(width - 1);
            dst[x] = (acc / (hi - lo + 1) as f64) as f32;
        }
    }
    let mut col = vec![0.0f64; height];
    for x in 0..width {
        for (y, c) in col.iter_mut().enumerate() {
            *c = f64::from(out[y * width + x]);
        }
        let mut acc = 0.0f64;
        for &v in col.iter().take(r.min(height)) {
            acc += v;
        }
        for y in 0..height {
            if y + r < height {
                acc += col[y + r];
            }
            if y > r {
                acc -= col[y - r - 1];
            }
            let lo = y.saturating_sub(r);
            let hi = (y + r).min(height - 1);
            out[y * width + x] = (acc / (hi - lo + 1) as f64) as f32;
        }
    }
}

/// Separable Gaussian blur of s.d. `sigma` px, truncated at 3 sigma, normalised by the kernel
/// mass inside the frame at the border.
pub(crate) fn gaussian_blur(src: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as usize;
    let kernel: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let d = i as f32 - r as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let mut tmp = vec![0.0f32; h * w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(r), (x + r + 1).min(w));
            let k = &kernel[lo + r - x..];
            let (mut acc, mut mass) = (0.0f32, 0.0f32);
            for (v, kv) in row[lo..hi].iter().zip(k) {
                acc += kv * v;
                mass += kv;
            }
            tmp[y * w + x] = acc / mass;
        }
    }
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        let (lo, hi) = (y.saturating_sub(r), (y + r + 1).min(h));
        let k = &kernel[lo + r - y..lo + r - y + (hi - lo)];
        let mass: f32 = k.iter().sum();
        let dst = &mut out[y * w..(y + 1) * w];
        for (j, kv) in (lo..hi).zip(k) {
            for (o, v) in dst.iter_mut().zip(&tmp[j * w..(j + 1) * w]) {
                *o += kv * v;
            }
        }
        for o in dst.iter_mut() {
            *o /= mass;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_mean_of_a_constant_is_the_constant_and_matches_brute_force() {
        let (h, w) = (7, 9);
        let src: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32).collect();
        let mut out = vec![0.0; h * w];
        box_mean(&src, &mut out, h, w, 5);
        for y in 0..h {
            for x in 0..w {
                let (mut s, mut c) = (0.0, 0.0);
                for yy in y.saturating_sub(2)..(y + 3).min(h) {
                    for xx in x.saturating_sub(2)..(x + 3).min(w) {
                        s += src[yy * w + xx];
                        c += 1.0;
                    }
                }
                assert!((out[y * w + x] - s / c).abs() < 1e-4, "({y},{x})");
            }
        }
        box_mean(&vec![3.0; h * w], &mut out, h, w, 31);
        assert!(out.iter().all(|v| (v - 3.0).abs() < 1e-6));
    }

    /// xorshift Gaussian-ish noise (sum of 12 uniforms), s.d. 1.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..12)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn blur_keeps_constants_and_mass() {
        let (h, w) = (40, 50);
        assert!(
            gaussian_blur(&vec![2.0; h * w], h, w, 3.0)
                .iter()
                .all(|v| (v - 2.0).abs() < 1e-5)
        );
        let mut spike = vec![0.0f32; h * w];
        spike[20 * w + 25] = 1.0;
        let b = gaussian_blur(&spike, h, w, 2.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-3);
        assert!(b[20 * w + 25] > b[20 * w + 27] && b[20 * w + 27] > b[20 * w + 29]);
    }

    #[test]
    fn mode_and_sd_ignore_a_heavy_bright_tail() {
        // 40% background N(10, 2), 60% "cells" spread from 20 to 200.
        let mut v: Vec<f32> = noise(4000, 3).iter().map(|x| 10.0 + 2.0 * x).collect();
        v.extend((0..6000).map(|i| 20.0 + 180.0 * (i as f32 / 6000.0)));
        let (mode, sd) = mode_and_sd(&v);
        assert!((mode - 10.0).abs() < 0.5, "mode {mode}");
        assert!((sd - 2.0).abs() < 0.4, "sd {sd}");
        let z = robust_z(&v);
        assert!(z[5000] > 10.0);
    }

    #[test]
    fn local_background_follows_a_gradient_under_dense_blobs() {
        let (h, w) = (90, 120);
        let n = noise(h * w, 5);
        let img: Vec<f32> = (0..h * w)
            .map(|i| {
                let (y, x) = (i / w, i % w);
                let blob = if (y % 12 < 8) && (x % 12 < 8) {
                    100.0
                } else {
                    0.0
                };
                50.0 + 0.5 * x as f32 + blob + n[i]
            })
            .collect();
        let r = above_local_background(&img, h, w, 31);
        // Between blobs the residual is near 0 everywhere, whatever the gradient.
        for y in (9..h).step_by(12) {
            for x in (10..w - 10).step_by(7) {
                assert!(r[y * w + x].abs() < 6.0, "({y},{x}) {}", r[y * w + x]);
            }
        }
    }
}
