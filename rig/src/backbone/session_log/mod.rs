//! The session log: one directory per daemon run, holding a manifest and an append-only, checksummed record log that stays readable up to its last complete record after the daemon is killed.
//!
//! Records are opaque here: a `u16` kind and a byte payload, both defined by
//! the daemon. This module provides the container, the reader with crash
//! recovery, the manifest and the directory layout.
//!
//! ## Design constraints
//!
//! These invariants keep the format simple enough to trust after a crash:
//! - one writer per log, append-only: a log is created with `create_new`
//!   (never clobbering a session) and nothing written is ever rewritten;
//! - every record carries a CRC-32 (IEEE) over its header fields and payload;
//! - a payload is at most [`MAX_PAYLOAD_BYTES`] (256 MiB), so a corrupt length
//!   field cannot make the reader allocate more than that, and a length that
//!   runs past the end of the file allocates nothing;
//! - a crash damages only the end of the log: records are written in order
//!   and none is ever updated, so a SIGKILL leaves at most one incomplete
//!   record, after every complete one;
//! - the reader never skips: it stops at the first incomplete or corrupt
//!   record and reports where and why ([`TailState`]);
//! - appending does not allocate: the header is built on the stack, payload
//!   parts are borrowed, the CRC is computed incrementally, and bytes go
//!   through a `BufWriter` sized once at creation;
//! - after an I/O error the writer refuses further records (it may have left a
//!   partial record, after which the reader would never see later ones);
//! - little-endian on disk, whatever the host;
//! - the manifest is replaced atomically (temporary file, fsync, rename,
//!   directory fsync): it is either absent or complete.
//!
//! ## Directory layout
//!
//! ```text
//! sessions/2026-11-28T21-40-03-sim/   SessionDir: <UTC start>[-<label>][-<n>]
//!   manifest.json                     Manifest: versions, start, command line, config, seeds
//!   records.log                       the record log (below)
//!   latency.json, summary.json        written by the daemon at the end
//!   truth/                            ground truth, simulated sessions only
//! ```
//!
//! ## Record log byte layout (format version 1)
//!
//! ```text
//! file header, 16 bytes, at offset 0:
//!   magic     [u8; 8]  "TWLPLOG\0"
//!   version   u32 LE   1
//!   reserved  u32 LE   0
//! then records, back to back, no padding:
//!   len       u32 LE   payload bytes, <= MAX_PAYLOAD_BYTES
//!   kind      u16 LE   defined by the daemon
//!   flags     u16 LE   reserved for the container; 0 in version 1
//!   crc       u32 LE   CRC-32 (IEEE) of the 8 bytes len|kind|flags as stored, then the payload
//!   payload   [u8; len]
//! ```
//!
//! The length comes first so that a reader knows how much to expect before it
//! reads anything else, and the checksum covers the header so that a flipped
//! bit in `len` or `kind` is caught, not only one in the payload. An all-zero
//! header (what a power loss can leave after the last sync) fails the check.
//!
//! ## Why the reader does not resynchronise past corruption
//!
//! A crash only ever leaves a damaged *last* record, which the reader handles
//! by stopping there. Damage anywhere else means the storage lost data, and
//! then skipping ahead would be wrong twice over: there is no sync marker, so
//! a payload (opaque bytes) can contain what looks like a valid header, and a
//! 32-bit checksum tried at every byte offset of a large log will eventually
//! accept garbage; and a replay that silently misses records no longer
//! reproduces the live decisions. So the reader returns every record before the
//! damage and says where the damage is ([`TailState::Truncated`] with the
//! offset and the bytes left after it); salvaging past it is a forensic job
//! for a separate tool.
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
//! - `format`: constants, header encoding and the checksum;
//! - `writer`: [`LogWriter`]; `reader`: [`LogReader`], [`TailState`];
//! - `manifest`: [`Manifest`]; `dir`: [`SessionDir`] and file names;
//! - `time`: unix ms and UTC text; `error`: [`LogError`], [`SessionError`].

mod atomic;
mod dir;
mod error;
mod format;
mod manifest;
mod reader;
mod time;
mod writer;

#[cfg(test)]
mod tests;

pub use atomic::write_atomic;
pub use dir::{LATENCY_FILE, RECORDS_LOG_FILE, SUMMARY_FILE, SessionDir, TRUTH_DIR};
pub use error::{LogError, SessionError};
pub use format::{
    FILE_HEADER_LEN, LOG_FORMAT_VERSION, MAGIC, MAX_PAYLOAD_BYTES, RECORD_HEADER_LEN,
};
pub use manifest::{MANIFEST_FILE, MANIFEST_FORMAT_VERSION, Manifest};
pub use reader::{LogReader, Record, RecordInfo, Records, TailState, TruncationReason};
pub use time::rfc3339_utc;
pub use writer::{LogStats, LogWriter};
