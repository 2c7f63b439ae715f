//! Matching device ticks to rig ticks: acquisition (verified offset search) and tracking.
//! See [`super::sync`] for the method.

use super::segments::robust_sigma;
use super::sync::{ClockGuess, SyncConfig};

/// One matched pair.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pair {
    pub(super) dev_index: usize,
    pub(super) d: i64,
    pub(super) rig_index: usize,
    pub(super) r: i64,
    /// |actual − predicted| rig time at matching, ns.
    pub(super) err: f64,
    /// The pair opens a re-acquired stretch whose offset was ambiguous.
    pub(super) ambiguous: bool,
}

/// How many device ticks an acquisition candidate is scored on.
const REACQUIRE_TICKS: usize = 10;
/// Once locked, ticks are matched (and acquisition candidates checked) at the match tolerance
/// divided by this.
pub(super) const TRACK_DIVISOR: f64 = 8.0;
/// Most acquisitions that may search beyond the match tolerance in one fit.
const WIDE_SEARCHES: usize = 32;

/// Index of the rig tick nearest `t`.
fn nearest(rig: &[i64], t: f64) -> Option<usize> {
    if rig.is_empty() || !t.is_finite() {
        return None;
    }
    let i = rig.partition_point(|&r| (r as f64) < t);
    match (i.checked_sub(1), (i < rig.len()).then_some(i)) {
        (Some(a), Some(b)) => Some(if t - rig[a] as f64 <= rig[b] as f64 - t {
            a
        } else {
            b
        }),
        (Some(a), None) => Some(a),
        (None, b) => b,
    }
}

/// The prediction state of the matcher: a line through the last match.
#[derive(Debug, Clone, Copy)]
struct Predictor {
    dev: i64,
    rig: f64,
    rate: f64,
}

impl Predictor {
    fn at(&self, d: i64) -> f64 {
        self.rig + self.rate * (d - self.dev) as f64
    }
}

pub(super) fn match_ticks(
    dev: &[i64],
    rig: &[i64],
    guess: ClockGuess,
    tol: i64,
    cfg: &SyncConfig,
) -> Vec<Pair> {
    let tol = tol as f64;
    let track_tol = tol / TRACK_DIVISOR;
    let periodic = is_periodic(rig, track_tol);
    let search = if cfg.search_ns > 0 {
        cfg.search_ns as f64
    } else {
        f64::INFINITY
    };
    let mut wide_left = WIDE_SEARCHES;
    let mut failures = 0usize;
    let mut pred = Predictor {
        dev: guess.dev_ns,
        rig: guess.rig_ns as f64,
        rate: guess.rate,
    };
    let mut pairs: Vec<Pair> = Vec::with_capacity(dev.len().min(rig.len()));
    // First pair of the current locked stretch, for refining the rate.
    let mut run_first: Option<usize> = None;
    let mut locked = false;
    let mut locked_at = 0usize;
    let mut misses = 0usize;
    let mut pending_ambiguous = false;
    let mut j = 0usize;
    while j < dev.len() {
        if !locked {
            // Near the prediction first, for a few ticks (the first may be spurious or have
            // lost its partner); then wide, a bounded number of times (costly on long
            // recordings).
            let search = (failures >= 3 && wide_left > 0).then_some(search);
            match acquire(dev, rig, j, pred, tol, search) {
                Some(Acquired { delta, tied }) => {
                    pred.rig += delta;
                    // A shift beyond the tracking tolerance is a jump (or the first lock);
                    // with periodic ticks it is only known modulo the period.
                    let shifted = delta.abs() > track_tol && !pairs.is_empty();
                    pending_ambiguous =
                        (tied && (shifted || pairs.is_empty())) || (shifted && periodic);
                    locked = true;
                    locked_at = j;
                    run_first = None;
                    misses = 0;
                    failures = 0;
                }
                None => {
                    if search.is_some() {
                        wide_left -= 1;
                    }
                    failures += 1;
                    // After several failed wide searches, skip ahead.
                    j += if failures > 6 && failures.is_multiple_of(3) {
                        REACQUIRE_TICKS
                    } else {
                        1
                    };
                    continue;
                }
            }
        }
        let d = dev[j];
        let p = pred.at(d);
        let hit = nearest(rig, p).filter(|&i| (rig[i] as f64 - p).abs() <= track_tol);
        j += 1;
        let Some(ri) = hit else {
            misses += 1;
            if misses >= cfg.reacquire_after {
                // Start again from the first tick that missed, but always past the tick the
                // lost lock was acquired at (progress is guaranteed).
                locked = false;
                j = (j - misses).max(locked_at + 1);
                misses = 0;
            }
            continue;
        };
        let err = (rig[ri] as f64 - p).abs();
        if let Some(last) = pairs.last()
            && last.rig_index == ri
        {
            // Two device ticks for one rig tick: keep the closer.
            if last.err <= err {
                misses += 1;
                continue;
            }
            pairs.pop();
        }
        pairs.push(Pair {
            dev_index: j - 1,
            d,
            rig_index: ri,
            r: rig[ri],
            err,
            ambiguous: std::mem::take(&mut pending_ambiguous),
        });
        pred.dev = d;
        pred.rig = rig[ri] as f64;
        let first = *run_first.get_or_insert(pairs.len() - 1);
        let f = pairs[first.min(pairs.len() - 1)];
        if pairs.len() - first > 10 && d > f.d {
            let rate = (rig[ri] - f.r) as f64 / (d - f.d) as f64;
            if rate > 0.5 && rate < 2.0 {
                pred.rate = rate;
            }
        }
        misses = 0;
    }
    pairs
}

/// Whether the rig ticks are (nearly) periodic: the median absolute deviation of their
/// intervals is below `tol`. A jump in a periodic train is known only modulo the period.
fn is_periodic(rig: &[i64], tol: f64) -> bool {
    let d: Vec<f64> = rig.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    if d.len() < 3 {
        return false;
    }
    let mut sorted = d.clone();
    let mid = sorted.len() / 2;
    let med = *sorted.select_nth_unstable_by(mid, f64::total_cmp).1;
    let dev: Vec<f64> = d.iter().map(|x| x - med).collect();
    robust_sigma(&dev) < tol
}

/// A verified offset shift: `tied` if another shift explained the ticks as well.
#[derive(Debug, Clone, Copy)]
struct Acquired {
    delta: f64,
    tied: bool,
}

/// Finds the offset from device tick `j0` on. Rig ticks near the predictions of the next
/// device ticks (within the match tolerance; then, if `search` is given, within `search` of
/// the first three) are tried as partners, and each resulting shift is scored by how many of
/// those device ticks it explains within the tracking tolerance: once one tick pins the
/// offset the others are predicted to within jitter and drift, so a wrong shift explains a
/// tick only with probability ~2 · track tolerance / interval. A verified shift is refined
/// to the median residual of the ticks it explains; the one nearest the prediction is kept.
fn acquire(
    dev: &[i64],
    rig: &[i64],
    j0: usize,
    pred: Predictor,
    tol: f64,
    search: Option<f64>,
) -> Option<Acquired> {
    let probe = &dev[j0..(j0 + REACQUIRE_TICKS).min(dev.len())];
    if probe.len() < 5 {
        return None;
    }
    let track_tol = tol / TRACK_DIVISOR;
    // (ticks explained, refined shift)
    let verify = |delta: f64| {
        let mut res = [0.0f64; REACQUIRE_TICKS];
        let mut n = 0;
        for &d in probe {
            let p = pred.at(d) + delta;
            if let Some(i) = nearest(rig, p)
                && (rig[i] as f64 - p).abs() <= track_tol
            {
                res[n] = rig[i] as f64 - p;
                n += 1;
            }
        }
        res[..n].sort_by(f64::total_cmp);
        (n, if n > 0 { delta + res[n / 2] } else { delta })
    };
    // Near the prediction there are few candidates: 6 of 10 ticks suffice. The wide search
    // tries many, so it needs 8 of 10 (a wrong offset explains a tick with probability ~6 %
    // at the default tolerance: 8 of 10 by chance is ~1e-8 per candidate).
    let stages = [(Some(tol), 6, probe.len()), (search, 8, 3)];
    for (window, need_of_10, seeds) in stages {
        let Some(window) = window else {
            continue;
        };
        let need = (probe.len() * need_of_10).div_ceil(REACQUIRE_TICKS);
        // The verified shift nearest the prediction; others verified too make it ambiguous.
        let mut best: Option<f64> = None;
        let mut others = false;
        for &d in &probe[..seeds.min(probe.len())] {
            let p = pred.at(d);
            let lo = rig.partition_point(|&r| (r as f64) < p - window);
            let hi = rig.partition_point(|&r| (r as f64) <= p + window);
            for &r in &rig[lo..hi] {
                let (n, delta) = verify(r as f64 - p);
                if n < need {
                    continue;
                }
                match best {
                    Some(b) if delta.abs() >= b.abs() => {
                        others |= (delta - b).abs() > track_tol;
                    }
                    Some(b) => {
                        others |= (delta - b).abs() > track_tol;
                        best = Some(delta);
                    }
                    None => best = Some(delta),
                }
            }
        }
        if let Some(delta) = best {
            return Some(Acquired {
                delta,
                tied: others,
            });
        }
    }
    None
}
