//! Treadmill: rotary-encoder counts → running velocity in cm/s.
//!
//! Each sample is `(t_ns, count)`: the rig time it was read and the encoder's cumulative count
//! as the hardware reports it. Per sample (no allocation after [`Treadmill::new`]):
//!
//! 1. **Unwrap**: the step from the previous count is taken modulo `2^counter_bits` and read
//!    as signed, so a u32 counter passing `u32::MAX → 0` (or back) is a small step, flagged
//!    [`TreadmillFlags::WRAPPED`].
//! 2. **Resets and glitches**: a step implying more than `max_speed_cm_s` is not running. If
//!    the new count is near zero (`|count| ≤ reset_max_count`) the counter was **reset**
//!    ([`TreadmillFlags::RESET`]): it becomes the new reference and the distance over that
//!    interval is taken as the last velocity times the interval. Otherwise the sample is a
//!    **glitch** ([`TreadmillFlags::GLITCH`]) and is skipped — unless the next sample agrees
//!    with it, in which case the counter was preset to a new value and it is a reset after all.
//! 3. **Velocity**: the distance over the shortest stretch of at least `window_s` ending at
//!    this sample, over its duration (a difference over a window: encoder quantisation and
//!    read-time jitter average out), stamped at the stretch's midpoint, which is where a
//!    difference quotient is unbiased. The latency is therefore half the window.
//! 4. **Gaps**: samples further apart than `max_gap_s` are flagged [`TreadmillFlags::GAP`]
//!    (the count is cumulative, so no distance is lost; the velocity is an average over the
//!    gap). Samples not later than the previous one are dropped and counted.
//!
//! A velocity carries the flags of every event inside its window. Forward running is positive
//! (set `reverse` if the encoder counts down when the mouse runs forward).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Treadmill settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreadmillConfig {
    /// Wheel diameter, cm.
    pub wheel_diameter_cm: f64,
    /// Encoder counts per wheel revolution (after quadrature decoding).
    pub counts_per_rev: u32,
    /// Width of the hardware counter, bits (32 for a u32 counter; 64 for one that never wraps).
    pub counter_bits: u32,
    /// The encoder counts down when the mouse runs forward.
    pub reverse: bool,
    /// Velocity is the distance over at least this long, s.
    pub window_s: f64,
    /// Fastest plausible running speed, cm/s (mice peak near 100 cm/s).
    pub max_speed_cm_s: f64,
    /// Samples further apart than this are a gap, s.
    pub max_gap_s: f64,
    /// After an implausible step, a count within this of zero is a counter reset.
    pub reset_max_count: u64,
    /// Samples of history kept for the velocity window (at least the samples in `window_s`).
    pub history: usize,
}

impl Default for TreadmillConfig {
    fn default() -> Self {
        TreadmillConfig {
            wheel_diameter_cm: 15.0,
            counts_per_rev: 1024,
            counter_bits: 32,
            reverse: false,
            window_s: 0.1,
            max_speed_cm_s: 200.0,
            max_gap_s: 0.25,
            reset_max_count: 1024,
            history: 1024,
        }
    }
}

impl TreadmillConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), TreadmillError> {
        let bad = |field, value: f64, allowed| {
            Err(TreadmillError::Config {
                field,
                value,
                allowed,
            })
        };
        let pos = |v: f64| v > 0.0 && v.is_finite();
        if !pos(self.wheel_diameter_cm) {
            return bad("wheel_diameter_cm", self.wheel_diameter_cm, "> 0");
        }
        if self.counts_per_rev == 0 {
            return bad("counts_per_rev", 0.0, ">= 1");
        }
        if !(2..=64).contains(&self.counter_bits) {
            return bad("counter_bits", f64::from(self.counter_bits), "in [2, 64]");
        }
        if !pos(self.window_s) {
            return bad("window_s", self.window_s, "> 0");
        }
        if !pos(self.max_speed_cm_s) {
            return bad("max_speed_cm_s", self.max_speed_cm_s, "> 0");
        }
        if !pos(self.max_gap_s) {
            return bad("max_gap_s", self.max_gap_s, "> 0");
        }
        if self.history < 2 {
            return bad("history", self.history as f64, ">= 2");
        }
        Ok(())
    }

    /// Distance per count, cm.
    pub fn cm_per_count(&self) -> f64 {
        std::f64::consts::PI * self.wheel_diameter_cm / f64::from(self.counts_per_rev)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TreadmillError {
    #[error("treadmill.{field} = {value} is out of range: {allowed}")]
    Config {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
}

/// What happened inside a velocity's window (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TreadmillFlags(u8);

impl TreadmillFlags {
    /// The counter wrapped around (handled exactly).
    pub const WRAPPED: TreadmillFlags = TreadmillFlags(1);
    /// The counter was reset: the distance over that interval is extrapolated.
    pub const RESET: TreadmillFlags = TreadmillFlags(2);
    /// An implausible count was skipped.
    pub const GLITCH: TreadmillFlags = TreadmillFlags(4);
    /// Samples further apart than `max_gap_s`: the velocity averages over the gap.
    pub const GAP: TreadmillFlags = TreadmillFlags(8);
    const ALL: [TreadmillFlags; 4] = [Self::WRAPPED, Self::RESET, Self::GLITCH, Self::GAP];

    pub fn contains(self, other: TreadmillFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn insert(&mut self, other: TreadmillFlags) {
        self.0 |= other.0;
    }

    /// The velocity is not a clean measurement (a reset or a glitch inside its window).
    pub fn is_degraded(self) -> bool {
        self.contains(Self::RESET) || self.contains(Self::GLITCH)
    }
}

/// One velocity estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Velocity {
    /// Midpoint of the window, rig ns.
    pub t_ns: i64,
    /// Forward velocity, cm/s.
    pub cm_s: f64,
    /// Length of the window it averages over, ns.
    pub window_ns: i64,
    pub flags: TreadmillFlags,
}

/// Counts of what the stream has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TreadmillCounts {
    pub samples: u64,
    pub wraps: u64,
    pub resets: u64,
    pub glitches: u64,
    pub gaps: u64,
    pub out_of_order: u64,
}

/// One sample in the history: time and unwrapped position (counts).
#[derive(Debug, Clone, Copy)]
struct Point {
    t_ns: i64,
    pos: i64,
}

/// The streaming counts → velocity converter.
pub struct Treadmill {
    cfg: TreadmillConfig,
    cm_per_count: f64,
    window_ns: i64,
    max_gap_ns: i64,
    /// Ring of recent points; `head` is the next slot to write, `len` how many are valid.
    ring: Vec<Point>,
    head: usize,
    len: usize,
    last_raw: Option<i64>,
    /// A glitched sample waiting to be confirmed by the next one (then it was a preset).
    pending: Option<(i64, i64)>,
    last_cm_s: f64,
    /// Last time each flag's event happened, indexed like `TreadmillFlags::ALL`.
    last_event_ns: [i64; 4],
    counts: TreadmillCounts,
}

impl Treadmill {
    pub fn new(cfg: TreadmillConfig) -> Result<Self, TreadmillError> {
        cfg.validate()?;
        Ok(Treadmill {
            cm_per_count: cfg.cm_per_count() * if cfg.reverse { -1.0 } else { 1.0 },
            window_ns: (cfg.window_s * 1e9).round() as i64,
            max_gap_ns: (cfg.max_gap_s * 1e9).round() as i64,
            ring: vec![Point { t_ns: 0, pos: 0 }; cfg.history],
            head: 0,
            len: 0,
            last_raw: None,
            pending: None,
            last_cm_s: 0.0,
            last_event_ns: [i64::MIN; 4],
            counts: TreadmillCounts::default(),
            cfg,
        })
    }

    pub fn counts(&self) -> TreadmillCounts {
        self.counts
    }

    pub fn config(&self) -> &TreadmillConfig {
        &self.cfg
    }

    fn newest(&self) -> Option<Point> {
        (self.len > 0).then(|| self.ring[(self.head + self.ring.len() - 1) % self.ring.len()])
    }

    /// The `k`-th newest point (0 = newest).
    fn back(&self, k: usize) -> Point {
        let n = self.ring.len();
        self.ring[(self.head + n - 1 - k) % n]
    }

    fn record(&mut self, flag: TreadmillFlags, t_ns: i64) {
        for (i, f) in TreadmillFlags::ALL.iter().enumerate() {
            if *f == flag {
                self.last_event_ns[i] = t_ns;
            }
        }
    }

    /// The step from `from` to `to` modulo the counter width, as a signed number.
    fn step(&self, from: i64, to: i64) -> i64 {
        let bits = self.cfg.counter_bits;
        let d = to.wrapping_sub(from);
        if bits >= 64 {
            return d;
        }
        let modulus = 1i128 << bits;
        let mut m = i128::from(d).rem_euclid(modulus);
        if m >= modulus / 2 {
            m -= modulus;
        }
        m as i64
    }

    fn plausible(&self, step: i64, dt_ns: i64) -> bool {
        let cm = (step as f64 * self.cm_per_count).abs();
        cm <= self.cfg.max_speed_cm_s * (dt_ns as f64 * 1e-9) + self.cm_per_count.abs()
    }

    /// Adds one encoder reading; returns the velocity ending at it once a full window of
    /// history exists (`None` before that, and for dropped samples).
    pub fn push(&mut self, t_ns: i64, count: i64) -> Option<Velocity> {
        let Some(prev) = self.newest() else {
            self.counts.samples += 1;
            self.last_raw = Some(count);
            self.append(Point { t_ns, pos: 0 });
            return None;
        };
        if t_ns <= prev.t_ns {
            self.counts.out_of_order += 1;
            return None;
        }
        self.counts.samples += 1;
        let dt = t_ns - prev.t_ns;
        if dt > self.max_gap_ns {
            self.counts.gaps += 1;
            self.record(TreadmillFlags::GAP, t_ns);
        }
        let last_raw = self.last_raw.unwrap_or(count);
        let step = self.step(last_raw, count);
        let pos = if self.plausible(step, dt) {
            if let Some((pt, _)) = self.pending.take() {
                // The skipped sample was a one-off glitch.
                self.counts.glitches += 1;
                self.record(TreadmillFlags::GLITCH, pt);
            }
            if self.wrapped(last_raw, step) {
                self.counts.wraps += 1;
                self.record(TreadmillFlags::WRAPPED, t_ns);
            }
            prev.pos + step
        } else {
            let pending = self.pending.take();
            let near_zero = count.unsigned_abs() <= self.cfg.reset_max_count;
            let agrees =
                pending.is_some_and(|(pt, pc)| self.plausible(self.step(pc, count), t_ns - pt));
            if !(near_zero || agrees) {
                // Hold it: if the next sample agrees with it, the counter was preset.
                if let Some((pt, _)) = pending {
                    self.counts.glitches += 1;
                    self.record(TreadmillFlags::GLITCH, pt);
                }
                self.pending = Some((t_ns, count));
                return None;
            }
            self.counts.resets += 1;
            self.record(TreadmillFlags::RESET, t_ns);
            let extrapolated = self.last_cm_s * dt as f64 * 1e-9 / self.cm_per_count;
            prev.pos + extrapolated.round() as i64
        };
        self.last_raw = Some(count);
        self.append(Point { t_ns, pos });
        self.velocity()
    }

    /// A step that carried the raw counter across its wrap point.
    fn wrapped(&self, from: i64, step: i64) -> bool {
        let bits = self.cfg.counter_bits;
        if bits >= 64 {
            return false;
        }
        let to = i128::from(from) + i128::from(step);
        to < 0 || to >= (1i128 << bits)
    }

    fn append(&mut self, p: Point) {
        let n = self.ring.len();
        self.ring[self.head] = p;
        self.head = (self.head + 1) % n;
        self.len = (self.len + 1).min(n);
    }

    /// Velocity over the shortest stretch of at least the window ending at the newest point.
    fn velocity(&mut self) -> Option<Velocity> {
        let newest = self.back(0);
        let mut start = None;
        for k in 1..self.len {
            let p = self.back(k);
            if newest.t_ns - p.t_ns >= self.window_ns {
                start = Some(p);
                break;
            }
        }
        // With more samples per window than the history holds, the oldest point will do.
        let start = match start {
            Some(p) => p,
            None if self.len == self.ring.len() => self.back(self.len - 1),
            None => return None,
        };
        let dt = newest.t_ns - start.t_ns;
        let cm_s = (newest.pos - start.pos) as f64 * self.cm_per_count / (dt as f64 * 1e-9);
        let mut flags = TreadmillFlags::default();
        for (i, f) in TreadmillFlags::ALL.iter().enumerate() {
            if self.last_event_ns[i] > start.t_ns {
                flags.insert(*f);
            }
        }
        if !flags.is_degraded() {
            self.last_cm_s = cm_s;
        }
        Some(Velocity {
            t_ns: start.t_ns + dt / 2,
            cm_s,
            window_ns: dt,
            flags,
        })
    }
}

/// Velocities for a whole recording of `(t_ns, count)` samples (offline and replay).
pub fn velocity_series(
    samples: &[(i64, i64)],
    cfg: &TreadmillConfig,
) -> Result<Vec<Velocity>, TreadmillError> {
    let mut t = Treadmill::new(cfg.clone())?;
    Ok(samples
        .iter()
        .filter_map(|&(ts, c)| t.push(ts, c))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    /// Counts of a wheel turned at `speed(t)` cm/s, read every `period_ms`, as a counter of
    /// `bits` bits starting at `start`.
    fn run(
        cfg: &TreadmillConfig,
        seconds: f64,
        period_ms: i64,
        start: u64,
        speed: impl Fn(f64) -> f64,
    ) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut dist = 0.0;
        let n = (seconds * 1000.0) as i64 / period_ms;
        let modulus = if cfg.counter_bits >= 64 {
            None
        } else {
            Some(1u128 << cfg.counter_bits)
        };
        for k in 0..n {
            let t = k as f64 * period_ms as f64 * 1e-3;
            dist += speed(t) * period_ms as f64 * 1e-3;
            let counts = (dist / cfg.cm_per_count()).floor() as i128 + start as i128;
            let raw = match modulus {
                Some(m) => (counts.rem_euclid(m as i128)) as i64,
                None => counts as i64,
            };
            out.push((k * period_ms * MS, raw));
        }
        out
    }

    #[test]
    fn constant_speed_is_recovered_without_jitter_spikes() {
        let cfg = TreadmillConfig::default();
        let v = velocity_series(&run(&cfg, 2.0, 1, 0, |_| 25.0), &cfg).expect("valid");
        assert!(v.len() > 1800);
        for s in &v {
            assert!((s.cm_s - 25.0).abs() < 0.5, "{s:?}");
            assert!(s.flags.is_empty());
            assert!(s.window_ns >= 100 * MS && s.window_ns < 102 * MS);
        }
        // Stamped at the window's midpoint.
        assert_eq!(v[0].t_ns, v[0].window_ns / 2);
    }

    #[test]
    fn u32_wrap_gives_the_right_velocity_and_is_flagged() {
        let cfg = TreadmillConfig::default();
        // Start 500 counts below u32::MAX: wraps within the first second at 30 cm/s.
        let samples = run(&cfg, 2.0, 2, u64::from(u32::MAX) - 500, |_| 30.0);
        assert!(
            samples.windows(2).any(|w| w[1].1 < w[0].1),
            "the counter wrapped"
        );
        let mut t = Treadmill::new(cfg).expect("valid");
        let v: Vec<Velocity> = samples
            .iter()
            .filter_map(|&(ts, c)| t.push(ts, c))
            .collect();
        assert_eq!(t.counts().wraps, 1);
        assert!(v.iter().any(|s| s.flags.contains(TreadmillFlags::WRAPPED)));
        for s in &v {
            assert!((s.cm_s - 30.0).abs() < 0.5, "no spike at the wrap: {s:?}");
        }
        // Running backwards across zero wraps the other way.
        let cfg = TreadmillConfig::default();
        let back = run(&cfg, 1.0, 2, 500, |_| -20.0);
        let v = velocity_series(&back, &cfg).expect("valid");
        assert!(v.iter().all(|s| (s.cm_s + 20.0).abs() < 0.5));
    }

    #[test]
    fn reset_to_zero_is_flagged_not_a_spike() {
        let cfg = TreadmillConfig::default();
        let mut samples = run(&cfg, 2.0, 2, 5_000_000, |_| 20.0);
        // At 1 s the counter is reset to 0 and counts on from there.
        let at = samples
            .iter()
            .position(|s| s.0 >= 1_000 * MS)
            .expect("index");
        let base = samples[at].1;
        for s in &mut samples[at..] {
            s.1 -= base;
        }
        let mut t = Treadmill::new(cfg).expect("valid");
        let v: Vec<Velocity> = samples
            .iter()
            .filter_map(|&(ts, c)| t.push(ts, c))
            .collect();
        assert_eq!(t.counts().resets, 1);
        let flagged: Vec<&Velocity> = v
            .iter()
            .filter(|s| s.flags.contains(TreadmillFlags::RESET))
            .collect();
        assert!(!flagged.is_empty());
        for s in &v {
            assert!((s.cm_s - 20.0).abs() < 1.0, "no spike at the reset: {s:?}");
        }
    }

    #[test]
    fn a_glitch_is_skipped_and_a_preset_is_followed() {
        let cfg = TreadmillConfig::default();
        let mut samples = run(&cfg, 1.0, 2, 100_000, |_| 10.0);
        samples[200].1 = 987_654_321;
        let mut t = Treadmill::new(cfg.clone()).expect("valid");
        let v: Vec<Velocity> = samples
            .iter()
            .filter_map(|&(ts, c)| t.push(ts, c))
            .collect();
        assert_eq!(t.counts().glitches, 1);
        assert!(v.iter().all(|s| (s.cm_s - 10.0).abs() < 0.5));
        assert!(v.iter().any(|s| s.flags.contains(TreadmillFlags::GLITCH)));
        // A counter preset to a far value (not zero) is a reset once the next sample agrees.
        let mut samples = run(&cfg, 1.0, 2, 100_000, |_| 10.0);
        for s in &mut samples[250..] {
            s.1 += 50_000_000;
        }
        let mut t = Treadmill::new(cfg).expect("valid");
        let v: Vec<Velocity> = samples
            .iter()
            .filter_map(|&(ts, c)| t.push(ts, c))
            .collect();
        assert_eq!(t.counts().resets, 1);
        assert!(v.iter().all(|s| (s.cm_s - 10.0).abs() < 1.0));
    }

    #[test]
    fn gaps_and_out_of_order_samples() {
        let cfg = TreadmillConfig::default();
        let mut samples = run(&cfg, 2.0, 2, 0, |_| 15.0);
        // Drop 0.5 s of samples: the distance is still there.
        samples.retain(|s| s.0 < 800 * MS || s.0 > 1_300 * MS);
        samples.insert(10, samples[5]);
        let mut t = Treadmill::new(cfg).expect("valid");
        let v: Vec<Velocity> = samples
            .iter()
            .filter_map(|&(ts, c)| t.push(ts, c))
            .collect();
        assert_eq!(t.counts().gaps, 1);
        assert_eq!(t.counts().out_of_order, 1);
        let over_gap: Vec<&Velocity> = v
            .iter()
            .filter(|s| s.flags.contains(TreadmillFlags::GAP))
            .collect();
        assert!(!over_gap.is_empty());
        for s in &v {
            assert!((s.cm_s - 15.0).abs() < 0.5, "{s:?}");
        }
    }

    #[test]
    fn varying_speed_is_tracked_with_half_window_latency() {
        let cfg = TreadmillConfig::default();
        let speed = |t: f64| 20.0 + 15.0 * (2.0 * std::f64::consts::PI * 0.5 * t).sin();
        let v = velocity_series(&run(&cfg, 4.0, 1, 0, speed), &cfg).expect("valid");
        for s in &v {
            let truth = speed(s.t_ns as f64 * 1e-9);
            assert!((s.cm_s - truth).abs() < 0.6, "{s:?} vs {truth}");
        }
    }

    #[test]
    fn reverse_and_64_bit_counters_and_config_errors() {
        let cfg = TreadmillConfig {
            counter_bits: 64,
            reverse: true,
            ..TreadmillConfig::default()
        };
        let v = velocity_series(&run(&cfg, 1.0, 2, 0, |_| -12.0), &cfg).expect("valid");
        assert!(v.iter().all(|s| (s.cm_s - 12.0).abs() < 0.5));
        let bad = TreadmillConfig {
            counter_bits: 1,
            ..TreadmillConfig::default()
        };
        let err = Treadmill::new(bad).err().expect("rejected");
        assert!(err.to_string().contains("counter_bits"), "{err}");
        assert!(
            Treadmill::new(TreadmillConfig {
                wheel_diameter_cm: f64::NAN,
                ..TreadmillConfig::default()
            })
            .is_err()
        );
    }
}
