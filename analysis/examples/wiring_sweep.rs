//! The issue #21 validation figures on the simulated connectome, over many seeds: null
//! false-positive rate, feature-rule recovery and power against the number of presynaptic
//! cells, attenuation by twin (readout) error, RF-rule recovery and confusion, and cell-type /
//! area decoding against chance, shuffles and the true-parameter ceiling.
//!
//! cargo run --release -p twinloop-analysis --example wiring_sweep -- [--seeds 20] [--decode-seeds 5]

use twinloop_analysis::celltypes::{
    CellTypeOptions, DecodeScore, Input, Target, decode_cell_types,
};
use twinloop_analysis::connectome::{Connectome, ConnectomeConfig, simulate};
use twinloop_analysis::wiring::{Embedding, Measure, Scale, WiringOptions, WiringReport, analyze};

const MAIN: &str = "V1->V1";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(config: &ConnectomeConfig) -> WiringReport {
    let c = simulate(config).expect("simulate");
    analyze(&c.embeddings, &c.pairs, &WiringOptions::default()).expect("analyze")
}

fn synaptic(report: &WiringReport, measure: Measure) -> Vec<&twinloop_analysis::wiring::Slope> {
    report
        .slopes
        .iter()
        .filter(|s| s.scale == Scale::Synaptic && s.measure == measure)
        .collect()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt(),
    )
}

fn main() {
    let seeds = arg("--seeds", 20) as u64;
    let decode_seeds = arg("--decode-seeds", 5) as u64;
    let base = ConnectomeConfig::default();
    println!(
        "# wiring_sweep: {seeds} seeds; default connectome {} cells, {} presynaptic, co-registration error {}",
        base.n_cells, base.n_presynaptic, base.coregistration_error
    );

    // Null: β_f = β_r = 0, L still set by distance.
    let (mut tests, mut rejections, mut any) = (0, 0, 0);
    let (mut fallbacks, mut sds) = (0, Vec::new());
    for seed in 0..seeds {
        let r = run(&ConnectomeConfig {
            beta_feature: 0.0,
            seed,
            ..base.clone()
        });
        sds.extend(
            r.models
                .iter()
                .filter(|m| m.scale == Scale::Synaptic)
                .map(|m| m.random_sd),
        );
        fallbacks += r
            .models
            .iter()
            .filter(|m| {
                !matches!(
                    m.method,
                    twinloop_analysis::mixed::MixedMethod::AdaptiveGaussHermite { .. }
                )
            })
            .count();
        let slopes: Vec<_> = synaptic(&r, Measure::FeatureSimilarity)
            .into_iter()
            .chain(synaptic(&r, Measure::RfDistance))
            .collect();
        tests += slopes.len();
        rejections += slopes.iter().filter(|s| s.p_value < 0.05).count();
        any += slopes.iter().any(|s| s.q_value < 0.05) as usize;
    }
    println!(
        "null: {rejections}/{tests} synaptic slopes with p < 0.05 ({:.1}%); seeds with any BH q < 0.05: {any}/{seeds}; fallbacks {fallbacks}; synaptic random-intercept SD {:.3} ± {:.3} (planted {})",
        100.0 * rejections as f64 / tests as f64,
        mean_sd(&sds).0,
        mean_sd(&sds).1,
        base.presynaptic_sd
    );

    // Feature rule: recovery and power against the number of presynaptic cells.
    for n_pre in [25, 50, 100, 150] {
        let (mut ratios, mut detected) = (Vec::new(), 0);
        for seed in 0..seeds {
            let r = run(&ConnectomeConfig {
                n_presynaptic: n_pre,
                seed,
                ..base.clone()
            });
            if let Some(s) = r.slope(Scale::Synaptic, Measure::FeatureSimilarity, MAIN) {
                ratios.push(s.estimate / 1.8);
                detected += (s.q_value < 0.05) as usize;
            }
        }
        let (m, sd) = mean_sd(&ratios);
        println!(
            "feature rule, {n_pre} presynaptic: {MAIN} β_f/1.8 = {m:.3} ± {sd:.3}; power (q < 0.05) {detected}/{}",
            ratios.len()
        );
    }

    // Attenuation by readout error and by co-registration error.
    // (0, 0.07) is the default, measured above with 150 presynaptic cells.
    for (noise, coreg) in [(0.0, 0.0), (0.5, 0.07), (1.0, 0.07)] {
        let ratios: Vec<f64> = (0..seeds)
            .filter_map(|seed| {
                let r = run(&ConnectomeConfig {
                    readout_noise: noise,
                    coregistration_error: coreg,
                    seed,
                    ..base.clone()
                });
                r.slope(Scale::Synaptic, Measure::FeatureSimilarity, MAIN)
                    .map(|s| s.estimate / 1.8)
            })
            .collect();
        let (m, sd) = mean_sd(&ratios);
        println!(
            "attenuation: readout noise SD {noise}, co-registration error {coreg}: β_f/1.8 = {m:.3} ± {sd:.3}"
        );
    }

    // RF rule: β_r = -0.1 per degree, β_f = 0; with exact co-registration, then the default 7%
    // (a mis-registered cell's RF is anywhere, so its pairs get large, wrong distances).
    for coreg in [0.0, base.coregistration_error] {
        let (mut ratios, mut rf_detected, mut feature_fp, mut feature_tests) =
            (Vec::new(), 0, 0, 0);
        for seed in 0..seeds {
            let r = run(&ConnectomeConfig {
                beta_feature: 0.0,
                beta_rf_per_deg: -0.1,
                coregistration_error: coreg,
                seed,
                ..base.clone()
            });
            if let Some(s) = r.slope(Scale::Synaptic, Measure::RfDistance, MAIN) {
                ratios.push(s.estimate / -0.1);
                rf_detected += (s.q_value < 0.05) as usize;
            }
            let f = synaptic(&r, Measure::FeatureSimilarity);
            feature_tests += f.len();
            feature_fp += f.iter().filter(|s| s.q_value < 0.05).count();
        }
        let (m, sd) = mean_sd(&ratios);
        println!(
            "RF rule, co-registration error {coreg}: {MAIN} β_r/(-0.1) = {m:.3} ± {sd:.3}; detected {rf_detected}/{}; feature slopes with q < 0.05: {feature_fp}/{feature_tests}",
            ratios.len()
        );
    }

    // Decoding: exported embeddings vs the simulator's true parameters (the ceiling).
    let mut rows: Vec<DecodeRow> = Vec::new();
    for seed in 0..decode_seeds {
        let c = simulate(&ConnectomeConfig {
            readout_noise: 0.5,
            seed,
            ..base.clone()
        })
        .expect("simulate");
        let blocks = blocks(&c);
        let options = CellTypeOptions {
            n_shuffles: 3,
            seed,
            ..CellTypeOptions::default()
        };
        let observed = decode_cell_types(&c.embeddings, &blocks, &options).expect("decode");
        let ceiling = decode_cell_types(
            &true_embeddings(&c),
            &blocks,
            &CellTypeOptions {
                n_shuffles: 0,
                ..options
            },
        )
        .expect("decode");
        for (o, t) in observed.iter().zip(&ceiling) {
            let i = rows
                .iter()
                .position(|r| r.target == o.target && r.input == o.input)
                .unwrap_or_else(|| {
                    rows.push(DecodeRow {
                        target: o.target,
                        input: o.input,
                        chance: o.chance,
                        ..DecodeRow::default()
                    });
                    rows.len() - 1
                });
            rows[i].accuracy.push(o.balanced_accuracy);
            rows[i].shuffled.push(shuffled_mean(o));
            rows[i].ceiling.push(t.balanced_accuracy);
        }
    }
    for r in rows {
        let (acc, sd) = mean_sd(&r.accuracy);
        println!(
            "decode {:?} from {:?} ({decode_seeds} seeds): balanced accuracy {acc:.3} ± {sd:.3}, shuffled {:.3}, ceiling {:.3}, chance {:.3}",
            r.target,
            r.input,
            mean_sd(&r.shuffled).0,
            mean_sd(&r.ceiling).0,
            r.chance
        );
    }
}

/// Balanced accuracies of one (target, input) over seeds.
struct DecodeRow {
    target: Target,
    input: Input,
    chance: f64,
    accuracy: Vec<f64>,
    shuffled: Vec<f64>,
    ceiling: Vec<f64>,
}

impl Default for DecodeRow {
    fn default() -> Self {
        Self {
            target: Target::CellType,
            input: Input::Features,
            chance: 0.0,
            accuracy: vec![],
            shuffled: vec![],
            ceiling: vec![],
        }
    }
}

fn shuffled_mean(s: &DecodeScore) -> f64 {
    s.shuffle.as_ref().map_or(f64::NAN, |c| {
        c.shuffled.iter().sum::<f64>() / c.shuffled.len() as f64
    })
}

/// 250 µm cortical tiles.
fn blocks(c: &Connectome) -> Vec<usize> {
    c.truth
        .soma_um
        .iter()
        .map(|p| (p[0] / 250.0) as usize * 10 + (p[1] / 250.0) as usize)
        .collect()
}

/// The embeddings as the simulator knows them: true features and RF centres, no swaps.
fn true_embeddings(c: &Connectome) -> Vec<Embedding> {
    c.embeddings
        .iter()
        .enumerate()
        .map(|(i, e)| Embedding {
            features: c.truth.features[i].clone(),
            azimuth_deg: c.truth.rf_deg[i][0],
            elevation_deg: c.truth.rf_deg[i][1],
            ..e.clone()
        })
        .collect()
}
