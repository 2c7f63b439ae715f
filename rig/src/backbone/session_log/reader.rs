//! [`LogReader`]: reads a `records.log` in order and says how it ended.
//!
//! Reading stops at the first record that is incomplete or fails its checksum;
//! everything before it is returned and [`LogReader::tail`] then says where and
//! why the log ended ([`TailState`]). A damaged tail is therefore not an error:
//! it is the expected state of a log whose daemon was killed.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::format::{
    FILE_HEADER_LEN, FileHeader, LOG_FORMAT_VERSION, MAX_PAYLOAD_BYTES, RECORD_HEADER_LEN,
    decode_file_header, decode_record_header, escape_bytes, record_crc,
};

/// Where and what a record is; its payload went to the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position of the record in the log, from 0.
    pub index: u64,
    /// Byte offset of the record header in the file.
    pub offset: u64,
    /// Record kind, as given to [`LogWriter::append`](super::LogWriter::append).
    pub kind: u16,
    /// Container flags; always 0 in format version 1.
    pub flags: u16,
    /// Payload length in bytes.
    pub len: u32,
}

/// A record with its own payload, as yielded by [`LogReader::records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub info: RecordInfo,
    pub payload: Vec<u8>,
}

/// How the log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailState {
    /// The last record was complete and the file ends right after it.
    Clean,
    /// Reading stopped at `offset`, the start of a record that is incomplete
    /// or corrupt; `records_before` complete records precede it.
    Truncated {
        offset: u64,
        records_before: u64,
        /// Bytes from `offset` to the end of the file. A killed daemon leaves
        /// fewer than one record's worth; many more point at corruption in the
        /// middle of the log rather than a crash.
        bytes_after: u64,
        reason: TruncationReason,
    },
}

impl TailState {
    /// True for [`TailState::Clean`].
    pub fn is_clean(&self) -> bool {
        matches!(self, TailState::Clean)
    }
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationReason {
    /// The file ends inside a record header.
    IncompleteHeader { have: u32 },
    /// The file ends inside a payload of `len` bytes.
    IncompletePayload { len: u32, have: u64 },
    /// Header and payload are all there but their checksum does not match.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The length field exceeds [`MAX_PAYLOAD_BYTES`]: the header is corrupt.
    LengthOverMax { len: u32, max: u32 },
}

impl fmt::Display for TruncationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TruncationReason::IncompleteHeader { have } => {
                write!(f, "incomplete header ({have} of {RECORD_HEADER_LEN} bytes)")
            }
            TruncationReason::IncompletePayload { len, have } => {
                write!(f, "incomplete payload ({have} of {len} bytes)")
            }
            TruncationReason::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            TruncationReason::LengthOverMax { len, max } => {
                write!(f, "length over the max ({len} bytes, max {max})")
            }
        }
    }
}

impl fmt::Display for TailState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailState::Clean => write!(f, "clean"),
            TailState::Truncated {
                offset,
                records_before,
                bytes_after,
                reason,
            } => write!(
                f,
                "truncated at byte {offset} after {records_before} records: {reason} \
                 ({bytes_after} bytes not read)"
            ),
        }
    }
}

/// Reads records from a session log, in the order they were written.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    input: BufReader<File>,
    version: u32,
    /// Offset of the next record header.
    offset: u64,
    records: u64,
    /// File length as last seen; re-read before declaring a payload incomplete,
    /// so a log still being written is not misjudged.
    file_len: u64,
    /// Set once reading has ended, cleanly or not; later reads return `None`.
    tail: Option<TailState>,
}

impl LogReader {
    /// Opens `path` and checks its file header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref().to_path_buf();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(LogError::Missing { path });
            }
            Err(source) => return Err(io_error(path, "opening", 0, source)),
        };
        let file_len = match file.metadata() {
            Ok(meta) => meta.len(),
            Err(source) => return Err(io_error(path, "inspecting", 0, source)),
        };
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut header = [0u8; FILE_HEADER_LEN];
        let have = match read_full(&mut input, &mut header) {
            Ok(have) => have,
            Err(source) => return Err(io_error(path, "reading", 0, source)),
        };
        if have < FILE_HEADER_LEN {
            let reason = if have == 0 {
                "the file is empty".to_string()
            } else {
                format!(
                    "the file is {have} bytes long, shorter than the {FILE_HEADER_LEN}-byte header \
                     (starts {:?})",
                    escape_bytes(&header[..have])
                )
            };
            return Err(LogError::NotALog { path, reason });
        }
        let version = match decode_file_header(&header) {
            FileHeader::WrongMagic { found } => {
                let reason = format!(
                    "wrong magic: found \"{}\", expected \"{}\"",
                    escape_bytes(&found),
                    escape_bytes(&super::format::MAGIC)
                );
                return Err(LogError::NotALog { path, reason });
            }
            FileHeader::Log { version } if version == 0 || version > LOG_FORMAT_VERSION => {
                return Err(LogError::UnsupportedVersion {
                    path,
                    found: version,
                    supported: LOG_FORMAT_VERSION,
                });
            }
            FileHeader::Log { version } => version,
        };
        Ok(LogReader {
            path,
            input,
            version,
            offset: FILE_HEADER_LEN as u64,
            records: 0,
            file_len,
            tail: None,
        })
    }

    /// Reads the next record's payload into `payload` (cleared first, its
    /// allocation reused) and returns its header, or `None` at the end of the
    /// readable log; [`LogReader::tail`] then says how it ended.
    ///
    /// An `Err` is an I/O failure of the file itself, not a damaged record.
    pub fn next_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<RecordInfo>, LogError> {
        payload.clear();
        if self.tail.is_some() {
            return Ok(None);
        }
        let mut header_bytes = [0u8; RECORD_HEADER_LEN];
        let have = self.read("reading a record header of", &mut header_bytes)?;
        if have == 0 {
            self.tail = Some(TailState::Clean);
            return Ok(None);
        }
        if have < RECORD_HEADER_LEN {
            return self.stop(TruncationReason::IncompleteHeader { have: have as u32 });
        }
        let header = decode_record_header(&header_bytes);
        if header.len > MAX_PAYLOAD_BYTES {
            return self.stop(TruncationReason::LengthOverMax {
                len: header.len,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        // Decide "incomplete" from the file length before allocating, so a
        // plausible but wrong length at the tail costs no memory either.
        let payload_start = self.offset + RECORD_HEADER_LEN as u64;
        let record_end = payload_start + u64::from(header.len);
        if record_end > self.file_len {
            self.file_len = self.current_len()?;
            if record_end > self.file_len {
                return self.stop(TruncationReason::IncompletePayload {
                    len: header.len,
                    have: self.file_len.saturating_sub(payload_start),
                });
            }
        }
        payload.resize(header.len as usize, 0);
        let have = self.read("reading a payload of", payload)?;
        if have < payload.len() {
            // The file shrank under us; treat like any incomplete tail.
            payload.clear();
            return self.stop(TruncationReason::IncompletePayload {
                len: header.len,
                have: have as u64,
            });
        }
        let computed = record_crc(&header_bytes, &[payload.as_slice()]);
        if computed != header.crc {
            payload.clear();
            return self.stop(TruncationReason::ChecksumMismatch {
                stored: header.crc,
                computed,
            });
        }
        let info = RecordInfo {
            index: self.records,
            offset: self.offset,
            kind: header.kind,
            flags: header.flags,
            len: header.len,
        };
        self.offset = record_end;
        self.records += 1;
        Ok(Some(info))
    }

    /// Iterates over the remaining records, each with its own payload.
    /// Convenient for tools and tests; the daemon's replay should use
    /// [`LogReader::next_into`], which reuses one buffer.
    pub fn records(&mut self) -> Records<'_> {
        Records {
            reader: self,
            failed: false,
        }
    }

    /// Reads every remaining record and how the log ended.
    pub fn read_to_end(mut self) -> Result<(Vec<Record>, TailState), LogError> {
        let records = self.records().collect::<Result<Vec<_>, _>>()?;
        let tail = self.tail.clone().unwrap_or(TailState::Clean);
        Ok((records, tail))
    }

    /// How the log ended; `None` until reading has reached its end.
    pub fn tail(&self) -> Option<&TailState> {
        self.tail.as_ref()
    }

    /// Complete records read so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Byte offset of the next record (after the last one read).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Format version found in the file header.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&mut self, action: &'static str, buf: &mut [u8]) -> Result<usize, LogError> {
        read_full(&mut self.input, buf)
            .map_err(|source| io_error(self.path.clone(), action, self.offset, source))
    }

    fn current_len(&self) -> Result<u64, LogError> {
        self.input
            .get_ref()
            .metadata()
            .map(|meta| meta.len())
            .map_err(|source| io_error(self.path.clone(), "inspecting", self.offset, source))
    }

    fn stop(&mut self, reason: TruncationReason) -> Result<Option<RecordInfo>, LogError> {
        self.tail = Some(TailState::Truncated {
            offset: self.offset,
            records_before: self.records,
            bytes_after: self.file_len.saturating_sub(self.offset),
            reason,
        });
        Ok(None)
    }
}

/// Iterator returned by [`LogReader::records`]; ends after the first error.
#[derive(Debug)]
pub struct Records<'a> {
    reader: &'a mut LogReader,
    failed: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut payload = Vec::new();
        match self.reader.next_into(&mut payload) {
            Ok(Some(info)) => Some(Ok(Record { info, payload })),
            Ok(None) => None,
            Err(err) => {
                // After an I/O error the position in the file is unknown.
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
/// Unlike `read_exact`, a short count is an answer, not an error: it is how
/// an incomplete record is measured.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn io_error(path: PathBuf, action: &'static str, offset: u64, source: io::Error) -> LogError {
    LogError::Io {
        path,
        action,
        offset,
        source,
    }
}
