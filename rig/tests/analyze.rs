//! `twinloop analyze` as a lab meets it: tables written by the simulated connectome (a known
//! rule) go in, the planted slope comes out; a bad table is one clear error.

use std::process::Command;

fn twinloop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
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
    ok(&[
        "analyze",
        "wiring",
        "--embeddings",
        emb.to_str().unwrap(),
        "--pairs",
        pairs.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
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
