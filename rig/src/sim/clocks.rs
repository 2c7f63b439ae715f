//! The simulated rig's clocks: each device timestamps its samples on its own clock (offset,
//! drift, jitter, an optional jump), and a master sync pulse train is seen by the rig and by
//! every device, with missing and spurious ticks. The simulator's ground truth stays on the rig
//! clock; only what goes on the wire is stamped on device clocks.
//!
//! A device clock reads `t_dev = offset + (1 + drift_ppm · 1e-6) · t_rig (+ step after the
//! jump) + N(0, jitter)`: a positive `drift_ppm` runs fast, so the fitted rate (rig seconds per
//! device second) is `1 / (1 + drift_ppm · 1e-6)` and its reported drift ≈ `−drift_ppm`.

use super::SimError;
use super::random::{normal, uniform};
use crate::vocab::protocol::ClockDomain;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One device's clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceClockConfig {
    /// Device time at rig time 0, s.
    pub offset_s: f64,
    /// How fast the device clock runs, ppm (positive: fast).
    pub drift_ppm: f64,
    /// S.d. of each timestamp's jitter (samples and ticks), µs.
    pub jitter_us: f64,
}

impl Default for DeviceClockConfig {
    fn default() -> Self {
        DeviceClockConfig {
            offset_s: 0.0,
            drift_ppm: 0.0,
            jitter_us: 0.0,
        }
    }
}

/// A device clock that steps once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockJumpConfig {
    /// `two_photon`, `eye_camera`, `treadmill` or `photodiode`.
    pub device: ClockDomain,
    /// Rig time of the step, s.
    pub at_s: f64,
    /// Size of the step, ms (positive: the device clock jumps forward).
    pub step_ms: f64,
}

/// `[sim.clocks]`: the devices' clocks and the sync pulse train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimClocksConfig {
    /// Off: every stream is stamped on the rig clock and no clock ticks are sent.
    pub enabled: bool,
    /// Rate of the master sync pulses, Hz.
    pub tick_hz: f64,
    /// Fraction of pulses each device misses (the first pulse is always seen).
    pub missing_fraction: f64,
    /// Rate of spurious ticks per device (glitches at random times), Hz.
    pub spurious_hz: f64,
    /// Jitter of the rig's own tick timestamps, µs.
    pub rig_jitter_us: f64,
    pub two_photon: DeviceClockConfig,
    pub eye_camera: DeviceClockConfig,
    pub treadmill: DeviceClockConfig,
    pub photodiode: DeviceClockConfig,
    /// One device clock that steps during the session.
    pub jump: Option<ClockJumpConfig>,
    /// A device whose ticks stop at this rig time, s (tests of bad input).
    pub ticks_stop: Option<ClockStopConfig>,
}

/// A device whose ticks stop (the device keeps sending samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockStopConfig {
    pub device: ClockDomain,
    pub at_s: f64,
}

impl Default for SimClocksConfig {
    fn default() -> Self {
        SimClocksConfig {
            enabled: false,
            tick_hz: 1.0,
            missing_fraction: 0.0,
            spurious_hz: 0.0,
            rig_jitter_us: 0.0,
            two_photon: DeviceClockConfig::default(),
            eye_camera: DeviceClockConfig::default(),
            treadmill: DeviceClockConfig::default(),
            photodiode: DeviceClockConfig::default(),
            jump: None,
            ticks_stop: None,
        }
    }
}

impl SimClocksConfig {
    pub fn device(&self, d: ClockDomain) -> Option<&DeviceClockConfig> {
        match d {
            ClockDomain::Rig => None,
            ClockDomain::TwoPhoton => Some(&self.two_photon),
            ClockDomain::EyeCamera => Some(&self.eye_camera),
            ClockDomain::Treadmill => Some(&self.treadmill),
            ClockDomain::Photodiode => Some(&self.photodiode),
        }
    }

    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &'static str, reason: String| SimError::InvalidConfig { field, reason };
        if !(self.tick_hz.is_finite() && self.tick_hz > 0.0 && self.tick_hz <= 1000.0) {
            return Err(bad(
                "clocks.tick_hz",
                format!("must be in (0, 1000] Hz, got {}", self.tick_hz),
            ));
        }
        if !(0.0..0.5).contains(&self.missing_fraction) {
            return Err(bad(
                "clocks.missing_fraction",
                format!("must be in [0, 0.5), got {}", self.missing_fraction),
            ));
        }
        if !(self.spurious_hz.is_finite() && self.spurious_hz >= 0.0) {
            return Err(bad(
                "clocks.spurious_hz",
                format!("must be >= 0, got {}", self.spurious_hz),
            ));
        }
        for d in ClockDomain::DEVICES {
            let Some(c) = self.device(d) else { continue };
            let ok = c.offset_s.is_finite()
                && c.drift_ppm.is_finite()
                && c.drift_ppm.abs() <= 1000.0
                && c.jitter_us.is_finite()
                && (0.0..=10_000.0).contains(&c.jitter_us);
            if !ok {
                return Err(bad(
                    "clocks.<device>",
                    format!(
                        "{}: offset_s finite, |drift_ppm| <= 1000, 0 <= jitter_us <= 10000; got {c:?}",
                        d.name()
                    ),
                ));
            }
        }
        if let Some(j) = &self.jump
            && (j.device == ClockDomain::Rig || !j.at_s.is_finite() || !j.step_ms.is_finite())
        {
            return Err(bad(
                "clocks.jump",
                "needs a device domain and finite at_s, step_ms".into(),
            ));
        }
        Ok(())
    }
}

/// One clock tick on the wire: which clock saw it and when, on that clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// Rig time the tick happened (orders emission).
    pub t_rig_ns: i64,
    pub domain: ClockDomain,
    pub t_ns: i64,
}

/// The devices' clocks and the pulse train, advanced in rig time.
pub struct SimClocks {
    cfg: SimClocksConfig,
    rng: ChaCha8Rng,
    next_pulse: i64,
    /// Next spurious tick per device, rig ns.
    next_spurious: [f64; 4],
}

impl SimClocks {
    pub fn new(cfg: &SimClocksConfig, seed: u64) -> SimClocks {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(0xc10c);
        let mut next_spurious = [f64::INFINITY; 4];
        if cfg.enabled && cfg.spurious_hz > 0.0 {
            for s in &mut next_spurious {
                *s = exp_interval(&mut rng, cfg.spurious_hz);
            }
        }
        SimClocks {
            cfg: cfg.clone(),
            rng,
            next_pulse: 0,
            next_spurious,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// The device's clock at rig time `t_rig_ns`, without jitter.
    pub fn device_time_exact(&self, d: ClockDomain, t_rig_ns: i64) -> f64 {
        let Some(c) = self.cfg.device(d).filter(|_| self.cfg.enabled) else {
            return t_rig_ns as f64;
        };
        let mut t = c.offset_s * 1e9 + (1.0 + c.drift_ppm * 1e-6) * t_rig_ns as f64;
        if let Some(j) = &self.cfg.jump
            && j.device == d
            && t_rig_ns as f64 >= j.at_s * 1e9
        {
            t += j.step_ms * 1e6;
        }
        t
    }

    /// A timestamp of device `d` for a sample at rig time `t_rig_ns` (with jitter).
    pub fn stamp(&mut self, d: ClockDomain, t_rig_ns: i64) -> i64 {
        if !self.cfg.enabled {
            return t_rig_ns;
        }
        let jitter = self
            .cfg
            .device(d)
            .map_or(self.cfg.rig_jitter_us, |c| c.jitter_us);
        let noise = if jitter > 0.0 {
            normal(&mut self.rng) * jitter * 1e3
        } else {
            0.0
        };
        (self.device_time_exact(d, t_rig_ns) + noise).round() as i64
    }

    /// Every tick up to rig time `until_ns`, in rig-time order; for each pulse the rig's tick
    /// comes first.
    pub fn ticks_until(&mut self, until_ns: i64, out: &mut Vec<Tick>) {
        out.clear();
        if !self.cfg.enabled {
            return;
        }
        let period = (1e9 / self.cfg.tick_hz).round() as i64;
        loop {
            let spurious = self
                .next_spurious
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, &t)| (i, t));
            let pulse = self.next_pulse;
            match spurious {
                Some((i, t)) if t < pulse as f64 && t <= until_ns as f64 => {
                    let d = ClockDomain::DEVICES[i];
                    let t_rig = t.round() as i64;
                    self.next_spurious[i] = t + exp_interval(&mut self.rng, self.cfg.spurious_hz);
                    if !self.stopped(d, t_rig) {
                        let t_ns = self.stamp(d, t_rig);
                        out.push(Tick {
                            t_rig_ns: t_rig,
                            domain: d,
                            t_ns,
                        });
                    }
                }
                _ if pulse <= until_ns => {
                    let rig_t = self.stamp(ClockDomain::Rig, pulse);
                    out.push(Tick {
                        t_rig_ns: pulse,
                        domain: ClockDomain::Rig,
                        t_ns: rig_t,
                    });
                    for d in ClockDomain::DEVICES {
                        let missed = pulse > 0
                            && uniform(&mut self.rng, 0.0, 1.0) < self.cfg.missing_fraction;
                        if missed || self.stopped(d, pulse) {
                            continue;
                        }
                        let t_ns = self.stamp(d, pulse);
                        out.push(Tick {
                            t_rig_ns: pulse,
                            domain: d,
                            t_ns,
                        });
                    }
                    self.next_pulse += period;
                }
                _ => return,
            }
        }
    }

    fn stopped(&self, d: ClockDomain, t_rig_ns: i64) -> bool {
        self.cfg
            .ticks_stop
            .as_ref()
            .is_some_and(|s| s.device == d && t_rig_ns as f64 >= s.at_s * 1e9)
    }
}

fn exp_interval(rng: &mut ChaCha8Rng, hz: f64) -> f64 {
    let u = uniform(rng, 1e-12, 1.0);
    -u.ln() / hz * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimClocksConfig {
        SimClocksConfig {
            enabled: true,
            two_photon: DeviceClockConfig {
                offset_s: 3.0,
                drift_ppm: 40.0,
                jitter_us: 0.0,
            },
            ..SimClocksConfig::default()
        }
    }

    #[test]
    fn a_device_clock_is_offset_and_drifts() {
        let mut c = SimClocks::new(&cfg(), 1);
        // 100 s of rig time read 3 s + 100 s · (1 + 40e-6) on the device.
        assert_eq!(
            c.stamp(ClockDomain::TwoPhoton, 100_000_000_000),
            103_000_000_000 + 4_000_000
        );
        assert_eq!(
            c.stamp(ClockDomain::EyeCamera, 5),
            5,
            "a device left at default"
        );
    }

    #[test]
    fn every_pulse_is_seen_by_the_rig_first_and_by_each_device() {
        let mut c = SimClocks::new(&cfg(), 1);
        let mut ticks = Vec::new();
        c.ticks_until(2_000_000_000, &mut ticks);
        // Pulses at 0, 1 and 2 s, each seen by the rig and the four devices.
        assert_eq!(ticks.len(), 15);
        assert_eq!(ticks[0].domain, ClockDomain::Rig);
        assert_eq!(ticks[1].t_ns, 3_000_000_000);
        c.ticks_until(2_500_000_000, &mut ticks);
        assert!(ticks.is_empty(), "no pulse between 2 and 2.5 s");
    }
}
