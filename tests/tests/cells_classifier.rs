//! The ROI classifier against both synthetic generators: the rig's simulator and the
//! independent `twinloop-moviegen`.
//!
//! - `train_roi_classifier` (ignored; run by hand) regenerates
//!   `calibration/src/imaging/cells/classifier.json`: it detects cells with the classifier off
//!   (`classifier_threshold` 0) in movies of both generators at the training seeds, labels each
//!   candidate ROI by its best IoU with a true soma (>= 0.4 a soma, < 0.2 not one; in between
//!   left out), and fits the logistic model (`classify::fit`).
//! - `rig_simulator_detection_at_iou` scores the shipped classifier on a rig-simulator movie
//!   of another seed at IoU >= 0.5.
//!
//! `cargo test --release -p twinloop-e2e --test cells_classifier -- --ignored train --nocapture`

use twinloop_calibration::imaging::cells::classify::{RoiFeatures, fit::fit};
use twinloop_calibration::imaging::cells::{CalibrationBlock, CellDetectionParams, detect_cells};
use twinloop_moviegen::{MovieConfig, generate, match_masks};
use twinloop_rig::sim::{SimConfig, SimGeometry, SimMouse};

/// Training seeds of the rig simulator and of moviegen (the evaluation tests use others:
/// 7 for the simulator; 11-13, and the held-out 21, for moviegen). Training on moviegen
/// seeds 1-8 as well was tried (see `CLASSIFIER.md`): precision on moviegen fell, and the
/// shipped model stays the one trained on 1-4.
const RIG_TRAINING_SEEDS: &[u64] = &[1, 2, 3, 4];
const MOVIEGEN_TRAINING_SEEDS: &[u64] = &[1, 2, 3, 4];
/// A rig-simulator footprint pixel is in the soma's mask at this fraction of its peak weight
/// (the nucleus, dimmed to at least 0.4, is inside; the soft edge is cut near the outline).
const RIG_MASK_FRACTION: f32 = 0.35;
const RIG_FRAMES: usize = 1000;
const RIG_SIZE: usize = 256;

/// A movie and its true soma masks.
struct Labelled {
    frames: Vec<u16>,
    size: (usize, usize),
    truth: Vec<Vec<u32>>,
}

fn rig_movie(seed: u64) -> Labelled {
    let geom = SimGeometry {
        imaging_width: RIG_SIZE,
        imaging_height: RIG_SIZE,
        ..SimGeometry::default()
    };
    let mut cfg = SimConfig {
        seed,
        neurons: 250,
        ..SimConfig::default()
    };
    // As if registered, like the e2e cells_quality test.
    cfg.microscope.motion_max_px = 0.0;
    let mut mouse = SimMouse::new(&cfg, &geom).expect("sim config");
    let frames = mouse.record_turning_gratings(&geom, RIG_FRAMES);
    let truth = mouse
        .cells()
        .iter()
        .map(|c| {
            let peak = c.footprint.iter().fold(0.0f32, |m, v| m.max(v.1));
            let mut m: Vec<u32> = c
                .footprint
                .iter()
                .filter(|v| v.1 >= RIG_MASK_FRACTION * peak)
                .map(|v| v.0)
                .collect();
            m.sort_unstable();
            m
        })
        .collect();
    Labelled {
        frames,
        size: (RIG_SIZE, RIG_SIZE),
        truth,
    }
}

fn moviegen_movie(seed: u64) -> Labelled {
    let movie = generate(&MovieConfig {
        seed,
        ..MovieConfig::default()
    })
    .expect("movie");
    Labelled {
        truth: movie.true_masks(),
        size: (movie.height, movie.width),
        frames: movie.frames,
    }
}

/// Detects with `threshold`, using every frame. Returns the found masks (kept then rejected)
/// with their features and the kept count.
fn detect(movie: &Labelled, threshold: f64) -> (Vec<Vec<u32>>, Vec<RoiFeatures>, usize) {
    let (h, w) = movie.size;
    let params = CellDetectionParams {
        calibration_frames: movie.frames.len() / (h * w),
        classifier_threshold: threshold,
        ..CellDetectionParams::default()
    };
    let block = CalibrationBlock::from_frames(&movie.frames, h, w, &params).expect("block");
    let det = detect_cells(&block, &params).expect("cells");
    let mut masks: Vec<Vec<u32>> = (0..det.masks.len())
        .map(|i| det.masks.cell(i).0.to_vec())
        .collect();
    let mut feats: Vec<RoiFeatures> = det.verdicts.iter().map(|v| v.features.clone()).collect();
    let kept = masks.len();
    for (m, v) in &det.rejected {
        let mut px: Vec<u32> = m.iter().map(|p| p.0).collect();
        px.sort_unstable();
        masks.push(px);
        feats.push(v.features.clone());
    }
    (masks, feats, kept)
}

/// Best IoU of each found mask with any true mask.
fn best_iou(truth: &[Vec<u32>], found: &[Vec<u32>]) -> Vec<f64> {
    found
        .iter()
        .map(|f| {
            let one = [f.clone()];
            truth
                .iter()
                .map(|t| match_masks(std::slice::from_ref(t), &one, 0.0).iou[0])
                .fold(0.0, f64::max)
        })
        .collect()
}

#[test]
#[ignore = "regenerates classifier.json; run by hand (see the module docs)"]
fn train_roi_classifier() {
    let mut examples: Vec<(RoiFeatures, bool)> = Vec::new();
    let mut summary = Vec::new();
    for (name, make, seeds) in [
        (
            "rig-sim",
            rig_movie as fn(u64) -> Labelled,
            RIG_TRAINING_SEEDS,
        ),
        ("moviegen", moviegen_movie, MOVIEGEN_TRAINING_SEEDS),
    ] {
        for &seed in seeds {
            let movie = make(seed);
            let (found, feats, _) = detect(&movie, 0.0);
            let ious = best_iou(&movie.truth, &found);
            let (mut pos, mut neg) = (0, 0);
            for (f, iou) in feats.into_iter().zip(ious) {
                if iou >= 0.4 {
                    examples.push((f, true));
                    pos += 1;
                } else if iou < 0.2 {
                    examples.push((f, false));
                    neg += 1;
                }
            }
            summary.push(format!("{name} seed {seed}: {pos} somata, {neg} not"));
        }
    }
    let trained_on = format!(
        "logistic regression (IRLS, ridge 0.01, classes weighted equally) on {} labelled ROIs \
         from detection with the classifier off, every frame used: {}",
        examples.len(),
        summary.join("; ")
    );
    // The labelled set, for looking at it (features as JSON lines).
    let dump: String = examples
        .iter()
        .map(|(f, y)| {
            format!(
                "{{\"cell\": {y}, \"f\": {}}}\n",
                serde_json::to_string(f).expect("json")
            )
        })
        .collect();
    std::fs::write(std::env::temp_dir().join("roi_training_set.jsonl"), dump).expect("dump");
    let c = fit(&examples, trained_on).expect("both classes present");
    let wrong = examples
        .iter()
        .filter(|(f, y)| (c.probability(f) >= 0.5) != *y)
        .count();
    println!("training error {wrong} of {}", examples.len());
    println!("{c:#?}");
    // The new model on the evaluation movies, before it is compiled in (the shipped figures
    // come from the evaluation tests after a rebuild; these omit detection's silent-soma rule).
    for (name, movie) in [
        ("rig-sim", rig_movie(RIG_EVAL_SEED)),
        ("moviegen", moviegen_movie(11)),
        ("moviegen", moviegen_movie(12)),
        ("moviegen", moviegen_movie(13)),
        ("moviegen (held out)", moviegen_movie(21)),
    ] {
        let (found, feats, _) = detect(&movie, 0.0);
        let kept: Vec<Vec<u32>> = found
            .into_iter()
            .zip(&feats)
            .filter(|(_, f)| c.probability(f) >= 0.5)
            .map(|(m, _)| m)
            .collect();
        let m = match_masks(&movie.truth, &kept, 0.5);
        println!(
            "new model on {name}: recall {:.3} precision {:.3} ({} kept)",
            m.recall(),
            m.precision(),
            kept.len()
        );
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../calibration/src/imaging/cells/classifier.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&c).expect("json") + "\n",
    )
    .expect("write");
}

/// Evaluation seed of the rig simulator (training used 1-4).
const RIG_EVAL_SEED: u64 = 7;
/// Floors under the measured figures: recall 0.948, precision 0.996 with the classifier
/// (238 kept, 9 rejected); without it (threshold 0) 0.964 and 0.976.
const RIG_RECALL_FLOOR: f64 = 0.90;
const RIG_PRECISION_FLOOR: f64 = 0.95;

#[test]
fn rig_simulator_detection_at_iou() {
    let movie = rig_movie(RIG_EVAL_SEED);
    let (found, _, kept) = detect(&movie, CellDetectionParams::default().classifier_threshold);
    let m = match_masks(&movie.truth, &found[..kept], 0.5);
    let (all, _, _) = detect(&movie, 0.0);
    let off = match_masks(&movie.truth, &all, 0.5);
    println!(
        "without the classifier: recall {:.3}, precision {:.3}",
        off.recall(),
        off.precision()
    );
    println!(
        "rig simulator seed {RIG_EVAL_SEED}: recall {:.3}, precision {:.3}, {kept} kept, {} rejected",
        m.recall(),
        m.precision(),
        found.len() - kept
    );
    assert!(m.recall() >= RIG_RECALL_FLOOR, "recall {:.3}", m.recall());
    assert!(
        m.precision() >= RIG_PRECISION_FLOOR,
        "precision {:.3}",
        m.precision()
    );
}
