//! Prediction metrics for one neuron.
//!
//! Data layout: `trials[n][t]` is the response on repeat `n` of the same stimulus at time bin
//! (or image) `t`; `prediction[t]` is the twin's prediction (the same on every repeat).
//!
//! - [`cc_abs`]: Pearson correlation of the repeat-averaged response with the prediction.
//! - [`cc_max`]: the best correlation any model could reach given trial-to-trial noise
//!   (Schoppe et al. 2016, Front. Comput. Neurosci. 10:10): with `ybar` the repeat mean,
//!   `CC_max = sqrt((N Var(ybar) - mean_n Var(y_n)) / ((N - 1) Var(ybar)))`
//!   (population variances throughout, so noise-free repeats give exactly 1).
//! - [`cc_norm`]: `CC_abs / CC_max`.
//! - [`single_trial_correlation`]: Pearson over all (repeat, bin) pairs (Sensorium).
//! - [`feve`]: fraction of explainable variance explained (Cadena et al. 2019, Sensorium):
//!   `1 - (MSE - s2_noise) / (Var(y) - s2_noise)`, with `s2_noise` the mean over bins of the
//!   across-repeat variance and `Var(y)` over all responses, both with ddof = 1; [`fev`] gives
//!   the explainable fraction `(Var(y) - s2_noise) / Var(y)` used to select neurons (≥ 0.15).

use crate::error::{ModelError, Result};

fn err(metric: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Metric {
        metric: metric.to_string(),
        reason: reason.into(),
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Variance with `ddof` degrees of freedom removed.
fn var(x: &[f64], ddof: usize) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - ddof) as f64
}

/// Pearson correlation; errors on length mismatch or zero variance.
pub fn pearson(a: &[f64], b: &[f64]) -> Result<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return Err(err(
            "pearson",
            format!("lengths {} and {}", a.len(), b.len()),
        ));
    }
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return Err(err("pearson", "a series has zero variance"));
    }
    Ok(sab / (saa * sbb).sqrt())
}

fn check(metric: &str, trials: &[&[f64]], min_trials: usize) -> Result<usize> {
    if trials.len() < min_trials {
        return Err(err(
            metric,
            format!("needs at least {min_trials} repeats, got {}", trials.len()),
        ));
    }
    let t = trials[0].len();
    if t < 2 || trials.iter().any(|r| r.len() != t) {
        return Err(err(metric, "repeats must share a length of at least 2"));
    }
    Ok(t)
}

fn repeat_mean(trials: &[&[f64]], t: usize) -> Vec<f64> {
    (0..t)
        .map(|i| trials.iter().map(|r| r[i]).sum::<f64>() / trials.len() as f64)
        .collect()
}

/// Correlation of the repeat-averaged response with the prediction.
pub fn cc_abs(trials: &[&[f64]], prediction: &[f64]) -> Result<f64> {
    let t = check("cc_abs", trials, 1)?;
    pearson(&repeat_mean(trials, t), prediction)
}

/// Upper bound on the correlation reachable under the observed trial-to-trial noise.
pub fn cc_max(trials: &[&[f64]]) -> Result<f64> {
    let t = check("cc_max", trials, 2)?;
    let n = trials.len() as f64;
    let vbar = var(&repeat_mean(trials, t), 0);
    if vbar <= 0.0 {
        return Err(err("cc_max", "repeat-averaged response has zero variance"));
    }
    let vn = trials.iter().map(|r| var(r, 0)).sum::<f64>() / n;
    let ratio = (n * vbar - vn) / ((n - 1.0) * vbar);
    if ratio <= 0.0 {
        return Err(err("cc_max", "no signal power above the noise"));
    }
    Ok(ratio.sqrt())
}

/// `CC_abs / CC_max`.
pub fn cc_norm(trials: &[&[f64]], prediction: &[f64]) -> Result<f64> {
    Ok(cc_abs(trials, prediction)? / cc_max(trials)?)
}

/// Correlation over every (repeat, bin) pair; `predictions[n]` may differ per repeat.
pub fn single_trial_correlation(trials: &[&[f64]], predictions: &[&[f64]]) -> Result<f64> {
    let t = check("single_trial_correlation", trials, 1)?;
    if predictions.len() != trials.len() || predictions.iter().any(|p| p.len() != t) {
        return Err(err(
            "single_trial_correlation",
            "predictions must match trials in shape",
        ));
    }
    let y: Vec<f64> = trials.iter().flat_map(|r| r.iter().copied()).collect();
    let p: Vec<f64> = predictions.iter().flat_map(|r| r.iter().copied()).collect();
    pearson(&y, &p)
}

fn noise_and_total(trials: &[&[f64]], t: usize) -> (f64, f64) {
    let noise = (0..t)
        .map(|i| {
            let col: Vec<f64> = trials.iter().map(|r| r[i]).collect();
            var(&col, 1)
        })
        .sum::<f64>()
        / t as f64;
    let all: Vec<f64> = trials.iter().flat_map(|r| r.iter().copied()).collect();
    (noise, var(&all, 1))
}

/// Explainable fraction of the response variance.
pub fn fev(trials: &[&[f64]]) -> Result<f64> {
    let t = check("fev", trials, 2)?;
    let (noise, total) = noise_and_total(trials, t);
    if total <= 0.0 {
        return Err(err("fev", "responses have zero variance"));
    }
    Ok((total - noise) / total)
}

/// Fraction of explainable variance explained; `predictions[n]` may differ per repeat.
pub fn feve(trials: &[&[f64]], predictions: &[&[f64]]) -> Result<f64> {
    let t = check("feve", trials, 2)?;
    if predictions.len() != trials.len() || predictions.iter().any(|p| p.len() != t) {
        return Err(err("feve", "predictions must match trials in shape"));
    }
    let (noise, total) = noise_and_total(trials, t);
    if total - noise <= 0.0 {
        return Err(err("feve", "no explainable variance"));
    }
    let mut se = 0.0;
    for (r, p) in trials.iter().zip(predictions) {
        se += r
            .iter()
            .zip(p.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
    }
    let mse = se / (trials.len() * t) as f64;
    Ok(1.0 - (mse - noise) / (total - noise))
}

#[cfg(test)]
mod tests {
    use super::*;

    // s: signal (var 1, mean 0); f: a pattern orthogonal to s (var 1, mean 0).
    const S: [f64; 4] = [1.0, -1.0, 1.0, -1.0];
    const F: [f64; 4] = [1.0, 1.0, -1.0, -1.0];

    fn data(a: f64) -> (Vec<f64>, Vec<f64>) {
        let y1 = (0..4).map(|i| S[i] + a * F[i]).collect();
        let y2 = (0..4).map(|i| S[i] - a * F[i]).collect();
        (y1, y2)
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn cc_family_on_orthogonal_signal_and_noise() {
        // Repeats s ± a f: mean is s, Var(ybar) = 1, Var(y_n) = 1 + a^2 →
        // CC_max^2 = (2 - (1 + a^2)) / 1 = 1 - a^2. Prediction s + b f: CC_abs = 1/sqrt(1 + b^2).
        let (a, b) = (0.6, 0.75);
        let (y1, y2) = data(a);
        let trials = [y1.as_slice(), y2.as_slice()];
        let pred: Vec<f64> = (0..4).map(|i| S[i] + b * F[i]).collect();
        close(cc_max(&trials).unwrap(), (1.0f64 - a * a).sqrt());
        close(
            cc_abs(&trials, &pred).unwrap(),
            1.0 / (1.0f64 + b * b).sqrt(),
        );
        close(
            cc_norm(&trials, &pred).unwrap(),
            1.0 / (1.0f64 + b * b).sqrt() / (1.0f64 - a * a).sqrt(),
        );
        // Pooled: cov = 1, Var(y) = 1 + a^2, Var(pred) = 1 + b^2.
        let preds = [pred.as_slice(), pred.as_slice()];
        close(
            single_trial_correlation(&trials, &preds).unwrap(),
            1.0 / ((1.0 + a * a) * (1.0 + b * b)).sqrt(),
        );
    }

    #[test]
    fn noise_free_repeats_have_cc_max_one() {
        let y = [0.3, 1.2, -0.7, 2.0, 0.1];
        let trials = [&y[..], &y[..], &y[..]];
        close(cc_max(&trials).unwrap(), 1.0);
        let p = [0.1, 1.0, -0.2, 1.5, 0.0];
        close(cc_norm(&trials, &p).unwrap(), pearson(&y, &p).unwrap());
    }

    #[test]
    fn feve_on_orthogonal_signal_and_noise() {
        // Across-repeat variance (ddof 1) of s ± a f at each bin: 2 a^2 → noise = 2 a^2.
        // All 8 values: mean 0, sum of squares 8 (1 + a^2) → Var = 8 (1 + a^2) / 7.
        // Prediction s + b f on both repeats: MSE = ((a - b)^2 + (a + b)^2) / 2 = a^2 + b^2.
        let (a, b) = (0.5, 0.25);
        let (y1, y2) = data(a);
        let trials = [y1.as_slice(), y2.as_slice()];
        let pred: Vec<f64> = (0..4).map(|i| S[i] + b * F[i]).collect();
        let preds = [pred.as_slice(), pred.as_slice()];
        let noise = 2.0 * a * a;
        let total = 8.0 * (1.0 + a * a) / 7.0;
        close(fev(&trials).unwrap(), (total - noise) / total);
        close(
            feve(&trials, &preds).unwrap(),
            1.0 - (a * a + b * b - noise) / (total - noise),
        );
        // The repeat mean is the best single prediction: FEVE = 1 - (a^2 - noise) / (total - noise).
        let sp = S.to_vec();
        let best = [sp.as_slice(), sp.as_slice()];
        close(
            feve(&trials, &best).unwrap(),
            1.0 - (a * a - noise) / (total - noise),
        );
    }

    #[test]
    fn errors_name_the_metric() {
        let y = [1.0, 1.0, 1.0];
        let e = cc_max(&[&y[..], &y[..]]).unwrap_err().to_string();
        assert!(e.contains("cc_max"), "{e}");
        let e = cc_abs(&[&y[..]], &[1.0, 2.0]).unwrap_err().to_string();
        assert!(e.contains("pearson"), "{e}");
    }
}
