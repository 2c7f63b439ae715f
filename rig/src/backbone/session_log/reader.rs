//! [`LogReader`]: reads a `records.log` in order and says what it could not read.
//!
//! A format version 1 log is read up to its first bad record ([`TailState`]
//! then says where and why). A version 2 log is read past damage: at a record
//! that fails (no sync marker, impossible length, checksum mismatch) the reader
//! scans forward for the next sync marker whose record validates, notes the
//! skipped range as a [`Damage`] and reads on from there. Only when nothing
//! valid follows does reading stop, and that is the log's tail. A damaged
//! range or tail is therefore not an error: an `Err` is an I/O failure of the
//! file itself.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::format::{
    FILE_HEADER_LEN, FileHeader, LOG_FORMAT_VERSION, MAX_PAYLOAD_BYTES, RECORD_HEADER_LEN,
    RECORD_HEADER_LEN_V1, RecordHeader, SYNC, decode_file_header, decode_record_header,
    decode_record_header_v1, escape_bytes, record_crc, record_crc_v1,
};
use super::tail::{Damage, TailState, TruncationReason};
use crate::vocab::records::RecordKind;

/// Where and what a record is; its payload went to the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position of the record in the log, from 0. After a damaged range this
    /// is the record's index as written, so lost records leave a gap.
    pub index: u64,
    /// Byte offset of the record header in the file.
    pub offset: u64,
    /// Record kind, as given to [`LogWriter::append`](super::LogWriter::append).
    pub kind: u16,
    /// Container flags; always 0 so far.
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

/// Everything a log holds, as [`LogReader::read_all`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogContents {
    pub records: Vec<Record>,
    pub tail: TailState,
    pub damage: Vec<Damage>,
}

/// Bytes scanned per read while looking for the next sync marker.
const SCAN_CHUNK: usize = 64 * 1024;

/// Reads records from a session log, in the order they were written.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    input: BufReader<File>,
    version: u32,
    /// Offset of the next record header.
    offset: u64,
    /// Index the next record should carry (records read plus records lost).
    next_index: u64,
    /// Complete records returned.
    records: u64,
    /// File length as last seen; re-read before declaring a payload incomplete,
    /// so a log still being written is not misjudged.
    file_len: u64,
    /// Kind of the last record returned (the `End` record makes a clean tail).
    last_kind: Option<u16>,
    damage: Vec<Damage>,
    /// Payload buffer for validating candidates while resynchronising.
    scan: Vec<u8>,
    /// Set once reading has ended, cleanly or not; later reads return `None`.
    tail: Option<TailState>,
}

/// One attempt at the record at the current offset.
enum Step {
    Record(RecordInfo),
    /// The file ends exactly here.
    End,
    Bad(TruncationReason),
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
            next_index: 0,
            records: 0,
            file_len,
            last_kind: None,
            damage: Vec::new(),
            scan: Vec::new(),
            tail: None,
        })
    }

    /// Reads the next record's payload into `payload` (cleared first, its
    /// allocation reused) and returns its header, or `None` at the end of the
    /// readable log; [`LogReader::tail`] then says how it ended, and
    /// [`LogReader::damage`] lists the ranges read past.
    ///
    /// An `Err` is an I/O failure of the file itself, not a damaged record.
    pub fn next_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<RecordInfo>, LogError> {
        payload.clear();
        if self.tail.is_some() {
            return Ok(None);
        }
        loop {
            let step = if self.version == 1 {
                self.step_v1(payload)?
            } else {
                self.step_v2(payload)?
            };
            let reason = match step {
                Step::Record(info) => {
                    self.records += 1;
                    self.last_kind = Some(info.kind);
                    return Ok(Some(info));
                }
                Step::End => {
                    let ended = self.last_kind == Some(RecordKind::End as u16);
                    self.tail = Some(if self.version == 1 || ended {
                        TailState::Clean
                    } else {
                        TailState::CutShort {
                            records: self.records,
                        }
                    });
                    return Ok(None);
                }
                Step::Bad(reason) => reason,
            };
            payload.clear();
            // Version 1 has no sync marker to find the next record by.
            let next = match self.version {
                1 => None,
                _ => self.resync()?,
            };
            let Some((next, index)) = next else {
                self.tail = Some(TailState::Truncated {
                    offset: self.offset,
                    records_before: self.records,
                    bytes_after: self.file_len.saturating_sub(self.offset),
                    reason,
                });
                return Ok(None);
            };
            let lost = u64::from(index.wrapping_sub(self.next_index as u32));
            let damage = Damage {
                start: self.offset,
                end: next,
                first_lost: self.next_index,
                records_lost: lost,
                reason,
            };
            tracing::warn!(log = %self.path.display(), %damage, "session log damaged; read past it");
            self.damage.push(damage);
            self.next_index += lost;
            self.seek(next)?;
            self.offset = next;
        }
    }

    fn step_v1(&mut self, payload: &mut Vec<u8>) -> Result<Step, LogError> {
        let mut bytes = [0u8; RECORD_HEADER_LEN_V1];
        let have = self.read("reading a record header of", &mut bytes)?;
        if have == 0 {
            return Ok(Step::End);
        }
        if have < RECORD_HEADER_LEN_V1 {
            return Ok(Step::Bad(TruncationReason::IncompleteHeader {
                have: have as u32,
            }));
        }
        let header = decode_record_header_v1(&bytes);
        if let Some(bad) = self.read_payload(&header, RECORD_HEADER_LEN_V1, payload)? {
            return Ok(Step::Bad(bad));
        }
        let computed = record_crc_v1(&bytes, &[payload.as_slice()]);
        if computed != header.crc {
            return Ok(Step::Bad(TruncationReason::ChecksumMismatch {
                stored: header.crc,
                computed,
            }));
        }
        Ok(Step::Record(self.accept(&header, RECORD_HEADER_LEN_V1)))
    }

    fn step_v2(&mut self, payload: &mut Vec<u8>) -> Result<Step, LogError> {
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        let have = self.read("reading a record header of", &mut bytes)?;
        if have == 0 {
            return Ok(Step::End);
        }
        if have < RECORD_HEADER_LEN {
            return Ok(Step::Bad(TruncationReason::IncompleteHeader {
                have: have as u32,
            }));
        }
        let header = decode_record_header(&bytes);
        if header.sync != SYNC {
            return Ok(Step::Bad(TruncationReason::BadSync { found: header.sync }));
        }
        if let Some(bad) = self.read_payload(&header, RECORD_HEADER_LEN, payload)? {
            return Ok(Step::Bad(bad));
        }
        let computed = record_crc(&bytes, &[payload.as_slice()]);
        if computed != header.crc {
            return Ok(Step::Bad(TruncationReason::ChecksumMismatch {
                stored: header.crc,
                computed,
            }));
        }
        let ahead = header.index.wrapping_sub(self.next_index as u32);
        if ahead >= 1 << 31 {
            return Ok(Step::Bad(TruncationReason::IndexBehind {
                expected: self.next_index,
                found: header.index,
            }));
        }
        if ahead > 0 {
            // A valid record further on than expected: whole records are
            // missing with no damaged byte left of them (a dropped block).
            let damage = Damage {
                start: self.offset,
                end: self.offset,
                first_lost: self.next_index,
                records_lost: u64::from(ahead),
                reason: TruncationReason::IndexBehind {
                    expected: self.next_index,
                    found: header.index,
                },
            };
            tracing::warn!(log = %self.path.display(), %damage, "session log has a gap");
            self.damage.push(damage);
            self.next_index += u64::from(ahead);
        }
        Ok(Step::Record(self.accept(&header, RECORD_HEADER_LEN)))
    }

    /// Reads the payload `header` announces, or says why it cannot be there.
    fn read_payload(
        &mut self,
        header: &RecordHeader,
        header_len: usize,
        payload: &mut Vec<u8>,
    ) -> Result<Option<TruncationReason>, LogError> {
        if header.len > MAX_PAYLOAD_BYTES {
            return Ok(Some(TruncationReason::LengthOverMax {
                len: header.len,
                max: MAX_PAYLOAD_BYTES,
            }));
        }
        // Decide "incomplete" from the file length before allocating, so a
        // plausible but wrong length costs no memory either.
        let payload_start = self.offset + header_len as u64;
        let record_end = payload_start + u64::from(header.len);
        if record_end > self.file_len {
            self.file_len = self.current_len()?;
            if record_end > self.file_len {
                return Ok(Some(TruncationReason::IncompletePayload {
                    len: header.len,
                    have: self.file_len.saturating_sub(payload_start),
                }));
            }
        }
        payload.resize(header.len as usize, 0);
        let have = self.read("reading a payload of", payload)?;
        if have < payload.len() {
            // The file shrank under us; treat like any incomplete record.
            return Ok(Some(TruncationReason::IncompletePayload {
                len: header.len,
                have: have as u64,
            }));
        }
        Ok(None)
    }

    fn accept(&mut self, header: &RecordHeader, header_len: usize) -> RecordInfo {
        let info = RecordInfo {
            index: self.next_index,
            offset: self.offset,
            kind: header.kind,
            flags: header.flags,
            len: header.len,
        };
        self.offset += header_len as u64 + u64::from(header.len);
        self.next_index += 1;
        info
    }

    /// Finds the first offset after the current one where a sync marker starts
    /// a record that validates and is not behind the expected index; returns
    /// it with that record's stored index.
    fn resync(&mut self) -> Result<Option<(u64, u32)>, LogError> {
        self.file_len = self.current_len()?;
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let mut pos = self.offset + 1;
        while pos + RECORD_HEADER_LEN as u64 <= self.file_len {
            self.seek(pos)?;
            let have = self.read("scanning for a sync marker in", &mut chunk)?;
            if have < SYNC.len() {
                break;
            }
            for at in 0..=have - SYNC.len() {
                if chunk[at..at + SYNC.len()] == SYNC {
                    let candidate = pos + at as u64;
                    if let Some(index) = self.validate_at(candidate)? {
                        return Ok(Some((candidate, index)));
                    }
                }
            }
            // Overlap by the marker's length less one, so a marker split
            // across two chunks is still found.
            pos += (have - (SYNC.len() - 1)) as u64;
        }
        Ok(None)
    }

    /// The stored index of a valid version 2 record at `at`, if there is one.
    fn validate_at(&mut self, at: u64) -> Result<Option<u32>, LogError> {
        self.seek(at)?;
        let mut bytes = [0u8; RECORD_HEADER_LEN];
        if self.read("reading a candidate record in", &mut bytes)? < RECORD_HEADER_LEN {
            return Ok(None);
        }
        let header = decode_record_header(&bytes);
        let end = at + RECORD_HEADER_LEN as u64 + u64::from(header.len);
        let behind = header.index.wrapping_sub(self.next_index as u32) >= 1 << 31;
        if header.sync != SYNC || header.len > MAX_PAYLOAD_BYTES || end > self.file_len || behind {
            return Ok(None);
        }
        let mut scan = std::mem::take(&mut self.scan);
        scan.resize(header.len as usize, 0);
        let read = self.read("reading a candidate record in", &mut scan);
        let valid = matches!(read, Ok(n) if n == scan.len())
            && record_crc(&bytes, &[scan.as_slice()]) == header.crc;
        self.scan = scan;
        read?;
        Ok(valid.then_some(header.index))
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
    pub fn read_to_end(self) -> Result<(Vec<Record>, TailState), LogError> {
        let all = self.read_all()?;
        Ok((all.records, all.tail))
    }

    /// Reads every remaining record, how the log ended and the damage read past.
    pub fn read_all(mut self) -> Result<LogContents, LogError> {
        let records = self.records().collect::<Result<Vec<_>, _>>()?;
        Ok(LogContents {
            records,
            tail: self.tail.clone().unwrap_or(TailState::Clean),
            damage: self.damage,
        })
    }

    /// How the log ended; `None` until reading has reached its end.
    pub fn tail(&self) -> Option<&TailState> {
        self.tail.as_ref()
    }

    /// Damaged ranges read past so far, in file order.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Records lost in damaged ranges so far (not counting a damaged tail).
    pub fn records_lost(&self) -> u64 {
        self.damage.iter().map(|d| d.records_lost).sum()
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

    /// Moves the file position only; `offset` (the next record) is the caller's to set.
    fn seek(&mut self, to: u64) -> Result<(), LogError> {
        self.input
            .seek(SeekFrom::Start(to))
            .map(|_| ())
            .map_err(|source| io_error(self.path.clone(), "seeking in", to, source))
    }

    fn current_len(&self) -> Result<u64, LogError> {
        self.input
            .get_ref()
            .metadata()
            .map(|meta| meta.len())
            .map_err(|source| io_error(self.path.clone(), "inspecting", self.offset, source))
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
