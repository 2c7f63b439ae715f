//! `twinloop calibrate geometry` and `twinloop calibrate latency` end to end: what they write is
//! what `[display]` reads, and it agrees with an independent account of the rig: the renderer's
//! own geometry for the monitor pose, and a photodiode trace synthesised here, with a known
//! latency, per-flip jitter, a photodiode's rise time and noise, for the latency.

use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;
use twinloop_rig::backbone::session_log::{Manifest, SessionDir};
use twinloop_rig::config::{Config, DEFAULT_SIM_TOML};
use twinloop_rig::vocab::clock::RigTime;
use twinloop_rig::vocab::records::{FlipRecord, RecordKind};

fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
}

fn ok(run: Output, what: &str) {
    assert!(
        run.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The embedded default plus a fragment `twinloop calibrate` wrote.
fn config_with(fragment: &Path) -> Config {
    let text = DEFAULT_SIM_TOML.to_string() + &std::fs::read_to_string(fragment).unwrap();
    Config::from_toml(&text, "sim + fragment").expect("the fragment loads")
}

/// A monitor 25° to the right, tilted 10° up, the eye's perpendicular meeting it 4 cm right and
/// 3 cm below its centre: the measurements a rig would take (centre distance and direction), the
/// command's pose, and the renderer's view of that pose agree.
#[test]
fn calibrate_geometry_writes_the_monitor_the_renderer_reads() {
    let tmp = tempfile::tempdir().unwrap();
    // What one measures at the rig: the eye-to-centre line and the screen's normal.
    let (c_dist, c_az, c_el, n_az, n_el) = (16.1, 39.5, 1.2, 25.0, 10.0);
    let meas = tmp.path().join("monitor.toml");
    std::fs::write(
        &meas,
        format!(
            "width_px = 1920\nheight_px = 1080\nwidth_cm = 52.0\nheight_cm = 29.0\n\
             center_distance_cm = {c_dist}\ncenter_azimuth_deg = {c_az}\n\
             center_elevation_deg = {c_el}\nnormal_azimuth_deg = {n_az}\n\
             normal_elevation_deg = {n_el}\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("pose.toml");
    let calibrate = || {
        twinloop()
            .args(["calibrate", "geometry"])
            .arg(&meas)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    ok(calibrate(), "calibrate geometry");
    let g = config_with(&out).display.monitor;
    g.validate().unwrap();
    // The renderer's screen centre (pixel-centre geometry aside: the centre of the visible area
    // is `-eye` from the perpendicular's foot) lies where it was measured, at that distance.
    let (az, el) = g.cm_to_deg(-g.eye_x_cm, -g.eye_y_cm);
    assert!((az - c_az).abs() < 1e-9, "centre azimuth {az} vs {c_az}");
    assert!((el - c_el).abs() < 1e-9, "centre elevation {el} vs {c_el}");
    let dist = (g.distance_cm.powi(2) + g.eye_x_cm.powi(2) + g.eye_y_cm.powi(2)).sqrt();
    assert!((dist - c_dist).abs() < 1e-9, "centre distance {dist}");
    // And the perpendicular's foot is straight along the measured normal.
    let (az0, el0) = g.cm_to_deg(0.0, 0.0);
    assert!(
        (az0 - n_az).abs() < 1e-9 && (el0 - n_el).abs() < 1e-9,
        "{az0} {el0}"
    );
    assert_eq!((g.width_px, g.height_px), (1920, 1080));

    // A screen that faces away is refused, saying what to check.
    let text = std::fs::read_to_string(&meas)
        .unwrap()
        .replace("normal_azimuth_deg = 25", "normal_azimuth_deg = -80");
    std::fs::write(&meas, text).unwrap();
    let run = calibrate();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("does not face the eye"), "{err}");
    // A misspelt field names the file.
    std::fs::write(&meas, "width_px = 1920\ncentre_distance_cm = 15\n").unwrap();
    let run = calibrate();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("monitor.toml") && err.contains("centre_distance_cm"),
        "{err}"
    );
}

/// splitmix64 mapped to [0, 1): reproducible jitter and noise without a dependency.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

const REFRESH_HZ: f64 = 60.0;
const FLIPS: u64 = 1200; // 20 s
const ONSET_EVERY: u64 = 60;
const FLIP0_NS: i64 = 5_000_000_000;
const SAMPLE_HZ: f64 = 5000.0;

fn flip_ns(k: u64) -> i64 {
    FLIP0_NS + (k as f64 * 1e9 / REFRESH_HZ).round() as i64
}

/// A session recorded on a window (as the manifest says) whose flips were logged `logged_ms`
/// after the true flips (a latency already applied), and the photodiode over its patch: white
/// on onset frames and the next, 0.3 on odd frames, black otherwise, reaching the screen
/// `latency_ms` (plus ±0.5 ms jitter per flip) after the true flip, through a photodiode with a
/// 0.4 ms time constant, sampled at 5 kHz with ±2% noise. Returns the session, the trace CSV
/// and the injected delays' standard deviation.
fn recorded_session(
    root: &Path,
    backend: &str,
    logged_ms: Option<f64>,
    latency_ms: f64,
) -> (std::path::PathBuf, std::path::PathBuf, f64) {
    let mut cfg = serde_json::to_value(Config::default_sim()).unwrap();
    cfg["display"]["backend"] = backend.into();
    if let Some(ms) = logged_ms {
        cfg["display"]["latency"] = serde_json::json!({ "ms": ms, "jitter_ms": 0.0 });
    }
    let now = SystemTime::now();
    let dir = SessionDir::create(root, "latency", now).unwrap();
    let manifest = Manifest::new(now, vec!["test".into()], cfg);
    dir.write_manifest(&manifest).unwrap();
    let mut log = dir.create_log_with_manifest(&manifest).unwrap();
    let shift = (logged_ms.unwrap_or(0.0) * 1e6).round() as i64;
    for k in 0..FLIPS {
        let rec = FlipRecord {
            display_frame: k,
            t: RigTime::from_nanos(flip_ns(k) + shift),
            trial: (k / ONSET_EVERY) as i64,
            onset: k % ONSET_EVERY == 0,
        };
        log.append(RecordKind::Flip as u16, &rec.encode()).unwrap();
    }
    log.finish().unwrap();

    let mut rng = 11u64;
    // When each frame's light arrives, and its level.
    let mut delays = Vec::new();
    let light: Vec<(f64, f64)> = (0..FLIPS)
        .map(|k| {
            let d = latency_ms + (uniform(&mut rng) - 0.5);
            if k % ONSET_EVERY == 0 {
                delays.push(d);
            }
            let level = if k % ONSET_EVERY <= 1 {
                1.0
            } else if k % 2 == 1 {
                0.3
            } else {
                0.0
            };
            (flip_ns(k) as f64 * 1e-9 + d * 1e-3, level)
        })
        .collect();
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    let sd = (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64).sqrt();
    let (t_start, t_end) = (FLIP0_NS as f64 * 1e-9 - 0.5, light[light.len() - 1].0 + 0.5);
    let mut csv = String::from("t_s,value\n# photodiode on ai0, the rig's DAQ\n");
    let (mut level, mut target, mut next) = (0.0f64, 0.0f64, 0usize);
    let tau_s = 0.4e-3;
    let n = ((t_end - t_start) * SAMPLE_HZ) as usize;
    for i in 0..n {
        let t = t_start + i as f64 / SAMPLE_HZ;
        while next < light.len() && light[next].0 <= t {
            target = light[next].1;
            next += 1;
        }
        level += (target - level) * (1.0 - (-1.0 / (SAMPLE_HZ * tau_s)).exp());
        let noisy = level + 0.04 * (uniform(&mut rng) - 0.5);
        csv += &format!("{t:.6},{noisy:.5}\n");
    }
    let trace = root.join("photodiode.csv");
    std::fs::write(&trace, csv).unwrap();
    (dir.path().to_path_buf(), trace, sd)
}

fn calibrate_latency(session: &Path, trace: &Path, out: &Path) -> Output {
    twinloop()
        .args(["calibrate", "latency"])
        .arg(session)
        .arg("--trace")
        .arg(trace)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn calibrate_latency_recovers_a_known_latency_from_a_photodiode() {
    let latency_ms = 23.7;
    // Fresh, and on a session whose flips already carried 10 ms: the same total either way.
    for logged in [None, Some(10.0)] {
        let tmp = tempfile::tempdir().unwrap();
        let (session, trace, sd) = recorded_session(tmp.path(), "window", logged, latency_ms);
        let out = tmp.path().join("latency.toml");
        ok(
            calibrate_latency(&session, &trace, &out),
            "calibrate latency",
        );
        let l = config_with(&out)
            .display
            .latency
            .expect("[display.latency] read");
        // The photodiode's rise to the threshold (at most 0.42 ms for a 0.4 ms time constant)
        // and one 0.2 ms sample: within 0.6 ms.
        assert!(
            (l.ms - latency_ms).abs() < 0.6,
            "{logged:?}: {} ms for {latency_ms}",
            l.ms
        );
        assert!(
            (l.jitter_ms - sd).abs() < 0.1,
            "jitter {} vs {sd}",
            l.jitter_ms
        );
    }

    // A session on the simulated display never lit a screen: refused, saying so.
    let tmp = tempfile::tempdir().unwrap();
    let (session, trace, _) = recorded_session(tmp.path(), "sim", None, latency_ms);
    let run = calibrate_latency(&session, &trace, &tmp.path().join("x.toml"));
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("simulated display"), "{err}");

    // A trace with a dropped stretch is refused, naming the line.
    let tmp = tempfile::tempdir().unwrap();
    let (session, trace, _) = recorded_session(tmp.path(), "window", None, latency_ms);
    let text = std::fs::read_to_string(&trace).unwrap();
    let cut: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| !(1000..1100).contains(i))
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&trace, cut.join("\n")).unwrap();
    let run = calibrate_latency(&session, &trace, &tmp.path().join("x.toml"));
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("line 1001") && err.contains("uniformly"),
        "{err}"
    );
}

/// `[display.latency]` outside what a display can be is refused, naming the field.
#[test]
fn an_impossible_display_latency_is_refused_by_name() {
    for (ms, field) in [
        ("-3.0", "display.latency.ms"),
        ("5000.0", "display.latency.ms"),
    ] {
        let text = format!("{DEFAULT_SIM_TOML}\n[display.latency]\nms = {ms}\n");
        let e = Config::from_toml(&text, "sim + latency")
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{ms}: {e}");
    }
    let text = format!("{DEFAULT_SIM_TOML}\n[display.latency]\nms = 20.0\njitter = 1.0\n");
    let e = Config::from_toml(&text, "sim + latency")
        .unwrap_err()
        .to_string();
    assert!(e.contains("jitter"), "a misspelt field is named: {e}");
}
