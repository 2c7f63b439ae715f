//! Python peers of the end-to-end tests: the interpreter (`TWINLOOP_PYTHON`, default `python3`)
//! with the repository's client package (`python/twinloop_client`) on its path.

use std::path::PathBuf;
use std::process::Command;

/// The interpreter the tests run (`.ci/run` and `scripts/test.sh` set a venv's).
pub fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A command running `python` with this checkout's client package first on `PYTHONPATH`, so
/// the tests exercise the client next to the daemon they test, not an older installed copy.
pub fn python_command() -> Command {
    let src = repo_root().join("python/twinloop_client/src");
    let path = match std::env::var_os("PYTHONPATH") {
        Some(old) if !old.is_empty() => {
            let mut paths = vec![src];
            paths.extend(std::env::split_paths(&old));
            std::env::join_paths(paths).expect("PYTHONPATH entries without separators")
        }
        _ => src.into_os_string(),
    };
    let mut cmd = Command::new(python());
    cmd.env("PYTHONPATH", path);
    cmd
}

/// Fail loudly (never skip) when the interpreter lacks pyzmq or numpy.
pub fn require_pyzmq() {
    let py = python();
    let probe = Command::new(&py).args(["-c", "import zmq, numpy"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{py} cannot import pyzmq/numpy ({}): run `.ci/run`, or `pip install pyzmq numpy` \
             and point TWINLOOP_PYTHON at that interpreter",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run Python `{py}` ({e}): run `.ci/run`, or install Python 3 with \
             `pip install pyzmq numpy` and set TWINLOOP_PYTHON"
        ),
    }
}

/// What a Python peer of a session printed, and how it exited.
pub struct PeerOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl PeerOutput {
    /// Panics with everything the peer printed unless it exited 0; its first stdout line,
    /// parsed as JSON (the peers' report).
    pub fn report(&self, name: &str) -> serde_json::Value {
        assert!(
            self.status.success(),
            "{name} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        eprintln!("{name}:\n{}{}", self.stdout, self.stderr);
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} report {line:?}: {e}"))
    }
}

/// Runs a session in-process with a Python peer: `args(ingest, publish)` are the arguments of
/// the peer's command line, run once the daemon's sockets are bound. With `wait_ready`, the
/// session does not go on (the simulated rig does not start) until the peer prints a line
/// `ready`: a subscriber misses nothing. The peer is killed if it outlives the session by a
/// minute (a hang guard, not a timing).
pub fn run_session_with_peer(
    cfg: &twinloop_rig::config::Config,
    args: impl FnOnce(&str, &str) -> Vec<std::ffi::OsString> + Send + 'static,
    wait_ready: bool,
) -> (PeerOutput, twinloop_rig::online::session::SessionSummary) {
    require_pyzmq();
    run_session_with_command(
        cfg,
        move |ingest: &str, publish: &str| {
            let mut cmd = python_command();
            cmd.args(args(ingest, publish));
            cmd
        },
        wait_ready,
    )
}

/// [`run_session_with_peer`] with any peer: `command(ingest, publish)` is the command to run
/// once the daemon's sockets are bound (stdout and stderr are captured here).
pub fn run_session_with_command(
    cfg: &twinloop_rig::config::Config,
    command: impl FnOnce(&str, &str) -> Command + Send + 'static,
    wait_ready: bool,
) -> (PeerOutput, twinloop_rig::online::session::SessionSummary) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let stderr_file = tempfile::NamedTempFile::new().expect("a file for the peer's stderr");
    let stderr_path = stderr_file.path().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let hooks = twinloop_rig::online::session::Hooks {
        on_ready: Some(Box::new(
            move |_dir: &std::path::Path, ingest: &str, publish: &str| {
                let stderr = std::fs::File::create(&stderr_path).expect("the peer's stderr");
                let mut child = command(ingest, publish)
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .spawn()
                    .expect("start the peer");
                let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
                let mut first = String::new();
                if wait_ready {
                    out.read_line(&mut first).expect("the peer's first line");
                }
                let _ = tx.send((child, out, first));
            },
        )),
        ..Default::default()
    };
    let summary = twinloop_rig::online::session::run(cfg, vec!["python-peer".into()], hooks)
        .expect("the session runs");
    let (mut child, mut out, first) = rx.recv().expect("the daemon bound its sockets");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll the peer").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().expect("the peer's exit status");
    let mut stdout = first.clone();
    out.read_to_string(&mut stdout).expect("the peer's stdout");
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    if wait_ready {
        assert_eq!(
            first.trim(),
            "ready",
            "the peer's first line; stderr:\n{stderr}"
        );
    }
    (
        PeerOutput {
            status,
            stdout,
            stderr,
        },
        summary,
    )
}
