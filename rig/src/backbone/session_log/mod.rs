//! The session log: one directory per daemon run, holding a manifest and an append-only, checksummed record log that stays readable after the daemon is killed and past damaged ranges.
//!
//! Records are opaque here, a `u16` kind and a byte payload defined by the
//! daemon, with two exceptions the container knows by kind: the `Manifest`
//! record (a copy of `manifest.json`, the log's first record) and the `End`
//! record (the recorder's last), both from [`crate::vocab::records::RecordKind`].
//! This module provides the container, the reader with crash and damage
//! recovery, the manifest and the directory layout.
//!
//! ## Design constraints
//!
//! These invariants keep the format simple enough to trust after a crash:
//! - one writer per log, append-only: a log is created with `create_new`
//!   (never clobbering a session) and nothing written is ever rewritten;
//! - every record starts with a sync marker and carries its index and a CRC-32
//!   (IEEE) over its header fields and payload;
//! - a payload is at most [`MAX_PAYLOAD_BYTES`] (256 MiB), so a corrupt length
//!   field cannot make the reader allocate more than that, and a length that
//!   runs past the end of the file allocates nothing;
//! - a crash damages only the end of the log: records are written in order
//!   and none is ever updated, so a SIGKILL leaves at most one incomplete
//!   record, after every complete one;
//! - the session's end is a record: a log that ends between records without
//!   it was cut short ([`TailState::CutShort`]), not clean;
//! - damage elsewhere (a flipped bit, a lost page) costs the records it
//!   touches and no more: the reader resynchronises and reports each skipped
//!   range with the records lost ([`Damage`]);
//! - appending does not allocate: the header is built on the stack, payload
//!   parts are borrowed, the CRC is computed incrementally, and bytes go
//!   through a `BufWriter` sized once at creation;
//! - after an I/O error the writer refuses further records;
//! - little-endian on disk, whatever the host;
//! - the manifest is replaced atomically (temporary file, fsync, rename,
//!   directory fsync): it is either absent or complete; and the log holds a
//!   copy, so [`SessionDir::read_manifest`] still works when the file is lost.
//!
//! ## Directory layout
//!
//! ```text
//! sessions/2026-11-28T21-40-03-sim/   SessionDir: <UTC start>[-<label>][-<n>]
//!   manifest.json                     Manifest: versions, start, command line, config, seeds
//!   records.log                       the record log (below)
//!   latency.json, summary.json        written by the daemon at the end
//!   live_twin.json, .safetensors      the refitted twin, at the end (`[twin] save`)
//!   truth/                            ground truth, simulated sessions only
//! ```
//!
//! ## Record log byte layout (format version 2, written since issue 16)
//!
//! ```text
//! file header, 16 bytes, at offset 0:
//!   magic     [u8; 8]  "TWLPLOG\0"
//!   version   u32 LE   2 (1: the layout below without sync and index)
//!   reserved  u32 LE   0
//! then records, back to back, no padding:
//!   sync      [u8; 4]  F9 54 4C FD (SYNC)
//!   len       u32 LE   payload bytes, <= MAX_PAYLOAD_BYTES
//!   kind      u16 LE   defined by the daemon
//!   flags     u16 LE   reserved for the container; 0
//!   index     u32 LE   the record's position in the log, modulo 2^32
//!   crc       u32 LE   CRC-32 (IEEE) of the 16 bytes sync..index as stored, then the payload
//!   payload   [u8; len]
//! ```
//!
//! Version 1 records were `len | kind | flags | crc | payload` (12-byte
//! header, the CRC over len, kind, flags and payload); the reader reads both.
//! Version 2 costs 8 bytes more per record.
//!
//! ## Resynchronisation (version 2)
//!
//! At a record that fails (no marker, a length over the maximum or past the
//! end of the file, a checksum mismatch, an index behind the expected one) the
//! reader scans forward, byte by byte, for the next marker that starts a
//! record whose checksum holds and whose index is not behind. The skipped
//! range is a [`Damage`]: its bytes, and the records lost, exact from the
//! indices. So one flipped byte costs one record, a zeroed block the records
//! it touches. A false start needs the marker and a matching CRC-32 by chance
//! (about 2^-32 per marker-like spot in damaged bytes). When nothing valid
//! follows, the damage is the log's tail ([`TailState::Truncated`]). Version 1
//! has no marker, so its reader still stops at the first bad record.
//!
//! ## Durability: flush and sync
//!
//! [`LogWriter::flush`] hands buffered records to the kernel: from then on
//! they survive the daemon being killed. [`LogWriter::sync`] (`fdatasync`)
//! also makes them survive a power loss, at a cost of milliseconds. The writer
//! never flushes on a timer of its own; the recorder decides (e.g. flush every
//! ~50 ms, sync at checkpoints and [`LogWriter::finish`] at the end). Records
//! still in the buffer when the process dies are lost, and a buffer that fills
//! up is written out on its own, possibly ending mid-record — which is the
//! incomplete tail the reader expects.
//!
//! ## Files
//! - `format`: constants, header encoding and the checksum (both versions);
//! - `writer`: [`LogWriter`]; `reader`: [`LogReader`]; `tail`: [`TailState`], [`Damage`];
//! - `fallback`: the manifest from the log, the record count the summary promises;
//! - `manifest`: [`Manifest`]; `dir`: [`SessionDir`] and file names;
//! - `atomic`: [`write_atomic`], whole files absent or complete;
//! - `time`: unix ms and UTC text; `error`: [`LogError`], [`SessionError`].

mod atomic;
mod dir;
mod error;
mod fallback;
mod format;
mod manifest;
mod reader;
mod tail;
mod time;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_resync;
#[cfg(test)]
mod tests_throughput;

pub use atomic::write_atomic;
pub use dir::{LATENCY_FILE, RECORDS_LOG_FILE, SUMMARY_FILE, SessionDir, TRUTH_DIR};
pub use error::{LogError, SessionError};
pub use format::{
    FILE_HEADER_LEN, LOG_FORMAT_VERSION, MAGIC, MAX_PAYLOAD_BYTES, RECORD_HEADER_LEN,
    RECORD_HEADER_LEN_V1, SYNC,
};
pub use manifest::{MANIFEST_FILE, MANIFEST_FORMAT_VERSION, Manifest};
pub use reader::{LogContents, LogReader, Record, RecordInfo, Records};
pub use tail::{Damage, TailState, TruncationReason};
pub use time::rfc3339_utc;
pub use writer::{LogStats, LogWriter};
