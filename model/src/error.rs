//! Errors of the twin, each naming the tensor, field or file at fault.

use std::path::PathBuf;

/// Everything that can go wrong building or running the twin.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor op failed inside candle.
    #[error("tensor op failed in {context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    /// A weight named by the config is absent from the weight file.
    #[error("weight tensor `{name}` is missing")]
    MissingTensor { name: String },
    /// A weight has a shape other than the config implies.
    #[error("weight tensor `{name}` has shape {found:?}, the config expects {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The weight file holds tensors the config does not use.
    #[error("weight file holds {count} tensor(s) the config does not use, e.g. `{first}`")]
    UnusedTensors { count: usize, first: String },
    /// A weight is stored in a dtype we cannot read.
    #[error("weight tensor `{name}` has dtype {dtype}, expected F32")]
    BadDtype { name: String, dtype: String },
    /// A configuration field is inconsistent.
    #[error("invalid config field `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// An input to the twin has the wrong shape or values.
    #[error("invalid input `{input}`: {reason}")]
    Input { input: String, reason: String },
    /// A file could not be read or written.
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A weight holds NaN or an infinity: every prediction through it would be NaN.
    #[error(
        "weight file {path}: tensor `{name}` holds {value} at flat index {index}; weights must \
         be finite (re-export the weights, or check the training run that wrote them)"
    )]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    /// A safetensors file could not be parsed.
    #[error("safetensors file {path}: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    /// A metric was asked of data that cannot give it.
    #[error("metric `{metric}`: {reason}")]
    Metric { metric: String, reason: String },
}

/// Result alias for the twin.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Attaches a context string to candle errors.
pub(crate) trait CandleContext<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> CandleContext<T> for std::result::Result<T, candle_core::Error> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|source| ModelError::Candle {
            context: context.to_string(),
            source,
        })
    }
}

pub(crate) fn config_err(field: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Config {
        field: field.to_string(),
        reason: reason.into(),
    }
}
