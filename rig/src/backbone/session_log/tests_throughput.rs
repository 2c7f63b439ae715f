//! The reader's throughput on clean logs, version 1 against version 2, and
//! the size each version takes: a measurement for BENCHMARKS.md, not a check
//! (`cargo test -p twinloop-rig --release -- --ignored --nocapture log_reader_throughput`).

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::format::encode_record_header_v1;
use super::tests::Rng;
use super::*;

/// Records shaped like a session's: a 128 KiB frame every `frame_every`,
/// otherwise 40 to 1000 bytes (activity, flips, JSON).
fn session_like(total_bytes: usize, frame_every: usize, seed: u64) -> Vec<(u16, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut records = Vec::new();
    let mut bytes = 0;
    while bytes < total_bytes {
        let len = if frame_every > 0 && records.len() % frame_every == 0 {
            128 * 1024
        } else {
            40 + rng.below(960) as usize
        };
        bytes += len;
        records.push((1 + rng.below(24) as u16, rng.bytes(len)));
    }
    records
}

fn write_v1(path: &Path, records: &[(u16, Vec<u8>)]) {
    let mut bytes = b"TWLPLOG\0\x01\0\0\0\0\0\0\0".to_vec();
    for (kind, payload) in records {
        bytes.extend_from_slice(&encode_record_header_v1(
            payload.len() as u32,
            *kind,
            0,
            &[payload],
        ));
        bytes.extend_from_slice(payload);
    }
    fs::write(path, bytes).unwrap();
}

fn write_v2(path: &Path, records: &[(u16, Vec<u8>)]) {
    let mut writer = LogWriter::create(path).unwrap();
    for (kind, payload) in records {
        writer.append(*kind, payload).unwrap();
    }
    writer.finish().unwrap();
}

/// Best of five full reads, MB/s of file.
fn read_rate(path: &Path, records: usize) -> f64 {
    let len = fs::metadata(path).unwrap().len() as f64;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let mut reader = LogReader::open(path).unwrap();
        let mut payload = Vec::new();
        let mut n = 0;
        while reader.next_into(&mut payload).unwrap().is_some() {
            n += 1;
        }
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(n, records);
    }
    len / best / 1e6
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn log_reader_throughput() {
    let dir = tempfile::tempdir().unwrap();
    for (name, frame_every) in [("small records only", 0), ("a frame every 50 records", 50)] {
        let records = session_like(200 << 20, frame_every, 1);
        let (v1, v2) = (
            dir.path().join(format!("v1-{frame_every}.log")),
            dir.path().join(format!("v2-{frame_every}.log")),
        );
        write_v1(&v1, &records);
        write_v2(&v2, &records);
        let (s1, s2) = (
            fs::metadata(&v1).unwrap().len(),
            fs::metadata(&v2).unwrap().len(),
        );
        let (r1, r2) = (read_rate(&v1, records.len()), read_rate(&v2, records.len()));
        println!(
            "{name}: {} records; v1 {s1} B, v2 {s2} B (+{:.2}%, {} B/record); \
             read v1 {r1:.0} MB/s, v2 {r2:.0} MB/s",
            records.len(),
            100.0 * (s2 as f64 / s1 as f64 - 1.0),
            (s2 - s1) / records.len() as u64
        );
    }
}
