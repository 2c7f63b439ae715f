//! The crate's one error type: every variant names what was wrong and, where it can, the fix.

use std::path::PathBuf;

/// What can go wrong in an analysis, from a malformed table to a fit that cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument the caller passed is out of range or inconsistent (`field` names it).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A matrix that had to be positive definite was not (collinear design, empty class...).
    #[error("{what}: matrix is singular or not positive definite ({hint})")]
    Singular { what: String, hint: String },
    /// An iterative fit did not reach its tolerance.
    #[error("{what} did not converge in {iterations} iterations ({detail})")]
    NotConverged {
        what: String,
        iterations: usize,
        detail: String,
    },
    /// A CSV table is malformed: the file, the 1-based line and the column are named.
    #[error("{}: line {line}, column `{column}`: {reason}", file.display())]
    Table {
        file: PathBuf,
        line: usize,
        column: String,
        reason: String,
    },
    /// A table lacks a required column.
    #[error("{}: missing column `{column}` (header has: {header}); see analysis/SCHEMA.md", file.display())]
    MissingColumn {
        file: PathBuf,
        column: String,
        header: String,
    },
    /// Embeddings from two different cores cannot be compared (feature similarity is only
    /// meaningful within one core's feature space).
    #[error("{}: embeddings come from two different cores, `{first}` and `{second}` (line {line}); \
             export all units from one core", file.display())]
    MixedCores {
        file: PathBuf,
        first: String,
        second: String,
        line: usize,
    },
    /// A pairs row names a cell that is not in the embeddings table.
    #[error("{}: line {line}: {role} cell id {cell} is not in the embeddings table", file.display())]
    UnknownCell {
        file: PathBuf,
        line: usize,
        role: &'static str,
        cell: u64,
    },
    /// Reading a file failed.
    #[error("reading {}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}
