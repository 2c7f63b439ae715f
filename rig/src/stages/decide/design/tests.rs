//! The designer against a ground truth it can match (units that are exactly log-linear Poisson
//! readouts of the frozen core at known positions), its rules, and its handling of bad input.

use super::designer::BEHAVIOUR_DIMS;
use super::*;
use crate::vocab::clock::RigTime;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use twinloop_stimulus::{LibraryEntry, ViewGeometry};

pub(crate) const HZ: f64 = 30.0;

/// The twin's 64x36 view over the display (the tests' pools are built on it).
pub(crate) fn view() -> ViewGeometry {
    ViewGeometry {
        width: 64,
        height: 36,
        azimuth_deg: (-60.0, 60.0),
        elevation_deg: (-35.0, 35.0),
    }
}

/// The energy bank on the view, as sessions run it.
pub(crate) fn energy() -> Box<dyn twinloop_model::frozen_core::FrozenCore> {
    Box::new(
        twinloop_model::energy_core::EnergyCore::new(crate::stages::decide::core_config(
            &view(),
            HZ,
            (6, 10),
        ))
        .unwrap(),
    )
}

fn pool() -> Arc<CandidatePool> {
    let candidates = default_candidates();
    let tests = default_tests(candidates.len() as u32);
    Arc::new(
        CandidatePool::build(candidates, tests, view(), energy(), 2.0, HZ)
            .expect("the default pool builds"),
    )
}

/// A population that is exactly the student's model: unit u reads the core at `positions[u]`
/// with weights `weights[u]` (bias last), Poisson per frame.
struct Truth {
    positions: Vec<(f32, f32)>,
    weights: Vec<Vec<f32>>,
}

impl Truth {
    fn new(pool: &CandidatePool, units: usize, seed: u64) -> Truth {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rows, cols) = pool.core().grid();
        let c = pool.core().channels();
        // Receptive fields where the rig's are: within about 30 degrees of the centre, which
        // the pool's patches and sparse noise cover.
        let positions = (0..units)
            .map(|_| {
                (
                    rng.random_range(1..rows - 1) as f32,
                    rng.random_range(2..cols - 2) as f32,
                )
            })
            .collect();
        let weights = (0..units)
            .map(|_| {
                // Rates like the simulator's V1 cells: ~1 event/s at gray, up to ~20 when driven.
                let mut w: Vec<f32> = (0..c).map(|_| rng.random_range(-0.5..1.5f32)).collect();
                w.extend([0.0; BEHAVIOUR_DIMS]);
                w.push(0.0);
                w
            })
            .collect();
        Truth { positions, weights }
    }

    fn rate(&self, pool: &CandidatePool, u: usize, at: Option<(usize, usize)>) -> f64 {
        let c = pool.core().channels();
        let map = match at {
            Some((e, f)) => pool.feature_map(e, f),
            None => pool.gray_map(),
        };
        let mut x = vec![0.0f32; c];
        let (gr, gc) = self.positions[u];
        pool.core().sample(map, gr, gc, &mut x);
        let w = &self.weights[u];
        let eta: f32 = x.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + w[w.len() - 1];
        f64::from(eta).exp()
    }
}

/// Runs `trials` trials of 2 s + 1 s gray, drawing activity from `truth`.
fn run(designer: &mut Designer, truth: &Truth, trials: u64, seed: u64) -> Vec<DesignChoice> {
    run_watching(designer, truth, trials, seed, |_, _, _| {})
}

/// [`run`], calling `watch(designer, trial, true expected counts)` after every frame is
/// observed.
fn run_watching(
    designer: &mut Designer,
    truth: &Truth,
    trials: u64,
    seed: u64,
    mut watch: impl FnMut(&Designer, u64, &[f64]),
) -> Vec<DesignChoice> {
    let pool = designer.pool_arc();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let units = truth.positions.len();
    let mut choices = Vec::new();
    let mut frame = 0u64;
    let mut y = vec![0.0f32; units];
    let mut expected = vec![0.0f64; units];
    for trial in 0..trials {
        let choice = designer.decide(trial, false);
        let onset = frame as f64 / HZ;
        designer.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
        for k in 0..90u64 {
            let t = (frame + k) as f64 / HZ;
            let f = ((t - onset) * HZ).round() as usize;
            let at = (f < pool.frames()).then_some((choice.entry, f));
            for (u, v) in y.iter_mut().enumerate() {
                let lambda = truth.rate(&pool, u, at) / HZ;
                expected[u] = lambda;
                *v = Poisson::new(lambda.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng) as f32);
            }
            designer.observe(RigTime::from_secs_f64(t), &y, [0.0; BEHAVIOUR_DIMS]);
            watch(designer, trial, &expected);
        }
        frame += 90;
        choices.push(choice);
    }
    choices
}

#[test]
fn readouts_find_the_true_positions_and_weights() {
    let pool = pool();
    let truth = Truth::new(&pool, 12, 1);
    let cfg = DesignConfig {
        warmup_trials: 30,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 7, 1.0 / HZ);
    // The one-step-ahead prediction the daemon publishes, over the last 10 trials: it should
    // follow the true expected activity of each frame it had not yet seen.
    let (mut predicted, mut expected) = (Vec::new(), Vec::new());
    run_watching(&mut d, &truth, 120, 2, |d, trial, truth_counts| {
        if trial >= 110 {
            let p = d
                .last_prediction()
                .expect("a prediction once positions are known");
            assert_eq!(p.len(), truth_counts.len());
            predicted.extend_from_slice(p);
            expected.extend_from_slice(truth_counts);
        }
    });
    let mut near = 0;
    for (u, &(r, c)) in d.positions().iter().enumerate() {
        let (tr, tc) = truth.positions[u];
        // The core's neighbouring positions overlap (envelope 5 px, spacing 6 px), so one step
        // off predicts almost as well; two steps off would be a failure.
        if (r - tr).hypot(c - tc) <= 1.5 {
            near += 1;
        }
    }
    assert!(
        near >= 9,
        "{near}/12 readouts within 1.5 grid steps of the truth"
    );
    // Weights: the posterior mean correlates with the true weights over all units.
    let post = d.posterior().expect("posterior");
    let c = pool.core().channels();
    let (mut est, mut tru) = (Vec::new(), Vec::new());
    for u in 0..12 {
        est.extend(post.mean(u)[..c].iter().copied());
        tru.extend(truth.weights[u][..c].iter().map(|&w| f64::from(w)));
    }
    let r = twinloop_model::metrics::pearson(&est, &tru).expect("pearson");
    eprintln!(
        "weights recovered: r = {r:.3}, positions {near}/12, clipped {}",
        d.counts().values_clipped
    );
    assert!(r > 0.6, "weights recovered: r = {r:.3}");
    let r = twinloop_model::metrics::pearson(&predicted, &expected).expect("pearson");
    eprintln!("prediction vs true expected activity: r = {r:.3}");
    assert!(r > 0.9, "prediction vs true expected activity: r = {r:.3}");
}

#[test]
fn the_rules_hold_test_block_warmup_share_and_cap() {
    let pool = pool();
    let truth = Truth::new(&pool, 6, 3);
    let cfg = DesignConfig {
        warmup_trials: 10,
        kind_cap: 0.4,
        test_every: 4,
        random_share: 0.3,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 11, 1.0 / HZ);
    let choices = run(&mut d, &truth, 60, 4);
    for (t, c) in choices.iter().enumerate() {
        let is_test_slot = t % 4 == 3;
        assert_eq!(
            c.mode == DecisionMode::Test,
            is_test_slot,
            "trial {t}: {c:?}"
        );
        assert_eq!(
            pool.is_test(c.entry),
            is_test_slot,
            "test stimuli only in test slots"
        );
        if t < 10 && !is_test_slot {
            assert_eq!(c.mode, DecisionMode::Warmup);
        }
    }
    let adaptive: Vec<&DesignChoice> = choices
        .iter()
        .filter(|c| c.mode == DecisionMode::Adaptive)
        .collect();
    let random = choices
        .iter()
        .filter(|c| c.mode == DecisionMode::Random)
        .count();
    assert!(adaptive.len() >= 15, "{} adaptive", adaptive.len());
    assert!(random >= 4, "{random} random");
    let mut kinds = std::collections::BTreeMap::new();
    for c in &adaptive {
        *kinds.entry(pool.kind(c.entry)).or_insert(0usize) += 1;
    }
    for (kind, n) in kinds {
        assert!(
            n as f64 <= 0.4 * adaptive.len() as f64 + 10.0 * 0.4 + 1.0,
            "{kind}: {n} of {}",
            adaptive.len()
        );
    }
    // Adaptive decisions carry their score and runners-up, best first.
    for c in adaptive {
        let s = c.score.expect("score");
        assert_eq!(c.alternatives.first().map(|a| a.score), Some(s));
        assert!(c.alternatives.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn same_inputs_same_decisions() {
    let pool = pool();
    let truth = Truth::new(&pool, 5, 5);
    let cfg = DesignConfig {
        warmup_trials: 6,
        ..DesignConfig::default()
    };
    let mut a = Designer::new(Arc::clone(&pool), cfg.clone(), 3, 1.0 / HZ);
    let mut b = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    let ca = run(&mut a, &truth, 30, 9);
    let cb = run(&mut b, &truth, 30, 9);
    assert_eq!(ca, cb);
}

#[test]
fn a_tiny_deadline_makes_late_random_trials_and_counts_them() {
    let pool = pool();
    let truth = Truth::new(&pool, 40, 6);
    let cfg = DesignConfig {
        warmup_trials: 4,
        random_share: 0.0,
        deadline_ms: 1e-6,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    let choices = run(&mut d, &truth, 12, 1);
    let late = choices
        .iter()
        .filter(|c| c.mode == DecisionMode::Late)
        .count();
    assert!(late >= 5, "{late} late of {choices:?}");
    // Every decision overran 1 ns and is counted, whatever its rule; the ones the rules left
    // to the objective were made random.
    assert_eq!(d.counts().late, choices.len() as u64);
    assert!(choices.iter().all(|c| c.mode != DecisionMode::Adaptive));
}

/// A decision with no time left before its onset stops scoring and is random, counted as
/// late; the budget is for one decision only, and ignored without a deadline (where machine
/// speed must not decide the outcome).
#[test]
fn a_decision_out_of_time_is_random_and_late() {
    let pool = pool();
    let truth = Truth::new(&pool, 40, 6);
    for deadline_ms in [1500.0, 0.0] {
        let cfg = DesignConfig {
            warmup_trials: 4,
            random_share: 0.0,
            test_every: 0,
            deadline_ms,
            ..DesignConfig::default()
        };
        let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
        let before = run(&mut d, &truth, 8, 1);
        assert_eq!(before.last().map(|c| c.mode), Some(DecisionMode::Adaptive));
        d.set_budget(Some(std::time::Duration::ZERO));
        let out_of_time = d.decide(8, false);
        let next = d.decide(9, false);
        assert_eq!(
            next.mode,
            DecisionMode::Adaptive,
            "the budget was one decision's"
        );
        if deadline_ms > 0.0 {
            assert_eq!(out_of_time.mode, DecisionMode::Late);
            assert_eq!(out_of_time.score, None);
            assert_eq!(d.counts().late, 1);
        } else {
            assert_eq!(out_of_time.mode, DecisionMode::Adaptive);
            assert_eq!(d.counts().late, 0);
        }
    }
}

/// The budget covers the upkeep a decision runs itself (adopting a twin refit, re-placing
/// readouts): a slow upkeep makes the decision late, counted, even when the scoring alone would
/// fit. (Before, the timer started after the upkeep, so the display could wait unannounced.)
/// A test or random trial keeps its stimulus but is counted late all the same.
#[test]
fn slow_upkeep_counts_against_the_decision_budget() {
    let pool = pool();
    let truth = Truth::new(&pool, 40, 6);
    let cfg = DesignConfig {
        warmup_trials: 4,
        random_share: 0.0,
        test_every: 3,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    run(&mut d, &truth, 7, 1);
    // The sleep is at least its request, so this cannot pass on a fast machine by accident.
    d.slow_upkeep_for_tests(std::time::Duration::from_millis(300));
    d.set_budget(Some(std::time::Duration::from_millis(100)));
    let slow = d.decide(7, false);
    assert_eq!(slow.mode, DecisionMode::Late);
    assert_eq!(d.counts().late, 1);
    // Trial 8 is a test slot: its stimulus stands, and its lateness is counted.
    d.set_budget(Some(std::time::Duration::from_millis(100)));
    let test = d.decide(8, false);
    assert_eq!(test.mode, DecisionMode::Test);
    assert_eq!(d.counts().late, 2);
}

/// Upkeep done by `prepare` (the daemon runs it while the previous decision waits for its
/// onset) is off the decision's clock: a step slower than the whole deadline leaves the
/// prepared decision adaptive, while the same step in an unprepared decision makes it late.
#[test]
fn prepared_upkeep_is_off_the_decisions_clock() {
    let pool = pool();
    let truth = Truth::new(&pool, 40, 6);
    let cfg = DesignConfig {
        warmup_trials: 4,
        random_share: 0.0,
        test_every: 0,
        deadline_ms: 1500.0,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    run(&mut d, &truth, 8, 1);
    d.slow_upkeep_for_tests(std::time::Duration::from_millis(1600));
    d.prepare(8);
    let prepared = d.decide(8, false);
    assert_eq!(prepared.mode, DecisionMode::Adaptive);
    assert_eq!(d.counts().late, 0);
    // Prepared for another trial: the decision does its own upkeep, on its clock.
    d.prepare(10);
    let unprepared = d.decide(9, false);
    assert_eq!(unprepared.mode, DecisionMode::Late);
    assert_eq!(d.counts().late, 1);
}

#[test]
fn accuracy_that_cannot_improve_falls_back_to_random() {
    let pool = pool();
    // Units blind to the stimulus: nothing to learn, so CC_norm never improves.
    let mut truth = Truth::new(&pool, 8, 8);
    for w in &mut truth.weights {
        let n = w.len();
        w[..n - 1].iter_mut().for_each(|v| *v = 0.0);
    }
    let cfg = DesignConfig {
        warmup_trials: 4,
        test_every: 2,
        patience: 2,
        random_share: 0.0,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    let choices = run(&mut d, &truth, 70, 3);
    assert!(
        choices.iter().any(|c| c.mode == DecisionMode::Fallback),
        "fallback after accuracy stalls: {:?}",
        d.accuracy()
    );
    assert!(d.counts().fallback_trials > 0);
}

#[test]
fn bad_activity_is_skipped_and_a_changed_population_restarts() {
    let pool = pool();
    let mut d = Designer::new(Arc::clone(&pool), DesignConfig::default(), 3, 1.0 / HZ);
    d.observe(RigTime::from_secs_f64(0.0), &[1.0, f32::NAN, 2.0], [0.0; 2]);
    assert_eq!(d.units(), 3);
    for k in 0..150 {
        let v = (k % 3) as f32;
        d.observe(
            RigTime::from_secs_f64(0.1 + k as f64 / 30.0),
            &[v, 1.0, v],
            [0.0; 2],
        );
    }
    assert_eq!(
        d.counts().values_clipped,
        0,
        "ordinary activity is not clipped"
    );
    d.observe(
        RigTime::from_secs_f64(6.0),
        &[1e9, 0.0, 1.0],
        [f32::NAN, 0.0],
    );
    assert_eq!(d.counts().values_clipped, 1);
    d.observe(RigTime::from_secs_f64(6.1), &[1.0, 0.0], [0.0; 2]);
    assert_eq!(d.units(), 2);
    assert_eq!(d.counts().unit_count_changes, 1);
    // No cells at all: decisions still come (random), nothing panics.
    d.observe(RigTime::from_secs_f64(0.3), &[], [0.0; 2]);
    let c = d.decide(50, false);
    assert!(!pool.is_test(c.entry) || c.mode == DecisionMode::Test);
}

/// Through the trait, many clips per call, the energy bank gives the pool exactly the features its own
/// `clip` gives each entry rendered on the view (and its `step` the gray screen's).
#[test]
fn a_pool_on_the_energy_bank_caches_exactly_the_banks_features() {
    use twinloop_model::energy_core::EnergyCore;
    use twinloop_stimulus::{Prepared, Projection, cpu};
    let candidates = default_candidates();
    // More clips than the fewest the pool passes the core at once (a BATCH and a few).
    let n = pool::BATCH + 3;
    let candidates: Vec<LibraryEntry> = candidates.into_iter().step_by(5).take(n).collect();
    let candidates: Vec<LibraryEntry> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.id = twinloop_stimulus::StimulusId(i as u32);
            e
        })
        .collect();
    let tests = default_tests(n as u32);
    let entries: Vec<LibraryEntry> = candidates.iter().chain(&tests).cloned().collect();
    let pool = CandidatePool::build(candidates, tests, view(), energy(), 0.5, HZ).unwrap();
    let bank = EnergyCore::new(crate::stages::decide::core_config(&view(), HZ, (6, 10))).unwrap();
    assert_eq!(pool.core().channels(), bank.channels());
    assert_eq!(pool.core().grid(), (6, 10));
    let frames = pool.frames();
    assert_eq!(frames, 15);
    let v = view();
    let projection = Projection::Linear(v);
    let per_frame = bank.positions() * bank.channels();
    for (i, e) in entries.iter().enumerate() {
        let mut prepared = Prepared::new(&e.spec).unwrap();
        let mut clip = vec![0u8; frames * v.pixels()];
        for (f, out) in clip.chunks_exact_mut(v.pixels()).enumerate() {
            cpu::render_content(&prepared.frame(f as f64 / HZ), &projection, out);
        }
        let mut want = vec![0f32; frames * per_frame];
        bank.clip(&clip, frames, &mut want).unwrap();
        for f in 0..frames {
            assert!(
                pool.feature_map(i, f) == &want[f * per_frame..(f + 1) * per_frame],
                "entry {i} frame {f}"
            );
        }
    }
    let mut gray = vec![0f32; per_frame];
    bank.step(
        &mut bank.initial_state(),
        &vec![cpu::MEAN_GRAY; v.pixels()],
        &mut gray,
    )
    .unwrap();
    assert!(pool.gray_map() == gray.as_slice());
}

#[test]
fn a_pool_names_what_is_wrong() {
    let v = view();
    let err = CandidatePool::build(Vec::new(), Vec::new(), v, energy(), 2.0, HZ)
        .err()
        .expect("empty");
    assert!(matches!(err, PoolError::Empty));
    let bad = LibraryEntry {
        id: twinloop_stimulus::StimulusId(0),
        name: "too fine".into(),
        spec: twinloop_stimulus::StimulusSpec::grating(0.0, 50.0, 2.0, 1.0, 0.0),
    };
    let err = CandidatePool::build(vec![bad], Vec::new(), v, energy(), 2.0, HZ)
        .err()
        .expect("rejected");
    let msg = err.to_string();
    assert!(msg.contains("too fine") && msg.contains("sf"), "{msg}");
}

#[test]
fn refits_come_every_block_even_when_a_due_trial_is_a_test_slot() {
    let pool = pool();
    let truth = Truth::new(&pool, 4, 9);
    // Test slots are trials 3, 7, 11, ... (every 4th); with warm-up 7 and a refit every 4 the
    // due trials 7, 11, 15, ... are all test slots, which never reach the refit.
    let cfg = DesignConfig {
        warmup_trials: 7,
        refit_every: 4,
        test_every: 4,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 5, 1.0 / HZ);
    run(&mut d, &truth, 40, 4);
    // The first placement refits all 4 units; after it, one round per 4 trials (8, 12, ... 36).
    assert!(d.counts().refits >= 4, "{:?}", d.counts());
    assert!(
        d.refit_rounds() >= 7,
        "a refit round per 4 trials after warm-up: {}",
        d.refit_rounds()
    );
}

/// Cells whose gain follows running (fnn's modulation, reduced to one covariate): the readouts
/// learn the running weight from speeds as measured (cm/s), which the designer standardises,
/// and learn nothing from a covariate that carries nothing (pupil size here).
#[test]
fn readouts_learn_the_running_gain_from_measured_speed() {
    let pool = pool();
    let units = 10;
    let truth = Truth::new(&pool, units, 5);
    let beta = 0.5;
    let cfg = DesignConfig {
        warmup_trials: 20,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 11, 1.0 / HZ);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let normal = rand_distr::StandardNormal;
    let (mut z_run, mut frame) = (0.0f64, 0u64);
    let mut y = vec![0.0f32; units];
    for trial in 0..80u64 {
        let choice = d.decide(trial, false);
        let onset = frame as f64 / HZ;
        d.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
        for k in 0..90u64 {
            let t = (frame + k) as f64 / HZ;
            // Running bouts lasting seconds: an AR(1) with unit stationary variance.
            let e: f64 = normal.sample(&mut rng);
            z_run = 0.98 * z_run + (1.0f64 - 0.98 * 0.98).sqrt() * e;
            let speed_cm_s = 12.0 + 6.0 * z_run;
            let noise: f64 = normal.sample(&mut rng);
            let pupil_px = 20.0 + 3.0 * noise;
            let f = ((t - onset) * HZ).round() as usize;
            let at = (f < pool.frames()).then_some((choice.entry, f));
            for (u, v) in y.iter_mut().enumerate() {
                let lambda = truth.rate(&pool, u, at) * (beta * z_run).exp() / HZ;
                *v = Poisson::new(lambda.max(1e-9)).map_or(0.0, |p| p.sample(&mut rng) as f32);
            }
            d.observe(
                RigTime::from_secs_f64(t),
                &y,
                [speed_cm_s as f32, pupil_px as f32],
            );
        }
        frame += 90;
    }
    let post = d.posterior().expect("posterior");
    let c = pool.core().channels();
    let mean_weight =
        |k: usize| (0..units).map(|u| post.mean(u)[c + k]).sum::<f64>() / units as f64;
    let (running, pupil) = (mean_weight(0), mean_weight(1));
    eprintln!("running weight {running:.3} (true {beta}), pupil weight {pupil:.3} (true 0)");
    assert!(
        (running - beta).abs() < 0.15,
        "running weight {running:.3}, true {beta}"
    );
    assert!(pupil.abs() < 0.1, "pupil weight {pupil:.3}, true 0");
}

/// Two imaging planes at a 30 Hz rig (each plane every 1/15 s, plane 1 scanned 1/30 s after
/// plane 0), each plane's cells exactly the student's model with their own positions and
/// weights, and each cell sampled at its own scan line (offset within its plane's frame).
/// Returns, per plane, the one-step-ahead predictions and the true expected counts over the
/// frames of trials from `score_from` on.
fn run_planes(
    d: &mut Designer,
    truths: &[Truth],
    offsets: &[Vec<f64>],
    trials: u64,
    score_from: u64,
    seed: u64,
) -> Vec<(Vec<f64>, Vec<f64>)> {
    let pool = d.pool_arc();
    let planes = truths.len();
    for (p, o) in offsets.iter().enumerate() {
        d.set_scan_offsets(p as u8, o.clone());
    }
    let volume_s = planes as f64 / HZ;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut scored = vec![(Vec::new(), Vec::new()); planes];
    let mut volume = 0u64;
    // 3 s per trial (2 s stimulus, 1 s gray).
    let per_trial = (3.0 / volume_s).round() as u64;
    for trial in 0..trials {
        let choice = d.decide(trial, false);
        let onset = volume as f64 * volume_s;
        d.onset(trial, choice.entry, RigTime::from_secs_f64(onset));
        for k in 0..per_trial {
            for (p, truth) in truths.iter().enumerate() {
                let t = (volume + k) as f64 * volume_s + p as f64 / HZ;
                let mut expected = Vec::new();
                let y: Vec<f32> = (0..truth.positions.len())
                    .map(|u| {
                        // What the cell saw when its scan line was read (the designer's rule).
                        let tu = t + offsets[p][u];
                        let f = ((tu - onset) * pool.twin_hz() + 1e-6).floor() as usize;
                        let at = (f < pool.frames()).then_some((choice.entry, f));
                        let lambda = truth.rate(&pool, u, at) * volume_s;
                        expected.push(lambda);
                        Poisson::new(lambda.max(1e-9)).map_or(0.0, |q| q.sample(&mut rng) as f32)
                    })
                    .collect();
                d.observe_plane(
                    p as u8,
                    RigTime::from_secs_f64(t),
                    &y,
                    [0.0; BEHAVIOUR_DIMS],
                );
                if trial >= score_from {
                    let pred = d.last_prediction().expect("a prediction once placed");
                    assert_eq!(pred.len(), y.len(), "the frame's own plane's cells");
                    scored[p].0.extend_from_slice(pred);
                    scored[p].1.extend(expected);
                }
            }
        }
        volume += per_trial;
    }
    scored
}

/// Every plane's cells are units of the twin: plane-major, each plane's readouts placed near
/// its own cells' true positions, and plane 1's one-step-ahead predictions follow its truth as
/// well as plane 0's do; held-out accuracy counts both planes' units.
#[test]
fn both_planes_cells_are_readouts_that_learn() {
    let pool = pool();
    let truths = [Truth::new(&pool, 8, 21), Truth::new(&pool, 6, 22)];
    // Up to a rig frame and a half apart (longer than a real scan, so that a cell read with
    // another cell's or another plane's offsets would see another stimulus frame).
    let offsets = [
        (0..8).map(|u| (u % 2) as f64 / HZ).collect::<Vec<_>>(),
        (0..6).map(|u| (0.5 + (u % 2) as f64) / HZ).collect(),
    ];
    let cfg = DesignConfig {
        warmup_trials: 30,
        test_every: 4,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 7, 1.0 / HZ).with_planes(2);
    let scored = run_planes(&mut d, &truths, &offsets, 120, 110, 3);
    assert_eq!(d.units(), 14);
    assert_eq!((d.plane_units(0), d.plane_units(1)), (0..8, 8..14));
    let mut near = [0usize; 2];
    for (p, truth) in truths.iter().enumerate() {
        for (k, u) in d.plane_units(p as u8).enumerate() {
            let (r, c) = d.positions()[u];
            let (tr, tc) = truth.positions[k];
            if (r - tr).hypot(c - tc) <= 1.5 {
                near[p] += 1;
            }
        }
    }
    let r: Vec<f64> = scored
        .iter()
        .map(|(pred, truth)| twinloop_model::metrics::pearson(pred, truth).expect("pearson"))
        .collect();
    let acc = d.accuracy().last().copied().expect("held-out accuracy");
    eprintln!(
        "placed near truth: plane 0 {}/8, plane 1 {}/6; prediction vs true expected r = {:.3}, {:.3}; CC_norm {:.3} over {} units",
        near[0], near[1], r[0], r[1], acc.cc_norm, acc.units
    );
    assert!(near[0] >= 4 && near[1] >= 3, "placed near truth: {near:?}");
    assert!(r[0] > 0.9 && r[1] > 0.9, "prediction vs truth: {r:?}");
    assert!(
        (r[0] - r[1]).abs() < 0.1,
        "plane 1 learns as plane 0 does: {r:?}"
    );
    // Held-out accuracy covers both planes' units (each where its CC_max is defined).
    let cc = d.unit_cc_norm();
    let mean_cc = |p: u8| {
        let v: Vec<f64> = cc[d.plane_units(p)]
            .iter()
            .copied()
            .filter(|c| c.is_finite())
            .collect();
        (v.len(), v.iter().sum::<f64>() / v.len().max(1) as f64)
    };
    let (cc0, cc1) = (mean_cc(0), mean_cc(1));
    eprintln!("CC_norm per plane (units, mean): {cc0:?} {cc1:?}");
    assert_eq!(cc0.0 + cc1.0, acc.units);
    assert!(
        cc0.0 >= 1 && cc1.0 >= 1,
        "both planes evaluated: {cc0:?} {cc1:?}"
    );
}

/// A plane's frame folds into its own units only; cells appearing on plane 1 restart plane 1's
/// readouts (counted) and leave plane 0's fits as they were.
#[test]
fn a_plane_frame_updates_only_that_planes_units() {
    let pool = pool();
    let truths = [Truth::new(&pool, 5, 31), Truth::new(&pool, 4, 32)];
    let offsets = [vec![0.0; 5], vec![0.01; 4]];
    let cfg = DesignConfig {
        warmup_trials: 6,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 5, 1.0 / HZ).with_planes(2);
    run_planes(&mut d, &truths, &offsets, 10, u64::MAX, 8);
    let post = d.posterior().expect("posterior");
    let snapshot = |post: &twinloop_model::design::Posterior, u: usize| {
        (
            post.mean(u).to_vec(),
            post.cov(u).to_vec(),
            post.observations(u),
        )
    };
    let before: Vec<_> = (0..9).map(|u| snapshot(post, u)).collect();
    assert!(before.iter().all(|s| s.2 > 0), "every unit has learnt");
    d.observe_plane(
        1,
        RigTime::from_secs_f64(40.0),
        &[3.0, 0.0, 1.0, 2.0],
        [0.0; 2],
    );
    assert_eq!(d.last_prediction().map(<[f64]>::len), Some(4));
    let post = d.posterior().expect("posterior");
    for (u, b) in before.iter().enumerate() {
        if u < 5 {
            assert_eq!(&snapshot(post, u), b, "plane 0 unit {u} untouched");
        } else {
            assert_eq!(post.observations(u), b.2 + 1, "plane 1 unit {u} updated");
            assert_ne!(post.mean(u), &b.0[..]);
        }
    }
    // Plane 1 now has 3 cells: its readouts start again, plane 0's stay.
    let changes = d.counts().unit_count_changes;
    d.observe_plane(1, RigTime::from_secs_f64(40.1), &[1.0, 0.0, 1.0], [0.0; 2]);
    assert_eq!(d.counts().unit_count_changes, changes + 1);
    assert_eq!((d.units(), d.plane_units(1)), (8, 5..8));
    let post = d.posterior().expect("posterior");
    for (u, b) in before.iter().enumerate().take(5) {
        assert_eq!(&snapshot(post, u), b, "plane 0 unit {u} kept its fit");
    }
    assert!((5..8).all(|u| post.observations(u) == 0));
    // Plane 0's frames still update plane 0 (now placed), and a decision places plane 1 again.
    d.observe_plane(0, RigTime::from_secs_f64(40.2), &[1.0; 5], [0.0; 2]);
    assert_eq!(d.last_prediction().map(<[f64]>::len), Some(5));
    assert!(d.predict(0, 0).is_none(), "plane 1 is not placed yet");
    d.decide(20, false);
    assert_eq!(d.predict(0, 0).map(|p| p.len()), Some(8));
}

/// The repeated test block only scores CC_norm: no frame with a test stimulus on screen moves
/// any readout's posterior (mean or covariance), while the other trials' frames do.
#[test]
fn the_test_block_does_not_move_the_posterior() {
    let pool = pool();
    let truth = Truth::new(&pool, 8, 5);
    let cfg = DesignConfig {
        warmup_trials: 10,
        test_every: 4,
        ..DesignConfig::default()
    };
    let mut d = Designer::new(Arc::clone(&pool), cfg, 3, 1.0 / HZ);
    let snapshot = |d: &Designer| -> Option<Vec<f64>> {
        let post = d.posterior()?;
        Some(
            (0..post.units())
                .flat_map(|u| post.mean(u).iter().chain(post.cov(u)).copied())
                .collect(),
        )
    };
    let mut frames: Vec<(u64, Option<Vec<f64>>)> = Vec::new();
    let choices = run_watching(&mut d, &truth, 40, 9, |d, trial, _| {
        frames.push((trial, snapshot(d)));
    });
    let (mut still, mut moved) = (0, 0);
    // 90 frames per trial; frames 1..60 have its stimulus on screen (frame 0 is compared with
    // the previous trial's last, gray, frame).
    for (i, w) in frames.windows(2).enumerate() {
        let ((_, Some(before)), (trial, Some(after))) = (&w[0], &w[1]) else {
            continue;
        };
        let k = (i + 1) % 90;
        if !(1..60).contains(&k) {
            continue;
        }
        if choices[*trial as usize].mode == DecisionMode::Test {
            assert_eq!(
                before, after,
                "trial {trial} frame {k}: the test block moved it"
            );
            still += 1;
        } else if before != after {
            moved += 1;
        }
    }
    assert!(still > 100, "only {still} test-block frames checked");
    assert!(
        moved > 100,
        "the other trials moved the posterior on only {moved} frames"
    );
}

#[path = "tests_cached.rs"]
mod cached;
