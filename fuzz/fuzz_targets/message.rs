//! The message validator over any split of the input into up to four parts: a `Header` or a
//! `ProtocolError`, never a panic; an accepted message's payload is exactly what its header
//! promises.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use twinloop_rig::vocab::protocol::Message;

fuzz_target!(|data: &[u8]| {
    // The first byte says how many parts; the next ones where to cut.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let parts = usize::from(n % 5);
    let mut frames = Vec::with_capacity(parts);
    let mut rest = rest;
    for i in 0..parts {
        let cut = if i + 1 == parts {
            rest.len()
        } else {
            rest.first().map_or(0, |&b| usize::from(b)).min(rest.len())
        };
        let (part, tail) = rest.split_at(cut);
        frames.push(Bytes::copy_from_slice(part));
        rest = tail;
    }
    if let Ok(h) = Message::validate(&frames) {
        assert_eq!(h.payload_len(), Some(frames[2].len()));
    }
});
