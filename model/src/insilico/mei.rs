//! Most-exciting inputs (MEI) by gradient ascent on the stimulus under a norm constraint
//! (Walker et al. 2019; fnn's in-silico experiments).
//!
//! The stimulus is a candle `Var` `[N, F, H, W]` in [0, 1] pixel units, one batch element per
//! requested unit: `F = frames` for a clip, `F = 1` for a static image shown on every frame.
//! The objective of element `i` is unit `u_i`'s mean predicted rate over the last
//! `score_frames` of a `frames`-long presentation from a reset twin, pupil centre and behaviour
//! at 0. The gradient reaches the pixels through the whole twin, perspective's bilinear
//! sampling included (`ops::grid_sample` has a backward).
//!
//! Each step moves every element along its normalised gradient by `step_size` times its norm
//! budget, then projects: the contrast `x − gray` (gray = 128/255) is scaled back into the L2
//! ball of radius `rms_contrast · sqrt(F · H · W)` (an RMS contrast bound), then pixels are
//! clamped into [0, 1]. Clamping moves pixels toward gray, so the norm bound still holds. The
//! best iterate (highest objective) is kept; the result is rounded to u8.

use candle_core::{DType, Device, Tensor, Var};
use serde::Serialize;

use crate::error::{CandleContext, ModelError, Result};
use crate::network::Twin;

use super::MEAN_GRAY;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeiOptions {
    /// Presentation length in twin frames.
    pub frames: usize,
    /// Optimise one image shown on every frame instead of a clip.
    pub static_image: bool,
    /// The objective averages the last this many frames.
    pub score_frames: usize,
    /// Norm budget as RMS contrast in [0, 1] pixel units.
    pub rms_contrast: f64,
    pub steps: usize,
    /// Step length as a fraction of the norm budget.
    pub step_size: f64,
    /// Seed of the small random start.
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
        if !(self.rms_contrast.is_finite() && self.rms_contrast > 0.0 && self.rms_contrast <= 0.5) {
            return Err(bad(
                "rms_contrast",
                format!("{}; need (0, 0.5]", self.rms_contrast),
            ));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(bad("step_size", format!("{}; need > 0", self.step_size)));
        }
        Ok(())
    }

    /// Frames of the optimised parameter.
    fn param_frames(&self) -> usize {
        if self.static_image { 1 } else { self.frames }
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
    /// The objective at the random start.
    pub start_response: f64,
    /// RMS contrast of the best iterate (≤ the budget).
    pub rms_contrast: f64,
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
    let cfg = twin.config().clone();
    let (n, f, h, w) = x.dims4().ctx("mei stimulus")?;
    if (h, w) != (cfg.stimulus_height, cfg.stimulus_width) || (f != 1 && f != frames) {
        return Err(ModelError::Input {
            input: "mei stimulus".into(),
            reason: format!(
                "shape [{n}, {f}, {h}, {w}]; need [N, {frames} or 1, {}, {}]",
                cfg.stimulus_height, cfg.stimulus_width
            ),
        });
    }
    if units.len() != n {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: format!("{} units for {n} stimuli", units.len()),
        });
    }
    if let Some(&bad) = units.iter().find(|&&u| u >= cfg.units) {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: format!(
                "unit {bad} does not exist; the twin has {} units",
                cfg.units
            ),
        });
    }
    let dev = x.device().clone();
    let mut mask = vec![0f32; n * cfg.units];
    for (i, &u) in units.iter().enumerate() {
        mask[i * cfg.units + u] = 1.0 / score_frames as f32;
    }
    let mask = Tensor::from_vec(mask, (n, cfg.units), &dev).ctx("mei mask")?;
    let pupil = Tensor::zeros((n, cfg.perspectives), DType::F32, &dev).ctx("pupil")?;
    let behaviour = Tensor::zeros((n, cfg.modulations), DType::F32, &dev).ctx("behaviour")?;
    twin.reset();
    let mut total: Option<Tensor> = None;
    for t in 0..frames {
        let frame = if f == 1 {
            x.clone()
        } else {
            x.narrow(1, t, 1).ctx("mei frame")?
        };
        let out = twin.step(&frame, &pupil, &behaviour)?;
        if t + score_frames >= frames {
            let r = (out.rate * &mask)
                .and_then(|r| r.sum(1))
                .ctx("mei objective")?;
            total = Some(match total {
                None => r,
                Some(acc) => (acc + r).ctx("mei objective")?,
            });
        }
    }
    twin.reset();
    total.ok_or_else(|| ModelError::Input {
        input: "mei frames".into(),
        reason: "no frame is scored".into(),
    })
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

/// Projects each of the `n` elements of `x` (flat, `len / n` pixels each) onto the contrast
/// ball of radius `radius` around gray, then into [0, 1]. Returns each element's RMS contrast.
pub fn project(x: &mut [f32], n: usize, radius: f64) -> Vec<f64> {
    let per = x.len() / n.max(1);
    x.chunks_mut(per.max(1))
        .map(|e| {
            let norm = e
                .iter()
                .map(|&v| (v as f64 - MEAN_GRAY).powi(2))
                .sum::<f64>()
                .sqrt();
            let s = if norm > radius { radius / norm } else { 1.0 };
            let mut sq = 0.0;
            for v in e.iter_mut() {
                let c = ((*v as f64 - MEAN_GRAY) * s + MEAN_GRAY).clamp(0.0, 1.0);
                *v = c as f32;
                sq += (c - MEAN_GRAY).powi(2);
            }
            (sq / per as f64).sqrt()
        })
        .collect()
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

/// Finds one MEI per unit in `units` (optimised together as a batch).
pub fn mei(twin: &mut Twin, units: &[usize], opts: &MeiOptions) -> Result<Vec<Mei>> {
    opts.check()?;
    if units.is_empty() {
        return Err(ModelError::Input {
            input: "mei units".into(),
            reason: "no unit given".into(),
        });
    }
    let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
    let (n, f) = (units.len(), opts.param_frames());
    let per = f * h * w;
    let radius = opts.rms_contrast * (per as f64).sqrt();
    // Start: faint noise (a tenth of the budget) around gray.
    let mut x: Vec<f32> = normals(opts.seed, n * per)
        .into_iter()
        .map(|z| (MEAN_GRAY + 0.1 * opts.rms_contrast * z) as f32)
        .collect();
    project(&mut x, n, radius);
    let dev = twin.device().clone();
    let var = Var::from_tensor(&Tensor::from_vec(x.clone(), (n, f, h, w), &dev).ctx("mei start")?)
        .ctx("mei var")?;
    let mut best = vec![f64::NEG_INFINITY; n];
    let mut best_x = x.clone();
    let mut start = vec![0.0; n];
    for step in 0..=opts.steps {
        let obj = objective(twin, var.as_tensor(), units, opts.frames, opts.score_frames)?;
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
        project(&mut next, n, radius);
        var.set(&Tensor::from_vec(next, (n, f, h, w), &dev).ctx("mei step")?)
            .ctx("mei step")?;
        tracing::debug!(step, ?vals, "mei step");
    }
    let rms = project(&mut best_x, n, radius);
    Ok((0..n)
        .map(|i| {
            let e = &best_x[i * per..(i + 1) * per];
            let img: Vec<u8> = e.iter().map(|&v| (v * 255.0).round() as u8).collect();
            let clip = if opts.static_image {
                img.repeat(opts.frames)
            } else {
                img
            };
            Mei {
                unit: units[i],
                clip,
                response: best[i],
                start_response: start[i],
                rms_contrast: rms[i],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
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
        // One u8 step of rounding per pixel at most: RMS moves by < 0.5/255.
        let slack = 0.5 / 255.0;
        for m in &meis {
            assert_eq!(m.clip.len(), opts.frames * h * w);
            assert!(
                m.rms_contrast <= opts.rms_contrast + 1e-9,
                "{}",
                m.rms_contrast
            );
            assert!(
                rms_u8(&m.clip) <= opts.rms_contrast + slack,
                "{}",
                rms_u8(&m.clip)
            );
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
                let mut x: Vec<f32> = normals(1000 + seed, h * w)
                    .into_iter()
                    .map(|z| (MEAN_GRAY + z) as f32)
                    .collect();
                project(&mut x, 1, opts.rms_contrast * ((h * w) as f64).sqrt());
                let img: Vec<u8> = x.iter().map(|&v| (v * 255.0).round() as u8).collect();
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
        assert!(rms_u8(&m.clip) <= opts.rms_contrast + 0.5 / 255.0);
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

    #[test]
    fn projection_holds_the_norm_and_the_range() {
        let mut x: Vec<f32> = normals(7, 2 * 500)
            .into_iter()
            .map(|z| (0.5 + z) as f32)
            .collect();
        let rms = project(&mut x, 2, 0.2 * (500f64).sqrt());
        for (e, r) in x.chunks(500).zip(&rms) {
            assert!(e.iter().all(|v| (0.0..=1.0).contains(v)));
            let n = e
                .iter()
                .map(|&v| (v as f64 - MEAN_GRAY).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(n <= 0.2 * (500f64).sqrt() + 1e-6, "{n}");
            assert!((r * (500f64).sqrt() - n).abs() < 1e-6);
        }
        // Inside the ball and the range: unchanged.
        let mut y = vec![MEAN_GRAY as f32 + 0.01; 10];
        let before = y.clone();
        project(&mut y, 1, 1.0);
        assert_eq!(y, before);
    }
}
