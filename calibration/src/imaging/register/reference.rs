//! The reference image from a calibration block (suite2p `register.compute_reference` and
//! `pick_initial_reference`).
//!
//! 1. **Seed**: each frame's correlation with every other (Pearson, on frames binned to at most
//!    128 x 128 px to keep this `O(n^2)` step cheap; suite2p uses full frames on a GPU); the
//!    frame whose 19 best partners correlate best with it is the seed, and the reference starts
//!    as the mean of the `reference_seed_frames` frames most correlated with it (itself first).
//! 2. **Refine**, `reference_iterations` times: rigid shift of every frame against the current
//!    reference, rounded to whole pixels (as suite2p); the `max(2, n (1 + i) / (2 iters))`
//!    frames with the highest correlation are shifted and averaged into the new reference,
//!    recentred by the rounded mean shift of those frames so that shifts stay centred on zero.
//!    Shifts are measured from the original frames each iteration (suite2p shifts its copy
//!    cumulatively; the result is the same without keeping a shifted copy of the block).

use super::error::RegistrationError;
use super::params::RegistrationParams;
use super::{Pixel, Registrar, check_dims};

/// Largest binned frame used for the seed correlations, px.
const SEED_MAX_PIXELS: usize = 128 * 128;
/// Best partners averaged to rank seed candidates (suite2p's `CCsort[:, 1:20]`).
const SEED_PARTNERS: usize = 19;

/// Mean-subtracted, unit-norm, binned copy of each frame (`[n][bh * bw]`).
fn binned_unit_frames<P: Pixel>(frames: &[&[P]], h: usize, w: usize) -> (Vec<f32>, usize) {
    let mut bin = 1;
    while (h / bin) * (w / bin) > SEED_MAX_PIXELS {
        bin += 1;
    }
    let (bh, bw) = (h / bin, w / bin);
    let m = bh * bw;
    let mut out = vec![0.0f32; frames.len() * m];
    for (f, dst) in frames.iter().zip(out.chunks_exact_mut(m)) {
        for y in 0..bh * bin {
            for x in 0..bw * bin {
                dst[(y / bin) * bw + x / bin] += f[y * w + x].to_f32();
            }
        }
        let mean = dst.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let mut ss = 0.0f64;
        for v in dst.iter_mut() {
            *v -= mean as f32;
            ss += (*v as f64) * (*v as f64);
        }
        let inv = if ss > 0.0 {
            (1.0 / ss.sqrt()) as f32
        } else {
            0.0
        };
        dst.iter_mut().for_each(|v| *v *= inv);
    }
    (out, m)
}

/// Indices of the seed frames: those most correlated with the most mutually correlated frame.
fn seed_frames<P: Pixel>(frames: &[&[P]], h: usize, w: usize, n_seed: usize) -> Vec<usize> {
    let n = frames.len();
    let (unit, m) = binned_unit_frames(frames, h, w);
    let mut cc = vec![0.0f32; n * n];
    for i in 0..n {
        cc[i * n + i] = 1.0;
        for j in 0..i {
            let (a, b) = (&unit[i * m..(i + 1) * m], &unit[j * m..(j + 1) * m]);
            let c: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            cc[i * n + j] = c;
            cc[j * n + i] = c;
        }
    }
    let mut best = (0usize, f32::NEG_INFINITY);
    let mut row = vec![0.0f32; n];
    for i in 0..n {
        row.copy_from_slice(&cc[i * n..(i + 1) * n]);
        row.sort_unstable_by(|a, b| b.total_cmp(a));
        let partners = &row[1.min(n - 1)..(1 + SEED_PARTNERS).min(n).max(1)];
        let score = partners.iter().sum::<f32>() / partners.len() as f32;
        if score > best.1 {
            best = (i, score);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let seed_row = &cc[best.0 * n..(best.0 + 1) * n];
    order.sort_by(|&a, &b| seed_row[b].total_cmp(&seed_row[a]).then(a.cmp(&b)));
    order.truncate(n_seed.min(n));
    order
}

/// Adds `frame(y + sy, x + sx)` (integer shift, clamped at the edges) into `acc`.
fn accumulate_shifted<P: Pixel>(
    acc: &mut [f64],
    frame: &[P],
    h: usize,
    w: usize,
    sy: isize,
    sx: isize,
) {
    for y in 0..h {
        let src_y = (y as isize + sy).clamp(0, h as isize - 1) as usize;
        let src = &frame[src_y * w..(src_y + 1) * w];
        let dst = &mut acc[y * w..(y + 1) * w];
        for (x, d) in dst.iter_mut().enumerate() {
            let src_x = (x as isize + sx).clamp(0, w as isize - 1) as usize;
            *d += src[src_x].to_f32() as f64;
        }
    }
}

/// Reference image (`[height][width]`, f32) for a calibration block of `frames` (each
/// `[height][width]`, row-major): the seed of the most mutually correlated frames, then
/// `reference_iterations` rounds of rigid registration and re-averaging of the best-matching
/// frames. A contiguous `[n][h][w]` stack can be passed as
/// `stack.chunks_exact(h * w).collect::<Vec<_>>()`.
pub fn compute_reference<P: Pixel>(
    frames: &[&[P]],
    height: usize,
    width: usize,
    params: &RegistrationParams,
) -> Result<Vec<f32>, RegistrationError> {
    params.validate()?;
    check_dims(height, width)?;
    let (h, w) = (height, width);
    if frames.is_empty() {
        return Err(RegistrationError::NoFrames);
    }
    for f in frames {
        if f.len() != h * w {
            return Err(RegistrationError::LengthMismatch {
                what: "calibration frame",
                expected: h * w,
                got: f.len(),
                height,
                width,
            });
        }
        if let Some(index) = f.iter().position(|p| !p.to_f32().is_finite()) {
            return Err(RegistrationError::NonFiniteFrame { index });
        }
    }
    let n = frames.len();
    let seeds = seed_frames(frames, h, w, params.reference_seed_frames);
    let mut acc = vec![0.0f64; h * w];
    for &i in &seeds {
        accumulate_shifted(&mut acc, frames[i], h, w, 0, 0);
    }
    let mut reference: Vec<f32> = acc
        .iter()
        .map(|&v| (v / seeds.len() as f64) as f32)
        .collect();
    if n == 1 {
        return Ok(reference);
    }
    let rigid_only = RegistrationParams {
        nonrigid: false,
        ..params.clone()
    };
    let iters = params.reference_iterations;
    let mut shifts = vec![(0isize, 0isize, 0.0f32); n];
    let mut order: Vec<usize> = (0..n).collect();
    for iter in 0..iters {
        let mut registrar = Registrar::new(&reference, h, w, &rigid_only)?;
        for (s, f) in shifts.iter_mut().zip(frames) {
            let r = registrar.rigid_shift(f)?;
            *s = (r.dy.round() as isize, r.dx.round() as isize, r.corr);
        }
        let n_keep = (n * (1 + iter) / (2 * iters)).max(2).min(n);
        order.sort_by(|&a, &b| shifts[b].2.total_cmp(&shifts[a].2).then(a.cmp(&b)));
        let kept = &order[..n_keep];
        let mean = |k: fn(&(isize, isize, f32)) -> isize| -> isize {
            (kept.iter().map(|&i| k(&shifts[i]) as f64).sum::<f64>() / n_keep as f64).round()
                as isize
        };
        let (cy, cx) = (mean(|s| s.0), mean(|s| s.1));
        acc.fill(0.0);
        for &i in kept {
            accumulate_shifted(
                &mut acc,
                frames[i],
                h,
                w,
                shifts[i].0 - cy,
                shifts[i].1 - cx,
            );
        }
        reference = acc.iter().map(|&v| (v / n_keep as f64) as f32).collect();
    }
    Ok(reference)
}
