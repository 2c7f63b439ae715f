//! [`Manifest`]: what a session was run with, as `manifest.json`.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory),
//! so a reader sees either no manifest or a complete one, never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::atomic::write_atomic;
use super::error::SessionError;
use super::time::{rfc3339_utc, unix_ms};

/// File name of the manifest inside a session directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the session directory format this code writes: the manifest's
/// fields and the file names beside it. The record log carries its own
/// version in its file header.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The description of one session, enough to replay it.
///
/// Unknown fields are accepted, not denied: manifests are written by programs,
/// and a field added within one format version must not make older replay
/// tools refuse a session. Incompatible changes bump `format_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// twinloop version that recorded the session.
    pub twinloop_version: String,
    /// Session start, milliseconds since the unix epoch (UTC).
    pub created_unix_ms: u64,
    /// The same instant as RFC 3339 text in UTC, for people reading the file.
    pub created_utc: String,
    /// Command line of the daemon, program name first.
    pub command_line: Vec<String>,
    /// The full configuration in effect, defaults filled in.
    pub config: Value,
    /// Every random seed used, by name. JSON numbers: exact in Rust and
    /// Python; JavaScript readers lose precision above 2^53.
    #[serde(default)]
    pub seeds: BTreeMap<String, u64>,
    /// Calibration in effect, if any.
    #[serde(default)]
    pub calibration: Option<Value>,
    /// Free text from the experimenter.
    #[serde(default)]
    pub notes: String,
    /// The fitted twin that stood in for the mouse (`source.kind = "twin"`): its weights and
    /// config paths, the weights' SHA-256 and its unit count (`sim::TwinIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin: Option<Value>,
}

impl Manifest {
    /// A manifest for a session started at `created`, with no seeds,
    /// calibration or notes yet (set those fields directly).
    pub fn new(created: SystemTime, command_line: Vec<String>, config: Value) -> Manifest {
        let created_unix_ms = unix_ms(created);
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            twinloop_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix_ms,
            created_utc: rfc3339_utc(created_unix_ms),
            command_line,
            config,
            seeds: BTreeMap::new(),
            calibration: None,
            notes: String::new(),
            twin: None,
        }
    }

    /// This process's command line, non-UTF-8 arguments converted lossily
    /// (the manifest is JSON text).
    pub fn this_command_line() -> Vec<String> {
        std::env::args_os()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    /// Writes `dir/manifest.json` atomically, replacing any earlier one.
    pub fn write_to_dir(&self, dir: &Path) -> Result<(), SessionError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|source| SessionError::InvalidManifest {
                path: path.clone(),
                source,
            })?;
        text.push(b'\n');
        write_atomic(&path, &text)
    }

    /// Reads `dir/manifest.json`.
    ///
    /// The format version is checked before the fields, so a manifest from a
    /// newer twinloop is reported as such rather than as a confusing missing
    /// or mistyped field.
    pub fn read_from_dir(dir: &Path) -> Result<Manifest, SessionError> {
        if !dir.is_dir() {
            return Err(SessionError::DirMissing {
                dir: dir.to_path_buf(),
            });
        }
        let path = dir.join(MANIFEST_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(SessionError::ManifestMissing { path });
            }
            Err(source) => {
                return Err(SessionError::Io {
                    path,
                    action: "reading",
                    source,
                });
            }
        };
        Manifest::from_json(&text, path)
    }

    /// Parses a manifest's JSON; `path` names where it came from in errors.
    pub fn from_json(text: &[u8], path: PathBuf) -> Result<Manifest, SessionError> {
        let value: Value =
            serde_json::from_slice(text).map_err(|source| SessionError::InvalidManifest {
                path: path.clone(),
                source,
            })?;
        if let Some(found) = value.get("format_version").and_then(Value::as_u64)
            && found > u64::from(MANIFEST_FORMAT_VERSION)
        {
            return Err(SessionError::NewerManifest {
                path,
                found,
                supported: MANIFEST_FORMAT_VERSION,
            });
        }
        serde_json::from_value(value)
            .map_err(|source| SessionError::InvalidManifest { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Manifest {
        let created = UNIX_EPOCH + Duration::from_millis(1_795_902_003_123);
        let config = serde_json::json!({"source": "sim", "rate_hz": 30.0, "stages": ["register"]});
        let mut manifest = Manifest::new(created, vec!["twinloop".into(), "run".into()], config);
        manifest.seeds.insert("sim".into(), u64::MAX);
        manifest.seeds.insert("noise".into(), 7);
        manifest.calibration = Some(serde_json::json!({"um_per_px": 1.25}));
        manifest.notes = "mouse 12, V1, \"quoted\" notes".into();
        manifest
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = sample();
        assert_eq!(manifest.created_utc, "2026-11-28T21:40:03.123Z");
        assert_eq!(manifest.twinloop_version, env!("CARGO_PKG_VERSION"));
        manifest.write_to_dir(dir.path()).unwrap();
        assert_eq!(Manifest::read_from_dir(dir.path()).unwrap(), manifest);
        // Only the manifest remains: the temporary file was renamed away.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [MANIFEST_FILE]);
    }

    #[test]
    fn rewriting_replaces_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample();
        manifest.write_to_dir(dir.path()).unwrap();
        manifest.notes = "ended early".into();
        manifest.write_to_dir(dir.path()).unwrap();
        assert_eq!(
            Manifest::read_from_dir(dir.path()).unwrap().notes,
            "ended early"
        );
    }

    #[test]
    fn a_directory_without_manifest_has_none_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = Manifest::read_from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, SessionError::ManifestMissing { .. }), "{err}");
        let expected = format!(
            "manifest {} is missing",
            dir.path().join(MANIFEST_FILE).display()
        );
        assert_eq!(err.to_string(), expected);
        let gone = dir.path().join("nope");
        let err = Manifest::read_from_dir(&gone).unwrap_err();
        assert!(matches!(err, SessionError::DirMissing { .. }), "{err}");
    }

    #[test]
    fn a_newer_manifest_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        // A future version may have renamed every field; the version must win.
        fs::write(
            dir.path().join(MANIFEST_FILE),
            br#"{"format_version": 9, "whole": "new"}"#,
        )
        .unwrap();
        let err = Manifest::read_from_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                SessionError::NewerManifest {
                    found: 9,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }

    #[test]
    fn garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST_FILE), b"{ not json").unwrap();
        let err = Manifest::read_from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, SessionError::InvalidManifest { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }
}
