//! Sequential optimal stimulus design for closed-loop experiments (Lewi, Butera & Paninski 2009,
//! "Sequential optimal design of neurophysiology experiments", Neural Computation 21:619–687).
//!
//! # Model
//! Each recorded unit `u` has a log-linear Poisson readout: in frame `t` of length `dt` seconds
//! its count (or deconvolved activity, quasi-Poisson: non-integer `y ≥ 0` is allowed) is
//! `y ~ Poisson(λ dt)` with `λ = exp(θ_u · x_u(t))` per second, where `x_u(t) ∈ R^d` are the
//! frozen core's features at the unit's readout position (the caller appends a constant 1 for
//! the bias, and may append behaviour covariates).
//!
//! # Posterior ([`posterior`])
//! The posterior over `θ_u` is kept Gaussian, `N(μ_u, Σ_u)` (Laplace approximation). One frame
//! is folded in by the exact rank-one update of Lewi 2009 §2: the new mode lies on the line
//! `μ + Σx·s`, so finding it reduces to the scalar equation
//! `ρ = x·μ + (xᵀΣx)(y − e^ρ dt)` for `ρ = x·μ_new`; the new covariance is the inverse Hessian
//! there, `Σ − (Σx)(Σx)ᵀ D/(1 + D xᵀΣx)` with `D = e^ρ dt` (Sherman–Morrison). Slow drift of
//! `θ` is modelled by a diffusion `Σ += q dt I`; a batch Newton MAP refit recovers from the
//! accumulated error of the online approximation.
//!
//! # Criteria ([`criterion`])
//! A candidate stimulus clip with features `Φ` (`T × d`, one row per frame) presented to a unit
//! with posterior `N(μ, Σ)` has expected Fisher information `Φᵀ D Φ`, `D = diag(λ_t dt)` at the
//! predicted rates `λ_t = exp(μ·x_t)`. The information gain of the clip is the entropy drop of
//! the Gaussian posterior, `½ log det(I_T + D^½ Φ Σ Φᵀ D^½)`, summed over units. Greedy batches
//! fold each pick's expected Fisher information into a scratch covariance before rescoring
//! (the gain is submodular, so greedy is within `1 − 1/e` of the best batch). What the session
//! uses next is the twin's predictions, so beside the gain about the weights there is the
//! expected drop of the predicted rates' variance on a reference set of stimuli
//! (`VarianceReduction`, and `PredictiveVariance` with a weight per reference clip).
//!
//! # Speed (`batched.rs`, `lanes.rs`)
//! `InfoGain` is scored at rig scale (1,000 units × 512 candidates, `d ≈ 19`, `T ≈ 10`) by a
//! lane kernel: 16 candidates side by side in one AVX-512 register, f32, `μ` and `L` computed
//! once per unit, units in fixed blocks over threads. Its error against the f64 reference is
//! bounded in its tests (2e-5 relative per total); a (unit, clip) pair too informative for f32
//! is recomputed in f64. [`score_reference`] keeps the f64 reference for every criterion; the
//! other criteria and clips longer than 96 frames always use it. Log-rates are clamped to
//! `±`[`MAX_LOG_RATE`] before `exp`. Between decisions only the posteriors change, so a
//! [`FeatureCache`] (`cache.rs`) holds every (unit, candidate)'s features in the kernel's
//! layout, built once per placement of the readouts; the behaviour covariates and the bias,
//! constant over a clip, enter per unit as rank-one offsets instead of per frame.
//!
//! # Use
//! ```text
//! let mut post = Posterior::new(units, PosteriorConfig::isotropic(dim, prior_var))?;
//! // every frame (features U×d, y U):
//! post.diffuse(dt);
//! post.observe_threads(&features, &y, dt, threads);
//! // every trial:
//! let batch = greedy_batch(&post, &source, &candidates, k, &Criterion::InfoGain, dt, threads)?;
//! // now and then, to re-anchor the online filter to the batch MAP:
//! post.refit_unit(u, &xs, &ys, dt)?;
//! ```
//! `InfoGain` scores are summed over fixed blocks of units, so they are bit-identical for any
//! thread count; the reference sums per thread chunk, bit-identical for a given thread count.
//! Costs per (unit, clip): `O(T d²)`; per frame and unit: `O(d²)`; memory:
//! `U d²` f64 for the covariances (and as much again for a greedy batch's scratch copy).

mod batched;
pub mod cache;
pub mod criterion;
mod lanes;
pub mod linalg;
pub mod posterior;

pub use cache::FeatureCache;
pub use criterion::{
    Criterion, FeatureSource, fold_expected_fisher, greedy_batch, greedy_batch_as, info_gain_unit,
    score, score_reference, score_within, score_within_as,
};
pub use posterior::{Posterior, PosteriorConfig};

/// Log-rates (natural log of events per second) are clamped to `±MAX_LOG_RATE` before `exp`.
pub const MAX_LOG_RATE: f64 = 30.0;

/// Rate `exp(clamp(log_rate, ±MAX_LOG_RATE))`, events per second.
#[inline]
pub(crate) fn rate(log_rate: f64) -> f64 {
    log_rate.clamp(-MAX_LOG_RATE, MAX_LOG_RATE).exp()
}

/// Everything that can go wrong in the design module, naming the argument at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesignError {
    /// A slice length or dimension does not match what the call implies.
    #[error("{what} is {got}, expected {expected}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A scalar argument or config field is outside its valid range.
    #[error("{what} = {got} is invalid, expected {expected}")]
    Value {
        what: &'static str,
        expected: &'static str,
        got: f64,
    },
    /// A unit index past the end of the posterior.
    #[error("unit {got} is out of range, the posterior has {units} unit(s)")]
    UnitOutOfRange { got: usize, units: usize },
    /// An input holds NaN or ±∞.
    #[error("{what} is not finite at index {index}")]
    NotFinite { what: &'static str, index: usize },
    /// An observation is negative (the Poisson readout needs `y ≥ 0`).
    #[error("{what} = {got} at index {index} is negative, expected y >= 0")]
    Negative {
        what: &'static str,
        index: usize,
        got: f64,
    },
    /// The batch MAP refit did not converge; the unit is left unchanged.
    #[error(
        "refit of unit {unit} did not converge in {iterations} Newton iteration(s) \
         (last step {last_step:e})"
    )]
    NotConverged {
        unit: usize,
        iterations: usize,
        last_step: f64,
    },
    /// A matrix that must be positive definite is not (numerically).
    #[error("{what} is not positive definite (pivot {pivot})")]
    NotPositiveDefinite { what: &'static str, pivot: usize },
    /// Scoring was stopped at its deadline; no partial result is returned.
    #[error("scoring passed its deadline")]
    DeadlinePassed,
}

/// `Err(Shape)` unless `got == expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), DesignError> {
    match got == expected {
        true => Ok(()),
        false => Err(DesignError::Shape {
            what,
            expected,
            got,
        }),
    }
}

/// `Err(Value)` unless `ok`.
pub(crate) fn check_value(
    ok: bool,
    what: &'static str,
    expected: &'static str,
    got: f64,
) -> Result<(), DesignError> {
    match ok {
        true => Ok(()),
        false => Err(DesignError::Value {
            what,
            expected,
            got,
        }),
    }
}

/// `Err(NotFinite)` naming the first entry of `x` that is NaN or infinite.
pub(crate) fn check_finite<T: Copy + Into<f64>>(
    what: &'static str,
    x: &[T],
) -> Result<(), DesignError> {
    match x.iter().position(|&v| !v.into().is_finite()) {
        Some(index) => Err(DesignError::NotFinite { what, index }),
        None => Ok(()),
    }
}

/// `Err(Value)` unless `dt_s` is a positive finite frame length.
pub(crate) fn check_dt(dt_s: f64) -> Result<(), DesignError> {
    check_value(
        dt_s > 0.0 && dt_s.is_finite(),
        "dt_s",
        "finite and > 0",
        dt_s,
    )
}

/// Splits `0..n` into `min(threads, n)` (at least one) contiguous ranges, takes each range's
/// state from `state` in order, and runs `f(range, state)` for each on a scoped thread (inline
/// when there is one range). Results come back in range order.
pub(crate) fn par_ranges<S: Send, R: Send>(
    n: usize,
    threads: usize,
    mut state: impl FnMut(&std::ops::Range<usize>) -> S,
    f: impl Fn(std::ops::Range<usize>, S) -> R + Sync,
) -> Vec<R> {
    let chunks = threads.clamp(1, n.max(1));
    let ranges = (0..chunks).map(|i| (i * n / chunks)..((i + 1) * n / chunks));
    let jobs: Vec<_> = ranges.map(|r| (state(&r), r)).collect();
    if chunks == 1 {
        return jobs.into_iter().map(|(s, r)| f(r, s)).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(s, r)| scope.spawn(move || f(r, s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::linalg::test_ref;
    use super::posterior::tests::{assert_close, simulate};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal, Poisson};

    /// Features held in memory: `data[candidate][unit]` is `frames[candidate] × dim`.
    pub(crate) struct TableSource {
        pub dim: usize,
        pub data: Vec<Vec<Vec<f32>>>,
    }

    impl TableSource {
        /// N(0, sd²) features with a constant-1 last coordinate; `frames(c)` frames per clip.
        pub fn random(
            units: usize,
            candidates: usize,
            dim: usize,
            frames: impl Fn(usize) -> usize,
            sd: f64,
            seed: u64,
        ) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let normal = Normal::new(0.0, sd).unwrap();
            let data = (0..candidates)
                .map(|c| {
                    (0..units)
                        .map(|_| {
                            (0..frames(c) * dim)
                                .map(|k| match k % dim == dim - 1 {
                                    true => 1.0,
                                    false => normal.sample(&mut rng) as f32,
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect();
            TableSource { dim, data }
        }
    }

    impl FeatureSource for TableSource {
        fn dim(&self) -> usize {
            self.dim
        }
        fn frames(&self, candidate: usize) -> usize {
            self.data[candidate][0].len() / self.dim
        }
        fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
            out.copy_from_slice(&self.data[candidate][unit]);
        }
    }

    /// Units with non-trivial posteriors learned from `src`'s clip 0.
    fn learned(src: &TableSource, units: usize) -> Posterior {
        let d = src.dim;
        let mut post = Posterior::new(units, PosteriorConfig::isotropic(d, 0.8)).unwrap();
        for u in 0..units {
            for (i, x) in src.data[0][u].chunks_exact(d).enumerate() {
                post.observe_unit(u, x, ((i + u) % 3) as f32, 0.1).unwrap();
            }
        }
        post
    }

    /// ‖μ − θ‖ after `steps` trials of a 4-frame clip chosen by infomax or uniformly at random
    /// from a pool of 50 clips of random features with random contrast `U(0.1, 1.5)`.
    fn learning_error(seed: u64, rep: u64, infomax: bool, steps: usize) -> f64 {
        let (d, n_cand, frames, dt) = (8, 50, 4, 0.1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 0.5).unwrap();
        let mut theta: Vec<f64> = (0..d - 1).map(|_| normal.sample(&mut rng)).collect();
        theta.push(10f64.ln());
        let mut src = TableSource::random(1, n_cand, d, |_| frames, 1.0, seed + 1000);
        for clip in &mut src.data {
            let contrast: f32 = rng.random_range(0.1..1.5);
            for (k, v) in clip[0].iter_mut().enumerate() {
                if k % d != d - 1 {
                    *v *= contrast;
                }
            }
        }
        let mut post = Posterior::new(1, PosteriorConfig::isotropic(d, 1.0)).unwrap();
        let mut trial_rng =
            ChaCha8Rng::seed_from_u64((seed << 32) + (rep << 1) + u64::from(infomax));
        let all: Vec<usize> = (0..n_cand).collect();
        for _ in 0..steps {
            let c = if infomax {
                greedy_batch(&post, &src, &all, 1, &Criterion::InfoGain, dt, 1).unwrap()[0].0
            } else {
                trial_rng.random_range(0..n_cand)
            };
            for x in src.data[c][0].chunks_exact(d) {
                let rho: f64 = x.iter().zip(&theta).map(|(a, b)| f64::from(*a) * b).sum();
                let y = Poisson::new(rho.exp() * dt).unwrap().sample(&mut trial_rng) as f32;
                post.observe_unit(0, x, y, dt).unwrap();
            }
        }
        let err2: f64 = post
            .mean(0)
            .iter()
            .zip(&theta)
            .map(|(m, t)| (m - t) * (m - t))
            .sum();
        err2.sqrt()
    }

    /// Mean over 8 noise realisations of [`learning_error`] for (infomax, random).
    fn mean_errors(seed: u64) -> (f64, f64) {
        let reps = 8;
        let mean = |infomax| {
            (0..reps)
                .map(|r| learning_error(seed, r, infomax, 200))
                .sum::<f64>()
                / reps as f64
        };
        (mean(true), mean(false))
    }

    /// Test 6: information-maximising selection learns faster than random selection (the
    /// classic result of Lewi et al. 2009) in at least 4 of 5 ground-truth simulations.
    #[test]
    fn infomax_learns_faster_than_random() {
        let wins = (0..5)
            .filter(|&seed| {
                let (info, random) = mean_errors(seed);
                info < random
            })
            .count();
        assert!(wins >= 4, "infomax won only {wins} of 5 seeds");
    }

    /// The win rate over 40 seeds (for the record): `cargo test -- --ignored --nocapture`.
    #[test]
    #[ignore = "a statistic for the record (40 seeds), not a check; the 5-seed test asserts"]
    fn infomax_win_rate_over_many_seeds() {
        let (mut wins, mut ei, mut er) = (0, 0.0, 0.0);
        for seed in 0..40 {
            let (info, random) = mean_errors(seed);
            wins += usize::from(info < random);
            ei += info / 40.0;
            er += random / 40.0;
        }
        println!("infomax won {wins}/40 seeds; mean error {ei:.4} (infomax) vs {er:.4} (random)");
    }

    /// Test 5: greedy picks have diminishing returns: the second pick gains no more than it
    /// would alone, gains never increase, and the same clip twice gains strictly less the second
    /// time (and the two gains add up to the joint gain of the doubled clip: the entropy chain
    /// rule, which checks the fold independently).
    #[test]
    fn greedy_has_diminishing_returns() {
        let d = 6;
        let frames = |c: usize| [12, 3, 5, 8, 2, 6, 7, 4, 9, 3][c];
        let src = TableSource::random(4, 10, d, frames, 0.7, 21);
        let post = learned(&src, 4);
        let cands: Vec<usize> = (1..10).collect();
        let alone = score(&post, &src, &cands, &Criterion::InfoGain, 0.1, 1).unwrap();
        let picks = greedy_batch(&post, &src, &cands, 4, &Criterion::InfoGain, 0.1, 2).unwrap();
        assert_eq!(picks.len(), 4);
        let best = (0..alone.len())
            .max_by(|&a, &b| alone[a].total_cmp(&alone[b]))
            .unwrap();
        assert_eq!(picks[0].0, cands[best]);
        assert!((picks[0].1 - alone[best]).abs() <= 1e-12 * alone[best]);
        for (c, gain) in &picks[1..] {
            let pos = cands.iter().position(|x| x == c).unwrap();
            assert!(
                *gain <= alone[pos] + 1e-12,
                "pick {c}: {gain} > alone {}",
                alone[pos]
            );
        }
        assert!(
            picks.windows(2).all(|w| w[1].1 <= w[0].1 + 1e-12),
            "{picks:?}"
        );
        let c = cands[best];
        let twice = greedy_batch(&post, &src, &[c, c], 2, &Criterion::InfoGain, 0.1, 1).unwrap();
        assert_eq!((twice[0].0, twice[1].0), (c, c));
        assert!(twice[1].1 < twice[0].1, "{twice:?}");
        for u in 0..4 {
            let (mean, cov, phi) = (post.mean(u), post.cov(u), &src.data[c][u]);
            let t = frames(c);
            let first = info_gain_unit(mean, cov, phi, t, 0.1);
            let folded = fold_expected_fisher(mean, cov, phi, t, 0.1).unwrap();
            let second = info_gain_unit(mean, &folded, phi, t, 0.1);
            let joint = info_gain_unit(mean, cov, &[&phi[..], &phi[..]].concat(), 2 * t, 0.1);
            assert!(second < first);
            assert!(
                (first + second - joint).abs() < 1e-9 * joint,
                "{first} + {second} vs {joint}"
            );
        }
    }

    /// 37 units with 5 features, learned on 12 clips; candidates 1..12.
    fn scoring_case() -> (TableSource, Posterior, Vec<usize>) {
        let src = TableSource::random(37, 12, 5, |c| c % 7 + 1, 0.6, 8);
        let post = learned(&src, 37);
        (src, post, (1..12).collect())
    }

    /// A deadline already passed stops scoring with no partial result, on any thread count; a
    /// deadline not reached changes nothing.
    #[test]
    fn scoring_stops_at_its_deadline_and_is_unchanged_before_it() {
        let (src, post, cands) = scoring_case();
        let ig = &Criterion::InfoGain;
        let now = std::time::Instant::now();
        for threads in [1, 3] {
            let stopped = score_within(&post, &src, &cands, ig, 0.1, threads, Some(now));
            assert!(
                matches!(stopped, Err(DesignError::DeadlinePassed)),
                "{stopped:?}"
            );
            let later = now + std::time::Duration::from_secs(3600);
            let full = score_within(&post, &src, &cands, ig, 0.1, threads, Some(later)).unwrap();
            let plain = score(&post, &src, &cands, ig, 0.1, threads).unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&full), bits(&plain));
        }
    }

    /// Test 8: scores are bit-identical for a given thread count and agree across counts.
    #[test]
    fn scores_do_not_depend_on_thread_count() {
        let (src, post, cands) = scoring_case();
        for crit in [
            Criterion::InfoGain,
            Criterion::VarianceReduction {
                reference: vec![0, 3],
            },
            Criterion::ResponseMax,
        ] {
            let base = score(&post, &src, &cands, &crit, 0.1, 1).unwrap();
            for threads in [1, 2, 3, 4, 8, 64] {
                let a = score(&post, &src, &cands, &crit, 0.1, threads).unwrap();
                let b = score(&post, &src, &cands, &crit, 0.1, threads).unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "{crit:?}, {threads} threads");
                for (x, y) in a.iter().zip(&base) {
                    assert!(
                        (x - y).abs() <= 1e-9 * y.abs(),
                        "{crit:?}, {threads}: {x} vs {y}"
                    );
                }
            }
            let g1 = greedy_batch(&post, &src, &cands, 3, &crit, 0.1, 1).unwrap();
            let g3 = greedy_batch(&post, &src, &cands, 3, &crit, 0.1, 3).unwrap();
            assert_eq!(
                g1.iter().map(|p| p.0).collect::<Vec<_>>(),
                g3.iter().map(|p| p.0).collect::<Vec<_>>()
            );
        }
    }

    /// `ResponseMax` sums each unit's expected count over the clip divided by that unit's maximum
    /// over the scored candidates (computed here directly).
    #[test]
    fn response_max_normalises_each_unit() {
        let d = 4;
        let src = TableSource::random(5, 7, d, |c| c + 1, 0.8, 4);
        let post = learned(&src, 5);
        let cands: Vec<usize> = (1..7).collect();
        let got = score(&post, &src, &cands, &Criterion::ResponseMax, 0.1, 2).unwrap();
        let mut want = vec![0.0; cands.len()];
        for u in 0..5 {
            let counts: Vec<f64> = cands
                .iter()
                .map(|&c| {
                    let x = &src.data[c][u];
                    (0..x.len() / d)
                        .map(|t| {
                            (0..d)
                                .map(|k| f64::from(x[t * d + k]) * post.mean(u)[k])
                                .sum::<f64>()
                                .exp()
                                * 0.1
                        })
                        .sum()
                })
                .collect();
            let max = counts.iter().copied().fold(0.0, f64::max);
            want.iter_mut()
                .zip(&counts)
                .for_each(|(w, c)| *w += c / max);
        }
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12 * w, "{g} vs {w}");
        }
        let top = greedy_batch(&post, &src, &cands, 3, &Criterion::ResponseMax, 0.1, 1).unwrap();
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
        assert_eq!(
            top.iter().map(|p| p.0).collect::<Vec<_>>(),
            order[..3].iter().map(|&i| cands[i]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn scoring_rejects_bad_arguments_and_handles_edge_cases() {
        let src = TableSource::random(2, 3, 4, |c| c, 0.5, 2);
        let post = learned(&TableSource::random(2, 1, 4, |_| 3, 0.5, 2), 2);
        let ig = &Criterion::InfoGain;
        let wrong = Posterior::new(2, PosteriorConfig::isotropic(5, 1.0)).unwrap();
        assert!(matches!(
            score(&wrong, &src, &[1], ig, 0.1, 1),
            Err(DesignError::Shape {
                expected: 5,
                got: 4,
                ..
            })
        ));
        assert!(score(&post, &src, &[1], ig, 0.0, 1).is_err());
        assert!(score(&post, &src, &[1], ig, f64::NAN, 1).is_err());
        assert!(score(&post, &src, &[1], ig, 0.1, 0).is_err());
        assert!(greedy_batch(&wrong, &src, &[1], 1, ig, 0.1, 1).is_err());
        assert!(greedy_batch(&post, &src, &[1], 1, ig, 0.1, 0).is_err());
        assert_eq!(
            score(&post, &src, &[], ig, 0.1, 3).unwrap(),
            Vec::<f64>::new()
        );
        assert_eq!(score(&post, &src, &[0, 1], ig, 0.1, 3).unwrap()[0], 0.0);
        assert!(
            greedy_batch(&post, &src, &[1, 2], 0, ig, 0.1, 1)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            greedy_batch(&post, &src, &[1, 2], 5, ig, 0.1, 1)
                .unwrap()
                .len(),
            2
        );
        let empty = Posterior::new(0, PosteriorConfig::isotropic(4, 1.0)).unwrap();
        assert_eq!(
            score(&empty, &src, &[1, 2], ig, 0.1, 4).unwrap(),
            vec![0.0, 0.0]
        );
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
        median(
            (0..reps)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    }

    /// Timings (medians): `cargo test --release -- --ignored --nocapture bench`.
    #[test]
    #[ignore = "timings, not a check: speed is measured in benchmarks, never asserted"]
    fn bench_scoring_and_observe() {
        let (units, d) = (1000, 18);
        let src = TableSource::random(units, 101, d, |_| 8, 0.3, 1);
        let post = learned(&src, units);
        let cands: Vec<usize> = (1..101).collect();
        let vr = Criterion::VarianceReduction {
            reference: (1..6).collect(),
        };
        for (name, crit) in [
            ("InfoGain", &Criterion::InfoGain),
            ("VarReduction(5 ref)", &vr),
            ("ResponseMax", &Criterion::ResponseMax),
        ] {
            for threads in [1, 2] {
                let ms = time_ms(5, || {
                    score(&post, &src, &cands, crit, 0.1, threads).unwrap();
                });
                let what = "100 cand x 1000 units x T=8 x d=18";
                println!("score {name}, {what}, {threads} thread(s): {ms:.1} ms");
            }
        }
        let ms = time_ms(3, || {
            greedy_batch(&post, &src, &cands, 4, &Criterion::InfoGain, 0.1, 2).unwrap();
        });
        println!("greedy_batch k=4 InfoGain, same size, 2 threads: {ms:.1} ms");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let feats: Vec<f32> = (0..units * d)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect();
        let ys: Vec<f32> = (0..units).map(|_| rng.random_range(0..3) as f32).collect();
        let mut p = post.clone();
        let ms = time_ms(200, || {
            p.observe(&feats, &ys, 1.0 / 30.0);
        });
        println!("observe 1000 units x d=18: {:.1} us", ms * 1e3);
        // The large configuration, measured on a slice and projected.
        let (units, d, frames, n_cand) = (16, 128, 60, 16);
        let big = TableSource::random(units, n_cand + 1, d, |_| frames, 0.05, 2);
        let post = learned(&big, units);
        let cands: Vec<usize> = (1..=n_cand).collect();
        let ms = time_ms(3, || {
            score(&post, &big, &cands, &Criterion::InfoGain, 0.1, 1).unwrap();
        });
        let per_pair_us = ms * 1e3 / (units * n_cand) as f64;
        println!(
            "score InfoGain d=128 T=60: {per_pair_us:.0} us per (unit, candidate), 1 thread; \
             10,000 units x 100 candidates ≈ {:.0} s on one thread",
            per_pair_us * 1e6 * 1e-6
        );
        let (mean, cov, phi) = (post.mean(0), post.cov(0), &big.data[1][0]);
        let fold_ms = time_ms(20, || {
            fold_expected_fisher(mean, cov, phi, frames, 0.1).unwrap();
        });
        println!(
            "fold_expected_fisher d=128 T=60: {:.0} us per unit per pick",
            fold_ms * 1e3
        );
        let big_units = 200;
        let feats: Vec<f32> = (0..big_units * d)
            .map(|_| rng.random_range(-0.1..0.1))
            .collect();
        let ys = vec![1.0f32; big_units];
        let mut p = Posterior::new(big_units, PosteriorConfig::isotropic(d, 0.1)).unwrap();
        let ms = time_ms(20, || {
            p.observe(&feats, &ys, 1.0 / 30.0);
        });
        println!(
            "observe d=128: {:.1} us per unit",
            ms * 1e3 / big_units as f64
        );
    }

    /// Test 2: many sequential updates ≈ the batch MAP, and the batch MAP is a stationary
    /// point of the log posterior (gradient computed here directly) with Σ = inverse Hessian.
    #[test]
    fn sequential_tracks_refit_and_refit_is_stationary() {
        let theta = [0.4, -0.3, 0.2, 0.1, 3f64.ln()];
        let (d, dt, n) = (theta.len(), 0.05, 3000);
        let (xs, ys) = simulate(&theta, n, 0.7, dt, 7);
        let mut post = Posterior::new(2, PosteriorConfig::isotropic(d, 1.0)).unwrap();
        for i in 0..n {
            post.observe_unit(0, &xs[i * d..(i + 1) * d], ys[i], dt)
                .unwrap();
        }
        let iters = post.refit_unit(1, &xs, &ys, dt).unwrap();
        assert!(iters < 30, "{iters} Newton iterations");
        assert_eq!(post.observations(1), n as u64);
        let (a, b) = (post.mean(0), post.mean(1));
        let ma = a.iter().sum::<f64>() / d as f64;
        let mb = b.iter().sum::<f64>() / d as f64;
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
        assert!(cov / (va * vb).sqrt() > 0.99, "{a:?} vs {b:?}");
        for i in 0..d {
            let sd = post.cov(1)[i * d + i].sqrt();
            assert!(
                (a[i] - b[i]).abs() < sd,
                "coordinate {i}: {} vs {}",
                a[i],
                b[i]
            );
        }
        // Gradient and negative Hessian of the exact log posterior at the refit.
        let mut g: Vec<f64> = b.iter().map(|t| -t).collect();
        let mut h = vec![0.0; d * d];
        for i in 0..d {
            h[i * d + i] = 1.0;
        }
        for (x, &y) in xs.chunks_exact(d).zip(&ys) {
            let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let lam = x.iter().zip(b).map(|(p, q)| p * q).sum::<f64>().exp() * dt;
            for i in 0..d {
                g[i] += (f64::from(y) - lam) * x[i];
                for j in 0..d {
                    h[i * d + j] += lam * x[i] * x[j];
                }
            }
        }
        assert!(g.iter().all(|v| v.abs() < 1e-6), "gradient {g:?}");
        assert_close(post.cov(1), &test_ref::inverse(&h, d), 1e-8, "refit cov");
        // A warm start from the sequential estimate lands on the same MAP.
        post.refit_unit(0, &xs, &ys, dt).unwrap();
        assert_close(post.mean(0), post.mean(1), 1e-9, "warm refit");
    }

    /// Test 3: data simulated from the model with known θ → the posterior mean is within
    /// 4 posterior SDs of θ in every coordinate, and the SDs shrink like 1/√n.
    #[test]
    fn posterior_is_consistent_and_contracts() {
        let theta = [0.5, -0.4, 0.3, 0.0, -0.2, 5f64.ln()];
        let (d, dt, n) = (theta.len(), 1.0 / 30.0, 5000);
        let (xs, ys) = simulate(&theta, n, 0.6, dt, 11);
        let mut post = Posterior::new(1, PosteriorConfig::isotropic(d, 1.0)).unwrap();
        let mut sd_quarter = vec![];
        for i in 0..n {
            post.observe_unit(0, &xs[i * d..(i + 1) * d], ys[i], dt)
                .unwrap();
            if i + 1 == n / 4 {
                sd_quarter = (0..d).map(|k| post.cov(0)[k * d + k].sqrt()).collect();
            }
        }
        for k in 0..d {
            let sd = post.cov(0)[k * d + k].sqrt();
            let z = (post.mean(0)[k] - theta[k]) / sd;
            assert!(z.abs() < 4.0, "coordinate {k}: z = {z}");
            let ratio = sd_quarter[k] / sd;
            assert!(
                (1.6..2.5).contains(&ratio),
                "coordinate {k}: SD ratio {ratio}, expected ≈ 2"
            );
        }
    }

    #[test]
    fn threaded_observe_is_bit_identical() {
        let (units, d) = (23, 4);
        let theta = [0.3, -0.2, 0.1, 1.0];
        let (xs, ys) = simulate(&theta, units * 40, 0.5, 0.1, 3);
        let mut one = Posterior::new(units, PosteriorConfig::isotropic(d, 1.0)).unwrap();
        let mut many = one.clone();
        for f in 0..40 {
            let (x, y) = (&xs[f * units * d..][..units * d], &ys[f * units..][..units]);
            let mut y = y.to_vec();
            y[f % units] = f32::NAN;
            assert_eq!(one.observe(x, &y, 0.1), 1);
            assert_eq!(many.observe_threads(x, &y, 0.1, 1 + f % 5), 1);
        }
        for u in 0..units {
            assert_eq!(one.mean(u), many.mean(u));
            assert_eq!(one.cov(u), many.cov(u));
            assert_eq!(one.observations(u), many.observations(u));
        }
        assert_eq!(one.skipped_total(), 40);
        assert_eq!(many.skipped_total(), 40);
        assert_eq!(
            many.observe_threads(&xs[..units * d], &ys[..units], 0.1, 0),
            0
        );
    }
}
