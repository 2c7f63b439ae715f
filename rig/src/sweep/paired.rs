//! Arms against the random baseline, paired by seed: the comparison `bench loop` makes, from a
//! gathered sweep's rows.
//!
//! The baseline is the job whose policy axis (`objective` for benchmark arms, `trials.policy`
//! for sessions) is `random` and whose other axes, seed included, equal the arm's. For each
//! metric: the mean difference arm − baseline over seeds with its 95% t interval, and in how many
//! seeds the arm came out ahead.

use crate::offline::report::analysis::mean_sem;
use serde_json::Value;
use std::collections::BTreeMap;

/// The axes that name a selection policy, and the value that is the baseline.
const POLICY_AXES: [&str; 2] = ["objective", "trials.policy"];
const BASELINE: &str = "random";

/// One arm's difference from the baseline on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDiff {
    /// The arm: its axes other than the seed, as `axis = value` joined by commas.
    pub arm: String,
    pub metric: String,
    pub pairs: usize,
    pub mean: f64,
    /// Half-width of the 95% confidence interval (none with fewer than two pairs).
    pub ci95: Option<f64>,
    /// Seeds in which the arm's value exceeded the baseline's.
    pub ahead: usize,
}

/// 97.5% quantile of Student's t with `df` degrees of freedom, by bisection on the two-sided
/// p-value.
pub fn t975(df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0e4);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if twinloop_analysis::special::student_t_two_sided_p(mid, df) > 0.05 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Every non-baseline arm against the baseline, for each numeric metric in `metrics`.
pub fn against_random(rows: &[Value], axes: &[String], metrics: &[String]) -> Vec<PairedDiff> {
    let Some(policy) = POLICY_AXES
        .iter()
        .find(|p| axes.iter().any(|a| a == *p))
        .map(|p| p.to_string())
    else {
        return Vec::new();
    };
    // Rows keyed by every axis but the policy (the seed included): a baseline and its arms.
    let key = |r: &Value| {
        axes.iter()
            .filter(|a| **a != policy)
            .map(|a| format!("{a}={}", text(r.get(a.as_str()))))
            .collect::<Vec<_>>()
            .join(",")
    };
    let baselines: BTreeMap<String, &Value> = rows
        .iter()
        .filter(|r| text(r.get(policy.as_str())) == BASELINE)
        .map(|r| (key(r), r))
        .collect();
    // Arms: every axis but the seed.
    let arm_of = |r: &Value| {
        axes.iter()
            .filter(|a| a.as_str() != "seed")
            .map(|a| format!("{a} = {}", text(r.get(a.as_str()))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut diffs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| text(r.get(policy.as_str())) != BASELINE)
    {
        let Some(base) = baselines.get(&key(r)) else {
            continue;
        };
        for m in metrics {
            let (Some(a), Some(b)) = (
                r.get(m.as_str()).and_then(Value::as_f64),
                base.get(m.as_str()).and_then(Value::as_f64),
            ) else {
                continue;
            };
            diffs.entry((arm_of(r), m.clone())).or_default().push(a - b);
        }
    }
    diffs
        .into_iter()
        .filter_map(|((arm, metric), d)| {
            let ms = mean_sem(&d)?;
            Some(PairedDiff {
                arm,
                metric,
                pairs: d.len(),
                mean: ms.mean,
                ci95: ms.sem.map(|s| t975((ms.n - 1) as f64) * s),
                ahead: d.iter().filter(|x| **x > 0.0).count(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn t_quantiles_match_scipy() {
        // scipy.stats.t.ppf(0.975, df)
        for (df, want) in [
            (1.0, 12.706204736174698),
            (4.0, 2.7764451051977934),
            (9.0, 2.2621571627982053),
            (19.0, 2.093024054408307),
            (1000.0, 1.9623390808264078),
        ] {
            assert!((t975(df) - want).abs() < 1e-6, "df {df}: {}", t975(df));
        }
    }

    #[test]
    fn arms_are_paired_with_the_random_run_of_the_same_seed_and_core() {
        // Two cores, three seeds; info_gain beats random by 0.1, 0.2, −0.1 on the energy core,
        // and the pretrained rows must not be mixed in (their baseline differs by 10).
        let mut rows = Vec::new();
        for (seed, base, arm) in [(1, 0.5, 0.6), (2, 0.4, 0.6), (3, 0.7, 0.6)] {
            rows.push(json!({"seed": seed, "core": "energy", "objective": "random", "auc": base}));
            rows.push(
                json!({"seed": seed, "core": "energy", "objective": "info_gain", "auc": arm}),
            );
            rows.push(
                json!({"seed": seed, "core": "pretrained", "objective": "random", "auc": 10.0}),
            );
        }
        let axes = ["core", "objective", "seed"].map(String::from);
        let d = against_random(&rows, &axes, &["auc".to_string()]);
        assert_eq!(d.len(), 1, "{d:?}");
        let d = &d[0];
        assert_eq!(d.arm, "core = energy, objective = info_gain");
        assert_eq!((d.pairs, d.ahead), (3, 2));
        assert!((d.mean - 0.2 / 3.0).abs() < 1e-12);
        // s.d. of (0.1, 0.2, −0.1) is 0.152753; sem 0.0881917; t(2) 4.302653.
        assert!((d.ci95.unwrap() - 4.302652729911275 * 0.08819171036881969).abs() < 1e-6);
    }
}
