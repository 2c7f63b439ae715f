//! What the classifier sees of a candidate ROI: its shape, its brightness against its
//! surround, and above all its activity.
//!
//! Shape and size follow suite2p's `stat` fields: `npix_norm` (pixels over the area of a disc
//! of the expected diameter; suite2p divides by the mean of the first ROIs instead, which
//! depends on what else was found), `compact` (mean distance of the pixels from the centroid
//! over that of a disc of the same area: 1 for a disc, larger for anything stretched or
//! ragged), `aspect_ratio` (major over minor axis of the pixel covariance). Activity is the
//! skewness of the ROI's weighted trace over the binned, neuropil-subtracted movie (a calcium
//! transient is a rare large positive excursion; a vessel edge moving with the lumen gives
//! symmetric fluctuations, skew about 0) and the trace's largest excursion in robust s.d.
//! (`peak_sd`). Brightness is the mean z-score of the mean image above its local background
//! (`anatomy_z`), the mean z-score of the correlation image (`corr_z`), and `dark_rim`: the
//! 10th percentile of the mean image's z-score in a ring 1-4 px outside the ROI, strongly
//! negative next to a vessel's dark lumen.

use super::super::images::CalibrationBlock;
use serde::{Deserialize, Serialize};

/// Features of one ROI (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoiFeatures {
    /// Pixels in the mask.
    pub npix: usize,
    /// `npix` over the area of a disc of the expected cell diameter.
    pub npix_norm: f64,
    /// Mean pixel distance from the centroid over that of a disc of the same area (>= ~1).
    pub compact: f64,
    /// Major over minor axis of the pixel covariance (>= 1).
    pub aspect_ratio: f64,
    /// Radius of the ellipse of the pixel covariance, geometric mean of its axes, px.
    pub radius_px: f64,
    /// Skewness of the weighted trace over the binned movie.
    pub skew: f64,
    /// S.d. of that trace, ADU.
    pub std_adu: f64,
    /// Largest excursion of the trace above its median, robust s.d. (MAD x 1.4826).
    pub peak_sd: f64,
    /// Largest excursion below the median, robust s.d.: as large as `peak_sd` for symmetric
    /// fluctuations (a pulsing vessel), small for calcium transients.
    pub trough_sd: f64,
    /// Mean z-score of the mean image above its local background, over the mask.
    pub anatomy_z: f64,
    /// Mean z-score of the correlation image over the mask.
    pub corr_z: f64,
    /// 10th percentile of the mean image's z-score in the ring 1-4 px outside the mask.
    pub dark_rim: f64,
    /// Fraction of the mask's pixels that are also in another ROI.
    pub overlap: f64,
    /// Weighted centroid (y, x), px.
    pub centroid_px: (f64, f64),
}

/// Computes the features of every ROI. `z_mean` and `z_corr` are the robust z-scores of the
/// mean image above its background and of the correlation image; `expected_area` is the
/// area of a disc of the expected diameter, px.
pub(crate) fn roi_features(
    block: &CalibrationBlock,
    rois: &[Vec<(u32, f32)>],
    z_mean: &[f32],
    z_corr: &[f32],
    expected_area: f64,
) -> Vec<RoiFeatures> {
    let (h, w) = (block.images.height, block.images.width);
    let mut count = vec![0u16; h * w];
    for r in rois {
        for &(p, _) in r {
            count[p as usize] = count[p as usize].saturating_add(1);
        }
    }
    let bins = block.bins();
    let mut trace = vec![0.0f64; bins];
    let mut mark = vec![0u32; h * w];
    let mut ring = Vec::new();
    rois.iter()
        .enumerate()
        .map(|(i, roi)| {
            let npix = roi.len();
            let total: f64 = roi
                .iter()
                .map(|&(_, v)| f64::from(v))
                .sum::<f64>()
                .max(1e-12);
            let shape = shape(roi, w);
            let nf = npix.max(1) as f64;
            // Activity.
            trace.fill(0.0);
            for &(p, v) in roi {
                for (b, t) in trace.iter_mut().enumerate() {
                    *t += f64::from(v) * f64::from(block.binned(b, p as usize));
                }
            }
            trace.iter_mut().for_each(|t| *t /= total);
            let (skew, std_adu) = skewness(&trace);
            let (peak_sd, trough_sd) = excursions(&trace);
            // Brightness.
            let anatomy_z = roi
                .iter()
                .map(|&(p, _)| f64::from(z_mean[p as usize]))
                .sum::<f64>()
                / nf;
            let corr_z = roi
                .iter()
                .map(|&(p, _)| f64::from(z_corr[p as usize]))
                .sum::<f64>()
                / nf;
            let dark_rim = rim_percentile(roi, z_mean, h, w, i as u32 + 1, &mut mark, &mut ring);
            let shared = roi.iter().filter(|&&(p, _)| count[p as usize] > 1).count();
            RoiFeatures {
                npix,
                npix_norm: nf / expected_area,
                compact: shape.compact,
                aspect_ratio: shape.aspect_ratio,
                radius_px: shape.radius_px,
                skew,
                std_adu,
                peak_sd,
                trough_sd,
                anatomy_z,
                corr_z,
                dark_rim,
                overlap: shared as f64 / nf,
                centroid_px: shape.centroid_px,
            }
        })
        .collect()
}

/// Shape statistics of one mask (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shape {
    pub compact: f64,
    pub aspect_ratio: f64,
    pub radius_px: f64,
    /// Weighted centroid (y, x), px.
    pub centroid_px: (f64, f64),
    /// Mean distance of the pixels from their (unweighted) centre, px.
    pub mean_distance_px: f64,
    /// The same for a disc of the same area, px.
    pub disc_distance_px: f64,
}

/// The shape of `roi` ((pixel, weight) on frames `w` px wide).
pub(crate) fn shape(roi: &[(u32, f32)], w: usize) -> Shape {
    let npix = roi.len();
    let total: f64 = roi
        .iter()
        .map(|&(_, v)| f64::from(v))
        .sum::<f64>()
        .max(1e-12);
    let (mut cy, mut cx) = (0.0, 0.0);
    let (mut my, mut mx) = (0.0, 0.0);
    for &(p, v) in roi {
        let (y, x) = ((p as usize / w) as f64, (p as usize % w) as f64);
        cy += f64::from(v) * y;
        cx += f64::from(v) * x;
        my += y;
        mx += x;
    }
    let nf = npix.max(1) as f64;
    let (my, mx) = (my / nf, mx / nf);
    let (mut syy, mut sxx, mut sxy, mut dist) = (0.0, 0.0, 0.0, 0.0);
    for &(p, _) in roi {
        let (y, x) = ((p as usize / w) as f64 - my, (p as usize % w) as f64 - mx);
        syy += y * y;
        sxx += x * x;
        sxy += x * y;
        dist += (y * y + x * x).sqrt();
    }
    // Each pixel is a unit square: add its own variance, 1/12, on each axis.
    let (syy, sxx, sxy) = (syy / nf + 1.0 / 12.0, sxx / nf + 1.0 / 12.0, sxy / nf);
    let tr = syy + sxx;
    let det = (syy * sxx - sxy * sxy).max(1e-12);
    let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
    let (l1, l2) = (tr / 2.0 + disc, (tr / 2.0 - disc).max(1e-6));
    // A uniform disc of area A has mean distance (2/3) sqrt(A / pi) from its centre.
    let disc_mean = (2.0 / 3.0) * (nf / std::f64::consts::PI).sqrt();
    Shape {
        compact: (dist / nf) / disc_mean.max(1e-6),
        aspect_ratio: (l1 / l2).sqrt(),
        radius_px: 2.0 * (l1 * l2).sqrt().sqrt(),
        centroid_px: (cy / total, cx / total),
        mean_distance_px: dist / nf,
        disc_distance_px: disc_mean,
    }
}

/// Skewness and s.d. of `v` (0, 0 when it is constant).
pub(crate) fn skewness(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let m2 = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m3 = v.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
    if m2 <= 0.0 {
        return (0.0, 0.0);
    }
    (m3 / m2.powf(1.5), m2.sqrt())
}

/// (max - median) and (median - min) of `v` over 1.4826 MAD; zeros when the MAD is 0.
fn excursions(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let med = s[s.len() / 2];
    let mut dev: Vec<f64> = s.iter().map(|x| (x - med).abs()).collect();
    dev.sort_unstable_by(f64::total_cmp);
    let mad = 1.4826 * dev[dev.len() / 2];
    if mad > 0.0 {
        ((s[s.len() - 1] - med) / mad, (med - s[0]) / mad)
    } else {
        (0.0, 0.0)
    }
}

/// 10th percentile of `z` over the pixels 2-4 px (Chebyshev) outside the ROI; 0 if none.
fn rim_percentile(
    roi: &[(u32, f32)],
    z: &[f32],
    h: usize,
    w: usize,
    tag: u32,
    mark: &mut [u32],
    ring: &mut Vec<f32>,
) -> f64 {
    // Mark the ROI dilated by 1 with `tag`, so the ring starts beyond the mask's own edge.
    const INNER: usize = 1;
    const OUTER: usize = 4;
    let inner_tag = tag.wrapping_mul(2);
    let outer_tag = inner_tag + 1;
    for &(p, _) in roi {
        let (y, x) = (p as usize / w, p as usize % w);
        for yy in y.saturating_sub(INNER)..(y + INNER + 1).min(h) {
            for xx in x.saturating_sub(INNER)..(x + INNER + 1).min(w) {
                mark[yy * w + xx] = inner_tag;
            }
        }
    }
    ring.clear();
    for &(p, _) in roi {
        let (y, x) = (p as usize / w, p as usize % w);
        for yy in y.saturating_sub(OUTER)..(y + OUTER + 1).min(h) {
            for xx in x.saturating_sub(OUTER)..(x + OUTER + 1).min(w) {
                let q = yy * w + xx;
                if mark[q] != inner_tag && mark[q] != outer_tag {
                    mark[q] = outer_tag;
                    ring.push(z[q]);
                }
            }
        }
    }
    if ring.is_empty() {
        return 0.0;
    }
    let k = ((ring.len() - 1) as f64 * 0.1).round() as usize;
    let (_, v, _) = ring.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*v)
}
