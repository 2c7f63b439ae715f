//! Replay validation as a sweep (`kind = "replay"`): recorded sessions replayed exactly and as
//! counterfactuals through `sweep plan`, `run` and `gather`, one row per (recording, policy),
//! and a recording that is not a session refused at planning, naming the entry.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use twinloop_e2e::{fast_sim_config, logged_decisions, run_session};
use twinloop_rig::backbone::session_log::SessionDir;
use twinloop_rig::sweep::shard::{self, Outcome};
use twinloop_rig::sweep::{Plan, SweepSpec, gather};

fn sweep(recordings: &[&Path]) -> String {
    let list: Vec<String> = recordings
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!(
        "[sweep]\nname = \"replay-test\"\nkind = \"replay\"\nshards = 2\n[grid]\nrecording = [{}]\n\
         policy = [\"adaptive\", \"random\"]\n",
        list.join(", ")
    )
}

/// Table rows by column name (the paths in it hold no commas, so no cell is quoted).
fn rows(table: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn recorded_sessions_replay_as_a_sweep_into_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recorded = Vec::new();
    for seed in [1, 2] {
        let mut cfg = fast_sim_config(&tmp.path().join(format!("rec{seed}")), 8.0);
        cfg.session.seed = seed;
        cfg.session.record_frames = true;
        recorded.push(run_session(&cfg).session_dir);
    }
    let live_decisions: Vec<usize> = recorded
        .iter()
        .map(|d| {
            let (recs, _) = SessionDir::open(d)
                .unwrap()
                .open_log()
                .unwrap()
                .read_to_end()
                .unwrap();
            logged_decisions(&recs).len()
        })
        .collect();
    assert!(live_decisions.iter().all(|&n| n >= 2), "{live_decisions:?}");

    let file = tmp.path().join("sweep.toml");
    let paths: Vec<&Path> = recorded.iter().map(|p| p.as_path()).collect();
    fs::write(&file, sweep(&paths)).unwrap();
    let plan = Plan::make(&SweepSpec::load(&file).unwrap(), &file).unwrap();
    assert_eq!((plan.jobs.len(), plan.shards), (4, 2));
    let root = tmp.path().join("sweep");
    plan.write(&root).unwrap();
    let plan = Plan::load(&root).unwrap();
    for s in 0..2 {
        assert_eq!(
            shard::run(&plan, &root, s).unwrap(),
            Outcome::Ran { jobs: 2 }
        );
    }
    let g = gather(&plan, &root, false).unwrap();
    assert!(g.complete() && g.rows == 4, "{g:?}");

    let table = fs::read_to_string(&g.table).unwrap();
    let rows = rows(&table);
    assert_eq!(rows.len(), 4, "{table}");
    for r in &rows {
        let k = recorded
            .iter()
            .position(|d| {
                fs::canonicalize(d).unwrap() == fs::canonicalize(&r["recording"]).unwrap()
            })
            .expect("a row per recording");
        // Each replay reproduced its live run: every frame's activity again, bit for bit, and
        // every logged decision.
        assert_eq!(r["reproduced"], "true", "{r:?}");
        assert!(r["frames_replayed"].parse::<u64>().unwrap() > 200, "{r:?}");
        assert_eq!(r["activity_compared"], r["frames_replayed"], "{r:?}");
        assert_eq!(r["activity_mismatches"], "0");
        assert_eq!(r["decisions_logged"], live_decisions[k].to_string());
        assert_eq!(r["decisions_reproduced"], r["decisions_logged"]);
        // The counterfactual's decisions: the live policy again chooses exactly as live did.
        assert_eq!(r["decisions"], r["decisions_logged"], "{r:?}");
        if r["policy"] == "adaptive" {
            assert_eq!(r["same_stimulus"], r["decisions"], "{r:?}");
        }
    }
    let report = fs::read_to_string(&g.report).unwrap();
    assert!(report.contains("policy = random") && report.contains("policy = adaptive"));
}

#[test]
fn a_recording_that_is_no_session_is_refused_at_planning() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_session = tmp.path().join("empty");
    fs::create_dir(&not_a_session).unwrap();
    let file = tmp.path().join("sweep.toml");
    fs::write(&file, sweep(&[&not_a_session])).unwrap();
    let e = Plan::make(&SweepSpec::load(&file).unwrap(), &file)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grid.recording") && e.contains("empty"), "{e}");
    // A replay sweep takes replay axes only.
    let text = sweep(&[&not_a_session]).replace("policy", "\"trials.policy\"");
    fs::write(&file, text).unwrap();
    let e = SweepSpec::load(&file).unwrap_err().to_string();
    assert!(
        e.contains("grid.trials.policy") && e.contains("recording, policy"),
        "{e}"
    );
    // The shipped example plans: one job per policy on the v1 fixture session.
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sweeps/replay-validation.toml");
    let plan = Plan::make(&SweepSpec::load(&shipped).unwrap(), &shipped).unwrap();
    assert_eq!(plan.jobs.len(), 2);
}
