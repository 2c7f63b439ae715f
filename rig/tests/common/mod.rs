//! Shared by the `twinloop twin ...` CLI tests: the binary under test and the model fixtures.

use std::path::PathBuf;
use std::process::Command;

/// The `twinloop` binary cargo built for these tests.
pub fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
}

/// A file of `model/fixtures` (the reduced fnn parity network).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}
