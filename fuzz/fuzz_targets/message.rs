//! cargo-fuzz target: see `fuzz/bodies/message.rs` for the properties checked.
#![no_main]

#[path = "../bodies/message.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
