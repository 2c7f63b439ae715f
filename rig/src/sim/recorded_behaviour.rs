//! Running and pupil replayed from a recorded session (`[source.twin] behaviour = "<session
//! dir>"`): the twin, and the simulated eye camera and treadmill the rig reads, see what a real
//! (or earlier simulated) mouse did instead of the behaviour model's draw.
//!
//! The track is the session's per-frame behaviour as its log has it (`Behaviour` records: pupil
//! radius in eye-camera px, treadmill speed in cm/s), its first frame at rig time 0 of the new
//! session, linear between frames. A frame where a value is missing holds the last one known
//! (the first one known before it). The pupil radius is read in the eye-camera px of this rig's
//! simulated camera (`px_per_mm`): the recording's camera is assumed to have the same scale.
//! Gaze, blinks and the shared latent stay the behaviour model's (the log keeps the pupil's
//! centre in camera px, not the eye's rotation).

/// One recorded frame's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedSample {
    /// The frame's rig time in the recording, ns.
    pub t_ns: i64,
    pub pupil_radius_px: Option<f64>,
    pub running_cm_s: Option<f64>,
}

/// The replayed track, from the recording's first frame on.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedBehaviour {
    /// Since the first frame, ns, increasing.
    t_ns: Vec<i64>,
    pupil_radius_px: Vec<f64>,
    running_cm_s: Vec<f64>,
}

impl RecordedBehaviour {
    /// The track from frames in any order; the error says what the recording lacks.
    pub fn new(mut samples: Vec<RecordedSample>) -> Result<RecordedBehaviour, String> {
        samples.sort_by_key(|s| s.t_ns);
        samples.dedup_by_key(|s| s.t_ns);
        let filled = |get: fn(&RecordedSample) -> Option<f64>, what: &str| {
            let first = samples
                .iter()
                .find_map(get)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("has no frame with a {what}"))?;
            let mut last = first;
            Ok::<_, String>(
                samples
                    .iter()
                    .map(|s| {
                        if let Some(v) = get(s).filter(|v| v.is_finite()) {
                            last = v;
                        }
                        last
                    })
                    .collect::<Vec<f64>>(),
            )
        };
        if samples.len() < 2 {
            return Err(format!(
                "has {} frames with behaviour; at least 2 are needed",
                samples.len()
            ));
        }
        let pupil_radius_px = filled(|s| s.pupil_radius_px, "pupil radius")?;
        let running_cm_s = filled(|s| s.running_cm_s, "running speed")?;
        let t0 = samples[0].t_ns;
        Ok(RecordedBehaviour {
            t_ns: samples.iter().map(|s| s.t_ns - t0).collect(),
            pupil_radius_px,
            running_cm_s,
        })
    }

    /// How long the recording lasts, s (first to last frame).
    pub fn span_s(&self) -> f64 {
        self.t_ns.last().copied().unwrap_or(0) as f64 * 1e-9
    }

    /// Pupil radius (eye-camera px) and running speed (cm/s) at `t_ns` after the first frame:
    /// linear between frames, held beyond either end.
    pub fn at(&self, t_ns: i64) -> (f64, f64) {
        let k = self.t_ns.partition_point(|&t| t <= t_ns);
        if k == 0 {
            return (self.pupil_radius_px[0], self.running_cm_s[0]);
        }
        let last = self.t_ns.len() - 1;
        if k > last {
            return (self.pupil_radius_px[last], self.running_cm_s[last]);
        }
        let (a, b) = (k - 1, k);
        let frac = (t_ns - self.t_ns[a]) as f64 / (self.t_ns[b] - self.t_ns[a]) as f64;
        let lerp = |v: &[f64]| v[a] + frac * (v[b] - v[a]);
        (lerp(&self.pupil_radius_px), lerp(&self.running_cm_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ns: i64, pupil: Option<f64>, run: Option<f64>) -> RecordedSample {
        RecordedSample {
            t_ns,
            pupil_radius_px: pupil,
            running_cm_s: run,
        }
    }

    #[test]
    fn frames_are_interpolated_held_and_start_at_zero() {
        let r = RecordedBehaviour::new(vec![
            sample(1_300, Some(12.0), None),
            sample(1_000, None, Some(2.0)),
            sample(1_100, Some(10.0), Some(4.0)),
            sample(1_200, None, Some(8.0)),
        ])
        .unwrap();
        assert!((r.span_s() - 300e-9).abs() < 1e-18, "{}", r.span_s());
        // The first pupil known is held backwards; a missing one holds the last.
        assert_eq!(r.at(0), (10.0, 2.0));
        assert_eq!(r.at(100), (10.0, 4.0));
        assert_eq!(r.at(150), (10.0, 6.0));
        assert_eq!(r.at(200), (10.0, 8.0));
        assert_eq!(r.at(250), (11.0, 8.0));
        // Beyond the ends: held.
        assert_eq!(r.at(-50), (10.0, 2.0));
        assert_eq!(r.at(10_000), (12.0, 8.0));
    }

    #[test]
    fn a_recording_without_a_signal_says_which() {
        let e = RecordedBehaviour::new(vec![sample(0, None, Some(1.0)), sample(1, None, None)])
            .unwrap_err();
        assert!(e.contains("pupil radius"), "{e}");
        let e = RecordedBehaviour::new(vec![sample(0, Some(1.0), Some(1.0))]).unwrap_err();
        assert!(e.contains("at least 2"), "{e}");
    }
}
