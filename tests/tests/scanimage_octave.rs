//! The ScanImage bridge (`bridges/scanimage/`, MATLAB user function) under GNU Octave against
//! an in-process daemon: a stand-in for ScanImage's `hSI` (`bridges/scanimage/tests/
//! fake_scanimage.m`) replays a recording written here (two channels, two planes, a frame
//! ScanImage never handed over, a repeated event) through the same `.m` files a rig runs, over
//! JeroMQ. The session log must hold every frame exactly: pixels bit for bit, ScanImage's frame
//! number and timestamp in the header, planes and channels where the recording put them.
//!
//! Needs `octave` with Java and JeroMQ (Debian: `apt-get install octave default-jre-headless
//! libjeromq-java`; `scripts/test.sh` installs them as root). Without them the test says
//! SKIPPED and why; with `TWINLOOP_REQUIRE_OCTAVE=1` (`.ci/run`) it fails instead.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use twinloop_e2e::python::{repo_root, run_session_with_command};
use twinloop_e2e::skip::skip_or_fail;
use twinloop_e2e::{bridge_test_config, hold_every_frame};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::online::sources::zmq_ingest::IngestEnd;
use twinloop_rig::vocab::protocol::{Dtype, Stream};
use twinloop_rig::vocab::records::{self, RecordKind};

const REQUIRE: &str = "TWINLOOP_REQUIRE_OCTAVE";
const INSTALL: &str = "apt-get install octave default-jre-headless libjeromq-java";
const HEIGHT: usize = 48;
const WIDTH: usize = 64; // not square: a transposed frame cannot pass
const CHANNELS: usize = 2;
const PLANES: u64 = 2;
/// ScanImage's frame numbers (frameNumberAcqMode) 1..=40, of which this one never reached
/// MATLAB (ScanImage coalesces frame events when MATLAB is busy).
const FRAME_NUMBERS: u64 = 40;
const NEVER_DELIVERED: u64 = 12;

fn octave_args() -> [&'static str; 4] {
    ["--no-gui", "--no-window-system", "--quiet", "--norc"]
}

fn jeromq_jar() -> PathBuf {
    std::env::var_os("TWINLOOP_JEROMQ_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/jeromq.jar"))
}

/// Octave with a JVM and the JeroMQ jar, or why not.
fn octave_missing() -> Option<String> {
    let probe = Command::new("octave")
        .args(octave_args())
        .args(["--eval", "exit(double(~usejava('jvm')))"])
        .output();
    match probe {
        Err(e) => return Some(format!("cannot run `octave` ({e})")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "octave has no Java ({}; {})",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(_) => {}
    }
    let jar = jeromq_jar();
    (!jar.exists()).then(|| format!("no JeroMQ jar at {} (TWINLOOP_JEROMQ_JAR)", jar.display()))
}

/// splitmix64: reproducible frames without a dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One recorded frame as ScanImage delivered it: its number, its time, each channel's
/// row-major little-endian int16 pixels.
struct Recorded {
    number: u64,
    timestamp_s: f64,
    channels: Vec<Vec<u8>>,
}

/// Writes the recording `fake_scanimage.m` reads (its header comment documents the layout).
fn write_recording(dir: &Path) -> Vec<Recorded> {
    let mut rng = 7u64;
    let frames: Vec<Recorded> = (1..=FRAME_NUMBERS)
        .filter(|&n| n != NEVER_DELIVERED)
        .map(|n| Recorded {
            number: n,
            // 30 Hz with a few microseconds of jitter: times that are not round numbers.
            timestamp_s: (n - 1) as f64 / 30.0 + (splitmix(&mut rng) % 5000) as f64 * 1e-9,
            channels: (0..CHANNELS)
                .map(|_| {
                    (0..HEIGHT * WIDTH)
                        .flat_map(|_| (splitmix(&mut rng) as i16).to_le_bytes())
                        .collect()
                })
                .collect(),
        })
        .collect();
    let index: Vec<u8> = frames
        .iter()
        .flat_map(|f| [f.number as f64, f.timestamp_s])
        .flat_map(f64::to_le_bytes)
        .collect();
    let pixels: Vec<u8> = frames.iter().flat_map(|f| f.channels.concat()).collect();
    std::fs::write(dir.join("index.bin"), index).expect("index.bin");
    std::fs::write(dir.join("frames.bin"), pixels).expect("frames.bin");
    std::fs::write(
        dir.join("shape.txt"),
        format!("{HEIGHT} {WIDTH} {CHANNELS}\n"),
    )
    .expect("shape.txt");
    frames
}

/// A MATLAB string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn scanimage_bridge_under_octave_delivers_every_frame_exactly() {
    if let Some(why) = octave_missing() {
        skip_or_fail(
            "scanimage_bridge_under_octave_delivers_every_frame_exactly",
            REQUIRE,
            &why,
            INSTALL,
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rec_dir = tmp.path().join("recording");
    std::fs::create_dir(&rec_dir).expect("recording dir");
    let recorded = write_recording(&rec_dir);
    let messages = recorded.len() * CHANNELS;

    let mut cfg = bridge_test_config(&tmp.path().join("sessions"), WIDTH as u32, HEIGHT as u32);
    cfg.imaging.planes = PLANES as u8;
    cfg.imaging.channels = CHANNELS as u8;
    cfg.session.record_frames = true;
    // A small window, so the bridge must wait for acks (and read their epoch) to send them all.
    cfg.source.flow_window = 4;
    hold_every_frame(&mut cfg, messages as u64);
    cfg.validate().expect("test config is valid");

    let bridge = repo_root().join("bridges/scanimage");
    let command = move |ingest: &str, publish: &str| {
        let eval = format!(
            "addpath({}); addpath({}); fake_scanimage({}, 'ingest', {}, 'publish', {}, \
             'channels', [1 2], 'planes', {PLANES}, 'window_wait_s', 60, 'sent_ns', true);",
            quoted(&bridge.to_string_lossy()),
            quoted(&bridge.join("tests").to_string_lossy()),
            quoted(&rec_dir.to_string_lossy()),
            quoted(ingest),
            quoted(publish),
        );
        let mut cmd = Command::new("octave");
        cmd.args(octave_args())
            .args([OsString::from("--eval"), eval.into()]);
        cmd
    };
    let (output, s) = run_session_with_command(&cfg, command, false);
    let report = output.report("fake_scanimage.m");

    assert_eq!(
        s.ingest_end,
        IngestEnd::SourceEnded,
        "acqModeDone sent `end`"
    );
    let c = &s.counters;
    assert!(c.rejected.is_empty(), "nothing malformed: {:?}", c.rejected);
    assert_eq!(c.garbage_messages, 0);
    assert_eq!(c.frames_in, messages as u64, "{c:?}");
    // The frame ScanImage never handed over is a gap in its plane's numbering, per channel.
    assert_eq!(
        (c.gaps, c.missing),
        (CHANNELS as u64, CHANNELS as u64),
        "{c:?}"
    );
    assert_eq!(report["sent"], messages, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert_eq!(report["stale_acks"], 0, "{report}");
    assert_eq!(
        report["acked"],
        messages - 1,
        "every frame acked, with this hello's epoch"
    );
    assert_eq!(
        report["final"]["state"], "ended",
        "the bridge saw the final heartbeat"
    );
    assert_eq!(
        report["final"]["counters"]["frames_in"], messages,
        "{report}"
    );

    // The session log: every frame, in order, exactly as recorded.
    let dir = SessionDir::open(&s.session_dir).expect("session dir");
    let mut reader = dir.open_log().expect("the log");
    let mut buf = Vec::new();
    let mut logged = Vec::new();
    while let Some(info) = reader.next_into(&mut buf).expect("a readable log") {
        if RecordKind::from_code(info.kind) != Some(RecordKind::Input) {
            continue;
        }
        let r = records::decode_input(&buf).expect("an input record");
        if r.header.stream == Stream::TwoPhoton {
            let pixels = r.payload.expect("record_frames keeps the pixels").to_vec();
            logged.push((r.header, pixels));
        }
    }
    assert_eq!(logged.len(), messages);
    let expected = recorded
        .iter()
        .flat_map(|f| (0..CHANNELS).map(move |ch| (f, ch)));
    for (k, ((h, pixels), (f, ch))) in logged.iter().zip(expected).enumerate() {
        let at = format!("message {k} (ScanImage frame {}, channel {ch})", f.number);
        assert_eq!(h.dtype, Dtype::I16, "{at}: ScanImage's int16 as int16");
        assert_eq!(
            &h.shape[..2],
            &[HEIGHT as u32, WIDTH as u32],
            "{at}: [lines, pixels]"
        );
        assert_eq!(h.aux, f.number as i64, "{at}: the frame number");
        assert_eq!(
            h.t_ns,
            (f.timestamp_s * 1e9).round() as i64,
            "{at}: frameTimestamp"
        );
        assert_eq!(u64::from(h.plane), (f.number - 1) % PLANES, "{at}: plane");
        assert_eq!(h.seq, (f.number - 1) / PLANES, "{at}: numbered per plane");
        assert_eq!(usize::from(h.channel), ch, "{at}: wire channel");
        assert!(
            pixels == &f.channels[ch],
            "{at}: pixels differ from the recording"
        );
    }
}

/// What a lab gets wrong first, each refused with one error naming the fix: a misspelt option,
/// no daemon at the endpoint, a JeroMQ jar that is not there.
#[test]
fn scanimage_bridge_errors_name_the_fix() {
    if let Some(why) = octave_missing() {
        skip_or_fail(
            "scanimage_bridge_errors_name_the_fix",
            REQUIRE,
            &why,
            INSTALL,
        );
        return;
    }
    let bridge = repo_root().join("bridges/scanimage");
    let start = |options: &str, jar: &str| {
        let eval = format!(
            "addpath({}); twinloop_si(struct(), struct('EventName', 'acqModeStart'), {options});",
            quoted(&bridge.to_string_lossy())
        );
        let out = Command::new("octave")
            .args(octave_args())
            .args(["--eval", &eval])
            .env("TWINLOOP_JEROMQ_JAR", jar)
            .output()
            .expect("run octave");
        assert!(!out.status.success(), "{options}: accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let jar = jeromq_jar().to_string_lossy().into_owned();
    // Nothing listens on port 1 (tcpmux, unused on a rig or a CI machine).
    let endpoints = "'ingest', 'tcp://127.0.0.1:1', 'publish', 'tcp://127.0.0.1:1'";
    let e = start(&format!("{endpoints}, 'publsh', 'x'"), &jar);
    assert!(
        e.contains("unknown option 'publsh'") && e.contains("publish"),
        "{e}"
    );
    let e = start(&format!("{endpoints}, 'connect_timeout_s', 0.5"), &jar);
    assert!(
        e.contains("no heartbeat") && e.contains("source.publish"),
        "{e}"
    );
    let e = start(endpoints, "/nonexistent/jeromq.jar");
    assert!(
        e.contains("/nonexistent/jeromq.jar") && e.contains("javaclasspath.txt"),
        "{e}"
    );
}
