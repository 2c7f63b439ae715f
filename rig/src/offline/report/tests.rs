//! Reports of real sessions (run by the real daemon, simulated and fast), whole, killed and
//! rewritten as an older twinloop would have written them, and of directories that are not
//! sessions. Expected numbers are recomputed here from the log with the session log's own
//! reader, not taken from the report's code.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::backbone::session_log::{LogWriter, Record, SessionDir, TailState};
use crate::config::{Config, Extraction};
use crate::online::session::{self, Hooks};
use crate::vocab::records::{self, RecordKind};

/// A real simulated session of 8 s of rig time, run as fast as it goes, in `root`. Trials are
/// shortened so that those seconds hold warm-up, test, random and adaptive trials.
fn real_session(root: &Path) -> PathBuf {
    let summary = session::run(
        &session_config(root),
        vec!["report-test".into()],
        Hooks::default(),
    )
    .expect("the simulated session runs");
    summary.session_dir
}

/// [`real_session`]'s configuration.
fn session_config(root: &Path) -> Config {
    let mut cfg = Config::default_sim();
    cfg.session.duration_s = 8.0;
    cfg.session.realtime = false;
    cfg.session.progress = false;
    cfg.session.out_dir = root.to_path_buf();
    cfg.source.idle_timeout_s = 5.0;
    cfg.imaging.extraction = Extraction::TruthFootprints;
    // Tests run sessions side by side; the dashboard would want one port for each.
    cfg.dashboard.enabled = false;
    cfg.trials.stimulus_s = 0.5;
    cfg.trials.gray_s = 0.25;
    cfg.trials.design.warmup_trials = 2;
    cfg.trials.design.test_every = 3;
    cfg
}

/// Every complete record of the session's log, and how the log ended.
fn log_of(dir: &Path) -> (Vec<Record>, TailState) {
    let reader = SessionDir::open(dir)
        .expect("a session directory")
        .open_log()
        .expect("a record log");
    reader.read_to_end().expect("the log reads")
}

fn count(records: &[Record], kind: RecordKind) -> usize {
    records
        .iter()
        .filter(|r| r.info.kind == kind as u16)
        .count()
}

fn json(record: &Record) -> Value {
    serde_json::from_slice(&record.payload).expect("a JSON record")
}

/// The text of the element with `id`, e.g. `<td id="fact-trials">12</td>` -> `12`.
fn by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no element with id {id}"))
        + id.len()
        + 6;
    let end = html[start..].find('<').expect("element closes") + start;
    &html[start..end]
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"), "figures are inline SVG");
    for forbidden in ["http://", "https://", "<script", "<link", "<img", "src="] {
        assert!(!html.contains(forbidden), "the page holds {forbidden:?}");
    }
    for (id, heading) in SECTIONS {
        assert!(
            html.contains(&format!(
                "<section id=\"{id}\"><h2>{}</h2>",
                html::esc(heading)
            )),
            "section {heading} is missing"
        );
    }
}

#[test]
fn a_directory_that_is_not_a_session_is_named_with_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("notes.txt"), b"not a session").unwrap();
    let err = render(root.path()).unwrap_err();
    assert!(matches!(err, ReportError::NotASession { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&root.path().display().to_string()), "{text}");
    assert!(text.contains("manifest.json is missing"), "{text}");
    assert!(text.contains("notes.txt"), "says what is there: {text}");

    let gone = root.path().join("no-such-session");
    let err = render(&gone).unwrap_err();
    assert!(matches!(err, ReportError::DirMissing { .. }), "{err}");
    assert!(err.to_string().contains(&gone.display().to_string()));

    // A manifest that is not one is named as such, not reported on.
    fs::write(root.path().join("manifest.json"), b"{ nope").unwrap();
    let err = render(root.path()).unwrap_err();
    assert!(matches!(err, ReportError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[test]
fn the_report_of_a_real_session_has_every_section_and_the_log_s_numbers() {
    let root = tempfile::tempdir().unwrap();
    let dir = real_session(root.path());
    let out = default_output(&dir);
    let report = write_report(&dir, &out).unwrap();
    let html = fs::read_to_string(&out).unwrap();
    assert_eq!(html, report.html);
    assert_self_contained(&html);
    assert!(!report.cut_short());
    assert!(!html.contains("id=\"cut-short\""));

    let (records, tail) = log_of(&dir);
    assert!(tail.is_clean());
    let stimuli: Vec<Value> = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Stimulus as u16)
        .map(json)
        .collect();
    assert!(stimuli.len() >= 3, "{} trials in 8 s", stimuli.len());
    assert_eq!(by_id(&html, "fact-trials"), stimuli.len().to_string());
    assert_eq!(
        by_id(&html, "fact-decisions"),
        count(&records, RecordKind::Decision).to_string()
    );
    assert_eq!(by_id(&html, "fact-records"), records.len().to_string());
    assert_eq!(by_id(&html, "fact-tail"), "clean");
    assert_eq!(
        by_id(&html, "behaviour-frames"),
        count(&records, RecordKind::Behaviour).to_string()
    );
    assert_eq!(
        by_id(&html, "anomalies-logged"),
        count(&records, RecordKind::Anomaly).to_string()
    );
    let frames = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Input as u16)
        .filter(|r| {
            records::decode_input(&r.payload)
                .is_ok_and(|i| i.header.stream == crate::vocab::protocol::Stream::TwoPhoton)
        })
        .count();
    assert_eq!(by_id(&html, "fact-frames"), frames.to_string());
    // The summary's counters sit beside the log's.
    let summary: Value =
        serde_json::from_slice(&fs::read(dir.join("summary.json")).unwrap()).expect("summary.json");
    assert_eq!(
        by_id(&html, "health-underruns-summary"),
        summary["counters"]["underruns"].to_string()
    );
    // Modes: each count is the number of decisions with that mode.
    for (mode, n) in &report.analysis.modes {
        let logged = records
            .iter()
            .filter(|r| r.info.kind == RecordKind::Decision as u16)
            .filter(|r| json(r)["mode"].as_str() == Some(mode.as_str()))
            .count();
        assert_eq!(*n as usize, logged, "{mode}");
        assert_eq!(by_id(&html, &format!("mode-{mode}")), n.to_string());
    }
    // Latency rows are the summary's.
    for stage in summary["latency"].as_array().unwrap() {
        if stage["count"].as_u64().unwrap() > 0 {
            let name = stage["stage"].as_str().unwrap();
            assert!(html.contains(&html::esc(name)), "latency of {name}");
        }
    }

    // Tuning: the first example cell's mean for the first stimulus by name, recomputed from
    // the activity records in each of its windows.
    let a = &report.analysis;
    assert!(!a.examples.is_empty() && !a.tuning.is_empty());
    let cell = a.examples[0].column;
    let row = a
        .tuning
        .iter()
        .find(|t| t.presentations > 0)
        .expect("a stimulus with activity");
    let window_ns = (0.5f64 * 1e9) as i64;
    let activity: Vec<_> = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .map(|r| records::decode_activity(&r.payload).unwrap())
        .collect();
    let mut per_presentation = Vec::new();
    for s in stimuli.iter().filter(|s| s["name"] == row.name.as_str()) {
        let onset = s["onset_t_ns"].as_i64().unwrap();
        let values: Vec<f64> = activity
            .iter()
            .filter(|a| (onset..onset + window_ns).contains(&a.t.as_nanos()))
            .map(|a| f64::from(a.values[cell]))
            .collect();
        if !values.is_empty() {
            per_presentation.push(values.iter().sum::<f64>() / values.len() as f64);
        }
    }
    let expected = per_presentation.iter().sum::<f64>() / per_presentation.len() as f64;
    assert!(
        (row.means[0] - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{} vs {expected}",
        row.means[0]
    );
    assert!(html.contains(&format!("<td class=\"n\">{}</td>", html::num(expected))));
}

/// The adaptive design's counts leave the selector thread (issue #19): in a session whose
/// every decision overruns its deadline (1 ps) and whose outlier clip is tight, summary.json,
/// the final status heartbeat and the report's health table hold the same counts, and those
/// agree with the log: every logged decision is late, the frames the design learned from are
/// the logged activity frames (the ones after the last decision included), and the fallback
/// and twin-refit counts are the decisions logged with them.
#[test]
fn the_design_counts_reach_the_summary_the_heartbeat_and_the_report() {
    let root = tempfile::tempdir().unwrap();
    let mut cfg = session_config(root.path());
    cfg.trials.design.deadline_ms = 1e-9;
    cfg.trials.design.outlier_sd = 0.05;
    let endpoint = format!("ipc://{}", root.path().join("pub").display());
    cfg.source.publish = endpoint.clone();
    // zmq connects once the session binds; the final heartbeat comes long after.
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.set_rcvtimeo(200).unwrap();
    sub.connect(&endpoint).unwrap();
    let session = std::thread::spawn(move || {
        session::run(&cfg, vec!["report-test".into()], Hooks::default())
    });
    let mut heartbeats = Vec::new();
    let mut quiet_since_end = 0;
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        assert!(
            std::time::Instant::now() < give_up,
            "the session never ended"
        );
        match sub.recv_multipart(0) {
            Ok(parts) => {
                let frames: Vec<bytes::Bytes> = parts.into_iter().map(Into::into).collect();
                if let Ok(m) = crate::vocab::protocol::Message::parse(&frames)
                    && m.header.stream == crate::vocab::protocol::Stream::Status
                {
                    let v: Value = serde_json::from_slice(&m.payload).expect("status JSON");
                    let ended = v["state"] == "ended";
                    heartbeats.push(v);
                    if ended {
                        break;
                    }
                }
            }
            // A hang guard: the session has ended and nothing more comes.
            Err(_) if session.is_finished() => {
                quiet_since_end += 1;
                if quiet_since_end > 10 {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let dir = session
        .join()
        .unwrap()
        .expect("the simulated session runs")
        .session_dir;
    let summary: Value =
        serde_json::from_slice(&fs::read(dir.join("summary.json")).unwrap()).expect("summary.json");
    let design = &summary["counters"]["design"];
    let n = |k: &str| {
        design[k]
            .as_u64()
            .unwrap_or_else(|| panic!("design.{k}: {design}"))
    };

    let (records, _) = log_of(&dir);
    let decisions: Vec<Value> = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Decision as u16)
        .map(json)
        .collect();
    let mode = |m: &str| decisions.iter().filter(|d| d["mode"] == m).count() as u64;
    let activity_frames = records
        .iter()
        .filter(|r| r.info.kind == RecordKind::Activity as u16)
        .filter(|r| {
            !records::decode_activity(&r.payload)
                .unwrap()
                .values
                .is_empty()
        })
        .count() as u64;
    assert!(decisions.len() >= 3, "{} decisions", decisions.len());
    assert_eq!(
        n("late"),
        decisions.len() as u64,
        "every decision overran 1 ps"
    );
    assert!(mode("late") > 0, "adaptive slots became random");
    assert_eq!(n("fallback_trials"), mode("fallback"));
    assert_eq!(n("frames"), activity_frames);
    assert!(n("values_clipped") > 0, "a clip at 0.05 s.d. clips");
    let refits = |applied: bool| {
        decisions
            .iter()
            .filter(|d| d["twin_refit"]["applied"] == applied)
            .count() as u64
    };
    assert_eq!(n("twin_refits"), refits(true));
    assert_eq!(n("twin_refit_failures"), refits(false));

    // The heartbeat: the final one carries the summary's counts; the running ones carry them
    // as they grow.
    let last = heartbeats.last().expect("status heartbeats");
    assert_eq!(last["state"], "ended", "the final heartbeat came");
    assert_eq!(&last["counters"]["design"], design);
    assert!(
        heartbeats.iter().any(
            |h| h["state"] == "running" && h["counters"]["design"]["frames"].as_u64() > Some(0)
        ),
        "a running heartbeat with the design's counts"
    );

    // The report: the summary's counts in the health table, the log's beside them.
    let out = default_output(&dir);
    let html = write_report(&dir, &out).unwrap().html;
    for (id, key) in [
        ("health-late-decisions", "late"),
        ("health-fallback", "fallback_trials"),
        ("health-refit-failures", "refit_failures"),
        ("health-twin-refit-failures", "twin_refit_failures"),
        ("health-unit-count-changes", "unit_count_changes"),
        ("health-values-clipped", "values_clipped"),
        ("health-values-skipped", "values_skipped"),
    ] {
        assert_eq!(
            by_id(&html, &format!("{id}-summary")),
            n(key).to_string(),
            "{id}"
        );
    }
    assert_eq!(
        by_id(&html, "health-late-decisions-log"),
        mode("late").to_string()
    );
    assert_eq!(
        by_id(&html, "health-twin-refit-failures-log"),
        refits(false).to_string()
    );
}

/// Rewrites the session's log through `edit`, which may change or drop each decision.
fn rewrite_decisions(dir: &Path, edit: impl Fn(&mut serde_json::Map<String, Value>)) {
    let (records, _) = log_of(dir);
    let path = dir.join("records.log");
    fs::remove_file(&path).unwrap();
    let mut writer = LogWriter::create(&path).unwrap();
    for r in records {
        if r.info.kind == RecordKind::Decision as u16 {
            let mut value = json(&r);
            edit(value.as_object_mut().expect("a decision is an object"));
            writer
                .append(r.info.kind, &serde_json::to_vec(&value).unwrap())
                .unwrap();
        } else {
            writer.append(r.info.kind, &r.payload).unwrap();
        }
    }
    writer.finish().unwrap();
}

#[test]
fn decisions_with_and_without_accuracy_both_render() {
    let root = tempfile::tempdir().unwrap();
    let dir = real_session(root.path());

    // As this twinloop writes them once the twin has been evaluated.
    rewrite_decisions(&dir, |d| {
        let trial = d["trial"].as_u64().unwrap();
        let point = serde_json::json!({"trials": trial, "cc_norm": 0.25 + trial as f64 / 100.0, "units": 7});
        d.insert("accuracy".into(), point);
    });
    let report = render(&dir).unwrap();
    assert_self_contained(&report.html);
    let decisions = report.analysis.decisions;
    assert!(decisions > 0);
    assert_eq!(report.analysis.accuracy.len() as u64, decisions);
    let last = decisions - 1;
    assert_eq!(
        by_id(&report.html, "accuracy-latest"),
        html::num(0.25 + last as f64 / 100.0)
    );

    // As an older twinloop wrote them: no accuracy, mode, score or alternatives.
    rewrite_decisions(&dir, |d| {
        for field in ["accuracy", "mode", "score", "alternatives", "onsets_seen"] {
            d.remove(field);
        }
    });
    let report = render(&dir).unwrap();
    assert_self_contained(&report.html);
    assert_eq!(report.analysis.decisions, decisions);
    assert!(report.analysis.accuracy.is_empty());
    assert!(report.analysis.scores.is_empty());
    let accuracy = report
        .html
        .split("<section id=\"accuracy\">")
        .nth(1)
        .unwrap();
    assert!(
        accuracy
            .starts_with("<h2>Held-out accuracy of the twin</h2><p class=\"missing\">not recorded"),
        "{}",
        &accuracy[..200]
    );
    // Without modes every decision counts as random.
    assert_eq!(by_id(&report.html, "mode-random"), decisions.to_string());
}

#[test]
fn a_killed_session_gives_a_partial_report_that_says_it_was_cut_short() {
    let root = tempfile::tempdir().unwrap();
    let dir = real_session(root.path());
    let (records, _) = log_of(&dir);
    // Kill it mid-record, two thirds of the way through, and drop what the end writes.
    let cut = &records[records.len() * 2 / 3];
    let keep = cut.info.offset + 12 + u64::from(cut.info.len) / 2;
    let file = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("records.log"))
        .unwrap();
    file.set_len(keep).unwrap();
    drop(file);
    fs::remove_file(dir.join("summary.json")).unwrap();
    fs::remove_file(dir.join("latency.json")).unwrap();

    let out = root.path().join("elsewhere.html");
    let report = write_report(&dir, &out).unwrap();
    assert!(report.cut_short());
    let html = fs::read_to_string(&out).unwrap();
    assert_self_contained(&html);
    assert!(
        html.contains("<div class=\"alert\" id=\"cut-short\"><strong>Session cut short.</strong>")
    );
    assert!(
        html.contains("no summary.json"),
        "the note says why counters are missing"
    );
    assert!(by_id(&html, "fact-tail").starts_with("cut short: truncated at byte"));

    let (kept, tail) = log_of(&dir);
    assert_eq!(kept.len() as u64, cut.info.index);
    assert!(!tail.is_clean());
    assert_eq!(by_id(&html, "fact-records"), kept.len().to_string());
    assert_eq!(
        by_id(&html, "fact-trials"),
        count(&kept, RecordKind::Stimulus).to_string()
    );
    let latency = html.split("<section id=\"latency\">").nth(1).unwrap();
    assert!(latency.starts_with("<h2>Latency</h2><p class=\"missing\">not recorded"));
    assert!(html.contains("id=\"health-underruns-summary\">–<"));
}

#[test]
fn a_session_with_a_manifest_only_still_renders() {
    // What a daemon killed between writing the manifest and creating the log leaves.
    let root = tempfile::tempdir().unwrap();
    let dir = SessionDir::create(root.path(), "empty", std::time::SystemTime::now()).unwrap();
    let manifest = crate::backbone::session_log::Manifest::new(
        std::time::SystemTime::now(),
        vec!["twinloop".into()],
        serde_json::to_value(Config::default_sim()).unwrap(),
    );
    dir.write_manifest(&manifest).unwrap();
    let report = render(dir.path()).unwrap();
    assert!(report.cut_short());
    assert!(report.html.contains("no record log to read"));
    assert_self_contained_but_for_figures(&report.html);
    assert_eq!(by_id(&report.html, "fact-trials"), "0");

    // An empty log file: killed before the log's header reached the disk.
    fs::write(dir.records_log_path(), b"").unwrap();
    let report = render(dir.path()).unwrap();
    assert!(report.cut_short());
    assert!(report.html.contains("the file is empty"), "says why");
    assert_self_contained_but_for_figures(&report.html);
}

/// [`assert_self_contained`] for a page with nothing to plot.
fn assert_self_contained_but_for_figures(html: &str) {
    assert!(!html.contains("<svg"));
    assert_self_contained(&html.replace("</body>", "<svg></body>"));
}

#[test]
fn mean_sem_and_downsampling() {
    let m = analysis::mean_sem(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
    assert_eq!((m.mean, m.n), (2.0, 3));
    assert!((m.sem.unwrap() - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(analysis::mean_sem(&[5.0]).unwrap().sem, None);
    assert!(analysis::mean_sem(&[f64::NAN]).is_none());
    let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64)).collect();
    assert_eq!(analysis::downsample(&points, 20), points);
    assert_eq!(
        analysis::downsample(&points, 5),
        vec![(0.5, 1.0), (2.5, 5.0), (4.5, 9.0), (6.5, 13.0), (8.5, 17.0)]
    );
    assert_eq!(
        html::esc("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}
