//! The 64-byte header parser: any bytes either decode or give a `ProtocolError`, never a
//! panic; a decoded header's size arithmetic never overflows silently.
//!
//! The body shared by the cargo-fuzz target (`fuzz/fuzz_targets/`) and the bounded stable run
//! in CI (`rig/tests/fuzz_bodies.rs`).

use twinloop_rig::vocab::protocol::Header;

/// One input; panics on a violated property. `true` when the input was accepted (so a run
/// can show it reached the accepting path, not only the rejections).
pub fn run(data: &[u8]) -> bool {
    let Ok(h) = Header::decode(data) else {
        return false;
    };
    // Checked: `None` for a shape too large to address, never a wrapped product.
    if let Some(n) = h.payload_len() {
        assert!(n >= h.elements().unwrap_or(0));
    }
    let _ = h.check_payload(data.len());
    assert_eq!(Header::decode(&h.encode()), Ok(h));
    true
}
