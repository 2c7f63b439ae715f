//! Two-group comparisons: Welch's unequal-variance t-test and seeded permutation tests
//! (two-sample label shuffles, paired sign flips). Issue #18 compares MEI responses with
//! controls with these.

use crate::error::{Result, invalid};
use crate::special::student_t_two_sided_p;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Result of Welch's t-test of mean(a) − mean(b).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WelchTest {
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value from Student's t with `df` degrees of freedom.
    pub p_value: f64,
    pub mean_difference: f64,
}

/// Welch's t-test (as `scipy.stats.ttest_ind(a, b, equal_var=False)`). Needs ≥ 2 finite values
/// per group and some variance.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<WelchTest> {
    let (ma, va) = mean_var(a, "a")?;
    let (mb, vb) = mean_var(b, "b")?;
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return Err(invalid(
            "samples",
            "both groups are constant: the t statistic is undefined",
        ));
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64);
    Ok(WelchTest {
        t,
        df,
        p_value: student_t_two_sided_p(t, df),
        mean_difference: ma - mb,
    })
}

fn mean_var(x: &[f64], name: &str) -> Result<(f64, f64)> {
    if x.len() < 2 {
        return Err(invalid(
            name,
            format!("{} values; a t-test needs at least 2 per group", x.len()),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid(name, format!("value {i} is not finite")));
    }
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    Ok((m, v))
}

/// Which tail a permutation test reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Alternative {
    /// mean(a) − mean(b) > 0.
    Greater,
    /// mean(a) − mean(b) < 0.
    Less,
    /// min(1, 2 × the smaller one-sided p), scipy's convention.
    TwoSided,
}

/// Result of a permutation test of the mean difference.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PermutationTest {
    pub statistic: f64,
    pub p_value: f64,
    /// True when every rearrangement was enumerated (then p is exact, counts include the
    /// observed one); false when `resamples` random ones were drawn and p = (k + 1)/(R + 1).
    pub exact: bool,
    pub resamples: usize,
}

/// Two-sample permutation test of mean(a) − mean(b), shuffling group labels. Enumerates all
/// C(n_a + n_b, n_a) splits when there are at most `resamples` of them, else draws `resamples`
/// random ones from a ChaCha8 stream seeded by `seed`.
pub fn permutation_test(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
    alt: Alternative,
) -> Result<PermutationTest> {
    check_sample(a, "a")?;
    check_sample(b, "b")?;
    check_resamples(resamples)?;
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (na, n) = (a.len(), pooled.len());
    let total: f64 = pooled.iter().sum();
    let stat = |sum_a: f64| sum_a / na as f64 - (total - sum_a) / (n - na) as f64;
    let observed = stat(a.iter().sum());
    let mut stats = Vec::new();
    let exact = binomial(n, na).is_some_and(|c| c <= resamples as f64);
    if exact {
        // Every subset of size na as group a, by walking combinations in lexicographic order.
        let mut idx: Vec<usize> = (0..na).collect();
        loop {
            stats.push(stat(idx.iter().map(|&i| pooled[i]).sum()));
            let Some(k) = (0..na).rev().find(|&k| idx[k] != k + n - na) else {
                break;
            };
            idx[k] += 1;
            for j in k + 1..na {
                idx[j] = idx[j - 1] + 1;
            }
        }
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut perm = pooled.clone();
        for _ in 0..resamples {
            perm.shuffle(&mut rng);
            stats.push(stat(perm[..na].iter().sum()));
        }
    }
    Ok(finish(observed, &stats, exact, alt))
}

/// Paired permutation test of mean(a − b): flips the sign of each difference. Exact over all
/// 2ⁿ sign patterns when 2ⁿ ≤ `resamples`, else `resamples` random patterns from `seed`.
pub fn paired_permutation_test(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
    alt: Alternative,
) -> Result<PermutationTest> {
    check_sample(a, "a")?;
    if a.len() != b.len() {
        return Err(invalid(
            "b",
            format!(
                "{} values, but a has {}; pairs need equal lengths",
                b.len(),
                a.len()
            ),
        ));
    }
    check_sample(b, "b")?;
    check_resamples(resamples)?;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let mean = |signs: &dyn Fn(usize) -> bool| {
        d.iter()
            .enumerate()
            .map(|(i, v)| if signs(i) { -v } else { *v })
            .sum::<f64>()
            / n as f64
    };
    let observed = mean(&|_| false);
    let exact = n < 63 && (1u64 << n) as f64 <= resamples as f64;
    let stats: Vec<f64> = if exact {
        (0..1u64 << n)
            .map(|mask| mean(&|i| mask >> i & 1 == 1))
            .collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..resamples)
            .map(|_| {
                let flips: Vec<bool> = (0..n).map(|_| rng.random::<bool>()).collect();
                mean(&|i| flips[i])
            })
            .collect()
    };
    Ok(finish(observed, &stats, exact, alt))
}

fn finish(observed: f64, stats: &[f64], exact: bool, alt: Alternative) -> PermutationTest {
    // Ties within rounding count as "at least as extreme" (scipy does the same with a relative
    // tolerance), so the exact p does not depend on summation order.
    let tol = 1e-12 * observed.abs().max(1e-300);
    let ge = stats.iter().filter(|s| **s >= observed - tol).count() as f64;
    let le = stats.iter().filter(|s| **s <= observed + tol).count() as f64;
    let r = stats.len() as f64;
    let p = |k: f64| if exact { k / r } else { (k + 1.0) / (r + 1.0) };
    let p_value = match alt {
        Alternative::Greater => p(ge),
        Alternative::Less => p(le),
        Alternative::TwoSided => (2.0 * p(ge).min(p(le))).min(1.0),
    };
    PermutationTest {
        statistic: observed,
        p_value,
        exact,
        resamples: stats.len(),
    }
}

/// Most rearrangements a test will draw or enumerate: beyond this the p-value's resolution no
/// longer matters and the run time would (10⁷ mean differences take seconds).
pub const MAX_RESAMPLES: usize = 10_000_000;

fn check_resamples(resamples: usize) -> Result<()> {
    if resamples == 0 || resamples > MAX_RESAMPLES {
        return Err(invalid(
            "resamples",
            format!("{resamples}; use 1..={MAX_RESAMPLES}"),
        ));
    }
    Ok(())
}

fn check_sample(x: &[f64], name: &str) -> Result<()> {
    if x.is_empty() {
        return Err(invalid(name, "empty sample"));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid(name, format!("value {i} is not finite")));
    }
    Ok(())
}

/// C(n, k) as a float, `None` past 1e15 (more than anyone will enumerate).
fn binomial(n: usize, k: usize) -> Option<f64> {
    let mut c = 1.0f64;
    for i in 0..k.min(n - k) {
        c = c * (n - i) as f64 / (i + 1) as f64;
        if c > 1e15 {
            return None;
        }
    }
    Some(c.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_permutation_p_is_reproducible_and_bounded() {
        let a: Vec<f64> = (0..30).map(|i| (i as f64 * 0.37).sin() + 0.8).collect();
        let b: Vec<f64> = (0..30).map(|i| (i as f64 * 0.91).cos()).collect();
        let r1 = permutation_test(&a, &b, 2000, 7, Alternative::TwoSided).unwrap();
        let r2 = permutation_test(&a, &b, 2000, 7, Alternative::TwoSided).unwrap();
        assert!(!r1.exact);
        assert_eq!(r1.p_value, r2.p_value);
        assert!(r1.p_value >= 1.0 / 2001.0 && r1.p_value <= 1.0);
        let paired = paired_permutation_test(&a, &b, 10, 1, Alternative::Greater).unwrap();
        assert_eq!(paired.resamples, 10);
        assert!(paired_permutation_test(&a, &b[..3], 10, 1, Alternative::Less).is_err());
    }
}
