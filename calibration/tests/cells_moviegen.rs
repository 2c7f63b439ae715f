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
//! The seeds here are not the classifier's training seeds (1-4, see `CLASSIFIER.md`).

use twinloop_calibration::imaging::cells::{CalibrationBlock, CellDetectionParams, detect_cells};
use twinloop_moviegen::{MovieConfig, generate, match_masks};

/// Recall over active somata, recall over all, precision, kept ROIs, rejected ROIs.
fn score(seed: u64, threshold: f64) -> (f64, f64, f64, usize, usize) {
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
    (active, m.recall(), m.precision(), found.len(), det.rejected.len())
}

#[test]
#[ignore = "prints the table for CLASSIFIER.md; cargo test -p twinloop-calibration --release --test cells_moviegen -- --ignored --nocapture"]
fn report_before_and_after_the_classifier() {
    for seed in [11, 12, 13] {
        for threshold in [0.0, CellDetectionParams::default().classifier_threshold] {
            let (ra, r, p, n, rej) = score(seed, threshold);
            println!(
                "seed {seed} threshold {threshold:.2}: recall(active) {ra:.3} recall(all) {r:.3} precision {p:.3} kept {n} rejected {rej}"
            );
        }
    }
}
