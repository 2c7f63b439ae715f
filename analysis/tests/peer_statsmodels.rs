//! The estimators against statsmodels and scipy on the same tables: each test writes a CSV,
//! runs `tests/peers/peers.py` under `TWINLOOP_PYTHON` (default `python3`) and compares.
//! Without numpy, scipy and statsmodels these tests fail, by design: run `scripts/test.sh`, or
//! `pip install -r tests/requirements.txt` and point TWINLOOP_PYTHON at that interpreter.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use twinloop_analysis::compare::{
    Alternative, paired_permutation_test, permutation_test, welch_t_test,
};
use twinloop_analysis::decode::{LogisticOptions, MultinomialLogit};
use twinloop_analysis::design::Design;
use twinloop_analysis::glm::{Family, GlmOptions, fit_glm};
use twinloop_analysis::mixed::{MixedOptions, fit_glmm};
use twinloop_analysis::multiple::bh_qvalues;

fn python() -> String {
    std::env::var("TWINLOOP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs one peers.py command on `csv`; panics with the fix when the peer is missing.
fn peer(command: &str, csv: &Path, extra: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/peers.py");
    let py = python();
    let out = Command::new(&py).arg(&script).arg(command).arg(csv).args(extra).output().unwrap_or_else(|e| {
        panic!("cannot run Python `{py}` ({e}): install Python 3, `pip install -r tests/requirements.txt`, set TWINLOOP_PYTHON")
    });
    assert!(
        out.status.success(),
        "peers.py {command} failed under `{py}` (needs numpy, scipy, statsmodels: `pip install -r \
         tests/requirements.txt` and set TWINLOOP_PYTHON):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peers.py prints JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A temp CSV with the given columns (`{:e}` with 17 digits, so Python reads the same values).
fn write_csv(name: &str, columns: &[(&str, &[f64])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twinloop-analysis-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.csv"));
    let n = columns[0].1.len();
    let mut s = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(",") + "\n";
    for i in 0..n {
        let row: Vec<String> = columns.iter().map(|c| format!("{:.17e}", c.1[i])).collect();
        s += &row.join(",");
        s.push('\n');
    }
    std::fs::write(&path, s).expect("write csv");
    path
}

/// A design with an intercept and `k` standard-normal covariates, and an offset.
fn covariates(rng: &mut ChaCha8Rng, n: usize, k: usize) -> (Design, Vec<Vec<f64>>, Vec<f64>) {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let mut cols = vec![vec![1.0; n]];
    for _ in 0..k {
        cols.push((0..n).map(|_| normal.sample(rng)).collect());
    }
    let offset: Vec<f64> = (0..n).map(|_| rng.random_range(-0.5..1.5)).collect();
    let design = Design::from_columns(
        cols.iter()
            .enumerate()
            .map(|(j, c)| (format!("x{j}"), c.clone()))
            .collect(),
    )
    .unwrap();
    (design, cols, offset)
}

fn assert_rel(ours: &[f64], theirs: &[f64], tol: f64, what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let rel = (a - b).abs() / b.abs().max(1e-8);
        assert!(
            rel < tol,
            "{what}[{i}]: ours {a}, peer {b}, relative difference {rel:.2e} ≥ {tol:e}"
        );
    }
}

fn glm_columns<'a>(
    cols: &'a [Vec<f64>],
    y: &'a [f64],
    offset: &'a [f64],
) -> Vec<(String, &'a [f64])> {
    let mut c: Vec<(String, &[f64])> = cols
        .iter()
        .enumerate()
        .map(|(j, c)| (format!("x{j}"), c.as_slice()))
        .collect();
    c.push(("y".into(), y));
    c.push(("offset".into(), offset));
    c
}

#[test]
fn poisson_glm_with_offset_matches_statsmodels() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (design, cols, offset) = covariates(&mut rng, 500, 3);
    let beta = [-0.7, 0.4, -0.25, 0.1];
    let y: Vec<f64> = design
        .times(&beta)
        .iter()
        .zip(&offset)
        .map(|(e, o)| Poisson::new((e + o).exp()).unwrap().sample(&mut rng))
        .collect();
    let fit = fit_glm(
        &design,
        &y,
        Some(&offset),
        Family::Poisson,
        &GlmOptions::default(),
    )
    .unwrap();
    let named = glm_columns(&cols, &y, &offset);
    let csv = write_csv(
        "poisson",
        &named
            .iter()
            .map(|(n, c)| (n.as_str(), *c))
            .collect::<Vec<_>>(),
    );
    let peer = peer("glm", &csv, &["poisson"]);
    assert_rel(
        &fit.estimates(),
        &floats(&peer["params"]),
        1e-6,
        "Poisson coefficients",
    );
    let se: Vec<f64> = fit.coefficients.iter().map(|c| c.std_error).collect();
    assert_rel(&se, &floats(&peer["bse"]), 1e-5, "Poisson standard errors");
}

#[test]
fn tweedie_glm_with_offset_matches_statsmodels() {
    for (seed, power) in [(3u64, 1.3), (4, 1.6)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (design, cols, offset) = covariates(&mut rng, 600, 2);
        let beta = [0.3, 0.5, -0.4];
        let phi = 1.2;
        // Compound Poisson–gamma draw with mean μ and variance φ μ^p.
        let y: Vec<f64> = design
            .times(&beta)
            .iter()
            .zip(&offset)
            .map(|(e, o)| {
                let mu = (e + o).exp();
                let lambda = mu.powf(2.0 - power) / (phi * (2.0 - power));
                let shape = (2.0 - power) / (power - 1.0);
                let scale = phi * (power - 1.0) * mu.powf(power - 1.0);
                let n = Poisson::new(lambda).unwrap().sample(&mut rng) as usize;
                (0..n)
                    .map(|_| Gamma::new(shape, scale).unwrap().sample(&mut rng))
                    .sum()
            })
            .collect();
        assert!(
            y.contains(&0.0) && y.iter().any(|v| *v > 0.0),
            "exact zeros and positives"
        );
        let family = Family::Tweedie { var_power: power };
        let fit = fit_glm(&design, &y, Some(&offset), family, &GlmOptions::default()).unwrap();
        let named = glm_columns(&cols, &y, &offset);
        let csv = write_csv(
            &format!("tweedie{seed}"),
            &named
                .iter()
                .map(|(n, c)| (n.as_str(), *c))
                .collect::<Vec<_>>(),
        );
        let peer = peer("glm", &csv, &["tweedie", &power.to_string()]);
        assert_rel(
            &fit.estimates(),
            &floats(&peer["params"]),
            1e-6,
            &format!("Tweedie p={power} coefficients"),
        );
        let se: Vec<f64> = fit.coefficients.iter().map(|c| c.std_error).collect();
        assert_rel(
            &se,
            &floats(&peer["bse"]),
            1e-5,
            &format!("Tweedie p={power} standard errors"),
        );
        assert_rel(
            &[fit.scale],
            &[peer["scale"].as_f64().unwrap()],
            1e-5,
            "Tweedie dispersion",
        );
    }
}

#[test]
fn welch_t_and_bh_match_scipy() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let a: Vec<f64> = (0..23)
        .map(|_| Normal::new(1.0, 2.0).unwrap().sample(&mut rng))
        .collect();
    let b: Vec<f64> = (0..23)
        .map(|i| {
            if i < 14 {
                Normal::new(0.2, 0.7).unwrap().sample(&mut rng)
            } else {
                f64::NAN
            }
        })
        .collect();
    let ours = welch_t_test(&a, &b[..14]).unwrap();
    let peer_out = peer("welch", &write_csv("welch", &[("a", &a), ("b", &b)]), &[]);
    assert_rel(
        &[ours.t, ours.df, ours.p_value],
        &["t", "df", "p"].map(|k| peer_out[k].as_f64().unwrap()),
        1e-9,
        "Welch t, df, p",
    );

    let p: Vec<f64> = (0..40)
        .map(|i| {
            if i < 8 {
                rng.random::<f64>() * 1e-3
            } else {
                rng.random::<f64>()
            }
        })
        .collect();
    let q = bh_qvalues(&p).unwrap();
    let peer_out = peer("bh", &write_csv("bh", &[("p", &p)]), &[]);
    assert_rel(&q, &floats(&peer_out["q"]), 1e-12, "BH q-values");
}

#[test]
fn exact_permutation_p_values_match_scipy() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let a: Vec<f64> = (0..7).map(|_| rng.random::<f64>() + 0.3).collect();
    let b: Vec<f64> = (0..7).map(|_| rng.random::<f64>()).collect();
    let csv = write_csv("perm", &[("a", &a), ("b", &b)]);
    let ind = peer("permutation", &csv, &["independent"]);
    let paired = peer("permutation", &csv, &["samples"]);
    for (alt, key) in [
        (Alternative::Greater, "greater"),
        (Alternative::Less, "less"),
        (Alternative::TwoSided, "two-sided"),
    ] {
        let ours = permutation_test(&a, &b, 10_000, 0, alt).unwrap();
        assert!(ours.exact, "C(14,7) = 3432 splits are enumerated");
        assert_rel(
            &[ours.p_value],
            &[ind[key].as_f64().unwrap()],
            1e-12,
            &format!("two-sample {key}"),
        );
        let ours = paired_permutation_test(&a, &b, 10_000, 0, alt).unwrap();
        assert!(ours.exact, "2^7 sign patterns are enumerated");
        assert_rel(
            &[ours.p_value],
            &[paired[key].as_f64().unwrap()],
            1e-12,
            &format!("paired {key}"),
        );
    }
}

/// The mixed model against a brute-force reference: scipy's adaptive quadrature of every group's
/// integral (relative error 1e-12), maximised by BFGS then Nelder–Mead, SEs from a central
/// finite-difference Hessian (step 1e-4). Tolerances: the log-likelihood at our estimate to
/// 1e-6 (both integrals are accurate far beyond that, so this checks AGHQ itself); estimates to
/// 2e-4 absolute and SEs to 1e-2 relative, which the reference's own optimiser and
/// finite-difference errors (about 1e-5 and 1e-3) leave room for; and our optimum may not be
/// worse than the reference's.
#[test]
fn poisson_glmm_matches_brute_force_quadrature() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (groups_n, per) = (30, 15);
    let n = groups_n * per;
    let normal = Normal::new(0.0, 1.0).unwrap();
    let x1: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    let group: Vec<usize> = (0..n).map(|i| i / per).collect();
    let u: Vec<f64> = (0..groups_n)
        .map(|_| 0.6 * normal.sample(&mut rng))
        .collect();
    let offset: Vec<f64> = (0..n).map(|_| rng.random_range(-0.3..0.7)).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            Poisson::new((0.2 + 0.5 * x1[i] + offset[i] + u[group[i]]).exp())
                .unwrap()
                .sample(&mut rng)
        })
        .collect();
    let ones = vec![1.0; n];
    let design =
        Design::from_columns(vec![("x0".into(), ones.clone()), ("x1".into(), x1.clone())]).unwrap();
    let fit = fit_glmm(
        &design,
        &y,
        Some(&offset),
        &group,
        Family::Poisson,
        &MixedOptions::default(),
    )
    .unwrap();
    assert!(!fit.is_fallback(), "{:?}", fit.method);
    let g: Vec<f64> = group.iter().map(|&v| v as f64).collect();
    let csv = write_csv(
        "glmm",
        &[
            ("x0", &ones),
            ("x1", &x1),
            ("y", &y),
            ("offset", &offset),
            ("group", &g),
        ],
    );
    let mut theta = fit.estimates();
    theta.push(fit.random_sd.ln());
    let arg = theta
        .iter()
        .map(|v| format!("{v:.17e}"))
        .collect::<Vec<_>>()
        .join(":");
    let peer_out = peer("glmm", &csv, &[&arg]);
    let reference = floats(&peer_out["theta"]);
    let at_ours = peer_out["loglik_at_rust"].as_f64().unwrap();
    assert!(
        (fit.log_likelihood - at_ours).abs() < 1e-6,
        "AGHQ log-lik {} vs quadrature {at_ours}",
        fit.log_likelihood
    );
    assert!(
        at_ours >= peer_out["loglik"].as_f64().unwrap() - 1e-7,
        "our optimum is worse than the reference's"
    );
    for (i, (a, b)) in theta.iter().zip(&reference).enumerate() {
        assert!((a - b).abs() < 2e-4, "θ[{i}] ours {a}, reference {b}");
    }
    let mut se: Vec<f64> = fit.coefficients.iter().map(|c| c.std_error).collect();
    se.push(fit.random_sd_std_error / fit.random_sd);
    assert_rel(
        &se,
        &floats(&peer_out["se"]),
        1e-2,
        "GLMM standard errors (β, log σ)",
    );
}

#[test]
fn unpenalised_multinomial_logit_matches_statsmodels() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let n = 300;
    let (x1, x2): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|_| (normal.sample(&mut rng), normal.sample(&mut rng)))
        .unzip();
    // Overlapping classes (not separable), so the MLE exists.
    let labels: Vec<usize> = (0..n)
        .map(|i| {
            let s = [0.0, 0.8 * x1[i] + 0.3, -0.6 * x2[i] + 0.5 * x1[i]];
            let e: Vec<f64> = s.iter().map(|v: &f64| v.exp()).collect();
            let r = rng.random::<f64>() * e.iter().sum::<f64>();
            if r < e[0] {
                0
            } else if r < e[0] + e[1] {
                1
            } else {
                2
            }
        })
        .collect();
    let x: Vec<f64> = (0..n).flat_map(|i| [x1[i], x2[i]]).collect();
    let options = LogisticOptions {
        l2: 0.0,
        ..LogisticOptions::default()
    };
    let model = MultinomialLogit::fit(&x, 2, &labels, 3, &options).unwrap();
    let l: Vec<f64> = labels.iter().map(|&v| v as f64).collect();
    let peer_out = peer(
        "mnlogit",
        &write_csv("mnlogit", &[("x1", &x1), ("x2", &x2), ("label", &l)]),
        &[],
    );
    let theirs = peer_out["prob"].as_array().unwrap();
    for i in 0..n {
        assert_rel(
            &model.probabilities(&x[2 * i..2 * i + 2]),
            &floats(&theirs[i]),
            1e-6,
            &format!("probabilities of row {i}"),
        );
    }
}
