//! The `twinloop` binary as an experimenter meets it: a bad config, a killed daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twinloop_rig::backbone::session_log::{SessionDir, TailState};
use twinloop_rig::offline::replay::replay;
use twinloop_rig::vocab::records::RecordKind;

fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
}

#[test]
fn an_invalid_config_names_the_field_and_what_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    let text =
        twinloop_rig::config::DEFAULT_SIM_TOML.replace("refresh_hz = 60.0", "refresh_hz = 0.0");
    std::fs::write(&cfg, text).unwrap();
    let out = twinloop().arg("run").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("display.refresh_hz") && err.contains("positive"),
        "{err}"
    );

    let out = twinloop()
        .args(["run", "/nonexistent/rig.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rig.toml"), "{err}");
}

/// The inception protocol designs through the adaptive designer's twin: with the random
/// policy it is refused before a session directory exists, naming the field and the fix.
#[test]
fn an_inception_section_without_the_adaptive_designer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("sessions");
    let cfg = tmp.path().join("inception.toml");
    let text = twinloop_rig::config::DEFAULT_SIM_TOML
        .replace("duration_s = 90.0", "duration_s = 7000.0")
        .replace("policy = \"adaptive\"", "policy = \"random\"")
        .replace(
            "out_dir = \"sessions\"",
            &format!("out_dir = {:?}", out_dir),
        )
        + "\n[inception]\nrounds = 1\n";
    std::fs::write(&cfg, text).unwrap();
    let out = twinloop().arg("run").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trials.policy") && err.contains("adaptive"),
        "{err}"
    );
    assert!(newest_session(&out_dir).is_none(), "no session directory");
}

/// `twinloop calibrate gamma` on the readings of two monitors: one with the power law the fit
/// assumes (gamma 2.4, offset 0.6 cd/m²) and one it does not (the sRGB curve: a linear toe and
/// a 2.4 power on an offset input, whose best power law is about 2.25), both with photometer
/// noise of ±0.2%. The table it writes loads as `[display.gamma]` of a session config, and
/// through it each monitor's luminance is linear in the requested level within 1%, the
/// definition of a gamma-corrected display.
#[test]
fn calibrate_gamma_writes_what_the_display_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let power = |v: f64| 0.6 + 120.0 * (v / 255.0).powf(2.4);
    let srgb = |v: f64| {
        let x = v / 255.0;
        0.5 + 100.0
            * if x <= 0.04045 {
                x / 12.92
            } else {
                ((x + 0.055) / 1.055).powf(2.4)
            }
    };
    let readings = tmp.path().join("readings.csv");
    let out = tmp.path().join("gamma.toml");
    let calibrate = || {
        twinloop()
            .args(["calibrate", "gamma"])
            .arg(&readings)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    for (name, monitor) in [
        ("power law", &power as &dyn Fn(f64) -> f64),
        ("sRGB", &srgb),
    ] {
        let mut csv = String::from("level,luminance\n# PR-655, 30 min warm-up\n");
        for (k, v) in (0..=255).step_by(16).chain([255]).enumerate() {
            let noise = 1.0 + 0.002 * if k % 2 == 0 { 1.0 } else { -1.0 };
            csv += &format!("{v},{}\n", monitor(v as f64) * noise);
        }
        std::fs::write(&readings, csv).unwrap();
        let run = calibrate();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = twinloop_rig::config::DEFAULT_SIM_TOML.to_string()
            + &std::fs::read_to_string(&out).unwrap();
        let cfg = twinloop_rig::config::Config::from_toml(&text, "sim + gamma.toml").unwrap();
        let lut = cfg.display.gamma.expect("[display.gamma] read");
        let (lo, hi) = (monitor(0.0), monitor(255.0));
        for i in (0..=255).step_by(5) {
            let want = i as f64 / 255.0;
            let drive = lut.table()[i] as f64 * 255.0;
            let got = (monitor(drive) - lo) / (hi - lo);
            assert!(
                (got - want).abs() < 0.01,
                "{name}, level {i}: {got:.4} for {want:.4}"
            );
        }
    }

    // Readings that are not a monitor's are refused, naming the line.
    std::fs::write(&readings, "0,1.0\n128,abc\n").unwrap();
    let run = calibrate();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("line 2") && err.contains("abc"), "{err}");
}

fn newest_session(root: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
}

#[test]
fn a_daemon_killed_mid_session_leaves_a_readable_log() {
    let tmp = tempfile::tempdir().unwrap();
    // Placeholder extraction: activity from the first frame, no calibration phase to wait for.
    let cfg = tmp.path().join("rig.toml");
    let text = twinloop_rig::config::DEFAULT_SIM_TOML.replace(
        "extraction = \"pipeline\"",
        "extraction = \"truth_footprints\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let sessions = tmp.path().join("sessions");
    let mut child = twinloop()
        .arg("run")
        .arg(&cfg)
        .args(["--duration", "60", "--record-frames", "--out"])
        .arg(&sessions)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the real-time session has logged a few seconds, then SIGKILL it mid-write.
    let started = Instant::now();
    let log = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "session never started logging"
        );
        if let Some(dir) = newest_session(&sessions) {
            let log = dir.join("records.log");
            if std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > 40 << 20 {
                break log;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let dir = SessionDir::open(log.parent().unwrap()).unwrap();
    let (records, tail) = dir.open_log().unwrap().read_to_end().unwrap();
    let frames = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Input as u16)
        .count();
    assert!(
        frames > 50,
        "records up to the kill are readable ({frames} inputs)"
    );
    if let TailState::Truncated { bytes_after, .. } = tail {
        // A crash cuts at most the record being written (a frame is ~512 KiB).
        assert!(bytes_after < 1 << 20, "{bytes_after} bytes lost");
    }
    // And the killed session still replays up to its last complete record.
    let r = replay(dir.path()).unwrap();
    assert!(r.frames_replayed > 50);
    assert_eq!(r.activity_mismatches, 0);
    assert_eq!(r.decisions_reproduced, r.decisions_logged);
}
