//! Decoding labels (cell type, area) from per-unit embeddings: L2-penalised multinomial logistic
//! regression, cross-validated over spatially blocked folds, scored by balanced accuracy and
//! compared with a label-shuffle control.

mod cv;
mod logistic;

pub use cv::{CvResult, ShuffleControl, balanced_accuracy, cross_validate, shuffle_control};
pub use logistic::{LogisticOptions, MultinomialLogit};
