//! What a reader found besides records: how the log ended ([`TailState`]) and
//! each damaged range it read past ([`Damage`]).

use std::fmt;

use super::format::{RECORD_HEADER_LEN, escape_bytes};

/// How the log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailState {
    /// The file ends right after a complete record, and (format version 2)
    /// that record is the session's `End` record: the recorder finished.
    Clean,
    /// Format version 2: the file ends right after a complete record, but the
    /// session's `End` record is not there. The recorder never finished: the
    /// daemon was killed, or the file was cut at a record boundary.
    CutShort {
        /// Complete records read.
        records: u64,
    },
    /// Reading stopped at `offset`, the start of a record that is incomplete
    /// or corrupt and after which no valid record follows; `records_before`
    /// complete records precede it.
    Truncated {
        offset: u64,
        records_before: u64,
        /// Bytes from `offset` to the end of the file. A killed daemon leaves
        /// fewer than one record's worth; many more point at damage rather
        /// than a crash.
        bytes_after: u64,
        reason: TruncationReason,
    },
}

impl TailState {
    /// True for [`TailState::Clean`]: the session's end is in the log.
    pub fn is_clean(&self) -> bool {
        matches!(self, TailState::Clean)
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationReason {
    /// The file ends inside a record header.
    IncompleteHeader { have: u32 },
    /// The file ends inside a payload of `len` bytes.
    IncompletePayload { len: u32, have: u64 },
    /// Header and payload are all there but their checksum does not match.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The length field exceeds [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES): the header is corrupt.
    LengthOverMax { len: u32, max: u32 },
    /// Format version 2: the record does not start with the sync marker.
    BadSync { found: [u8; 4] },
    /// Format version 2: a valid record whose index is behind the one expected
    /// (a range of the file repeated).
    IndexBehind { expected: u64, found: u32 },
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
            TruncationReason::BadSync { found } => {
                write!(f, "no sync marker (found \"{}\")", escape_bytes(found))
            }
            TruncationReason::IndexBehind { expected, found } => write!(
                f,
                "record index {found} (mod 2^32) is behind the expected {expected}"
            ),
        }
    }
}

impl fmt::Display for TailState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailState::Clean => write!(f, "clean"),
            TailState::CutShort { records } => write!(
                f,
                "cut short after {records} records: the log has no end-of-session record"
            ),
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

/// A damaged range the reader skipped (format version 2): bytes `start..end`
/// held no readable record. Reading went on at `end`, the next record that
/// validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// Offset where a record was expected and could not be read.
    pub start: u64,
    /// Offset of the next valid record (exclusive end of the range).
    pub end: u64,
    /// Index of the first record lost.
    pub first_lost: u64,
    /// Records lost: the next valid record's stored index minus the one
    /// expected, so exact unless more than 2^31 records were lost.
    pub records_lost: u64,
    /// What was wrong with the record at `start`.
    pub reason: TruncationReason,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lost = match self.records_lost {
            0 => "no record lost".to_string(),
            1 => format!("record {} lost", self.first_lost),
            n => format!(
                "{n} records lost ({}..={})",
                self.first_lost,
                self.first_lost + n - 1
            ),
        };
        write!(
            f,
            "bytes {}..{} ({} bytes) unreadable: {}; {lost}",
            self.start,
            self.end,
            self.end - self.start,
            self.reason
        )
    }
}
