//! The bytes of `records.log`: file header, record header, checksum, limits.
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
pub const LOG_FORMAT_VERSION: u32 = 1;

/// Bytes before the first record: magic (8), format version (u32 LE), reserved (u32, zero).
pub const FILE_HEADER_LEN: usize = 16;

/// Bytes before each payload: len (u32 LE), kind (u16 LE), flags (u16 LE), crc32 (u32 LE).
pub const RECORD_HEADER_LEN: usize = 12;

/// Largest payload a record may carry (256 MiB). The reader refuses longer
/// lengths before allocating, so a corrupt length field costs nothing.
pub const MAX_PAYLOAD_BYTES: u32 = 256 * 1024 * 1024;

/// The part of the record header covered by the checksum: len, kind, flags.
const CHECKED_HEADER_LEN: usize = 8;

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

/// A decoded record header; the checksum is not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub crc: u32,
}

/// Encodes a record header, computing the CRC over len, kind, flags and the
/// payload given in parts. The parts are hashed where they lie, so a record
/// assembled from several buffers is never concatenated.
pub fn encode_record_header(
    len: u32,
    kind: u16,
    flags: u16,
    parts: &[&[u8]],
) -> [u8; RECORD_HEADER_LEN] {
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..6].copy_from_slice(&kind.to_le_bytes());
    header[6..8].copy_from_slice(&flags.to_le_bytes());
    let crc = record_crc(&header, parts);
    header[8..12].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a complete record header.
pub fn decode_record_header(bytes: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
    RecordHeader {
        len: u32_at(bytes, 0),
        kind: u16::from_le_bytes([bytes[4], bytes[5]]),
        flags: u16::from_le_bytes([bytes[6], bytes[7]]),
        crc: u32_at(bytes, 8),
    }
}

/// CRC-32 (IEEE) over the first eight header bytes (len, kind, flags, as
/// stored) followed by the payload parts in order. Covering the header means a
/// flipped bit in the length or kind is caught, not only one in the payload.
pub fn record_crc(header: &[u8; RECORD_HEADER_LEN], parts: &[&[u8]]) -> u32 {
    // `Hasher` lives on the stack; hashing incrementally is what keeps the
    // append path free of allocation.
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CHECKED_HEADER_LEN]);
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
        assert_eq!(&header[8..12], &[1, 0, 0, 0]);
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
        let header = encode_record_header(0x0102_0304, 0x0506, 0x0708, &[b"ab", b"c"]);
        assert_eq!(&header[0..8], &[4, 3, 2, 1, 6, 5, 8, 7]);
        let decoded = decode_record_header(&header);
        assert_eq!(decoded.len, 0x0102_0304);
        assert_eq!(decoded.kind, 0x0506);
        assert_eq!(decoded.flags, 0x0708);
        // Splitting the payload differently must not change the checksum.
        assert_eq!(decoded.crc, record_crc(&header, &[b"abc"]));
        assert_eq!(decoded.crc, record_crc(&header, &[b"a", b"", b"bc"]));
    }

    #[test]
    fn checksum_covers_every_header_field() {
        let base = encode_record_header(3, 1, 0, &[b"abc"]);
        let crc = decode_record_header(&base).crc;
        for byte in 0..8 {
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
    }
}
