//! Errors of the session log, each naming the file (and, for the record log,
//! the byte offset) it is about.
//!
//! A damaged range or tail is not an error: the reader reports it as a
//! [`Damage`](super::Damage) or [`TailState`](super::TailState) and returns
//! every record it could read. Errors here mean the caller cannot go on.

use std::io;
use std::path::PathBuf;

/// Errors writing or reading `records.log`.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("session log {path} does not exist")]
    Missing { path: PathBuf },

    #[error("session log {path} already exists; refusing to overwrite a recorded session")]
    AlreadyExists { path: PathBuf },

    #[error("I/O error {action} session log {path} at byte {offset}: {source}")]
    Io {
        path: PathBuf,
        /// What was being done, phrased to follow "error": "creating", "reading", ...
        action: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error("{path} is not a twinloop session log: {reason}")]
    NotALog { path: PathBuf, reason: String },

    #[error(
        "session log {path} has format version {found}, this twinloop reads up to version {supported}; \
         read it with a newer twinloop"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("record of {len} bytes for session log {path} exceeds the maximum of {max} bytes")]
    RecordTooLarge { path: PathBuf, len: u64, max: u32 },

    #[error("cannot encode the {what} for session log {path}: {message}")]
    Encode {
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    /// An earlier write failed; the writer refuses to append after a record
    /// that may be half written, since the reader would stop at that record
    /// and silently never see the later ones.
    #[error(
        "session log {path} stopped accepting records after an I/O error at byte {offset} \
         ({kind:?}: {message}); the log is readable up to its last complete record"
    )]
    Poisoned {
        path: PathBuf,
        offset: u64,
        kind: io::ErrorKind,
        message: String,
    },
}

/// Errors creating, opening or describing a session directory.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "{dir} is not a twinloop session directory: it has neither manifest.json nor records.log"
    )]
    NotASession { dir: PathBuf },

    #[error("manifest {path} is missing")]
    ManifestMissing { path: PathBuf },

    #[error("session directory {dir} does not exist")]
    DirMissing { dir: PathBuf },

    #[error("I/O error {action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("manifest {path} is not valid: {source}")]
    InvalidManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "manifest {path} has format version {found}, this twinloop reads up to version {supported}; \
         read it with a newer twinloop"
    )]
    NewerManifest {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    #[error(
        "session label {label:?} may only contain ASCII letters, digits, '-', '_' and '.', \
         and at most 64 of them"
    )]
    InvalidLabel { label: String },

    /// `manifest.json` could not be used and the log holds no manifest record either.
    #[error("no usable manifest in {dir}: {file}; and the log has none to fall back on: {log}")]
    NoManifest {
        dir: PathBuf,
        file: String,
        log: String,
    },
}
