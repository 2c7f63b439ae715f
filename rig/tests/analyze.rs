//! `twinloop analyze` as a lab meets it: tables written by the simulated connectome (a known
//! rule) go in, the planted slope comes out; a bad table is one clear error.

use std::path::Path;
use std::process::Command;

fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
}

/// `twinloop analyze wiring` on two tables; its JSON report.
fn wiring_report(emb: &Path, pairs: &Path, out: &Path) -> serde_json::Value {
    let o = twinloop()
        .args(["analyze", "wiring", "--embeddings"])
        .arg(emb)
        .arg("--pairs")
        .arg(pairs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "analyze wiring: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

#[test]
fn the_wiring_rule_planted_in_a_simulated_connectome_is_recovered_from_its_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ok = |args: &[&str]| {
        let out = twinloop().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = d.to_str().unwrap();
    ok(&[
        "analyze",
        "simulate",
        "--out",
        dir,
        "--seed",
        "3",
        "--beta-feature",
        "1.8",
    ]);
    let (emb, pairs) = (d.join("embeddings.csv"), d.join("pairs.csv"));
    let report = d.join("wiring.json");
    let r = wiring_report(&emb, &pairs, &report);
    let slope = r["slopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["scale"] == "Synaptic"
                && s["measure"] == "FeatureSimilarity"
                && s["projection"] == "V1->V1"
        })
        .expect("the V1->V1 feature slope at the synaptic scale");
    let (beta, se) = (
        slope["estimate"].as_f64().unwrap(),
        slope["std_error"].as_f64().unwrap(),
    );
    // The simulator's default co-registration errors attenuate β_f (BENCHMARKS.md: to ~0.8-0.9
    // of the truth); what matters here is that the planted rule is found, and found positive.
    assert!(beta > 0.8 && beta < 2.6 && se > 0.0, "β_f = {beta} ± {se}");
    assert!(slope["q_value"].as_f64().unwrap() < 0.05, "{slope}");

    let out = ok(&[
        "analyze",
        "celltypes",
        "--embeddings",
        emb.to_str().unwrap(),
        "--shuffles",
        "3",
    ]);
    assert!(out.contains("balanced accuracy"), "{out}");

    // A table missing a column names it.
    let text = std::fs::read_to_string(&pairs)
        .unwrap()
        .replacen("l_d_um", "l_d", 1);
    std::fs::write(&pairs, text).unwrap();
    let out = twinloop()
        .args([
            "analyze",
            "wiring",
            "--embeddings",
            emb.to_str().unwrap(),
            "--pairs",
        ])
        .arg(&pairs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("l_d_um") && err.contains("pairs.csv"), "{err}");
}

/// `analyze report`: one page with a density curve per measure and projection type, the slopes
/// and the confusion matrices; a pair naming a cell the embeddings lack is refused by line.
#[test]
fn the_report_page_plots_the_curves_and_confusion_matrices() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = |args: &[&str]| twinloop().args(args).output().unwrap();
    let out = run(&[
        "analyze",
        "simulate",
        "--out",
        d.to_str().unwrap(),
        "--seed",
        "4",
    ]);
    assert!(out.status.success());
    let (emb, pairs, page) = (
        d.join("embeddings.csv"),
        d.join("pairs.csv"),
        d.join("report.html"),
    );
    let args = |pairs: &std::path::Path| {
        vec![
            "analyze".to_string(),
            "report".into(),
            "--embeddings".into(),
            emb.display().to_string(),
            "--pairs".into(),
            pairs.display().to_string(),
            "--out".into(),
            page.display().to_string(),
        ]
    };
    let a = args(&pairs);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let wiring = wiring_report(&emb, &pairs, &d.join("w.json"));
    // One curve per synaptic-scale slope of the wiring report, each an SVG with its type.
    let synaptic = wiring["slopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["scale"] == "Synaptic")
        .count();
    assert!(synaptic >= 2);
    assert_eq!(html.matches("<svg").count(), synaptic, "{html}");
    assert!(
        html.contains("V1-&gt;V1"),
        "projection types named, escaped"
    );
    // Type and area, from three inputs each: six confusion matrices.
    assert_eq!(html.matches("true \\ predicted").count(), 6);

    // A pair whose post cell is not in the embeddings: refused, naming the line and the id.
    let text = std::fs::read_to_string(&pairs).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut f: Vec<String> = lines[2].split(',').map(String::from).collect();
    f[1] = "987654321".into();
    lines[2] = f.join(",");
    let bad = d.join("bad_pairs.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let a = args(&bad);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("987654321") && err.contains("line 3"),
        "{err}"
    );
}
