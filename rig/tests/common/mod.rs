//! Shared by the `twinloop twin ...` CLI tests: the binary under test and the model fixtures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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

/// The embedded default session (`configs/sim.toml`) made small and quick for a test, written
/// to `dir/name`: not real time, no progress bar, no dashboard, IPC endpoints and the output
/// folder (`dir/out`) of its own, 64x64 imaging frames on the truth-footprint extraction, and
/// the small fnn fixture twin as its core; then the test's own `edits`, each `(text of the
/// default config, replacement)`, applied in order to the first occurrence left.
// Each test binary compiles its own copy of this module; not every one runs a session.
#[allow(dead_code)]
pub fn small_loop_config(dir: &Path, name: &str, edits: &[(&str, String)]) -> PathBuf {
    let weights = fixture("parity_weights.safetensors");
    let net = fixture("parity_config.json");
    let common = [
        ("realtime = true ", "realtime = false".to_string()),
        (
            "out_dir = \"sessions\"",
            format!("out_dir = {:?}", dir.join("out")),
        ),
        ("progress = true", "progress = false".into()),
        (
            "ingest = \"tcp://127.0.0.1:0\"",
            format!("ingest = \"ipc://{}\"", dir.join("in").display()),
        ),
        (
            "publish = \"tcp://127.0.0.1:0\"",
            format!("publish = \"ipc://{}\"", dir.join("pub").display()),
        ),
        ("width = 512", "width = 64".into()),
        ("height = 512", "height = 64".into()),
        (
            "extraction = \"pipeline\"",
            "extraction = \"truth_footprints\"".into(),
        ),
        (
            "core = \"pretrained\"",
            format!("core = \"fnn\"\nweights = {weights:?}\nconfig = {net:?}"),
        ),
        ("enabled = true\nbind", "enabled = false\nbind".into()),
    ];
    let mut text = twinloop_rig::config::DEFAULT_SIM_TOML.to_string();
    for (a, b) in common
        .iter()
        .map(|(a, b)| (*a, b))
        .chain(edits.iter().map(|(a, b)| (*a, b)))
    {
        assert!(text.contains(a), "the default config has no {a:?}");
        text = text.replacen(a, b, 1);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits for a `twinloop` child, killing it past a generous hang guard (30 minutes: not a
/// timing assertion, only so that a hung session fails instead of stalling the suite).
#[allow(dead_code)] // Each test binary compiles its own copy; not every one spawns.
pub fn wait(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > Duration::from_secs(1800) {
            let _ = child.kill();
            panic!("the session hung");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
