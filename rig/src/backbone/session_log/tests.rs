//! Writer and reader together, on real files: round trips, and every way a
//! log can end badly (cut at each byte, flipped bits, corrupt lengths, files
//! that are not logs). Each damaged log is compared with what a model of the
//! format says must come back. Damage in the middle of a log, read past by
//! resynchronisation, is in `tests_resync`.

use std::fs;
use std::path::Path;

use super::*;

/// Deterministic pseudo-random numbers (splitmix64), so failures reproduce.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Varied records: mostly small, some empty, a few larger than the writer's buffer.
pub(super) fn sample_records(count: usize, seed: u64) -> Vec<(u16, Vec<u8>)> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let len = match rng.below(100) {
                0..=4 => 0,
                5..=7 => 4096 + rng.below(60_000) as usize,
                _ => rng.below(300) as usize,
            };
            (rng.below(u64::from(u16::MAX) + 1) as u16, rng.bytes(len))
        })
        .collect()
}

/// The session's end record, appended last so a log reads as clean.
pub(super) const END: u16 = crate::vocab::records::RecordKind::End as u16;

/// `records` followed by an end record.
pub(super) fn with_end(mut records: Vec<(u16, Vec<u8>)>) -> Vec<(u16, Vec<u8>)> {
    records.push((END, b"{}".to_vec()));
    records
}

/// Writes `records` (alternating `append` and split `append_parts`) and
/// returns each record's offset and the file length.
pub(super) fn write_log(path: &Path, records: &[(u16, Vec<u8>)]) -> (Vec<u64>, u64) {
    let mut writer = LogWriter::create_with_buffer(path, 4096).unwrap();
    let offsets = records
        .iter()
        .enumerate()
        .map(|(i, (kind, payload))| {
            if i % 2 == 0 {
                writer.append(*kind, payload).unwrap()
            } else {
                let (a, b) = payload.split_at(payload.len() / 3);
                writer.append_parts(*kind, &[a, &[], b]).unwrap()
            }
        })
        .collect();
    let stats = writer.finish().unwrap();
    assert_eq!(stats.records, records.len() as u64);
    (offsets, stats.bytes)
}

pub(super) fn read_log(path: &Path) -> (Vec<Record>, TailState) {
    LogReader::open(path).unwrap().read_to_end().unwrap()
}

pub(super) fn assert_prefix(read: &[Record], expected: &[(u16, Vec<u8>)], offsets: &[u64]) {
    assert!(read.len() <= expected.len());
    for (i, record) in read.iter().enumerate() {
        assert_eq!(record.info.index, i as u64);
        assert_eq!(record.info.offset, offsets[i], "offset of record {i}");
        assert_eq!(record.info.kind, expected[i].0, "kind of record {i}");
        assert_eq!(record.info.flags, 0);
        assert_eq!(record.info.len as usize, expected[i].1.len());
        assert_eq!(record.payload, expected[i].1, "payload of record {i}");
    }
}

pub(super) fn truncated(tail: &TailState) -> (u64, u64, u64, TruncationReason) {
    match tail {
        TailState::Truncated {
            offset,
            records_before,
            bytes_after,
            reason,
        } => (*offset, *records_before, *bytes_after, *reason),
        other => panic!("expected a truncated tail, got {other}"),
    }
}

#[test]
fn thousands_of_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(sample_records(5000, 1));
    let (offsets, len) = write_log(&path, &records);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);

    let (read, tail) = read_log(&path);
    assert_eq!(tail, TailState::Clean);
    assert_eq!(read.len(), records.len());
    assert_prefix(&read, &records, &offsets);

    // The buffer-reusing path gives the same records.
    let mut reader = LogReader::open(&path).unwrap();
    assert_eq!(reader.format_version(), LOG_FORMAT_VERSION);
    assert_eq!(reader.tail(), None);
    let mut payload = Vec::new();
    let mut i = 0;
    while let Some(info) = reader.next_into(&mut payload).unwrap() {
        assert_eq!(info, read[i].info);
        assert_eq!(payload, records[i].1);
        i += 1;
    }
    assert_eq!(i, records.len());
    assert_eq!(reader.tail(), Some(&TailState::Clean));
    assert_eq!(reader.offset(), len);
    // The end is sticky.
    assert_eq!(reader.next_into(&mut payload).unwrap(), None);
    assert!(payload.is_empty());
}

#[test]
fn next_into_reuses_the_callers_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let mut records = vec![(1, vec![9u8; 10_000])];
    records.extend(
        sample_records(200, 2)
            .into_iter()
            .filter(|r| r.1.len() < 10_000),
    );
    write_log(&path, &records);

    let mut reader = LogReader::open(&path).unwrap();
    let mut payload = Vec::new();
    reader.next_into(&mut payload).unwrap().unwrap();
    let (ptr, capacity) = (payload.as_ptr(), payload.capacity());
    while reader.next_into(&mut payload).unwrap().is_some() {
        assert_eq!((payload.as_ptr(), payload.capacity()), (ptr, capacity));
    }
}

#[test]
fn a_cut_anywhere_inside_the_last_record_keeps_all_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let mut records = sample_records(30, 3);
    records.push((7, (0..40).collect()));
    let (offsets, len) = write_log(&path, &records);
    let bytes = fs::read(&path).unwrap();
    let last = *offsets.last().unwrap();
    let cut_path = dir.path().join("cut.log");

    for cut in last..len {
        fs::write(&cut_path, &bytes[..cut as usize]).unwrap();
        let (read, tail) = read_log(&cut_path);
        assert_eq!(read.len(), records.len() - 1, "cut at {cut}");
        assert_prefix(&read, &records, &offsets);
        let have = cut - last;
        if have == 0 {
            // Cut exactly between records: nothing is damaged, but the end record is missing.
            assert_eq!(tail, TailState::CutShort { records: 30 }, "cut at {cut}");
            continue;
        }
        let (offset, records_before, bytes_after, reason) = truncated(&tail);
        assert_eq!((offset, records_before, bytes_after), (last, 30, have));
        let expected = if have < RECORD_HEADER_LEN as u64 {
            TruncationReason::IncompleteHeader { have: have as u32 }
        } else {
            TruncationReason::IncompletePayload {
                len: 40,
                have: have - RECORD_HEADER_LEN as u64,
            }
        };
        assert_eq!(reason, expected, "cut at {cut}");
        let text = tail.to_string();
        let word = if have < RECORD_HEADER_LEN as u64 {
            "incomplete header"
        } else {
            "incomplete payload"
        };
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn every_prefix_of_a_log_reads_as_its_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = sample_records(40, 4)
        .into_iter()
        .map(|(kind, payload)| (kind, payload[..payload.len().min(50)].to_vec()))
        .collect::<Vec<_>>();
    let (offsets, len) = write_log(&path, &records);
    let bytes = fs::read(&path).unwrap();
    let cut_path = dir.path().join("cut.log");

    for cut in FILE_HEADER_LEN as u64..=len {
        fs::write(&cut_path, &bytes[..cut as usize]).unwrap();
        // The model: a record is there iff it ends at or before the cut.
        let complete = (0..records.len())
            .filter(|&i| offsets[i] + RECORD_HEADER_LEN as u64 + records[i].1.len() as u64 <= cut)
            .count();
        let (read, tail) = read_log(&cut_path);
        assert_eq!(read.len(), complete, "cut at {cut}");
        assert_prefix(&read, &records, &offsets);
        let boundary = offsets.get(complete).copied().unwrap_or(len);
        if cut == boundary {
            // A cut at a record boundary loses no byte of a record, yet the
            // session's end record is not there: the log says it was cut short.
            let records = complete as u64;
            assert_eq!(tail, TailState::CutShort { records }, "cut at {cut}");
            assert!(tail.to_string().contains("cut short"), "{tail}");
        } else {
            let (offset, before, after, _) = truncated(&tail);
            assert_eq!(
                (offset, before, after),
                (boundary, complete as u64, cut - boundary)
            );
        }
    }
}

#[test]
fn a_flipped_bit_in_a_middle_payload_loses_that_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let mut records = with_end(sample_records(100, 5));
    records[50].1 = b"the payload of record fifty".to_vec();
    let (offsets, _) = write_log(&path, &records);
    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[50] as usize + RECORD_HEADER_LEN + 4] ^= 0x10;
    fs::write(&path, &bytes).unwrap();

    let all = LogReader::open(&path).unwrap().read_all().unwrap();
    assert_eq!(all.tail, TailState::Clean);
    assert_eq!(all.records.len(), records.len() - 1);
    assert_prefix(&all.records[..50], &records, &offsets);
    for (record, i) in all.records[50..].iter().zip(51..) {
        assert_eq!(
            (record.info.index, record.info.offset),
            (i as u64, offsets[i])
        );
        assert_eq!(record.payload, records[i].1, "record {i}");
    }
    let [damage] = all.damage[..] else {
        panic!("one damaged range: {:?}", all.damage)
    };
    assert_eq!(
        (
            damage.start,
            damage.end,
            damage.first_lost,
            damage.records_lost
        ),
        (offsets[50], offsets[51], 50, 1)
    );
    assert!(
        matches!(damage.reason, TruncationReason::ChecksumMismatch { .. }),
        "{damage}"
    );
    let text = damage.to_string();
    assert!(
        text.contains("checksum mismatch") && text.contains("record 50 lost"),
        "{text}"
    );
}

#[test]
fn any_single_bit_flip_in_a_record_loses_that_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(vec![
        (1, vec![1u8; 20]),
        (2, vec![2u8; 20]),
        (3, vec![3u8; 20]),
    ]);
    let (offsets, _) = write_log(&path, &records);
    let clean = fs::read(&path).unwrap();
    let start = offsets[1] as usize;
    for byte in start..offsets[2] as usize {
        for bit in 0..8 {
            let mut bytes = clean.clone();
            bytes[byte] ^= 1 << bit;
            fs::write(&path, &bytes).unwrap();
            let all = LogReader::open(&path).unwrap().read_all().unwrap();
            let kinds: Vec<u16> = all.records.iter().map(|r| r.info.kind).collect();
            assert_eq!(kinds, [1, 3, END], "byte {byte} bit {bit}");
            assert_eq!(all.tail, TailState::Clean, "byte {byte} bit {bit}");
            let ranges: Vec<_> = all
                .damage
                .iter()
                .map(|d| (d.start, d.end, d.records_lost))
                .collect();
            assert_eq!(
                ranges,
                [(offsets[1], offsets[2], 1)],
                "byte {byte} bit {bit}"
            );
        }
    }
}

#[test]
fn a_corrupt_length_allocates_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(sample_records(10, 6));
    let (offsets, _) = write_log(&path, &records);
    let clean = fs::read(&path).unwrap();
    // The length field follows the four-byte sync marker.
    let at = offsets[3] as usize + 4;

    // Over the maximum: refused outright, and the records after it still read.
    let mut bytes = clean.clone();
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let mut reader = LogReader::open(&path).unwrap();
    let mut payload = Vec::new();
    let mut read = 0;
    while reader.next_into(&mut payload).unwrap().is_some() {
        read += 1;
    }
    assert_eq!(read, records.len() - 1);
    assert!(payload.capacity() < 1 << 20, "{}", payload.capacity());
    assert_eq!(reader.tail(), Some(&TailState::Clean));
    let damage = reader.damage()[0];
    assert_eq!(
        (damage.start, damage.end, damage.records_lost),
        (offsets[3], offsets[4], 1)
    );
    assert_eq!(
        damage.reason,
        TruncationReason::LengthOverMax {
            len: 0xFFFF_FFF0,
            max: MAX_PAYLOAD_BYTES
        }
    );
    assert!(
        damage.to_string().contains("length over the max"),
        "{damage}"
    );

    // Allowed but past the end of the file: incomplete, still no allocation.
    bytes[at..at + 4].copy_from_slice(&MAX_PAYLOAD_BYTES.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let mut reader = LogReader::open(&path).unwrap();
    let mut payload = Vec::new();
    while reader.next_into(&mut payload).unwrap().is_some() {}
    assert!(payload.capacity() < 1 << 20, "{}", payload.capacity());
    assert_eq!(reader.records_read(), records.len() as u64 - 1);
    let reason = reader.damage()[0].reason;
    assert!(
        matches!(reason, TruncationReason::IncompletePayload { len, .. } if len == MAX_PAYLOAD_BYTES),
        "{reason}"
    );
}

#[test]
fn files_that_are_not_logs_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        LogReader::open(&path).unwrap_err()
    };

    let err = open("random.bin", &Rng(7).bytes(1000));
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("random.bin") && text.contains("wrong magic"),
        "{text}"
    );
    assert!(text.contains("expected \"TWLPLOG\\x00\""), "{text}");

    let err = open("notes.txt", b"hello, this is plain text\n");
    assert!(err.to_string().contains("found \"hello, t\""), "{err}");

    let err = open("empty.log", b"");
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");

    let err = open("short.log", b"TWLPL");
    assert!(
        err.to_string().contains("shorter than the 16-byte header"),
        "{err}"
    );

    let mut newer = format::encode_file_header();
    newer[8] = 3;
    let err = open("newer.log", &newer);
    assert!(
        matches!(
            err,
            LogError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer.log"), "{err}");

    let err = LogReader::open(dir.path().join("absent.log")).unwrap_err();
    assert!(matches!(err, LogError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("absent.log"), "{err}");
}

#[test]
fn a_log_with_only_its_header_is_empty_and_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    LogWriter::create(&path).unwrap().finish().unwrap();
    let (read, tail) = read_log(&path);
    assert!(read.is_empty());
    assert_eq!(tail, TailState::CutShort { records: 0 });
}

#[test]
fn dropping_a_writer_keeps_what_it_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let mut writer = LogWriter::create(&path).unwrap();
    writer.append(1, b"one").unwrap();
    writer.append(2, b"two").unwrap();
    drop(writer);
    let (read, tail) = read_log(&path);
    assert_eq!(read.len(), 2);
    assert_eq!(tail, TailState::CutShort { records: 2 });
}

#[test]
fn a_session_end_to_end() {
    use std::time::{Duration, UNIX_EPOCH};
    let root = tempfile::tempdir().unwrap();
    let created = UNIX_EPOCH + Duration::from_secs(1_795_902_003);
    let session = SessionDir::create(root.path(), "sim", created).unwrap();
    let mut manifest = Manifest::new(created, vec!["twinloop".into()], serde_json::json!({}));
    manifest.seeds.insert("sim".into(), 42);
    session.write_manifest(&manifest).unwrap();
    let mut log = session.create_log_with_manifest(&manifest).unwrap();
    log.append(1, b"frame").unwrap();
    log.append(END, b"{}").unwrap();
    log.finish().unwrap();
    // A second writer on the same session is refused.
    assert!(matches!(
        session.create_log(),
        Err(LogError::AlreadyExists { .. })
    ));

    let replay = SessionDir::open(session.path()).unwrap();
    assert_eq!(replay.read_manifest().unwrap().seeds["sim"], 42);
    let (read, tail) = replay.open_log().unwrap().read_to_end().unwrap();
    assert_eq!(
        read[0].info.kind,
        crate::vocab::records::RecordKind::Manifest as u16
    );
    assert_eq!(read[1].payload, b"frame");
    assert!(tail.is_clean());
}
