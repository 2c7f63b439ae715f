//! The simulated mouse's anatomy (`sim::connectome`): identities read off the cells' true
//! tuning on the connectome's maps, and a rule planted from the true features that Ding et
//! al.'s analysis (`twinloop_analysis::wiring`, written and checked separately) recovers from
//! the true features — and does not find when none was planted.

use twinloop_analysis::connectome::ConnectomeConfig;
use twinloop_analysis::wiring::{Measure, Scale, WiringOptions, analyze};
use twinloop_rig::sim::connectome::{SimAnatomy, recorded_mouse_cells};
use twinloop_rig::sim::tuning::CellType as Tuning;
use twinloop_stimulus::ViewGeometry;

fn view() -> ViewGeometry {
    ViewGeometry {
        width: 64,
        height: 36,
        azimuth_deg: (-60.0, 60.0),
        elevation_deg: (-35.0, 35.0),
    }
}

fn anatomy(
    beta_feature: f64,
    seed: u64,
) -> (Vec<twinloop_rig::sim::tuning::CellParams>, SimAnatomy) {
    let params = recorded_mouse_cells(seed, 400, view(), 30.0).unwrap();
    let a = SimAnatomy::plant(
        &params,
        &ConnectomeConfig {
            n_cells: params.len(),
            n_presynaptic: 100,
            beta_feature,
            coregistration_error: 0.0,
            seed,
            ..ConnectomeConfig::default()
        },
    )
    .unwrap();
    (params, a)
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn identities_follow_tuning_and_the_mirrored_maps() {
    let (params, a) = anatomy(1.8, 3);
    assert_eq!(a.cells.len(), 400);
    let hva: Vec<usize> = (0..400)
        .filter(|&i| a.cells[i].area.name() == "HVA")
        .collect();
    assert!((199..=201).contains(&hva.len()), "{} HVA cells", hva.len());
    // The higher area prefers faster stimuli: every HVA cell's TF/SF exceeds every V1 cell's.
    let speed = |i: usize| params[i].temporal_freq_hz / params[i].spatial_freq_cpd;
    let v1: Vec<usize> = (0..400).filter(|i| !hva.contains(i)).collect();
    let slowest_hva = hva.iter().map(|&i| speed(i)).fold(f64::MAX, f64::min);
    let fastest_v1 = v1.iter().map(|&i| speed(i)).fold(0.0, f64::max);
    assert!(slowest_hva >= fastest_v1);
    // V1 left of the border, the higher area right of it; azimuth runs one way across V1 and
    // the other way across the higher area (the reversal).
    let x = |i: usize| a.cells[i].soma_um[0];
    let az = |i: usize| params[i].rf_azimuth_deg;
    assert!(v1.iter().all(|&i| x(i) <= 600.0) && hva.iter().all(|&i| x(i) >= 600.0));
    let c = |set: &[usize]| {
        corr(
            &set.iter().map(|&i| x(i)).collect::<Vec<_>>(),
            &set.iter().map(|&i| az(i)).collect::<Vec<_>>(),
        )
    };
    assert!(c(&v1) > 0.99 && c(&hva) < -0.99, "{} {}", c(&v1), c(&hva));
    // Simple cells are L4; complex cells L2/3 or L5, in their layers' depths.
    for (p, cell) in params.iter().zip(&a.cells) {
        let name = cell.cell_type.name();
        assert_eq!(p.cell_type == Tuning::Simple, name == "L4_exc", "{name}");
        let z = cell.soma_um[2];
        let (lo, hi) = match name {
            "L23_exc" => (100.0, 300.0),
            "L4_exc" => (300.0, 400.0),
            _ => (400.0, 600.0),
        };
        assert!((lo..=hi).contains(&z), "{name} at {z} µm");
    }
    // The truth file names every cell with its true features.
    let truth: serde_json::Value = serde_json::from_str(&a.truth_json().unwrap()).unwrap();
    assert_eq!(truth["beta_feature"], 1.8);
    assert_eq!(truth["cells"].as_array().unwrap().len(), 400);
}

#[test]
fn the_planted_feature_rule_is_recovered_from_true_features_and_the_null_is_not_rejected() {
    for (beta, seed) in [(1.8, 4), (0.0, 5)] {
        let (_, a) = anatomy(beta, seed);
        let connected = a.planted.pairs.iter().filter(|p| p.synapses > 0).count();
        assert!(connected > 100, "{connected} connected pairs");
        let report = analyze(
            &a.true_embeddings(),
            &a.planted.pairs,
            &WiringOptions::default(),
        )
        .unwrap();
        let s = report
            .slope(Scale::Synaptic, Measure::FeatureSimilarity, "V1->V1")
            .unwrap();
        assert!(
            (s.estimate - beta).abs() < 3.0 * s.std_error,
            "beta {beta}: {} ± {}",
            s.estimate,
            s.std_error
        );
        if beta > 0.0 {
            assert!(s.q_value < 0.05, "q {}", s.q_value);
        }
    }
}
