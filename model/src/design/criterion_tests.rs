//! Tests of the f64 reference criteria (`criterion.rs`) against independent direct computations.

use super::*;
use crate::design::PosteriorConfig;
use crate::design::linalg::test_ref;
use crate::design::tests::TableSource;

/// A one-unit posterior with a non-trivial Σ, from a few frames of `src`'s first clip.
fn learned_unit(src: &TableSource) -> Posterior {
    let d = src.dim;
    let mut post = Posterior::new(1, PosteriorConfig::isotropic(d, 0.8)).unwrap();
    for (i, x) in src.data[0][0].chunks_exact(d).enumerate() {
        post.observe_unit(0, x, (i % 4) as f32, 0.1).unwrap();
    }
    post
}

fn f64s(phi: &[f32]) -> Vec<f64> {
    phi.iter().map(|&v| f64::from(v)).collect()
}

/// `(D^½ Φ Σ Φᵀ D^½, D)` computed directly (`T × T`).
fn direct_frames_matrix(mean: &[f64], cov: &[f64], phi: &[f32], dt: f64) -> (Vec<f64>, Vec<f64>) {
    let d = mean.len();
    let t = phi.len() / d;
    let p = f64s(phi);
    let dd: Vec<f64> = p
        .chunks_exact(d)
        .map(|x| x.iter().zip(mean).map(|(a, b)| a * b).sum::<f64>().exp() * dt)
        .collect();
    let pt = test_ref::transpose(&p, t, d);
    let mut m = test_ref::matmul(&test_ref::matmul(&p, cov, t, d, d), &pt, t, d, t);
    for i in 0..t {
        for j in 0..t {
            m[i * t + j] *= (dd[i] * dd[j]).sqrt();
        }
    }
    (m, dd)
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// Test 4: the information gain equals ½ ln det(I_T + D^½ΦΣΦᵀD^½) by LU in the test, for
/// T < d and T > d, and the T × T and d × d forms agree.
#[test]
fn info_gain_matches_lu_determinant_in_both_forms() {
    for (d, t) in [(7, 3), (5, 12), (6, 6), (4, 1)] {
        let src = TableSource::random(1, 2, d, |c| if c == 0 { 2 * d } else { t }, 0.7, 3);
        let post = learned_unit(&src);
        let (mean, cov) = (post.mean(0), post.cov(0));
        let phi = &src.data[1][0];
        let (mut m, _) = direct_frames_matrix(mean, cov, phi, 0.1);
        for i in 0..t {
            m[i * t + i] += 1.0;
        }
        let want = 0.5 * test_ref::ln_abs_det(&m, t);
        let got = info_gain_unit(mean, cov, phi, t, 0.1);
        assert!(rel_close(got, want, 1e-10), "d={d} T={t}: {got} vs {want}");
        let frames = gain_with_form(mean, cov, phi, t, 0.1, Form::Frames);
        let features = gain_with_form(mean, cov, phi, t, 0.1, Form::Features);
        assert!(rel_close(frames, features, 1e-10), "{frames} vs {features}");
        assert!(got > 0.0);
    }
    assert_eq!(
        info_gain_unit(
            &[0.0; 3],
            &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            &[],
            0,
            0.1
        ),
        0.0
    );
    assert!(info_gain_unit(&[0.0; 2], &[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0], 1, 0.1).is_nan());
    assert_eq!(info_gain_unit(&[], &[], &[], 3, 0.1), 0.0);
    assert_eq!(fold_expected_fisher(&[], &[], &[], 3, 0.1), Ok(vec![]));
}

/// The folded covariance equals the explicit Woodbury formula, and variance reduction on a
/// reference set equals Σ_{r,t} λ_rt² x_rtᵀ(Σ − Σ')x_rt computed directly, in both forms.
#[test]
fn fold_is_woodbury_and_variance_reduction_is_direct() {
    let dt = 0.1;
    for (d, t) in [(6, 2), (4, 9)] {
        let frames = |c: usize| [2 * d, t, t + 2, 3][c];
        let src = TableSource::random(1, 4, d, frames, 0.6, 5);
        let post = learned_unit(&src);
        let (mean, cov) = (post.mean(0), post.cov(0));
        let phi = &src.data[1][0];
        // Woodbury: Σ' = Σ − ΣΦᵀ(D⁻¹ + ΦΣΦᵀ)⁻¹ΦΣ.
        let p = f64s(phi);
        let (mut inner, dd) = direct_frames_matrix(mean, cov, phi, dt);
        for i in 0..t {
            for j in 0..t {
                inner[i * t + j] /= (dd[i] * dd[j]).sqrt();
            }
            inner[i * t + i] += 1.0 / dd[i];
        }
        let phi_s = test_ref::matmul(&p, cov, t, d, d);
        let corr = test_ref::matmul(
            &test_ref::transpose(&phi_s, t, d),
            &test_ref::matmul(&test_ref::inverse(&inner, t), &phi_s, t, t, d),
            d,
            t,
            d,
        );
        let want: Vec<f64> = cov.iter().zip(&corr).map(|(s, c)| s - c).collect();
        let got = fold_expected_fisher(mean, cov, phi, t, dt).unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-10 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // Variance reduction on the reference clips {2, 3}.
        let drop: Vec<f64> = cov.iter().zip(&got).map(|(s, n)| s - n).collect();
        let mut want_vr = 0.0;
        for r in [2, 3] {
            for x in src.data[r][0].chunks_exact(d) {
                let x = f64s(x);
                let lam = x.iter().zip(mean).map(|(a, b)| a * b).sum::<f64>().exp();
                let q: f64 = (0..d * d).map(|k| x[k / d] * drop[k] * x[k % d]).sum();
                want_vr += lam * lam * q;
            }
        }
        let crit = Criterion::VarianceReduction {
            reference: vec![2, 3],
        };
        let got_vr = score(&post, &src, &[1], &crit, dt, 1).unwrap()[0];
        assert!(rel_close(got_vr, want_vr, 1e-9), "{got_vr} vs {want_vr}");
        let job = Job::new(&post, &src, &[1], &crit, dt);
        let mut work = Work::new(d);
        job.unit_values(0, cov, &mut work, &mut [0.0]);
        let b = &mut work.b;
        whiten(mean, &work.l, phi, d, Weight::Fisher(dt), b, &mut work.psi);
        for form in [Form::Frames, Form::Features] {
            let v = variance_drop(&work.psi, t, d, &work.wt, form, b);
            assert!(rel_close(v, want_vr, 1e-9), "{form:?}: {v} vs {want_vr}");
        }
    }
}

/// Item 3 of issue 19: the predictive-variance criterion against a brute-force posterior
/// update. `Σ' = (Σ⁻¹ + Σ_t D_t x_t x_tᵀ)⁻¹` by two LU inversions (no Woodbury, no Cholesky),
/// then `Σ_r w_r Σ_t λ_rt² x_rtᵀ(Σ − Σ')x_rt` summed directly over two units; unit weights give
/// `VarianceReduction`; and the Gaussian-linear closed form for one frame under an isotropic
/// prior, `w λ_z² D (v x·z)² / (1 + D v ‖x‖²)`.
#[test]
fn predictive_variance_is_a_brute_force_posterior_update() {
    let dt = 0.1;
    for (d, t) in [(6, 3), (4, 11)] {
        let frames = |c: usize| [2 * d, t, 5, 2, 7][c];
        let src = TableSource::random(2, 5, d, frames, 0.5, 17);
        let mut post = Posterior::new(2, PosteriorConfig::isotropic(d, 0.8)).unwrap();
        for u in 0..2 {
            for (i, x) in src.data[0][u].chunks_exact(d).enumerate() {
                post.observe_unit(u, x, ((i + u) % 3) as f32, dt).unwrap();
            }
        }
        let (reference, weights) = (vec![2, 3, 4], vec![0.5, 2.0, 0.0]);
        let mut want = 0.0;
        for u in 0..2 {
            let (mean, cov) = (post.mean(u), post.cov(u));
            let rate = |x: &[f64]| x.iter().zip(mean).map(|(a, b)| a * b).sum::<f64>().exp();
            let mut info = test_ref::inverse(cov, d);
            for x in src.data[1][u].chunks_exact(d) {
                let x = f64s(x);
                let w = rate(&x) * dt;
                (0..d * d).for_each(|k| info[k] += w * x[k / d] * x[k % d]);
            }
            let after = test_ref::inverse(&info, d);
            for (&r, &w) in reference.iter().zip(&weights) {
                for x in src.data[r][u].chunks_exact(d) {
                    let x = f64s(x);
                    let q: f64 = (0..d * d)
                        .map(|k| x[k / d] * (cov[k] - after[k]) * x[k % d])
                        .sum();
                    want += w * rate(&x).powi(2) * q;
                }
            }
        }
        let crit = Criterion::PredictiveVariance {
            reference: reference.clone(),
            weights: weights.clone(),
        };
        let got = score(&post, &src, &[1], &crit, dt, 2).unwrap()[0];
        assert!(rel_close(got, want, 1e-8), "d={d} T={t}: {got} vs {want}");
        let ones = Criterion::PredictiveVariance {
            reference: reference.clone(),
            weights: vec![1.0; 3],
        };
        let plain = Criterion::VarianceReduction { reference };
        let a = score(&post, &src, &[1, 2], &ones, dt, 1).unwrap();
        let b = score(&post, &src, &[1, 2], &plain, dt, 1).unwrap();
        assert_eq!(a, b);
    }
    // One frame x, one reference frame z, prior v·I, mean 0 except the bias: λ = e^{μ·x}.
    let (v, x, z) = (0.7, [0.3f32, -0.5, 1.0], [0.6f32, 0.2, 1.0]);
    let mut cfg = PosteriorConfig::isotropic(3, v);
    cfg.prior_mean[2] = 0.4;
    let post = Posterior::new(1, cfg).unwrap();
    let src = TableSource {
        dim: 3,
        data: vec![vec![x.to_vec()], vec![z.to_vec()]],
    };
    let crit = Criterion::PredictiveVariance {
        reference: vec![1],
        weights: vec![1.5],
    };
    let got = score(&post, &src, &[0], &crit, dt, 1).unwrap()[0];
    let (x, z) = (f64s(&x), f64s(&z));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let (lam_x, lam_z) = ((0.4f64).exp(), (0.4f64).exp());
    let big_d = lam_x * dt;
    let want =
        1.5 * lam_z * lam_z * big_d * (v * dot(&x, &z)).powi(2) / (1.0 + big_d * v * dot(&x, &x));
    assert!(rel_close(got, want, 1e-12), "{got} vs {want}");
}

/// Weights are checked: one per reference clip, finite, non-negative.
#[test]
fn predictive_variance_rejects_bad_weights() {
    let src = TableSource::random(1, 3, 4, |_| 2, 0.5, 1);
    let post = learned_unit(&src);
    let with = |weights: Vec<f64>| Criterion::PredictiveVariance {
        reference: vec![1, 2],
        weights,
    };
    let run = |c: &Criterion| score(&post, &src, &[0], c, 0.1, 1);
    assert!(matches!(
        run(&with(vec![1.0])),
        Err(DesignError::Shape {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        run(&with(vec![1.0, f64::NAN])),
        Err(DesignError::NotFinite { index: 1, .. })
    ));
    assert!(matches!(
        run(&with(vec![1.0, -0.5])),
        Err(DesignError::Value { .. })
    ));
    assert!(greedy_batch(&post, &src, &[0], 1, &with(vec![-1.0, 0.0]), 0.1, 1).is_err());
    assert!(run(&with(vec![0.0, 3.0])).unwrap()[0] > 0.0);
}
