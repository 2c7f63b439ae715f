//! A session on a fitted twin (`source.kind = "twin"`): in full mode the whole rig and imaging
//! path run with the twin's units as the cells; in fast mode the twin's spike counts are the
//! activity. Either way the twin is named in the manifest and the session replays; a twin that
//! does not load, or fast mode with settings that need pixels, is refused at validation.

use std::path::{Path, PathBuf};

use twinloop_e2e::{assert_replays_exactly, fast_sim_config, read_npy_f32, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::config::{Config, Extraction, SourceKind};
use twinloop_rig::sim::twin_source::TwinNoise;
use twinloop_rig::sim::{TwinMode, TwinSourceConfig};
use twinloop_rig::vocab::records::{self, RecordKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures")
        .join(name)
}

fn twin_config(out: &Path, duration_s: f64) -> Config {
    let mut cfg = fast_sim_config(out, duration_s);
    cfg.source.kind = SourceKind::Twin;
    cfg.source.twin = Some(TwinSourceConfig {
        weights: fixture("parity_weights.safetensors"),
        config: fixture("parity_config.json"),
        noise: TwinNoise::Poisson,
        mode: TwinMode::Full,
        behaviour: None,
        seed: 3,
        standardisation: None,
    });
    // The parity twin has 25 units: one imaged cell each.
    cfg.sim.neurons = 25;
    cfg
}

/// The SHA-256 of a file by coreutils' `sha256sum`, not by the code under test.
fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) runs");
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_session_on_a_twin_runs_names_the_twin_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let duration_s = 6.0;
    let mut cfg = twin_config(tmp.path(), duration_s);
    cfg.session.record_frames = true;
    cfg.validate().expect("a valid twin config");
    let s = run_session(&cfg);
    let frames = (duration_s * cfg.imaging.frame_rate_hz).round() as u64;
    assert_eq!(s.counters.frames_in, frames, "every imaging frame arrived");
    assert_eq!(s.counters.frames_processed, frames);
    assert_eq!(
        s.sim.as_ref().expect("the rig reported").frames_sent,
        frames
    );
    assert_eq!(s.cells, 25, "one cell per twin unit");

    let dir = SessionDir::open(&s.session_dir).unwrap();
    let manifest = dir.read_manifest().unwrap();
    let twin = manifest.twin.expect("the twin is in the manifest");
    let weights = fixture("parity_weights.safetensors");
    let absolute = std::fs::canonicalize(&weights).unwrap();
    assert_eq!(twin["weights"], absolute.display().to_string());
    assert_eq!(twin["weights_sha256"], sha256sum(&weights));
    assert_eq!(twin["units"], 25);
    assert_eq!(manifest.seeds["twin"], 3);

    // The truth's rates are the twin's: every cell fires, at rates the simulated population's
    // seed did not draw (a different drive gives different rates).
    let rates = read_npy_f32(&s.session_dir.join("truth/rates.npy"));
    assert_eq!(rates.len() as u64, 25 * frames);
    assert!(rates.iter().all(|r| r.is_finite() && *r >= 0.0));
    assert!(rates.iter().any(|&r| r > 0.0));

    assert_replays_exactly(&s.session_dir, frames);
}

#[test]
fn a_twin_whose_weights_do_not_load_fails_validation_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = twin_config(tmp.path(), 1.0);
    if let Some(t) = &mut cfg.source.twin {
        t.weights = tmp.path().join("missing.safetensors");
    }
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("source.twin.weights") && e.contains("missing.safetensors"),
        "{e}"
    );
    cfg.source.twin = None;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("source.twin") && e.contains("[source.twin]"),
        "{e}"
    );
}

#[test]
fn a_fast_session_s_activity_is_the_twins_spike_counts_and_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let duration_s = 6.0;
    let mut cfg = twin_config(tmp.path(), duration_s);
    if let Some(t) = &mut cfg.source.twin {
        t.mode = TwinMode::Fast;
    }
    // No image is made: a small field of view is enough to carry 25 counts (and the anatomy).
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg.session.record_frames = true;
    cfg.validate().expect("a valid fast twin config");
    let s = run_session(&cfg);
    let frames = (duration_s * cfg.imaging.frame_rate_hz).round() as u64;
    assert_eq!(s.counters.frames_in, frames, "every imaging frame arrived");
    assert_eq!(s.counters.frames_processed, frames);
    assert_eq!(s.cells, 25, "one cell per twin unit");
    let dir = SessionDir::open(&s.session_dir).unwrap();
    let manifest = dir.read_manifest().unwrap();
    let twin = manifest.twin.expect("the twin is in the manifest");
    assert_eq!(
        twin["weights_sha256"],
        sha256sum(&fixture("parity_weights.safetensors"))
    );

    // Each frame's activity is exactly the spikes the twin's Poisson draws gave that frame
    // (the truth, written by the simulator's own bookkeeping), and those scatter around the
    // twin's predicted counts (rates per frame; the rates themselves are checked against the
    // model crate in `sim::twin_tests`).
    let spikes = read_npy_f32(&s.session_dir.join("truth/spikes.npy"));
    let rates = read_npy_f32(&s.session_dir.join("truth/rates.npy"));
    assert_eq!(spikes.len() as u64, 25 * frames);
    let (records, _) = dir.open_log().unwrap().read_to_end().unwrap();
    let activity: Vec<_> = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .map(|r| records::decode_activity(&r.payload).unwrap())
        .collect();
    assert_eq!(activity.len() as u64, frames);
    for a in &activity {
        assert_eq!(a.values.len(), 25);
        for (u, &v) in a.values.iter().enumerate() {
            let want = spikes[u * frames as usize + a.frame_seq as usize];
            assert_eq!(v, want, "frame {} unit {u}", a.frame_seq);
        }
    }
    let counted: f64 = spikes.iter().map(|&v| f64::from(v)).sum();
    let expected: f64 = rates
        .iter()
        .map(|&r| f64::from(r) / cfg.imaging.frame_rate_hz)
        .sum();
    assert!(expected > 20.0, "the twin predicts spikes: {expected}");
    assert!(
        (counted - expected).abs() < 5.0 * expected.sqrt(),
        "{counted} spikes against {expected} predicted"
    );

    let r = assert_replays_exactly(&s.session_dir, frames);
    assert_eq!(r.activity_compared, frames);
    #[cfg(feature = "nwb")]
    nwb_names_the_twin_as_the_subject(&s.session_dir, &twin);
}

/// The NWB export of a twin session says the subject is simulated, by which twin (read back
/// with pynwb).
#[cfg(feature = "nwb")]
fn nwb_names_the_twin_as_the_subject(session: &Path, twin: &serde_json::Value) {
    let out = session.join("export.nwb");
    twinloop_rig::offline::export::nwb::export(session, &out).expect("export");
    let py = twinloop_e2e::python::python_command()
        .args([
            "-c",
            "import json, sys\nfrom pynwb import NWBHDF5IO\n\
             with NWBHDF5IO(sys.argv[1], 'r') as io:\n\
             \x20   s = io.read().subject\n\
             \x20   print(json.dumps({'id': s.subject_id, 'description': s.description}))\n",
        ])
        .arg(&out)
        .output()
        .expect("python with pynwb (tests/requirements.txt; set TWINLOOP_PYTHON)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let subject: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(subject["id"], "twin");
    let description = subject["description"].as_str().unwrap();
    assert!(description.starts_with("simulated"), "{description}");
    for key in ["weights_sha256", "core_sha256"] {
        let want = twin[key].as_str().expect(key);
        assert!(
            description.contains(want),
            "{key} {want} not in {description}"
        );
    }
}

#[test]
fn fast_mode_refuses_settings_that_need_pixels_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = twin_config(tmp.path(), 1.0);
    if let Some(t) = &mut cfg.source.twin {
        t.mode = TwinMode::Fast;
    }
    cfg.validate().expect("fast mode on the truth footprints");
    for extraction in [Extraction::Pipeline, Extraction::Grid] {
        cfg.imaging.extraction = extraction;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("imaging.extraction") && e.contains("truth_footprints"),
            "{e}"
        );
    }
    // (A field of view too small for the counts is refused too: `sim::twin_tests`.)
}

/// The shipped configs find their twin relative to themselves, wherever they are run from.
#[test]
fn the_shipped_twin_configs_load_their_twin() {
    for (name, mode) in [
        ("twin.toml", TwinMode::Full),
        ("twin-fast.toml", TwinMode::Fast),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name);
        let cfg = Config::load(&path).expect(name);
        assert_eq!(cfg.source.kind, SourceKind::Twin);
        assert_eq!(
            cfg.source.twin.as_ref().map(|t| t.mode),
            Some(mode),
            "{name}"
        );
        let twin = cfg.source_twin().unwrap().expect("a twin");
        assert_eq!(twin.identity.units, cfg.sim.neurons);
    }
}
