//! The verdict of a verify block: per target, measured against predicted means, a Welch test of
//! the challenger (MEI or library best) against the best measured pool stimulus, corrected by
//! Benjamini–Hochberg across targets; the selectivity matrix with a permutation test; one line.
//! The statistics are `twinloop_analysis`'s, checked there against scipy.

use super::records::{Contrast, Role, StimulusId};
use super::tally::TargetSamples;
use serde::Serialize;
use twinloop_analysis::compare::welch_t_test;
use twinloop_analysis::compare::{Alternative, PermutationTest, WelchTest, permutation_test};
use twinloop_analysis::multiple::bh_qvalues;

/// A sample's mean and its standard error (sample standard deviation / sqrt(n)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanSem {
    pub mean: f64,
    /// NaN with fewer than two values.
    pub sem: f64,
    pub n: usize,
}

impl MeanSem {
    pub fn of(x: &[f64]) -> MeanSem {
        let n = x.len();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        MeanSem {
            mean,
            sem: if n > 1 {
                (var / n as f64).sqrt()
            } else {
                f64::NAN
            },
            n,
        }
    }
}

/// One target's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TargetVerdict {
    pub target: u32,
    pub challenger: MeanSem,
    pub best_pool: MeanSem,
    pub predicted_challenger: f64,
    pub predicted_best_pool: f64,
    /// Welch's test of challenger − best pool; `None` with the reason when it cannot be
    /// computed (fewer than two responses, no variance): then it takes no part in the
    /// correction and does not count as a win.
    pub welch: Option<WelchTest>,
    pub untested: Option<String>,
    /// Benjamini–Hochberg q across the tested targets.
    pub q: Option<f64>,
    /// The target's other stimuli (library best, random controls): measured and predicted.
    pub controls: Vec<ControlVerdict>,
}

/// One control stimulus's measured mean and the twin's prediction, for one target.
#[derive(Debug, Clone, Serialize)]
pub struct ControlVerdict {
    pub role: Role,
    pub stimulus: StimulusId,
    pub measured: MeanSem,
    pub predicted: f64,
}

/// Targets' responses to every target's MEI, and whether each responds most to its own.
#[derive(Debug, Clone, Serialize)]
pub struct Selectivity {
    /// Row i, column j: target i's mean response to target j's MEI.
    pub matrix: Vec<Vec<f64>>,
    /// Mean of the row-standardised diagonal minus the mean off the diagonal, against label
    /// shuffles of those entries (one-sided: own MEI higher).
    pub test: PermutationTest,
}

/// A verify block's verdict for one challenger.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub challenger: Role,
    pub targets: Vec<TargetVerdict>,
    /// Targets whose challenger beat the best pool stimulus: mean above and BH q below `alpha`.
    pub significant: usize,
    /// Targets whose challenger's measured mean is above the best pool stimulus's.
    pub higher: usize,
    pub alpha: f64,
    /// Σ (measured challenger − best pool) ÷ Σ (predicted challenger − best pool) over the
    /// tested targets: the share of the predicted advantage the cells showed (1: the twin was
    /// right; below 1: overconfident). `None` when the twin predicted no advantage in sum.
    pub gain_ratio: Option<f64>,
    pub selectivity: Option<Selectivity>,
    /// Targets left out because their cell was lost.
    pub lost: Vec<u32>,
}

/// How the selectivity test resamples: exact up to this many splits, else this many draws.
pub const SELECTIVITY_RESAMPLES: usize = 100_000;

/// The verdict for `challenger` from each target's `samples`, the selectivity `matrix` (if
/// there is one) and the targets `lost`, which are left out. `seed` drives the permutation
/// test when it cannot enumerate.
pub fn verdict(
    challenger: Role,
    samples: &[TargetSamples],
    matrix: Option<Vec<Vec<f64>>>,
    lost: &[u32],
    alpha: f64,
    seed: u64,
) -> Verdict {
    let mut targets: Vec<TargetVerdict> = samples
        .iter()
        .filter(|s| !lost.contains(&s.target))
        .map(|s| {
            let (welch, untested) = match welch_t_test(&s.challenger, &s.best_pool) {
                Ok(w) => (Some(w), None),
                Err(e) => (None, Some(e.to_string())),
            };
            TargetVerdict {
                target: s.target,
                challenger: MeanSem::of(&s.challenger),
                best_pool: MeanSem::of(&s.best_pool),
                predicted_challenger: s.predicted_challenger,
                predicted_best_pool: s.predicted_best_pool,
                welch,
                untested,
                q: None,
                controls: s
                    .controls
                    .iter()
                    .map(|c| ControlVerdict {
                        role: c.role,
                        stimulus: c.stimulus.clone(),
                        measured: MeanSem::of(&c.responses),
                        predicted: c.predicted,
                    })
                    .collect(),
            }
        })
        .collect();
    let tested: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].welch.is_some())
        .collect();
    let p: Vec<f64> = tested
        .iter()
        .filter_map(|&i| targets[i].welch.map(|w| w.p_value))
        .collect();
    // Welch p-values lie in [0, 1], which is all BH refuses.
    if let Ok(q) = bh_qvalues(&p) {
        for (&i, q) in tested.iter().zip(q) {
            targets[i].q = Some(q);
        }
    }
    let ahead = |t: &TargetVerdict| t.challenger.mean > t.best_pool.mean;
    let significant = targets
        .iter()
        .filter(|t| ahead(t) && t.q.is_some_and(|q| q < alpha))
        .count();
    let higher = targets.iter().filter(|t| ahead(t)).count();
    let (measured, predicted) = tested
        .iter()
        .map(|&i| &targets[i])
        .fold((0.0, 0.0), |acc, t| {
            (
                acc.0 + t.challenger.mean - t.best_pool.mean,
                acc.1 + t.predicted_challenger - t.predicted_best_pool,
            )
        });
    let gain_ratio = (predicted > 0.0).then(|| measured / predicted);
    let selectivity = matrix.and_then(|m| {
        let kept: Vec<usize> = (0..m.len())
            .filter(|&i| !lost.contains(&(i as u32)))
            .collect();
        selectivity_test(&m, &kept, seed).map(|test| Selectivity { matrix: m, test })
    });
    Verdict {
        challenger,
        targets,
        significant,
        higher,
        alpha,
        gain_ratio,
        selectivity,
        lost: lost.to_vec(),
    }
}

/// The permutation test on the rows and columns `kept`: each row standardised (so a cell that
/// responds to everything weighs as much as a sparse one), then its diagonal against the rest.
/// `None` with fewer than two targets or a row without variance or finite values.
fn selectivity_test(m: &[Vec<f64>], kept: &[usize], seed: u64) -> Option<PermutationTest> {
    if kept.len() < 2 {
        return None;
    }
    let (mut diag, mut off) = (Vec::new(), Vec::new());
    for &i in kept {
        let row: Vec<f64> = kept.iter().map(|&j| m[i][j]).collect();
        let ms = MeanSem::of(&row);
        let sd = ms.sem * (row.len() as f64).sqrt();
        if !(sd.is_finite() && sd > 0.0) {
            return None;
        }
        for (k, &j) in kept.iter().enumerate() {
            let z = (row[k] - ms.mean) / sd;
            if i == j { diag.push(z) } else { off.push(z) }
        }
    }
    permutation_test(
        &diag,
        &off,
        SELECTIVITY_RESAMPLES,
        seed,
        Alternative::Greater,
    )
    .ok()
}

impl Verdict {
    /// The one line the summary, the dashboard and the report show.
    pub fn line(&self) -> String {
        let name: &str = match self.challenger {
            Role::Mei {
                contrast: Contrast::Low,
            } => "MEI (low contrast)",
            Role::Mei {
                contrast: Contrast::Full,
            } => "MEI (full contrast)",
            Role::LibraryBest => "library best",
            Role::BestPool => "best pool",
            Role::Random => "random pool",
        };
        let gain = self
            .gain_ratio
            .map_or("n/a (no predicted advantage)".into(), |g| format!("{g:.2}"));
        let sel = self.selectivity.as_ref().map_or(String::new(), |s| {
            format!("; selectivity p = {:.3}", s.test.p_value)
        });
        let lost = if self.lost.is_empty() {
            String::new()
        } else {
            format!("; {} target(s) lost", self.lost.len())
        };
        format!(
            "{name} beat the best measured pool stimulus for {} of {} targets (BH q < {}; \
             {} higher on mean); measured/predicted gain {gain}{sel}{lost}",
            self.significant,
            self.targets.len(),
            self.alpha,
            self.higher,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::decide::inception::tally::ControlSamples;

    // The expected values are scipy 1.17.1's on the same numbers:
    //
    // ```python
    // import numpy as np
    // from scipy import stats
    // mei = [[1.9, 2.4, 2.1, 2.8, 2.2, 2.6], [1.1, 0.7, 1.4, 0.9, 1.3, 1.0], [3.0, 2.2, 2.9, 3.4, 2.5, 2.7]]
    // pool = [[1.2, 1.6, 1.1, 1.4, 1.8, 1.3], [1.0, 1.2, 0.8, 1.1, 0.9, 1.3], [2.9, 3.1, 2.4, 2.6, 3.3, 2.8]]
    // ps = []
    // for a, b in zip(mei, pool):
    //     r = stats.ttest_ind(a, b, equal_var=False); ps.append(r.pvalue)
    //     print(r.statistic, r.df, r.pvalue, stats.sem(a), stats.sem(b))
    // print(stats.false_discovery_control(ps, method="bh"))
    // m = np.array([[2.3, 1.2, 0.9], [0.8, 1.1, 0.6], [1.5, 1.4, 2.9]])
    // def sel(m):
    //     z = (m - m.mean(1, keepdims=True)) / m.std(1, ddof=1, keepdims=True)
    //     n = len(m); d, o = np.diag(z), z[~np.eye(n, dtype=bool)]
    //     return stats.permutation_test((d, o), lambda x, y, axis: x.mean(axis) - y.mean(axis),
    //         permutation_type="independent", alternative="greater", n_resamples=np.inf,
    //         vectorized=True)
    // print(sel(m).statistic, sel(m).pvalue)
    // # target 1 lost:
    // print(stats.false_discovery_control([ps[0], ps[2]], method="bh"), sel(m[np.ix_([0, 2], [0, 2])]).pvalue)
    // ```
    const MEI: [[f64; 6]; 3] = [
        [1.9, 2.4, 2.1, 2.8, 2.2, 2.6],
        [1.1, 0.7, 1.4, 0.9, 1.3, 1.0],
        [3.0, 2.2, 2.9, 3.4, 2.5, 2.7],
    ];
    const POOL: [[f64; 6]; 3] = [
        [1.2, 1.6, 1.1, 1.4, 1.8, 1.3],
        [1.0, 1.2, 0.8, 1.1, 0.9, 1.3],
        [2.9, 3.1, 2.4, 2.6, 3.3, 2.8],
    ];
    const PREDICTED_MEI: [f64; 3] = [2.5, 1.5, 3.2];
    const PREDICTED_POOL: [f64; 3] = [1.3, 1.0, 2.8];
    /// scipy's (t, df, p, sem of MEI, sem of pool) per target.
    const WELCH: [[f64; 5]; 3] = [
        [
            5.4086718650037895,
            9.460484720758693,
            0.0003606283143812705,
            0.13581032524975575,
            0.10645812948447542,
        ],
        [
            0.12803687993289553,
            9.1156295933366,
            0.9009000294560255,
            0.10540925533894598,
            0.07637626158259733,
        ],
        [
            -0.3082399657483779,
            9.465928936504293,
            0.7645754071391172,
            0.17013066873566457,
            0.13354150416006752,
        ],
    ];
    const Q: [f64; 3] = [
        0.0010818849431438115,
        0.9009000294560255,
        0.9009000294560255,
    ];
    const SELECTIVITY: [[f64; 3]; 3] = [[2.3, 1.2, 0.9], [0.8, 1.1, 0.6], [1.5, 1.4, 2.9]];
    const SELECTIVITY_STAT: f64 = 1.6714057416836297;
    const SELECTIVITY_P: f64 = 0.011904761904761904;
    const Q_TARGET_1_LOST: [f64; 2] = [0.000721256628762541, 0.7645754071391172];
    const SELECTIVITY_P_TARGET_1_LOST: f64 = 0.16666666666666666;

    fn close(a: f64, b: f64, what: &str) {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1e-12),
            "{what}: {a} vs scipy {b}"
        );
    }

    fn samples() -> Vec<TargetSamples> {
        (0..3)
            .map(|t| TargetSamples {
                target: t as u32,
                challenger: MEI[t].to_vec(),
                best_pool: POOL[t].to_vec(),
                predicted_challenger: PREDICTED_MEI[t],
                predicted_best_pool: PREDICTED_POOL[t],
                // Another target's pool responses as this one's random control.
                controls: vec![ControlSamples {
                    role: Role::Random,
                    stimulus: StimulusId(format!("pool/{t}")),
                    responses: POOL[(t + 1) % 3].to_vec(),
                    predicted: 0.5,
                }],
            })
            .collect()
    }

    fn matrix() -> Option<Vec<Vec<f64>>> {
        Some(SELECTIVITY.iter().map(|r| r.to_vec()).collect())
    }

    const LOW: Role = Role::Mei {
        contrast: Contrast::Low,
    };

    #[test]
    fn the_statistics_match_scipy() {
        let v = verdict(LOW, &samples(), matrix(), &[], 0.05, 1);
        for (t, (tv, want)) in v.targets.iter().zip(WELCH).enumerate() {
            let w = tv.welch.expect("tested");
            close(w.t, want[0], &format!("target {t} t"));
            close(w.df, want[1], &format!("target {t} df"));
            close(w.p_value, want[2], &format!("target {t} p"));
            close(tv.challenger.sem, want[3], &format!("target {t} MEI sem"));
            close(tv.best_pool.sem, want[4], &format!("target {t} pool sem"));
            close(tv.q.unwrap(), Q[t], &format!("target {t} q"));
            let c = &tv.controls[0];
            close(
                c.measured.sem,
                WELCH[(t + 1) % 3][4],
                &format!("target {t} control sem"),
            );
            assert_eq!((c.role, c.predicted), (Role::Random, 0.5));
        }
        let s = v.selectivity.as_ref().expect("three targets");
        assert!(s.test.exact && s.test.resamples == 84, "{:?}", s.test);
        close(s.test.statistic, SELECTIVITY_STAT, "selectivity statistic");
        close(s.test.p_value, SELECTIVITY_P, "selectivity p");
        // Target 0 wins (q 0.001); target 1 is higher on mean only; target 2 is lower.
        assert_eq!((v.significant, v.higher), (1, 2));
        // Σ measured advantage / Σ predicted advantage, by hand from the constants.
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let measured: f64 = (0..3).map(|t| mean(&MEI[t]) - mean(&POOL[t])).sum();
        let predicted: f64 = (0..3).map(|t| PREDICTED_MEI[t] - PREDICTED_POOL[t]).sum();
        close(v.gain_ratio.unwrap(), measured / predicted, "gain ratio");
        let line = v.line();
        assert!(
            line.starts_with(
                "MEI (low contrast) beat the best measured pool stimulus for 1 of 3 targets"
            ) && line.contains("gain 0.42")
                && line.contains("selectivity p = 0.012"),
            "{line}"
        );
    }

    /// A lost target leaves the correction and the selectivity matrix, and the line says so.
    #[test]
    fn a_lost_target_is_left_out_and_named() {
        let v = verdict(LOW, &samples(), matrix(), &[1], 0.05, 1);
        let kept: Vec<u32> = v.targets.iter().map(|t| t.target).collect();
        assert_eq!(kept, vec![0, 2]);
        close(v.targets[0].q.unwrap(), Q_TARGET_1_LOST[0], "q target 0");
        close(v.targets[1].q.unwrap(), Q_TARGET_1_LOST[1], "q target 2");
        let s = v.selectivity.as_ref().unwrap();
        close(s.test.p_value, SELECTIVITY_P_TARGET_1_LOST, "selectivity p");
        assert!(v.line().ends_with("; 1 target(s) lost"), "{}", v.line());
    }

    /// A target whose test cannot be computed says why and neither wins nor enters BH; a twin
    /// that predicted no advantage gives no gain ratio; one target has no selectivity test.
    #[test]
    fn untestable_targets_and_ratios_are_reported_not_guessed() {
        let mut s = samples();
        s[1].challenger = vec![5.0; 6];
        s[1].best_pool = vec![1.0; 6];
        s[0].predicted_challenger = s[0].predicted_best_pool - 10.0;
        let v = verdict(LOW, &s, None, &[], 0.05, 1);
        assert!(v.targets[1].welch.is_none() && v.targets[1].q.is_none());
        assert!(
            v.targets[1]
                .untested
                .as_deref()
                .unwrap()
                .contains("constant")
        );
        // BH over the two tested targets only: scipy's q for targets 0 and 2 alone.
        close(v.targets[0].q.unwrap(), Q_TARGET_1_LOST[0], "q target 0");
        assert_eq!((v.significant, v.higher), (1, 2));
        assert_eq!(v.gain_ratio, None);
        assert!(
            v.line().contains("n/a (no predicted advantage)"),
            "{}",
            v.line()
        );
        let one = verdict(LOW, &samples()[..1], Some(vec![vec![2.0]]), &[], 0.05, 1);
        assert!(one.selectivity.is_none());
    }
}
