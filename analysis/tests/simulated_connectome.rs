//! The wiring analysis on simulated connectomes whose rule is known (issue #21): the feature
//! rule is recovered, the null is not rejected, an RF rule is found as an RF rule and not as a
//! feature rule; the CSV tables round-trip and bad tables are refused by name. Small, fixed
//! seeds; the 20-seed figures come from `examples/wiring_sweep.rs`.

use twinloop_analysis::connectome::{ConnectomeConfig, simulate};
use twinloop_analysis::error::Error;
use twinloop_analysis::wiring::table::{read_tables, write_embeddings, write_pairs};
use twinloop_analysis::wiring::{Measure, Scale, WiringOptions, WiringReport, analyze};

/// Small enough for a debug-build test, with exact co-registration and noiseless readouts so
/// the model is correctly specified.
fn small(seed: u64, beta_feature: f64, beta_rf: f64) -> ConnectomeConfig {
    ConnectomeConfig {
        n_cells: 700,
        n_presynaptic: 80,
        beta_feature,
        beta_rf_per_deg: beta_rf,
        coregistration_error: 0.0,
        seed,
        ..ConnectomeConfig::default()
    }
}

fn run(config: &ConnectomeConfig) -> WiringReport {
    let c = simulate(config).expect("simulate");
    analyze(&c.embeddings, &c.pairs, &WiringOptions::default()).expect("analyze")
}

#[test]
fn planted_feature_rule_is_recovered_within_its_standard_error() {
    let report = run(&small(2, 1.8, 0.0));
    let s = report
        .slope(Scale::Synaptic, Measure::FeatureSimilarity, "V1->V1")
        .expect("V1->V1 slope");
    assert!(
        (s.estimate - 1.8).abs() < 3.0 * s.std_error,
        "β_f = {} ± {} vs planted 1.8",
        s.estimate,
        s.std_error
    );
    assert!(
        s.q_value < 1e-3,
        "a planted β_f = 1.8 must be detected: q = {}",
        s.q_value
    );
    let model = report
        .models
        .iter()
        .find(|m| m.scale == Scale::Synaptic && m.measure == Measure::FeatureSimilarity)
        .expect("model");
    assert!(
        matches!(
            model.method,
            twinloop_analysis::mixed::MixedMethod::AdaptiveGaussHermite { .. }
        ),
        "the random intercept was fitted, not a fallback: {:?}",
        model.method
    );
    // Planted u_i SD 0.5.
    let (sd, se) = (model.random_sd, model.random_sd_std_error);
    assert!(
        (sd - 0.5).abs() < 3.0 * se,
        "random-intercept SD {sd} ± {se} vs planted 0.5"
    );
}

#[test]
fn null_rule_is_not_rejected_and_rf_rule_is_not_taken_for_a_feature_rule() {
    for seed in [2, 3] {
        let report = run(&small(seed, 0.0, 0.0));
        for s in report.slopes.iter().filter(|s| s.scale == Scale::Synaptic) {
            assert!(
                s.q_value > 0.01,
                "null seed {seed}: {:?} {} q = {} (β = {})",
                s.measure,
                s.projection,
                s.q_value,
                s.estimate
            );
        }
    }
    let report = run(&small(4, 0.0, -0.1));
    let rf = report
        .slope(Scale::Synaptic, Measure::RfDistance, "V1->V1")
        .expect("slope");
    assert!(
        (rf.estimate + 0.1).abs() < 3.0 * rf.std_error,
        "β_r = {} ± {} vs planted -0.1",
        rf.estimate,
        rf.std_error
    );
    assert!(rf.q_value < 1e-3, "RF rule detected: q = {}", rf.q_value);
    let f = report
        .slope(Scale::Synaptic, Measure::FeatureSimilarity, "V1->V1")
        .expect("slope");
    assert!(
        f.q_value > 0.01,
        "RF rule mistaken for a feature rule: β_f = {} q = {}",
        f.estimate,
        f.q_value
    );
}

#[test]
fn tables_round_trip_through_csv_and_bad_tables_are_named() {
    let c = simulate(&ConnectomeConfig {
        n_cells: 300,
        n_presynaptic: 20,
        seed: 9,
        ..ConnectomeConfig::default()
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("twinloop-analysis-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (emb, pairs) = (dir.join("embeddings.csv"), dir.join("pairs.csv"));
    write_embeddings(&emb, &c.embeddings).unwrap();
    write_pairs(&pairs, &c.pairs).unwrap();
    let (e2, p2) = read_tables(&emb, &pairs).unwrap();
    assert_eq!(
        e2, c.embeddings,
        "embeddings round trip (Rust's shortest float formatting is exact)"
    );
    assert_eq!(p2, c.pairs);

    let text = std::fs::read_to_string(&emb).unwrap();
    // Two cores: the third data row (line 4) from another core.
    let mixed: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 3 { l.replacen("simulated-truth", "other-core", 1) } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(dir.join("mixed.csv"), mixed).unwrap();
    match read_tables(&dir.join("mixed.csv"), &pairs) {
        Err(e @ Error::MixedCores { line: 4, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("simulated-truth") && msg.contains("other-core"),
                "{msg}"
            );
        }
        other => panic!("expected the two cores named, got {other:?}"),
    }
    // Missing column.
    let no_cc: String = text
        .lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 5)
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("no_cc.csv"), no_cc).unwrap();
    let err = read_tables(&dir.join("no_cc.csv"), &pairs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing column `cc_max`"), "{err}");
    // Unknown cell id in pairs (line 3 = second data row).
    let ptext = std::fs::read_to_string(&pairs).unwrap();
    let bad: String = ptext
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 2 { format!("999999{}", &l[l.find(',').unwrap()..]) } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(dir.join("bad_pairs.csv"), bad).unwrap();
    match read_tables(&emb, &dir.join("bad_pairs.csv")) {
        Err(Error::UnknownCell {
            line: 3,
            cell: 999_999,
            role: "pre",
            ..
        }) => {}
        other => panic!("expected unknown pre cell 999999 at line 3, got {other:?}"),
    }
    // A non-numeric value names line and column.
    let garbled = ptext.replacen(
        &ptext
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap()
            .to_string(),
        "abc",
        1,
    );
    std::fs::write(dir.join("garbled.csv"), garbled).unwrap();
    let err = read_tables(&emb, &dir.join("garbled.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2, column `l_d_um`"), "{err}");
}

/// The report's binned density: bins partition the type's used pairs (counts add up to the
/// table's own totals, computed here from the pairs), density rises with feature similarity
/// under the feature rule and not under the null.
#[test]
fn binned_density_partitions_the_pairs_and_follows_the_rule() {
    use twinloop_analysis::wiring::binned_density;
    for (beta, seed) in [(1.8, 31), (0.0, 32)] {
        let c = simulate(&small(seed, beta, 0.0)).unwrap();
        let options = WiringOptions::default();
        let report = analyze(&c.embeddings, &c.pairs, &options).unwrap();
        let curves = binned_density(&c.embeddings, &c.pairs, &options, &report, 6).unwrap();
        let curve = curves
            .iter()
            .find(|k| k.measure == Measure::FeatureSimilarity && k.projection == "V1->V1")
            .unwrap();
        // Totals from the tables directly: pairs V1->V1 whose cells pass the CC filters.
        let kept: std::collections::HashSet<u64> = c
            .embeddings
            .iter()
            .filter(|e| e.cc_max > options.min_cc_max && e.cc_abs > options.min_cc_abs)
            .map(|e| e.cell_id)
            .collect();
        let (n, syn) = c
            .pairs
            .iter()
            .filter(|p| {
                p.projection == "V1->V1" && kept.contains(&p.pre_id) && kept.contains(&p.post_id)
            })
            .fold((0usize, 0f64), |(n, s), p| {
                (n + 1, s + f64::from(p.synapses))
            });
        assert_eq!(curve.bins.iter().map(|b| b.pairs).sum::<usize>(), n);
        assert_eq!(curve.bins.iter().map(|b| b.synapses).sum::<f64>(), syn);
        assert!(curve.bins.windows(2).all(|w| w[0].hi <= w[1].lo));
        let (first, last) = (&curve.bins[0], &curve.bins[curve.bins.len() - 1]);
        let rise = last.density_per_um / first.density_per_um;
        if beta > 0.0 {
            assert!(rise > 2.0, "density rises {rise}x under β_f = {beta}");
        } else {
            assert!(
                rise < 2.0 && rise > 0.5,
                "density flat under the null: {rise}x"
            );
        }
    }
}
