//! `[twin] save`: a closed-loop session saves its refitted twin at the end, and the next
//! session rehearses on it (`source.kind = "twin"`) with no step in between; a damaged copy is
//! refused at config validation naming the file; a session with no twin writes none and says
//! why.

use std::path::{Path, PathBuf};

use twinloop_e2e::{assert_replays_exactly, fast_sim_config, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::{Config, CoreKind, Policy, SourceKind};
use twinloop_rig::online::session::live_twin::{
    LIVE_TWIN_CONFIG, LIVE_TWIN_WEIGHTS, LiveTwinReport,
};
use twinloop_rig::sim::{TwinMode, TwinSourceConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

/// The SHA-256 of a file by coreutils' `sha256sum`, not by the code under test.
fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) runs");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A short closed loop on the small fnn fixture twin that refits the twin every 4 trials.
fn closed_loop(out: &Path) -> Config {
    let mut cfg = fast_sim_config(out, 20.0);
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg.sim.neurons = 12;
    cfg.trials.stimulus_s = 0.8;
    cfg.trials.gray_s = 0.4;
    cfg.trials.response_wait_s = 0.2;
    cfg.trials.design.warmup_trials = 4;
    cfg.trials.design.test_every = 3;
    // Machine speed must not decide whether a round is taken before the end.
    cfg.trials.design.deadline_ms = 0.0;
    cfg.trials.design.twin_refit_every = 4;
    cfg.trials.design.twin_refit_steps = 4;
    cfg.twin.final_refit_steps = 4;
    cfg.twin.core = CoreKind::Fnn;
    cfg.twin.weights = Some(fixture("parity_weights.safetensors"));
    cfg.twin.config = Some(fixture("parity_config.json"));
    cfg
}

/// A fast rehearsal on the twin at `weights`/`config` with `units` units.
fn rehearsal(out: &Path, weights: PathBuf, config: PathBuf, units: usize) -> Config {
    let mut cfg = fast_sim_config(out, 4.0);
    cfg.source.kind = SourceKind::Twin;
    cfg.source.twin = Some(TwinSourceConfig {
        weights,
        config,
        noise: Default::default(),
        mode: TwinMode::Fast,
        behaviour: None,
        seed: 9,
        standardisation: None,
    });
    cfg.sim.neurons = units;
    // A rehearsal of a random protocol: no model of its own to save.
    cfg.trials.policy = Policy::Random;
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg.session.record_frames = true;
    cfg
}

#[test]
fn a_closed_loop_saves_its_twin_and_the_next_session_rehearses_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = closed_loop(&tmp.path().join("live"));
    cfg.validate().expect("a valid closed-loop config");
    assert!(cfg.twin.save, "saving is the default");
    let live = run_session(&cfg);
    assert!(live.counters.design.twin_refits >= 1, "{:?}", live.counters);
    let LiveTwinReport::Saved {
        weights,
        config,
        weights_sha256,
        units,
        rounds_applied,
        ..
    } = live.live_twin.clone()
    else {
        panic!("the live twin was not saved: {}", live.live_twin);
    };
    assert_eq!(weights, live.session_dir.join(LIVE_TWIN_WEIGHTS));
    assert_eq!(config, live.session_dir.join(LIVE_TWIN_CONFIG));
    assert_eq!(weights_sha256, sha256sum(&weights));
    assert_eq!(units, live.cells, "one readout per cell the loop saw");
    assert_eq!(rounds_applied as u64, live.counters.design.twin_refits);
    // The summary on disk says the same.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(live.session_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["live_twin"]["status"], "saved");
    assert_eq!(
        on_disk["live_twin"]["weights_sha256"],
        weights_sha256.as_str()
    );
    // No temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(&live.session_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The next session runs on it as it is, names it, and replays.
    let next = rehearsal(
        &tmp.path().join("next"),
        weights.clone(),
        config.clone(),
        units,
    );
    next.validate()
        .expect("the saved live twin is a valid twin source");
    let s = run_session(&next);
    let frames = (4.0 * next.imaging.frame_rate_hz).round() as u64;
    assert_eq!(s.cells, units);
    let manifest = SessionDir::open(&s.session_dir)
        .unwrap()
        .read_manifest()
        .unwrap();
    let twin = manifest.twin.expect("the twin is in the manifest");
    assert_eq!(twin["weights_sha256"], weights_sha256.as_str());
    assert_eq!(twin["core_sha256"], on_disk["live_twin"]["core_sha256"]);
    assert_replays_exactly(&s.session_dir, frames);
    // A rehearsal's random policy keeps no twin: nothing written, and the summary says why.
    assert!(
        matches!(&s.live_twin, LiveTwinReport::NotSaved { reason } if reason.contains("random")),
        "{}",
        s.live_twin
    );
    assert!(!s.session_dir.join(LIVE_TWIN_WEIGHTS).exists());

    // A damaged copy is refused at validation, naming the file: one flipped byte in the
    // tensor data (which would otherwise load as a slightly different twin), a flipped byte
    // in the header, and a truncated file.
    let bytes = std::fs::read(&weights).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut data_flip = bytes.clone();
    let at = 8 + header + (bytes.len() - 8 - header) / 2;
    data_flip[at] ^= 0x01;
    // In the header: the written hash itself (a flip in a tensor's name, shape or offsets is
    // refused by safetensors or the network's loader).
    let key = b"twinloop.tensors_sha256\":\"";
    let at_hash = bytes[..8 + header]
        .windows(key.len())
        .position(|w| w == key)
        .expect("the seal is in the header")
        + key.len();
    let mut header_flip = bytes.clone();
    header_flip[at_hash] = if bytes[at_hash] == b'0' { b'1' } else { b'0' };
    for (name, damaged) in [
        ("data_flip.safetensors", data_flip),
        ("header_flip.safetensors", header_flip),
        ("truncated.safetensors", bytes[..bytes.len() - 5].to_vec()),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, damaged).unwrap();
        let bad = rehearsal(&tmp.path().join("bad"), path, config.clone(), units);
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("source.twin.weights") && e.contains(name),
            "{name}: {e}"
        );
    }
}

#[test]
fn saving_off_writes_nothing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 2.0);
    cfg.trials.policy = Policy::Random;
    cfg.twin.save = false;
    let s = run_session(&cfg);
    assert_eq!(s.live_twin, LiveTwinReport::Off);
    assert!(!s.session_dir.join(LIVE_TWIN_WEIGHTS).exists());
    assert!(!s.session_dir.join(LIVE_TWIN_CONFIG).exists());
    assert!(s.to_string().contains("twin.save = false"));
}
