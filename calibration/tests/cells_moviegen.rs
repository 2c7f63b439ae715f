//! Cell detection scored on movies from the independent generator (`fixtures/moviegen`),
//! which differs from the rig simulator the detector was first tuned on in every modelling
//! choice (see its crate docs): vessels with moving edges, dendrites, several neuropil
//! components, bleaching, PMT noise, a dark offset, dim and inactive cells, non-rigid motion.
//!
//! Detection uses every frame of the movie (as offline processing should). A detected mask
//! matches a true soma at IoU >= 0.5, one to one (`twinloop_moviegen::match_masks`). Recall is
//! over the somata that fire (an inactive soma is invisible to activity and often to anatomy;
//! recall over all somata is reported too); precision is over all kept ROIs, an ROI on an
//! inactive soma counting as correct.
//!
//! The seeds here are not the classifier's training seeds (1-4, see `CLASSIFIER.md`); 11-13
//! were looked at while the donut-aware merge was made, 21 was not (held out).
//!
//! Measured (release, 256x256 px, 1,000 frames, 120 somata), recall over active somata /
//! precision:
//!
//! | | seed 11 | seed 12 | seed 13 | seed 21 (held out) |
//! | --- | --- | --- | --- | --- |
//! | classifier off | 0.804 / 0.428 | 0.836 / 0.441 | 0.827 / 0.452 | 0.821 / 0.589 |
//! | threshold 0.3 | 0.785 / 0.824 | 0.836 / 0.779 | 0.809 / 0.876 | 0.792 / 0.861 |
//! | threshold 0.5 (default) | 0.729 / 0.929 | 0.818 / 0.869 | 0.755 / 0.934 | 0.764 / 0.882 |
//!
//! The target (recall >= 0.85, precision >= 0.90 at IoU >= 0.5) is **not met** on this
//! generator: nearly every missed soma is a donut, rejected by the classifier with a good mask
//! (weakly active, low correlation), drawn as a crescent (IoU 0.4-0.47), or spilling into a
//! neighbour (`diagnose_missed_somata` lists them). The floors below sit under the measured
//! figures so that a regression trips them; raise them as detection improves.

use twinloop_calibration::imaging::cells::{CalibrationBlock, CellDetectionParams, detect_cells};
use twinloop_moviegen::{MovieConfig, generate, match_masks};

/// Recall over active somata, recall over all, precision, kept ROIs, rejected ROIs.
fn score(seed: u64, threshold: f64) -> (f64, f64, f64, usize, usize) {
    let (r, _) = score_timed(seed, threshold);
    r
}

/// [`score`] and the classification's wall time per frame, s.
fn score_timed(seed: u64, threshold: f64) -> ((f64, f64, f64, usize, usize), f64) {
    let cfg = MovieConfig {
        seed,
        ..MovieConfig::default()
    };
    let movie = generate(&cfg).expect("movie");
    let params = CellDetectionParams {
        calibration_frames: movie.n_frames(),
        classifier_threshold: threshold,
        ..CellDetectionParams::default()
    };
    let block = CalibrationBlock::from_frames(&movie.frames, movie.height, movie.width, &params)
        .expect("block");
    let det = detect_cells(&block, &params).expect("cells");
    let found: Vec<Vec<u32>> = (0..det.masks.len())
        .map(|i| det.masks.cell(i).0.to_vec())
        .collect();
    let m = match_masks(&movie.true_masks(), &found, 0.5);
    let active = m.recall_of(|i| movie.cells[i].active);
    let per_frame = det.report.classify_s / movie.n_frames() as f64;
    (
        (
            active,
            m.recall(),
            m.precision(),
            found.len(),
            det.rejected.len(),
        ),
        per_frame,
    )
}

/// Evaluation seeds (the classifier was trained on 1-8): 11-13 were looked at while the masks
/// were tuned; 21 was not (held out).
const SEEDS: [u64; 4] = [11, 12, 13, 21];
/// Floors under the measured figures (see the module docs and `CLASSIFIER.md`).
const RECALL_FLOOR: f64 = 0.70;
const PRECISION_FLOOR: f64 = 0.84;

#[test]
fn classifier_keeps_somata_and_rejects_vessels_on_independent_movies() {
    for seed in SEEDS {
        let (before_recall, _, before_precision, _, _) = score(seed, 0.0);
        let (recall, recall_all, precision, kept, rejected) =
            score(seed, CellDetectionParams::default().classifier_threshold);
        println!(
            "seed {seed}: recall(active) {recall:.3} (all {recall_all:.3}), precision {precision:.3}, \
             {kept} kept, {rejected} rejected; without the classifier {before_recall:.3} / {before_precision:.3}"
        );
        assert!(recall >= RECALL_FLOOR, "seed {seed}: recall {recall:.3}");
        assert!(
            precision >= PRECISION_FLOOR,
            "seed {seed}: precision {precision:.3}"
        );
        // The classifier must do the work: without it, precision is far lower.
        assert!(
            precision > before_precision + 0.2,
            "seed {seed}: {before_precision:.3} -> {precision:.3}"
        );
    }
}

#[test]
#[ignore = "prints the table for CLASSIFIER.md; cargo test -p twinloop-calibration --release --test cells_moviegen -- --ignored --nocapture"]
fn report_before_and_after_the_classifier() {
    for seed in SEEDS {
        for threshold in [
            0.0,
            0.3,
            CellDetectionParams::default().classifier_threshold,
        ] {
            let ((ra, r, p, n, rej), per_frame) = score_timed(seed, threshold);
            println!(
                "seed {seed} threshold {threshold:.2}: recall(active) {ra:.3} recall(all) {r:.3} \
                 precision {p:.3} kept {n} rejected {rej}; classification {:.1} us per frame",
                per_frame * 1e6
            );
        }
    }
}

#[test]
#[ignore = "diagnostic: SEEDS=11,12 cargo test -p twinloop-calibration --release --test cells_moviegen -- --ignored diagnose --nocapture"]
/// Prints each active soma detection misses (its best-overlapping ROI, kept or rejected, and
/// their sizes) and each kept ROI that matches no soma: where recall and precision are lost.
fn diagnose_missed_somata() {
    let seeds: Vec<u64> = std::env::var("SEEDS")
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(SEEDS.to_vec());
    for seed in seeds {
        let cfg = MovieConfig {
            seed,
            ..MovieConfig::default()
        };
        let movie = generate(&cfg).expect("movie");
        let params = CellDetectionParams {
            calibration_frames: movie.n_frames(),
            ..CellDetectionParams::default()
        };
        let block =
            CalibrationBlock::from_frames(&movie.frames, movie.height, movie.width, &params)
                .expect("block");
        let det = detect_cells(&block, &params).expect("cells");
        let mut found: Vec<Vec<u32>> = (0..det.masks.len())
            .map(|i| det.masks.cell(i).0.to_vec())
            .collect();
        let n_kept = found.len();
        found.extend(
            det.rejected
                .iter()
                .map(|(m, _)| m.iter().map(|p| p.0).collect::<Vec<u32>>()),
        );
        let truth = movie.true_masks();
        let m = match_masks(&truth, &found[..n_kept], 0.5);
        println!(
            "seed {seed}: recall(active) {:.3} precision {:.3}",
            m.recall_of(|i| movie.cells[i].active),
            m.precision()
        );
        for (i, c) in movie.cells.iter().enumerate() {
            if m.truth_to_detected[i].is_some() || !c.active {
                continue;
            }
            let t: std::collections::HashSet<u32> = c.mask.iter().copied().collect();
            let mut best = (0.0, usize::MAX, 0usize);
            for (d, f) in found.iter().enumerate() {
                let inter = f.iter().filter(|p| t.contains(p)).count();
                if inter == 0 {
                    continue;
                }
                let iou = inter as f64 / (t.len() + f.len() - inter) as f64;
                if iou > best.0 {
                    best = (iou, d, inter);
                }
            }
            let (iou, d, inter) = best;
            let what = if d == usize::MAX {
                "none"
            } else if d < n_kept {
                "kept"
            } else {
                "rejected"
            };
            let flen = if d == usize::MAX { 0 } else { found[d].len() };
            let prob = if d >= n_kept && d != usize::MAX {
                det.rejected[d - n_kept].1.probability
            } else {
                f64::NAN
            };
            println!(
                "  miss cell {i} at ({:.0},{:.0}) r {:.1} donut {} contrast {:.2} true {} px; best {what} iou {iou:.2} det {flen} px inter {inter} p {prob:.2}",
                c.centre_y_px,
                c.centre_x_px,
                c.radius_px,
                c.donut,
                c.contrast,
                t.len()
            );
        }
        let fp: Vec<usize> = (0..n_kept)
            .filter(|&d| m.detected_to_truth[d].is_none())
            .collect();
        for d in fp {
            let f: std::collections::HashSet<u32> = found[d].iter().copied().collect();
            let mut best = (0.0, usize::MAX);
            for (i, c) in movie.cells.iter().enumerate() {
                let inter = c.mask.iter().filter(|p| f.contains(p)).count();
                let iou = inter as f64 / (c.mask.len() + f.len() - inter) as f64;
                if iou > best.0 {
                    best = (iou, i);
                }
            }
            println!(
                "  fp det {d} {} px best iou {:.2} cell {} p {:.2}",
                f.len(),
                best.0,
                best.1 as i64,
                det.verdicts[d].probability
            );
        }
    }
}
