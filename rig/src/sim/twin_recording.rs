//! Recordings of simulated mice for fitting and scoring the twin (`twinloop bench transfer`):
//! random natural-like and parametric stimuli shown on the simulator's view, the brain observed
//! through its spike counts per imaging frame (the microscope and imaging pipeline are left out;
//! their fidelity is measured by the imaging benchmarks), and the true expected counts kept as
//! ground truth.
//!
//! Row `n` is the imaging frame ending at `(n + 1) / rate`: its stimulus is the frame shown at
//! `n / rate` (one display frame per imaging frame), its response the spikes in between, its
//! behaviour the gaze (perspective) and pupil and running (modulation) at `n / rate`, each
//! z-scored over the recording.

use rand::{Rng, SeedableRng};
use twinloop_model::train::{BehaviourStandardisation, RecordedTrial, Recording, RecordingMeta};
use twinloop_stimulus::spec::{MovingPinkNoiseSpec, Rect, SparseNoiseSpec};
use twinloop_stimulus::{Prepared, Projection, StimulusSpec, ViewGeometry, cpu};

use super::{SimConfig, SimError, SimGeometry, SimMouse};
use crate::vocab::clock::RigTime;

/// What to record.
#[derive(Debug, Clone)]
pub struct SimRecordingPlan {
    /// The mouse (neurons, tuning, behaviour) comes from this seed.
    pub mouse_seed: u64,
    pub neurons: usize,
    /// The stimulus sequence comes from this seed (a test set uses another).
    pub stimulus_seed: u64,
    pub minutes: f64,
    pub stimulus_s: f64,
    pub gray_s: f64,
    pub rate_hz: f64,
}

/// A recording and the true expected spike counts per frame `[T, U]`.
pub struct SimRecording {
    pub recording: Recording,
    pub truth: Vec<f32>,
}

/// A random stimulus: drifting gratings, directional pink noise (natural-like), sparse noise.
pub fn random_stimulus(rng: &mut impl Rng) -> (String, StimulusSpec) {
    match rng.random_range(0..10) {
        0..=3 => {
            let dir = rng.random_range(0.0..360.0f64);
            let sf = rng.random_range(0.02..0.12f64);
            let tf = rng.random_range(0.5..4.0f64);
            (
                format!("grating dir {dir:.0} sf {sf:.3} tf {tf:.2}"),
                StimulusSpec::grating(dir, sf, tf, 1.0, rng.random_range(0.0..360.0)),
            )
        }
        4..=8 => {
            let seed = rng.random_range(0..1_000_000u64);
            let dir = rng.random_range(0.0..360.0f64);
            (
                format!("pink noise {seed} dir {dir:.0}"),
                StimulusSpec::MovingPinkNoise(MovingPinkNoiseSpec {
                    seed,
                    exponent: 1.0,
                    contrast: 1.0,
                    texel_deg: 2.0,
                    size_texels: 64,
                    direction_deg: dir,
                    speed_dps: rng.random_range(5.0..40.0),
                    orientation_kappa: rng.random_range(0.0..3.0),
                }),
            )
        }
        _ => {
            let seed = rng.random_range(0..1_000_000u64);
            (
                format!("sparse noise {seed}"),
                StimulusSpec::SparseNoise(SparseNoiseSpec {
                    seed,
                    grid: Rect {
                        az_deg: [-50.0, 50.0],
                        el_deg: [-30.0, 30.0],
                    },
                    square_deg: 10.0,
                    frame_s: 0.2,
                    squares_per_frame: 6,
                    contrast: 1.0,
                }),
            )
        }
    }
}

fn zscore(values: &mut [f32], cols: usize) -> Vec<(f64, f64)> {
    let rows = values.len() / cols.max(1);
    (0..cols)
        .map(|c| {
            let col: Vec<f64> = (0..rows).map(|r| f64::from(values[r * cols + c])).collect();
            let m = col.iter().sum::<f64>() / rows.max(1) as f64;
            let sd = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / rows.max(1) as f64).sqrt();
            let sd = if sd > 1e-9 { sd } else { 1.0 };
            for r in 0..rows {
                values[r * cols + c] = ((f64::from(values[r * cols + c]) - m) / sd) as f32;
            }
            (m, sd)
        })
        .collect()
}

/// Records `plan` on the simulated mouse seen through `view` (the twin's stimulus size).
pub fn record(plan: &SimRecordingPlan, view: ViewGeometry) -> Result<SimRecording, SimError> {
    let cfg = SimConfig {
        seed: plan.mouse_seed,
        neurons: plan.neurons,
        ..SimConfig::default()
    };
    let geom = SimGeometry {
        imaging_width: 256,
        imaging_height: 256,
        imaging_rate_hz: plan.rate_hz,
        view_width: view.width,
        view_height: view.height,
        view_azimuth_deg: view.azimuth_deg,
        view_elevation_deg: view.elevation_deg,
        ..SimGeometry::default()
    };
    let mut mouse = SimMouse::new(&cfg, &geom)?;
    let u = mouse.cells().len();
    let dt = 1.0 / plan.rate_hz;
    let total = (plan.minutes * 60.0 * plan.rate_hz).round() as usize;
    let per_trial = (plan.stimulus_s * plan.rate_hz).round().max(1.0) as usize;
    let per_gray = (plan.gray_s * plan.rate_hz).round() as usize;
    let projection = Projection::Linear(view);
    let px = view.pixels();
    let gray = vec![cpu::MEAN_GRAY; px];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.stimulus_seed);
    let mut frames = Vec::with_capacity(total * px);
    let mut perspective = Vec::with_capacity(total * 2);
    let mut modulation = Vec::with_capacity(total * 2);
    let mut responses = Vec::with_capacity(total * u);
    let mut truth = Vec::with_capacity(total * u);
    let mut trials = Vec::new();
    let (mut spikes, mut rates) = (vec![0f32; u], vec![0f32; u]);
    let mut frame = vec![0u8; px];
    let mut n = 0usize;
    // Start on the brain's clock at 1 s, after its state has settled on gray.
    let t0 = 1.0;
    mouse.show(&gray, RigTime::from_secs_f64(0.0));
    while n < total {
        let (name, spec) = random_stimulus(&mut rng);
        let mut prepared = Prepared::new(&spec).ok();
        trials.push(RecordedTrial {
            start: n,
            frames: per_trial.min(total - n),
            stimulus: name,
        });
        for k in 0..per_trial + per_gray {
            if n >= total {
                break;
            }
            match (&mut prepared, k < per_trial) {
                (Some(p), true) => {
                    cpu::render_content(&p.frame(k as f64 * dt), &projection, &mut frame)
                }
                _ => frame.copy_from_slice(&gray),
            }
            let t = RigTime::from_secs_f64(t0 + n as f64 * dt);
            mouse.show(&frame, t);
            let (az, el) = mouse.gaze_deg(t);
            let (speed, pupil) = mouse.neural_frame(
                RigTime::from_secs_f64(t0 + (n + 1) as f64 * dt),
                &mut spikes,
                &mut rates,
            );
            frames.extend_from_slice(&frame);
            perspective.extend([az as f32, el as f32]);
            modulation.extend([pupil as f32, speed as f32]);
            responses.extend_from_slice(&spikes);
            truth.extend(rates.iter().map(|r| r * dt as f32));
            n += 1;
        }
    }
    let p = zscore(&mut perspective, 2);
    let m = zscore(&mut modulation, 2);
    let recording = Recording {
        height: view.height,
        width: view.width,
        frames,
        perspective,
        modulation,
        responses,
        meta: RecordingMeta {
            frame_hz: plan.rate_hz,
            unit_ids: (0..u as u32).collect(),
            segments: std::iter::once(0..total).collect(),
            trials,
            standardisation: Some(BehaviourStandardisation {
                perspective_mean: [p[0].0, p[1].0],
                perspective_sd: [p[0].1, p[1].1],
                modulation_mean: [m[0].0, m[1].0],
                modulation_sd: [m[0].1, m[1].1],
            }),
        },
    };
    Ok(SimRecording { recording, truth })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_aligned_standardised_and_true_to_the_brain() {
        let view = ViewGeometry {
            width: 64,
            height: 36,
            azimuth_deg: (-60.0, 60.0),
            elevation_deg: (-35.0, 35.0),
        };
        let plan = SimRecordingPlan {
            mouse_seed: 3,
            neurons: 30,
            stimulus_seed: 9,
            minutes: 0.5,
            stimulus_s: 2.0,
            gray_s: 0.5,
            rate_hz: 30.0,
        };
        let r = record(&plan, view).unwrap();
        let rec = &r.recording;
        rec.validate().unwrap();
        assert_eq!(rec.len(), 900);
        assert_eq!(rec.units(), 30);
        // Trials of 60 frames, then 15 gray frames.
        assert_eq!(rec.meta.trials[0].frames, 60);
        assert_eq!(rec.meta.trials[1].start, 75);
        assert!(rec.frame(70).iter().all(|&p| p == cpu::MEAN_GRAY));
        assert!(rec.frame(30).iter().any(|&p| p != cpu::MEAN_GRAY));
        // Behaviour z-scored.
        for col in 0..2 {
            let v: Vec<f64> = (0..rec.len())
                .map(|t| f64::from(rec.perspective[2 * t + col]))
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!(
                m.abs() < 1e-4 && (sd - 1.0).abs() < 1e-3,
                "gaze column {col}: {m} {sd}"
            );
        }
        // Spike counts scatter around the true expected counts: totals agree within Poisson
        // error, and the truth follows the stimulus (it changes within a trial).
        let spikes: f64 = rec.responses.iter().map(|&v| f64::from(v)).sum();
        let expected: f64 = r.truth.iter().map(|&v| f64::from(v)).sum();
        assert!(expected > 100.0, "the mice fire: {expected}");
        assert!(
            (spikes - expected).abs() < 5.0 * expected.sqrt(),
            "{spikes} spikes vs {expected} expected"
        );
        let unit0: Vec<f32> = (0..rec.len()).map(|t| r.truth[t * 30]).collect();
        assert!(
            unit0.iter().cloned().fold(0.0, f32::max)
                > 1.5 * unit0.iter().cloned().fold(f32::MAX, f32::min)
        );
    }
}
