//! `twinloop twin recording` against a real session: a short simulated session (the daemon and
//! the simulated rig) is turned into the twin's `Recording`, and each part is checked against
//! the session log read here independently (raw records, not the exporter's reader) and the
//! simulator's truth: responses are the logged activity; each stimulus frame is the logged
//! spec re-rendered at the frame's time (gray between trials); behaviour is z-scored and
//! follows the simulator's true pupil and running; the true rates are the simulator's, row by
//! row. Lost frames and missing behaviour (injected by rewriting the log) split segments; a
//! recording round-trips through its directory; a missing or cut log is handled.
//!
//! Measured (8 s session, seed 7 with frequent running bouts): r(z-scored behaviour, the
//! simulator's) pupil radius 1.000, running 0.996, gaze x 1.000, gaze y -0.998 (eye-camera rows
//! grow downward); the floors below sit under these.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use twinloop_e2e::{fast_sim_config, fresh_dir, pearson, run_session};
use twinloop_rig::backbone::session_log::{LogWriter, RECORDS_LOG_FILE, Record, SessionDir};
use twinloop_rig::config::Config;
use twinloop_rig::offline::twin_data::{Recording, TRUTH_FILE, recording_from_session};
use twinloop_rig::vocab::records::{self, FlipRecord, RecordKind};
use twinloop_stimulus::{Prepared, Projection, StimulusSpec, ViewGeometry, cpu};

const H: usize = 36;
const W: usize = 64;

/// One session shared by the tests (running it is the slow part), in a fixed directory replaced
/// on each run (see `fresh_dir`).
fn session() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("twin_recording-session"));
        let mut cfg = fast_sim_config(&root, 8.0);
        cfg.imaging.width = 256;
        cfg.imaging.height = 256;
        cfg.sim.neurons = 120;
        // Running bouts within a few seconds (the default mouse is still for ~20 s at a time).
        cfg.sim.behaviour.run_start_rate_hz = 1.0;
        cfg.sim.behaviour.run_stop_rate_hz = 0.5;
        // Short trials and an early, frequent test block, so test stimuli repeat.
        cfg.trials.stimulus_s = 0.3;
        cfg.trials.gray_s = 0.2;
        cfg.trials.design.warmup_trials = 1;
        cfg.trials.design.test_every = 2;
        cfg.trials.design.deadline_ms = 0.0;
        run_session(&cfg).session_dir
    })
}

fn log_records(dir: &Path) -> Vec<Record> {
    SessionDir::open(dir)
        .unwrap()
        .open_log()
        .unwrap()
        .read_to_end()
        .unwrap()
        .0
}

/// What the log says, read directly.
struct Logged {
    /// Plane-0 activity: (seq, t_ns, values).
    activity: Vec<(u64, i64, Vec<f32>)>,
    /// Behaviour by frame seq: the record's JSON.
    behaviour: BTreeMap<u64, Value>,
    flips: Vec<FlipRecord>,
    /// Stimulus records by trial.
    stimuli: BTreeMap<i64, Value>,
}

fn read_logged(dir: &Path) -> Logged {
    let mut l = Logged {
        activity: vec![],
        behaviour: BTreeMap::new(),
        flips: vec![],
        stimuli: BTreeMap::new(),
    };
    for r in log_records(dir) {
        match RecordKind::from_code(r.info.kind) {
            Some(RecordKind::Activity) => {
                let a = records::decode_activity(&r.payload).unwrap();
                if a.plane == 0 {
                    l.activity.push((a.frame_seq, a.t.as_nanos(), a.values));
                }
            }
            Some(RecordKind::Behaviour) => {
                let b: Value = serde_json::from_slice(&r.payload).unwrap();
                l.behaviour.insert(b["frame_seq"].as_u64().unwrap(), b);
            }
            Some(RecordKind::Flip) => l.flips.push(FlipRecord::decode(&r.payload).unwrap()),
            Some(RecordKind::Stimulus) => {
                let s: Value = serde_json::from_slice(&r.payload).unwrap();
                l.stimuli.insert(s["trial"].as_i64().unwrap(), s);
            }
            _ => {}
        }
    }
    l
}

/// Runs of consecutive sequence numbers whose behaviour has all four values (computed from the
/// raw records, independently of the reader).
fn expected_segments(l: &Logged) -> Vec<std::ops::Range<usize>> {
    let ok = |seq: &u64| has_behaviour(l, *seq);
    let mut out = Vec::new();
    let mut start = None;
    for (i, (seq, _, _)) in l.activity.iter().enumerate() {
        let continues = i > 0 && *seq == l.activity[i - 1].0 + 1;
        if let Some(s) = start
            && !(continues && ok(seq))
        {
            out.push(s..i);
            start = None;
        }
        if start.is_none() && ok(seq) {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(s..l.activity.len());
    }
    out
}

/// Whether frame `seq`'s behaviour record has all four values.
fn has_behaviour(l: &Logged, seq: u64) -> bool {
    l.behaviour.get(&seq).is_some_and(|b| {
        [
            "pupil_x_px",
            "pupil_y_px",
            "pupil_radius_px",
            "treadmill_cm_s",
        ]
        .iter()
        .all(|k| b[*k].is_number())
    })
}

fn config(dir: &Path) -> Config {
    let manifest = SessionDir::open(dir).unwrap().read_manifest().unwrap();
    serde_json::from_value(manifest.config).unwrap()
}

fn column(v: &[f32], cols: usize, c: usize) -> Vec<f64> {
    v.chunks_exact(cols).map(|r| f64::from(r[c])).collect()
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn responses_stimulus_behaviour_and_truth_follow_the_log_and_the_simulator() {
    let dir = session();
    let out = recording_from_session(dir, H, W).unwrap();
    let rec = &out.recording;
    let logged = read_logged(dir);
    let u = rec.units();

    // Responses: the logged activity, row by row.
    assert_eq!(rec.len(), logged.activity.len());
    assert!(rec.len() > 200, "{} frames", rec.len());
    assert_eq!(u, logged.activity[0].2.len());
    assert_eq!(rec.meta.unit_ids, (0..u as u32).collect::<Vec<_>>());
    for (i, (_, _, values)) in logged.activity.iter().enumerate() {
        assert!(same_f32(rec.response(i), values), "row {i}");
    }
    assert!(
        (rec.meta.frame_hz - 30.0).abs() < 0.1,
        "{}",
        rec.meta.frame_hz
    );

    // Stimulus: the spec on screen at each frame's time, re-rendered here.
    let cfg = config(dir);
    let view = ViewGeometry {
        width: W,
        height: H,
        ..cfg.display.view()
    };
    let projection = Projection::Linear(view);
    let onsets: BTreeMap<i64, u64> = logged
        .flips
        .iter()
        .filter(|f| f.onset)
        .map(|f| (f.trial, f.display_frame))
        .collect();
    let mut expected = vec![0u8; H * W];
    let (mut gray_rows, mut trial_rows) = (0, 0);
    for (i, (_, t, _)) in logged.activity.iter().enumerate() {
        let on_screen = logged.flips.iter().rfind(|f| f.t.as_nanos() <= *t);
        match on_screen {
            Some(f) if f.trial >= 0 => {
                let spec: StimulusSpec =
                    serde_json::from_value(logged.stimuli[&f.trial]["spec"].clone()).unwrap();
                let k = f.display_frame - onsets[&f.trial];
                let mut prepared = Prepared::new(&spec).unwrap();
                let content = prepared.frame(k as f64 / cfg.display.refresh_hz);
                cpu::render_content(&content, &projection, &mut expected);
                trial_rows += 1;
            }
            _ => {
                expected.fill(cpu::MEAN_GRAY);
                gray_rows += 1;
            }
        }
        assert_eq!(rec.frame(i), &expected[..], "row {i}");
    }
    assert!(
        gray_rows > 20 && trial_rows > 100,
        "{gray_rows} gray, {trial_rows} in trials"
    );

    // Trials: every shown trial's rows, repeats sharing keys exactly when their specs are equal.
    assert!(rec.meta.trials.len() >= 10, "{:?}", rec.meta.trials);
    let mut by_key: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for tr in &rec.meta.trials {
        let f = logged
            .flips
            .iter()
            .rfind(|f| f.t.as_nanos() <= logged.activity[tr.start].1)
            .unwrap();
        assert!(f.trial >= 0, "a trial starts on a frame showing it");
        by_key
            .entry(&tr.stimulus)
            .or_default()
            .push(&logged.stimuli[&f.trial]["spec"]);
    }
    let repeated = by_key.values().filter(|specs| specs.len() > 1).count();
    assert!(repeated > 0, "the test block repeats: {by_key:?}");
    let specs: Vec<&Value> = by_key.values().map(|s| s[0]).collect();
    for (key, group) in &by_key {
        assert!(group.iter().all(|s| *s == group[0]), "{key}");
    }
    for (i, a) in specs.iter().enumerate() {
        assert!(specs[i + 1..].iter().all(|b| a != b), "one key per spec");
    }

    // Behaviour: z-scored, the standardisation recorded, and the raw values recovered from it.
    let s = rec.meta.standardisation.expect("standardisation recorded");
    // The simulated eye blinks and the behaviour of the last frames may not be in: a few
    // frames have no pupil or treadmill.
    assert_eq!(rec.meta.segments, expected_segments(&logged));
    let in_segments: Vec<usize> = rec.meta.segments.iter().flat_map(|r| r.clone()).collect();
    assert!(
        in_segments.len() > rec.len() * 9 / 10,
        "{:?}",
        rec.meta.segments
    );
    for (arr, mean, sd, names) in [
        (
            &rec.perspective,
            s.perspective_mean,
            s.perspective_sd,
            ["pupil_x_px", "pupil_y_px"],
        ),
        (
            &rec.modulation,
            s.modulation_mean,
            s.modulation_sd,
            ["pupil_radius_px", "treadmill_cm_s"],
        ),
    ] {
        for c in 0..2 {
            let z = column(arr, 2, c);
            let zs: Vec<f64> = in_segments.iter().map(|&i| z[i]).collect();
            let m = zs.iter().sum::<f64>() / zs.len() as f64;
            let v = zs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / zs.len() as f64;
            assert!(
                m.abs() < 1e-4 && (v.sqrt() - 1.0).abs() < 1e-3,
                "{}: {m} {v}",
                names[c]
            );
            for &i in &in_segments {
                let seq = &logged.activity[i].0;
                let raw = logged.behaviour[seq][names[c]].as_f64().unwrap();
                let back = z[i] * sd[c] + mean[c];
                assert!(
                    (back - raw).abs() < 1e-4 * (1.0 + raw.abs()),
                    "{}",
                    names[c]
                );
            }
        }
    }

    // Against the simulator: its frames are the plane's sequence numbers.
    let truth_dir = SessionDir::open(dir).unwrap().truth_dir();
    let (_, behaviour) =
        twinloop_rig::vocab::npy::read_f32(&truth_dir.join("behaviour.npy")).unwrap();
    let true_col = |c: usize| -> Vec<f64> {
        logged
            .activity
            .iter()
            .map(|(seq, _, _)| f64::from(behaviour[*seq as usize * 4 + c]))
            .collect()
    };
    let pick = |v: Vec<f64>| -> Vec<f64> { in_segments.iter().map(|&i| v[i]).collect() };
    let r = |arr: &[f32], c: usize, t: usize| pearson(&pick(column(arr, 2, c)), &pick(true_col(t)));
    let r_radius = r(&rec.modulation, 0, 2);
    let r_running = r(&rec.modulation, 1, 3);
    let r_gaze_x = r(&rec.perspective, 0, 0);
    let r_gaze_y = r(&rec.perspective, 1, 1);
    eprintln!(
        "r with truth: radius {r_radius:.3}, running {r_running:.3}, gaze x {r_gaze_x:.3}, \
         gaze y {r_gaze_y:.3}"
    );
    assert!(r_radius > 0.9, "{r_radius}");
    assert!(r_running > 0.9, "{r_running}");
    assert!(
        r_gaze_x.abs() > 0.8 && r_gaze_y.abs() > 0.8,
        "{r_gaze_x} {r_gaze_y}"
    );

    // True rates: the simulator's, for every cell (footprint extraction: column = cell).
    let truth = out.truth.as_ref().expect("a simulated session has truth");
    assert_eq!(out.truth_matched, u);
    let (shape, rates) = twinloop_rig::vocab::npy::read_f32(&truth_dir.join("rates.npy")).unwrap();
    let n_frames = shape[1] as usize;
    for (i, (seq, _, _)) in logged.activity.iter().enumerate() {
        for c in 0..u {
            assert_eq!(
                truth[i * u + c].to_bits(),
                rates[c * n_frames + *seq as usize].to_bits(),
                "row {i} unit {c}"
            );
        }
    }
}

/// The session's log with some records left out or changed.
fn rewritten(dir: &Path, to: &Path, mut keep: impl FnMut(&Record) -> Option<Vec<u8>>) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != RECORDS_LOG_FILE {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let mut w = LogWriter::create(to.join(RECORDS_LOG_FILE)).unwrap();
    for r in log_records(dir) {
        if let Some(payload) = keep(&r) {
            w.append(r.info.kind, &payload).unwrap();
        }
    }
    w.finish().unwrap();
}

#[test]
fn lost_frames_and_missing_behaviour_end_segments() {
    let dir = session();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut");
    // Frames 100..103 lost (no activity), and a frame whose neighbours have behaviour made to
    // have no pupil.
    let original = read_logged(dir);
    let blind = (150..200)
        .find(|&s| (s - 1..=s + 1).all(|s| has_behaviour(&original, s)))
        .expect("three frames in a row with behaviour");
    rewritten(dir, &cut, |r| match RecordKind::from_code(r.info.kind) {
        Some(RecordKind::Activity) => {
            let a = records::decode_activity(&r.payload).unwrap();
            (!(100..103).contains(&a.frame_seq)).then(|| r.payload.clone())
        }
        Some(RecordKind::Behaviour) => {
            let mut b: Value = serde_json::from_slice(&r.payload).unwrap();
            if b["frame_seq"] == blind {
                b["pupil_x_px"] = Value::Null;
            }
            Some(serde_json::to_vec(&b).unwrap())
        }
        _ => Some(r.payload.clone()),
    });
    let full = recording_from_session(dir, H, W).unwrap().recording;
    let out = recording_from_session(&cut, H, W).unwrap();
    let rec = &out.recording;
    let logged = read_logged(&cut);
    let seqs: Vec<u64> = logged.activity.iter().map(|a| a.0).collect();
    let row = |seq: u64| seqs.iter().position(|&s| s == seq).unwrap();
    assert_eq!(rec.len(), full.len() - 3);
    assert_eq!(rec.meta.segments, expected_segments(&logged));
    let ends: Vec<usize> = rec.meta.segments.iter().map(|s| s.end).collect();
    let starts: Vec<usize> = rec.meta.segments.iter().map(|s| s.start).collect();
    assert!(
        ends.contains(&row(103)) && starts.contains(&row(103)),
        "{ends:?}"
    );
    assert!(
        ends.contains(&row(blind)) && starts.contains(&(row(blind) + 1)),
        "{ends:?}"
    );
    assert!(
        out.warnings.iter().any(|w| w.contains("no behaviour")),
        "{:?}",
        out.warnings
    );
    // The frame without behaviour is the mean, and no trial straddles a break.
    assert_eq!(
        &rec.perspective[row(blind) * 2..row(blind) * 2 + 2],
        &[0.0, 0.0]
    );
    for tr in &rec.meta.trials {
        let inside = rec
            .meta
            .segments
            .iter()
            .any(|s| s.start <= tr.start && tr.start + tr.frames <= s.end);
        assert!(inside, "{tr:?}");
    }
}

#[test]
fn a_recording_round_trips_through_its_directory() {
    let dir = session();
    let out = recording_from_session(dir, H, W).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rec");
    out.save(&path).unwrap();
    let back = Recording::load(&path).unwrap();
    let rec = &out.recording;
    assert_eq!((back.height, back.width), (H, W));
    assert_eq!(back.frames, rec.frames);
    assert_eq!(back.perspective, rec.perspective);
    assert_eq!(back.modulation, rec.modulation);
    assert!(same_f32(&back.responses, &rec.responses));
    assert_eq!(back.meta, rec.meta);
    let (shape, truth) = twinloop_rig::vocab::npy::read_f32(&path.join(TRUTH_FILE)).unwrap();
    assert_eq!(shape, [rec.len() as u64, rec.units() as u64]);
    assert!(same_f32(&truth, out.truth.as_ref().unwrap()));
}

#[test]
fn a_missing_or_cut_log_is_named_or_read_as_far_as_it_goes() {
    let dir = session();
    let tmp = tempfile::tempdir().unwrap();

    let no_log = tmp.path().join("no-log");
    rewritten(dir, &no_log, |r| Some(r.payload.clone()));
    fs::remove_file(no_log.join(RECORDS_LOG_FILE)).unwrap();
    let e = recording_from_session(&no_log, H, W)
        .unwrap_err()
        .to_string();
    assert!(e.contains(RECORDS_LOG_FILE), "{e}");

    let e = recording_from_session(tmp.path(), H, W)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("manifest.json") || e.contains("not a session"),
        "{e}"
    );

    let e = recording_from_session(dir, 1, W).unwrap_err().to_string();
    assert!(e.contains("at least 2"), "{e}");

    // Killed mid-record: the rows before the cut, as in the whole session.
    let full = recording_from_session(dir, H, W).unwrap().recording;
    let killed = tmp.path().join("killed");
    rewritten(dir, &killed, |r| Some(r.payload.clone()));
    let log = killed.join(RECORDS_LOG_FILE);
    let len = fs::metadata(&log).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len * 6 / 10 + 3).unwrap();
    fs::remove_file(killed.join("summary.json")).ok();
    fs::remove_dir_all(killed.join("truth")).ok();
    let out = recording_from_session(&killed, H, W).unwrap();
    let rec = &out.recording;
    assert!(
        rec.len() > 50 && rec.len() < full.len(),
        "{} rows",
        rec.len()
    );
    assert!(same_f32(
        &rec.responses,
        &full.responses[..rec.responses.len()]
    ));
    // The recorder drains flips and activity from two queues, so the flips of the last few
    // frames before the cut may be after it.
    let settled = (rec.len() - 10) * H * W;
    assert_eq!(rec.frames[..settled], full.frames[..settled]);
    assert!(out.truth.is_none());
    assert!(
        out.warnings.iter().any(|w| w.contains("cut short")),
        "{:?}",
        out.warnings
    );

    // Cut before the first activity: nothing to learn from, said so.
    let early = tmp.path().join("early");
    let mut n = 0;
    rewritten(dir, &early, |r| {
        n += 1;
        (RecordKind::from_code(r.info.kind) != Some(RecordKind::Activity) && n < 5)
            .then(|| r.payload.clone())
    });
    let e = recording_from_session(&early, H, W)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(RECORDS_LOG_FILE) && e.contains("no plane-0 activity"),
        "{e}"
    );
}

/// With the imaging pipeline, detected cells are matched to simulated ones by centroid (after
/// the reference's offset from the brain) and the deconvolved activity follows their true
/// rates. Measured (20 s, 256 x 256 px, 250 neurons): 193 of 211 detected cells matched,
/// median r(activity, true rate per frame) 0.19 over them (0.30 for a 25 s session: the first
/// seconds after calibration are the deconvolution's noisiest).
#[test]
fn pipeline_cells_are_matched_to_the_simulated_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = fast_sim_config(tmp.path(), 20.0);
    cfg.imaging.extraction = twinloop_rig::config::Extraction::Pipeline;
    cfg.imaging.width = 256;
    cfg.imaging.height = 256;
    cfg.sim.neurons = 250;
    cfg.imaging.pipeline.cells.calibration_frames = 150;
    cfg.imaging.pipeline.cells.min_frames = 100;
    cfg.imaging.pipeline.fluorescence.dark_offset_adu = 400.0;
    let s = run_session(&cfg);
    let out = recording_from_session(&s.session_dir, H, W).unwrap();
    let rec = &out.recording;
    let u = rec.units();
    let truth = out.truth.as_ref().expect("truth");
    let mut rs = Vec::new();
    for c in 0..u {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..rec.len() {
            let (x, y) = (rec.response(i)[c], truth[i * u + c]);
            if x.is_finite() && y.is_finite() {
                a.push(f64::from(x));
                b.push(f64::from(y));
            }
        }
        if a.len() > 100 {
            rs.push(pearson(&a, &b));
        }
    }
    rs.sort_by(f64::total_cmp);
    let median = rs.get(rs.len() / 2).copied().unwrap_or(f64::NAN);
    eprintln!(
        "{} of {u} cells matched, median r(activity, true rate) {median:.3} over {}",
        out.truth_matched,
        rs.len()
    );
    assert!(
        out.truth_matched * 10 >= u * 8,
        "{} of {u}",
        out.truth_matched
    );
    assert_eq!(rs.len(), out.truth_matched);
    assert!(median > 0.1, "{median}");
}
