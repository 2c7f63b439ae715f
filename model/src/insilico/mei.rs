//! Most-exciting inputs (MEI) by gradient ascent on the stimulus under a luminance and
//! contrast budget (Walker et al. 2019; fnn's in-silico experiments).
//!
//! The stimulus is a candle `Var` `[N, F, H, W]` in [0, 1] pixel units, one batch element per
//! requested unit: `F` = the presentation's frames for a clip, `F = 1` for a static image shown
//! on every frame. The objective of element `i` is unit `u_i`'s scored response from a
//! [`Responder`]; for the twin ([`TwinResponder`]) its mean predicted rate over the last
//! `score_frames` of a `frames`-long presentation from a reset twin, pupil centre and
//! behaviour at 0. The gradient reaches the pixels through the whole twin, perspective's
//! bilinear sampling included (`ops::grid_sample` has a backward).
//!
//! Each step moves every element along its normalised gradient by `step_size` times its
//! contrast norm `rms_contrast · sqrt(F · H · W)`, then matches it to the
//! [`StimulusBudget`] (mean luminance and RMS contrast both exact up to
//! [`MATCH_TOLERANCE`](super::budget::MATCH_TOLERANCE), pixels in [0, 1]): a retraction onto
//! the budget's sphere, not a Euclidean projection (the set is not convex). The best iterate
//! (highest objective) is kept and matched again after rounding to u8, so the MEI as shown
//! meets the budget.

use candle_core::{Device, Tensor, Var};
use serde::Serialize;

use crate::error::{CandleContext, ModelError, Result};
use crate::network::Twin;

use super::MEAN_GRAY;
use super::budget::{BudgetCheck, BudgetError, StimulusBudget};
use super::responder::{Responder, TwinResponder};

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeiOptions {
    /// Presentation length in twin frames (read by [`mei`]; [`mei_with`] takes the
    /// responder's).
    pub frames: usize,
    /// Optimise one image shown on every frame instead of a clip.
    pub static_image: bool,
    /// The objective averages the last this many frames (read by [`mei`]).
    pub score_frames: usize,
    /// The budget's RMS contrast in [0, 1] pixel units.
    pub rms_contrast: f64,
    pub steps: usize,
    /// Step length as a fraction of the contrast norm.
    pub step_size: f64,
    /// Seed of the random start.
    pub seed: u64,
}

impl Default for MeiOptions {
    fn default() -> Self {
        Self {
            frames: 10,
            static_image: true,
            score_frames: 5,
            rms_contrast: 0.1,
            steps: 100,
            step_size: 0.1,
            seed: 0,
        }
    }
}

impl MeiOptions {
    fn check(&self) -> Result<()> {
        let bad = |input: &str, reason: String| ModelError::Input {
            input: format!("mei {input}"),
            reason,
        };
        if self.frames == 0 || self.score_frames == 0 || self.score_frames > self.frames {
            return Err(bad(
                "score_frames",
                format!(
                    "{} scored of {} frames; need 1 ≤ score_frames ≤ frames",
                    self.score_frames, self.frames
                ),
            ));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(bad("step_size", format!("{}; need > 0", self.step_size)));
        }
        Ok(())
    }

    /// The budget at this RMS contrast around `mean_luminance`.
    pub fn budget(&self, mean_luminance: f64) -> StimulusBudget {
        StimulusBudget {
            mean_luminance,
            rms_contrast: self.rms_contrast,
        }
    }
}

/// One unit's most-exciting input.
#[derive(Debug, Clone, PartialEq)]
pub struct Mei {
    pub unit: usize,
    /// `[frames, H, W]` u8 (a static MEI is repeated on every frame).
    pub clip: Vec<u8>,
    /// The objective of the best iterate (float pixels).
    pub response: f64,
    /// The objective at the random start (on the budget).
    pub start_response: f64,
    /// RMS contrast of the u8 clip.
    pub rms_contrast: f64,
    /// The u8 clip against the budget.
    pub budget: BudgetCheck,
}

/// Objective per batch element: `[N]` mean rate of unit `units[i]` over the last
/// `score_frames` of `frames`. `x` is `[N, F, H, W]` with `F = frames` or 1 (static).
pub fn objective(
    twin: &mut Twin,
    x: &Tensor,
    units: &[usize],
    frames: usize,
    score_frames: usize,
) -> Result<Tensor> {
    unit_objective(
        &mut TwinResponder::new(twin, frames, score_frames)?,
        x,
        units,
    )
}

/// `[N]`: element `i`'s response of unit `units[i]` (a one-hot mask, so the gradient of each
/// element's objective reaches only its own pixels).
pub fn unit_objective<R: Responder>(model: &mut R, x: &Tensor, units: &[usize]) -> Result<Tensor> {
    let n = x.dims4().ctx("mei stimulus")?.0;
    let u_n = model.units();
    if units.len() != n {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: format!("{} units for {n} stimuli", units.len()),
        });
    }
    if let Some(&bad) = units.iter().find(|&&u| u >= u_n) {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: format!("unit {bad} does not exist; the twin has {u_n} units"),
        });
    }
    let mut mask = vec![0f32; n * u_n];
    for (i, &u) in units.iter().enumerate() {
        mask[i * u_n + u] = 1.0;
    }
    let mask = Tensor::from_vec(mask, (n, u_n), x.device()).ctx("mei mask")?;
    (model.responses(x)? * mask)
        .and_then(|r| r.sum(1))
        .ctx("mei objective")
}

/// `unit`'s objective for a u8 clip `[frames, H, W]` (a comparison stimulus: grating, noise, a
/// rounded MEI).
pub fn response_to_clip(
    twin: &mut Twin,
    clip: &[u8],
    unit: usize,
    frames: usize,
    score_frames: usize,
) -> Result<f64> {
    let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
    if clip.len() != frames * h * w {
        return Err(ModelError::Input {
            input: "clip".into(),
            reason: format!("{} pixels; need {frames} x {h} x {w}", clip.len()),
        });
    }
    let pix: Vec<f32> = clip.iter().map(|&v| v as f32 / 255.0).collect();
    let x = Tensor::from_vec(pix, (1, frames, h, w), twin.device()).ctx("clip")?;
    let r = objective(twin, &x, &[unit], frames, score_frames)?;
    let v: Vec<f32> = r
        .to_device(&Device::Cpu)
        .and_then(|r| r.to_vec1())
        .ctx("response")?;
    Ok(v[0] as f64)
}

/// Deterministic standard normals (splitmix64 + Box–Muller): the random start and the test
/// stimuli, without a dependency.
pub fn normals(seed: u64, len: usize) -> Vec<f64> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let u1 = next().max(f64::MIN_POSITIVE);
            let u2 = next();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

fn to_cpu_vec(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    t.to_device(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .ctx(what)
}

/// A budget failure as the input error of element `i`.
fn budget_err(unit: usize, e: BudgetError) -> ModelError {
    ModelError::Input {
        input: format!("mei budget (unit {unit})"),
        reason: e.to_string(),
    }
}

/// Finds one MEI per unit in `units` of the twin (optimised together as a batch), at
/// `opts.rms_contrast` around mean gray.
pub fn mei(twin: &mut Twin, units: &[usize], opts: &MeiOptions) -> Result<Vec<Mei>> {
    opts.check()?;
    let mut model = TwinResponder::new(twin, opts.frames, opts.score_frames)?;
    mei_with(&mut model, units, opts, MEAN_GRAY)
}

/// Finds one MEI per unit in `units` of any responder, under `opts.budget(mean_luminance)`.
pub fn mei_with<R: Responder>(
    model: &mut R,
    units: &[usize],
    opts: &MeiOptions,
    mean_luminance: f64,
) -> Result<Vec<Mei>> {
    opts.check()?;
    let budget = opts.budget(mean_luminance);
    budget.validate().map_err(|e| ModelError::Input {
        input: "mei rms_contrast".into(),
        reason: e.to_string(),
    })?;
    if units.is_empty() {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: "no unit given".into(),
        });
    }
    let (h, w) = model.stimulus_size();
    let f = if opts.static_image { 1 } else { model.frames() };
    let n = units.len();
    let per = f * h * w;
    let radius = budget.rms_contrast * (per as f64).sqrt();
    let matched = |x: &mut [f32]| -> Result<()> {
        for (i, e) in x.chunks_mut(per).enumerate() {
            budget
                .match_f32(e)
                .map_err(|err| budget_err(units[i], err))?;
        }
        Ok(())
    };
    // Start: random noise around the mean, matched to the budget.
    let mut x: Vec<f32> = normals(opts.seed, n * per)
        .into_iter()
        .map(|z| (mean_luminance + budget.rms_contrast * z) as f32)
        .collect();
    matched(&mut x)?;
    let dev = model.device().clone();
    let var = Var::from_tensor(&Tensor::from_vec(x.clone(), (n, f, h, w), &dev).ctx("mei start")?)
        .ctx("mei var")?;
    let mut best = vec![f64::NEG_INFINITY; n];
    let mut best_x = x;
    let mut start = vec![0.0; n];
    for step in 0..=opts.steps {
        let obj = unit_objective(model, var.as_tensor(), units)?;
        let vals = to_cpu_vec(&obj, "mei objective")?;
        let cur = to_cpu_vec(var.as_tensor(), "mei stimulus")?;
        for i in 0..n {
            let v = vals[i] as f64;
            if step == 0 {
                start[i] = v;
            }
            if v > best[i] {
                best[i] = v;
                best_x[i * per..(i + 1) * per].copy_from_slice(&cur[i * per..(i + 1) * per]);
            }
        }
        if step == opts.steps {
            break;
        }
        let grads = obj
            .sum_all()
            .and_then(|s| s.backward())
            .ctx("mei backward")?;
        let g = grads
            .get(var.as_tensor())
            .ok_or_else(|| ModelError::Input {
                input: "mei gradient".into(),
                reason: "the objective does not depend on the stimulus".into(),
            })?;
        let g = to_cpu_vec(g, "mei gradient")?;
        let mut next = cur;
        for i in 0..n {
            // A pixel at 0 under a monitor power < 1 has an infinite derivative: drop it.
            let gi: Vec<f32> = g[i * per..(i + 1) * per]
                .iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect();
            let gn = gi.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            if !(gn.is_finite() && gn > 0.0) {
                continue;
            }
            let k = opts.step_size * radius / gn;
            for (v, d) in next[i * per..(i + 1) * per].iter_mut().zip(&gi) {
                *v += (k * *d as f64) as f32;
            }
        }
        matched(&mut next)?;
        var.set(&Tensor::from_vec(next, (n, f, h, w), &dev).ctx("mei step")?)
            .ctx("mei step")?;
        tracing::debug!(step, ?vals, "mei step");
    }
    let frames = model.frames();
    (0..n)
        .map(|i| {
            let e = &best_x[i * per..(i + 1) * per];
            let (img, check) = budget
                .match_to_u8(e)
                .map_err(|err| budget_err(units[i], err))?;
            let clip = if opts.static_image {
                img.repeat(frames)
            } else {
                img
            };
            Ok(Mei {
                unit: units[i],
                clip,
                response: best[i],
                start_response: start[i],
                rms_contrast: check.achieved.rms_contrast,
                budget: check,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::budget::MATCH_TOLERANCE;
    use super::super::testnet;
    use super::super::tuning::GratingParams;
    use super::*;

    fn start(twin: &Twin, n: usize, f: usize, seed: u64) -> Vec<f32> {
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        // Well inside (0, 1): finite differences never cross the clamp.
        normals(seed, n * f * h * w)
            .into_iter()
            .map(|z| (MEAN_GRAY + 0.08 * z).clamp(0.1, 0.9) as f32)
            .collect()
    }

    fn value(twin: &mut Twin, x: &[f32], shape: (usize, usize), unit: usize, frames: usize) -> f64 {
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        let t = Tensor::from_vec(x.to_vec(), (shape.0, shape.1, h, w), &Device::Cpu).unwrap();
        let r = objective(twin, &t, &[unit], frames, 2).unwrap();
        r.to_vec1::<f32>().unwrap()[0] as f64
    }

    /// The backward pass through the whole twin (perspective's grid sampling included) against
    /// central finite differences along random directions, for a static image and a clip.
    #[test]
    fn stimulus_gradient_matches_finite_differences() {
        let mut twin = testnet::twin();
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        let frames = 4;
        for (f, unit, seed) in [(1usize, 3usize, 1u64), (frames, 11, 2)] {
            let x0 = start(&twin, 1, f, seed);
            let var = Var::from_tensor(
                &Tensor::from_vec(x0.clone(), (1, f, h, w), &Device::Cpu).unwrap(),
            )
            .unwrap();
            let obj = objective(&mut twin, var.as_tensor(), &[unit], frames, 2).unwrap();
            let grads = obj.sum_all().unwrap().backward().unwrap();
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
            let g: Vec<f32> = g.to_vec1().unwrap();
            let gnorm = g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            assert!(gnorm > 0.0 && gnorm.is_finite(), "gradient norm {gnorm}");
            // Directions: the gradient itself (the largest derivative) and two random ones.
            let mut dirs = vec![g.iter().map(|v| *v as f64 / gnorm).collect::<Vec<_>>()];
            for s in 0..2 {
                let z = normals(100 + s, g.len());
                let n = z.iter().map(|v| v * v).sum::<f64>().sqrt();
                dirs.push(z.into_iter().map(|v| v / n).collect());
            }
            let eps = 0.05;
            for (k, d) in dirs.iter().enumerate() {
                let shifted = |s: f64| -> Vec<f32> {
                    x0.iter()
                        .zip(d)
                        .map(|(x, v)| (*x as f64 + s * v) as f32)
                        .collect()
                };
                let fd = (value(&mut twin, &shifted(eps), (1, f), unit, frames)
                    - value(&mut twin, &shifted(-eps), (1, f), unit, frames))
                    / (2.0 * eps);
                let an: f64 = g.iter().zip(d).map(|(a, b)| *a as f64 * b).sum();
                // Observed: agreement to < 1e-4 of |g| along the gradient, ~5e-7 absolute elsewhere.
                let tol = 5e-4 * gnorm + 1e-6;
                assert!(
                    (fd - an).abs() <= tol,
                    "frames {f} direction {k}: finite difference {fd} vs backward {an} (|g| {gnorm})"
                );
            }
        }
    }

    /// Contrast RMS of a u8 clip around gray, in [0, 1] units.
    fn rms_u8(clip: &[u8]) -> f64 {
        (clip
            .iter()
            .map(|&v| (v as f64 / 255.0 - MEAN_GRAY).powi(2))
            .sum::<f64>()
            / clip.len() as f64)
            .sqrt()
    }

    #[test]
    fn mei_beats_noise_and_gratings_at_the_same_norm() {
        let mut twin = testnet::twin();
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        let opts = MeiOptions {
            frames: 4,
            score_frames: 2,
            steps: 10,
            step_size: 0.25,
            rms_contrast: 0.1,
            ..MeiOptions::default()
        };
        let units = [0usize, 5];
        let meis = mei(&mut twin, &units, &opts).unwrap();
        assert_eq!(meis.len(), 2);
        let budget = opts.budget(MEAN_GRAY);
        for m in &meis {
            assert_eq!(m.clip.len(), opts.frames * h * w);
            // Against the stats recomputed from the bytes, not the reported check.
            let c = budget.check_u8(&m.clip);
            assert!(c.within(MATCH_TOLERANCE), "{c:?}");
            assert!((c.contrast_error - m.budget.contrast_error).abs() < 1e-9);
            // The static MEI is the same image on every frame.
            assert_eq!(m.clip[..h * w], m.clip[(opts.frames - 1) * h * w..]);
            let got = response_to_clip(&mut twin, &m.clip, m.unit, opts.frames, opts.score_frames)
                .unwrap();
            assert!(
                (got - m.response).abs() <= 0.02 * m.response,
                "u8 {got} vs {}",
                m.response
            );
            assert!(
                m.response > m.start_response,
                "{} <= {}",
                m.response,
                m.start_response
            );
            // Random static images at the same norm.
            for seed in 0..4u64 {
                let x: Vec<f32> = normals(1000 + seed, h * w)
                    .into_iter()
                    .map(|z| z as f32)
                    .collect();
                let (img, _) = budget.match_to_u8(&x).unwrap();
                let r = response_to_clip(
                    &mut twin,
                    &img.repeat(opts.frames),
                    m.unit,
                    opts.frames,
                    opts.score_frames,
                )
                .unwrap();
                assert!(got > r, "unit {}: MEI {got} vs noise {r}", m.unit);
            }
            // Drifting gratings in 8 directions, contrast set so the RMS matches the budget.
            let unit_rms = rms_u8(
                &GratingParams::default()
                    .render(0.0, opts.frames, h, w)
                    .unwrap(),
            );
            let g = GratingParams {
                contrast: opts.rms_contrast / unit_rms,
                ..GratingParams::default()
            };
            for d in 0..8 {
                let clip = g.render(45.0 * d as f64, opts.frames, h, w).unwrap();
                assert!((rms_u8(&clip) - opts.rms_contrast).abs() < 0.01);
                let r = response_to_clip(&mut twin, &clip, m.unit, opts.frames, opts.score_frames)
                    .unwrap();
                assert!(
                    got > r,
                    "unit {}: MEI {got} vs grating at {}° {r}",
                    m.unit,
                    45 * d
                );
            }
        }
    }

    #[test]
    fn a_clip_mei_varies_over_frames_within_the_bound() {
        let mut twin = testnet::twin();
        let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
        let opts = MeiOptions {
            frames: 3,
            score_frames: 1,
            static_image: false,
            steps: 3,
            step_size: 0.3,
            ..MeiOptions::default()
        };
        let m = mei(&mut twin, &[2], &opts).unwrap().remove(0);
        assert_eq!(m.clip.len(), 3 * h * w);
        assert!(m.response > m.start_response);
        assert!(
            opts.budget(MEAN_GRAY)
                .check_u8(&m.clip)
                .within(MATCH_TOLERANCE)
        );
        assert_ne!(m.clip[..h * w], m.clip[2 * h * w..]);
    }

    #[test]
    fn bad_requests_are_named() {
        let mut twin = testnet::twin();
        let e = mei(
            &mut twin,
            &[99],
            &MeiOptions {
                steps: 1,
                ..MeiOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unit 99") && e.contains("25 units"), "{e}");
        let e = mei(
            &mut twin,
            &[0],
            &MeiOptions {
                score_frames: 20,
                ..MeiOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("score_frames"), "{e}");
        let e = response_to_clip(&mut twin, &[128; 10], 0, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("clip") && e.contains("36 x 64"), "{e}");
    }
}
