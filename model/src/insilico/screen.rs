//! The in-silico library screen: every candidate of a [`Library`], matched to the budget, is
//! shown to a [`Responder`] in batches, and each target unit keeps its predicted best.
//!
//! Streaming: one batch's images and its `[batch, targets]` responses are all that is held,
//! so a 10,000-candidate screen of the twin needs memory for a batch, not the library. The
//! twin runs its inference fast path here (the stimulus tracks no gradient).

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::error::{CandleContext, ModelError, Result};

use super::budget::StimulusBudget;
use super::library::{Candidate, Library};
use super::responder::Responder;

/// How to screen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScreenOptions {
    /// Candidates per forward pass.
    pub batch: usize,
    pub budget: StimulusBudget,
}

impl Default for ScreenOptions {
    fn default() -> Self {
        Self {
            batch: 64,
            budget: StimulusBudget::low_contrast(),
        }
    }
}

/// One target's predicted best of the library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryBest {
    pub unit: usize,
    /// Library index of the best candidate.
    pub index: usize,
    pub candidate: Candidate,
    /// Its predicted (scored) response.
    pub response: f64,
    /// The matched image `[H, W]` u8, as it would be shown.
    #[serde(skip)]
    pub image: Vec<u8>,
}

/// What a screen found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScreenReport {
    /// One per target, in the order asked.
    pub best: Vec<LibraryBest>,
    /// Candidates shown to the model.
    pub screened: usize,
    /// Candidates the budget could not be met for (not shown), by family.
    pub skipped: Vec<(String, usize)>,
}

/// Screens `library` for each unit in `targets`.
pub fn screen<R: Responder>(
    model: &mut R,
    library: &Library,
    targets: &[usize],
    opts: &ScreenOptions,
) -> Result<ScreenReport> {
    let bad = |input: &str, reason: String| ModelError::Input {
        input: format!("screen {input}"),
        reason,
    };
    opts.budget
        .validate()
        .map_err(|e| bad("budget", e.to_string()))?;
    if opts.batch == 0 {
        return Err(bad("batch", "0; need at least 1".into()));
    }
    if targets.is_empty() {
        return Err(bad("targets", "no target given".into()));
    }
    let units = model.units();
    if let Some(&u) = targets.iter().find(|&&u| u >= units) {
        return Err(bad(
            "targets",
            format!("unit {u} does not exist; the model has {units} units"),
        ));
    }
    let (h, w) = model.stimulus_size();
    let dev = model.device().clone();
    let cols = Tensor::from_vec(
        targets.iter().map(|&u| u as u32).collect::<Vec<_>>(),
        targets.len(),
        &dev,
    )
    .ctx("screen targets")?;
    let mut best: Vec<Option<(usize, f64)>> = vec![None; targets.len()];
    let mut skipped = vec![0usize; super::library::FAMILIES.len()];
    let mut screened = 0;
    let mut next = 0;
    while next < library.size {
        let mut idx = Vec::with_capacity(opts.batch);
        let mut pix = Vec::with_capacity(opts.batch * h * w);
        while idx.len() < opts.batch && next < library.size {
            match library.image(next, h, w, &opts.budget) {
                Ok((img, _)) => {
                    pix.extend(img.iter().map(|&v| v as f32 / 255.0));
                    idx.push(next);
                }
                Err(e) => {
                    // Families go in turn by index (see `library`).
                    skipped[next % super::library::FAMILIES.len()] += 1;
                    tracing::trace!(index = next, %e, "library candidate skipped");
                }
            }
            next += 1;
        }
        if idx.is_empty() {
            continue;
        }
        let x = Tensor::from_vec(pix, (idx.len(), 1, h, w), &dev).ctx("screen batch")?;
        let r: Vec<Vec<f32>> = model
            .responses(&x)?
            .index_select(&cols, 1)
            .and_then(|r| r.to_device(&Device::Cpu))
            .and_then(|r| r.to_vec2())
            .ctx("screen responses")?;
        for (row, &i) in r.iter().zip(&idx) {
            for (b, &v) in best.iter_mut().zip(row) {
                let v = v as f64;
                // Strictly greater: ties keep the lower index, so the screen is deterministic.
                if v.is_finite() && b.is_none_or(|(_, bv)| v > bv) {
                    *b = Some((i, v));
                }
            }
        }
        screened += idx.len();
    }
    let best = targets
        .iter()
        .zip(best)
        .map(|(&unit, b)| {
            let (index, response) = b.ok_or_else(|| {
                bad(
                    "library",
                    format!(
                        "no candidate met the budget or gave a finite response for unit {unit}"
                    ),
                )
            })?;
            let (image, _) = library
                .image(index, h, w, &opts.budget)
                .map_err(|e| bad("library", e.to_string()))?;
            Ok(LibraryBest {
                unit,
                index,
                candidate: library.candidate(index),
                response,
                image,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let skipped = super::library::FAMILIES
        .iter()
        .zip(skipped)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| (f.to_string(), n))
        .collect();
    Ok(ScreenReport {
        best,
        screened,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::super::mei::{MeiOptions, mei_with, unit_objective};
    use super::super::testnet;
    use super::*;
    use crate::insilico::TwinResponder;
    use crate::insilico::library::Candidate;
    use crate::insilico::responder::LinearUnits;

    /// Linear units whose filters are not in the library: a smooth random field, and a
    /// corner-with-blob conjunction.
    fn linear(h: usize, w: usize) -> LinearUnits {
        let smooth = Candidate::Noise {
            seed: 99,
            alpha: 1.3,
        }
        .render(h, w);
        let corner = Candidate::Corner {
            x: 0.4,
            y: 0.4,
            orientation: 20.0,
            opening: 70.0,
            length: 0.3,
            width: 0.03,
            polarity: 1.0,
        }
        .render(h, w);
        let blob = Candidate::Gabor {
            x: 0.7,
            y: 0.6,
            sigma: 0.08,
            orientation: 0.0,
            cycles: 0.5,
            phase: 90.0,
        }
        .render(h, w);
        let conj: Vec<f32> = corner.iter().zip(&blob).map(|(a, b)| a - b).collect();
        LinearUnits::new(h, w, [smooth, conj].concat(), &Device::Cpu).unwrap()
    }

    /// For a linear unit the budget's optimum is the normalised filter (closed form): the MEI
    /// must reach it, and so beat the library's best, which is on the same budget.
    #[test]
    fn the_mei_of_a_linear_unit_is_its_normalised_filter_and_beats_the_library() {
        let (h, w) = (18, 32);
        let mut model = linear(h, w);
        let budget = StimulusBudget::low_contrast();
        let opts = MeiOptions {
            rms_contrast: budget.rms_contrast,
            steps: 30,
            step_size: 0.3,
            ..MeiOptions::default()
        };
        let meis = mei_with(&mut model, &[0, 1], &opts, budget.mean_luminance).unwrap();
        let lib = Library { seed: 5, size: 600 };
        let report = screen(
            &mut model,
            &lib,
            &[0, 1],
            &ScreenOptions { batch: 50, budget },
        )
        .unwrap();
        assert_eq!(
            report.screened + report.skipped.iter().map(|s| s.1).sum::<usize>(),
            600
        );
        for (m, b) in meis.iter().zip(&report.best) {
            let (opt, r_opt) = model.optimum(m.unit, &budget).unwrap();
            assert!(budget.check_u8(&m.clip).within(0.005));
            // The u8 MEI's response, recomputed.
            let x = Tensor::from_vec(
                m.clip.iter().map(|&v| v as f32 / 255.0).collect::<Vec<_>>(),
                (1, 1, h, w),
                &Device::Cpu,
            )
            .unwrap();
            let r_mei = unit_objective(&mut model, &x, &[m.unit])
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0] as f64;
            // Within 1% of the optimum (u8 rounding and the budget's 0.5% tolerance).
            assert!(
                r_mei >= 0.99 * r_opt,
                "unit {}: MEI {r_mei} vs optimum {r_opt}",
                m.unit
            );
            // The MEI is the filter's direction: correlation with the optimum image.
            let corr = correlation(&m.clip.iter().map(|&v| v as f64).collect::<Vec<_>>(), &opt);
            assert!(corr > 0.99, "unit {}: correlation {corr}", m.unit);
            assert!(
                r_mei > b.response && b.response <= r_opt + 1e-6,
                "unit {}: MEI {r_mei}, library {} ({:?}), optimum {r_opt}",
                m.unit,
                b.response,
                b.candidate
            );
        }
    }

    fn correlation(a: &[f64], b: &[f32]) -> f64 {
        let n = a.len() as f64;
        let ma = a.iter().sum::<f64>() / n;
        let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (x, &y) in a.iter().zip(b) {
            let (x, y) = (x - ma, y as f64 - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa * bb).sqrt()
    }

    /// The streamed best equals a brute-force argmax over the same candidates, whatever the
    /// batch size, and on the twin its response replays through `response_to_clip`.
    #[test]
    fn the_streamed_best_is_the_argmax_at_any_batch_size() {
        let mut twin = testnet::twin();
        let (frames, score) = (3, 1);
        let lib = Library { seed: 2, size: 40 };
        let targets = [1usize, 7, 20];
        let opts = ScreenOptions {
            batch: 16,
            budget: StimulusBudget::full_contrast(),
        };
        let a = screen(
            &mut TwinResponder::new(&mut twin, frames, score).unwrap(),
            &lib,
            &targets,
            &opts,
        )
        .unwrap();
        let b = screen(
            &mut TwinResponder::new(&mut twin, frames, score).unwrap(),
            &lib,
            &targets,
            &ScreenOptions { batch: 7, ..opts },
        )
        .unwrap();
        for (x, y) in a.best.iter().zip(&b.best) {
            assert_eq!(x.index, y.index);
            assert!((x.response - y.response).abs() <= 1e-5 * x.response.abs());
        }
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        for best in &a.best {
            let mut top = (usize::MAX, f64::NEG_INFINITY);
            for i in 0..lib.size {
                let Ok((img, _)) = lib.image(i, h, w, &opts.budget) else {
                    continue;
                };
                let r = crate::insilico::response_to_clip(
                    &mut twin,
                    &img.repeat(frames),
                    best.unit,
                    frames,
                    score,
                )
                .unwrap();
                if r > top.1 {
                    top = (i, r);
                }
            }
            assert_eq!(best.index, top.0, "unit {}", best.unit);
            assert!((best.response - top.1).abs() <= 1e-4 * top.1.abs());
        }
    }
}
