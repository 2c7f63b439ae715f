//! Online clock fitting: every device's timestamps placed on the rig clock before a stage sees
//! them.
//!
//! A bridge sends each shared sync pulse once per clock that saw it (`sync` with code
//! `clock_tick`, `channel` = the [`ClockDomain`], `t_ns` on that clock). [`ClockSync`] keeps the
//! ticks of the rig master and of every device domain and, on each device tick, refits that
//! domain with the calibration library's [`fit_clock`] (the same matching, outlier rejection and
//! jump segmentation as offline) over its most recent `window_ticks` ticks. Samples of a stream
//! marked `device` in `[clocks]` are mapped with the domain's newest line; before the first fit,
//! with the offset between the domain's first tick and the rig tick that arrived last before it
//! (rate 1); before any tick, not at all (their time passes through, counted).
//!
//! # Determinism (replay)
//! Everything here is a function of the ticks alone, in the order ingest received them: the
//! session log keeps every tick as received (sync `Input` records, in ingest order) and every
//! change of mapping as a `Clock` record with its generation; each device sample's record
//! carries the generation it was mapped with. Replay feeds the logged ticks through a fresh
//! [`ClockSync`], checks that every generation comes out bit-identical, and maps each sample with
//! its own generation, so it reproduces the live rig times exactly.
//!
//! # Bad input
//! Ticks that stop (a device's while the rig's keep coming), a clock that jumps, a domain that
//! cannot be aligned (the fit finds too few matches) or loses its lock: an anomaly, a counter and
//! a flag on the domain; samples keep flowing (mapped with the last good line, counted as
//! flagged) and the session keeps recording.
//!
//! Allocates (the fit): runs on ingest's thread only on a tick (≈ 1 Hz per domain), bounded by
//! the window.

use crate::backbone::telemetry::{Anomaly, Counters};
use crate::vocab::protocol::{ClockDomain, Stream};
use crate::vocab::section::{Invalid, MAX_WAIT_S, Section};
use serde::{Deserialize, Serialize};
use twinloop_calibration::clock::{ClockFit, ClockGuess, SyncConfig, SyncError, fit_clock};

/// Which clock a stream's `t_ns` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeBase {
    /// Already the rig clock (passed through).
    #[default]
    Rig,
    /// The device's own clock: mapped with its domain's fit.
    Device,
}

/// `[clocks]`: which streams carry device times, and how their clocks are fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClocksConfig {
    /// Clock of two-photon frames' `t_ns` (domain 1).
    pub two_photon: TimeBase,
    /// Clock of eye-camera frames' `t_ns` (domain 2).
    pub eye_camera: TimeBase,
    /// Clock of treadmill samples' `t_ns` (domain 3).
    pub treadmill: TimeBase,
    /// Clock of photodiode sync events (domain 4; recorded, not mapped: nothing consumes them
    /// live yet).
    pub photodiode: TimeBase,
    /// Device ticks in each refit (the most recent); bounds the refit's cost and lets the line
    /// follow a drift that changes with temperature.
    pub window_ticks: usize,
    /// A device whose ticks have not come for this many seconds of rig ticks is flagged as
    /// stopped.
    pub stale_after_s: f64,
    /// The fit's own settings (the calibration library's `SyncConfig`).
    pub sync: SyncConfig,
}

impl Default for ClocksConfig {
    fn default() -> Self {
        ClocksConfig {
            two_photon: TimeBase::Rig,
            eye_camera: TimeBase::Rig,
            treadmill: TimeBase::Rig,
            photodiode: TimeBase::Rig,
            window_ticks: 300,
            stale_after_s: 5.0,
            sync: SyncConfig::default(),
        }
    }
}

impl ClocksConfig {
    /// The domain whose fit maps `stream`'s times, when the stream is marked `device`.
    pub fn domain_of(&self, stream: Stream) -> Option<ClockDomain> {
        let (base, domain) = match stream {
            Stream::TwoPhoton => (self.two_photon, ClockDomain::TwoPhoton),
            Stream::EyeCamera => (self.eye_camera, ClockDomain::EyeCamera),
            Stream::Treadmill => (self.treadmill, ClockDomain::Treadmill),
            _ => return None,
        };
        (base == TimeBase::Device).then_some(domain)
    }

    /// Whether any stream is on a device clock.
    pub fn any_device(&self) -> bool {
        [
            self.two_photon,
            self.eye_camera,
            self.treadmill,
            self.photodiode,
        ]
        .contains(&TimeBase::Device)
    }
}

impl Section for ClocksConfig {
    const NAME: &'static str = "clocks";

    fn validate(&self) -> Result<(), Invalid> {
        if self.window_ticks < self.sync.min_ticks.max(2) {
            return Err(Invalid::new(
                "clocks.window_ticks",
                self.window_ticks,
                format!(
                    "must be at least clocks.sync.min_ticks ({})",
                    self.sync.min_ticks
                ),
            ));
        }
        Invalid::positive_at_most(
            "clocks.stale_after_s",
            self.stale_after_s,
            MAX_WAIT_S,
            "seconds",
        )?;
        // The calibration crate's own check names the field after `sync.`.
        self.sync.validate().map_err(|e| {
            Invalid::new(
                "clocks.sync",
                "",
                e.to_string().trim_start_matches("sync.").to_string(),
            )
        })
    }
}

/// A line from device to rig time: `rig = rig_at_ref_ns + rate · (dev − dev_ref_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub dev_ref_ns: i64,
    pub rig_at_ref_ns: f64,
    pub rate: f64,
}

impl Mapping {
    pub fn to_rig_ns(&self, t_dev_ns: i64) -> i64 {
        (self.rig_at_ref_ns + self.rate * t_dev_ns.wrapping_sub(self.dev_ref_ns) as f64).round()
            as i64
    }

    pub fn drift_ppm(&self) -> f64 {
        (self.rate - 1.0) * 1e6
    }
}

/// How far a domain's mapping can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// No tick yet: times pass through unmapped.
    NoTicks,
    /// First-tick offset, rate 1 (before enough ticks for a fit).
    Provisional,
    /// A fitted line that explains the newest ticks.
    Fitted,
    /// The newest ticks do not match the line (a jump being confirmed, or chance): the last
    /// good line is kept, samples are flagged.
    Lost,
    /// Enough ticks but no fit (too few matches): the provisional line is kept, flagged.
    Unaligned,
    /// The device's ticks stopped while the rig's kept coming: extrapolating, flagged.
    Stopped,
}

/// A summary of one domain's newest fit, for the log, the bus and the session summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub drift_ppm: f64,
    pub residual_rms_ns: f64,
    pub residual_max_ns: f64,
    /// Robust estimate of the ticks' jitter, ns.
    pub jitter_ns: f64,
    /// Ticks in the newest segment's fit.
    pub ticks_used: usize,
    /// Device ticks in the window with no rig partner (missed by the rig, or spurious).
    pub dev_unmatched: usize,
    /// Rig ticks in the window with no device partner (missed by the device, or spurious).
    pub rig_unmatched: usize,
    /// Segments in the window (more than one: the clock jumped).
    pub segments: usize,
    /// The newest segment's offset could be a tick period off.
    pub ambiguous: bool,
}

/// One change of a domain's mapping: a `Clock` record in the log and a `clock` message on the
/// bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockUpdate {
    pub domain: ClockDomain,
    /// Counts from 1 per domain; samples carry the generation they were mapped with.
    pub generation: u32,
    /// Device ticks and rig ticks received when it was made.
    pub dev_ticks: u64,
    pub rig_ticks: u64,
    pub state: ClockState,
    pub mapping: Mapping,
    pub fit: Option<FitReport>,
}

/// Per domain totals for the session summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainSummary {
    pub domain: ClockDomain,
    pub state: ClockState,
    pub dev_ticks: u64,
    pub generations: u32,
    pub refits: u64,
    pub fit_failures: u64,
    pub jumps: u64,
    pub mapping: Option<Mapping>,
    pub fit: Option<FitReport>,
    /// Samples mapped: provisionally, with a fit, flagged (lost, unaligned, stopped), unmapped.
    pub samples_provisional: u64,
    pub samples_fitted: u64,
    pub samples_flagged: u64,
    pub samples_unmapped: u64,
}

#[derive(Debug, Clone)]
struct Domain {
    id: ClockDomain,
    ticks: Vec<i64>,
    /// Rig ticks received when the first device tick came.
    rig_ticks_at_first_tick: usize,
    generation: u32,
    state: ClockState,
    mapping: Option<Mapping>,
    fit: Option<FitReport>,
    /// Rig-tick count when the newest device tick came.
    rig_ticks_at_last_tick: usize,
    /// Device time of the newest segment that started with a jump (counted once).
    last_jump_at: Option<i64>,
    refits: u64,
    fit_failures: u64,
    jumps: u64,
    samples: [u64; 4],
    /// Reported as sending samples without ticks, and no tick since.
    unticked: bool,
}

/// Rig master ticks and every device domain's ticks, fitted as they come.
pub struct ClockSync {
    cfg: ClocksConfig,
    rig: Vec<i64>,
    domains: Vec<Domain>,
}

/// What a tick changed.
#[derive(Debug, Default)]
pub struct TickOutcome {
    pub updates: Vec<ClockUpdate>,
    pub anomalies: Vec<Anomaly>,
    /// The first tick of a domain that had been reported as sending samples without ticks.
    pub ticking_again: bool,
}

/// Samples a device-clocked stream may send before its first tick without a warning: several
/// seconds at any imaging, camera or treadmill rate, and more than one 1 Hz tick interval.
pub const UNTICKED_AFTER_SAMPLES: u64 = 300;

/// Ticks of the rig master are needed for a stale check to mean anything: how many rig ticks
/// without a device tick count as `stale_after_s`, from the median rig interval.
fn median_interval_ns(t: &[i64]) -> Option<i64> {
    if t.len() < 2 {
        return None;
    }
    let tail = &t[t.len().saturating_sub(21)..];
    let mut d: Vec<i64> = tail.windows(2).map(|w| w[1] - w[0]).collect();
    let mid = d.len() / 2;
    Some(*d.select_nth_unstable(mid).1)
}

impl ClockSync {
    pub fn new(cfg: ClocksConfig) -> ClockSync {
        let domains = ClockDomain::DEVICES
            .iter()
            .map(|&id| Domain {
                id,
                ticks: Vec::new(),
                rig_ticks_at_first_tick: 0,
                generation: 0,
                state: ClockState::NoTicks,
                mapping: None,
                fit: None,
                rig_ticks_at_last_tick: 0,
                last_jump_at: None,
                refits: 0,
                fit_failures: 0,
                jumps: 0,
                samples: [0; 4],
                unticked: false,
            })
            .collect();
        ClockSync {
            cfg,
            rig: Vec::new(),
            domains,
        }
    }

    pub fn config(&self) -> &ClocksConfig {
        &self.cfg
    }

    /// One tick of `domain` at `t_ns` on that domain's clock.
    pub fn on_tick(&mut self, domain: ClockDomain, t_ns: i64) -> TickOutcome {
        let mut out = TickOutcome::default();
        let Some(i) = domain.device_index() else {
            if self.rig.last().is_some_and(|&last| t_ns < last) {
                // The reference must be sorted: a rig tick back in time is dropped.
                out.anomalies.push(Anomaly::ClockTickRejected {
                    domain,
                    t_ns,
                    reason: "rig ticks must increase".into(),
                });
                return out;
            }
            self.rig.push(t_ns);
            // A device still without a line gets its provisional one from this tick.
            for d in 0..self.domains.len() {
                if self.domains[d].state == ClockState::NoTicks && !self.domains[d].ticks.is_empty()
                {
                    self.provisional(d, &mut out);
                }
            }
            self.check_stale(&mut out);
            return out;
        };
        let rig_n = self.rig.len();
        let d = &mut self.domains[i];
        if d.ticks.is_empty() {
            d.rig_ticks_at_first_tick = rig_n;
        }
        d.ticks.push(t_ns);
        d.rig_ticks_at_last_tick = rig_n;
        if d.unticked {
            d.unticked = false;
            out.ticking_again = true;
        }
        if d.state == ClockState::Stopped {
            // Ticks again: the next fit says how well.
            d.state = if d.fit.is_some() {
                ClockState::Fitted
            } else {
                ClockState::Provisional
            };
        }
        if d.mapping.is_none() {
            if !self.rig.is_empty() {
                self.provisional(i, &mut out);
            }
            return out;
        }
        if self.domains[i].ticks.len() >= self.cfg.sync.min_ticks {
            self.refit(i, &mut out);
        }
        out
    }

    /// Maps a sample of `domain` at device time `t_dev_ns`: `(rig_ns, generation)`;
    /// generation 0 means no mapping yet (the time passes through).
    pub fn map(&mut self, domain: ClockDomain, t_dev_ns: i64) -> (i64, u32) {
        let Some(i) = domain.device_index() else {
            return (t_dev_ns, 0);
        };
        let d = &mut self.domains[i];
        let slot = match d.state {
            ClockState::NoTicks => 3,
            ClockState::Provisional => 0,
            ClockState::Fitted => 1,
            _ => 2,
        };
        d.samples[slot] += 1;
        match d.mapping {
            Some(m) => (m.to_rig_ns(t_dev_ns), d.generation),
            None => (t_dev_ns, 0),
        }
    }

    /// Once per silence: `Some(samples)` when `domain`'s stream has sent
    /// [`UNTICKED_AFTER_SAMPLES`] samples and its clock no tick (a bridge configured from a
    /// file that assumes device clocks, say). Its first tick ends the silence
    /// ([`TickOutcome::ticking_again`]).
    pub fn newly_unticked(&mut self, domain: ClockDomain) -> Option<u64> {
        let d = &mut self.domains[domain.device_index()?];
        let silent = d.state == ClockState::NoTicks && d.ticks.is_empty();
        let n = d.samples[3];
        (silent && !d.unticked && n >= UNTICKED_AFTER_SAMPLES).then(|| {
            d.unticked = true;
            n
        })
    }

    pub fn state(&self, domain: ClockDomain) -> Option<ClockState> {
        Some(self.domains[domain.device_index()?].state)
    }

    /// Every device domain that has seen a tick, for the session summary.
    pub fn summary(&self) -> Vec<DomainSummary> {
        self.domains
            .iter()
            .filter(|d| !d.ticks.is_empty() || d.samples.iter().any(|&n| n > 0))
            .map(|d| DomainSummary {
                domain: d.id,
                state: d.state,
                dev_ticks: d.ticks.len() as u64,
                generations: d.generation,
                refits: d.refits,
                fit_failures: d.fit_failures,
                jumps: d.jumps,
                mapping: d.mapping,
                fit: d.fit.clone(),
                samples_provisional: d.samples[0],
                samples_fitted: d.samples[1],
                samples_flagged: d.samples[2],
                samples_unmapped: d.samples[3],
            })
            .collect()
    }

    fn update(&mut self, i: usize, out: &mut TickOutcome) {
        let rig_ticks = self.rig.len() as u64;
        let d = &mut self.domains[i];
        d.generation += 1;
        let Some(mapping) = d.mapping else { return };
        out.updates.push(ClockUpdate {
            domain: d.id,
            generation: d.generation,
            dev_ticks: d.ticks.len() as u64,
            rig_ticks,
            state: d.state,
            mapping,
            fit: d.fit.clone(),
        });
    }

    /// The first device tick is the pulse of the rig tick that arrived last before it (or the
    /// first one after it): send each pulse's rig tick first.
    fn provisional(&mut self, i: usize, out: &mut TickOutcome) {
        let d = &mut self.domains[i];
        let Some(&dev) = d.ticks.first() else { return };
        // The rig tick that arrived last before the device's first one, or else the first
        // rig tick after it.
        let Some(&rig) = self.rig.get(d.rig_ticks_at_first_tick.saturating_sub(1)) else {
            return;
        };
        d.mapping = Some(Mapping {
            dev_ref_ns: dev,
            rig_at_ref_ns: rig as f64,
            rate: 1.0,
        });
        d.state = ClockState::Provisional;
        self.update(i, out);
    }

    fn refit(&mut self, i: usize, out: &mut TickOutcome) {
        let w = self.cfg.window_ticks;
        let d = &self.domains[i];
        let Some(current) = d.mapping else { return };
        let first = d.ticks.len().saturating_sub(w);
        let dev = &d.ticks[first..];
        // Rig ticks from a little before the window's first device tick maps to.
        let margin = median_interval_ns(&self.rig).unwrap_or(1_000_000_000) * 3;
        let from = current.to_rig_ns(dev[0]).saturating_sub(margin);
        let lo = self
            .rig
            .partition_point(|&r| r < from)
            .min(self.rig.len().saturating_sub(w + 10));
        let rig = &self.rig[lo..];
        let guess = ClockGuess {
            dev_ns: current.dev_ref_ns,
            rig_ns: current.rig_at_ref_ns.round() as i64,
            rate: current.rate,
        };
        let result = fit_clock(dev, rig, guess, &self.cfg.sync);
        let dev_total = self.domains[i].ticks.len();
        let domain = self.domains[i].id;
        let d = &mut self.domains[i];
        d.refits += 1;
        match result {
            Ok(fit) => self.adopt(i, first, &fit, out),
            Err(SyncError::TooFewMatches { matched, .. }) => {
                d.fit_failures += 1;
                // Unaligned once a whole fit's worth of ticks beyond the first could not be
                // matched; before that a fit may simply be early.
                if d.state != ClockState::Unaligned
                    && d.state != ClockState::Lost
                    && dev_total >= 2 * self.cfg.sync.min_ticks
                {
                    let was_fitted = d.fit.is_some();
                    d.state = if was_fitted {
                        ClockState::Lost
                    } else {
                        ClockState::Unaligned
                    };
                    out.anomalies.push(Anomaly::ClockUnaligned {
                        domain,
                        dev_ticks: dev_total as u64,
                        matched: matched as u64,
                    });
                    self.update(i, out);
                }
            }
            Err(e) => {
                d.fit_failures += 1;
                tracing::warn!(domain = domain.name(), error = %e, "clock fit failed");
            }
        }
    }

    fn adopt(&mut self, i: usize, first: usize, fit: &ClockFit, out: &mut TickOutcome) {
        let reacquire = self.cfg.sync.reacquire_after;
        let d = &mut self.domains[i];
        let Some(last) = fit.segments.last() else {
            return;
        };
        let dev_n = d.ticks.len();
        // The newest ticks must be explained by the newest segment, or the clock is off the
        // line (a jump not yet long enough for a segment of its own).
        let behind = dev_n - 1 - (first + last.dev_index_last);
        let report = FitReport {
            drift_ppm: last.drift_ppm(),
            residual_rms_ns: last.residual_rms_ns,
            residual_max_ns: last.residual_max_ns,
            jitter_ns: fit.jitter_ns,
            ticks_used: last.ticks,
            dev_unmatched: fit.dev_unmatched,
            rig_unmatched: fit.rig_unmatched,
            segments: fit.segments.len(),
            ambiguous: last.ambiguous,
        };
        if behind > reacquire {
            if d.state != ClockState::Lost {
                d.state = ClockState::Lost;
                out.anomalies.push(Anomaly::ClockLost {
                    domain: d.id,
                    dev_ticks: dev_n as u64,
                    unmatched: behind as u64,
                });
                self.update(i, out);
            }
            return;
        }
        if let Some(step) = last.jump_ns
            && d.last_jump_at != Some(last.dev_first_ns)
            && d.fit.is_some()
        {
            d.last_jump_at = Some(last.dev_first_ns);
            d.jumps += 1;
            out.anomalies.push(Anomaly::ClockJump {
                domain: d.id,
                step_ns: step,
                at_dev_ns: last.dev_first_ns,
            });
        }
        d.mapping = Some(Mapping {
            dev_ref_ns: last.dev_ref_ns,
            rig_at_ref_ns: last.rig_at_ref_ns,
            rate: last.rate,
        });
        d.fit = Some(report);
        d.state = ClockState::Fitted;
        self.update(i, out);
    }

    /// Flags device domains whose ticks stopped while the rig's kept coming.
    fn check_stale(&mut self, out: &mut TickOutcome) {
        let Some(interval) = median_interval_ns(&self.rig) else {
            return;
        };
        let ticks = (self.cfg.stale_after_s * 1e9 / interval.max(1) as f64).ceil() as usize;
        let rig_n = self.rig.len();
        for i in 0..self.domains.len() {
            let d = &mut self.domains[i];
            if d.ticks.is_empty()
                || d.state == ClockState::Stopped
                || rig_n - d.rig_ticks_at_last_tick <= ticks
            {
                continue;
            }
            d.state = ClockState::Stopped;
            out.anomalies.push(Anomaly::ClockTicksStopped {
                domain: d.id,
                dev_ticks: d.ticks.len() as u64,
                rig_ticks_since: (rig_n - d.rig_ticks_at_last_tick) as u64,
            });
            self.update(i, out);
        }
    }
}

/// Counts what a tick changed into the shared counters.
pub fn count(outcome: &TickOutcome, counters: &Counters) {
    for u in &outcome.updates {
        if u.state == ClockState::Fitted {
            Counters::inc(&counters.clock_refits);
        }
    }
    for a in &outcome.anomalies {
        match a {
            Anomaly::ClockJump { .. } => Counters::inc(&counters.clock_jumps),
            _ => Counters::inc(&counters.clock_anomalies),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync() -> ClockSync {
        ClockSync::new(ClocksConfig {
            two_photon: TimeBase::Device,
            ..ClocksConfig::default()
        })
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_drifting_clock_is_fitted_and_mapped() {
        let mut c = sync();
        // Device = 2.5 s + (1 + 50e-6) · rig.
        let dev = |t: i64| 2_500_000_000 + t + t / 20_000;
        assert_eq!(
            c.map(ClockDomain::TwoPhoton, 7).1,
            0,
            "no tick yet: unmapped"
        );
        for k in 0..30 {
            c.on_tick(ClockDomain::Rig, k * S);
            c.on_tick(ClockDomain::TwoPhoton, dev(k * S));
        }
        assert_eq!(c.state(ClockDomain::TwoPhoton), Some(ClockState::Fitted));
        let (rig, generation) = c.map(ClockDomain::TwoPhoton, dev(29 * S + S / 2));
        assert!(generation > 1);
        assert!((rig - (29 * S + S / 2)).abs() <= 2, "{rig}");
    }

    #[test]
    fn a_stream_that_cannot_be_aligned_is_flagged_not_fatal() {
        let mut c = sync();
        let mut anomalies = Vec::new();
        // Device ticks at a different, irregular rate: nothing matches.
        for k in 0..40i64 {
            anomalies.extend(c.on_tick(ClockDomain::Rig, k * S).anomalies);
            let t = k * 1_370_000_000 + (k * k % 7) * 90_000_000;
            anomalies.extend(c.on_tick(ClockDomain::TwoPhoton, t).anomalies);
        }
        assert_eq!(c.state(ClockDomain::TwoPhoton), Some(ClockState::Unaligned));
        assert_eq!(
            anomalies
                .iter()
                .filter(|a| matches!(a, Anomaly::ClockUnaligned { .. }))
                .count(),
            1,
            "flagged once: {anomalies:?}"
        );
        // Samples still get the provisional line.
        assert!(c.map(ClockDomain::TwoPhoton, 5 * S).1 > 0);
    }

    #[test]
    fn ticks_that_stop_are_flagged_and_resume() {
        let mut c = sync();
        let mut stopped = 0;
        for k in 0..40i64 {
            let out = c.on_tick(ClockDomain::Rig, k * S);
            stopped += out
                .anomalies
                .iter()
                .filter(|a| matches!(a, Anomaly::ClockTicksStopped { .. }))
                .count();
            if !(15..30).contains(&k) {
                c.on_tick(ClockDomain::TwoPhoton, k * S + 1_000);
            }
        }
        assert_eq!(stopped, 1);
        assert_eq!(c.state(ClockDomain::TwoPhoton), Some(ClockState::Fitted));
    }
}
