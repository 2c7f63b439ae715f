//! Writing a whole file so that it is either absent or complete: a temporary
//! file beside it, synced, renamed into place, the directory synced. A failure
//! (a full disk, say) removes the temporary file and leaves no 0-byte or
//! half-written file that claims to be the real one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::dir::sync_dir;

/// Writes `bytes` to `path` atomically. The error names the file and what was
/// being done, since an `io::Error` alone ("No space left on device") does not.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let named = |action: &str, file: &Path, e: io::Error| {
        io::Error::new(e.kind(), format!("{action} {}: {e}", file.display()))
    };
    // A leftover temporary file from a crash mid-write is simply replaced.
    let written = File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            // Data must be durable before the rename makes it visible, or a
            // power loss could leave the real name on an empty file.
            file.sync_all()
        })
        .map_err(|e| named("writing", &tmp, e))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| named("renaming into place", path, e)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(dir).map_err(|e| named("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["summary.json"], "no temporary file left");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_leaves_nothing_and_names_the_file() {
        // No directory to write into: the temporary file cannot be created.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("latency.json");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("latency.json.tmp"), "{err}");
        assert!(!path.exists());
    }
}
