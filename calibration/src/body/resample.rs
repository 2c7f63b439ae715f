//! Resampling a behaviour stream onto other times (imaging frames) by linear interpolation,
//! saying for each time how the value was obtained.
//!
//! A stream is a time-ordered slice of [`Sample`]s; a sample that is not `valid` (a blink, a
//! rejected pupil fit, a treadmill reset) is a hole. At a time `t`, with `L` the last valid
//! sample at or before `t` and `R` the first valid one at or after it:
//! - [`Fill::Measured`]: `L` and `R` are neighbours in the stream (no hole between) and at
//!   most `max_gap_ns` apart: ordinary interpolation.
//! - [`Fill::Interpolated`]: a hole or a gap lies between them, but they are at most
//!   `max_bridge_ns` apart: the value is bridged across (a blink).
//! - [`Fill::Held`]: only one side exists (the stream has not caught up with `t` yet, or `t`
//!   is before its start) and it is at most `max_hold_ns` away: its value is held.
//! - [`Fill::Missing`]: otherwise; the values are NaN.

use serde::{Deserialize, Serialize};

/// How a resampled value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    Measured,
    Interpolated,
    Held,
    Missing,
}

impl Fill {
    /// A value is present (anything but `Missing`).
    pub fn has_value(self) -> bool {
        self != Fill::Missing
    }
}

/// One sample of an `N`-valued stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<const N: usize> {
    pub t_ns: i64,
    pub values: [f64; N],
    pub valid: bool,
}

impl<const N: usize> Sample<N> {
    pub fn valid(t_ns: i64, values: [f64; N]) -> Self {
        Sample {
            t_ns,
            values,
            valid: true,
        }
    }

    /// A hole at `t_ns` (values NaN).
    pub fn hole(t_ns: i64) -> Self {
        Sample {
            t_ns,
            values: [f64::NAN; N],
            valid: false,
        }
    }
}

/// Limits of interpolation for one stream, ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResampleConfig {
    /// Neighbouring samples further apart than this are a gap (about 2.5 sample periods).
    pub max_gap_ns: i64,
    /// The longest hole or gap interpolated across (blinks last 100–400 ms).
    pub max_bridge_ns: i64,
    /// How far a one-sided value may be held.
    pub max_hold_ns: i64,
}

impl ResampleConfig {
    /// Defaults for a stream sampled at `rate_hz`: gap 2.5 periods, bridge 1 s, hold 2.5
    /// periods.
    pub fn for_rate(rate_hz: f64) -> Self {
        let period = 1e9 / rate_hz.max(1e-3);
        ResampleConfig {
            max_gap_ns: (2.5 * period) as i64,
            max_bridge_ns: 1_000_000_000,
            max_hold_ns: (2.5 * period) as i64,
        }
    }
}

/// The value of a stream at `t_ns`. `samples` must be in time order.
pub fn interpolate_at<const N: usize>(
    samples: &[Sample<N>],
    t_ns: i64,
    cfg: &ResampleConfig,
) -> ([f64; N], Fill) {
    let missing = ([f64::NAN; N], Fill::Missing);
    // First sample at or after t.
    let i = samples.partition_point(|s| s.t_ns < t_ns);
    let right = samples[i..].iter().position(|s| s.valid).map(|k| i + k);
    let left = samples[..i]
        .iter()
        .rposition(|s| s.valid)
        .or_else(|| right.filter(|&r| samples[r].t_ns == t_ns));
    match (left, right) {
        (Some(l), Some(r)) => {
            let (a, b) = (&samples[l], &samples[r]);
            if a.t_ns == b.t_ns || b.t_ns == t_ns {
                return (b.values, Fill::Measured);
            }
            let span = b.t_ns - a.t_ns;
            let fill = if r == l + 1 && span <= cfg.max_gap_ns {
                Fill::Measured
            } else if span <= cfg.max_bridge_ns {
                Fill::Interpolated
            } else {
                return missing;
            };
            let w = (t_ns - a.t_ns) as f64 / span as f64;
            (
                std::array::from_fn(|k| a.values[k] + w * (b.values[k] - a.values[k])),
                fill,
            )
        }
        (Some(l), None) if t_ns - samples[l].t_ns <= cfg.max_hold_ns => {
            (samples[l].values, Fill::Held)
        }
        (None, Some(r)) if samples[r].t_ns - t_ns <= cfg.max_hold_ns => {
            (samples[r].values, Fill::Held)
        }
        _ => missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn cfg() -> ResampleConfig {
        ResampleConfig {
            max_gap_ns: 40 * MS,
            max_bridge_ns: 500 * MS,
            max_hold_ns: 40 * MS,
        }
    }

    fn ramp(times_ms: &[i64]) -> Vec<Sample<2>> {
        times_ms
            .iter()
            .map(|&t| Sample::valid(t * MS, [t as f64, -2.0 * t as f64]))
            .collect()
    }

    #[test]
    fn interpolates_linearly_between_neighbours() {
        let s = ramp(&[0, 16, 33, 50]);
        let (v, f) = interpolate_at(&s, 20 * MS, &cfg());
        assert_eq!(f, Fill::Measured);
        assert!((v[0] - 20.0).abs() < 1e-9 && (v[1] + 40.0).abs() < 1e-9);
        assert_eq!(
            interpolate_at(&s, 33 * MS, &cfg()),
            ([33.0, -66.0], Fill::Measured)
        );
        assert_eq!(interpolate_at(&s, 0, &cfg()), ([0.0, 0.0], Fill::Measured));
    }

    #[test]
    fn holes_and_gaps_are_bridged_then_missing() {
        let mut s = ramp(&[0, 16, 33, 50, 66, 83, 400, 1200]);
        s[3] = Sample::hole(50 * MS);
        s[4] = Sample::hole(66 * MS);
        let (v, f) = interpolate_at(&s, 60 * MS, &cfg());
        assert_eq!(f, Fill::Interpolated);
        assert!((v[0] - 60.0).abs() < 1e-9);
        // 83 -> 400 ms: a gap beyond max_gap but within the bridge.
        assert_eq!(interpolate_at(&s, 200 * MS, &cfg()).1, Fill::Interpolated);
        // 400 -> 1200 ms: too long to bridge.
        let (v, f) = interpolate_at(&s, 800 * MS, &cfg());
        assert_eq!(f, Fill::Missing);
        assert!(v[0].is_nan());
    }

    #[test]
    fn one_sided_values_are_held_briefly() {
        let s = ramp(&[100, 116]);
        assert_eq!(
            interpolate_at(&s, 130 * MS, &cfg()),
            ([116.0, -232.0], Fill::Held)
        );
        assert_eq!(
            interpolate_at(&s, 90 * MS, &cfg()),
            ([100.0, -200.0], Fill::Held)
        );
        assert_eq!(interpolate_at(&s, 200 * MS, &cfg()).1, Fill::Missing);
        assert_eq!(interpolate_at::<2>(&[], 0, &cfg()).1, Fill::Missing);
        let holes = [Sample::<2>::hole(0), Sample::hole(10 * MS)];
        assert_eq!(interpolate_at(&holes, 5 * MS, &cfg()).1, Fill::Missing);
    }

    #[test]
    fn rate_defaults() {
        let c = ResampleConfig::for_rate(60.0);
        assert_eq!(c.max_gap_ns, 41_666_666);
        assert_eq!(c.max_bridge_ns, 1_000_000_000);
    }
}
