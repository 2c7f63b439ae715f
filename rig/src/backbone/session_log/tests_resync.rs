//! Damage in the middle of a log, read past: every byte of a small log flipped
//! in turn, zeroed blocks, a record cut out, a version 1 log, and a session
//! whose `manifest.json` is lost. Each damaged log is compared with a model:
//! which records the damage touched, and so which must be lost.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{FILE_HEADER_LEN, encode_record_header_v1};
use super::tests::{
    END, Rng, assert_prefix, read_log, sample_records, truncated, with_end, write_log,
};
use super::*;

/// Every record read back must be one of `records`, identical, at its offset
/// and index; returns the indices read.
fn indices_read(read: &[Record], records: &[(u16, Vec<u8>)], offsets: &[u64]) -> Vec<usize> {
    read.iter()
        .map(|r| {
            let i = r.info.index as usize;
            assert_eq!(r.info.offset, offsets[i], "offset of record {i}");
            assert_eq!(r.info.kind, records[i].0, "kind of record {i}");
            assert_eq!(r.payload, records[i].1, "payload of record {i}");
            i
        })
        .collect()
}

/// Record `i`'s byte range.
fn span(offsets: &[u64], records: &[(u16, Vec<u8>)], i: usize) -> (u64, u64) {
    (
        offsets[i],
        offsets[i] + (RECORD_HEADER_LEN + records[i].1.len()) as u64,
    )
}

#[test]
fn every_byte_flipped_in_turn_loses_exactly_the_record_it_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    // A few dozen records of 0 to 200 bytes, and one over the writer's 4 KiB buffer.
    let mut records = sample_records(40, 11);
    for record in &mut records {
        record.1.truncate(200);
    }
    records[20].1 = Rng(12).bytes(4200);
    let records = with_end(records);
    let (offsets, len) = write_log(&path, &records);
    let clean = fs::read(&path).unwrap();
    let owner = |byte: u64| {
        (0..records.len())
            .find(|&i| {
                let (start, end) = span(&offsets, &records, i);
                (start..end).contains(&byte)
            })
            .unwrap()
    };
    // One file, each byte flipped in place and restored after reading.
    let flipped = dir.path().join("flipped.log");
    fs::write(&flipped, &clean).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&flipped).unwrap();
    let mut rng = Rng(13);
    for byte in FILE_HEADER_LEN as u64..len {
        let hit = owner(byte);
        // Every bit of the byte, or a random pattern, in turn.
        let mask = if byte % 2 == 0 {
            0xFF
        } else {
            1 + rng.below(255) as u8
        };
        file.write_all_at(&[clean[byte as usize] ^ mask], byte)
            .unwrap();
        let all = LogReader::open(&flipped).unwrap().read_all().unwrap();
        file.write_all_at(&clean[byte as usize..byte as usize + 1], byte)
            .unwrap();
        let read = indices_read(&all.records, &records, &offsets);
        let expected: Vec<usize> = (0..records.len()).filter(|&i| i != hit).collect();
        assert_eq!(read, expected, "byte {byte} mask {mask:#04x}");
        if hit + 1 == records.len() {
            // The end record itself: nothing valid follows, so it is the tail.
            let (offset, before, _, _) = truncated(&all.tail);
            assert_eq!((offset, before), (offsets[hit], hit as u64), "byte {byte}");
            assert!(all.damage.is_empty(), "byte {byte}: {:?}", all.damage);
        } else {
            assert_eq!(all.tail, TailState::Clean, "byte {byte} mask {mask:#04x}");
            let [damage] = all.damage[..] else {
                panic!("byte {byte} mask {mask:#04x}: {:?}", all.damage);
            };
            let expected = (offsets[hit], offsets[hit + 1], hit as u64, 1);
            let found = (
                damage.start,
                damage.end,
                damage.first_lost,
                damage.records_lost,
            );
            assert_eq!(found, expected, "byte {byte} mask {mask:#04x}");
        }
    }

    // The file header is not a record: damage to it is named, never misread.
    for byte in 0..FILE_HEADER_LEN {
        let mut bytes = clean.clone();
        bytes[byte] ^= 0xFF;
        fs::write(&flipped, &bytes).unwrap();
        match LogReader::open(&flipped) {
            Err(LogError::NotALog { .. }) if byte < 8 => {}
            Err(LogError::UnsupportedVersion { .. }) if (8..12).contains(&byte) => {}
            Ok(reader) if byte >= 12 => {
                // Reserved bytes: unused, so every record still reads.
                let (read, tail) = reader.read_to_end().unwrap();
                assert_eq!((read.len(), tail), (records.len(), TailState::Clean));
            }
            other => panic!("header byte {byte}: {other:?}"),
        }
    }
}

#[test]
fn a_zeroed_block_loses_only_the_records_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(sample_records(3000, 21));
    let (offsets, len) = write_log(&path, &records);
    let clean = fs::read(&path).unwrap();
    let zeroed = dir.path().join("zeroed.log");
    let mut rng = Rng(22);
    const BLOCK: u64 = 4096;
    for _ in 0..40 {
        // A 4 KiB block at a page boundary, as a lost page of storage would be.
        let start = (FILE_HEADER_LEN as u64 + rng.below(len - BLOCK - 64)) / BLOCK * BLOCK;
        let start = start.max(BLOCK);
        let end = start + BLOCK;
        let mut bytes = clean.clone();
        bytes[start as usize..end as usize].fill(0);
        fs::write(&zeroed, &bytes).unwrap();

        let touched: Vec<usize> = (0..records.len())
            .filter(|&i| {
                let (a, b) = span(&offsets, &records, i);
                a < end && start < b
            })
            .collect();
        let all = LogReader::open(&zeroed).unwrap().read_all().unwrap();
        let read = indices_read(&all.records, &records, &offsets);
        let expected: Vec<usize> = (0..records.len())
            .filter(|i| !touched.contains(i))
            .collect();
        assert_eq!(read, expected, "block at {start}");
        let first = touched[0];
        let last = *touched.last().unwrap();
        if last + 1 < records.len() {
            let [damage] = all.damage[..] else {
                panic!("block at {start}: {:?}", all.damage);
            };
            let found = (
                damage.start,
                damage.end,
                damage.first_lost,
                damage.records_lost,
            );
            let expected = (
                offsets[first],
                offsets[last + 1],
                first as u64,
                touched.len() as u64,
            );
            assert_eq!(found, expected, "block at {start}");
            assert_eq!(all.tail, TailState::Clean);
        }
    }
}

#[test]
fn a_record_cut_out_whole_is_counted_from_the_indices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(sample_records(50, 31));
    let (offsets, _) = write_log(&path, &records);
    let mut bytes = fs::read(&path).unwrap();
    // Records 10..13 vanish without a damaged byte: only their indices tell.
    bytes.drain(offsets[10] as usize..offsets[13] as usize);
    fs::write(&path, &bytes).unwrap();
    let all = LogReader::open(&path).unwrap().read_all().unwrap();
    assert_eq!(all.records.len(), records.len() - 3);
    assert_eq!(all.records[10].info.index, 13);
    let [damage] = all.damage[..] else {
        panic!("{:?}", all.damage)
    };
    assert_eq!((damage.start, damage.end), (offsets[10], offsets[10]));
    assert_eq!((damage.first_lost, damage.records_lost), (10, 3));
    assert!(
        damage.to_string().contains("3 records lost (10..=12)"),
        "{damage}"
    );
}

/// Writes a format version 1 log: no sync marker, no index.
fn write_v1(path: &Path, records: &[(u16, Vec<u8>)]) -> Vec<u64> {
    let mut bytes = b"TWLPLOG\0".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    let mut offsets = Vec::new();
    for (kind, payload) in records {
        offsets.push(bytes.len() as u64);
        let header = encode_record_header_v1(payload.len() as u32, *kind, 0, &[payload]);
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(payload);
    }
    fs::write(path, &bytes).unwrap();
    offsets
}

#[test]
fn a_version_1_log_still_reads_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = sample_records(200, 41);
    let offsets = write_v1(&path, &records);
    let reader = LogReader::open(&path).unwrap();
    assert_eq!(reader.format_version(), 1);
    let (read, tail) = reader.read_to_end().unwrap();
    // Version 1 had no end record: a log that ends between records is clean.
    assert_eq!(tail, TailState::Clean);
    assert_eq!(read.len(), records.len());
    assert_prefix(&read, &records, &offsets);

    // And it still stops at the first bad record: it has no marker to resynchronise on.
    let mut bytes = fs::read(&path).unwrap();
    bytes[offsets[100] as usize + 5] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let (read, tail) = read_log(&path);
    assert_eq!(read.len(), 100);
    let (offset, before, _, _) = truncated(&tail);
    assert_eq!((offset, before), (offsets[100], 100));
}

#[test]
fn a_lost_manifest_is_read_from_the_log() {
    use std::time::{Duration, UNIX_EPOCH};
    let root = tempfile::tempdir().unwrap();
    let created = UNIX_EPOCH + Duration::from_secs(1_795_902_003);
    let session = SessionDir::create(root.path(), "sim", created).unwrap();
    let mut manifest = Manifest::new(
        created,
        vec!["twinloop".into()],
        serde_json::json!({"a": 1}),
    );
    manifest.seeds.insert("sim".into(), 7);
    session.write_manifest(&manifest).unwrap();
    let mut log = session.create_log_with_manifest(&manifest).unwrap();
    log.append(1, b"frame").unwrap();
    log.append(END, b"{}").unwrap();
    log.finish().unwrap();

    let file = session.manifest_path();
    for (what, contents) in [
        ("empty", Some(&b""[..])),
        ("garbage", Some(b"{ no")),
        ("deleted", None),
    ] {
        match contents {
            Some(bytes) => fs::write(&file, bytes).unwrap(),
            None => fs::remove_file(&file).unwrap(),
        }
        let dir = SessionDir::open(session.path()).unwrap();
        assert!(dir.read_manifest_file().is_err(), "{what}");
        assert_eq!(dir.read_manifest().unwrap(), manifest, "{what}");
    }

    // With neither, the error names both.
    fs::write(session.records_log_path(), b"").unwrap();
    let err = SessionDir::open(session.path())
        .unwrap()
        .read_manifest()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no usable manifest") && text.contains("records.log"),
        "{text}"
    );
}

#[test]
fn the_summary_says_how_many_records_a_cut_short_log_should_hold() {
    use std::time::UNIX_EPOCH;
    let root = tempfile::tempdir().unwrap();
    let session = SessionDir::create(root.path(), "", UNIX_EPOCH).unwrap();
    assert_eq!(session.expected_records(), None);
    fs::write(session.summary_path(), br#"{"log_records": 1234}"#).unwrap();
    assert_eq!(session.expected_records(), Some(1234));
}

#[test]
fn mangled_logs_never_panic_and_never_return_a_record_that_was_not_written() {
    // The fuzz target's property (fuzz/fuzz_targets/log_reader.rs), on seeded
    // mutations: overwritten runs, inserted and deleted bytes, cuts.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.log");
    let records = with_end(sample_records(60, 51));
    write_log(&path, &records);
    let clean = fs::read(&path).unwrap();
    let mangled = dir.path().join("mangled.log");
    let mut rng = Rng(52);
    for round in 0..400 {
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(4) {
            if bytes.len() <= FILE_HEADER_LEN {
                break;
            }
            let at = FILE_HEADER_LEN + rng.below((bytes.len() - FILE_HEADER_LEN) as u64) as usize;
            let run = 1 + rng.below(64) as usize;
            let end = (at + run).min(bytes.len());
            match rng.below(4) {
                0 => bytes[at..end]
                    .iter_mut()
                    .for_each(|b| *b = rng.next() as u8),
                1 => {
                    let junk = rng.bytes(run);
                    bytes.splice(at..at, junk);
                }
                2 => {
                    bytes.drain(at..end);
                }
                _ => bytes.truncate(at),
            }
        }
        fs::write(&mangled, &bytes).unwrap();
        let all = LogReader::open(&mangled).unwrap().read_all().unwrap();
        for r in &all.records {
            let i = r.info.index as usize;
            assert!(i < records.len(), "round {round}: index {i}");
            assert_eq!(
                (r.info.kind, &r.payload),
                (records[i].0, &records[i].1),
                "round {round}: record {i}"
            );
        }
        let lost: u64 = all.damage.iter().map(|d| d.records_lost).sum();
        assert!(
            all.records.len() as u64 + lost <= records.len() as u64,
            "round {round}"
        );
    }
}
