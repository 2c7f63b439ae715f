//! The GLM's IRLS at the edges of what synapse tables carry: `offset(log L)` for a co-travel
//! length of a few nanometres puts the offset near −30, far from where the start (μ from y)
//! sits. Whatever path IRLS takes, it must land on the maximum-likelihood estimate, checked
//! here against the Poisson score equations, not against IRLS itself; and a count no f64
//! mean can fit must end in an error naming IRLS. (The step-halving fix for a first step whose
//! deviance is not finite, which once spun for ever in `analyze twin-chain` on seed 301, was
//! found by that run; these designs do not reach that branch.)

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, Uniform};
use twinloop_analysis::design::Design;
use twinloop_analysis::glm::{Family, GlmOptions, fit_glm};

#[test]
fn a_first_step_that_overflows_is_halved_back_to_the_mle() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 400;
    let x: Vec<f64> = (0..n)
        .map(|_| Uniform::new(-1.0, 1.0).unwrap().sample(&mut rng))
        .collect();
    let y: Vec<f64> = x
        .iter()
        .map(|&xi| {
            Poisson::new((1.5 + 0.8 * xi).exp())
                .unwrap()
                .sample(&mut rng)
        })
        .collect();
    let design = Design::from_columns(vec![
        ("intercept".into(), vec![1.0; n]),
        ("x".into(), x.clone()),
    ])
    .unwrap();
    for offset in [-30.0, -12.0, 0.0, 8.0] {
        let o = vec![offset; n];
        let fit = fit_glm(
            &design,
            &y,
            Some(&o),
            Family::Poisson,
            &GlmOptions::default(),
        )
        .unwrap_or_else(|e| panic!("offset {offset}: {e}"));
        let b = fit.estimates();
        // A constant offset only moves the intercept: the same slope at every offset.
        assert!((b[1] - 0.8).abs() < 0.15, "offset {offset}: slope {}", b[1]);
        assert!(
            (b[0] + offset - 1.5).abs() < 0.15,
            "offset {offset}: intercept {} (+ offset {offset})",
            b[0]
        );
        // The Poisson score equations with the canonical link: sum(y - mu) = 0 and
        // sum(x (y - mu)) = 0 at the MLE, whatever path IRLS took to it.
        let (s0, s1) = fit
            .fitted
            .iter()
            .zip(&y)
            .zip(&x)
            .fold((0.0, 0.0), |(a, c), ((m, yi), xi)| {
                (a + (yi - m), c + xi * (yi - m))
            });
        let total: f64 = y.iter().sum();
        assert!(
            s0.abs() < 1e-6 * total && s1.abs() < 1e-6 * total,
            "offset {offset}: score ({s0}, {s1})"
        );
    }
}

#[test]
fn a_design_whose_mean_overflows_everywhere_is_refused_not_looped() {
    // A count of 1e300 cannot be fitted in f64 (its mean's deviance is not finite): the fit
    // must end with an error naming IRLS, not spin.
    let n = 50;
    let design = Design::from_columns(vec![("intercept".into(), vec![1.0; n])]).unwrap();
    let y: Vec<f64> = (0..n).map(|i| if i == 0 { 1e300 } else { 0.0 }).collect();
    match fit_glm(&design, &y, None, Family::Poisson, &GlmOptions::default()) {
        Ok(fit) => assert!(fit.deviance.is_finite(), "{:?}", fit.deviance),
        Err(e) => assert!(e.to_string().contains("IRLS"), "{e}"),
    }
}
