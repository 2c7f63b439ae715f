//! `twinloop bench inception` (issue #18 item 5) on a tiny setting: the reduced fnn network as
//! the twin, 30 cells, a 4-minute record, 1 target, a 64-candidate library. Its figures are
//! recomputed here from the JSON's raw per-target rates and Poisson samples (the Welch test and
//! BH by scipy); bad flags name the flag; the sweep kind plans, refuses bad entries by name,
//! runs a job and gathers its row.

mod common;
use common::{fixture, twinloop};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use twinloop_rig::sweep::shard::{self, Outcome};
use twinloop_rig::sweep::{Plan, SweepSpec, gather};

/// The tiny setting's flags (seed and output apart).
fn tiny() -> Vec<String> {
    let w = fixture("parity_weights.safetensors");
    let c = fixture("parity_config.json");
    [
        "--weights",
        w.to_str().unwrap(),
        "--weights-config",
        c.to_str().unwrap(),
        "--neurons",
        "30",
        "--record-min",
        "4",
        "--max-targets",
        "1",
        "--min-heldout-cc",
        "0",
        "--library-size",
        "64",
        "--mei-steps",
        "5",
        "--design-frames",
        "2",
        "--refit-steps",
        "1",
        "--optimum-starts",
        "2",
        "--optimum-steps",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// scipy's Welch test (two-sided) of `a` against `b`.
fn scipy_welch(a: &[f64], b: &[f64]) -> f64 {
    let script = "import sys, json; from scipy import stats; d = json.load(sys.stdin); \
                  print(stats.ttest_ind(d[0], d[1], equal_var=False).pvalue)";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Python with scipy: set TWINLOOP_PYTHON (`pip install -r tests/requirements.txt`)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&[a, b]).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_f64().unwrap_or(f64::NAN)
}

fn samples(t: &Value, which: &str) -> Vec<f64> {
    t["samples"][which]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn a_tiny_bench_runs_and_its_figures_follow_from_its_raw_rates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r/inception.json");
    let run = twinloop()
        .args(["bench", "inception", "--seeds", "5", "--out"])
        .arg(&out)
        .args(tiny())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("| pretrained | 4 min | Low | 1 |"),
        "{stdout}"
    );
    let json: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    // The record phase ran its rig time: 4 min of 3 s trials (2 s stimulus, 1 s gray).
    assert_eq!(r["record_trials"].as_u64(), Some(80));
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{r}");
    let t = &targets[0];
    let rate = |k: &str| f(t, &["rate_hz", k]);
    // A best pool frame too dark to carry the full budget has no full-contrast control, and
    // says why.
    let full_pool = t["pool_full_unmatched"].is_null();
    assert_eq!(full_pool, rate("pool_full").is_finite(), "{t}");
    for k in [
        "mei_low",
        "mei_full",
        "pool_low",
        "pool_full",
        "library",
        "optimum_low",
        "optimum_full",
    ] {
        if k == "pool_full" && !full_pool {
            continue;
        }
        assert!(rate(k).is_finite() && rate(k) > 0.0, "{k}: {}", rate(k));
    }
    // The true optimum is the best the cell's own model allows under each budget: no image
    // the design made beats it.
    for k in ["mei_low", "pool_low", "library"] {
        assert!(rate(k) <= rate("optimum_low") * (1.0 + 1e-6), "{k}");
    }
    assert!(rate("mei_full") <= rate("optimum_full") * (1.0 + 1e-6));
    if full_pool {
        assert!(rate("pool_full") <= rate("optimum_full") * (1.0 + 1e-6));
    }
    // One target: each per-mouse median is that target's figure, from its raw rates.
    let m = &r["metrics"];
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert!(close(
        f(m, &["low", "median_log_ratio"]),
        (rate("mei_low") / rate("pool_low")).ln()
    ));
    if full_pool {
        assert!(close(
            f(m, &["full", "median_log_ratio"]),
            (rate("mei_full") / rate("pool_full")).ln()
        ));
    } else {
        assert!(m["full"]["median_log_ratio"].is_null(), "{m}");
    }
    assert!(close(
        f(m, &["low", "median_optimum_fraction"]),
        rate("mei_low") / rate("optimum_low")
    ));
    assert!(close(
        f(m, &["full", "median_optimum_fraction"]),
        rate("mei_full") / rate("optimum_full")
    ));
    assert!(close(
        f(m, &["low", "library_median_optimum_fraction"]),
        rate("library") / rate("optimum_low")
    ));
    // The Poisson repeats: 10 whole spike counts over the 2 s window, per 30 Hz frame.
    for k in ["mei_low", "mei_full", "pool_low", "pool_full", "library"] {
        let s = samples(t, k);
        if k == "pool_full" && !full_pool {
            assert!(s.is_empty());
            continue;
        }
        assert_eq!(s.len(), 10);
        for v in s {
            assert!(
                (v * 60.0 - (v * 60.0).round()).abs() < 1e-9 && v >= 0.0,
                "{v}"
            );
        }
    }
    // Significance: Welch by scipy (one target: BH's q is p), the MEI's mean above the pool's.
    for (c, mei, pool) in [
        ("low", "mei_low", "pool_low"),
        ("full", "mei_full", "pool_full"),
    ] {
        let (a, b) = (samples(t, mei), samples(t, pool));
        if b.is_empty() {
            // No control: untested, so no win.
            assert_eq!(m[c]["significant"].as_u64(), Some(0));
            continue;
        }
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let p = scipy_welch(&a, &b);
        let want = usize::from(mean(&a) > mean(&b) && p < 0.05);
        assert_eq!(
            m[c]["significant"].as_u64(),
            Some(want as u64),
            "{c}: p {p}"
        );
    }
    // The gain: measured ÷ predicted advantage, from the samples and the logged predictions.
    let (a, b) = (samples(t, "mei_low"), samples(t, "pool_low"));
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let predicted = f(t, &["predicted", "mei_low"]) - f(t, &["predicted", "pool_low"]);
    match m["low"]["gain_ratio"].as_f64() {
        Some(g) => assert!(close(g, (mean(&a) - mean(&b)) / predicted)),
        None => assert!(predicted <= 0.0, "{predicted}"),
    }
    // The across-mice table of one mouse: its own figures, counted once.
    let low = json["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["contrast"] == "low")
        .unwrap();
    assert!(close(
        f(low, &["across", "median_log_ratio", "median"]),
        f(m, &["low", "median_log_ratio"])
    ));
    assert_eq!(
        low["across"]["mice_mei_beats_pool"].as_u64(),
        Some(u64::from(f(m, &["low", "median_log_ratio"]) > 0.0))
    );
}

#[test]
fn bad_flags_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.json");
    for (flags, named) in [
        (vec!["--repeats", "5"], "--repeats"),
        (vec!["--arms", "energy"], "--arms"),
        (vec!["--record-min", "0"], "--record-min"),
        (vec!["--library-size", "3"], "--library-size"),
        (vec!["--max-targets", "0"], "--max-targets"),
        (vec!["--seeds", ""], "--seeds"),
        (
            vec!["--weights", "/no/such/weights.safetensors"],
            "--weights",
        ),
        (vec!["--weights-config", "net.json"], "--weights"),
    ] {
        let o = twinloop()
            .args(["bench", "inception", "--out"])
            .arg(&out)
            .args(&flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flags:?} was accepted");
        assert!(err.contains(named), "{flags:?}: {err}");
        assert!(!out.exists(), "{flags:?} wrote results");
    }
}

fn sweep_file(dir: &Path, grid: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[sweep]\nname = \"inception-test\"\nkind = \"inception_arm\"\nshards = 2\n\
         [inception]\nneurons = 30\nmax_targets = 1\nmin_heldout_cc = 0.0\nlibrary_size = 64\n\
         mei_steps = 5\ndesign_frames = 2\nrefit_steps = 1\noptimum_starts = 2\n\
         optimum_steps = 60\nweights = {:?}\nweights_config = {:?}\n{extra}\n[grid]\n{grid}\n",
        fixture("parity_weights.safetensors"),
        fixture("parity_config.json"),
    );
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn plan(dir: &Path, grid: &str, extra: &str) -> Result<Plan, String> {
    let file = sweep_file(dir, grid, extra);
    SweepSpec::load(&file)
        .and_then(|s| Plan::make(&s, &file))
        .map_err(|e| e.to_string())
}

#[test]
fn the_sweep_kind_plans_names_bad_entries_and_gathers_a_job() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = "seed = [5, 6]\narm = [\"pretrained\"]\nrecord_min = [4]";
    for (g, extra, named) in [
        ("seed = [5]\narm = [\"energy\"]", "", "grid.arm"),
        ("seed = [5]\nrecord_min = [0]", "", "grid.record_min"),
        ("seed = [5]\nobjective = [\"random\"]", "", "grid.objective"),
        ("seed = [5]", "repeats = 3", "inception.repeats"),
        ("seed = [5]", "speed = 3", "speed"),
    ] {
        let e = plan(tmp.path(), g, extra).unwrap_err();
        assert!(e.contains(named), "{g} {extra}: {e}");
    }
    let root = tmp.path().join("sweep");
    let p = plan(tmp.path(), grid, "").unwrap();
    assert_eq!((p.jobs.len(), p.shards), (2, 2));
    p.write(&root).unwrap();
    let p = Plan::load(&root).unwrap();
    assert_eq!(shard::run(&p, &root, 0).unwrap(), Outcome::Ran { jobs: 1 });
    let g = gather(&p, &root, true).unwrap();
    assert_eq!(g.rows, 1);
    let table = std::fs::read_to_string(root.join("table.csv")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let head: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    let col = |name: &str| {
        let i = head
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name}: {table}"));
        row[i]
    };
    assert_eq!(col("seed"), "5");
    assert_eq!(col("arm"), "pretrained");
    assert_eq!(col("targets"), "1");
    assert_eq!(col("record_trials"), "80");
    assert!(
        col("low_median_log_ratio").parse::<f64>().is_ok(),
        "{table}"
    );
}
