//! Decoding cell type and area from per-unit embeddings (issue #21, `analyze celltypes`):
//! three inputs (readout feature weights, readout position, both), each cross-validated over
//! spatial blocks and compared with chance and with the same pipeline on shuffled labels.

use crate::decode::{LogisticOptions, ShuffleControl, cross_validate, shuffle_control};
use crate::error::{Result, invalid};
use crate::wiring::Embedding;

/// What the decoder sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Input {
    Features,
    Position,
    Both,
}

/// What is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Target {
    CellType,
    Area,
}

/// Settings of the decoding analysis.
#[derive(Debug, Clone, Copy)]
pub struct CellTypeOptions {
    pub logistic: LogisticOptions,
    /// Label shuffles for the control (0 skips it).
    pub n_shuffles: usize,
    pub seed: u64,
}

impl Default for CellTypeOptions {
    fn default() -> Self {
        Self {
            logistic: LogisticOptions::default(),
            n_shuffles: 20,
            seed: 0,
        }
    }
}

/// One (target, input) decoding result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecodeScore {
    pub target: Target,
    pub input: Input,
    /// Class names, indexing `confusion`'s rows (true) and columns (predicted).
    pub classes: Vec<String>,
    pub balanced_accuracy: f64,
    /// 1 / number of classes.
    pub chance: f64,
    pub confusion: Vec<Vec<usize>>,
    /// Shuffled-label balanced accuracies and the permutation p (None without shuffles).
    pub shuffle: Option<ShuffleControl>,
}

/// Decodes type and area from each input. `blocks[i]` is the spatial block (e.g. a 200 µm
/// cortical tile) of `embeddings[i]`; every block is held out once.
pub fn decode_cell_types(
    embeddings: &[Embedding],
    blocks: &[usize],
    options: &CellTypeOptions,
) -> Result<Vec<DecodeScore>> {
    if blocks.len() != embeddings.len() {
        return Err(invalid(
            "blocks",
            format!(
                "{} block ids for {} embeddings",
                blocks.len(),
                embeddings.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for target in [Target::CellType, Target::Area] {
        let names: Vec<&str> = embeddings
            .iter()
            .map(|e| match target {
                Target::CellType => e.cell_type.as_str(),
                Target::Area => e.area.as_str(),
            })
            .collect();
        let mut classes: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(invalid(
                "embeddings",
                format!("{target:?}: only one class ({classes:?}); nothing to decode"),
            ));
        }
        let labels: Vec<usize> = names
            .iter()
            .map(|n| classes.iter().position(|c| c == n).expect("listed"))
            .collect();
        for input in [Input::Features, Input::Position, Input::Both] {
            let (x, d) = inputs(embeddings, input);
            let cv = cross_validate(&x, d, &labels, classes.len(), blocks, &options.logistic)?;
            let shuffle = (options.n_shuffles > 0)
                .then(|| {
                    shuffle_control(
                        &x,
                        d,
                        &labels,
                        classes.len(),
                        blocks,
                        &options.logistic,
                        options.n_shuffles,
                        options.seed,
                    )
                })
                .transpose()?;
            out.push(DecodeScore {
                target,
                input,
                chance: 1.0 / classes.len() as f64,
                classes: classes.clone(),
                balanced_accuracy: cv.balanced_accuracy,
                confusion: cv.confusion,
                shuffle,
            });
        }
    }
    Ok(out)
}

fn inputs(embeddings: &[Embedding], input: Input) -> (Vec<f64>, usize) {
    let d = match input {
        Input::Features => embeddings[0].features.len(),
        Input::Position => 2,
        Input::Both => embeddings[0].features.len() + 2,
    };
    let x = embeddings
        .iter()
        .flat_map(|e| {
            let pos = [e.azimuth_deg, e.elevation_deg];
            let mut row = Vec::with_capacity(d);
            if input != Input::Position {
                row.extend_from_slice(&e.features);
            }
            if input != Input::Features {
                row.extend_from_slice(&pos);
            }
            row
        })
        .collect();
    (x, d)
}
