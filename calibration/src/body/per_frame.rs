//! Behaviour per imaging frame: the pupil (centre, radius) and treadmill velocity at each
//! frame's rig time, with a flag per input saying how it was obtained.
//!
//! [`BehaviourAligner`] is the streaming form for the daemon: push pupil measurements and
//! velocities as they arrive (rig times), ask for a frame's behaviour when the frame is
//! processed. It keeps a bounded history (no allocation after construction) and forgets what
//! no later frame can need. [`align_frames`] does the same for a whole recording.
//!
//! Interpolation rules are those of [`super::resample`]: a blink or a rejected fit is a hole
//! that is bridged (`Interpolated`) when short enough; a frame newer than the last sample gets
//! the last value `Held` for a little while; beyond that the input is `Missing` (NaN). A live
//! loop that wants `Measured` rather than `Held` values asks once the streams have passed
//! the frame's time ([`BehaviourAligner::caught_up`]): about one camera frame later.

use super::resample::{Fill, ResampleConfig, Sample, interpolate_at};
use super::treadmill::Velocity;
use crate::eye::PupilMeasurement;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One imaging frame's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BehaviourFrame {
    /// Rig time the values are for, ns (the frame time, or a cell's scan time).
    pub t_ns: i64,
    pub pupil_x_px: f64,
    pub pupil_y_px: f64,
    pub pupil_radius_px: f64,
    pub treadmill_cm_s: f64,
    /// How the pupil values (all three) were obtained.
    pub pupil: Fill,
    /// How the velocity was obtained.
    pub treadmill: Fill,
}

impl BehaviourFrame {
    /// The twin's behaviour inputs in fnn's order: pupil x, pupil y (perspective), pupil
    /// radius, treadmill velocity (modulation). Missing values are NaN.
    pub fn twin_inputs(&self) -> [f64; 4] {
        [
            self.pupil_x_px,
            self.pupil_y_px,
            self.pupil_radius_px,
            self.treadmill_cm_s,
        ]
    }

    /// Both inputs were measured around this time (no interpolation across holes, no hold).
    pub fn all_measured(&self) -> bool {
        self.pupil == Fill::Measured && self.treadmill == Fill::Measured
    }
}

/// Settings of the alignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourConfig {
    pub pupil: ResampleConfig,
    pub treadmill: ResampleConfig,
    /// Samples kept per stream (must cover `max_bridge_ns` at the stream's rate).
    pub history: usize,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            // Eye camera at 60 Hz; velocities at the treadmill read rate (say 100 Hz or more).
            pupil: ResampleConfig::for_rate(60.0),
            treadmill: ResampleConfig::for_rate(100.0),
            history: 2048,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BehaviourError {
    #[error("behaviour.{field} = {value} is out of range: {allowed}")]
    Config {
        field: String,
        value: i64,
        allowed: &'static str,
    },
}

impl BehaviourConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), BehaviourError> {
        for (name, c) in [("pupil", &self.pupil), ("treadmill", &self.treadmill)] {
            for (field, value) in [
                ("max_gap_ns", c.max_gap_ns),
                ("max_bridge_ns", c.max_bridge_ns),
                ("max_hold_ns", c.max_hold_ns),
            ] {
                if value < 0 {
                    return Err(BehaviourError::Config {
                        field: format!("{name}.{field}"),
                        value,
                        allowed: ">= 0",
                    });
                }
            }
        }
        if self.history < 4 {
            return Err(BehaviourError::Config {
                field: "history".to_string(),
                value: self.history as i64,
                allowed: ">= 4",
            });
        }
        Ok(())
    }
}

/// A pupil measurement as a stream sample: anything but `Good` is a hole.
fn pupil_sample(t_ns: i64, m: &PupilMeasurement) -> Sample<3> {
    match (m.centre_px(), m.radius_px()) {
        (Some([x, y]), Some(r)) => Sample::valid(t_ns, [x, y, r]),
        _ => Sample::hole(t_ns),
    }
}

/// A velocity as a stream sample: one whose window held a reset or a glitch is a hole.
fn velocity_sample(v: &Velocity) -> Sample<1> {
    if v.flags.is_degraded() || !v.cm_s.is_finite() {
        Sample::hole(v.t_ns)
    } else {
        Sample::valid(v.t_ns, [v.cm_s])
    }
}

fn frame_at(
    t_ns: i64,
    pupil: &[Sample<3>],
    velocity: &[Sample<1>],
    cfg: &BehaviourConfig,
) -> BehaviourFrame {
    let (p, pf) = interpolate_at(pupil, t_ns, &cfg.pupil);
    let (v, vf) = interpolate_at(velocity, t_ns, &cfg.treadmill);
    BehaviourFrame {
        t_ns,
        pupil_x_px: p[0],
        pupil_y_px: p[1],
        pupil_radius_px: p[2],
        treadmill_cm_s: v[0],
        pupil: pf,
        treadmill: vf,
    }
}

/// A bounded, time-ordered history of one stream.
#[derive(Debug)]
struct Channel<const N: usize> {
    samples: Vec<Sample<N>>,
    cap: usize,
    out_of_order: u64,
}

impl<const N: usize> Channel<N> {
    fn new(cap: usize) -> Self {
        Channel {
            samples: Vec::with_capacity(cap),
            cap,
            out_of_order: 0,
        }
    }

    fn push(&mut self, s: Sample<N>) {
        if self.samples.last().is_some_and(|l| s.t_ns <= l.t_ns) {
            self.out_of_order += 1;
            return;
        }
        if self.samples.len() == self.cap {
            // Drop the oldest quarter at once (a memmove, no allocation).
            self.samples.drain(..self.cap / 4);
        }
        self.samples.push(s);
    }

    /// Forgets samples no query at or after `t_ns` can use: keeps the last valid sample
    /// older than `t_ns − keep_ns` and everything after it.
    fn forget_before(&mut self, t_ns: i64, keep_ns: i64) {
        let horizon = t_ns.saturating_sub(keep_ns);
        let i = self.samples.partition_point(|s| s.t_ns < horizon);
        if let Some(l) = self.samples[..i].iter().rposition(|s| s.valid)
            && l > 0
        {
            self.samples.drain(..l);
        }
    }

    fn latest_ns(&self) -> Option<i64> {
        self.samples.last().map(|s| s.t_ns)
    }
}

/// The streaming aligner: behaviour in, one [`BehaviourFrame`] per imaging frame out.
#[derive(Debug)]
pub struct BehaviourAligner {
    cfg: BehaviourConfig,
    pupil: Channel<3>,
    treadmill: Channel<1>,
}

impl BehaviourAligner {
    pub fn new(cfg: BehaviourConfig) -> Result<Self, BehaviourError> {
        cfg.validate()?;
        Ok(BehaviourAligner {
            pupil: Channel::new(cfg.history),
            treadmill: Channel::new(cfg.history),
            cfg,
        })
    }

    /// Adds one eye-camera frame's pupil at its rig time; anything but `Good` is a hole.
    pub fn push_pupil(&mut self, t_ns: i64, m: &PupilMeasurement) {
        self.pupil.push(pupil_sample(t_ns, m));
    }

    /// Adds one velocity (stamped at its window's midpoint); one whose window held a reset or
    /// glitch is a hole.
    pub fn push_velocity(&mut self, v: &Velocity) {
        self.treadmill.push(velocity_sample(v));
    }

    /// Both streams have samples at or after `t_ns`, so a query there will not need to hold.
    pub fn caught_up(&self, t_ns: i64) -> bool {
        self.pupil.latest_ns().is_some_and(|t| t >= t_ns)
            && self.treadmill.latest_ns().is_some_and(|t| t >= t_ns)
    }

    /// Behaviour at rig time `t_ns`. Frames are expected in time order: history older than
    /// the longest bridge before `t_ns` is forgotten.
    pub fn frame(&mut self, t_ns: i64) -> BehaviourFrame {
        let f = frame_at(
            t_ns,
            &self.pupil.samples,
            &self.treadmill.samples,
            &self.cfg,
        );
        self.pupil.forget_before(t_ns, self.cfg.pupil.max_bridge_ns);
        self.treadmill
            .forget_before(t_ns, self.cfg.treadmill.max_bridge_ns);
        f
    }

    /// Allocated sample slots per stream (constant: the history never grows).
    pub fn pupil_capacity(&self) -> usize {
        self.pupil.samples.capacity()
    }

    pub fn treadmill_capacity(&self) -> usize {
        self.treadmill.samples.capacity()
    }

    /// Samples dropped for not being later than the previous one: (pupil, treadmill).
    pub fn out_of_order(&self) -> (u64, u64) {
        (self.pupil.out_of_order, self.treadmill.out_of_order)
    }
}

/// Behaviour for every frame time of a recording (offline and replay). Pupil samples are
/// `(t_ns, measurement)` in time order, velocities in time order.
pub fn align_frames(
    pupil: &[(i64, PupilMeasurement)],
    velocities: &[Velocity],
    frame_times_ns: &[i64],
    cfg: &BehaviourConfig,
) -> Result<Vec<BehaviourFrame>, BehaviourError> {
    cfg.validate()?;
    let p: Vec<Sample<3>> = pupil.iter().map(|(t, m)| pupil_sample(*t, m)).collect();
    let v: Vec<Sample<1>> = velocities.iter().map(velocity_sample).collect();
    Ok(frame_times_ns
        .iter()
        .map(|&t| frame_at(t, &p, &v, cfg))
        .collect())
}
