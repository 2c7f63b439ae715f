//! The tables of `twinloop bench loop`, every arm paired with the random arm by seed: held-out
//! accuracy at fixed budgets, the area under the learning curve, the oracle's readout-parameter
//! error, and the trials each arm needs to reach what random reaches at the end.

use super::design_bench::{ArmRun, CurvePoint, trials_to_reach};
use serde::Serialize;

/// Mean and 95% confidence half-width (Student t) of finite values; NaN when fewer than two.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci95: f64,
    pub n: usize,
}

impl Estimate {
    pub fn of(values: &[f64]) -> Estimate {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n < 2 {
            let mean = v.first().copied().unwrap_or(f64::NAN);
            return Estimate {
                mean,
                ci95: f64::NAN,
                n,
            };
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Estimate {
            mean,
            ci95: t975(n - 1) * (var / n as f64).sqrt(),
            n,
        }
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (tabulated to 30, then the
/// normal's 1.96 plus the first-order correction).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// A curve's value at `t` trials, linear between its points (NaN outside or where undefined).
pub fn value_at(curve: &[(u64, f64)], t: u64) -> f64 {
    for w in curve.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if t0 <= t && t <= t1 {
            if t1 == t0 {
                return v1;
            }
            let a = (t - t0) as f64 / (t1 - t0) as f64;
            return v0 + a * (v1 - v0);
        }
    }
    curve.iter().find(|p| p.0 == t).map_or(f64::NAN, |p| p.1)
}

/// Area under the curve over [0, end] divided by `end` (trapezoids; an undefined point, before
/// the readouts are placed, counts as 0: no twin predicts nothing).
pub fn auc(curve: &[(u64, f64)], end: u64) -> f64 {
    let v = |x: f64| if x.is_finite() { x } else { 0.0 };
    let mut area = 0.0;
    for w in curve.windows(2) {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        if t1 > end {
            break;
        }
        area += 0.5 * (v(v0) + v(v1)) * (t1 - t0) as f64;
    }
    area / end.max(1) as f64
}

pub fn series(run: &ArmRun, f: fn(&CurvePoint) -> f64) -> Vec<(u64, f64)> {
    run.curve.iter().map(|p| (p.trials, f(p))).collect()
}

/// One arm's held-out accuracy at the budgets, its AUC, and the paired difference to random.
#[derive(Debug, Clone, Serialize)]
pub struct ArmRow {
    pub arm: String,
    /// Held-out accuracy at each budget.
    pub at_budget: Vec<(u64, Estimate)>,
    pub auc: Estimate,
    /// This arm's AUC minus random's, per seed.
    pub auc_vs_random: Estimate,
    /// Seeds where this arm's AUC is above random's.
    pub auc_ahead: usize,
    /// Oracle only: readout-parameter error at each budget.
    pub param_error_at_budget: Vec<(u64, Estimate)>,
}

/// Trials to reach random's final value, paired by seed.
#[derive(Debug, Clone, Serialize)]
pub struct ReachRow {
    pub arm: String,
    pub metric: &'static str,
    /// Fraction of random's final value (for an error: the error reached is random's final
    /// divided by it).
    pub level: f64,
    /// Median over seeds of random's / this arm's trials (0 where this arm never gets there).
    pub median_ratio: f64,
    /// Seeds where this arm gets there in at most half random's trials.
    pub at_least_2x: usize,
    /// Seeds where this arm gets there at all.
    pub reached: usize,
    pub seeds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub arms: Vec<ArmRow>,
    pub reach: Vec<ReachRow>,
}

/// Runs of `arm`, ordered as `random`'s seeds (a seed the arm lacks is skipped).
fn paired<'a>(
    runs: &'a [ArmRun],
    random: &'a [&'a ArmRun],
    arm: &str,
) -> Vec<(&'a ArmRun, &'a ArmRun)> {
    random
        .iter()
        .filter_map(|r| {
            runs.iter()
                .find(|a| a.arm == arm && a.seed == r.seed)
                .map(|a| (*r, a))
        })
        .collect()
}

/// Tables for every arm against the arm named `random` (absent: no paired rows).
pub fn summarise(runs: &[ArmRun], arms: &[String], budgets: &[u64], end: u64) -> Summary {
    fn heldout(p: &CurvePoint) -> f64 {
        p.heldout_r
    }
    fn error(p: &CurvePoint) -> f64 {
        p.param_error
    }
    let random: Vec<&ArmRun> = runs.iter().filter(|r| r.arm == "random").collect();
    let mut rows = Vec::new();
    let mut reach = Vec::new();
    for arm in arms {
        let own: Vec<&ArmRun> = runs.iter().filter(|r| &r.arm == arm).collect();
        let at = |f: fn(&CurvePoint) -> f64, t: u64| {
            Estimate::of(
                &own.iter()
                    .map(|r| value_at(&series(r, f), t))
                    .collect::<Vec<_>>(),
            )
        };
        let pairs = paired(runs, &random, arm);
        let diffs: Vec<f64> = pairs
            .iter()
            .map(|(r, a)| auc(&series(a, heldout), end) - auc(&series(r, heldout), end))
            .collect();
        rows.push(ArmRow {
            arm: arm.clone(),
            at_budget: budgets.iter().map(|&t| (t, at(heldout, t))).collect(),
            auc: Estimate::of(
                &own.iter()
                    .map(|r| auc(&series(r, heldout), end))
                    .collect::<Vec<_>>(),
            ),
            auc_vs_random: Estimate::of(&diffs),
            auc_ahead: diffs.iter().filter(|d| **d > 0.0).count(),
            param_error_at_budget: budgets.iter().map(|&t| (t, at(error, t))).collect(),
        });
        if arm == "random" {
            continue;
        }
        for (metric, f, level, lower_is_better) in [
            ("heldout_r", heldout as fn(&CurvePoint) -> f64, 0.9, false),
            ("heldout_r", heldout, 1.0, false),
            ("param_error", error, 1.0, true),
        ] {
            let sign = if lower_is_better { -1.0 } else { 1.0 };
            let (mut ratios, mut twice, mut reached) = (Vec::new(), 0, 0);
            for &(r, a) in &pairs {
                let flip = |run: &ArmRun| -> Vec<(u64, f64)> {
                    series(run, f)
                        .into_iter()
                        .map(|(t, v)| (t, sign * v))
                        .collect()
                };
                let (rc, ac) = (flip(r), flip(a));
                let finals: Vec<f64> = rc
                    .iter()
                    .rev()
                    .take(2)
                    .map(|p| p.1)
                    .filter(|v| v.is_finite())
                    .collect();
                if finals.is_empty() {
                    continue;
                }
                let last = finals.iter().sum::<f64>() / finals.len() as f64;
                // An error target is random's final error / level; an accuracy, level × final.
                let target = if lower_is_better {
                    last / level
                } else {
                    level * last
                };
                let Some(tr) = trials_to_reach(&rc, target) else {
                    continue;
                };
                match trials_to_reach(&ac, target) {
                    Some(ta) => {
                        reached += 1;
                        ratios.push(tr / ta.max(1.0));
                        if 2.0 * ta <= tr {
                            twice += 1;
                        }
                    }
                    None => ratios.push(0.0),
                }
            }
            if ratios.is_empty() {
                continue;
            }
            reach.push(ReachRow {
                arm: arm.clone(),
                metric,
                level,
                median_ratio: super::design_bench::median(ratios),
                at_least_2x: twice,
                reached,
                seeds: pairs.len(),
            });
        }
    }
    Summary { arms: rows, reach }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_matches_the_t_interval() {
        // Mean 3, s.d. sqrt(2.5), n 5: half-width t(4) * s / sqrt(5) = 2.776 * 0.7071.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((e.mean - 3.0).abs() < 1e-12);
        assert!(
            (e.ci95 - 2.776 * (2.5f64 / 5.0).sqrt()).abs() < 1e-9,
            "{}",
            e.ci95
        );
    }

    #[test]
    fn auc_and_interpolation_on_a_ramp() {
        // v = t / 100 on [0, 100]: area / 100 = 0.5; undefined points count as 0.
        let ramp: Vec<(u64, f64)> = (0..=10).map(|k| (10 * k, 0.1 * k as f64)).collect();
        assert!((auc(&ramp, 100) - 0.5).abs() < 1e-12);
        assert!((value_at(&ramp, 25) - 0.25).abs() < 1e-12);
        let mut gap = ramp.clone();
        gap[0].1 = f64::NAN;
        assert!(
            (auc(&gap, 100) - 0.5).abs() < 1e-12,
            "the first point was 0 anyway"
        );
        assert!(value_at(&ramp, 101).is_nan());
    }
}
