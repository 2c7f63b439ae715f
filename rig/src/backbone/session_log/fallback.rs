//! A session read from its log when files beside it are lost: the manifest's
//! copy in the log's first record, and the record count `summary.json` promises
//! for a log that was cut short.

use serde_json::Value;

use super::dir::SessionDir;
use super::error::{LogError, SessionError};
use super::manifest::Manifest;
use super::writer::LogWriter;
use crate::vocab::records::RecordKind;

/// How many records into the log the manifest record is looked for. It is the
/// first record a session writes; the margin covers a damaged first record
/// read past by resynchronisation.
const MANIFEST_SEARCH_RECORDS: usize = 16;

impl SessionDir {
    /// Creates `records.log` and writes `manifest` as its first record, so the
    /// log alone describes the session.
    pub fn create_log_with_manifest(&self, manifest: &Manifest) -> Result<LogWriter, LogError> {
        let mut writer = self.create_log()?;
        let json = serde_json::to_vec(manifest).map_err(|e| LogError::Encode {
            path: writer.path().to_path_buf(),
            what: "manifest record",
            message: e.to_string(),
        })?;
        writer.append(RecordKind::Manifest as u16, &json)?;
        // On disk now: a session killed before its first flush still has it.
        writer.flush()?;
        Ok(writer)
    }

    /// Reads `manifest.json`; when it is missing, empty or not a valid
    /// manifest, falls back on the manifest record at the start of the log,
    /// with a warning. A manifest from a newer twinloop is an error, not a
    /// reason to fall back.
    pub fn read_manifest(&self) -> Result<Manifest, SessionError> {
        let file_err = match self.read_manifest_file() {
            Ok(manifest) => return Ok(manifest),
            Err(err @ (SessionError::NewerManifest { .. } | SessionError::DirMissing { .. })) => {
                return Err(err);
            }
            Err(err) => err,
        };
        match self.manifest_from_log() {
            Ok(manifest) => {
                tracing::warn!(
                    dir = %self.path().display(),
                    problem = %file_err,
                    "manifest.json unusable; using the manifest recorded in records.log"
                );
                Ok(manifest)
            }
            Err(log) => Err(SessionError::NoManifest {
                dir: self.path().to_path_buf(),
                file: file_err.to_string(),
                log,
            }),
        }
    }

    /// The manifest record of the log (format version 2 logs only), or why there is none.
    pub fn manifest_from_log(&self) -> Result<Manifest, String> {
        let mut reader = self.open_log().map_err(|e| e.to_string())?;
        let mut payload = Vec::new();
        for _ in 0..MANIFEST_SEARCH_RECORDS {
            let Some(info) = reader.next_into(&mut payload).map_err(|e| e.to_string())? else {
                break;
            };
            if info.kind == RecordKind::Manifest as u16 {
                let place = self
                    .records_log_path()
                    .join(format!("record {}", info.index));
                return Manifest::from_json(&payload, place).map_err(|e| e.to_string());
            }
        }
        Err(format!(
            "no manifest record among the first {MANIFEST_SEARCH_RECORDS} records of {} \
             (logs of format version 1 have none)",
            self.records_log_path().display()
        ))
    }

    /// The number of records `summary.json` says the log holds, when the
    /// summary is there and readable: what a log that was cut short is missing.
    pub fn expected_records(&self) -> Option<u64> {
        let text = std::fs::read(self.summary_path()).ok()?;
        let summary: Value = serde_json::from_slice(&text).ok()?;
        summary.get("log_records").and_then(Value::as_u64)
    }
}
