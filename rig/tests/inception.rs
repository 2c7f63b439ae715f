//! The inception protocol in a session (issue #18): a simulated v1_rich mouse, the reduced fnn
//! network as the twin, not in real time (the design block's end waits for the design, so the
//! test does not depend on this machine's speed). Small on purpose: 2 targets, 1 random
//! control, 10 repeats, 2-frame in-silico presentations.
//!
//! - A session runs record → design → verify and ends with a verdict in `summary.json`; every
//!   verify trial's predictions are in the log before its decision, and its decision before its
//!   onset; every verify image meets its luminance/contrast budget within ±5% (measured here).
//! - `replay` reproduces every decision, every protocol note (predictions included) and the
//!   verdict, bit for bit, from the log alone.
//! - kill -9 during the design and during the verify block leaves a log that replays up to its
//!   last record.
//! - The dashboard's Inception tile, fed what the daemon published on its `inception` stream
//!   (subscribed to here), shows the logged images and predictions and the measured means and
//!   verdict line that `summary.json` holds.
//! - The report's Inception section embeds every logged image (decoded back here: the same
//!   pixels), the means figure and the selectivity heat map.
//! - The NWB export (feature `nwb`) carries every verify image as a `GrayscaleImage` in
//!   `/stimulus/templates` and the per-target table in `/analysis`: read back with pynwb
//!   (`TWINLOOP_PYTHON`), pixels equal the log's and table values the summary's; nwbinspector
//!   finds nothing critical or erroneous.

mod common;

use common::{small_loop_config, twinloop, wait};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use twinloop_rig::backbone::session_log::LogReader;
use twinloop_rig::vocab::records::{self, RecordKind};

fn config(dir: &Path) -> PathBuf {
    let path = small_loop_config(
        dir,
        "inception.toml",
        &[
            ("duration_s = 90.0", "duration_s = 300.0".into()),
            ("record_frames = false", "record_frames = true".into()),
            ("width = 320", "width = 32".into()),
            ("height = 240", "height = 32".into()),
            ("stimulus_s = 2.0", "stimulus_s = 1.0".into()),
            ("gray_s = 1.0", "gray_s = 0.5".into()),
            ("test_every = 5", "test_every = 3".into()),
            (
                "warmup_trials = 8",
                "warmup_trials = 4\ndeadline_ms = 0.0\ntwin_refit_every = 0\ntwin_refit_steps = 4"
                    .into(),
            ),
            ("final_refit_steps = 60", "final_refit_steps = 0".into()),
            ("neurons = 1000", "neurons = 30".into()),
            (
                "seed = 7",
                "seed = 5\n\n[sim.cells]\nmodel = \"v1_rich\"".into(),
            ),
        ],
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[inception]\nrecord_s = 120.0\ndesign_s = 10.0\nverify_repeats = 10\n\
         min_heldout_cc = 0.0\nmax_targets = 2\nrandom_controls = 1\nlibrary_size = 10000\n\
         mei_steps = 5\ndesign_frames = 2\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn session_dir(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("out"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
}

/// The log's records of interest, in order: `(index, kind, JSON)`.
fn log_json(session: &Path) -> Vec<(usize, RecordKind, Value)> {
    let mut out = Vec::new();
    let Ok(mut reader) = LogReader::open(session.join("records.log")) else {
        return out;
    };
    let mut buf = Vec::new();
    let mut k = 0;
    while let Ok(Some(info)) = reader.next_into(&mut buf) {
        k += 1;
        let kind = RecordKind::from_code(info.kind);
        if let Some(kind @ (RecordKind::Note | RecordKind::Decision | RecordKind::Stimulus)) = kind
            && let Ok(v) = records::decode_json::<Value>("json", &buf)
        {
            out.push((k, kind, v));
        }
    }
    out
}

fn event(v: &Value) -> &str {
    v.get("event").and_then(Value::as_str).unwrap_or("")
}

fn spawn(cfg: &Path) -> Child {
    twinloop()
        .arg("run")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Pixel mean and RMS contrast in [0, 1] units, computed here, not by the code under test.
fn photometry(pixels: &[u8]) -> (f64, f64) {
    let n = pixels.len() as f64;
    let x: Vec<f64> = pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Collects what the daemon publishes on its `inception` stream, from before the protocol
/// starts until [`Published::finish`].
struct Published {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Value>>,
}

impl Published {
    fn start(dir: &Path) -> Published {
        use std::sync::atomic::Ordering;
        let endpoint = format!("ipc://{}", dir.join("pub").display());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let ctx = zmq::Context::new();
            let sub = ctx.socket(zmq::SUB).unwrap();
            sub.set_subscribe(b"inception").unwrap();
            sub.set_rcvtimeo(100).unwrap();
            sub.connect(&endpoint).unwrap();
            let mut notes = Vec::new();
            loop {
                match sub.recv_multipart(0) {
                    Ok(parts) => {
                        let frames: Vec<bytes::Bytes> =
                            parts.into_iter().map(bytes::Bytes::from).collect();
                        let m = twinloop_rig::vocab::protocol::Message::parse(&frames).unwrap();
                        notes.push(serde_json::from_slice(&m.payload).unwrap());
                    }
                    Err(_) if flag.load(Ordering::Acquire) => return notes,
                    Err(_) => {}
                }
            }
        });
        Published { stop, thread }
    }

    fn finish(self) -> Vec<Value> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// The dashboard's state fed what was published: its Inception tile against the log (images,
/// predictions) and the summary (measured means, n, SEMs and the verdict line, which the
/// verdict computed from its own tally).
fn check_dashboard(published: Vec<Value>, log: &[(usize, RecordKind, Value)], inc: &Value) {
    use twinloop_rig::online::dashboard::{DashEvent, DashState};
    let logged: Vec<&Value> = log
        .iter()
        .filter(|(_, k, v)| *k == RecordKind::Note && event(v).starts_with("inception."))
        .map(|(_, _, v)| v)
        .collect();
    let notes: Vec<&Value> = published
        .iter()
        .filter(|v| event(v) != "inception.response")
        .collect();
    assert_eq!(
        notes, logged,
        "every logged protocol note is published, in order"
    );
    let mut state = DashState::new(8, 30.0);
    for v in published {
        state.apply(DashEvent::Inception(v));
    }
    let snap = state.snapshot();
    assert_eq!(state.event_counts().1, 0, "{}", snap["state"]);
    let tile = &snap["inception"];
    assert_eq!(tile["unmatched_responses"], 0);
    let round = &tile["rounds"][0];
    let verdict = &inc["rounds"][0]["verdict"];
    assert_eq!(round["line"], verdict["line"]);
    assert_eq!(round["responses"], verdict["responses_measured"]);
    // Images: the served PNGs decode to the logged pixels.
    let mut images = std::collections::BTreeMap::new();
    for v in logged
        .iter()
        .filter(|v| event(v) == "inception.design_message")
    {
        for s in v["payload"]["stimuli"].as_array().into_iter().flatten() {
            images.insert(s["id"].as_str().unwrap().to_string(), s.clone());
        }
    }
    let pngs: std::collections::BTreeMap<_, _> =
        state.inception_pngs().unwrap().into_iter().collect();
    let close = |a: &Value, b: &Value| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        (a - b).abs() <= 1e-4 * b.abs().max(1e-12)
    };
    for t in round["targets"].as_array().unwrap() {
        let k = t["target"].as_u64().unwrap() as usize;
        let tv = verdict["mei_low"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["target"] == k);
        for s in t["stimuli"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let logged = &images[id];
            assert!(close(&s["predicted"], &logged["predicted"][k]), "{id}: {s}");
            let png = &pngs[&(1, s["stimulus"].as_u64().unwrap() as usize)];
            let px = png_pixels(png);
            let want: Vec<u8> = serde_json::from_value(logged["pixels"].clone()).unwrap();
            assert_eq!(px, want, "{id}");
            // The measured mean ± SEM (n) beside the verdict's, for the MEI and the baseline.
            let Some(tv) = tv else { continue };
            let from_verdict = match s["role"].as_str().unwrap() {
                "mei_low" => &tv["challenger"],
                "best_pool" => &tv["best_pool"],
                _ => continue,
            };
            let m = &s["measured"];
            assert_eq!(m["n"], from_verdict["n"], "{id}: {m} vs {from_verdict}");
            assert!(
                close(&m["mean"], &from_verdict["mean"]),
                "{id}: {m} vs {from_verdict}"
            );
            assert!(
                close(&m["sem"], &from_verdict["sem"]),
                "{id}: {m} vs {from_verdict}"
            );
        }
    }
}

/// The pixels of a PNG, as the png crate decodes them.
fn png_pixels(png: impl AsRef<[u8]>) -> Vec<u8> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png.as_ref()))
        .read_info()
        .unwrap();
    let mut px = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut px).unwrap();
    px.truncate(info.buffer_size());
    px
}

/// The report embeds each logged image as a PNG `data:` URI beside its id; decoded here (base64
/// and png crates), each is the log's pixels.
fn check_report(session: &Path, log: &[(usize, RecordKind, Value)]) {
    use base64::Engine;
    let report = twinloop_rig::offline::report::render(session).unwrap();
    let html = &report.html;
    assert!(html.contains("Measured (mean ± SEM) and predicted responses per target"));
    assert!(html.contains("Selectivity: mean response of target i"));
    let mut n = 0;
    for (_, _, v) in log
        .iter()
        .filter(|(_, _, v)| event(v) == "inception.design_message")
    {
        for s in v["payload"]["stimuli"].as_array().into_iter().flatten() {
            let id = s["id"].as_str().unwrap();
            let alt = format!("alt=\"{id}\"");
            let at = html
                .find(&alt)
                .unwrap_or_else(|| panic!("no image {id} in the report"));
            let start = html[..at].rfind("data:image/png;base64,").unwrap() + 22;
            let end = start + html[start..].find('"').unwrap();
            let png = base64::engine::general_purpose::STANDARD
                .decode(&html[start..end])
                .unwrap();
            let px = png_pixels(png);
            let want: Vec<u8> = serde_json::from_value(s["pixels"].clone()).unwrap();
            assert_eq!(px, want, "{id}");
            n += 1;
        }
    }
    assert!(n > 0);
}

/// Reads the export's inception images and table with pynwb, and runs nwbinspector.
#[cfg(feature = "nwb")]
const READ_NWB: &str = r#"
import json, sys
from pynwb import NWBHDF5IO
from nwbinspector import inspect_nwbfile, Importance
with NWBHDF5IO(sys.argv[1], 'r') as io:
    nwb = io.read()
    images = nwb.stimulus_template['inception_images']
    out = {'images': {k: {'pixels': v.data[:].tolist(), 'type': type(v).__name__,
                          'description': v.description} for k, v in images.images.items()}}
    table = nwb.analysis['inception_targets'].to_dataframe()
    out['table'] = {c: [None if x != x else x for x in table[c].tolist()] for c in table.columns}
worst = [Importance.CRITICAL, Importance.PYNWB_VALIDATION, Importance.ERROR]
out['bad'] = [f"{m.importance.name} {m.check_function_name}: {m.message}"
              for m in inspect_nwbfile(nwbfile_path=sys.argv[1]) if m.importance in worst]
print(json.dumps(out))
"#;

#[cfg(feature = "nwb")]
fn check_nwb(session: &Path, log: &[(usize, RecordKind, Value)], inc: &Value) {
    use twinloop_rig::offline::export::nwb;
    let out = session.parent().unwrap().join("inception.nwb");
    let done = nwb::export(session, &out).expect("export");
    let python = std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = std::process::Command::new(&python)
        .args(["-c", READ_NWB])
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): set TWINLOOP_PYTHON"));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(read["bad"], serde_json::json!([]), "nwbinspector");
    // Every logged image, pixel for pixel, under its round and id.
    let mut n = 0;
    for (_, _, v) in log
        .iter()
        .filter(|(_, _, v)| event(v) == "inception.design_message")
    {
        let round = v["round"].as_u64().unwrap() as u32;
        for s in v["payload"]["stimuli"].as_array().into_iter().flatten() {
            let name = nwb::inception::image_name(round, s["id"].as_str().unwrap());
            let got = &read["images"][&name];
            assert_eq!(got["type"], "GrayscaleImage", "{name}");
            let (h, w) = (s["height"].as_u64().unwrap(), s["width"].as_u64().unwrap());
            let rows = got["pixels"].as_array().unwrap();
            assert_eq!(rows.len() as u64, h, "{name}");
            let flat: Vec<&Value> = rows.iter().flat_map(|r| r.as_array().unwrap()).collect();
            assert_eq!(flat.len() as u64, h * w, "{name}");
            let want = s["pixels"].as_array().unwrap();
            assert!(
                flat.iter().zip(want).all(|(a, b)| a == &b),
                "{name}: pixels differ"
            );
            n += 1;
        }
    }
    assert_eq!(done.inception_images, n);
    assert_eq!(read["images"].as_object().unwrap().len(), n);
    // The table: one row per target, its numbers the summary's.
    let t = &read["table"];
    let round = &inc["rounds"][0];
    let targets = round["verdict"]["mei_low"]["targets"].as_array().unwrap();
    assert_eq!(t["target"].as_array().unwrap().len(), targets.len());
    for (row, tv) in targets.iter().enumerate() {
        let k = tv["target"].as_u64().unwrap() as usize;
        let cell = &round["targets"][k]["cell"];
        assert_eq!(t["target"][row], k);
        assert_eq!(t["plane"][row], cell["plane"]);
        assert_eq!(t["cell"][row], cell["cell"]);
        for (col, want) in [
            ("mei_measured_mean", &tv["challenger"]["mean"]),
            ("mei_measured_se", &tv["challenger"]["sem"]),
            ("mei_n", &tv["challenger"]["n"]),
            ("mei_predicted", &tv["predicted_challenger"]),
            ("best_pool_measured_mean", &tv["best_pool"]["mean"]),
            ("best_pool_measured_se", &tv["best_pool"]["sem"]),
            ("best_pool_predicted", &tv["predicted_best_pool"]),
            ("p_value", &tv["welch"]["p_value"]),
            ("q_value", &tv["q"]),
        ] {
            let got = &t[col][row];
            match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => assert_eq!(a, b, "{col} of target {k}"),
                _ => assert!(got.is_null() && want.is_null(), "{col}: {got} vs {want}"),
            }
        }
        let gain =
            tv["challenger"]["mean"].as_f64().unwrap() - tv["best_pool"]["mean"].as_f64().unwrap();
        assert_eq!(t["measured_gain"][row].as_f64().unwrap(), gain);
        let mei = t["mei_image"][row].as_str().unwrap();
        assert!(read["images"].get(mei).is_some(), "{mei}");
    }
}

#[test]
fn a_session_runs_record_design_verify_and_replay_reproduces_its_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let published = Published::start(tmp.path());
    let mut child = spawn(&cfg);
    assert!(wait(&mut child).success());
    let published = published.finish();
    let session = session_dir(tmp.path()).unwrap();

    let summary: Value =
        serde_json::from_slice(&std::fs::read(session.join("summary.json")).unwrap()).unwrap();
    let inc = &summary["inception"];
    assert_eq!(inc["phase"], "Done", "{inc}");
    assert_eq!(inc["fallbacks"], 0, "{inc}");
    let round = &inc["rounds"][0];
    assert_eq!(round["designed"], true, "{round}");
    let targets = round["targets"].as_array().unwrap().len();
    assert!((1..=2).contains(&targets), "{round}");
    let v = &round["verdict"];
    // 4 stimuli per target and the random control (fewer when a best pool stimulus is shared),
    // 10 repeats each, every one's responses measured.
    let shown = v["presentations"].as_u64().unwrap();
    assert!(shown >= 10 * (2 * targets as u64 + 2) && shown <= 10 * (4 * targets as u64 + 1));
    assert_eq!(v["responses_measured"], shown);
    assert!(
        v["line"]
            .as_str()
            .unwrap()
            .starts_with("MEI (low contrast) beat the best measured pool"),
        "{v}"
    );
    assert_eq!(v["mei_low"]["targets"].as_array().unwrap().len(), targets);

    // The log: pre-registration before any design result; each verify trial's note (with its
    // predictions) before its decision, the decision before its onset; images on budget.
    let log = log_json(&session);
    let pos = |e: &str| {
        log.iter()
            .position(|(_, k, v)| *k == RecordKind::Note && event(v) == e)
    };
    assert!(pos("inception.preregistration").unwrap() < pos("inception.design_message").unwrap());
    let mut designed = std::collections::BTreeMap::new();
    for (_, _, v) in log
        .iter()
        .filter(|(_, _, v)| event(v) == "inception.design_message")
    {
        for s in v["payload"]["stimuli"].as_array().into_iter().flatten() {
            designed.insert(
                s["id"].as_str().unwrap().to_string(),
                s["predicted"].clone(),
            );
        }
    }
    let mut verify = 0;
    for (i, (_, kind, d)) in log.iter().enumerate() {
        if *kind != RecordKind::Decision || d["mode"] != "verify" {
            continue;
        }
        verify += 1;
        let trial = &d["trial"];
        let note = log[..i]
            .iter()
            .rev()
            .find(|(_, _, v)| event(v) == "inception.verify_trial" && &v["trial"] == trial)
            .unwrap_or_else(|| panic!("trial {trial}: no prediction logged before its decision"));
        assert_eq!(
            note.2["predicted"],
            designed[note.2["stimulus"].as_str().unwrap()]
        );
        let onset = log
            .iter()
            .position(|(_, k, v)| *k == RecordKind::Stimulus && &v["trial"] == trial);
        assert!(
            onset.is_none_or(|o| o > i),
            "trial {trial} shown before its decision"
        );
        let px: Vec<u8> = serde_json::from_value(d["spec"]["pixels"].clone())
            .unwrap_or_else(|e| panic!("trial {trial}: {e}: {}", d["spec"]));
        let (mean, rms) = photometry(&px);
        assert!(
            (mean - 0.5).abs() <= 0.05 * 0.5,
            "trial {trial}: mean {mean}"
        );
        assert!(
            [0.1, 0.25].iter().any(|c| (rms - c).abs() <= 0.05 * c),
            "trial {trial}: RMS contrast {rms}"
        );
    }
    assert_eq!(verify as u64, shown);
    check_dashboard(published, &log, inc);
    check_report(&session, &log);
    #[cfg(feature = "nwb")]
    check_nwb(&session, &log, inc);

    let r = twinloop_rig::offline::replay::replay(&session).unwrap();
    assert!(r.reproduced(), "{r:?}");
    assert_eq!(r.decisions_reproduced, r.decisions_logged);
    assert!(r.selector_notes_logged as usize > verify);
    assert_eq!(r.selector_notes_reproduced, r.selector_notes_logged);
    assert_eq!(r.verdict_reproduced, Some(true));
    let again = serde_json::to_string(r.verdict.as_ref().unwrap()).unwrap();
    let mut replayed: Value = serde_json::from_str(&again).unwrap();
    replayed.as_object_mut().unwrap().remove("event");
    assert_eq!(&replayed, inc);
}

/// kill -9 once the design has started (its pre-registration logged) and once the verify block
/// is under way: what the log holds replays, decisions and protocol notes alike.
#[test]
fn kill_9_during_design_or_verify_leaves_a_log_that_replays() {
    for (when, enough) in [
        ("inception.preregistration", 1),
        ("inception.verify_trial", 5),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let mut child = spawn(&cfg);
        let start = Instant::now();
        loop {
            let seen = session_dir(tmp.path())
                .map(|s| {
                    log_json(&s)
                        .iter()
                        .filter(|(_, _, v)| event(v) == when)
                        .count()
                })
                .unwrap_or(0);
            if seen >= enough {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the session ended before {when}"
            );
            assert!(start.elapsed() < Duration::from_secs(1800), "hang guard");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let session = session_dir(tmp.path()).unwrap();
        let r = twinloop_rig::offline::replay::replay(&session).unwrap();
        assert!(r.decisions_logged > 0, "{when}: {r:?}");
        assert_eq!(r.decisions_reproduced, r.decisions_logged, "{when}: {r:?}");
        assert_eq!(r.activity_mismatches, 0, "{when}");
        assert!(r.selector_notes_logged > 0, "{when}");
        assert_eq!(
            r.selector_notes_reproduced, r.selector_notes_logged,
            "{when}: {:?}",
            r.first_selector_note_mismatch
        );
        assert_eq!(
            r.verdict_reproduced, None,
            "{when}: killed before any verdict"
        );
        assert!(r.reproduced(), "{when}: {r:?}");
    }
}
