//! The bytes of `records.log`: file header, record headers (both versions), checksum, limits.
//!
//! Only this file knows offsets and widths; the writer and reader call its
//! encode and decode functions, so the layout described in the module docs
//! has a single implementation.

/// First eight bytes of every record log. Deliberately not valid text in the
/// middle (`\0`) so a log is never mistaken for a JSON or TOML file and vice
/// versa.
pub const MAGIC: [u8; 8] = *b"TWLPLOG\0";

/// Version of the record log layout written by this code. Readers accept any
/// version up to and including this one; a larger one means the log was
/// written by a newer twinloop.
pub const LOG_FORMAT_VERSION: u32 = 2;

/// Bytes before the first record: magic (8), format version (u32 LE), reserved (u32, zero).
pub const FILE_HEADER_LEN: usize = 16;

/// Version 2 record header: sync (4), len (u32), kind (u16), flags (u16), index (u32), crc32 (u32).
pub const RECORD_HEADER_LEN: usize = 20;

/// Version 1 record header: len (u32), kind (u16), flags (u16), crc32 (u32).
pub const RECORD_HEADER_LEN_V1: usize = 12;

/// The marker that starts every version 2 record, so a reader that lost its
/// place can find the next record. `0xF9` and `0xFD` never occur in UTF-8 (the
/// JSON payloads), and as the high byte of a little-endian f32 they would be a
/// negative value near -1e35 (the float payloads): the pattern is rare in
/// everything the daemon logs, and the checksum rejects the rare false start.
pub const SYNC: [u8; 4] = [0xF9, 0x54, 0x4C, 0xFD];

/// Largest payload a record may carry (256 MiB). The reader refuses longer
/// lengths before allocating, so a corrupt length field costs nothing.
pub const MAX_PAYLOAD_BYTES: u32 = 256 * 1024 * 1024;

/// The part of a version 1 record header covered by the checksum: len, kind, flags.
const CHECKED_HEADER_LEN_V1: usize = 8;

/// The part of a version 2 record header covered by the checksum: everything before it.
const CHECKED_HEADER_LEN: usize = 16;

/// Encodes the file header written once at offset 0.
pub fn encode_file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
    // Bytes 12..16 stay zero: reserved for a later version.
    header
}

/// What a file header says, before the reader decides whether it can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHeader {
    /// The magic matched; this is the format version found.
    Log { version: u32 },
    /// The first eight bytes are not [`MAGIC`].
    WrongMagic { found: [u8; 8] },
}

/// Decodes a complete file header.
pub fn decode_file_header(bytes: &[u8; FILE_HEADER_LEN]) -> FileHeader {
    let mut found = [0u8; 8];
    found.copy_from_slice(&bytes[0..8]);
    if found != MAGIC {
        return FileHeader::WrongMagic { found };
    }
    FileHeader::Log {
        version: u32_at(bytes, 8),
    }
}

/// A decoded record header of either version; the checksum is not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The sync marker as found (version 2; always [`SYNC`] for version 1).
    pub sync: [u8; 4],
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    /// The low 32 bits of the record's index in the log (version 2; 0 for version 1).
    pub index: u32,
    pub crc: u32,
}

/// Encodes a version 2 record header, computing the CRC over everything before
/// it and the payload given in parts. The parts are hashed where they lie, so a
/// record assembled from several buffers is never concatenated.
pub fn encode_record_header(
    len: u32,
    kind: u16,
    flags: u16,
    index: u32,
    parts: &[&[u8]],
) -> [u8; RECORD_HEADER_LEN] {
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[0..4].copy_from_slice(&SYNC);
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..10].copy_from_slice(&kind.to_le_bytes());
    header[10..12].copy_from_slice(&flags.to_le_bytes());
    header[12..16].copy_from_slice(&index.to_le_bytes());
    let crc = crc_of(&header[..CHECKED_HEADER_LEN], parts);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a complete version 2 record header.
pub fn decode_record_header(bytes: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
    RecordHeader {
        sync: [bytes[0], bytes[1], bytes[2], bytes[3]],
        len: u32_at(bytes, 4),
        kind: u16::from_le_bytes([bytes[8], bytes[9]]),
        flags: u16::from_le_bytes([bytes[10], bytes[11]]),
        index: u32_at(bytes, 12),
        crc: u32_at(bytes, 16),
    }
}

/// CRC-32 (IEEE) of a version 2 record: its header up to the checksum (sync,
/// len, kind, flags, index, as stored), then the payload parts in order.
/// Covering the header means a flipped bit in the length is caught, not only
/// one in the payload.
pub fn record_crc(header: &[u8; RECORD_HEADER_LEN], parts: &[&[u8]]) -> u32 {
    crc_of(&header[..CHECKED_HEADER_LEN], parts)
}

/// Encodes a version 1 record header (kept so tests can build the logs older
/// sessions hold; the writer only writes version 2).
#[cfg(test)]
pub fn encode_record_header_v1(
    len: u32,
    kind: u16,
    flags: u16,
    parts: &[&[u8]],
) -> [u8; RECORD_HEADER_LEN_V1] {
    let mut header = [0u8; RECORD_HEADER_LEN_V1];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..6].copy_from_slice(&kind.to_le_bytes());
    header[6..8].copy_from_slice(&flags.to_le_bytes());
    let crc = record_crc_v1(&header, parts);
    header[8..12].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a complete version 1 record header.
pub fn decode_record_header_v1(bytes: &[u8; RECORD_HEADER_LEN_V1]) -> RecordHeader {
    RecordHeader {
        sync: SYNC,
        len: u32_at(bytes, 0),
        kind: u16::from_le_bytes([bytes[4], bytes[5]]),
        flags: u16::from_le_bytes([bytes[6], bytes[7]]),
        index: 0,
        crc: u32_at(bytes, 8),
    }
}

/// CRC-32 (IEEE) of a version 1 record: len, kind, flags as stored, then the payload.
pub fn record_crc_v1(header: &[u8; RECORD_HEADER_LEN_V1], parts: &[&[u8]]) -> u32 {
    crc_of(&header[..CHECKED_HEADER_LEN_V1], parts)
}

fn crc_of(checked_header: &[u8], parts: &[&[u8]]) -> u32 {
    // `Hasher` lives on the stack; hashing incrementally is what keeps the
    // append path free of allocation.
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(checked_header);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Renders bytes for an error message: printable ASCII as is, the rest as
/// `\xNN`, so a wrong magic is readable whether it is text or binary.
pub fn escape_bytes(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_round_trips_and_is_little_endian() {
        let header = encode_file_header();
        assert_eq!(&header[0..8], b"TWLPLOG\0");
        assert_eq!(&header[8..12], &[2, 0, 0, 0]);
        assert_eq!(&header[12..16], &[0, 0, 0, 0]);
        assert_eq!(
            decode_file_header(&header),
            FileHeader::Log {
                version: LOG_FORMAT_VERSION
            }
        );
    }

    #[test]
    fn wrong_magic_is_reported_with_the_bytes_found() {
        let mut header = encode_file_header();
        header[0] = b'X';
        assert_eq!(
            decode_file_header(&header),
            FileHeader::WrongMagic {
                found: *b"XWLPLOG\0"
            }
        );
        assert_eq!(escape_bytes(b"XWLPLOG\0"), "XWLPLOG\\x00");
    }

    #[test]
    fn record_header_layout_is_fixed() {
        let header = encode_record_header(0x0102_0304, 0x0506, 0x0708, 0x090a_0b0c, &[b"ab", b"c"]);
        assert_eq!(&header[0..4], &SYNC);
        assert_eq!(&header[4..16], &[4, 3, 2, 1, 6, 5, 8, 7, 12, 11, 10, 9]);
        let decoded = decode_record_header(&header);
        assert_eq!(decoded.sync, SYNC);
        assert_eq!(decoded.len, 0x0102_0304);
        assert_eq!(decoded.kind, 0x0506);
        assert_eq!(decoded.flags, 0x0708);
        assert_eq!(decoded.index, 0x090a_0b0c);
        // Splitting the payload differently must not change the checksum.
        assert_eq!(decoded.crc, record_crc(&header, &[b"abc"]));
        assert_eq!(decoded.crc, record_crc(&header, &[b"a", b"", b"bc"]));
    }

    #[test]
    fn v1_record_header_layout_is_unchanged() {
        let header = encode_record_header_v1(0x0102_0304, 0x0506, 0x0708, &[b"ab", b"c"]);
        assert_eq!(&header[0..8], &[4, 3, 2, 1, 6, 5, 8, 7]);
        let decoded = decode_record_header_v1(&header);
        assert_eq!(
            (decoded.len, decoded.kind, decoded.flags),
            (0x0102_0304, 0x0506, 0x0708)
        );
        assert_eq!(decoded.crc, record_crc_v1(&header, &[b"abc"]));
    }

    #[test]
    fn checksum_covers_every_header_field() {
        let base = encode_record_header(3, 1, 0, 7, &[b"abc"]);
        let crc = decode_record_header(&base).crc;
        for byte in 0..CHECKED_HEADER_LEN {
            let mut flipped = base;
            flipped[byte] ^= 0x01;
            assert_ne!(record_crc(&flipped, &[b"abc"]), crc, "byte {byte}");
        }
    }

    #[test]
    fn an_all_zero_header_never_checks_out() {
        // A power loss can leave a zero-filled tail; it must read as corrupt.
        let zeros = [0u8; RECORD_HEADER_LEN];
        assert_ne!(record_crc(&zeros, &[]), 0);
        assert_ne!(decode_record_header(&zeros).sync, SYNC);
        assert_ne!(record_crc_v1(&[0u8; RECORD_HEADER_LEN_V1], &[]), 0);
    }
}
