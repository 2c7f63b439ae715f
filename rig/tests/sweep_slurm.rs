//! A sweep of 8 simulated sessions through a real Slurm: `sweep submit --slurm` makes a job
//! array of 8 tasks and a gather job after it; the gathered table must hold every session,
//! each complete.
//!
//! Needs a running cluster (`scripts/slurm-single-node.sh start`, then the printed `export
//! SLURM_CONF=...`). Without one the test says it skipped; CI sets `TWINLOOP_REQUIRE_SLURM=1`,
//! which makes a missing cluster a failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_twinloop");

fn slurm_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

fn twinloop(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run twinloop");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "twinloop {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn job_id(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in {stdout}"))
        .to_owned()
}

fn logs(root: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(root.join("slurm")) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "out") {
                text += &format!("--- {}\n", e.path().display());
                text += &std::fs::read_to_string(e.path()).unwrap_or_default();
            }
        }
    }
    text
}

#[test]
fn eight_sessions_through_slurm() {
    if !slurm_up() {
        assert!(
            std::env::var_os("TWINLOOP_REQUIRE_SLURM").is_none(),
            "TWINLOOP_REQUIRE_SLURM is set but no Slurm cluster answers sinfo; start one with \
             scripts/slurm-single-node.sh start and export the SLURM_CONF it prints"
        );
        eprintln!("SKIPPED: no Slurm cluster (scripts/slurm-single-node.sh start)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let protocol = tmp.path().join("sim.toml");
    std::fs::write(&protocol, twinloop_rig::config::DEFAULT_SIM_TOML).unwrap();
    let sweep = tmp.path().join("sweep.toml");
    std::fs::write(
        &sweep,
        r#"
[sweep]
name = "ci-sessions"
kind = "session"
shards = 8
[session]
protocols = ["sim.toml"]
[grid]
seed = [1, 2, 3, 4]
"trials.policy" = ["adaptive", "random"]
"session.duration_s" = [12.0]
[slurm]
cpus_per_task = 1
mem = "2G"
time = "00:20:00"
"#,
    )
    .unwrap();
    let root = tmp.path().join("run");
    let root_s = root.to_str().unwrap();
    twinloop(&["sweep", "plan", sweep.to_str().unwrap(), "--out", root_s]);
    let submitted = twinloop(&["sweep", "submit", root_s, "--slurm"]);
    let array = job_id(&submitted, "array job ");
    let gather = job_id(&submitted, "gather job ");
    assert_ne!(array, gather);

    // Wait for the gather job to leave the queue; the bound only keeps a wedged cluster from
    // hanging CI, it is not what the test measures.
    let started = Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &format!("{array},{gather}"), "-o", "%i %T"])
            .output()
            .expect("squeue");
        let queued = String::from_utf8_lossy(&q.stdout).trim().to_owned();
        if queued.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25 * 60),
            "the sweep is still queued after 25 minutes: {queued}\n{}",
            logs(&root)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let gather_out = std::fs::read_to_string(root.join("slurm/gather.out")).unwrap_or_default();
    assert!(
        gather_out.contains("8 rows from 8 of 8 shards"),
        "gather: {gather_out}\n{}",
        logs(&root)
    );
    for shard in 0..8 {
        let out = std::fs::read_to_string(root.join(format!("slurm/shard-{shard}.out"))).unwrap();
        assert!(
            out.contains(&format!("shard {shard}: 1 jobs done")),
            "{out}"
        );
    }
    let table = std::fs::read_to_string(root.join("table.csv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 8, "{table}");
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        // Every session ran to its end: 12 s of 30 Hz frames, nothing missing, trials shown.
        assert_eq!(r[col("ended")], "source_ended", "{r:?}");
        assert_eq!(r[col("frames_in")], "360", "{r:?}");
        assert_eq!(r[col("missing")], "0", "{r:?}");
        assert!(r[col("trials")].parse::<u64>().unwrap() >= 2, "{r:?}");
        seen.insert((r[col("seed")], r[col("trials.policy")]));
    }
    assert_eq!(seen.len(), 8, "every seed x policy once: {seen:?}");
    let report = std::fs::read_to_string(root.join("report.html")).unwrap();
    assert!(
        report.contains("trials.policy = adaptive") && report.contains("trials.policy = random")
    );
}
