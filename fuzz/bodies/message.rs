//! The message validator over any split of the input into up to four parts: a `Header` or a
//! `ProtocolError`, never a panic; an accepted message's payload is exactly what its header
//! promises.
//!
//! The body shared by the cargo-fuzz target (`fuzz/fuzz_targets/`) and the bounded stable run
//! in CI (`rig/tests/fuzz_bodies.rs`).

use bytes::Bytes;
use twinloop_rig::vocab::protocol::Message;

/// One input; panics on a violated property. `true` when the input was accepted (so a run
/// can show it reached the accepting path, not only the rejections).
pub fn run(data: &[u8]) -> bool {
    // The first byte says how many parts; every part but the last is prefixed by its length
    // (one byte), and the last takes the rest, so a valid message is an easy seed:
    // `[3, topic.len(), topic.., 64, header.., payload..]`.
    let Some((&n, mut rest)) = data.split_first() else {
        return false;
    };
    let parts = usize::from(n % 5);
    let mut frames = Vec::with_capacity(parts);
    for i in 0..parts {
        let part = if i + 1 == parts {
            std::mem::take(&mut rest)
        } else {
            let Some((&len, tail)) = rest.split_first() else {
                break;
            };
            let (part, tail) = tail.split_at(usize::from(len).min(tail.len()));
            rest = tail;
            part
        };
        frames.push(Bytes::copy_from_slice(part));
    }
    let Ok(h) = Message::validate(&frames) else {
        return false;
    };
    assert_eq!(h.payload_len(), Some(frames[2].len()));
    true
}
