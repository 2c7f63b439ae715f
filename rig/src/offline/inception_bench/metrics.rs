//! The benchmark's figures: per mouse (medians over its targets, the live verdict's Welch +
//! Benjamini–Hochberg on the Poisson repeats) and across mice (medians with bootstrap 95%
//! intervals, and the goal's counts).

use super::truth::TargetTruth;
use crate::offline::design_bench::median;
use crate::stages::decide::inception::driver::ALPHA;
use crate::stages::decide::inception::records::{Contrast, Role};
use crate::stages::decide::inception::tally::TargetSamples;
use crate::stages::decide::inception::verdict::verdict;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One mouse's figures at one contrast.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContrastMetrics {
    pub targets: usize,
    /// Median over targets of ln(true rate to the MEI ÷ true rate to the best measured pool
    /// stimulus at the same budget).
    pub median_log_ratio: f64,
    /// Targets whose MEI beat the pool stimulus on the Poisson repeats (mean above, BH q below
    /// 0.05), and their share.
    pub significant: usize,
    pub significant_fraction: f64,
    /// The verdict's Σ(measured MEI − pool) ÷ Σ(predicted MEI − pool); low contrast only (the
    /// design predicts the pool control at the low budget), `None` where the twin predicted no
    /// advantage in sum.
    pub gain_ratio: Option<f64>,
    /// Median over targets of the MEI's true rate ÷ the cell's true optimum's.
    pub median_optimum_fraction: f64,
    /// The same for the best measured pool stimulus.
    pub pool_median_optimum_fraction: f64,
    /// The twin's predicted best of the library (low budget; NaN at full).
    pub library_median_optimum_fraction: f64,
    pub library_median_log_ratio: f64,
}

/// One mouse's figures (recomputed from its targets when a run is read back).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MouseMetrics {
    pub low: ContrastMetrics,
    pub full: ContrastMetrics,
}

fn ln_ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 {
        (a / b).ln()
    } else {
        f64::NAN
    }
}

fn contrast(targets: &[TargetTruth], c: Contrast, seed: u64) -> ContrastMetrics {
    let pick = |t: &TargetTruth| match c {
        Contrast::Low => (t.rate_hz.mei_low, t.rate_hz.pool_low, t.rate_hz.optimum_low),
        Contrast::Full => (
            t.rate_hz.mei_full,
            t.rate_hz.pool_full,
            t.rate_hz.optimum_full,
        ),
    };
    let samples: Vec<TargetSamples> = targets
        .iter()
        .map(|t| {
            let (challenger, best_pool, p_mei, p_pool) = match c {
                Contrast::Low => (
                    &t.samples.mei_low,
                    &t.samples.pool_low,
                    t.predicted.mei_low,
                    t.predicted.pool_low,
                ),
                Contrast::Full => (
                    &t.samples.mei_full,
                    &t.samples.pool_full,
                    t.predicted.mei_full,
                    f64::NAN,
                ),
            };
            TargetSamples {
                target: t.target,
                challenger: challenger.clone(),
                best_pool: best_pool.clone(),
                predicted_challenger: p_mei,
                predicted_best_pool: p_pool,
                controls: Vec::new(),
            }
        })
        .collect();
    let v = verdict(Role::Mei { contrast: c }, &samples, None, &[], ALPHA, seed);
    let n = targets.len();
    let low = c == Contrast::Low;
    let lib = |f: &dyn Fn(&TargetTruth) -> f64| {
        if low {
            median(targets.iter().map(f).collect())
        } else {
            f64::NAN
        }
    };
    ContrastMetrics {
        targets: n,
        median_log_ratio: median(
            targets
                .iter()
                .map(|t| {
                    let (m, p, _) = pick(t);
                    ln_ratio(m, p)
                })
                .collect(),
        ),
        significant: v.significant,
        significant_fraction: if n > 0 {
            v.significant as f64 / n as f64
        } else {
            f64::NAN
        },
        gain_ratio: if low { v.gain_ratio } else { None },
        median_optimum_fraction: median(
            targets
                .iter()
                .map(|t| {
                    let (m, _, o) = pick(t);
                    m / o
                })
                .collect(),
        ),
        pool_median_optimum_fraction: median(
            targets
                .iter()
                .map(|t| {
                    let (_, p, o) = pick(t);
                    p / o
                })
                .collect(),
        ),
        library_median_optimum_fraction: lib(&|t| t.rate_hz.library / t.rate_hz.optimum_low),
        library_median_log_ratio: lib(&|t| ln_ratio(t.rate_hz.library, t.rate_hz.pool_low)),
    }
}

/// A mouse's figures from its targets.
pub fn mouse_metrics(targets: &[TargetTruth], seed: u64) -> MouseMetrics {
    MouseMetrics {
        low: contrast(targets, Contrast::Low, seed),
        full: contrast(targets, Contrast::Full, seed ^ 1),
    }
}

/// A median across mice with its bootstrap 95% interval (percentiles of 2,000 resampled
/// medians, fixed seed); NaNs left out.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

impl Interval {
    pub fn of(values: &[f64]) -> Interval {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return Interval {
                median: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
                n,
            };
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0xb007);
        let mut meds: Vec<f64> = (0..2000)
            .map(|_| median((0..n).map(|_| v[rng.random_range(0..n)]).collect()))
            .collect();
        meds.sort_by(f64::total_cmp);
        Interval {
            median: median(v),
            lo: meds[49],
            hi: meds[1949],
            n,
        }
    }
}

/// Across mice at one contrast.
#[derive(Debug, Clone, Serialize)]
pub struct Across {
    pub mice: usize,
    pub median_log_ratio: Interval,
    pub significant_fraction: Interval,
    pub gain_ratio: Interval,
    pub optimum_fraction: Interval,
    pub pool_optimum_fraction: Interval,
    pub library_optimum_fraction: Interval,
    pub library_log_ratio: Interval,
    /// Mice whose median log ratio is above 0: the MEI beat the best measured pool stimulus.
    pub mice_mei_beats_pool: usize,
    /// Mice whose MEI reached 80% of the true optimum (median over targets).
    pub mice_at_80_percent: usize,
}

/// The figures across `mice` at contrast `c`.
pub fn across_mice(mice: &[&MouseMetrics], c: Contrast) -> Across {
    let at: Vec<&ContrastMetrics> = mice
        .iter()
        .map(|m| match c {
            Contrast::Low => &m.low,
            Contrast::Full => &m.full,
        })
        .collect();
    let of =
        |f: fn(&ContrastMetrics) -> f64| Interval::of(&at.iter().map(|m| f(m)).collect::<Vec<_>>());
    Across {
        mice: at.len(),
        median_log_ratio: of(|m| m.median_log_ratio),
        significant_fraction: of(|m| m.significant_fraction),
        gain_ratio: of(|m| m.gain_ratio.unwrap_or(f64::NAN)),
        optimum_fraction: of(|m| m.median_optimum_fraction),
        pool_optimum_fraction: of(|m| m.pool_median_optimum_fraction),
        library_optimum_fraction: of(|m| m.library_median_optimum_fraction),
        library_log_ratio: of(|m| m.library_median_log_ratio),
        mice_mei_beats_pool: at.iter().filter(|m| m.median_log_ratio > 0.0).count(),
        mice_at_80_percent: at
            .iter()
            .filter(|m| m.median_optimum_fraction >= 0.8)
            .count(),
    }
}
