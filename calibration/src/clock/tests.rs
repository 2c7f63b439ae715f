//! The clock fit on synthetic device clocks: offset, drift, jitter, missing and spurious ticks,
//! jumps, wrong guesses and streams that cannot be aligned.

use super::sync::{ClockFit, ClockGuess, SyncConfig, SyncError, fit_clock};

/// splitmix64 with Box–Muller normals: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A device clock against the rig: `t_dev = (t_rig − offset) / rate + step` where `step` is
/// `jump_ns` from tick `jump_at` on.
#[derive(Clone, Copy)]
struct Scenario {
    seed: u64,
    ticks: usize,
    periodic: bool,
    jitter_ns: f64,
    drift_ppm: f64,
    offset_ns: f64,
    missing: f64,
    spurious: f64,
    jump: Option<(usize, f64)>,
}

const BASE: Scenario = Scenario {
    seed: 1,
    ticks: 1200,
    periodic: false,
    jitter_ns: 20_000.0,
    drift_ppm: 50.0,
    offset_ns: 123_456_789.0,
    missing: 0.05,
    spurious: 0.03,
    jump: None,
};

struct Streams {
    dev: Vec<i64>,
    rig: Vec<i64>,
    rate: f64,
}

impl Scenario {
    fn rate(&self) -> f64 {
        1.0 + self.drift_ppm * 1e-6
    }

    /// The true rig time of a device time in the stretch before (`after_jump = false`) or after
    /// the jump.
    fn truth(&self, t_dev: i64, after_jump: bool) -> f64 {
        let step = if after_jump {
            self.jump.map_or(0.0, |j| j.1)
        } else {
            0.0
        };
        self.offset_ns + self.rate() * (t_dev as f64 - step)
    }

    fn streams(&self) -> Streams {
        let mut rng = Rng(self.seed);
        let mut t = 5e9;
        let (mut dev, mut rig) = (Vec::new(), Vec::new());
        for k in 0..self.ticks {
            t += if self.periodic {
                1e9
            } else {
                0.5e9 + rng.uniform() * 1e9
            };
            if rng.uniform() >= self.missing {
                rig.push((t + self.jitter_ns * rng.normal()).round() as i64);
            }
            if rng.uniform() < self.spurious {
                rig.push((t + 0.3e9 + 0.4e9 * rng.uniform()).round() as i64);
            }
            let step = match self.jump {
                Some((at, j)) if k >= at => j,
                _ => 0.0,
            };
            let td = (t - self.offset_ns) / self.rate() + step;
            if rng.uniform() >= self.missing {
                dev.push((td + self.jitter_ns * rng.normal()).round() as i64);
            }
            if rng.uniform() < self.spurious {
                dev.push((td + 0.3e9 + 0.4e9 * rng.uniform()).round() as i64);
            }
        }
        rig.sort_unstable();
        Streams {
            dev,
            rig,
            rate: self.rate(),
        }
    }

    fn guess(&self) -> ClockGuess {
        ClockGuess::offset(self.offset_ns.round() as i64 + 40_000_000)
    }
}

/// Largest error of the fitted mapping against the truth over a segment's own device times.
fn worst_map_error(s: &Scenario, fit: &ClockFit, seg: usize, after_jump: bool) -> f64 {
    let g = &fit.segments[seg];
    let mut worst: f64 = 0.0;
    for k in 0..=20 {
        let t = g.dev_first_ns + (g.dev_last_ns - g.dev_first_ns) / 20 * k;
        worst = worst.max((g.to_rig_ns(t) - s.truth(t, after_jump)).abs());
    }
    worst
}

fn report(fit: &ClockFit) {
    for (i, g) in fit.segments.iter().enumerate() {
        println!(
            "segment {i}: ticks {} (outliers {}), drift {:.3} ppm, rms {:.0} ns, max {:.0} ns, \
             jump {:?} ns, ambiguous {}",
            g.ticks,
            g.outliers,
            g.drift_ppm(),
            g.residual_rms_ns,
            g.residual_max_ns,
            g.jump_ns.map(|j| j.round()),
            g.ambiguous,
        );
    }
    println!(
        "matched {}, dropped {}, dev unmatched {}, rig unmatched {}, jitter {:.0} ns, tolerance {} ns",
        fit.matched,
        fit.dropped,
        fit.dev_unmatched,
        fit.rig_unmatched,
        fit.jitter_ns,
        fit.tolerance_ns
    );
}

#[test]
fn offset_drift_jitter_missing_and_spurious() {
    let s = BASE;
    let st = s.streams();
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    report(&fit);
    assert_eq!(fit.segments.len(), 1, "no jump in this clock");
    let g = &fit.segments[0];
    // Residuals are the two jitters combined: sqrt(2) x 20 us.
    let expected = 20_000.0 * 2f64.sqrt();
    assert!(
        g.residual_rms_ns > 0.85 * expected && g.residual_rms_ns < 1.15 * expected,
        "rms {} vs {expected}",
        g.residual_rms_ns
    );
    assert!(g.residual_max_ns < 5.0 * expected);
    assert!(
        (g.rate - st.rate).abs() < 0.1e-6,
        "drift {} ppm",
        g.drift_ppm()
    );
    assert!(worst_map_error(&s, &fit, 0, false) < 5_000.0);
    // Nearly every real tick pair is matched; the spurious ones are not.
    assert!(g.ticks as f64 > 0.88 * s.ticks as f64, "{} ticks", g.ticks);
    assert!(fit.dev_unmatched > 0 && fit.rig_unmatched > 0);
    // Mapping a device time through the fit.
    let m = fit.map(st.dev[100]).expect("mapped");
    assert_eq!(m.segment, 0);
    assert!(!m.extrapolated);
    assert!(
        fit.map(st.dev[0] - 1_000_000_000_000)
            .expect("mapped")
            .extrapolated
    );
}

#[test]
fn small_jump_splits_the_segment() {
    let s = Scenario {
        seed: 2,
        jump: Some((600, 5_000_000.0)),
        ..BASE
    };
    let st = s.streams();
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    report(&fit);
    assert_eq!(fit.segments.len(), 2);
    let j = fit.segments[1].jump_ns.expect("second segment has a jump");
    assert!((j - 5_000_000.0).abs() < 30_000.0, "jump {j}");
    assert!(!fit.segments[1].ambiguous);
    for (i, after) in [(0, false), (1, true)] {
        let g = &fit.segments[i];
        assert!(
            g.residual_rms_ns < 1.2 * 20_000.0 * 2f64.sqrt(),
            "{i}: {g:?}"
        );
        assert!(worst_map_error(&s, &fit, i, after) < 10_000.0);
    }
}

#[test]
fn large_jump_is_reacquired_and_split() {
    // 3.3 s: far beyond the match tolerance; aperiodic ticks make the new offset unique.
    let s = Scenario {
        seed: 3,
        jump: Some((500, 3_300_000_000.0)),
        ..BASE
    };
    let st = s.streams();
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    report(&fit);
    assert_eq!(fit.segments.len(), 2);
    let j = fit.segments[1].jump_ns.expect("jump");
    assert!((j - 3.3e9).abs() < 30_000.0, "jump {j}");
    assert!(!fit.segments[1].ambiguous);
    assert!(worst_map_error(&s, &fit, 1, true) < 10_000.0);
    assert!(fit.segments[1].ticks > 600);
}

#[test]
fn device_clock_stepping_back_is_a_jump() {
    // The device clock is reset back by 400 s (its ticks are then out of order).
    let s = Scenario {
        seed: 4,
        jump: Some((700, -400e9)),
        ..BASE
    };
    let st = s.streams();
    assert!(st.dev.windows(2).any(|w| w[1] < w[0]));
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    report(&fit);
    assert_eq!(fit.segments.len(), 2);
    let j = fit.segments[1].jump_ns.expect("jump");
    assert!((j + 400e9).abs() < 30_000.0, "jump {j}");
    assert!(worst_map_error(&s, &fit, 1, true) < 10_000.0);
}

#[test]
fn periodic_ticks_with_a_large_jump_are_flagged_ambiguous() {
    let s = Scenario {
        seed: 5,
        periodic: true,
        spurious: 0.0,
        jump: Some((500, 3_300_000_000.0)),
        ..BASE
    };
    let st = s.streams();
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    report(&fit);
    assert_eq!(fit.segments.len(), 2);
    assert!(
        fit.segments[1].ambiguous,
        "a 1 s periodic train cannot resolve 3.3 s"
    );
    // The fractional part of the jump is still right.
    let j = fit.segments[1].jump_ns.expect("jump");
    // (The period in device time is 1 s / rate.)
    let period = 1e9 / st.rate;
    let frac = (j - 3.3e9).rem_euclid(period);
    assert!(frac.min(period - frac) < 20_000.0, "jump {j}");
}

#[test]
fn wrong_initial_guess_is_found_by_the_search() {
    let s = BASE;
    let st = s.streams();
    let guess = ClockGuess::offset(s.offset_ns as i64 + 2_200_000_000);
    let fit = fit_clock(&st.dev, &st.rig, guess, &SyncConfig::default()).expect("aligns");
    assert_eq!(fit.segments.len(), 1);
    assert!(worst_map_error(&s, &fit, 0, false) < 5_000.0);
    // The first ticks of each stream as the guess also works here (both start together).
    let g = ClockGuess::first_ticks(&st.dev, &st.rig).expect("ticks");
    let fit = fit_clock(&st.dev, &st.rig, g, &SyncConfig::default()).expect("aligns");
    assert_eq!(fit.segments.len(), 1);
}

#[test]
fn unalignable_streams_are_a_clear_error() {
    let s = BASE;
    let st = s.streams();
    // Rig ticks of another recording: no offset lines the two up.
    let other = Scenario { seed: 99, ..BASE }.streams();
    let err = fit_clock(&st.dev, &other.rig, s.guess(), &SyncConfig::default()).unwrap_err();
    assert!(
        matches!(err, SyncError::TooFewMatches { matched, .. } if matched < 10),
        "{err}"
    );
    assert!(err.to_string().contains("cannot align the clocks"), "{err}");
    // The same ticks an hour later are found by the default (unbounded) search, but not by a
    // search limited to 10 s.
    let later: Vec<i64> = st.rig.iter().map(|r| r + 3_600_000_000_000).collect();
    assert!(fit_clock(&st.dev, &later, s.guess(), &SyncConfig::default()).is_ok());
    let near = SyncConfig {
        search_ns: 10_000_000_000,
        ..SyncConfig::default()
    };
    let err = fit_clock(&st.dev, &later, s.guess(), &near).unwrap_err();
    assert!(matches!(err, SyncError::TooFewMatches { .. }), "{err}");
    // Too few ticks at all.
    let err = fit_clock(&st.dev[..5], &st.rig, s.guess(), &SyncConfig::default()).unwrap_err();
    assert!(matches!(err, SyncError::TooFewMatches { .. }));
    let err = fit_clock(&st.dev, &[], s.guess(), &SyncConfig::default()).unwrap_err();
    assert!(matches!(err, SyncError::TooFewMatches { .. }));
    // Unsorted rig ticks and bad settings name what is wrong.
    let mut bad = st.rig.clone();
    bad.swap(10, 11);
    let err = fit_clock(&st.dev, &bad, s.guess(), &SyncConfig::default()).unwrap_err();
    assert_eq!(err, SyncError::RigTicksNotSorted { index: 11 });
    let cfg = SyncConfig {
        min_ticks: 1,
        ..SyncConfig::default()
    };
    let err = fit_clock(&st.dev, &st.rig, s.guess(), &cfg).unwrap_err();
    assert!(err.to_string().contains("min_ticks"), "{err}");
}

#[test]
fn perfect_clocks_fit_exactly() {
    let s = Scenario {
        seed: 6,
        jitter_ns: 0.0,
        missing: 0.0,
        spurious: 0.0,
        ..BASE
    };
    let st = s.streams();
    let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default()).expect("aligns");
    assert_eq!(fit.segments.len(), 1);
    assert_eq!(fit.segments[0].ticks, s.ticks);
    assert!(
        fit.segments[0].residual_max_ns <= 1.5,
        "{:?}",
        fit.segments[0]
    );
    assert!(worst_map_error(&s, &fit, 0, false) < 2.0);
}

#[test]
fn many_seeds_agree() {
    // The same scenarios over many random draws: the segment count and accuracy hold.
    for seed in 100..140 {
        for (jump, periodic) in [
            (None, false),
            (Some((400, 2_000_000.0)), false),
            (Some((700, 7_777_000_000.0)), false),
            (Some((300, -1_000_000_000_000.0)), false),
            (None, true),
            (Some((500, 1_500_000.0)), true),
        ] {
            let s = Scenario {
                seed,
                jump,
                periodic,
                ..BASE
            };
            let st = s.streams();
            let fit = fit_clock(&st.dev, &st.rig, s.guess(), &SyncConfig::default())
                .unwrap_or_else(|e| panic!("seed {seed} {jump:?}: {e}"));
            let want = if jump.is_some() { 2 } else { 1 };
            assert_eq!(
                fit.segments.len(),
                want,
                "seed {seed} {jump:?} {periodic}: {fit:#?}"
            );
            for (i, g) in fit.segments.iter().enumerate() {
                assert!(g.residual_rms_ns < 40_000.0, "seed {seed}: {g:?}");
                if !g.ambiguous {
                    // Five standard errors of a least-squares line at its ends: the combined
                    // jitter (28 us) x sqrt(4 / n).
                    let bound = 5.0 * 20_000.0 * 2f64.sqrt() * (4.0 / g.ticks as f64).sqrt();
                    let err = worst_map_error(&s, &fit, i, i == 1);
                    assert!(err < bound, "seed {seed}: error {err} > {bound}: {g:?}");
                }
            }
        }
    }
}
