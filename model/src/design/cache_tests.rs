//! The cached fast path against the f64 reference: same scores within a stated tolerance and
//! the same chosen candidate, on random and adversarial inputs.

use super::*;
use crate::design::tests::TableSource;
use crate::design::{Criterion, PosteriorConfig, score, score_reference};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance per candidate total, the lane path's (`batched.rs`): f32 features, `L`
/// and `μ`, f64 products of the pivots.
const REL: f64 = 2e-5;

/// `src` with each unit's trailing `dim − cols` columns set to that unit's tail in every frame
/// of every candidate (behaviour covariates, then a bias of 1); the tails, unit-major.
fn with_tails(src: &mut TableSource, cols: usize, scale: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let d = src.dim;
    let units = src.data[0].len();
    let tails: Vec<f32> = (0..units)
        .flat_map(|_| {
            let mut t: Vec<f32> = (cols..d).map(|_| rng.random_range(-scale..scale)).collect();
            if let Some(last) = t.last_mut() {
                *last = 1.0;
            }
            t
        })
        .collect();
    for clip in &mut src.data {
        for (u, x) in clip.iter_mut().enumerate() {
            for row in x.chunks_exact_mut(d) {
                row[cols..].copy_from_slice(&tails[u * (d - cols)..(u + 1) * (d - cols)]);
            }
        }
    }
    tails
}

/// Posteriors after `frames_seen` random frames per unit (anisotropic `Σ`, non-trivial `μ`).
fn learned(units: usize, d: usize, frames_seen: usize, prior_var: f64, seed: u64) -> Posterior {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cfg = PosteriorConfig::isotropic(d, prior_var);
    cfg.prior_mean[d - 1] = rng.random_range(-1.0..2.0);
    let mut post = Posterior::new(units, cfg).unwrap();
    for u in 0..units {
        for _ in 0..frames_seen {
            let mut x: Vec<f32> = (0..d).map(|_| rng.random_range(-0.8..0.8)).collect();
            x[d - 1] = 1.0;
            post.observe_unit(u, &x, rng.random_range(0..4) as f32, 0.05)
                .unwrap();
        }
    }
    post
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Asserts `got` within `REL` of `want` per candidate, and the same argmax wherever the
/// reference's best leads its runner-up by more than twice that; returns whether it did.
fn check(got: &[f64], want: &[f64], what: &str) -> bool {
    assert_eq!(got.len(), want.len());
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= REL * w.abs() + 1e-12,
            "{what}, candidate {c}: {g} vs {w}"
        );
    }
    let best = argmax(want);
    let runner_up = (0..want.len())
        .filter(|&i| i != best)
        .map(|i| want[i])
        .fold(f64::NEG_INFINITY, f64::max);
    let decided = want[best] - runner_up > 2.0 * REL * want[best].abs();
    if decided {
        assert_eq!(argmax(got), best, "{what}: chosen candidate differs");
    }
    decided
}

/// The cached path equals the f64 reference within `REL` and picks its best candidate, on 40
/// random cases (d 3–21, 0–4 uncached trailing columns, clips of 1–14 frames of varying
/// length, candidate subsets in any order), and agrees with the uncached lane path to 1e-6.
#[test]
fn cache_matches_the_reference_on_random_inputs() {
    let mut decided = 0;
    for case in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(500 + case);
        let d = rng.random_range(3..22);
        let cols = d - rng.random_range(0..4.min(d - 1) + 1);
        let units = rng.random_range(1..30);
        let n_cand = rng.random_range(1..45);
        let t_max = rng.random_range(1..15);
        let frames = move |c: usize| 1 + (c * 7) % t_max;
        let mut src = TableSource::random(units, n_cand, d, frames, 0.6, case);
        let tails = with_tails(&mut src, cols, 1.0, &mut rng);
        let post = learned(units, d, rng.random_range(0..40), 0.8, case + 7);
        let mut cands: Vec<usize> = (0..n_cand).filter(|c| c % 5 != 3).collect();
        cands.reverse();
        if cands.is_empty() {
            continue;
        }
        let dt = [0.02, 0.1, 0.5][case as usize % 3];
        let ig = &Criterion::InfoGain;
        let cache = FeatureCache::build(&src, units, &cands, cols, 1 + case as usize % 3).unwrap();
        let got = cache.info_gain(&post, &tails, dt, 2, None).unwrap();
        let want = score_reference(&post, &src, &cands, ig, dt, 1).unwrap();
        decided += usize::from(check(
            &got,
            &want,
            &format!("case {case} d={d} cols={cols}"),
        ));
        let lanes = score(&post, &src, &cands, ig, dt, 1).unwrap();
        for (g, l) in got.iter().zip(&lanes) {
            assert!(
                (g - l).abs() <= 1e-6 * l.abs() + 1e-12,
                "case {case}: {g} vs {l}"
            );
        }
    }
    assert!(decided >= 30, "only {decided} of 40 cases had a clear best");
}

/// Adversarial but valid inputs, each against the reference: near-singular posteriors (rank 2
/// plus a 1e-10 ridge), zero-variance features (a column constant in every frame and
/// candidate, a column of zeros, every candidate identical), huge features and tails (rates at
/// the clamp, pairs recomputed in f64), tiny and huge `dt`, prior variances of 1e-8 and 1e6.
#[test]
fn cache_matches_the_reference_on_adversarial_inputs() {
    let (units, n_cand, d, cols) = (9, 37, 8, 6);
    let cands: Vec<usize> = (0..n_cand).collect();
    let ig = &Criterion::InfoGain;
    let base = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut src = TableSource::random(units, n_cand, d, |c| 1 + c % 11, 0.5, seed);
        let tails = with_tails(&mut src, cols, 0.7, &mut rng);
        (src, tails)
    };
    let run = |what: &str, src: &TableSource, tails: &[f32], post: &Posterior, dt: f64| {
        let cache = FeatureCache::build(src, units, &cands, cols, 2).unwrap();
        let got = cache.info_gain(post, tails, dt, 2, None).unwrap();
        let want = score_reference(post, src, &cands, ig, dt, 1).unwrap();
        assert!(want.iter().all(|w| w.is_finite()), "{what}: {want:?}");
        check(&got, &want, what);
        (got, want)
    };
    // Near-singular: Σ = A Aᵀ + 1e-10 I with A of rank 2.
    let (src, tails) = base(1);
    let mut post = learned(units, d, 5, 1.0, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for u in 0..units {
        let a: Vec<f64> = (0..2 * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let cov = post.covs_mut_for_tests(u);
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] = (0..2).map(|r| a[i * 2 + r] * a[j * 2 + r]).sum::<f64>()
                    + if i == j { 1e-10 } else { 0.0 };
            }
        }
    }
    run("near-singular posteriors", &src, &tails, &post, 0.1);
    // Zero-variance features: column 0 the same constant everywhere, column 1 all zeros.
    let (mut src, tails) = base(4);
    for clip in &mut src.data {
        for x in clip.iter_mut() {
            for row in x.chunks_exact_mut(d) {
                row[0] = 0.25;
                row[1] = 0.0;
            }
        }
    }
    run(
        "constant and zero columns",
        &src,
        &tails,
        &learned(units, d, 20, 0.5, 5),
        0.1,
    );
    // Every candidate identical: every score ties, and the fast path ties too (same inputs,
    // same arithmetic per lane).
    let (mut src, tails) = base(6);
    let first = src.data[0].clone();
    for clip in src.data.iter_mut().skip(1) {
        clip.clone_from(&first);
    }
    let (got, _) = run(
        "identical candidates",
        &src,
        &tails,
        &learned(units, d, 8, 0.5, 7),
        0.1,
    );
    assert!(
        got.iter().all(|g| g.to_bits() == got[0].to_bits()),
        "{got:?}"
    );
    // Huge features and tails: log-rates far past ±30, peaks far above f32's safe range.
    let (mut src, mut tails) = base(8);
    for clip in src.data.iter_mut().step_by(3) {
        for x in clip.iter_mut() {
            x.iter_mut().for_each(|v| *v *= 1e4);
        }
    }
    tails.iter_mut().for_each(|v| *v *= 50.0);
    for u in 0..units {
        for row in src.data.iter_mut().flat_map(|c| c[u].chunks_exact_mut(d)) {
            row[cols..].copy_from_slice(&tails[u * (d - cols)..(u + 1) * (d - cols)]);
        }
    }
    run(
        "huge features",
        &src,
        &tails,
        &learned(units, d, 10, 0.5, 9),
        0.1,
    );
    // Tiny and huge dt, tiny and huge prior variances.
    let (src, tails) = base(10);
    for (dt, var) in [(1e-7, 0.8), (1e3, 0.8), (0.1, 1e-8), (0.1, 1e6)] {
        let post = learned(units, d, 3, var, 11);
        run(
            &format!("dt {dt}, prior variance {var}"),
            &src,
            &tails,
            &post,
            dt,
        );
    }
}

/// What the cache holds is what the source gives, and scores are bit-identical for any thread
/// count (build and scoring).
#[test]
fn cache_round_trips_and_is_thread_count_independent() {
    let (units, d, cols) = (21, 7, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut src = TableSource::random(units, 40, d, |c| 2 + c % 9, 0.5, 13);
    let tails = with_tails(&mut src, cols, 1.0, &mut rng);
    let cands: Vec<usize> = (3..40).rev().collect();
    let post = learned(units, d, 9, 0.7, 14);
    let one = FeatureCache::build(&src, units, &cands, cols, 1).unwrap();
    let mut row = Vec::new();
    for (k, &c) in cands.iter().enumerate() {
        for u in 0..units {
            one.fill(k, u, &tails[u * 2..u * 2 + 2], &mut row);
            assert_eq!(row, src.data[c][u], "candidate {c}, unit {u}");
        }
    }
    let base = one.info_gain(&post, &tails, 0.1, 1, None).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for threads in [2, 3, 64] {
        let cache = FeatureCache::build(&src, units, &cands, cols, threads).unwrap();
        let got = cache.info_gain(&post, &tails, 0.1, threads, None).unwrap();
        assert_eq!(bits(&got), bits(&base), "{threads} threads");
    }
    assert_eq!(one.candidates(), &cands[..]);
    let block_frames: usize = cands
        .chunks(16)
        .map(|b| b.iter().map(|c| 2 + c % 9).max().unwrap())
        .sum();
    assert_eq!(one.bytes(), units * block_frames * cols * 16 * 4);
}

/// Bad arguments are errors naming what is wrong; a passed deadline returns no partial result.
#[test]
fn cache_rejects_what_it_cannot_score() {
    let (units, d, cols) = (4, 5, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut src = TableSource::random(units, 6, d, |c| 1 + c, 0.5, 16);
    let tails = with_tails(&mut src, cols, 1.0, &mut rng);
    let cands: Vec<usize> = (0..6).collect();
    assert!(FeatureCache::build(&src, units, &cands, 0, 1).is_err());
    assert!(FeatureCache::build(&src, units, &cands, d + 1, 1).is_err());
    assert!(FeatureCache::build(&src, units, &cands, cols, 0).is_err());
    // A trailing column that varies over frames breaks the premise: an error, not a score.
    let mut varying = TableSource::random(units, 6, d, |c| 1 + c, 0.5, 16);
    with_tails(&mut varying, cols, 1.0, &mut rng);
    varying.data[4][2][d + cols] += 0.5;
    let err = FeatureCache::build(&varying, units, &cands, cols, 2).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
    let long = TableSource::random(1, 1, d, |_| 97, 0.5, 17);
    assert!(FeatureCache::build(&long, 1, &[0], d, 1).is_err());
    let cache = FeatureCache::build(&src, units, &cands, cols, 1).unwrap();
    let post = learned(units, d, 3, 0.5, 18);
    assert!(cache.info_gain(&post, &tails[1..], 0.1, 1, None).is_err());
    let mut nan = tails.clone();
    nan[3] = f32::NAN;
    assert!(matches!(
        cache.info_gain(&post, &nan, 0.1, 1, None),
        Err(DesignError::NotFinite { index: 3, .. })
    ));
    assert!(cache.info_gain(&post, &tails, 0.0, 1, None).is_err());
    assert!(cache.info_gain(&post, &tails, 0.1, 0, None).is_err());
    let other = learned(units + 1, d, 0, 0.5, 19);
    assert!(cache.info_gain(&other, &tails, 0.1, 1, None).is_err());
    let past = Some(Instant::now());
    assert!(matches!(
        cache.info_gain(&post, &tails, 0.1, 2, past),
        Err(DesignError::DeadlinePassed)
    ));
    // No units, no candidates: zeros and nothing.
    let empty = FeatureCache::build(&src, 0, &cands, cols, 2).unwrap();
    let none = learned(0, d, 0, 0.5, 20);
    assert_eq!(
        empty.info_gain(&none, &[], 0.1, 2, None).unwrap(),
        vec![0.0; 6]
    );
    let no_cands = FeatureCache::build(&src, units, &[], cols, 2).unwrap();
    assert!(
        no_cands
            .info_gain(&post, &tails, 0.1, 2, None)
            .unwrap()
            .is_empty()
    );
}
