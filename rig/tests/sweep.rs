//! Sweeps without a scheduler: planning refuses bad entries by name, shards are all or nothing
//! and reproducible byte for byte, and gathering never passes a missing, failed, killed or
//! damaged shard off as whole.

use std::fs;
use std::path::{Path, PathBuf};
use twinloop_rig::sweep::shard::{self, Outcome, ShardState};
use twinloop_rig::sweep::{Plan, SweepError, SweepSpec, gather};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn plan_of(dir: &Path, text: &str) -> Result<Plan, SweepError> {
    let file = write(dir, "sweep.toml", text);
    Plan::make(&SweepSpec::load(&file)?, &file)
}

/// Two seeds of both arms of the design benchmark, small enough for a test.
const LOOP: &str = r#"
[sweep]
name = "loop-test"
kind = "loop_arm"
shards = 2
[loop]
trials = 40
neurons = 12
[grid]
seed = [1, 2]
objective = ["random", "info_gain"]
core = ["energy"]
"#;

#[test]
fn planning_names_the_bad_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "sim.toml", twinloop_rig::config::DEFAULT_SIM_TOML);
    write(d, "not-weights.safetensors", "these are not tensors");
    let session = |grid: &str| {
        format!(
            "[sweep]\nname = \"s\"\nkind = \"session\"\nshards = 2\n[session]\nprotocols = \
             [\"sim.toml\"]\n[grid]\n{grid}\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            LOOP.replace("shards = 2", "shards = 2\ncolour = 1"),
            "colour",
        ),
        (
            LOOP.replace("seed = [1, 2]", "seed = []"),
            "grid.seed is empty",
        ),
        (LOOP.replace("seed = [1, 2]", "seed = [-1]"), "grid.seed"),
        (
            LOOP.replace("core = [\"energy\"]", "core = [\"fnn\"]"),
            "grid.core",
        ),
        (
            LOOP.replace("core = [\"energy\"]", "speed = [1]"),
            "grid.speed",
        ),
        (LOOP.replace("shards = 2", "shards = 0"), "sweep.shards"),
        (
            session("\"trials.policy\" = [\"sometimes\"]"),
            "job 0 (grid)",
        ),
        (
            session("\"session.duration_s\" = [30.0, -1.0]"),
            "job 1 (grid)",
        ),
        (session("\"sesion.duration_s\" = [30.0]"), "sesion"),
        (session("twin = [\"not-weights.safetensors\"]"), "grid.twin"),
        (
            session("twin = [\"absent.safetensors\"]"),
            "absent.safetensors",
        ),
        (
            session("seed = [1]").replace("sim.toml", "elsewhere.toml"),
            "session.protocols",
        ),
    ];
    for (text, names) in cases {
        let err = plan_of(d, &text).expect_err(&text).to_string();
        assert!(err.contains(names), "{names:?} not in: {err}");
    }
    // And a good session sweep plans every combination, paths made absolute.
    let plan = plan_of(
        d,
        &session("seed = [1, 2]\n\"trials.policy\" = [\"adaptive\", \"random\"]"),
    )
    .unwrap();
    assert_eq!(plan.jobs.len(), 4);
    assert_eq!(plan.shards, 2);
    let protocol = plan.jobs[0].axes["protocol"].as_str().unwrap();
    assert!(Path::new(protocol).is_absolute(), "{protocol}");
}

#[test]
fn shards_are_whole_reproducible_and_gathered_only_when_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sweep");
    let plan = plan_of(tmp.path(), LOOP).unwrap();
    plan.write(&root).unwrap();
    let plan = Plan::load(&root).unwrap();
    assert_eq!((plan.jobs.len(), plan.shards), (4, 2));

    assert_eq!(
        shard::run(&plan, &root, 0).unwrap(),
        Outcome::Ran { jobs: 2 }
    );
    assert_eq!(shard::run(&plan, &root, 0).unwrap(), Outcome::AlreadyDone);
    assert!(
        shard::run(&plan, &root, 2)
            .unwrap_err()
            .to_string()
            .contains("--shard 2")
    );

    // Shard 1 never ran: gathering refuses, naming it, and writes nothing.
    match gather(&plan, &root, false) {
        Err(SweepError::Incomplete { missing, failed }) => {
            assert_eq!(missing, vec![1]);
            assert!(failed.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(!root.join("table.csv").exists());
    // --partial writes what there is and still says it is partial.
    let g = gather(&plan, &root, true).unwrap();
    assert!(!g.complete());
    assert_eq!(g.rows, 2);
    // The command: non-zero naming the shard, unless told to accept a partial sweep.
    let cli = |partial: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop"));
        c.args(["sweep", "gather", root.to_str().unwrap()]);
        if partial {
            c.arg("--partial");
        }
        c.output().unwrap()
    };
    let refused = cli(false);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("missing shards [1]"));
    let accepted = cli(true);
    assert!(accepted.status.success());
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("partial, as accepted"));

    // A shard killed mid-run leaves only `.partial`: seen as unfinished, then redone, the
    // leftover kept aside for reading.
    let shards = root.join("shards");
    fs::create_dir_all(shards.join("0001.partial/jobs/00001")).unwrap();
    assert!(matches!(shard::state(&plan, &root, 1), ShardState::Partial));
    let g = gather(&plan, &root, true).unwrap();
    assert_eq!(g.failed.len(), 1, "{g:?}");
    assert_eq!(
        shard::run(&plan, &root, 1).unwrap(),
        Outcome::Ran { jobs: 2 }
    );
    assert!(shards.join("attic/0001-0/jobs/00001").is_dir());

    let g = gather(&plan, &root, false).unwrap();
    assert!(g.complete());
    let table = fs::read_to_string(root.join("table.csv")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[0].starts_with("job,shard,core,objective,seed,"),
        "{}",
        lines[0]
    );
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("{i},{},energy,", i % 2)),
            "{line}"
        );
    }
    let report = fs::read_to_string(root.join("report.html")).unwrap();
    assert!(report.contains("objective = info_gain") && report.contains("objective = random"));
    assert!(report.contains("Against random, paired by seed"));

    // Rerun from nothing: the same rows, byte for byte (wall times live apart).
    let before = fs::read(shards.join("0000/rows.jsonl")).unwrap();
    fs::remove_dir_all(shards.join("0000")).unwrap();
    assert_eq!(
        shard::run(&plan, &root, 0).unwrap(),
        Outcome::Ran { jobs: 2 }
    );
    assert_eq!(fs::read(shards.join("0000/rows.jsonl")).unwrap(), before);

    // A flipped byte in a finished shard's rows is caught, not gathered.
    let rows = shards.join("0000/rows.jsonl");
    let mut bytes = fs::read(&rows).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&rows, bytes).unwrap();
    assert!(matches!(
        shard::state(&plan, &root, 0),
        ShardState::Corrupt(_)
    ));
    match gather(&plan, &root, false) {
        Err(SweepError::Incomplete { failed, .. }) => {
            assert_eq!(failed.len(), 1);
            assert!(failed[0].1.contains("rows.jsonl"), "{failed:?}");
        }
        other => panic!("{other:?}"),
    }
    // Rerunning the damaged shard moves it aside and makes it whole again.
    assert_eq!(
        shard::run(&plan, &root, 0).unwrap(),
        Outcome::Ran { jobs: 2 }
    );
    assert_eq!(fs::read(shards.join("0000/rows.jsonl")).unwrap(), before);
}

#[test]
fn a_shard_killed_mid_session_keeps_its_log_and_is_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "sim.toml",
        twinloop_rig::config::DEFAULT_SIM_TOML,
    );
    let root = tmp.path().join("sweep");
    // A small session (64² frames, the grid extraction, random trials on the energy core),
    // long for the kill; the rerun makes it short through the plan's override.
    let sweep = |duration: f64| {
        format!(
            r#"
[sweep]
name = "kill"
kind = "session"
shards = 1
[session]
protocols = ["sim.toml"]
[grid]
"session.duration_s" = [{duration:.1}]
"imaging.width" = [64]
"imaging.height" = [64]
"imaging.extraction" = ["grid"]
"imaging.grid_block_px" = [16]
"eye.width" = [16]
"eye.height" = [12]
"trials.policy" = ["random"]
"twin.core" = ["energy"]
"#
        )
    };
    let plan = plan_of(tmp.path(), &sweep(600.0)).unwrap();
    plan.write(&root).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .args(["sweep", "run", root.to_str().unwrap(), "--shard", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the session has logged a good part of a second's records. A session that never
    // logs that much ends on its own (600 s of rig time, run as fast as it goes), and the shard
    // ending first fails the test: no clock bound is needed.
    let jobs = root.join("shards/0000.partial/jobs/00000");
    let log = || -> Option<PathBuf> {
        let session = fs::read_dir(&jobs).ok()?.flatten().next()?.path();
        Some(session.join("records.log"))
    };
    while log()
        .and_then(|l| fs::metadata(l).ok())
        .is_none_or(|m| m.len() < 200_000)
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the shard ended before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(matches!(shard::state(&plan, &root, 0), ShardState::Partial));
    let killed_log = log().unwrap();
    let count = |path: &Path| {
        let (records, _) = twinloop_rig::backbone::session_log::LogReader::open(path)
            .unwrap()
            .read_to_end()
            .unwrap();
        records.len()
    };
    let logged = count(&killed_log);
    assert!(logged > 10, "{logged} records in the killed session's log");

    // Rerun (as a short session, so the test ends): the killed run is kept aside, readable.
    let plan = plan_of(tmp.path(), &sweep(3.0)).unwrap();
    assert_eq!(
        shard::run(&plan, &root, 0).unwrap(),
        Outcome::Ran { jobs: 1 }
    );
    let kept = root.join("shards/attic/0000-0/jobs/00000");
    let session = fs::read_dir(&kept)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert!(count(&session.join("records.log")) >= logged);
    assert!(gather(&plan, &root, false).unwrap().complete());
}
