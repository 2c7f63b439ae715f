//! Cell detection: seeds at the peaks of the correlation and background-subtracted mean images,
//! each grown into a weighted mask from the binned movie.
//!
//! Suite2p-like in spirit (its detection finds peaks of a spatially filtered activity image,
//! grows each into the pixels whose time courses load on the peak's, and takes found cells out
//! before looking again), adapted to a short calibration block, dense fields, and cells that
//! barely fire:
//!
//! 1. **Detection image.** The correlation image (activity) and the mean image minus its local
//!    background (anatomy: a soma is brighter than the neuropil around it) are each put in
//!    robust s.d. units, (v - mode) / s with the mode of the image's histogram and s read off
//!    the side of the mode below it (cells, a positive tail covering up to half of a dense
//!    field, reach neither; see `background`), then smoothed with a Gaussian of
//!    `cell_diameter_px / 5`. The detection image is the larger of the two at each pixel (it
//!    scores the seeds; seeds must reach `threshold_sd` in the larger z-score smoothed the same
//!    way, with the cells found so far taken out).
//! 2. **Seeds** are local maxima, at least `cell_diameter_px / 3` apart, of a blob image: the
//!    larger z-score (compressed logarithmically above the threshold, so a bright soma does not
//!    bury a dim neighbour) smoothed at that scale minus the same smoothed at twice the scale (a
//!    difference of Gaussians, whose peaks stay apart for touching somata where plain smoothing
//!    merges them into ridges). Seeds closer than a diameter with no valley between them (the
//!    blob image never below 0.85 of the weaker) are one soma.
//! 3. **Territories** (`seeds`): every pixel within a diameter of a seed goes to the nearest.
//! 4. **Masks** (`grow`): weights blend anatomy with the activity loading on the seed's core
//!    trace (activity counts fully once the seed's correlation z-score reaches 6, not at all
//!    below 2); pixels under `mask_threshold` x the robust peak weight are dropped; the mask is
//!    the connected region around the seed. Masks under `min_area_fraction` or over
//!    `max_area_fraction` times a disc of `cell_diameter_px` are rejected.
//! 5. **Passes.** The accepted masks (grown by 1 px) are set to background in the blob image
//!    and steps 2-4 run again (`passes` in all) on what is left, so somata hidden beside
//!    brighter ones surface; later seeds must lie 0.75 diameters from every accepted centroid
//!    (a cell's unmasked rim is not a new cell).
//! 6. **Merging** (`merge`): touching masks closer than a diameter whose mean traces correlate
//!    at least `merge_correlation` are one soma seeded twice. With `fill_holes` on, so are
//!    touching masks whose traces correlate at least 0.5 and whose union, its enclosed pixels
//!    filled, is round (aspect ratio <= 1.5, compactness <= 1.1): the two crescents a donut soma
//!    is grown into when it is seeded on both sides of its dark nucleus (two touching somata
//!    make an elongated union). Then every mask's enclosed pixels are filled (the nucleus
//!    between two merged crescents).
//! 7. **Classification** ([`super::classify`]): every mask is scored on shape, brightness
//!    against its surround and activity; masks whose probability of being a soma is under
//!    `classifier_threshold` (vessel edges, dendrites, noise) are rejected, and kept with their
//!    verdicts in [`Detection::rejected`], unless they are unmistakably silent somata: far
//!    brighter than their surround, round, compact, with no dark lumen beside them.
//!
//! Cost: O(frames x pixels) for the images (done while streaming), O(pixels x diameter) per
//! pass for smoothing and seeds, and O(cells x diameter^2 x bins) to grow masks: about 1.3 s for
//! 500 frames of 512x512 with 1,000 cells in release, after 1.1 s to finish the images.

use super::background::{above_local_background, gaussian_blur, median, robust_z};
use super::classify::features::roi_features;
use super::classify::{RoiClassifier, RoiVerdict};
use super::grow::Grower;
use super::images::CalibrationBlock;
use super::merge::{RoundMerge, fill_enclosed, merge_split_cells};
use super::seeds::{centroid, drop_same_cell_seeds, local_maxima, territories};
use super::{CellDetectionParams, CellMasks, CellsError};
use serde::Serialize;

/// Smoothing scale of the detection image, in cell diameters (sigma = d / 5).
const SMOOTH_PER_DIAMETER: f64 = 5.0;
/// The surround of the blob image is this many times the centre's scale.
const SURROUND_SCALE: f32 = 2.0;
/// Seeds are local maxima over a square of half-side d / 3.
const SEED_SPACING_PER_DIAMETER: f64 = 3.0;
/// Two seeds are one soma unless the blob image dips below this fraction of the weaker one's
/// value between them.
const SAME_CELL_DIP: f32 = 0.85;
/// Seeds of later passes lie at least this many diameters from every accepted centroid.
const LATER_SEED_SEPARATION: f32 = 0.75;
/// Accepted masks, grown by this many px, are set to background before the next pass.
const CLEAR_MARGIN_PX: usize = 1;
/// Correlation z-score of a seed below which its weights are anatomy only, and the span over
/// which the activity share rises to 1.
const ACTIVITY_Z0: f32 = 2.0;
const ACTIVITY_Z_SPAN: f32 = 4.0;
/// The donut-aware merge (`merge::RoundMerge`): trace correlation and the union's shape.
const ROUND_MERGE_MIN_R: f32 = 0.5;
const ROUND_MERGE_MAX_ASPECT: f64 = 1.5;
const ROUND_MERGE_MAX_COMPACT: f64 = 1.1;
/// A candidate the classifier rejects is kept as a silent soma when its mean-image z-score
/// reaches this many seed thresholds and its shape is a soma's (see `silent_soma`).
const SILENT_ANATOMY_SD: f32 = 5.0;
const SILENT_MAX_ASPECT: f64 = 1.4;
const SILENT_MAX_COMPACT: f64 = 1.1;
const SILENT_MIN_RIM_Z: f64 = -2.0;

/// What detection found, and how.
pub struct Detection {
    /// The cells, strongest first, with their neuropil masks.
    pub masks: CellMasks,
    /// Counts and image statistics.
    pub report: DetectionReport,
    /// The detection image (robust s.d. units; see the module docs), row-major.
    pub detection_image: Vec<f32>,
    /// The mean image minus its local background, ADU, row-major.
    pub mean_above_background: Vec<f32>,
    /// The classifier's verdict on each kept cell, in cell order.
    pub verdicts: Vec<RoiVerdict>,
    /// The ROIs the classifier rejected: (pixel, weight) lists and their verdicts.
    pub rejected: Vec<(Vec<(u32, f32)>, RoiVerdict)>,
}

/// Counts and image statistics of one detection, for the session log and for humans.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DetectionReport {
    /// Frames in the calibration block.
    pub frames: usize,
    /// Time bins the correlations were taken over.
    pub bins: usize,
    /// Seed threshold, robust s.d. of the detection image.
    pub threshold_sd: f64,
    /// Seeds tried, over all passes.
    pub seeds: usize,
    /// Cells kept.
    pub cells: usize,
    /// Masks rejected as smaller than a soma.
    pub rejected_small: usize,
    /// Masks rejected as larger than a soma.
    pub rejected_large: usize,
    /// Masks merged into a neighbour as two parts of one cell.
    pub merged: usize,
    /// Masks the classifier rejected as not a soma.
    pub rejected_classifier: usize,
    /// Wall time of classification (features and probabilities of every candidate), s.
    pub classify_s: f64,
    /// Seeds beyond `max_cells`.
    pub dropped_over_max: usize,
    /// Largest value of the correlation image.
    pub correlation_max: f32,
    /// Median of the correlation image.
    pub correlation_median: f32,
    /// Largest value of the detection image, robust s.d.
    pub detection_peak_sd: f32,
}

/// Detects cells in a finished calibration block.
pub fn detect_cells(
    block: &CalibrationBlock,
    params: &CellDetectionParams,
) -> Result<Detection, CellsError> {
    params.validate()?;
    let img = &block.images;
    let (h, w) = (img.height, img.width);
    let n = h * w;
    let needed = params.min_frames.max(3 * block.bin_frames());
    if img.frames < needed {
        return Err(CellsError::TooFewFrames {
            got: img.frames,
            needed,
        });
    }
    let d = params.cell_diameter_px;
    let sigma = (d / SMOOTH_PER_DIAMETER) as f32;
    let t = params.threshold_sd as f32;

    // 1. Detection image.
    let mean_above_background = above_local_background(&img.mean, h, w, params.background_box_px());
    let z_mean_px = robust_z(&mean_above_background);
    let z_corr_px = robust_z(&img.correlation);
    let z_mean = gaussian_blur(&z_mean_px, h, w, sigma);
    let z_corr = gaussian_blur(&z_corr_px, h, w, sigma);
    let detection: Vec<f32> = z_mean.iter().zip(&z_corr).map(|(a, b)| a.max(*b)).collect();
    let mut z_blob: Vec<f32> = z_mean_px
        .iter()
        .zip(&z_corr_px)
        .map(|(a, b)| {
            let z = a.max(*b);
            if z > t { t * (1.0 + (z / t).ln()) } else { z }
        })
        .collect();
    let mut report = DetectionReport {
        frames: img.frames,
        bins: block.bins(),
        threshold_sd: params.threshold_sd,
        correlation_max: img.correlation.iter().copied().fold(f32::MIN, f32::max),
        correlation_median: median(&img.correlation),
        detection_peak_sd: detection.iter().copied().fold(f32::MIN, f32::max),
        ..DetectionReport::default()
    };

    // 2-5, in passes.
    let spacing = (d / SEED_SPACING_PER_DIAMETER).round().max(1.0) as usize;
    let reach = d.ceil() as isize;
    let expected = params.expected_area_px();
    let min_area = (params.min_area_fraction * expected).ceil() as usize;
    let max_area = (params.max_area_fraction * expected).floor() as usize;
    let core_r = (d / 4.0).max(1.5) as f32;
    let mut grower = Grower::new((2 * reach + 1) as usize, block.bins(), params.fill_holes);
    let mut claimed = vec![false; n];
    let mut owner = vec![u32::MAX; n];
    let mut owner_d2 = vec![f32::INFINITY; n];
    let mut masks: Vec<Vec<(u32, f32)>> = Vec::new();
    let mut scores = Vec::new();
    for pass in 0..params.passes {
        let centre = gaussian_blur(&z_blob, h, w, sigma);
        let surround = gaussian_blur(&z_blob, h, w, SURROUND_SCALE * sigma);
        let blob: Vec<f32> = centre.iter().zip(&surround).map(|(c, s)| c - s).collect();
        let mut seeds = local_maxima(&blob, h, w, spacing, |p| {
            centre[p] >= t && blob[p] > 0.0 && !claimed[p]
        });
        if pass > 0 {
            let min_sep = LATER_SEED_SEPARATION * d as f32;
            let centres: Vec<(f32, f32)> = masks.iter().map(|m| centroid(m, w)).collect();
            seeds.retain(|&s| {
                let (y, x) = ((s / w) as f32, (s % w) as f32);
                centres.iter().all(|c| (c.0 - y).hypot(c.1 - x) >= min_sep)
            });
        }
        seeds.sort_unstable_by(|&a, &b| detection[b].total_cmp(&detection[a]).then(a.cmp(&b)));
        let seeds = drop_same_cell_seeds(&seeds, &blob, w, d as f32, SAME_CELL_DIP);
        report.seeds += seeds.len();
        territories(&seeds, &claimed, h, w, reach, &mut owner, &mut owner_d2);
        let before = masks.len();
        for (k, &s) in seeds.iter().enumerate() {
            if masks.len() >= params.max_cells {
                report.dropped_over_max += seeds.len() - k;
                break;
            }
            let activity = ((z_corr[s] - ACTIVITY_Z0) / ACTIVITY_Z_SPAN).clamp(0.0, 1.0);
            let region = grower.grow(
                block,
                &mean_above_background,
                &owner,
                k as u32,
                s,
                reach,
                core_r,
                activity,
                params.mask_threshold as f32,
            );
            if region.len() < min_area {
                report.rejected_small += 1;
                continue;
            }
            if region.len() > max_area {
                report.rejected_large += 1;
                continue;
            }
            for &(p, _) in region {
                claimed[p as usize] = true;
            }
            masks.push(region.to_vec());
            scores.push(detection[s]);
        }
        if masks.len() == before || masks.len() >= params.max_cells {
            break;
        }
        // Take the new cells, grown by a margin, out of the blob image.
        let g = CLEAR_MARGIN_PX;
        for m in &masks[before..] {
            for &(p, _) in m {
                let (y, x) = (p as usize / w, p as usize % w);
                for yy in y.saturating_sub(g)..(y + g + 1).min(h) {
                    for xx in x.saturating_sub(g)..(x + g + 1).min(w) {
                        z_blob[yy * w + xx] = 0.0;
                    }
                }
            }
        }
    }

    // 6. Merging.
    let merge_r = params.merge_correlation as f32;
    // The donut-aware rule rides on `fill_holes` (both are off for configs written before them,
    // so recorded sessions replay bit for bit).
    let round = params.fill_holes.then_some(RoundMerge {
        min_r: ROUND_MERGE_MIN_R,
        max_aspect: ROUND_MERGE_MAX_ASPECT,
        max_compact: ROUND_MERGE_MAX_COMPACT,
    });
    report.merged = merge_split_cells(
        block,
        &mut masks,
        &mut scores,
        d as f32,
        max_area,
        merge_r,
        round,
    );
    if params.fill_holes {
        for m in &mut masks {
            fill_enclosed(m, h, w);
        }
    }

    // 7. Classification.
    let started = std::time::Instant::now();
    let classifier = RoiClassifier::built_in()?;
    let features = roi_features(block, &masks, &z_mean_px, &z_corr_px, expected);
    let mut verdicts = Vec::with_capacity(masks.len());
    let mut rejected = Vec::new();
    let mut kept_scores = Vec::with_capacity(masks.len());
    let mut kept = Vec::with_capacity(masks.len());
    for ((mask, score), f) in masks.into_iter().zip(scores).zip(features) {
        let probability = classifier.probability(&f);
        let is_cell = probability >= params.classifier_threshold || silent_soma(&f, t);
        let verdict = RoiVerdict {
            features: f,
            probability,
            is_cell,
        };
        if is_cell {
            kept.push(mask);
            kept_scores.push(score);
            verdicts.push(verdict);
        } else {
            rejected.push((mask, verdict));
        }
    }
    let (masks, scores) = (kept, kept_scores);
    report.rejected_classifier = rejected.len();
    report.classify_s = started.elapsed().as_secs_f64();
    report.cells = masks.len();
    if masks.is_empty() {
        let mut sorted_mean = img.mean.clone();
        sorted_mean.sort_unstable_by(f32::total_cmp);
        return Err(CellsError::NoCells {
            threshold_sd: params.threshold_sd,
            peak_sd: f64::from(report.detection_peak_sd),
            seeds: report.seeds,
            rejected: report.rejected_small + report.rejected_large,
            max_correlation: report.correlation_max,
            median_correlation: report.correlation_median,
            mean_median_adu: sorted_mean[n / 2],
            mean_max_adu: sorted_mean[n - 1],
        });
    }
    let masks = CellMasks::from_weighted(h, w, &masks, &scores, &params.neuropil)?;
    Ok(Detection {
        masks,
        report,
        detection_image: detection,
        mean_above_background,
        verdicts,
        rejected,
    })
}

/// A silent soma the activity-weighted classifier would reject: far brighter than its
/// surround (mean-image z at least `SILENT_ANATOMY_SD` x the seed threshold), round and
/// compact, and with no dark lumen beside it (vessel edges are bright next to a dark one).
fn silent_soma(f: &super::classify::RoiFeatures, threshold_sd: f32) -> bool {
    f.anatomy_z >= f64::from(SILENT_ANATOMY_SD * threshold_sd)
        && f.aspect_ratio <= SILENT_MAX_ASPECT
        && f.compact <= SILENT_MAX_COMPACT
        && f.dark_rim > SILENT_MIN_RIM_Z
        && (0.5..=2.0).contains(&f.npix_norm)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::imaging::cells::images::CalibrationBlock;

    /// xorshift noise in [-0.5, 0.5) (also the merge tests').
    pub(in crate::imaging::cells) struct Noise(pub u64);
    impl Noise {
        pub fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }
        pub fn gauss(&mut self) -> f32 {
            (0..12).map(|_| self.next()).sum()
        }
    }

    /// Synthetic movie: discs of radius 5 at known centres, each with sparse decaying
    /// transients, on noisy neuropil. Returns frames and the true discs.
    fn blobs(h: usize, w: usize, n: usize, active: bool) -> (Vec<u16>, Vec<(f32, f32)>) {
        let centres: Vec<(f32, f32)> = (0..4)
            .flat_map(|i| (0..4).map(move |j| (12.0 + 14.0 * i as f32, 12.0 + 15.0 * j as f32)))
            .collect();
        let mut noise = Noise(99);
        let mut calcium = vec![0.0f32; centres.len()];
        let mut frames = Vec::with_capacity(n * h * w);
        let mut img = vec![0.0f32; h * w];
        for _ in 0..n {
            for c in calcium.iter_mut() {
                *c *= 0.95;
                if active && noise.next() > 0.47 {
                    *c += 1.0;
                }
            }
            img.fill(200.0);
            for (k, &(cy, cx)) in centres.iter().enumerate() {
                for y in (cy as usize - 6)..(cy as usize + 7) {
                    for x in (cx as usize - 6)..(cx as usize + 7) {
                        let d2 = (y as f32 - cy).powi(2) + (x as f32 - cx).powi(2);
                        if d2 <= 25.0 {
                            img[y * w + x] += 150.0 * (1.0 + calcium[k]);
                        }
                    }
                }
            }
            for v in &img {
                frames.push((v + 30.0 * noise.gauss()).clamp(0.0, 65535.0) as u16);
            }
        }
        (frames, centres)
    }

    fn params() -> CellDetectionParams {
        CellDetectionParams {
            cell_diameter_px: 10.0,
            min_frames: 100,
            bin_frames: 2,
            ..CellDetectionParams::default()
        }
    }

    fn block(frames: &[u16], h: usize, w: usize, p: &CellDetectionParams) -> CalibrationBlock {
        CalibrationBlock::from_frames(frames, h, w, p).unwrap()
    }

    #[test]
    fn finds_every_synthetic_blob_with_its_mask() {
        let (h, w) = (64, 72);
        let (frames, centres) = blobs(h, w, 200, true);
        let p = params();
        let det = detect_cells(&block(&frames, h, w, &p), &p).unwrap();
        let m = &det.masks;
        let found: Vec<(f32, f32, u32)> = m
            .info()
            .iter()
            .map(|c| (c.centroid_y_px, c.centroid_x_px, c.pixels))
            .collect();
        assert_eq!(m.len(), centres.len(), "{:?} {found:?}", det.report);
        for &(cy, cx) in &centres {
            let hit = m
                .info()
                .iter()
                .find(|c| (c.centroid_y_px - cy).abs() < 1.0 && (c.centroid_x_px - cx).abs() < 1.0);
            let c = hit.unwrap_or_else(|| panic!("no cell at ({cy}, {cx})"));
            let (pixels, weights) = m.cell(c.id as usize);
            // The disc of radius 5 has 81 pixels; the mask is that disc, give or take its rim.
            assert!((60..=110).contains(&pixels.len()), "{} px", pixels.len());
            let inside = pixels
                .iter()
                .filter(|&&q| {
                    let (y, x) = ((q as usize / w) as f32, (q as usize % w) as f32);
                    (y - cy).powi(2) + (x - cx).powi(2) <= 30.0
                })
                .count();
            assert!(inside as f32 >= 0.9 * pixels.len() as f32);
            assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn silent_bright_cells_are_found_from_the_mean_image() {
        let (h, w) = (64, 72);
        let (frames, centres) = blobs(h, w, 120, false);
        let p = params();
        let det = detect_cells(&block(&frames, h, w, &p), &p).unwrap();
        assert_eq!(det.masks.len(), centres.len(), "{:?}", det.report);
    }

    #[test]
    fn pure_noise_has_no_cells_and_says_why() {
        let (h, w, n) = (48, 48, 120);
        let mut noise = Noise(7);
        let frames: Vec<u16> = (0..n * h * w)
            .map(|_| (500.0 + 30.0 * noise.gauss()) as u16)
            .collect();
        let p = CellDetectionParams {
            threshold_sd: 8.0,
            ..params()
        };
        let err = detect_cells(&block(&frames, h, w, &p), &p).err().unwrap();
        let msg = err.to_string();
        assert!(matches!(err, CellsError::NoCells { .. }), "{msg}");
        assert!(
            msg.contains("8 robust s.d.") && msg.contains("correlation image max"),
            "{msg}"
        );
    }

    #[test]
    fn bad_blocks_are_refused_with_reasons() {
        let (h, w) = (32, 32);
        let p = params();
        let make = |frames: &[u16]| {
            CalibrationBlock::from_frames(frames, h, w, &p)
                .err()
                .unwrap()
                .to_string()
        };
        let e = make(&vec![0u16; 150 * h * w]);
        assert!(e.contains("flat") && e.contains("is 0"), "{e}");
        let e = make(&vec![700u16; 150 * h * w]);
        assert!(e.contains("no pixel changes"), "{e}");
        let e = make(&vec![u16::MAX; 150 * h * w]);
        assert!(e.contains("saturated") && e.contains("100.000%"), "{e}");
        let e = make(&vec![5u16; 40 * h * w]);
        assert!(e.contains("40 frames") && e.contains("at least 100"), "{e}");
        let e = CalibrationBlock::from_frames(&[1u16; 1000], h, w, &p)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("expected 1024"), "{e}");
    }
}
