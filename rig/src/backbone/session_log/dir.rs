//! [`SessionDir`]: one directory per daemon run, and the names of the files in it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{LogError, SessionError};
use super::manifest::{MANIFEST_FILE, Manifest};
use super::reader::LogReader;
use super::time::{dir_stamp_utc, unix_ms};
use super::writer::LogWriter;

/// The record log.
pub const RECORDS_LOG_FILE: &str = "records.log";
/// Latency histograms, written by the daemon at the end of a session.
pub const LATENCY_FILE: &str = "latency.json";
/// Session summary, written by the daemon at the end of a session.
pub const SUMMARY_FILE: &str = "summary.json";
/// Ground truth of simulated sessions.
pub const TRUTH_DIR: &str = "truth";

/// Labels are part of a directory name, so they stay short and portable.
const MAX_LABEL_LEN: usize = 64;
/// Sessions started within the same second get suffixes `-2`, `-3`, ...; this
/// many in one second means something is looping, not an experimenter.
const MAX_SAME_SECOND: u32 = 1000;

/// A session directory: `<root>/<UTC start>[-<label>][-<n>]`, e.g.
/// `sessions/2026-11-28T21-40-03-sim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDir {
    path: PathBuf,
}

impl SessionDir {
    /// Creates a new, empty session directory under `root` (created if
    /// needed), named after `created` in UTC and `label` (may be empty).
    /// Never reuses an existing directory: a counter suffix is added instead.
    ///
    /// Write the manifest next, before the log: until it exists the directory
    /// is not recognised as a session by [`SessionDir::open`].
    pub fn create(
        root: &Path,
        label: &str,
        created: SystemTime,
    ) -> Result<SessionDir, SessionError> {
        let label_ok = label.len() <= MAX_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !label_ok {
            return Err(SessionError::InvalidLabel {
                label: label.to_string(),
            });
        }
        fs::create_dir_all(root).map_err(|source| SessionError::Io {
            path: root.to_path_buf(),
            action: "creating",
            source,
        })?;
        let mut base = dir_stamp_utc(unix_ms(created));
        if !label.is_empty() {
            base.push('-');
            base.push_str(label);
        }
        for n in 1..=MAX_SAME_SECOND {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let path = root.join(name);
            // `create_dir` fails if the name is taken, so two daemons starting
            // together cannot end up sharing a directory.
            match fs::create_dir(&path) {
                Ok(()) => {
                    sync_dir(root).map_err(|source| SessionError::Io {
                        path: root.to_path_buf(),
                        action: "syncing directory",
                        source,
                    })?;
                    return Ok(SessionDir { path });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(SessionError::Io {
                        path,
                        action: "creating",
                        source,
                    });
                }
            }
        }
        Err(SessionError::Io {
            path: root.join(base),
            action: "creating",
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{MAX_SAME_SECOND} sessions with this name and second already exist"),
            ),
        })
    }

    /// Opens an existing session directory, e.g. for replay. Checks that it
    /// has a manifest or a log (the log holds a copy of the manifest); reads
    /// neither (see [`SessionDir::read_manifest`]).
    pub fn open(path: impl AsRef<Path>) -> Result<SessionDir, SessionError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(SessionError::DirMissing { dir: path });
        }
        if !path.join(MANIFEST_FILE).is_file() && !path.join(RECORDS_LOG_FILE).is_file() {
            return Err(SessionError::NotASession { dir: path });
        }
        Ok(SessionDir { path })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.path.join(MANIFEST_FILE)
    }

    /// `records.log`.
    pub fn records_log_path(&self) -> PathBuf {
        self.path.join(RECORDS_LOG_FILE)
    }

    /// `latency.json`.
    pub fn latency_path(&self) -> PathBuf {
        self.path.join(LATENCY_FILE)
    }

    /// `summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.path.join(SUMMARY_FILE)
    }

    /// `truth/`: not created here; only simulated sessions have ground truth,
    /// and whoever writes it creates it.
    pub fn truth_dir(&self) -> PathBuf {
        self.path.join(TRUTH_DIR)
    }

    /// Writes `manifest.json` atomically.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), SessionError> {
        manifest.write_to_dir(&self.path)
    }

    /// Reads `manifest.json` only, with no fallback on the log.
    pub fn read_manifest_file(&self) -> Result<Manifest, SessionError> {
        Manifest::read_from_dir(&self.path)
    }

    /// Creates `records.log`; fails if it exists.
    pub fn create_log(&self) -> Result<LogWriter, LogError> {
        LogWriter::create(self.records_log_path())
    }

    /// Opens `records.log` for reading.
    pub fn open_log(&self) -> Result<LogReader, LogError> {
        LogReader::open(self.records_log_path())
    }
}

/// Makes a directory's entries (a created file or subdirectory, a rename)
/// durable. Linux needs this on top of syncing the file itself.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        // Other systems cannot open a directory as a file; their rename is
        // as durable as they make it.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_902_003_123)
    }

    #[test]
    fn names_are_unique_and_sortable() {
        let root = tempfile::tempdir().unwrap();
        let sessions = root.path().join("sessions");
        let first = SessionDir::create(&sessions, "sim", at()).unwrap();
        let second = SessionDir::create(&sessions, "sim", at()).unwrap();
        let third = SessionDir::create(&sessions, "sim", at()).unwrap();
        let unlabelled = SessionDir::create(&sessions, "", at()).unwrap();
        assert_eq!(first.path(), sessions.join("2026-11-28T21-40-03-sim"));
        assert_eq!(second.path(), sessions.join("2026-11-28T21-40-03-sim-2"));
        assert_eq!(third.path(), sessions.join("2026-11-28T21-40-03-sim-3"));
        assert_eq!(unlabelled.path(), sessions.join("2026-11-28T21-40-03"));
        assert!(first.path().is_dir() && second.path().is_dir());
    }

    #[test]
    fn labels_that_do_not_fit_a_file_name_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for label in ["../escape", "a/b", "with space", "é", &"x".repeat(65)] {
            let err = SessionDir::create(root.path(), label, at()).unwrap_err();
            assert!(
                matches!(err, SessionError::InvalidLabel { .. }),
                "{label}: {err}"
            );
        }
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn paths_of_the_layout() {
        let root = tempfile::tempdir().unwrap();
        let session = SessionDir::create(root.path(), "x", at()).unwrap();
        let p = session.path();
        assert_eq!(session.manifest_path(), p.join("manifest.json"));
        assert_eq!(session.records_log_path(), p.join("records.log"));
        assert_eq!(session.latency_path(), p.join("latency.json"));
        assert_eq!(session.summary_path(), p.join("summary.json"));
        assert_eq!(session.truth_dir(), p.join("truth"));
    }

    #[test]
    fn open_needs_a_manifest_or_a_log() {
        let root = tempfile::tempdir().unwrap();
        let session = SessionDir::create(root.path(), "sim", at()).unwrap();
        let err = SessionDir::open(session.path()).unwrap_err();
        assert!(matches!(err, SessionError::NotASession { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with("it has neither manifest.json nor records.log"),
            "{err}"
        );
        // A log alone is enough: it holds a copy of the manifest.
        session.create_log().unwrap().finish().unwrap();
        SessionDir::open(session.path()).unwrap();
        std::fs::remove_file(session.records_log_path()).unwrap();

        let manifest = Manifest::new(at(), vec!["twinloop".into()], serde_json::json!({}));
        session.write_manifest(&manifest).unwrap();
        let reopened = SessionDir::open(session.path()).unwrap();
        assert_eq!(reopened, session);
        assert_eq!(reopened.read_manifest().unwrap(), manifest);

        let err = SessionDir::open(root.path().join("missing")).unwrap_err();
        assert!(matches!(err, SessionError::DirMissing { .. }), "{err}");
    }
}
