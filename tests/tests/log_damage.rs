//! A recorded session survives damage to its files (issue 16, item 2): the log ends with an
//! `End` record and starts with the manifest; replay, report and the export's reading work from
//! the log alone when `manifest.json` is deleted, empty or garbage; the export takes the traces
//! from the log when the cells' masks are gone; a log cut at a record boundary reads as cut
//! short, with the count `summary.json` promised; a flipped byte in the middle costs one record,
//! named, and everything after it still replays.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use twinloop_e2e::{fast_sim_config, fresh_dir, run_session};
use twinloop_rig::backbone::session_log::{LogReader, Manifest, SessionDir, TailState};
use twinloop_rig::offline::export::nwb::SessionContents;
use twinloop_rig::offline::replay::replay;
use twinloop_rig::offline::report::render;
use twinloop_rig::online::session::SessionSummary;
use twinloop_rig::vocab::records::{EndRecord, RecordKind};

/// One short session shared by the tests; each test damages its own copy.
fn session() -> &'static (PathBuf, SessionSummary) {
    static RUN: OnceLock<(PathBuf, SessionSummary)> = OnceLock::new();
    RUN.get_or_init(|| {
        let root = fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("log_damage-session"));
        let mut cfg = fast_sim_config(&root, 5.0);
        cfg.session.record_frames = true;
        let summary = run_session(&cfg);
        (summary.session_dir.clone(), summary)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh copy of the shared session to damage.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join(name);
    copy_dir(&session().0, &to);
    (tmp, to)
}

#[test]
fn the_log_starts_with_the_manifest_and_ends_with_the_end_record() {
    let (dir, summary) = session();
    let session = SessionDir::open(dir).unwrap();
    let all = session.open_log().unwrap().read_all().unwrap();
    assert_eq!(all.tail, TailState::Clean);
    assert!(all.damage.is_empty());
    let recs = &all.records;
    assert_eq!(recs.len() as u64, summary.log_records);
    assert_eq!(session.expected_records(), Some(summary.log_records));

    let first = &recs[0];
    assert_eq!(first.info.kind, RecordKind::Manifest as u16);
    let in_log: Manifest = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(in_log, session.read_manifest_file().unwrap());

    let last = recs.last().unwrap();
    assert_eq!(last.info.kind, RecordKind::End as u16);
    let end: EndRecord = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(end.records, recs.len() as u64 - 1);
    let frames = summary.counters.frames_in + summary.counters.eye_frames_in;
    assert_eq!(end.frames, frames, "{end:?}");
    // How ingest ended, as the summary says too.
    let ended = serde_json::to_value(summary.ingest_end).unwrap();
    assert_eq!(Some(end.ended.as_str()), ended.as_str(), "{end:?}");
}

#[test]
fn replay_and_report_work_without_a_usable_manifest_json() {
    let original = replay(&session().0).unwrap();
    assert!(original.reproduced(), "{original:?}");
    for (what, contents) in [
        ("deleted", None),
        ("empty", Some(&b""[..])),
        (
            "garbage",
            Some(&b"{\"format_version\": 1, \"config\": [tr"[..]),
        ),
    ] {
        let (_tmp, dir) = copy(what);
        let manifest = dir.join("manifest.json");
        match contents {
            Some(bytes) => fs::write(&manifest, bytes).unwrap(),
            None => fs::remove_file(&manifest).unwrap(),
        }
        let r = replay(&dir).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r.reproduced(), "{what}: {r:?}");
        assert_eq!(
            r.decisions_reproduced, original.decisions_reproduced,
            "{what}"
        );
        assert_eq!(r.frames_replayed, original.frames_replayed, "{what}");
        assert_eq!(r.activity_compared, original.activity_compared, "{what}");
        assert_eq!(r.log_tail, "clean", "{what}");

        let report = render(&dir).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!report.cut_short(), "{what}");
        let records = format!(">{}<", session().1.log_records);
        assert!(
            report.html.contains(&records),
            "{what}: the log's record count"
        );
        SessionContents::load(&dir).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn the_export_takes_the_traces_from_the_log_when_the_masks_are_gone() {
    let (_tmp, dir) = copy("no-masks");
    let whole = SessionContents::load(&session().0).unwrap();
    let masks = whole
        .rois
        .as_ref()
        .expect("the intact session has its masks");
    // This session's masks are the simulator's footprints (the pipeline's are in calibration/).
    fs::remove_dir_all(dir.join("truth")).unwrap();
    let c = SessionContents::load(&dir).unwrap();
    let rois = c.rois.as_ref().expect("ROIs from the log's traces");
    assert_eq!(rois.masks.len(), masks.masks.len());
    assert!(
        rois.masks.iter().all(Vec::is_empty),
        "masks unknown: exported empty"
    );
    assert_eq!(c.activity.frames(), whole.activity.frames());
    assert!(c.activity.frames() > 0);
    assert_eq!(c.activity.values, whole.activity.values, "the same traces");
    assert!(
        c.warnings.iter().any(|w| w.contains("read from the log")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_log_cut_at_a_record_boundary_reads_as_cut_short() {
    let (_tmp, dir) = copy("cut");
    let session = SessionDir::open(&dir).unwrap();
    let (recs, _) = session.open_log().unwrap().read_to_end().unwrap();
    // Drop the last 100 records, whole: no byte of a record is damaged.
    let keep = recs.len() - 100;
    let cut_at = recs[keep].info.offset;
    let log = fs::OpenOptions::new()
        .write(true)
        .open(session.records_log_path())
        .unwrap();
    log.set_len(cut_at).unwrap();
    let (read, tail) = LogReader::open(session.records_log_path())
        .unwrap()
        .read_to_end()
        .unwrap();
    assert_eq!(read.len(), keep);
    assert_eq!(
        tail,
        TailState::CutShort {
            records: keep as u64
        }
    );

    let r = replay(&dir).unwrap();
    assert!(r.log_tail.contains("cut short"), "{}", r.log_tail);
    let report = render(&dir).unwrap();
    let promised = format!("summary.json says {} records were written", recs.len());
    assert!(
        report.html.contains(&promised),
        "the report names the count"
    );
}

#[test]
fn a_flipped_byte_in_the_middle_costs_one_record_and_replay_goes_on() {
    let (_tmp, dir) = copy("flipped");
    let session = SessionDir::open(&dir).unwrap();
    let (recs, _) = session.open_log().unwrap().read_to_end().unwrap();
    // A byte inside a record at 2% of the log (where the flip hid 85% of the records).
    let target = &recs[recs.len() / 50];
    let mut bytes = fs::read(session.records_log_path()).unwrap();
    let at = target.info.offset as usize + 20 + target.info.len as usize / 2;
    bytes[at] ^= 0x5A;
    fs::write(session.records_log_path(), &bytes).unwrap();

    let all = session.open_log().unwrap().read_all().unwrap();
    assert_eq!(all.records.len(), recs.len() - 1);
    assert_eq!(all.tail, TailState::Clean);
    let [damage] = all.damage[..] else {
        panic!("{:?}", all.damage)
    };
    assert_eq!(
        (damage.first_lost, damage.records_lost),
        (target.info.index, 1)
    );
    let r = replay(&dir).unwrap();
    assert_eq!(r.log_damage.len(), 1, "{r:?}");
    assert!(r.log_damage[0].contains(&format!("record {} lost", target.info.index)));
    assert_eq!(r.log_tail, "clean");
}
