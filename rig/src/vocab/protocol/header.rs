//! The 64-byte message header.
//!
//! ```text
//! offset size field    meaning
//!  0      4   magic    b"TWLP"
//!  4      2   version  u16, 1
//!  6      2   stream   u16, see Stream
//!  8      1   dtype    u8, see Dtype
//!  9      1   ndim     u8, 0..=4
//! 10      1   plane    u8 (two-photon plane index)
//! 11      1   channel  u8 (two-photon channel index)
//! 12      4   flags    u32, inputs: 0; outputs: bit 0 = trial onset (flip, view)
//! 16      8   seq      u64, per (stream, plane, channel), +1 per message
//! 24      8   t_ns     i64, rig-clock timestamp in ns
//! 32     16   shape    4 x u32, row-major, unused dims 0
//! 48      8   aux      i64, stream-specific (frame number, sync code, ...)
//! 56      8   sent_ns  i64, sender's CLOCK_MONOTONIC at send (0 = unknown), for latency
//! ```
//! Python: `struct.Struct("<4sHHBBBBIQq4Iqq")`.

use super::{Dtype, ProtocolError, Stream};

pub const MAGIC: [u8; 4] = *b"TWLP";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub stream: Stream,
    pub dtype: Dtype,
    pub ndim: u8,
    pub plane: u8,
    pub channel: u8,
    pub flags: u32,
    pub seq: u64,
    pub t_ns: i64,
    pub shape: [u32; 4],
    pub aux: i64,
    pub sent_ns: i64,
}

impl Header {
    /// A header for `stream` with the given shape (at most 4 dims) and everything else zero.
    pub fn new(stream: Stream, dtype: Dtype, shape: &[u32], seq: u64, t_ns: i64) -> Header {
        let mut s = [0u32; 4];
        let ndim = shape.len().min(4);
        s[..ndim].copy_from_slice(&shape[..ndim]);
        Header {
            stream,
            dtype,
            ndim: ndim as u8,
            plane: 0,
            channel: 0,
            flags: 0,
            seq,
            t_ns,
            shape: s,
            aux: 0,
            sent_ns: 0,
        }
    }

    /// Number of elements the shape describes; `None` when the product overflows `usize` (a
    /// hostile shape such as `[65536; 4]` would otherwise wrap to 0 and match an empty payload).
    pub fn elements(&self) -> Option<usize> {
        self.shape[..usize::from(self.ndim.min(4))]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
    }

    /// Payload bytes the header promises; `None` on overflow (see [`Header::elements`]).
    pub fn payload_len(&self) -> Option<usize> {
        self.elements()?.checked_mul(self.dtype.size_bytes())
    }

    /// Checks that the payload is exactly the bytes the shape promises; a shape whose size
    /// overflows is refused as [`ProtocolError::ShapeOverflow`], whatever the payload.
    pub fn check_payload(&self, got: usize) -> Result<(), ProtocolError> {
        let expected = self.payload_len().ok_or(ProtocolError::ShapeOverflow {
            dtype: self.dtype,
            shape: self.shape,
        })?;
        if expected != got {
            return Err(ProtocolError::PayloadSize {
                dtype: self.dtype,
                shape: self.shape,
                expected,
                got,
            });
        }
        Ok(())
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&self.stream.code().to_le_bytes());
        b[8] = self.dtype as u8;
        b[9] = self.ndim;
        b[10] = self.plane;
        b[11] = self.channel;
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.t_ns.to_le_bytes());
        for (i, d) in self.shape.iter().enumerate() {
            b[32 + 4 * i..36 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        b[48..56].copy_from_slice(&self.aux.to_le_bytes());
        b[56..64].copy_from_slice(&self.sent_ns.to_le_bytes());
        b
    }

    /// Decode and check a header (not its payload: see [`Header::check_payload`]).
    pub fn decode(b: &[u8]) -> Result<Header, ProtocolError> {
        let b: &[u8; HEADER_LEN] = b
            .try_into()
            .map_err(|_| ProtocolError::HeaderLength(b.len()))?;
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(ProtocolError::BadMagic(magic));
        }
        let version = u16_at(4);
        if version != VERSION {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        let stream = Stream::from_code(u16_at(6)).ok_or(ProtocolError::UnknownStream(u16_at(6)))?;
        let dtype = Dtype::from_code(b[8]).ok_or(ProtocolError::UnknownDtype(b[8]))?;
        let ndim = b[9];
        if ndim > 4 {
            return Err(ProtocolError::Ndim(ndim));
        }
        if !stream.allows(dtype) {
            return Err(ProtocolError::DtypeNotAllowed { stream, dtype });
        }
        Ok(Header {
            stream,
            dtype,
            ndim,
            plane: b[10],
            channel: b[11],
            flags: u32_at(12),
            seq: u64_at(16),
            t_ns: u64_at(24) as i64,
            shape: [u32_at(32), u32_at(36), u32_at(40), u32_at(44)],
            aux: u64_at(48) as i64,
            sent_ns: u64_at(56) as i64,
        })
    }
}
