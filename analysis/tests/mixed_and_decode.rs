//! Behaviour the peers do not cover: the Tweedie mixed model recovers what was planted, a
//! group effect of zero is reported as the fixed-effect fallback (flagged, never silent), the
//! cell-type decoder beats shuffled labels on the simulated connectome, and bad inputs are
//! refused by name.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use twinloop_analysis::celltypes::{CellTypeOptions, Input, Target, decode_cell_types};
use twinloop_analysis::compare::welch_t_test;
use twinloop_analysis::connectome::{ConnectomeConfig, simulate};
use twinloop_analysis::design::Design;
use twinloop_analysis::glm::{Family, GlmOptions, fit_glm};
use twinloop_analysis::mixed::{MixedMethod, MixedOptions, fit_glmm};

fn grouped(seed: u64, groups: usize, per: usize) -> (Design, Vec<f64>, Vec<usize>, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = groups * per;
    let x: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let design = Design::from_columns(vec![
        ("intercept".into(), vec![1.0; n]),
        ("x".into(), x.clone()),
    ])
    .unwrap();
    (design, x, (0..n).map(|i| i / per).collect(), rng)
}

#[test]
fn tweedie_glmm_recovers_planted_slope_and_group_sd() {
    let (design, x, group, mut rng) = grouped(31, 60, 40);
    let (power, phi, sd) = (1.5, 0.8, 0.6);
    let u: Vec<f64> = (0..60)
        .map(|_| sd * Normal::new(0.0, 1.0).unwrap().sample(&mut rng))
        .collect();
    let y: Vec<f64> = (0..x.len())
        .map(|i| {
            let mu = (1.0f64 + 0.7 * x[i] + u[group[i]]).exp();
            let lambda = mu.powf(2.0 - power) / (phi * (2.0 - power));
            let n = Poisson::new(lambda).unwrap().sample(&mut rng) as usize;
            let g = Gamma::new(
                (2.0 - power) / (power - 1.0),
                phi * (power - 1.0) * mu.powf(power - 1.0),
            )
            .unwrap();
            (0..n).map(|_| g.sample(&mut rng)).sum()
        })
        .collect();
    let fit = fit_glmm(
        &design,
        &y,
        None,
        &group,
        Family::Tweedie { var_power: power },
        &MixedOptions::default(),
    )
    .unwrap();
    assert!(!fit.is_fallback(), "{:?}", fit.method);
    let b = fit.coefficient("x").unwrap();
    assert!(
        (b.estimate - 0.7).abs() < 3.0 * b.std_error,
        "slope {} ± {}",
        b.estimate,
        b.std_error
    );
    assert!(
        (fit.random_sd - sd).abs() < 3.0 * fit.random_sd_std_error,
        "σ {} ± {}",
        fit.random_sd,
        fit.random_sd_std_error
    );
    assert!(
        (fit.scale - phi).abs() < 0.15 * phi,
        "φ {} vs planted {phi}",
        fit.scale
    );
    // Guard against an unflagged GLM: with a real group effect the mixed SE differs from it.
    let glm = fit_glm(
        &design,
        &y,
        None,
        Family::Tweedie { var_power: power },
        &GlmOptions::default(),
    )
    .unwrap();
    assert!((glm.coefficient("x").unwrap().std_error - b.std_error).abs() > 1e-3 * b.std_error);
}

#[test]
fn no_group_effect_is_reported_as_the_fixed_effect_fallback_or_a_small_sd() {
    let (design, x, group, mut rng) = grouped(32, 40, 30);
    let y: Vec<f64> = x
        .iter()
        .map(|v| {
            Poisson::new((0.5 + 0.4 * v).exp())
                .unwrap()
                .sample(&mut rng)
        })
        .collect();
    let fit = fit_glmm(
        &design,
        &y,
        None,
        &group,
        Family::Poisson,
        &MixedOptions::default(),
    )
    .unwrap();
    match &fit.method {
        MixedMethod::FixedEffectFallback { reason } => {
            assert!(reason.contains("boundary"), "{reason}");
            let glm = fit_glm(&design, &y, None, Family::Poisson, &GlmOptions::default()).unwrap();
            assert_eq!(
                fit.estimates(),
                glm.estimates(),
                "the fallback reports the GLM's estimates"
            );
            assert_eq!(fit.random_sd, 0.0);
        }
        MixedMethod::AdaptiveGaussHermite { .. } => {
            assert!(
                fit.random_sd < 2.0 * fit.random_sd_std_error,
                "σ {} ± {} for no planted effect",
                fit.random_sd,
                fit.random_sd_std_error
            )
        }
    }
}

#[test]
fn decoder_beats_shuffled_labels_on_the_simulated_connectome() {
    let c = simulate(&ConnectomeConfig {
        n_cells: 360,
        n_presynaptic: 10,
        readout_noise: 0.5,
        seed: 3,
        ..ConnectomeConfig::default()
    })
    .unwrap();
    // 250 µm cortical tiles as folds.
    let blocks: Vec<usize> = c
        .truth
        .soma_um
        .iter()
        .map(|p| (p[0] / 250.0) as usize * 10 + (p[1] / 250.0) as usize)
        .collect();
    let scores = decode_cell_types(
        &c.embeddings,
        &blocks,
        &CellTypeOptions {
            n_shuffles: 2,
            seed: 1,
            ..CellTypeOptions::default()
        },
    )
    .unwrap();
    for target in [Target::CellType, Target::Area] {
        let s = scores
            .iter()
            .find(|s| s.target == target && s.input == Input::Features)
            .unwrap();
        let shuffled = s.shuffle.as_ref().unwrap();
        let best_shuffle = shuffled.shuffled.iter().cloned().fold(0.0, f64::max);
        assert!(
            s.balanced_accuracy > s.chance + 0.15,
            "{target:?}: {} vs chance {}",
            s.balanced_accuracy,
            s.chance
        );
        assert!(
            s.balanced_accuracy > best_shuffle + 0.1,
            "{target:?}: {} vs shuffled {best_shuffle}",
            s.balanced_accuracy
        );
        assert_eq!(
            s.confusion.iter().flatten().sum::<usize>(),
            c.embeddings.len()
        );
    }
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let design = Design::from_columns(vec![
        ("a".into(), vec![1.0; 4]),
        ("b".into(), vec![0.0, 1.0, 2.0, 3.0]),
    ])
    .unwrap();
    let fit = |y: &[f64], off: Option<&[f64]>, f: Family| {
        fit_glm(&design, y, off, f, &GlmOptions::default())
            .unwrap_err()
            .to_string()
    };
    assert!(fit(&[1.0, f64::NAN, 2.0, 3.0], None, Family::Poisson).contains("response"));
    assert!(fit(&[1.0, -1.0, 2.0, 3.0], None, Family::Poisson).contains("row 1"));
    assert!(fit(&[1.0, 0.5, 2.0, 3.0], None, Family::Poisson).contains("not an integer"));
    assert!(
        fit(
            &[1.0, 0.5, 2.0, 3.0],
            None,
            Family::Tweedie { var_power: 2.5 }
        )
        .contains("var_power")
    );
    assert!(fit(&[1.0, 0.0, 2.0, 3.0], Some(&[0.0, 0.0]), Family::Poisson).contains("offset"));
    assert!(
        fit(
            &[1.0, 0.0, 2.0, 3.0],
            Some(&[0.0, f64::NEG_INFINITY, 0.0, 0.0]),
            Family::Poisson
        )
        .contains("offset")
    );
    let err = fit_glmm(
        &design,
        &[1.0, 0.0, 2.0, 3.0],
        None,
        &[0, 1],
        Family::Poisson,
        &MixedOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("groups"), "{err}");
    assert!(
        Design::new(vec!["a".into()], vec![1.0, f64::NAN])
            .unwrap_err()
            .to_string()
            .contains("column `a`")
    );
    assert!(welch_t_test(&[1.0], &[2.0, 3.0]).is_err());
    assert!(
        welch_t_test(&[1.0, 1.0], &[2.0, 2.0]).is_err(),
        "constant groups have no t"
    );
}
