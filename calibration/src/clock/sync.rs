//! Fitting one device's clock to the rig clock from shared sync ticks.
//!
//! Every device timestamps the same sync pulses on its own clock; the rig records them on the
//! rig clock. Between clock jumps the two are linear, `t_rig = a + b · t_dev` (`b` carries the
//! drift, typically tens of ppm). [`fit_clock`] recovers that mapping:
//!
//! 1. **Match.** *Acquire*: starting from the guess, each rig tick within the match
//!    tolerance `tol` of a device tick's predicted time (a quarter of the median rig tick
//!    interval unless set) is tried as its partner, and the resulting offset is scored by how
//!    many of the next 10 device ticks it explains within `tol / 8`; at least 6 must be. If
//!    none is, the search widens to ±`search_ns` (default: the whole recording), where 8 of 10
//!    must be (many candidates: chance must not pass). *Track*:
//!    once locked, each device tick is matched to the rig tick nearest its prediction (a line
//!    through the last match, its slope refined as matches accumulate, so drift never piles
//!    up) within `tol / 8`; a rig tick is matched once. Missing and spurious ticks on either
//!    side stay unmatched and are counted. After `reacquire_after` consecutive misses the
//!    matcher acquires again from the first miss: that is how a wrong guess, or a jump larger
//!    than `tol / 8`, is recovered. With periodic ticks an offset is known only modulo the
//!    period: a re-acquisition that shifts the offset, or that found two equally good
//!    offsets, marks its segment `ambiguous`.
//! 2. **Reject** matched pairs whose offset `t_rig − t_dev` stands out from a running median
//!    of 7 by more than `outlier_sigmas` robust standard deviations (a spurious tick that
//!    happened to land within the tolerance).
//! 3. **Split at jumps** by binary segmentation: the split that best explains the offsets by
//!    two lines is taken if the step between the lines there exceeds `max(min_jump_ns,
//!    jump_sigmas · σ)` and each side keeps 3 ticks.
//! 4. **Fit** each segment by least squares, one more rejection round at 4σ, and report the
//!    residual RMS and maximum. A segment with fewer than `min_ticks` matches, an RMS above
//!    half the tracking tolerance or a drift beyond `max_drift_ppm` is chance matches (as
//!    around a jump, before the lock is lost) and is dropped; its ticks are counted.
//!
//! Fewer than `min_ticks` matched ticks in all is [`SyncError::TooFewMatches`]: the streams
//! cannot be aligned (wrong streams, no overlap, or a guess off by more than the search).
//!
//! Device ticks are taken in the order they were recorded, which need not be sorted (a clock
//! stepped backwards); rig ticks must be sorted (the rig clock is the reference). Allocates:
//! run it off the hot path, on the accumulated ticks, whenever a fresh fit is wanted.

use super::matching::{TRACK_DIVISOR, match_ticks};
use super::segments::{
    MIN_SIGMA_NS, fit_segment, robust_drift, robust_sigma, running_median, split,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Settings of the clock fit (times in nanoseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Largest distance between a tick's predicted and actual rig time for a match, ns;
    /// 0 means a quarter of the median rig tick interval.
    pub match_tolerance_ns: i64,
    /// Smallest offset step reported as a clock jump, ns.
    pub min_jump_ns: i64,
    /// A step must also exceed this many robust standard deviations of the jitter.
    pub jump_sigmas: f64,
    /// Matched pairs further than this many robust standard deviations from their neighbours
    /// are rejected as spurious.
    pub outlier_sigmas: f64,
    /// Fewest matched ticks for a fit at all, and for a segment to fit its own rate.
    pub min_ticks: usize,
    /// Consecutive unmatched device ticks before the offset is searched again.
    pub reacquire_after: usize,
    /// Largest plausible drift of a device clock, ppm (segments beyond it are rejected).
    pub max_drift_ppm: f64,
    /// How far from the prediction a re-acquisition may look, ns; 0 means the whole rig
    /// recording (a device clock reset can step by hours).
    pub search_ns: i64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            match_tolerance_ns: 0,
            min_jump_ns: 50_000,
            jump_sigmas: 8.0,
            outlier_sigmas: 6.0,
            min_ticks: 10,
            reacquire_after: 3,
            max_drift_ppm: 1000.0,
            search_ns: 0,
        }
    }
}

impl SyncConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), SyncError> {
        let bad = |field, value: f64, allowed| {
            Err(SyncError::Config {
                field,
                value,
                allowed,
            })
        };
        if self.match_tolerance_ns < 0 {
            return bad("match_tolerance_ns", self.match_tolerance_ns as f64, ">= 0");
        }
        if self.min_jump_ns < 0 {
            return bad("min_jump_ns", self.min_jump_ns as f64, ">= 0");
        }
        if !(self.jump_sigmas > 0.0 && self.jump_sigmas.is_finite()) {
            return bad("jump_sigmas", self.jump_sigmas, "> 0");
        }
        if !(self.outlier_sigmas > 0.0 && self.outlier_sigmas.is_finite()) {
            return bad("outlier_sigmas", self.outlier_sigmas, "> 0");
        }
        if self.min_ticks < 2 {
            return bad("min_ticks", self.min_ticks as f64, ">= 2");
        }
        if self.reacquire_after < 1 {
            return bad("reacquire_after", self.reacquire_after as f64, ">= 1");
        }
        if !(self.max_drift_ppm > 0.0 && self.max_drift_ppm.is_finite()) {
            return bad("max_drift_ppm", self.max_drift_ppm, "> 0");
        }
        if self.search_ns < 0 {
            return bad("search_ns", self.search_ns as f64, ">= 0");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum SyncError {
    #[error("sync.{field} = {value} is out of range: {allowed}")]
    Config {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error("rig_ticks must be sorted: tick {index} is earlier than tick {}", index - 1)]
    RigTicksNotSorted { index: usize },
    #[error(
        "cannot align the clocks: only {matched} of {dev_ticks} device ticks matched one of \
         {rig_ticks} rig ticks within {tolerance_ns} ns (need {needed}); wrong tick streams, no \
         overlap in time, or an initial guess off by more than the search window"
    )]
    TooFewMatches {
        matched: usize,
        needed: usize,
        dev_ticks: usize,
        rig_ticks: usize,
        tolerance_ns: i64,
    },
}

/// A first estimate of the mapping: device time `dev_ns` is rig time `rig_ns`, and the device
/// clock runs at `rate` rig seconds per device second. It needs to be right to within the
/// match tolerance, or to within `search_ns` if the ticks are not strictly periodic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockGuess {
    pub dev_ns: i64,
    pub rig_ns: i64,
    pub rate: f64,
}

impl ClockGuess {
    /// The first tick of each stream is the same pulse; nominal rate 1.
    pub fn first_ticks(dev_ticks: &[i64], rig_ticks: &[i64]) -> Option<ClockGuess> {
        Some(ClockGuess {
            dev_ns: *dev_ticks.first()?,
            rig_ns: *rig_ticks.first()?,
            rate: 1.0,
        })
    }

    /// `t_rig ≈ t_dev + offset_ns`.
    pub fn offset(offset_ns: i64) -> ClockGuess {
        ClockGuess {
            dev_ns: 0,
            rig_ns: offset_ns,
            rate: 1.0,
        }
    }
}

/// One stretch of the device clock without jumps: `t_rig = rig_at_ref_ns + rate · (t_dev −
/// dev_ref_ns)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Index in the device tick sequence of the segment's first and last matched tick.
    pub dev_index_first: usize,
    pub dev_index_last: usize,
    /// Device time of the first and last matched tick, ns.
    pub dev_first_ns: i64,
    pub dev_last_ns: i64,
    /// Reference point of the line (the first matched tick's device time), ns.
    pub dev_ref_ns: i64,
    pub rig_at_ref_ns: f64,
    /// Rig seconds per device second (1 + drift).
    pub rate: f64,
    /// Matched ticks used in the fit, and matched ticks rejected as outliers.
    pub ticks: usize,
    pub outliers: usize,
    /// RMS and largest absolute residual of the fitted ticks, ns.
    pub residual_rms_ns: f64,
    pub residual_max_ns: f64,
    /// How far the device clock stepped at the start of this segment, in device ns
    /// (positive: it jumped forward); `None` for the first segment.
    pub jump_ns: Option<f64>,
    /// The re-acquisition that started this segment could not tell offsets a tick period
    /// apart: the nearest was taken and the absolute alignment of this segment is uncertain.
    pub ambiguous: bool,
}

impl Segment {
    /// Rig time for a device time, ns (fractional).
    pub fn to_rig_ns(&self, t_dev_ns: i64) -> f64 {
        self.rig_at_ref_ns + self.rate * (t_dev_ns - self.dev_ref_ns) as f64
    }

    /// `a` in `t_rig = a + b · t_dev`, ns.
    pub fn intercept_ns(&self) -> f64 {
        self.rig_at_ref_ns - self.rate * self.dev_ref_ns as f64
    }

    /// Drift of the device clock, ppm (positive: the device clock runs slow).
    pub fn drift_ppm(&self) -> f64 {
        (self.rate - 1.0) * 1e6
    }
}

/// A device time mapped onto the rig clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapped {
    pub rig_ns: i64,
    pub segment: usize,
    /// The device time lies outside the segment's ticks by more than a tick interval.
    pub extrapolated: bool,
}

/// The fitted mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockFit {
    /// In device-tick order; more than one means the device clock jumped.
    pub segments: Vec<Segment>,
    /// Matched ticks (all segments, outliers included).
    pub matched: usize,
    pub dev_unmatched: usize,
    pub rig_unmatched: usize,
    /// Matched ticks left out of every segment: stretches shorter than `min_ticks` (chance
    /// matches around a jump, or a device clock that jumped twice within a few ticks), or
    /// whose fit was implausible. Device times there map with the neighbouring segment.
    pub dropped: usize,
    /// The match tolerance used, ns.
    pub tolerance_ns: i64,
    /// Robust estimate of the tick jitter (standard deviation of offsets), ns.
    pub jitter_ns: f64,
}

impl ClockFit {
    pub fn has_jumps(&self) -> bool {
        self.segments.len() > 1
    }

    /// Maps a device time with the segment whose device-time span holds it (the last such one
    /// if the device clock stepped backwards and spans overlap; map by [`Segment::to_rig_ns`]
    /// when the sample's segment is known from its order). Before the first segment the first
    /// is used, after the last the last; both are flagged as extrapolated.
    pub fn map(&self, t_dev_ns: i64) -> Option<Mapped> {
        let slack = self.tolerance_ns.saturating_mul(4);
        let mut pick = None;
        for (i, s) in self.segments.iter().enumerate() {
            if t_dev_ns >= s.dev_first_ns.saturating_sub(slack)
                && t_dev_ns <= s.dev_last_ns.saturating_add(slack)
            {
                pick = Some((i, false));
            }
        }
        let (i, extrapolated) = match pick {
            Some(p) => p,
            None => {
                let first = self.segments.first()?;
                if t_dev_ns < first.dev_first_ns {
                    (0, true)
                } else {
                    // After (or between) segments: the last one that started before.
                    let i = self
                        .segments
                        .iter()
                        .rposition(|s| s.dev_first_ns <= t_dev_ns)
                        .unwrap_or(0);
                    (i, true)
                }
            }
        };
        let rig = self.segments[i].to_rig_ns(t_dev_ns);
        Some(Mapped {
            rig_ns: rig.round() as i64,
            segment: i,
            extrapolated,
        })
    }
}

/// Fits the device clock to the rig clock. See the module documentation.
pub fn fit_clock(
    dev_ticks: &[i64],
    rig_ticks: &[i64],
    guess: ClockGuess,
    cfg: &SyncConfig,
) -> Result<ClockFit, SyncError> {
    cfg.validate()?;
    if let Some(i) = rig_ticks.windows(2).position(|w| w[1] < w[0]) {
        return Err(SyncError::RigTicksNotSorted { index: i + 1 });
    }
    let tolerance_ns = if cfg.match_tolerance_ns > 0 {
        cfg.match_tolerance_ns
    } else {
        median_interval(rig_ticks).map_or(0, |m| m / 4)
    };
    let too_few = |matched| SyncError::TooFewMatches {
        matched,
        needed: cfg.min_ticks,
        dev_ticks: dev_ticks.len(),
        rig_ticks: rig_ticks.len(),
        tolerance_ns,
    };
    if tolerance_ns <= 0 || dev_ticks.len() < cfg.min_ticks {
        return Err(too_few(0));
    }
    let pairs = match_ticks(dev_ticks, rig_ticks, guess, tolerance_ns, cfg);
    if pairs.len() < cfg.min_ticks {
        return Err(too_few(pairs.len()));
    }
    // Offsets with the drift taken out are flat between jumps; their deviations from a
    // running median (which keeps each side of a step) give the jitter and the outliers.
    let drift = robust_drift(&pairs);
    let offsets: Vec<f64> = pairs
        .iter()
        .map(|p| (p.r - p.d) as f64 - drift * (p.d - pairs[0].d) as f64)
        .collect();
    let resid: Vec<f64> = offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| o - running_median(&offsets, i, 3))
        .collect();
    let sigma = robust_sigma(&resid).max(MIN_SIGMA_NS);
    let mut inlier: Vec<bool> = resid
        .iter()
        .map(|r| r.abs() <= cfg.outlier_sigmas * sigma)
        .collect();
    if inlier.iter().filter(|&&k| k).count() < cfg.min_ticks {
        return Err(too_few(inlier.iter().filter(|&&k| k).count()));
    }
    let jump_threshold = (cfg.min_jump_ns as f64).max(cfg.jump_sigmas * sigma);
    let mut bounds = Vec::new();
    split(&pairs, &inlier, 0, pairs.len(), jump_threshold, &mut bounds);
    bounds.sort_unstable();
    let mut segments = Vec::new();
    let mut start = 0;
    for end in bounds.into_iter().chain(std::iter::once(pairs.len())) {
        if let Some(seg) = fit_segment(&pairs[start..end], &mut inlier[start..end]) {
            segments.push(seg);
        }
        start = end;
    }
    // A segment built on chance matches has residuals of the order of the tolerance and an
    // absurd rate; real ones sit at the jitter level.
    let track_tol = tolerance_ns as f64 / TRACK_DIVISOR;
    // Stretches shorter than `min_ticks` are mostly chance matches around a jump, and cannot
    // pin a rate anyway: they are dropped and counted.
    let before: usize = segments.iter().map(|g| g.ticks).sum();
    segments.retain(|g| {
        g.residual_rms_ns <= 0.5 * track_tol
            && g.drift_ppm().abs() <= cfg.max_drift_ppm
            && g.ticks >= cfg.min_ticks
    });
    for i in 1..segments.len() {
        let (prev, cur) = (&segments[i - 1], &segments[i]);
        let t = cur.dev_first_ns;
        segments[i].jump_ns = Some((prev.to_rig_ns(t) - cur.to_rig_ns(t)) / cur.rate);
    }
    let fitted: usize = segments.iter().map(|s| s.ticks).sum();
    if segments.is_empty() {
        return Err(too_few(fitted));
    }
    Ok(ClockFit {
        segments,
        matched: pairs.len(),
        dev_unmatched: dev_ticks.len() - pairs.len(),
        rig_unmatched: rig_ticks.len() - pairs.len(),
        dropped: before - fitted,
        tolerance_ns,
        jitter_ns: sigma,
    })
}

fn median_interval(ticks: &[i64]) -> Option<i64> {
    let mut d: Vec<i64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    if d.is_empty() {
        return None;
    }
    let mid = d.len() / 2;
    Some(*d.select_nth_unstable(mid).1)
}
