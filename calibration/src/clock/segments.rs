//! Splitting matched ticks at clock jumps and fitting each stretch: robust statistics,
//! binary segmentation and least-squares lines. See [`super::sync`] for the method.

use super::matching::Pair;
use super::sync::Segment;

/// Fewest ticks on each side of a jump.
const MIN_JUMP_SUPPORT: usize = 3;
/// Floor under robust standard deviations, ns (clocks quantised to 1 ns are never smoother).
pub(super) const MIN_SIGMA_NS: f64 = 2.0;

/// Median slope of the offset over lags of 10 matched ticks (rig ns per device ns − 1):
/// robust to jumps and spurious matches, which touch only a few of the slopes.
pub(super) fn robust_drift(pairs: &[Pair]) -> f64 {
    let lag = 10.min(pairs.len().saturating_sub(1)).max(1);
    let mut slopes: Vec<f64> = pairs
        .iter()
        .zip(pairs.iter().skip(lag))
        .filter(|(a, b)| b.d > a.d)
        .map(|(a, b)| ((b.r - b.d) - (a.r - a.d)) as f64 / (b.d - a.d) as f64)
        .collect();
    if slopes.is_empty() {
        return 0.0;
    }
    let mid = slopes.len() / 2;
    *slopes.select_nth_unstable_by(mid, f64::total_cmp).1
}

pub(super) fn running_median(x: &[f64], i: usize, half: usize) -> f64 {
    let lo = i.saturating_sub(half);
    let hi = (i + half + 1).min(x.len());
    let mut w: [f64; 7] = [0.0; 7];
    let n = hi - lo;
    w[..n].copy_from_slice(&x[lo..hi]);
    w[..n].sort_by(f64::total_cmp);
    w[n / 2]
}

/// 1.4826 × median absolute value (the residuals are centred already).
pub(super) fn robust_sigma(resid: &[f64]) -> f64 {
    let mut a: Vec<f64> = resid.iter().map(|r| r.abs()).collect();
    if a.is_empty() {
        return 0.0;
    }
    let mid = a.len() / 2;
    1.4826 * *a.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// Least-squares line `y = c0 + c1 x` through the inliers of `pairs` in device time relative
/// to `x0` (seconds) against offset relative to `y0` (ns): `(c0, c1, n)`.
fn line(pairs: &[Pair], inlier: &[bool], x0: i64, y0: i64) -> Option<(f64, f64, usize)> {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0usize, 0.0, 0.0, 0.0, 0.0);
    for (p, _) in pairs.iter().zip(inlier).filter(|(_, k)| **k) {
        let x = (p.d - x0) as f64 * 1e-9;
        let y = ((p.r - p.d) - y0) as f64;
        n += 1;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let var = sxx - sx * sx / nf;
    let c1 = if n >= 2 && var > 1e-18 {
        (sxy - sx * sy / nf) / var
    } else {
        0.0
    };
    Some(((sy - c1 * sx) / nf, c1, n))
}

/// Binary segmentation of `pairs[lo..hi]` at offset steps above `threshold`; pushes the pair
/// index where each new segment starts.
pub(super) fn split(
    pairs: &[Pair],
    inlier: &[bool],
    lo: usize,
    hi: usize,
    threshold: f64,
    out: &mut Vec<usize>,
) {
    let idx: Vec<usize> = (lo..hi).filter(|&i| inlier[i]).collect();
    let m = idx.len();
    if m < 2 * MIN_JUMP_SUPPORT {
        return;
    }
    let (x0, y0) = (pairs[idx[0]].d, pairs[idx[0]].r - pairs[idx[0]].d);
    let xy: Vec<(f64, f64)> = idx
        .iter()
        .map(|&i| {
            let p = pairs[i];
            ((p.d - x0) as f64 * 1e-9, ((p.r - p.d) - y0) as f64)
        })
        .collect();
    // Prefix sums for two-line SSE at every split.
    let mut pre = vec![[0.0f64; 5]; m + 1];
    for (k, &(x, y)) in xy.iter().enumerate() {
        let s = pre[k];
        pre[k + 1] = [s[0] + x, s[1] + y, s[2] + x * x, s[3] + x * y, s[4] + y * y];
    }
    let sse = |a: usize, b: usize| {
        let n = (b - a) as f64;
        let s: [f64; 5] = std::array::from_fn(|i| pre[b][i] - pre[a][i]);
        let var_x = s[2] - s[0] * s[0] / n;
        let cov = s[3] - s[0] * s[1] / n;
        let var_y = s[4] - s[1] * s[1] / n;
        if var_x > 1e-18 {
            var_y - cov * cov / var_x
        } else {
            var_y
        }
    };
    let mut best: Option<(usize, f64)> = None;
    for k in MIN_JUMP_SUPPORT..=m - MIN_JUMP_SUPPORT {
        let cost = sse(0, k) + sse(k, m);
        if best.is_none_or(|(_, c)| cost < c) {
            best = Some((k, cost));
        }
    }
    let Some((k, _)) = best else {
        return;
    };
    let (first_right, last_left) = (idx[k], idx[k - 1]);
    let left_mask: Vec<bool> = (lo..hi).map(|i| inlier[i] && i <= last_left).collect();
    let right_mask: Vec<bool> = (lo..hi).map(|i| inlier[i] && i >= first_right).collect();
    let (Some(l), Some(r)) = (
        line(&pairs[lo..hi], &left_mask, x0, y0),
        line(&pairs[lo..hi], &right_mask, x0, y0),
    ) else {
        return;
    };
    // Step between the two lines at the right side's first tick, and at the left side's last
    // tick (a backward clock step makes those device times differ a lot): both must agree
    // that the offset jumped.
    let xr = (pairs[first_right].d - x0) as f64 * 1e-9;
    let xl = (pairs[last_left].d - x0) as f64 * 1e-9;
    let step_r = (r.0 + r.1 * xr) - (l.0 + l.1 * xr);
    let step_l = (r.0 + r.1 * xl) - (l.0 + l.1 * xl);
    if step_r.abs() <= threshold || step_l.abs() <= threshold {
        return;
    }
    out.push(first_right);
    split(pairs, inlier, lo, first_right, threshold, out);
    split(pairs, inlier, first_right, hi, threshold, out);
}

/// Least-squares fit of one segment with one more rejection round; `inlier` is updated.
pub(super) fn fit_segment(pairs: &[Pair], inlier: &mut [bool]) -> Option<Segment> {
    let first = pairs.iter().zip(inlier.iter()).find(|(_, k)| **k)?.0;
    let (x0, y0) = (first.d, first.r - first.d);
    let residual = |c: (f64, f64, usize), p: &Pair| {
        let x = (p.d - x0) as f64 * 1e-9;
        ((p.r - p.d) - y0) as f64 - (c.0 + c.1 * x)
    };
    let mut c = line(pairs, inlier, x0, y0)?;
    let res: Vec<f64> = pairs
        .iter()
        .zip(inlier.iter())
        .filter(|(_, k)| **k)
        .map(|(p, _)| residual(c, p))
        .collect();
    let limit = 4.0 * robust_sigma(&res).max(MIN_SIGMA_NS);
    for (p, k) in pairs.iter().zip(inlier.iter_mut()) {
        if *k && residual(c, p).abs() > limit {
            *k = false;
        }
    }
    c = line(pairs, inlier, x0, y0)?;
    let (mut ss, mut max, mut n) = (0.0f64, 0.0f64, 0usize);
    for (p, _) in pairs.iter().zip(inlier.iter()).filter(|(_, k)| **k) {
        let r = residual(c, p);
        ss += r * r;
        max = max.max(r.abs());
        n += 1;
    }
    let last = pairs.iter().zip(inlier.iter()).rfind(|(_, k)| **k)?.0;
    Some(Segment {
        dev_index_first: first.dev_index,
        dev_index_last: last.dev_index,
        dev_first_ns: first.d,
        dev_last_ns: last.d,
        dev_ref_ns: x0,
        // offset(x) = y0 + c0 + c1 x, with x in seconds: rig = dev + offset.
        rig_at_ref_ns: x0 as f64 + y0 as f64 + c.0,
        rate: 1.0 + c.1 * 1e-9,
        ticks: n,
        outliers: pairs.len() - n,
        residual_rms_ns: (ss / n.max(1) as f64).sqrt(),
        residual_max_ns: max,
        jump_ns: None,
        ambiguous: pairs.iter().any(|p| p.ambiguous),
    })
}
