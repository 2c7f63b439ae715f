//! cargo-fuzz target: see `fuzz/bodies/log_reader.rs` for the properties checked.
#![no_main]

#[path = "../bodies/log_reader.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
