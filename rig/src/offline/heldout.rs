//! The held-out evaluation of `twinloop bench loop`: a set of clips no arm ever shows (checked
//! by content against the pool), on which the twin's predictions are scored against the
//! simulated cells' noise-free rates ([`NoiseFreeCells`]), so the score measures the twin and
//! not trial noise, and cannot be raised by choosing what to show.
//!
//! The set (216 clips of the trial's length): 80 naturalistic movies — isotropic 1/f noise
//! (amplitude exponents 1 and 1.5, natural images' range) panned at 5–40 deg/s in random
//! directions at contrasts 0.3–1 (no natural movie file ships with the repository, so these
//! stand in for one: their spatial statistics are natural images', their motion a gaze drift's),
//! 40 clips of refreshed pink noise, and 96 full-field drifting gratings at six contrasts
//! (0.05–1, where the simulated cells saturate at 0.1–0.4) in 8 directions between the pool's,
//! at two spatial frequencies.

use super::design_bench::DisplayFrames;
use crate::sim::NoiseFreeCells;
use crate::stages::decide::design::designer::{BEHAVIOUR_DIMS, Designer};
use crate::stages::decide::design::pool::CandidatePool;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::Arc;
use twinloop_stimulus::spec::{MovingPinkNoiseSpec, PinkNoiseSpec};
use twinloop_stimulus::{LibraryEntry, StimulusId, StimulusSpec};

/// Response bins per held-out clip (the twin's frames are averaged into them, as the truth is).
pub const BINS: usize = 10;

/// Why the held-out set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeldoutError {
    #[error(
        "held-out clip {index} (`{name}`) is also in the candidate pool or test block: the held-out set must never be shown; fix: change its seed or parameters"
    )]
    Shown { index: usize, name: String },
    #[error(
        "the twin's clips have {frames} frames, fewer than the {BINS} held-out bins; fix: lengthen trials.stimulus_s"
    )]
    TooShort { frames: usize },
}

/// Content key of a stimulus: its full specification, so two entries with the same key render
/// the same pixels (ids are positions and say nothing about content).
pub fn content_key(spec: &StimulusSpec) -> String {
    serde_json::to_string(spec).unwrap_or_else(|_| format!("{spec:?}"))
}

/// The held-out clips, ids from 0.
pub fn heldout_entries() -> Vec<LibraryEntry> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x4e1d_0075);
    let mut out = Vec::new();
    let mut push = |name: String, spec: StimulusSpec| {
        out.push(LibraryEntry {
            id: StimulusId(out.len() as u32),
            name,
            spec,
        });
    };
    for k in 0..80u64 {
        let exponent = if k % 2 == 0 { 1.0 } else { 1.5 };
        let direction_deg = rng.random_range(0.0..360.0);
        let speed_dps = rng.random_range(5.0..40.0);
        let contrast = rng.random_range(0.3..1.0);
        push(
            format!("naturalistic movie {k}"),
            StimulusSpec::MovingPinkNoise(MovingPinkNoiseSpec {
                seed: 5000 + k,
                exponent,
                contrast,
                texel_deg: 2.0,
                size_texels: 64,
                direction_deg,
                speed_dps,
                orientation_kappa: 0.0,
            }),
        );
    }
    for k in 0..40u64 {
        push(
            format!("pink noise {k}"),
            StimulusSpec::PinkNoise(PinkNoiseSpec {
                seed: 6000 + k,
                exponent: 1.0,
                contrast: [0.25, 0.5, 1.0][k as usize % 3],
                texel_deg: 2.0,
                size_texels: 64,
                refresh_hz: [2.0, 4.0][k as usize % 2],
            }),
        );
    }
    for contrast in [0.05, 0.1, 0.2, 0.4, 0.7, 1.0] {
        for sf_cpd in [0.025, 0.05] {
            for k in 0..8 {
                let dir = 22.5 + 45.0 * f64::from(k);
                push(
                    format!("grating dir {dir} sf {sf_cpd} contrast {contrast}"),
                    StimulusSpec::grating(dir, sf_cpd, 2.0, contrast, 0.0),
                );
            }
        }
    }
    out
}

/// Errors naming the first held-out entry whose content the pool (candidates or tests) holds.
pub fn check_disjoint(heldout: &[LibraryEntry], pool: &[LibraryEntry]) -> Result<(), HeldoutError> {
    let shown: BTreeSet<String> = pool.iter().map(|e| content_key(&e.spec)).collect();
    match heldout
        .iter()
        .enumerate()
        .find(|(_, e)| shown.contains(&content_key(&e.spec)))
    {
        Some((index, e)) => Err(HeldoutError::Shown {
            index,
            name: e.name.clone(),
        }),
        None => Ok(()),
    }
}

/// One mouse's held-out truth and the set's features on the arm's core.
pub struct HeldoutEval {
    /// The held-out clips through the core the readouts read (no arm draws from it).
    pool: Arc<CandidatePool>,
    /// Noise-free rates, Hz, `[clip][bin][cell]`.
    truth: Vec<f64>,
    cells: usize,
}

impl HeldoutEval {
    /// `display` holds `pool`'s clips at the twin rate (what the mouse would see).
    pub fn new(
        pool: Arc<CandidatePool>,
        display: &DisplayFrames,
        cells: &mut NoiseFreeCells,
    ) -> Result<HeldoutEval, HeldoutError> {
        let frames = pool.frames();
        if frames < BINS {
            return Err(HeldoutError::TooShort { frames });
        }
        let n = cells.cells();
        let hz = pool.twin_hz();
        let mut truth = vec![0.0f64; pool.len() * BINS * n];
        for e in 0..pool.len() {
            let per_frame = cells.binned_rates(display.clip(e), hz, hz, frames);
            for (f, row) in per_frame.chunks_exact(n.max(1)).enumerate() {
                let b = f * BINS / frames;
                let dst = &mut truth[(e * BINS + b) * n..(e * BINS + b + 1) * n];
                for (acc, &r) in dst.iter_mut().zip(row) {
                    *acc += f64::from(r) / bin_len(b, frames) as f64;
                }
            }
        }
        Ok(HeldoutEval {
            pool,
            truth,
            cells: n,
        })
    }

    pub fn clips(&self) -> usize {
        self.pool.len()
    }

    /// The noise-free rates, Hz, `[clip][bin][cell]`.
    pub fn truth(&self) -> &[f64] {
        &self.truth
    }

    /// Mean over cells of the correlation, over clips x bins, between the twin's predicted
    /// rate (posterior mean, neutral behaviour) and the noise-free rate; `NaN` before the
    /// readouts are placed. Cells whose noise-free rate never varies are left out; a cell whose
    /// prediction is constant scores 0.
    pub fn accuracy(&self, designer: &Designer) -> f64 {
        let Some(post) = designer.posterior() else {
            return f64::NAN;
        };
        let n = self.cells;
        let positions = designer.positions();
        if post.units() != n || positions.len() != n {
            return f64::NAN;
        }
        let core = self.pool.core();
        let c = core.channels();
        let d = post.dim();
        let frames = self.pool.frames();
        let mut xs = vec![0.0f32; n * d];
        for x in xs.chunks_exact_mut(d) {
            x[c + BEHAVIOUR_DIMS] = 1.0;
        }
        let mut rates = Vec::with_capacity(n);
        let mut pred = vec![0.0f64; self.truth.len()];
        for e in 0..self.pool.len() {
            for f in 0..frames {
                let map = self.pool.feature_map(e, f);
                for (u, x) in xs.chunks_exact_mut(d).enumerate() {
                    let (gr, gc) = positions[u];
                    core.sample(map, gr, gc, &mut x[..c]);
                }
                post.predict_rates(&xs, &mut rates);
                let b = f * BINS / frames;
                let w = 1.0 / bin_len(b, frames) as f64;
                let dst = &mut pred[(e * BINS + b) * n..(e * BINS + b + 1) * n];
                for (acc, &r) in dst.iter_mut().zip(&rates) {
                    *acc += r * w;
                }
            }
        }
        let points = self.pool.len() * BINS;
        let (mut total, mut counted) = (0.0, 0usize);
        let mut t = vec![0.0; points];
        let mut p = vec![0.0; points];
        for u in 0..n {
            for k in 0..points {
                t[k] = self.truth[k * n + u];
                p[k] = pred[k * n + u];
            }
            if variance(&t) <= 0.0 {
                continue;
            }
            // A constant or undefined prediction explains nothing: it scores 0, not a skip.
            total += twinloop_model::metrics::pearson(&t, &p)
                .ok()
                .filter(|r| r.is_finite())
                .unwrap_or(0.0);
            counted += 1;
        }
        if counted == 0 {
            f64::NAN
        } else {
            total / counted as f64
        }
    }
}

fn variance(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64
}

/// Twin frames in bin `b` of a clip of `frames` frames (`f * BINS / frames == b`).
fn bin_len(b: usize, frames: usize) -> usize {
    (0..frames)
        .filter(|f| f * BINS / frames == b)
        .count()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::design_bench::{Arm, DisplayFrames, LoopExperiment};
    use crate::stages::decide::design::{
        CandidatePool, DesignConfig, Objective, default_candidates, default_tests,
    };
    // The design tests' view and energy bank: the pools here are built as theirs are.
    use crate::stages::decide::design::tests::{HZ, energy, view};

    #[test]
    fn the_heldout_set_is_large_varied_and_not_in_the_pool() {
        let set = heldout_entries();
        assert!(set.len() >= 200, "{} clips", set.len());
        let kinds: BTreeSet<&str> = set.iter().map(|e| e.spec.kind()).collect();
        assert!(
            kinds.is_superset(&["grating", "pink_noise", "moving_pink_noise"].into()),
            "{kinds:?}"
        );
        let contrasts: BTreeSet<u64> = set
            .iter()
            .filter_map(|e| match &e.spec {
                StimulusSpec::Grating(g) => Some((g.contrast * 1000.0) as u64),
                _ => None,
            })
            .collect();
        assert!(contrasts.len() >= 5, "grating contrasts {contrasts:?}");
        let keys: BTreeSet<String> = set.iter().map(|e| content_key(&e.spec)).collect();
        assert_eq!(keys.len(), set.len(), "held-out clips repeat");
        let candidates = default_candidates();
        let mut pool = default_tests(candidates.len() as u32);
        pool.extend(candidates);
        check_disjoint(&set, &pool).expect("disjoint from the default pool and test block");
        // Adversarial: a pool that shows one held-out clip (under another id and name).
        let mut leaky = pool.clone();
        leaky.push(LibraryEntry {
            id: StimulusId(9999),
            name: "innocent".into(),
            spec: set[150].spec.clone(),
        });
        let err = check_disjoint(&set, &leaky).expect_err("the leak is found");
        assert!(err.to_string().contains(&set[150].name), "{err}");
    }

    /// Every arm of a small run shows only pool stimuli, none of them held out, and the
    /// held-out score is defined once the readouts are placed.
    #[test]
    fn no_arm_shows_a_heldout_clip() {
        let candidates = default_candidates();
        let tests = default_tests(candidates.len() as u32);
        let pool = Arc::new(
            CandidatePool::build(candidates, tests, view(), energy(), 2.0, HZ).expect("pool"),
        );
        let held = Arc::new(
            CandidatePool::build(heldout_entries(), Vec::new(), view(), energy(), 2.0, HZ)
                .expect("held-out pool"),
        );
        let display = DisplayFrames::render(&pool, 2.0, HZ);
        let held_display = DisplayFrames::render(&held, 2.0, HZ);
        let experiment = LoopExperiment {
            trials: 30,
            neurons: 12,
            stimulus_s: 2.0,
            gray_s: 1.0,
            frame_rate_hz: HZ,
            display_hz: HZ,
            design: DesignConfig {
                warmup_trials: 8,
                ..DesignConfig::default()
            },
            twin_refit: None,
            oracle: false,
            still_mouse: false,
        };
        let mouse = experiment.mouse(view(), 4).expect("mouse");
        let eval = HeldoutEval::new(
            Arc::clone(&held),
            &held_display,
            &mut mouse.noise_free_cells(),
        )
        .expect("eval");
        assert!(eval.truth().iter().all(|r| r.is_finite() && *r >= 0.0));
        for (name, objective, random_share) in [
            ("random", Objective::Random, 0.5),
            ("adaptive", Objective::InfoGain, 0.5),
            ("adaptive-share0", Objective::InfoGain, 0.0),
        ] {
            let arm = Arm {
                name: name.into(),
                objective,
                random_share,
            };
            let run = experiment
                .run(&pool, &display, Some(&eval), 4, &arm)
                .expect("run");
            assert!(run.shown.iter().all(|&e| e < pool.len()));
            let shown: Vec<LibraryEntry> =
                run.shown.iter().map(|&e| pool.entry(e).clone()).collect();
            check_disjoint(held.entries(), &shown).expect("no held-out clip shown");
            let last = run.curve.last().expect("curve");
            assert!(last.heldout_r.is_finite(), "{name}: {last:?}");
        }
    }
}
