//! The 64-byte header parser: any bytes either decode or give a `ProtocolError`, never a
//! panic; a decoded header's size arithmetic never overflows silently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinloop_rig::vocab::protocol::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        // Checked: `None` for a shape too large to address, never a wrapped product.
        if let Some(n) = h.payload_len() {
            assert!(n >= h.elements().unwrap_or(0));
        }
        let _ = h.check_payload(data.len());
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }
});
