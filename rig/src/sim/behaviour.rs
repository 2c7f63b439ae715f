//! What the mouse does: runs, gets aroused, dilates its pupil, moves its eye and blinks.
//!
//! Behaviour is integrated on a fixed substep from its own random stream, so it is a function of
//! time and seed alone: the imaging, eye-camera and treadmill streams, which query it at their
//! own rates and interleave, all see the same mouse. Recent substeps are kept in a ring, and a
//! query linearly interpolates between the two substeps around it.
//!
//! - Locomotion: a two-state (still / running) Markov process; a bout draws a target speed and
//!   the speed follows it smoothly, with jitter.
//! - Arousal: a slow Ornstein-Uhlenbeck process pushed up by running; the pupil radius is a
//!   sigmoid of it between the configured limits.
//! - Gaze: fixations with slow drift, and saccades (more frequent while running) that move the
//!   eye a few degrees within ~40 ms, pulled back towards straight ahead.
//! - Blinks: the lid closes and reopens over `blink_duration_s`.
//!
//! With a recording ([`Behaviour::with_recorded`]) running speed and pupil radius are the
//! recording's (`recorded_behaviour`), and the distance run integrates the recorded speed; gaze,
//! blinks and the random stream stay the model's.

use super::config::BehaviourConfig;
use super::random::normal;
use super::recorded_behaviour::RecordedBehaviour;
use crate::vocab::clock::RigTime;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The mouse at one instant.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub(crate) struct BehaviourSample {
    /// Running speed, cm/s.
    pub speed_cm_s: f64,
    /// Distance run since the start, cm.
    pub distance_cm: f64,
    /// Pupil radius, mm.
    pub pupil_radius_mm: f64,
    /// Pupil dilation in [-1, 1] (constricted to dilated), which modulates cortex.
    pub pupil_z: f64,
    /// Eye rotation: azimuth, deg (positive = looking right on the screen).
    pub gaze_azimuth_deg: f64,
    /// Eye rotation: elevation, deg (positive = looking up).
    pub gaze_elevation_deg: f64,
    /// Lid opening: 1 open, 0 closed.
    pub lid_opening: f64,
    /// Within a blink.
    pub blinking: bool,
}

const RING: usize = 8192;

pub(crate) struct Behaviour {
    cfg: BehaviourConfig,
    dt_s: f64,
    dt_ns: i64,
    rng: ChaCha8Rng,
    // Integrator state.
    running: bool,
    target_speed_cm_s: f64,
    run_smooth: f64,
    arousal: f64,
    gaze_target: (f64, f64),
    blink_left_s: f64,
    current: BehaviourSample,
    /// Samples at substeps `head - RING + 1 ..= head`, indexed by substep modulo RING.
    ring: Vec<BehaviourSample>,
    head: i64,
    /// Running and pupil replayed from a recording, and the eye camera's px per mm.
    recorded: Option<(RecordedBehaviour, f64)>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

impl Behaviour {
    pub(crate) fn new(cfg: &BehaviourConfig, dt_s: f64, rng: ChaCha8Rng) -> Behaviour {
        let mut me = Behaviour {
            cfg: cfg.clone(),
            dt_s,
            dt_ns: ((dt_s * 1e9).round() as i64).max(1),
            rng,
            running: false,
            target_speed_cm_s: 0.0,
            run_smooth: 0.0,
            arousal: 0.0,
            gaze_target: (0.0, 0.0),
            blink_left_s: 0.0,
            current: BehaviourSample::default(),
            ring: vec![BehaviourSample::default(); RING],
            head: 0,
            recorded: None,
        };
        me.current = me.sample_now();
        me.ring[0] = me.current;
        me
    }

    /// Running and pupil from `track` (pupil radius in eye-camera px, `px_per_mm` of them per
    /// mm) instead of the model's.
    pub(crate) fn with_recorded(mut self, track: RecordedBehaviour, px_per_mm: f64) -> Behaviour {
        self.recorded = Some((track, px_per_mm));
        self.current.distance_cm = 0.0;
        self.replace_recorded(0);
        self.ring[0] = self.current;
        self
    }

    /// Sets `current`'s running and pupil to the recording's at `t_ns`.
    fn replace_recorded(&mut self, t_ns: i64) {
        if let Some(r) = self.recorded_at(t_ns) {
            self.current.speed_cm_s = r.0;
            self.current.pupil_radius_mm = r.1;
            self.current.pupil_z = r.2;
        }
    }

    /// The recording's running speed (cm/s), pupil radius (mm) and dilation in [-1, 1] at
    /// `t_ns` (placed between the configured radius limits as the model's is).
    fn recorded_at(&self, t_ns: i64) -> Option<(f64, f64, f64)> {
        let (track, px_per_mm) = self.recorded.as_ref()?;
        let (pupil_px, speed) = track.at(t_ns);
        let radius_mm = pupil_px / px_per_mm;
        let [r_lo, r_hi] = self.cfg.pupil_radius_mm;
        let dilation = ((radius_mm - r_lo) / (r_hi - r_lo)).clamp(0.0, 1.0);
        Some((speed, radius_mm, 2.0 * dilation - 1.0))
    }

    /// The mouse at rig time `t` (clamped to the oldest kept sample for times long past).
    pub(crate) fn at(&mut self, t: RigTime) -> BehaviourSample {
        let ns = t.as_nanos().max(0);
        let i = ns / self.dt_ns;
        while self.head < i + 1 {
            self.step();
        }
        let oldest = self.head - RING as i64 + 1;
        if i < oldest {
            return self.ring[(oldest.max(0) as usize) % RING];
        }
        let frac = (ns - i * self.dt_ns) as f64 / self.dt_ns as f64;
        let a = self.ring[i as usize % RING];
        let b = self.ring[(i + 1) as usize % RING];
        let lerp = |x: f64, y: f64| x + frac * (y - x);
        let recorded = self.recorded_at(ns);
        let sample = BehaviourSample {
            speed_cm_s: lerp(a.speed_cm_s, b.speed_cm_s),
            distance_cm: lerp(a.distance_cm, b.distance_cm),
            pupil_radius_mm: lerp(a.pupil_radius_mm, b.pupil_radius_mm),
            pupil_z: lerp(a.pupil_z, b.pupil_z),
            gaze_azimuth_deg: lerp(a.gaze_azimuth_deg, b.gaze_azimuth_deg),
            gaze_elevation_deg: lerp(a.gaze_elevation_deg, b.gaze_elevation_deg),
            lid_opening: lerp(a.lid_opening, b.lid_opening),
            blinking: a.blinking || b.blinking,
        };
        match recorded {
            // Exactly the recording's at `t`, not a blend of the substeps around it.
            Some((speed_cm_s, pupil_radius_mm, pupil_z)) => BehaviourSample {
                speed_cm_s,
                pupil_radius_mm,
                pupil_z,
                ..sample
            },
            None => sample,
        }
    }

    fn sample_now(&self) -> BehaviourSample {
        let [r_lo, r_hi] = self.cfg.pupil_radius_mm;
        let dilation = sigmoid(self.arousal + 2.0 * self.run_smooth - 1.0);
        let blink_phase = if self.blink_left_s > 0.0 {
            1.0 - self.blink_left_s / self.cfg.blink_duration_s
        } else {
            0.0
        };
        BehaviourSample {
            pupil_radius_mm: r_lo + (r_hi - r_lo) * dilation,
            pupil_z: 2.0 * dilation - 1.0,
            lid_opening: 1.0 - (std::f64::consts::PI * blink_phase).sin(),
            blinking: self.blink_left_s > 0.0,
            ..self.current
        }
    }

    fn step(&mut self) {
        let dt = self.dt_s;
        let c = &self.cfg;
        let rng = &mut self.rng;
        // Locomotion.
        let switch_rate = if self.running {
            c.run_stop_rate_hz
        } else {
            c.run_start_rate_hz
        };
        if rng.random::<f64>() < switch_rate * dt {
            self.running = !self.running;
            self.target_speed_cm_s = if self.running {
                c.run_speed_cm_s * (0.4 * normal(rng)).exp()
            } else {
                0.0
            };
        }
        let mut speed = self.current.speed_cm_s;
        let jitter = if self.running {
            0.15 * self.target_speed_cm_s
        } else {
            0.0
        };
        speed += (self.target_speed_cm_s - speed) * dt / c.run_speed_tau_s
            + jitter * (2.0 * dt / c.run_speed_tau_s).sqrt() * normal(rng);
        speed = speed.max(0.0);
        self.run_smooth += (f64::from(self.running as u8) - self.run_smooth) * dt / 2.0;
        // Arousal: unit-variance OU.
        self.arousal += -self.arousal * dt / c.arousal_tau_s
            + (2.0 * dt / c.arousal_tau_s).sqrt() * normal(rng);
        // Gaze: saccades re-target, the eye follows quickly, fixations drift slowly.
        let saccade_rate = c.saccade_rate_hz * if self.running { 2.0 } else { 1.0 };
        if rng.random::<f64>() < saccade_rate * dt {
            let (ta, te) = self.gaze_target;
            let a = c.saccade_amplitude_deg;
            self.gaze_target = (0.7 * ta + a * normal(rng), 0.7 * te + 0.4 * a * normal(rng));
        }
        let drift = 0.3 * (2.0 * dt).sqrt();
        let m = c.gaze_max_deg;
        self.gaze_target = (
            (self.gaze_target.0 + drift * normal(rng)).clamp(-m, m),
            (self.gaze_target.1 + drift * normal(rng)).clamp(-m, m),
        );
        let follow = 1.0 - (-dt / 0.012).exp();
        let gaze_az = self.current.gaze_azimuth_deg
            + follow * (self.gaze_target.0 - self.current.gaze_azimuth_deg);
        let gaze_el = self.current.gaze_elevation_deg
            + follow * (self.gaze_target.1 - self.current.gaze_elevation_deg);
        // Blinks.
        if self.blink_left_s > 0.0 {
            self.blink_left_s = (self.blink_left_s - dt).max(0.0);
        } else if rng.random::<f64>() < c.blink_rate_hz * dt {
            self.blink_left_s = c.blink_duration_s;
        }
        self.current = BehaviourSample {
            speed_cm_s: speed,
            distance_cm: self.current.distance_cm + speed * dt,
            gaze_azimuth_deg: gaze_az,
            gaze_elevation_deg: gaze_el,
            ..self.current
        };
        self.current = self.sample_now();
        if self.recorded.is_some() {
            self.replace_recorded((self.head + 1) * self.dt_ns);
            self.current.distance_cm =
                self.ring[self.head as usize % RING].distance_cm + self.current.speed_cm_s * dt;
        }
        self.head += 1;
        self.ring[self.head as usize % RING] = self.current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::{Stream, stream};

    fn run(cfg: &BehaviourConfig, seconds: f64) -> Vec<BehaviourSample> {
        let mut b = Behaviour::new(cfg, 0.002, stream(11, Stream::Behaviour));
        (0..(seconds * 100.0) as i64)
            .map(|k| b.at(RigTime::from_nanos(k * 10_000_000)))
            .collect()
    }

    #[test]
    fn the_mouse_runs_and_rests_and_its_pupil_follows() {
        let cfg = BehaviourConfig::default();
        let s = run(&cfg, 600.0);
        let running: Vec<&BehaviourSample> = s.iter().filter(|b| b.speed_cm_s > 5.0).collect();
        let still: Vec<&BehaviourSample> = s.iter().filter(|b| b.speed_cm_s < 0.5).collect();
        assert!(running.len() > s.len() / 10 && still.len() > s.len() / 10);
        let mean = |v: &[&BehaviourSample]| {
            v.iter().map(|b| b.pupil_radius_mm).sum::<f64>() / v.len() as f64
        };
        assert!(
            mean(&running) > mean(&still) + 0.05,
            "pupil dilates with running"
        );
        let [lo, hi] = cfg.pupil_radius_mm;
        assert!(s.iter().all(|b| (lo..=hi).contains(&b.pupil_radius_mm)));
        assert!(
            s.iter()
                .all(|b| b.gaze_azimuth_deg.abs() <= cfg.gaze_max_deg)
        );
        assert!(s.iter().any(|b| b.blinking) && s.iter().any(|b| b.lid_opening < 0.1));
        // Distance is the integral of speed.
        let integral: f64 = s.iter().map(|b| b.speed_cm_s * 0.01).sum();
        assert!((integral - s[s.len() - 1].distance_cm).abs() < 0.01 * integral + 1.0);
    }

    #[test]
    fn queries_at_any_rate_see_the_same_mouse() {
        let cfg = BehaviourConfig::default();
        let mut fine = Behaviour::new(&cfg, 0.002, stream(4, Stream::Behaviour));
        let mut coarse = Behaviour::new(&cfg, 0.002, stream(4, Stream::Behaviour));
        let mut last = BehaviourSample::default();
        for k in 0..20_000 {
            last = fine.at(RigTime::from_nanos(k * 1_000_000));
        }
        let b = coarse.at(RigTime::from_nanos(19_999 * 1_000_000));
        assert_eq!(last, b);
        // And a slightly older query is answered from the ring.
        assert_eq!(
            fine.at(RigTime::from_nanos(19_000 * 1_000_000)),
            coarse.at(RigTime::from_nanos(19_000 * 1_000_000))
        );
    }
}
