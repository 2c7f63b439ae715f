//! Dot positions: flashing dots per flash, and the random-dot kinematogram's simulation.

use super::Dot;
use crate::spec::{FlashingDotsSpec, Polarity, RandomDotsSpec, Rect};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::TAU;

fn sign(p: Polarity, rng: &mut ChaCha8Rng) -> f64 {
    match p {
        Polarity::White => 1.0,
        Polarity::Black => -1.0,
        Polarity::Mixed => {
            if rng.random_bool(0.5) {
                1.0
            } else {
                -1.0
            }
        }
    }
}

fn random_point(area: &Rect, rng: &mut ChaCha8Rng) -> (f64, f64) {
    let az = area.az_deg[0] + rng.random::<f64>() * (area.az_deg[1] - area.az_deg[0]);
    let el = area.el_deg[0] + rng.random::<f64>() * (area.el_deg[1] - area.el_deg[0]);
    (az, el)
}

/// The dots of flash `k` (a ChaCha stream per flash, so any flash is drawn directly).
pub fn flash_dots(spec: &FlashingDotsSpec, k: u64) -> Vec<Dot> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(k);
    (0..spec.n_dots)
        .map(|_| {
            let (az_deg, el_deg) = random_point(&spec.area, &mut rng);
            Dot {
                az_deg,
                el_deg,
                sign: sign(spec.polarity, &mut rng),
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
struct RdkDot {
    az: f64,
    el: f64,
    /// Direction of motion, radians.
    dir: f64,
    age: u32,
    sign: f64,
}

/// The kinematogram's state, advanced one update at a time from its seed; asking for an
/// earlier update restarts it, so any update is reproducible.
#[derive(Debug, Clone)]
pub struct RdkSim {
    spec: RandomDotsSpec,
    rng: ChaCha8Rng,
    step: u64,
    dots: Vec<RdkDot>,
    out: Vec<Dot>,
}

impl RdkSim {
    pub fn new(spec: &RandomDotsSpec) -> RdkSim {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let n = spec.n_dots();
        let mut dots = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut d = RdkSim::born(spec, &mut rng);
            if spec.lifetime_frames > 0 {
                d.age = rng.random_range(0..spec.lifetime_frames);
            }
            dots.push(d);
        }
        let mut sim = RdkSim {
            spec: spec.clone(),
            rng,
            step: 0,
            dots,
            out: Vec::new(),
        };
        sim.publish();
        sim
    }

    fn born(spec: &RandomDotsSpec, rng: &mut ChaCha8Rng) -> RdkDot {
        let (az, el) = random_point(&spec.area, rng);
        let signal = rng.random::<f64>() < spec.coherence;
        let noise_dir = rng.random::<f64>() * TAU;
        RdkDot {
            az,
            el,
            dir: if signal {
                spec.direction_deg.to_radians()
            } else {
                noise_dir
            },
            age: 0,
            sign: sign(spec.polarity, rng),
        }
    }

    fn publish(&mut self) {
        self.out.clear();
        self.out.extend(self.dots.iter().map(|d| Dot {
            az_deg: d.az,
            el_deg: d.el,
            sign: d.sign,
        }));
    }

    fn advance_one(&mut self) {
        let s = &self.spec;
        let step_deg = s.speed_dps / s.update_hz;
        let [a0, a1] = s.area.az_deg;
        let [e0, e1] = s.area.el_deg;
        for i in 0..self.dots.len() {
            let d = &mut self.dots[i];
            d.age += 1;
            if s.lifetime_frames > 0 && d.age >= s.lifetime_frames {
                self.dots[i] = RdkSim::born(s, &mut self.rng);
                continue;
            }
            d.az = a0 + (d.az + step_deg * d.dir.cos() - a0).rem_euclid(a1 - a0);
            d.el = e0 + (d.el + step_deg * d.dir.sin() - e0).rem_euclid(e1 - e0);
        }
        self.step += 1;
    }

    /// The dots after `step` updates.
    pub fn at_step(&mut self, step: u64) -> &[Dot] {
        if step < self.step {
            *self = RdkSim::new(&self.spec);
        }
        let moved = step > self.step;
        while self.step < step {
            self.advance_one();
        }
        if moved {
            self.publish();
        }
        &self.out
    }

    /// Directions (radians) of the dots' motion now; for tests of coherence.
    pub fn directions(&self) -> Vec<f64> {
        self.dots.iter().map(|d| d.dir).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdk(coherence: f64) -> RandomDotsSpec {
        RandomDotsSpec {
            seed: 3,
            area: Rect {
                az_deg: [-40.0, 40.0],
                el_deg: [-20.0, 20.0],
            },
            density_per_deg2: 0.1,
            dot_radius_deg: 1.0,
            direction_deg: 90.0,
            speed_dps: 30.0,
            coherence,
            lifetime_frames: 10,
            update_hz: 60.0,
            polarity: Polarity::Mixed,
            contrast: 1.0,
        }
    }

    #[test]
    fn coherence_sets_the_signal_fraction() {
        let s = rdk(0.5);
        let mut sim = RdkSim::new(&s);
        let mut signal = 0usize;
        let mut total = 0usize;
        for step in (0..200).step_by(10) {
            sim.at_step(step);
            let dirs = sim.directions();
            signal += dirs
                .iter()
                .filter(|&&d| (d - s.direction_deg.to_radians()).abs() < 1e-12)
                .count();
            total += dirs.len();
        }
        let frac = signal as f64 / total as f64;
        assert!((frac - 0.5).abs() < 0.05, "{frac}");
    }

    #[test]
    fn signal_dots_move_at_speed_and_rewinding_reproduces() {
        let s = RandomDotsSpec {
            lifetime_frames: 0,
            ..rdk(1.0)
        };
        let mut sim = RdkSim::new(&s);
        let a = sim.at_step(0).to_vec();
        let b = sim.at_step(1).to_vec();
        for (p, q) in a.iter().zip(&b) {
            let del = (q.el_deg - p.el_deg).rem_euclid(40.0);
            assert!((del - 0.5).abs() < 1e-9 && (q.az_deg - p.az_deg).abs() < 1e-9);
        }
        let later = sim.at_step(50).to_vec();
        assert_eq!(sim.at_step(1), &b[..]);
        assert_eq!(sim.at_step(50), &later[..]);
        assert!(later.iter().all(|d| (-20.0..20.0).contains(&d.el_deg)));
    }

    #[test]
    fn flashes_are_seeded_per_index() {
        let s = FlashingDotsSpec {
            seed: 1,
            area: Rect {
                az_deg: [0.0, 10.0],
                el_deg: [0.0, 5.0],
            },
            n_dots: 5,
            dot_radius_deg: 1.0,
            on_s: 0.1,
            off_s: 0.1,
            polarity: Polarity::Black,
            contrast: 1.0,
        };
        assert_eq!(flash_dots(&s, 3), flash_dots(&s, 3));
        assert_ne!(flash_dots(&s, 3), flash_dots(&s, 4));
        assert!(
            flash_dots(&s, 0)
                .iter()
                .all(|d| d.sign == -1.0 && (0.0..10.0).contains(&d.az_deg))
        );
    }
}
