//! Cross-validation over spatially blocked folds: each fold holds out every unit of one block
//! (e.g. a patch of cortex), so a decoder cannot read a held-out unit's label off its neighbours'
//! positions. Scored by balanced accuracy (mean per-class recall, chance = 1/K).

use super::{LogisticOptions, MultinomialLogit};
use crate::error::{Result, invalid};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Cross-validated predictions and their scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CvResult {
    pub balanced_accuracy: f64,
    /// `confusion[true][predicted]` counts over all held-out units.
    pub confusion: Vec<Vec<usize>>,
    pub n_folds: usize,
    /// Held-out prediction of every unit, in input order.
    pub predictions: Vec<usize>,
}

/// Leave-one-block-out cross-validation of a multinomial logit. `blocks[i]` is unit i's spatial
/// block; each distinct block is one fold.
pub fn cross_validate(
    x: &[f64],
    n_features: usize,
    labels: &[usize],
    n_classes: usize,
    blocks: &[usize],
    options: &LogisticOptions,
) -> Result<CvResult> {
    let n = labels.len();
    if blocks.len() != n {
        return Err(invalid(
            "blocks",
            format!("{} block ids for {n} units", blocks.len()),
        ));
    }
    if x.len() != n * n_features {
        return Err(invalid(
            "features",
            format!("{} values for {n} units × {n_features} features", x.len()),
        ));
    }
    let mut ids: Vec<usize> = blocks.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 2 {
        return Err(invalid(
            "blocks",
            "need at least two spatial blocks to hold one out",
        ));
    }
    let mut predictions = vec![0; n];
    for &held in &ids {
        let train: Vec<usize> = (0..n).filter(|&i| blocks[i] != held).collect();
        let tx: Vec<f64> = train
            .iter()
            .flat_map(|&i| x[i * n_features..(i + 1) * n_features].iter().copied())
            .collect();
        let ty: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        let model = MultinomialLogit::fit(&tx, n_features, &ty, n_classes, options)?;
        for i in (0..n).filter(|&i| blocks[i] == held) {
            predictions[i] = model.predict(&x[i * n_features..(i + 1) * n_features]);
        }
    }
    let mut confusion = vec![vec![0; n_classes]; n_classes];
    for (&t, &p) in labels.iter().zip(&predictions) {
        confusion[t][p] += 1;
    }
    Ok(CvResult {
        balanced_accuracy: balanced_accuracy(&confusion),
        confusion,
        n_folds: ids.len(),
        predictions,
    })
}

/// Mean recall over the classes that occur (rows of the confusion matrix with any units).
pub fn balanced_accuracy(confusion: &[Vec<usize>]) -> f64 {
    let recalls: Vec<f64> = confusion
        .iter()
        .enumerate()
        .filter_map(|(c, row)| {
            let total: usize = row.iter().sum();
            (total > 0).then(|| row[c] as f64 / total as f64)
        })
        .collect();
    recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
}

/// The decoder's balanced accuracy against the same pipeline on shuffled labels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShuffleControl {
    pub observed: f64,
    /// Balanced accuracy of each shuffle.
    pub shuffled: Vec<f64>,
    /// (1 + #shuffles ≥ observed) / (1 + #shuffles).
    pub p_value: f64,
}

/// Re-runs [`cross_validate`] `n_shuffles` times with labels permuted across units (seeded).
#[allow(clippy::too_many_arguments)]
pub fn shuffle_control(
    x: &[f64],
    n_features: usize,
    labels: &[usize],
    n_classes: usize,
    blocks: &[usize],
    options: &LogisticOptions,
    n_shuffles: usize,
    seed: u64,
) -> Result<ShuffleControl> {
    let observed =
        cross_validate(x, n_features, labels, n_classes, blocks, options)?.balanced_accuracy;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm = labels.to_vec();
    let mut shuffled = Vec::with_capacity(n_shuffles);
    for _ in 0..n_shuffles {
        perm.shuffle(&mut rng);
        shuffled.push(
            cross_validate(x, n_features, &perm, n_classes, blocks, options)?.balanced_accuracy,
        );
    }
    let at_least = shuffled.iter().filter(|s| **s >= observed).count();
    let p_value = (1 + at_least) as f64 / (1 + n_shuffles) as f64;
    Ok(ShuffleControl {
        observed,
        shuffled,
        p_value,
    })
}
