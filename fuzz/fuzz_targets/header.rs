//! cargo-fuzz target: see `fuzz/bodies/header.rs` for the properties checked.
#![no_main]

#[path = "../bodies/header.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
