//! Time on the rig: one clock for every sample.
//!
//! Every sample the daemon sees carries a [`RigTime`], nanoseconds on the rig clock (the
//! microscope bridge's clock on a real rig; a virtual clock driven by the simulator in
//! simulation). Latency is measured separately on the host's monotonic clock
//! ([`host_monotonic_ns`]), which on Linux is `CLOCK_MONOTONIC`, the same clock Python's
//! `time.monotonic_ns()` reads, so a bridge on the same machine can stamp send times.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point on the rig clock, in nanoseconds.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RigTime(i64);

impl RigTime {
    pub const ZERO: RigTime = RigTime(0);

    pub const fn from_nanos(ns: i64) -> Self {
        RigTime(ns)
    }

    pub fn from_secs_f64(s: f64) -> Self {
        RigTime((s * 1e9).round() as i64)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// `self + d`, saturating at the end of the clock.
    pub fn plus(self, d: Duration) -> Self {
        RigTime(
            self.0
                .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }

    /// Signed difference `self - earlier` in nanoseconds.
    pub const fn nanos_since(self, earlier: RigTime) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for RigTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6} s", self.as_secs_f64())
    }
}

/// Nanoseconds on the host's monotonic clock (`CLOCK_MONOTONIC`).
pub fn host_monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// A rate in hertz, with the period it implies.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hertz(pub f64);

impl Hertz {
    pub fn period(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }

    pub fn period_ns(self) -> i64 {
        (1e9 / self.0).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rig_time_round_trips_seconds() {
        let t = RigTime::from_secs_f64(1.5);
        assert_eq!(t.as_nanos(), 1_500_000_000);
        assert_eq!(t.plus(Duration::from_millis(500)).as_secs_f64(), 2.0);
        assert_eq!(Hertz(30.0).period_ns(), 33_333_333);
    }

    #[test]
    fn host_clock_is_monotonic() {
        let a = host_monotonic_ns();
        let b = host_monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
