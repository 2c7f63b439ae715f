//! Time you can trust: a sample whose wire time jumps far from its stream's recent cadence is
//! refused before it can move the session clock.
//!
//! A bridge that sends epoch microseconds as nanoseconds (`t_ns = 1.7e15`) or whose clock jumps
//! by an hour would otherwise end ingest at once (the session's duration "reached") and send
//! the display chasing rig time it can never reach. The guard keeps, per stream, the last
//! accepted time and the median of the last intervals; a time more than the bound away (either
//! way) is a `time_jump`. A `hello` starts every stream's history again.

use crate::vocab::protocol::Stream;

/// Intervals kept per stream for its cadence.
const INTERVALS: usize = 16;

/// How far a time may move from the last, in multiples of the stream's median interval, before
/// the bound in seconds applies instead (whichever is larger).
const CADENCE_MULTIPLE: i64 = 100;

#[derive(Debug, Clone, Default)]
struct History {
    last_ns: Option<i64>,
    intervals: [i64; INTERVALS],
    n: usize,
}

impl History {
    fn median_interval(&self) -> i64 {
        let k = self.n.min(INTERVALS);
        if k == 0 {
            return 0;
        }
        // A copy on the stack: the guard runs on ingest's hot path, which must not allocate.
        let mut v = self.intervals;
        v[..k].sort_unstable();
        v[k / 2]
    }
}

/// Per-stream wire-time histories (two-photon, eye camera, treadmill, sync).
#[derive(Debug, Clone)]
pub struct TimeGuard {
    max_jump_ns: i64,
    streams: [History; 4],
}

/// A refused time: how far it was from the last accepted one, and the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeJump {
    pub last_ns: i64,
    pub t_ns: i64,
    pub bound_ns: i64,
}

impl TimeGuard {
    /// Times may move at most `max_jump_s` (or 100 of the stream's recent intervals, if that is
    /// longer) from the last accepted one.
    pub fn new(max_jump_s: f64) -> TimeGuard {
        TimeGuard {
            max_jump_ns: (max_jump_s * 1e9).min(i64::MAX as f64 / 2.0) as i64,
            streams: Default::default(),
        }
    }

    fn index(stream: Stream) -> Option<usize> {
        match stream {
            Stream::TwoPhoton => Some(0),
            Stream::EyeCamera => Some(1),
            Stream::Treadmill => Some(2),
            Stream::Sync => Some(3),
            _ => None,
        }
    }

    /// Accepts `t_ns` for `stream` (and learns from it), or says how far it jumped.
    pub fn check(&mut self, stream: Stream, t_ns: i64) -> Result<(), TimeJump> {
        let Some(i) = Self::index(stream) else {
            return Ok(());
        };
        let h = &mut self.streams[i];
        let Some(last_ns) = h.last_ns else {
            h.last_ns = Some(t_ns);
            return Ok(());
        };
        let bound_ns = self
            .max_jump_ns
            .max(h.median_interval().saturating_mul(CADENCE_MULTIPLE));
        let step = i128::from(t_ns) - i128::from(last_ns);
        if step.abs() > i128::from(bound_ns) {
            return Err(TimeJump {
                last_ns,
                t_ns,
                bound_ns,
            });
        }
        if step > 0 {
            h.intervals[h.n % INTERVALS] = step as i64;
            h.n += 1;
        }
        h.last_ns = Some(last_ns.max(t_ns));
        Ok(())
    }

    /// A new numbering (`hello`): every stream starts again.
    pub fn reset(&mut self) {
        self.streams = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000 * MS;

    /// Each row: the times a stream sends (ns), and which are refused.
    #[test]
    fn times_far_from_the_cadence_are_refused_and_never_learned() {
        #[rustfmt::skip]
        let rows: &[(&str, &[i64], &[bool])] = &[
            ("a steady 30 Hz stream", &[0, 33 * MS, 67 * MS, 100 * MS], &[true, true, true, true]),
            ("epoch microseconds read as nanoseconds", &[0, 33 * MS, 1_700_000_000_000_000, 67 * MS],
                &[true, true, false, true]),
            ("an hour ahead, then back on time", &[0, 33 * MS, 3600 * S, 67 * MS], &[true, true, false, true]),
            ("an hour back", &[3600 * S, 3600 * S + 33 * MS, 33 * MS], &[true, true, false]),
            ("a pause shorter than the bound", &[0, 33 * MS, 8 * S], &[true, true, true]),
            ("a repeated time (two channels)", &[0, 33 * MS, 33 * MS, 67 * MS], &[true, true, true, true]),
            ("the extremes of i64", &[0, i64::MAX, i64::MIN, 33 * MS], &[true, false, false, true]),
        ];
        for (name, times, want) in rows {
            let mut g = TimeGuard::new(10.0);
            let got: Vec<bool> = times
                .iter()
                .map(|&t| g.check(Stream::TwoPhoton, t).is_ok())
                .collect();
            assert_eq!(&got, want, "{name}");
        }
    }

    /// A slow stream's own cadence widens the bound: a 1 Hz sync stream may skip a minute.
    #[test]
    fn the_bound_follows_a_slow_cadence_and_a_hello_starts_again() {
        let mut g = TimeGuard::new(10.0);
        for k in 0..20 {
            g.check(Stream::Sync, k * S).unwrap();
        }
        assert!(
            g.check(Stream::Sync, 80 * S).is_ok(),
            "within 100 intervals"
        );
        assert!(g.check(Stream::Sync, 500 * S).is_err());
        // Streams are apart: the two-photon stream has no history yet.
        assert!(g.check(Stream::TwoPhoton, 500 * S).is_ok());
        g.reset();
        assert!(g.check(Stream::Sync, 10_000 * S).is_ok(), "a new numbering");
    }
}
