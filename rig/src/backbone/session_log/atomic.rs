//! A file that appears whole or not at all: written beside its place, synced, then renamed
//! into it. A full disk leaves no 0-byte file claiming to be complete.

use super::error::SessionError;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically; on failure nothing is left at `path` (an older version
/// stays) and the temporary file is removed. The error names the file and what failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SessionError> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_os_string());
    let mut tmp_name = name;
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let io_err = |p: &Path, action: &'static str| {
        let path = p.to_path_buf();
        move |source| SessionError::Io {
            path,
            action,
            source,
        }
    };
    let written = (|| {
        // A leftover temporary file from a crash mid-write is simply replaced.
        let mut file = File::create(&tmp).map_err(io_err(&tmp, "creating"))?;
        file.write_all(bytes).map_err(io_err(&tmp, "writing"))?;
        // Data must be durable before the rename makes it visible, or a power loss could
        // leave an empty file under the final name.
        file.sync_all().map_err(io_err(&tmp, "syncing"))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err(path, "renaming into place"))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        super::dir::sync_dir(dir).map_err(io_err(dir, "syncing directory"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("summary.json");
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert!(!tmp.path().join("summary.json.tmp").exists());
        // A directory that does not exist: the error names the file, nothing is left.
        let gone = tmp.path().join("no/such/summary.json");
        let e = write_atomic(&gone, b"{}").unwrap_err().to_string();
        assert!(e.contains("summary.json"), "{e}");
        assert!(!gone.exists());
    }
}
