//! [`LogWriter`]: appends records to a new `records.log`.
//!
//! The append path is built for the daemon's recorder thread: a record header
//! on the stack, the payload parts borrowed, both copied into a `BufWriter`
//! whose capacity is fixed at creation, and the CRC computed incrementally.
//! Nothing is allocated per record. Payloads larger than the buffer bypass it
//! (that is `BufWriter`'s behaviour), still without allocating.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::format::{
    FILE_HEADER_LEN, MAX_PAYLOAD_BYTES, RECORD_HEADER_LEN, encode_file_header, encode_record_header,
};

/// What a finished writer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Records appended.
    pub records: u64,
    /// Bytes in the file, file header included.
    pub bytes: u64,
}

/// Appends checksummed records to a session log it created.
///
/// Dropping the writer flushes what is buffered but cannot report an error
/// and does not sync; call [`LogWriter::finish`] at the end of a session.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    records: u64,
    /// Bytes handed to `out` (file header included), i.e. the file length once flushed.
    bytes: u64,
    /// Set by the first failed write, flush or sync; every later call returns it.
    poisoned: Option<Poison>,
}

/// The remembered failure. `io::Error` is not `Clone`, so its kind and text are kept.
#[derive(Debug, Clone)]
struct Poison {
    offset: u64,
    kind: io::ErrorKind,
    message: String,
}

impl LogWriter {
    /// Buffer size used by [`LogWriter::create`]: 1 MiB, a few ms of a busy rig's records.
    pub const DEFAULT_BUFFER_BYTES: usize = 1 << 20;

    /// Creates `path` and writes the file header. Fails if the file exists:
    /// a recorded session is never overwritten.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::create_with_buffer(path, Self::DEFAULT_BUFFER_BYTES)
    }

    /// As [`LogWriter::create`], with the in-memory buffer sized `buffer_bytes`
    /// (at least one record header; smaller values are raised to that).
    pub fn create_with_buffer(
        path: impl AsRef<Path>,
        buffer_bytes: usize,
    ) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        // `create_new` makes "does it exist?" and "create it" one atomic step.
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LogError::AlreadyExists { path });
            }
            Err(source) => {
                return Err(LogError::Io {
                    path,
                    action: "creating",
                    offset: 0,
                    source,
                });
            }
        };
        let mut writer = LogWriter {
            path,
            out: BufWriter::with_capacity(buffer_bytes.max(RECORD_HEADER_LEN), file),
            records: 0,
            bytes: 0,
            poisoned: None,
        };
        writer.write_bytes(&encode_file_header())?;
        // The header goes to the file now, so that a log which exists on disk
        // is recognisable as one even if the daemon dies before its first flush.
        writer.flush()?;
        debug_assert_eq!(writer.bytes, FILE_HEADER_LEN as u64);
        Ok(writer)
    }

    /// Appends one record; returns its byte offset in the file.
    pub fn append(&mut self, kind: u16, payload: &[u8]) -> Result<u64, LogError> {
        self.append_parts(kind, &[payload])
    }

    /// Appends one record whose payload is the concatenation of `parts`,
    /// without concatenating them in memory; returns its byte offset.
    ///
    /// A record that is too large is refused before anything is written, and
    /// the writer stays usable.
    pub fn append_parts(&mut self, kind: u16, parts: &[&[u8]]) -> Result<u64, LogError> {
        self.check_poison()?;
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let len = match u32::try_from(len) {
            Ok(len) if len <= MAX_PAYLOAD_BYTES => len,
            _ => {
                return Err(LogError::RecordTooLarge {
                    path: self.path.clone(),
                    len: len as u64,
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        };
        let offset = self.bytes;
        // Flags are reserved by the container and always 0. The index is stored
        // modulo 2^32: enough for the reader to count records lost in a damaged
        // range, whatever the session's length.
        let header = encode_record_header(len, kind, 0, self.records as u32, parts);
        self.write_bytes(&header)?;
        for part in parts {
            self.write_bytes(part)?;
        }
        self.records += 1;
        Ok(offset)
    }

    /// Hands buffered records to the operating system. After it returns they
    /// survive the daemon being killed (not a power loss; see [`LogWriter::sync`]).
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_poison()?;
        let result = self.out.flush();
        self.note("flushing", result)
    }

    /// Flushes, then waits until the records are on the storage device
    /// (`fdatasync`), so they survive a power loss. Costs milliseconds: call
    /// it at checkpoints, not per record.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        let result = self.out.get_ref().sync_data();
        self.note("syncing", result)
    }

    /// Flushes and syncs, then closes the log; returns what was written.
    pub fn finish(mut self) -> Result<LogStats, LogError> {
        self.sync()?;
        Ok(self.stats())
    }

    /// Records appended so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Bytes appended so far, file header included (the file's length once flushed).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Both counters at once.
    pub fn stats(&self) -> LogStats {
        LogStats {
            records: self.records,
            bytes: self.bytes,
        }
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Capacity of the in-memory buffer; fixed for the writer's life.
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity()
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let result = self.out.write_all(bytes);
        self.note("writing", result)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Converts an I/O result, poisoning the writer on failure.
    fn note(&mut self, action: &'static str, result: io::Result<()>) -> Result<(), LogError> {
        result.map_err(|source| {
            self.poisoned = Some(Poison {
                offset: self.bytes,
                kind: source.kind(),
                message: source.to_string(),
            });
            LogError::Io {
                path: self.path.clone(),
                action,
                offset: self.bytes,
                source,
            }
        })
    }

    fn check_poison(&self) -> Result<(), LogError> {
        match &self.poisoned {
            None => Ok(()),
            Some(poison) => Err(LogError::Poisoned {
                path: self.path.clone(),
                offset: poison.offset,
                kind: poison.kind,
                message: poison.message.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_an_existing_file_and_leaves_it_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.log");
        std::fs::write(&path, b"precious").unwrap();
        let err = LogWriter::create(&path).unwrap_err();
        assert!(matches!(err, LogError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("records.log"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn header_is_on_disk_right_after_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.log");
        let writer = LogWriter::create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            FILE_HEADER_LEN as u64
        );
        assert_eq!(writer.bytes_written(), FILE_HEADER_LEN as u64);
        assert_eq!(writer.records_written(), 0);
    }

    #[test]
    fn counters_and_offsets_follow_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.log");
        let mut writer = LogWriter::create(&path).unwrap();
        assert_eq!(writer.append(1, b"abc").unwrap(), 16);
        assert_eq!(
            writer.append_parts(2, &[b"de", b"", b"f"]).unwrap(),
            16 + 20 + 3
        );
        let stats = writer.finish().unwrap();
        assert_eq!(stats.records, 2);
        assert_eq!(stats.bytes, 16 + 2 * (20 + 3));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), stats.bytes);
    }

    #[test]
    fn append_reuses_its_buffer() {
        // BufWriter never grows its buffer; this pins that the writer keeps
        // one buffer for its life, including across payloads larger than it.
        // The allocation count itself is checked by an integration test with
        // a counting global allocator.
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::create_with_buffer(dir.path().join("r.log"), 4096).unwrap();
        let capacity = writer.buffer_capacity();
        assert_eq!(capacity, 4096);
        let big = vec![7u8; 10_000];
        for i in 0..1000u16 {
            writer.append(i, &big[..usize::from(i) * 10]).unwrap();
            assert_eq!(writer.buffer_capacity(), capacity);
        }
    }

    #[test]
    fn too_large_a_record_is_refused_and_the_writer_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LogWriter::create(dir.path().join("r.log")).unwrap();
        // Parts that only add up to too much: nothing this big is allocated.
        let chunk = vec![0u8; 64 << 20];
        let parts = [&chunk[..], &chunk[..], &chunk[..], &chunk[..], b"x"];
        let err = writer.append_parts(1, &parts).unwrap_err();
        assert!(matches!(err, LogError::RecordTooLarge { .. }), "{err}");
        assert_eq!(writer.records_written(), 0);
        writer.append(1, b"fine").unwrap();
        assert_eq!(writer.records_written(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_io_error_poisons_the_writer() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let file = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut writer = LogWriter {
            path: PathBuf::from("/dev/full"),
            out: BufWriter::with_capacity(64, file),
            records: 0,
            bytes: 0,
            poisoned: None,
        };
        // Larger than the buffer, so the failing write happens inside append.
        let first = writer.append(1, &[0u8; 100]).unwrap_err();
        assert!(matches!(first, LogError::Io { .. }), "{first}");
        for _ in 0..3 {
            let again = writer.append(1, b"x").unwrap_err();
            assert!(matches!(again, LogError::Poisoned { .. }), "{again}");
            assert!(again.to_string().contains("/dev/full"), "{again}");
        }
        assert!(matches!(writer.flush(), Err(LogError::Poisoned { .. })));
        assert!(matches!(writer.sync(), Err(LogError::Poisoned { .. })));
        assert_eq!(writer.records_written(), 0);
    }
}
