//! The session log reader on arbitrary bytes after a valid file header: it never panics, never
//! hangs, and reads at most one record per record header's worth of bytes.
//!
//! The body shared by the cargo-fuzz target (`fuzz/fuzz_targets/`) and the bounded stable run
//! in CI (`rig/tests/fuzz_bodies.rs`).

use twinloop_rig::backbone::session_log::{LogReader, MAGIC, RECORD_HEADER_LEN};

/// One input; panics on a violated property. `true` when the input was accepted (so a run
/// can show it reached the accepting path, not only the rejections).
pub fn run(data: &[u8]) -> bool {
    // The first byte picks the format version, so both readers are exercised.
    let Some((&version, body)) = data.split_first() else {
        return false;
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&u32::from(1 + version % 2).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(body);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("records.log");
    std::fs::write(&path, &bytes).expect("writing the input");
    let all = LogReader::open(&path)
        .expect("a valid file header opens")
        .read_all()
        .expect("no I/O error on a regular file");
    assert!(all.records.len() <= body.len() / 12);
    if version % 2 == 1 {
        assert!(all.records.len() <= body.len() / RECORD_HEADER_LEN);
    }
    // Accepted: something was read back undamaged.
    !all.records.is_empty()
}
