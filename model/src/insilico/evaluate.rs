//! Scoring a twin on a recording (`twinloop twin evaluate`).
//!
//! The twin streams every frame of every segment of the recording, reset at each segment start
//! (a segment is gap-free, so its state is meaningful throughout); the first `burn_in` frames of
//! each segment are predicted but not scored (the recurrent state is still settling). Frames
//! outside segments are not predicted.
//!
//! Per unit (recording column `i` is twin unit `i`):
//! - repeated trials (equal `stimulus` keys in `recording.json`, at least two) are aligned by
//!   frame within the trial and truncated to the shortest repeat; the stimuli are concatenated in
//!   time, each with the same number of repeats (the smallest count among them, earliest
//!   first). A frame enters a unit's repeat matrix only if every repeat was scored there and the
//!   unit's response is finite on every repeat. From it: CC_abs (repeat-mean response vs the
//!   repeat-mean prediction), CC_max, CC_norm, FEVE (per-repeat predictions);
//! - single-trial correlation over every scored frame where the unit's response is finite;
//! - with a truth array (the simulator's true rates `[T, U]`), the correlation of the
//!   prediction with the truth over the scored frames where the truth is finite.
//!
//! A metric the data cannot give (no repeats, zero variance, no signal above the noise) is
//! `None` for that unit, and medians are over the units that have it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::metrics;
use crate::network::Twin;
use crate::train::Recording;

use super::median;

/// How to run the evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalOptions {
    /// Frames at the start of each segment predicted but not scored.
    pub burn_in: usize,
}

/// One unit's scores; `None` where the data cannot give the metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitScores {
    /// The recording's id for this column.
    pub unit_id: u32,
    pub cc_abs: Option<f64>,
    pub cc_max: Option<f64>,
    pub cc_norm: Option<f64>,
    pub single_trial: Option<f64>,
    pub feve: Option<f64>,
    /// Correlation with the true rates (when a truth array was given).
    pub truth: Option<f64>,
    /// Frames that entered the single-trial correlation.
    pub frames: usize,
    /// Aligned frames per repeat that entered the repeat metrics.
    pub repeat_frames: usize,
}

/// Medians over units (each over the units that have the metric).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Medians {
    pub cc_abs: Option<f64>,
    pub cc_max: Option<f64>,
    pub cc_norm: Option<f64>,
    pub single_trial: Option<f64>,
    pub feve: Option<f64>,
    pub truth: Option<f64>,
}

/// What `evaluate` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Frames in the recording.
    pub frames: usize,
    /// Frames the twin predicted (inside segments).
    pub predicted_frames: usize,
    /// Predicted frames past each segment's burn-in.
    pub scored_frames: usize,
    pub burn_in: usize,
    /// Stimulus keys whose repeats entered the repeat metrics.
    pub repeated_stimuli: usize,
    /// Repeats used per repeated stimulus.
    pub repeats: usize,
    pub median: Medians,
    pub units: Vec<UnitScores>,
}

fn input_err(what: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Input {
        input: what.to_string(),
        reason: reason.into(),
    }
}

/// Checks that the twin can read this recording: same stimulus size, same unit count.
pub fn check_compatible(twin: &Twin, rec: &Recording) -> Result<()> {
    let cfg = twin.config();
    if (rec.height, rec.width) != (cfg.stimulus_height, cfg.stimulus_width) {
        return Err(input_err(
            "recording stimulus",
            format!(
                "frames are {}x{}, the twin reads {}x{}; export the recording at the twin's \
                 resolution",
                rec.height, rec.width, cfg.stimulus_height, cfg.stimulus_width
            ),
        ));
    }
    if rec.units() != cfg.units {
        return Err(input_err(
            "recording unit_ids",
            format!(
                "the recording has {} units, the weights have {}; use the weights fitted to \
                 this session's cells (units map in order)",
                rec.units(),
                cfg.units
            ),
        ));
    }
    Ok(())
}

/// The twin's prediction `[T, U]` for every frame of the recording (NaN outside segments), and
/// which frames are scored (inside a segment, past its burn-in).
pub fn predict_recording(
    twin: &mut Twin,
    rec: &Recording,
    burn_in: usize,
) -> Result<(Vec<f32>, Vec<bool>)> {
    rec.validate()?;
    check_compatible(twin, rec)?;
    let (t, u) = (rec.len(), rec.units());
    let mut pred = vec![f32::NAN; t * u];
    let mut scored = vec![false; t];
    for seg in &rec.meta.segments {
        twin.reset();
        for f in seg.clone() {
            let r = twin.step_u8(
                rec.frame(f),
                &rec.perspective[2 * f..2 * f + 2],
                &rec.modulation[2 * f..2 * f + 2],
            )?;
            pred[f * u..(f + 1) * u].copy_from_slice(&r);
            scored[f] = f - seg.start >= burn_in;
        }
    }
    Ok((pred, scored))
}

/// Runs `twin` over `rec` and scores every unit (see the module docs). `truth`, when given, is
/// the true rates `[T, U]` row-major.
pub fn evaluate(
    twin: &mut Twin,
    rec: &Recording,
    truth: Option<&[f32]>,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let (t, u) = (rec.len(), rec.units());
    if let Some(tr) = truth
        && tr.len() != t * u
    {
        return Err(input_err(
            "truth",
            format!(
                "{} values; need {t} frames x {u} units like responses.npy",
                tr.len()
            ),
        ));
    }
    let (pred, scored) = predict_recording(twin, rec, opts.burn_in)?;
    score(rec, &pred, &scored, truth, opts.burn_in)
}

/// Repeats grouped by stimulus key: per key the trials' first frames (earliest first) and the
/// aligned length; all keys keep the same number of repeats.
fn repeat_groups(rec: &Recording) -> (Vec<(Vec<usize>, usize)>, usize) {
    let mut by_key: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for tr in &rec.meta.trials {
        by_key
            .entry(tr.stimulus.as_str())
            .or_default()
            .push((tr.start, tr.frames));
    }
    let groups: Vec<Vec<(usize, usize)>> = by_key
        .into_values()
        .filter(|g| g.len() >= 2)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    let n = groups.iter().map(Vec::len).min().unwrap_or(0);
    let out = groups
        .into_iter()
        .map(|g| {
            let g = &g[..n];
            let len = g.iter().map(|&(_, f)| f).min().unwrap_or(0);
            (g.iter().map(|&(s, _)| s).collect(), len)
        })
        .filter(|(_, len)| *len > 0)
        .collect::<Vec<_>>();
    (out, n)
}

/// Scores predictions already made (`pred` `[T, U]`, `scored` per frame).
fn score(
    rec: &Recording,
    pred: &[f32],
    scored: &[bool],
    truth: Option<&[f32]>,
    burn_in: usize,
) -> Result<EvalReport> {
    let (t, u) = (rec.len(), rec.units());
    let resp = &rec.responses;
    let (groups, n) = repeat_groups(rec);
    // Aligned frame sets: for each (group, offset), the absolute frame of each repeat, kept
    // only if every repeat was scored there.
    let aligned: Vec<Vec<usize>> = groups
        .iter()
        .flat_map(|(starts, len)| {
            (0..*len).map(move |k| starts.iter().map(|s| s + k).collect::<Vec<_>>())
        })
        .filter(|fs: &Vec<usize>| fs.iter().all(|&f| scored[f]))
        .collect();
    let ok = |f: usize, j: usize| resp[f * u + j].is_finite() && pred[f * u + j].is_finite();
    let mut units = Vec::with_capacity(u);
    for j in 0..u {
        // Single trial: every scored frame with a finite response.
        let (mut y, mut p) = (Vec::new(), Vec::new());
        for f in (0..t).filter(|&f| scored[f] && ok(f, j)) {
            y.push(resp[f * u + j] as f64);
            p.push(pred[f * u + j] as f64);
        }
        let single_trial = metrics::single_trial_correlation(&[y.as_slice()], &[p.as_slice()]).ok();
        let truth_cc = truth.and_then(|tr| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for f in (0..t).filter(|&f| scored[f]) {
                let (x, v) = (tr[f * u + j], pred[f * u + j]);
                if x.is_finite() && v.is_finite() {
                    a.push(x as f64);
                    b.push(v as f64);
                }
            }
            metrics::pearson(&b, &a).ok()
        });
        // Repeats: rows = repeats, columns = aligned frames where all repeats are finite.
        let cols: Vec<&Vec<usize>> = aligned
            .iter()
            .filter(|fs| fs.iter().all(|&f| ok(f, j)))
            .collect();
        let rows = |src: &[f32]| -> Vec<Vec<f64>> {
            (0..n)
                .map(|r| cols.iter().map(|fs| src[fs[r] * u + j] as f64).collect())
                .collect()
        };
        let (ry, rp) = (rows(resp), rows(pred));
        let trials: Vec<&[f64]> = ry.iter().map(Vec::as_slice).collect();
        let preds: Vec<&[f64]> = rp.iter().map(Vec::as_slice).collect();
        let mean_pred: Vec<f64> = (0..cols.len())
            .map(|c| rp.iter().map(|r| r[c]).sum::<f64>() / n.max(1) as f64)
            .collect();
        let (cc_abs, cc_max, feve) = if n >= 2 {
            (
                metrics::cc_abs(&trials, &mean_pred).ok(),
                metrics::cc_max(&trials).ok(),
                metrics::feve(&trials, &preds).ok(),
            )
        } else {
            (None, None, None)
        };
        units.push(UnitScores {
            unit_id: rec.meta.unit_ids[j],
            cc_abs,
            cc_max,
            cc_norm: cc_abs.zip(cc_max).map(|(a, m)| a / m),
            single_trial,
            feve,
            truth: truth_cc,
            frames: y.len(),
            repeat_frames: if n >= 2 { cols.len() } else { 0 },
        });
    }
    let med = |f: fn(&UnitScores) -> Option<f64>| median(units.iter().filter_map(f));
    let median = Medians {
        cc_abs: med(|s| s.cc_abs),
        cc_max: med(|s| s.cc_max),
        cc_norm: med(|s| s.cc_norm),
        single_trial: med(|s| s.single_trial),
        feve: med(|s| s.feve),
        truth: med(|s| s.truth),
    };
    Ok(EvalReport {
        frames: t,
        predicted_frames: (0..t)
            .filter(|f| rec.meta.segments.iter().any(|s| s.contains(f)))
            .count(),
        scored_frames: scored.iter().filter(|&&s| s).count(),
        burn_in,
        repeated_stimuli: if n >= 2 { groups.len() } else { 0 },
        repeats: if n >= 2 { n } else { 0 },
        median,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testnet;
    use super::*;
    use crate::train::{RecordedTrial, RecordingMeta};

    /// A recording for the parity twin: `trials` segments of `len` frames, each one trial of
    /// the same stimulus key with the same frames and behaviour; responses zero for now.
    fn repeated(twin: &Twin, trials: usize, len: usize) -> Recording {
        let (h, w, u) = (
            twin.config().stimulus_height,
            twin.config().stimulus_width,
            twin.config().units,
        );
        let clip: Vec<u8> = (0..len * h * w)
            .map(|i| ((i * 37 + (i / (h * w)) * 11) % 256) as u8)
            .collect();
        let pupil: Vec<f32> = (0..len * 2).map(|i| 0.1 * (i as f32 * 0.7).sin()).collect();
        let behav: Vec<f32> = (0..len * 2).map(|i| 0.5 * (i as f32 * 0.3).cos()).collect();
        Recording {
            height: h,
            width: w,
            frames: clip.repeat(trials),
            perspective: pupil.repeat(trials),
            modulation: behav.repeat(trials),
            responses: vec![0.0; trials * len * u],
            meta: RecordingMeta {
                frame_hz: 30.0,
                unit_ids: (0..u as u32).map(|i| 100 + i).collect(),
                segments: (0..trials).map(|k| k * len..(k + 1) * len).collect(),
                trials: (0..trials)
                    .map(|k| RecordedTrial {
                        start: k * len,
                        frames: len,
                        stimulus: "clip/a".into(),
                    })
                    .collect(),
                standardisation: None,
            },
        }
    }

    /// The twin's own responses, streamed frame by frame as `twin predict` does (reset per
    /// trial): an independent run to compare against.
    fn own_prediction(twin: &mut Twin, rec: &Recording, len: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for f in 0..rec.len() {
            if f % len == 0 {
                twin.reset();
            }
            out.extend(
                twin.step_u8(
                    rec.frame(f),
                    &rec.perspective[2 * f..2 * f + 2],
                    &rec.modulation[2 * f..2 * f + 2],
                )
                .unwrap(),
            );
        }
        out
    }

    #[test]
    fn a_recording_of_the_twin_itself_scores_one() {
        let mut twin = testnet::twin();
        let (len, burn) = (8, 2);
        let mut rec = repeated(&twin, 2, len);
        let own = own_prediction(&mut twin, &rec, len);
        rec.responses = own.clone();
        let u = rec.units();
        // Unit 4 unobserved on one frame of the second repeat: that aligned frame drops for it.
        rec.responses[(len + 5) * u + 4] = f32::NAN;
        let rep = evaluate(&mut twin, &rec, Some(&own), &EvalOptions { burn_in: burn }).unwrap();
        assert_eq!(
            (rep.frames, rep.predicted_frames, rep.scored_frames),
            (16, 16, 12)
        );
        assert_eq!((rep.repeated_stimuli, rep.repeats), (1, 2));
        let one = |v: Option<f64>| (v.unwrap() - 1.0).abs() < 1e-5;
        for s in &rep.units {
            // Noise-free repeats: CC_max = 1; the prediction is the response: CC_abs = CC_norm
            // = single-trial = FEVE = truth = 1.
            assert!(one(s.cc_abs) && one(s.cc_max) && one(s.cc_norm), "{s:?}");
            assert!(one(s.single_trial) && one(s.feve) && one(s.truth), "{s:?}");
        }
        assert_eq!(rep.units[4].unit_id, 104);
        assert_eq!((rep.units[4].frames, rep.units[4].repeat_frames), (11, 5));
        assert_eq!((rep.units[3].frames, rep.units[3].repeat_frames), (12, 6));
        assert!(one(rep.median.cc_norm) && one(rep.median.truth));
        // Without truth there is no truth score.
        let rep = evaluate(&mut twin, &rec, None, &EvalOptions::default()).unwrap();
        assert!(rep.units.iter().all(|s| s.truth.is_none()) && rep.median.truth.is_none());
    }

    /// The alignment rule against the metrics called on matrices built by hand: stimulus "a"
    /// has three repeats, "b" two of unequal length, "c" one (ignored); two repeats per
    /// stimulus are used, earliest first, truncated to the shorter.
    #[test]
    fn repeats_align_by_frame_within_trial() {
        let u = 2;
        let t = 30;
        let trial = |start, frames, key: &str| RecordedTrial {
            start,
            frames,
            stimulus: key.into(),
        };
        let resp: Vec<f32> = (0..t * u)
            .map(|i| ((i * 7919) % 101) as f32 / 10.0)
            .collect();
        let pred: Vec<f32> = (0..t * u)
            .map(|i| ((i * 104_729) % 97) as f32 / 10.0 + 0.5 * resp[i])
            .collect();
        let rec = Recording {
            height: 2,
            width: 2,
            frames: vec![128; t * 4],
            perspective: vec![0.0; t * 2],
            modulation: vec![0.0; t * 2],
            responses: resp.clone(),
            meta: RecordingMeta {
                frame_hz: 30.0,
                unit_ids: vec![7, 8],
                segments: std::iter::once(0..t).collect(),
                trials: vec![
                    trial(20, 4, "a"),
                    trial(0, 4, "a"),
                    trial(10, 4, "a"),
                    trial(5, 3, "b"),
                    trial(15, 4, "b"),
                    trial(25, 5, "c"),
                ],
                standardisation: None,
            },
        };
        let scored = vec![true; t];
        let rep = score(&rec, &pred, &scored, None, 0).unwrap();
        assert_eq!((rep.repeated_stimuli, rep.repeats), (2, 2));
        for j in 0..u {
            // Repeat 1: a@0 (4 frames) then b@5 (3); repeat 2: a@10 then b@15.
            let frames1: Vec<usize> = (0..4).chain(5..8).collect();
            let frames2: Vec<usize> = (10..14).chain(15..18).collect();
            let col = |src: &[f32], fs: &[usize]| -> Vec<f64> {
                fs.iter().map(|&f| src[f * u + j] as f64).collect()
            };
            let (y1, y2) = (col(&resp, &frames1), col(&resp, &frames2));
            let (p1, p2) = (col(&pred, &frames1), col(&pred, &frames2));
            let pm: Vec<f64> = p1.iter().zip(&p2).map(|(a, b)| (a + b) / 2.0).collect();
            let tr = [y1.as_slice(), y2.as_slice()];
            let s = &rep.units[j];
            assert_eq!(s.cc_abs, metrics::cc_abs(&tr, &pm).ok());
            assert_eq!(s.cc_max, metrics::cc_max(&tr).ok());
            assert_eq!(
                s.feve,
                metrics::feve(&tr, &[p1.as_slice(), p2.as_slice()]).ok()
            );
            let all_y = col(&resp, &(0..t).collect::<Vec<_>>());
            let all_p = col(&pred, &(0..t).collect::<Vec<_>>());
            assert_eq!(s.single_trial, metrics::pearson(&all_y, &all_p).ok());
            assert_eq!(s.repeat_frames, 7);
        }
    }

    #[test]
    fn mismatches_are_named() {
        let mut twin = testnet::twin();
        let mut rec = repeated(&twin, 2, 3);
        // One unit too many: both counts in the message.
        rec.meta.unit_ids.push(999);
        rec.responses = vec![0.0; rec.len() * rec.units()];
        let e = evaluate(&mut twin, &rec, None, &EvalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("26 units") && e.contains("weights have 25"),
            "{e}"
        );
        // Wrong stimulus size.
        let rec = Recording {
            height: 4,
            width: 4,
            frames: vec![128; 3 * 16],
            perspective: vec![0.0; 6],
            modulation: vec![0.0; 6],
            responses: vec![0.0; 3 * 25],
            meta: RecordingMeta {
                frame_hz: 30.0,
                unit_ids: (0..25).collect(),
                segments: std::iter::once(0..3).collect(),
                trials: vec![],
                standardisation: None,
            },
        };
        let e = evaluate(&mut twin, &rec, None, &EvalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("4x4") && e.contains("36x64"), "{e}");
        // Truth of the wrong shape; NaN behaviour.
        let mut rec = repeated(&twin, 2, 3);
        let e = evaluate(&mut twin, &rec, Some(&[0.0; 5]), &EvalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truth") && e.contains("6 frames x 25 units"),
            "{e}"
        );
        rec.modulation[3] = f32::NAN;
        let e = evaluate(&mut twin, &rec, None, &EvalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite behaviour"), "{e}");
    }

    #[test]
    fn no_repeats_leaves_the_repeat_metrics_empty() {
        let mut twin = testnet::twin();
        let mut rec = repeated(&twin, 2, 4);
        rec.meta.trials[1].stimulus = "clip/b".into();
        rec.responses = own_prediction(&mut twin, &rec, 4);
        let rep = evaluate(&mut twin, &rec, None, &EvalOptions::default()).unwrap();
        assert_eq!((rep.repeated_stimuli, rep.repeats), (0, 0));
        assert!(
            rep.units
                .iter()
                .all(|s| s.cc_norm.is_none() && s.feve.is_none())
        );
        assert!((rep.median.single_trial.unwrap() - 1.0).abs() < 1e-5);
    }
}
