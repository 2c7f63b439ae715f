//! Tests that need something outside the repository (octave, a GPU, a window system, a
//! browser) skip where it is missing, saying so in the test output, and fail instead where a
//! `TWINLOOP_REQUIRE_*` variable says it must be there (CI sets them).

use std::io::Write;

/// Whether `var` is set to `1`: the dependency must be there.
pub fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

/// Reports a missing dependency: panics when `require_var=1`, otherwise prints one line
/// `SKIPPED <test>: <what> (<fix>; ...)` straight to the process's stderr, which the test
/// harness does not capture, so it shows in `cargo test`'s output even when the test passes.
pub fn skip_or_fail(test: &str, require_var: &str, what: &str, fix: &str) {
    if required(require_var) {
        panic!("{test}: {what}, and {require_var}=1 says it must be there: {fix}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what} ({fix}; set {require_var}=1 to fail instead)"
    );
}
