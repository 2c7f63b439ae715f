//! Decisions scored from the cached candidate features equal those scored uncached: the same
//! stimuli in the same modes, scores within 1e-6, while readouts are placed and moved (the
//! cache must follow them) and the behaviour covariates change every frame (they are not
//! cached).

use super::*;

/// `trials` trials of 90 frames from the truth with a running speed and pupil that drift.
fn run_moving(designer: &mut Designer, truth: &Truth, trials: u64) -> Vec<DesignChoice> {
    let pool = designer.pool_arc();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut y = vec![0.0f32; truth.positions.len()];
    let mut choices = Vec::new();
    for trial in 0..trials {
        let choice = designer.decide(trial, false);
        let onset = (trial * 90) as f64 / HZ;
        designer.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
        for f in 0..90usize {
            let t = onset + f as f64 / HZ;
            let at = (f < pool.frames()).then_some((choice.entry, f));
            for (u, v) in y.iter_mut().enumerate() {
                let lambda = truth.rate(&pool, u, at) / HZ;
                *v = Poisson::new(lambda.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng) as f32);
            }
            let behaviour = [
                (5.0 + 4.0 * (t / 7.0).sin()) as f32,
                (0.3 * (t / 3.0).cos()) as f32,
            ];
            designer.observe(RigTime::from_secs_f64(t), &y, behaviour);
        }
        choices.push(choice);
    }
    choices
}

#[test]
fn cached_features_decide_as_the_uncached_path() {
    let pool = pool();
    let truth = Truth::new(&pool, 24, 8);
    let cfg = DesignConfig {
        warmup_trials: 6,
        refit_every: 4,
        random_share: 0.0,
        ..DesignConfig::default()
    };
    assert!(cfg.feature_cache && cfg.fast_scoring);
    let uncached_cfg = DesignConfig {
        feature_cache: false,
        ..cfg.clone()
    };
    let mut cached = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    let mut uncached = Designer::new(Arc::clone(&pool), uncached_cfg, 3, 1.0 / HZ);
    let a = run_moving(&mut cached, &truth, 36);
    let b = run_moving(&mut uncached, &truth, 36);
    let (builds, held) = cached.feature_caches();
    assert!(held && uncached.feature_caches() == (0, false));
    let mut adaptive = 0;
    for (trial, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!((x.entry, x.mode), (y.entry, y.mode), "trial {trial}");
        adaptive += usize::from(x.mode == DecisionMode::Adaptive);
        let close = |p: f64, q: f64| (p - q).abs() <= 1e-6 * q.abs();
        if let (Some(p), Some(q)) = (x.score, y.score) {
            assert!(close(p, q), "trial {trial}: {p} vs {q}");
        }
        for (p, q) in x.alternatives.iter().zip(&y.alternatives) {
            assert_eq!(p.entry, q.entry, "trial {trial}");
            assert!(
                close(p.score, q.score),
                "trial {trial}: {} vs {}",
                p.score,
                q.score
            );
        }
    }
    assert!(adaptive >= 15, "only {adaptive} adaptive trials");
    assert!(
        builds >= 2,
        "{builds} cache builds: the readouts never moved"
    );
}
