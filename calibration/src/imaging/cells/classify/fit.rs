//! Training the ROI classifier: L2-regularised logistic regression by Newton's method
//! (iteratively reweighted least squares) on standardised inputs.

use super::features::RoiFeatures;
use super::model::{INPUT_NAMES, RoiClassifier, model_inputs};

/// Ridge penalty on the standardised coefficients (not the intercept): keeps the fit finite
/// when the classes separate, which they nearly do.
const RIDGE: f64 = 1e-2;

/// Fits a classifier to labelled ROIs (`true`: a soma). `trained_on` is stored as given.
/// Returns `None` if either class is empty.
pub fn fit(examples: &[(RoiFeatures, bool)], trained_on: String) -> Option<RoiClassifier> {
    let n = examples.len();
    let pos = examples.iter().filter(|e| e.1).count();
    if pos == 0 || pos == n {
        return None;
    }
    let k = INPUT_NAMES.len();
    let xs: Vec<[f64; 9]> = examples.iter().map(|e| model_inputs(&e.0)).collect();
    let mut mean = vec![0.0; k];
    let mut sd = vec![0.0; k];
    for j in 0..k {
        mean[j] = xs.iter().map(|x| x[j]).sum::<f64>() / n as f64;
        sd[j] = (xs.iter().map(|x| (x[j] - mean[j]).powi(2)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-9);
    }
    // Design rows: 1 (intercept) then the standardised inputs.
    let rows: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| {
            std::iter::once(1.0)
                .chain((0..k).map(|j| (x[j] - mean[j]) / sd[j]))
                .collect()
        })
        .collect();
    // Classes are weighted to equal total weight, so the threshold 0.5 sits between them.
    let w_pos = n as f64 / (2.0 * pos as f64);
    let w_neg = n as f64 / (2.0 * (n - pos) as f64);
    let m = k + 1;
    let mut beta = vec![0.0; m];
    for _ in 0..50 {
        let mut grad = vec![0.0; m];
        let mut hess = vec![0.0; m * m];
        for (row, e) in rows.iter().zip(examples) {
            let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let y = if e.1 { 1.0 } else { 0.0 };
            let wt = if e.1 { w_pos } else { w_neg };
            for a in 0..m {
                grad[a] += wt * (y - p) * row[a];
                for b in 0..m {
                    hess[a * m + b] += wt * p * (1.0 - p) * row[a] * row[b];
                }
            }
        }
        for a in 1..m {
            grad[a] -= RIDGE * n as f64 * beta[a];
            hess[a * m + a] += RIDGE * n as f64;
        }
        let step = solve(&mut hess, &mut grad, m)?;
        let size: f64 = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
        beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
        if size < 1e-9 {
            break;
        }
    }
    Some(RoiClassifier {
        inputs: INPUT_NAMES.iter().map(|s| s.to_string()).collect(),
        mean,
        sd,
        coef: beta[1..].to_vec(),
        intercept: beta[0],
        trained_on,
    })
}

/// Solves `a x = b` (a symmetric positive definite, m x m) by Gaussian elimination with
/// partial pivoting; `None` if singular.
fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    for c in 0..m {
        let piv = (c..m).max_by(|&i, &j| a[i * m + c].abs().total_cmp(&a[j * m + c].abs()))?;
        if a[piv * m + c].abs() < 1e-12 {
            return None;
        }
        if piv != c {
            for j in 0..m {
                a.swap(c * m + j, piv * m + j);
            }
            b.swap(c, piv);
        }
        for r in c + 1..m {
            let f = a[r * m + c] / a[c * m + c];
            for j in c..m {
                a[r * m + j] -= f * a[c * m + j];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; m];
    for r in (0..m).rev() {
        let s: f64 = (r + 1..m).map(|j| a[r * m + j] * x[j]).sum();
        x[r] = (b[r] - s) / a[r * m + r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes separated along skewness and size: the fit must put them on either side of
    /// 0.5, and weigh skewness positively.
    #[test]
    fn separates_a_synthetic_two_class_set() {
        let mut ex = Vec::new();
        for i in 0..200 {
            let u = (i as f64 * 0.618).fract();
            let cell = i % 2 == 0;
            let f = RoiFeatures {
                skew: if cell { 1.0 + 2.0 * u } else { -0.3 + 0.6 * u },
                peak_sd: if cell { 6.0 + 4.0 * u } else { 2.0 + u },
                trough_sd: 2.0 + u,
                npix_norm: 0.7 + 0.6 * u,
                compact: 1.0 + 0.2 * u,
                aspect_ratio: if cell { 1.2 } else { 2.0 + u },
                anatomy_z: 2.0 * u,
                corr_z: 3.0 * u,
                dark_rim: -u,
                ..RoiFeatures::default()
            };
            ex.push((f, cell));
        }
        let c = fit(&ex, "test".into()).unwrap();
        let wrong = ex
            .iter()
            .filter(|(f, y)| (c.probability(f) > 0.5) != *y)
            .count();
        assert_eq!(wrong, 0);
        assert!(c.coef[0] > 0.0, "{:?}", c.coef);
        let back = RoiClassifier::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(fit(&ex[..1], String::new()).is_none());
    }
}
