//! The display loop: trials from a queue, gray between them and whenever the queue runs dry,
//! every flip timestamped on the rig clock.
//!
//! # Design constraints
//! - The player never waits for the selector: an empty queue at the end of the inter-trial
//!   gray shows gray and counts an underrun; it asks again on the next flip.
//! - Stimulus time is counted in display frames (`stimulus_frame / rate_hz`), as PsychoPy's
//!   frame-based timing does: a missed vsync delays the rest of the stimulus by a frame, and
//!   is detected (flip interval > 1.5 nominal periods) and counted, never hidden.
//! - Any error (a spec that cannot be prepared, a GPU error) shows gray for that frame and is
//!   counted; the loop and its timestamps go on, so the session keeps recording.
//! - Time is injected: `clock()` returns rig time in ns, read right after each present
//!   returns (for a vsync'd display, the flip), so tests drive the loop with a fake clock.

use crate::content::{FrameContent, Prepared};
use crate::cpu;
use crate::gamma::GammaLut;
use crate::geometry::Projection;
use crate::gpu::{GpuError, GpuRenderer, Output};
use crate::photodiode::{PatchFrame, PhotodiodePatch};
use crate::spec::StimulusSpec;
use std::collections::VecDeque;

/// A trial waiting to be shown.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTrial {
    /// The caller's trial number, carried into the flip records.
    pub trial: u64,
    pub spec: StimulusSpec,
    pub duration_s: f64,
}

/// Where the player takes its next trial from; never blocks.
pub trait StimulusQueue {
    fn try_next(&mut self) -> Option<QueuedTrial>;
}

impl StimulusQueue for VecDeque<QueuedTrial> {
    fn try_next(&mut self) -> Option<QueuedTrial> {
        self.pop_front()
    }
}

impl StimulusQueue for std::sync::mpsc::Receiver<QueuedTrial> {
    fn try_next(&mut self) -> Option<QueuedTrial> {
        self.try_recv().ok()
    }
}

/// Something frames are shown on. `show` returns once the frame is presented (after vsync
/// for a real monitor).
pub trait Display {
    fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String>;
}

/// The offscreen GPU renderer as a display (keeps the last frame's drive levels).
pub struct GpuDisplay {
    pub renderer: GpuRenderer,
    pub projection: Projection,
    pub gamma: GammaLut,
    pub last_frame: Vec<u8>,
}

impl GpuDisplay {
    pub fn new(projection: Projection, gamma: GammaLut) -> Result<GpuDisplay, GpuError> {
        Ok(GpuDisplay {
            renderer: GpuRenderer::new(projection.width(), projection.height())?,
            last_frame: vec![cpu::MEAN_GRAY; projection.pixels()],
            projection,
            gamma,
        })
    }
}

impl Display for GpuDisplay {
    fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String> {
        let out = Output {
            gamma: Some(&self.gamma),
            patch: Some(patch),
        };
        self.renderer
            .render(content, &self.projection, out, &mut self.last_frame)
            .map_err(|e| e.to_string())
    }
}

/// The CPU reference as a display: the fallback when no GPU is available.
pub struct CpuDisplay {
    pub projection: Projection,
    pub gamma: GammaLut,
    pub last_frame: Vec<u8>,
}

impl CpuDisplay {
    pub fn new(projection: Projection, gamma: GammaLut) -> CpuDisplay {
        CpuDisplay {
            last_frame: vec![cpu::MEAN_GRAY; projection.pixels()],
            projection,
            gamma,
        }
    }
}

impl Display for CpuDisplay {
    fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String> {
        cpu::render_display(
            content,
            &self.projection,
            &self.gamma,
            Some(patch),
            &mut self.last_frame,
        );
        Ok(())
    }
}

/// One flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipRecord {
    pub display_frame: u64,
    /// Rig time (ns) the present returned.
    pub t_ns: i64,
    /// The trial on screen (`None` while gray).
    pub trial: Option<u64>,
    /// Frame index within the trial (0 = onset).
    pub stimulus_frame: Option<u64>,
    pub onset: bool,
    /// Vsyncs missed just before this flip (0 normally).
    pub missed_vsyncs: u32,
    /// This frame fell back to gray because of an error.
    pub error: bool,
}

/// Running counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerCounts {
    pub flips: u64,
    pub trials: u64,
    pub underruns: u64,
    pub missed_vsyncs: u64,
    /// Flips that came late (an interval over 1.5 nominal periods): the previous frame stayed
    /// up for `1 + missed` vsyncs, so a frame was dropped from the intended timeline.
    pub dropped_frames: u64,
    pub render_errors: u64,
    pub prepare_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerConfig {
    /// Nominal display rate, Hz.
    pub rate_hz: f64,
    /// Gray between trials, seconds.
    pub gray_s: f64,
    pub patch: PhotodiodePatch,
}

enum State {
    Gray {
        until: u64,
    },
    Trial {
        trial: u64,
        prepared: Box<Prepared>,
        onset: u64,
        frames: u64,
    },
}

/// The display loop over a queue, a display and a clock.
pub struct Player<Q, D, C> {
    pub queue: Q,
    pub display: D,
    clock: C,
    config: PlayerConfig,
    state: State,
    gray: Prepared,
    frame: u64,
    last_t: Option<i64>,
    pub counts: PlayerCounts,
    /// Flip-interval statistics.
    pub stats: FlipStats,
    /// The most recent error, for the log.
    pub last_error: Option<String>,
}

impl<Q: StimulusQueue, D: Display, C: FnMut() -> i64> Player<Q, D, C> {
    pub fn new(queue: Q, display: D, clock: C, config: PlayerConfig) -> Self {
        let gray_frames = (config.gray_s * config.rate_hz).round() as u64;
        Player {
            queue,
            display,
            clock,
            config,
            state: State::Gray { until: gray_frames },
            gray: Prepared::gray(),
            frame: 0,
            last_t: None,
            counts: PlayerCounts::default(),
            stats: FlipStats::new(config.rate_hz),
            last_error: None,
        }
    }

    fn advance(&mut self) {
        let f = self.frame;
        if let State::Trial { onset, frames, .. } = self.state
            && f >= onset + frames
        {
            let g = (self.config.gray_s * self.config.rate_hz).round() as u64;
            self.state = State::Gray { until: f + g };
        }
        let State::Gray { until } = self.state else {
            return;
        };
        if f < until {
            return;
        }
        match self.queue.try_next() {
            None => self.counts.underruns += 1,
            Some(q) => match Prepared::new(&q.spec) {
                Ok(p) => {
                    self.counts.trials += 1;
                    self.state = State::Trial {
                        trial: q.trial,
                        prepared: Box::new(p),
                        onset: f,
                        frames: ((q.duration_s * self.config.rate_hz).round() as u64).max(1),
                    };
                }
                Err(e) => {
                    self.counts.prepare_errors += 1;
                    self.last_error = Some(format!("trial {}: {e}", q.trial));
                }
            },
        }
    }

    /// Show the next frame and timestamp its flip.
    pub fn step(&mut self) -> FlipRecord {
        self.advance();
        let f = self.frame;
        let rate = self.config.rate_hz;
        let (trial, stim_frame) = match &self.state {
            State::Trial { trial, onset, .. } => (Some(*trial), Some(f - onset)),
            State::Gray { .. } => (None, None),
        };
        let patch = PatchFrame {
            patch: self.config.patch,
            level: self.config.patch.level(f, stim_frame),
        };
        let content = match (&mut self.state, stim_frame) {
            (State::Trial { prepared, .. }, Some(k)) => prepared.frame(k as f64 / rate),
            _ => self.gray.frame(0.0),
        };
        let mut error = false;
        if let Err(e) = self.display.show(&content, &patch) {
            error = true;
            self.counts.render_errors += 1;
            self.last_error = Some(e);
            if let Err(e2) = self.display.show(&FrameContent::Gray, &patch) {
                self.last_error = Some(e2);
            }
        }
        let t = (self.clock)();
        let period = 1e9 / rate;
        let missed = match self.last_t {
            Some(prev) if (t - prev) as f64 > 1.5 * period => (((t - prev) as f64 / period).round()
                as u32)
                .saturating_sub(1)
                .max(1),
            _ => 0,
        };
        if let Some(prev) = self.last_t {
            self.stats.add(t - prev);
        }
        self.last_t = Some(t);
        self.counts.missed_vsyncs += missed as u64;
        self.counts.dropped_frames += (missed > 0) as u64;
        self.counts.flips += 1;
        self.frame += 1;
        FlipRecord {
            display_frame: f,
            t_ns: t,
            trial,
            stimulus_frame: stim_frame,
            onset: stim_frame == Some(0),
            missed_vsyncs: missed,
            error,
        }
    }
}

/// Flip-interval statistics, kept without allocating per flip: a running mean and variance
/// (Welford) and a histogram of 0.1 ms bins up to 100 ms for the percentiles.
#[derive(Debug, Clone)]
pub struct FlipStats {
    period_ns: f64,
    n: u64,
    mean: f64,
    m2: f64,
    min: i64,
    max: i64,
    late: u64,
    bins: Box<[u32]>,
}

const BIN_NS: i64 = 100_000;
const BINS: usize = 1001;

/// A summary of flip intervals (ms), as the session summary and the benchmark report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlipSummary {
    pub intervals: u64,
    pub nominal_ms: f64,
    pub mean_ms: f64,
    /// Standard deviation of the intervals: the jitter.
    pub sd_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Intervals over 1.5 nominal periods.
    pub late: u64,
}

impl FlipStats {
    pub fn new(rate_hz: f64) -> FlipStats {
        FlipStats {
            period_ns: 1e9 / rate_hz,
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: i64::MAX,
            max: i64::MIN,
            late: 0,
            bins: vec![0; BINS].into_boxed_slice(),
        }
    }

    /// One interval between consecutive flips, ns.
    pub fn add(&mut self, interval_ns: i64) {
        self.n += 1;
        let x = interval_ns as f64;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = self.min.min(interval_ns);
        self.max = self.max.max(interval_ns);
        self.late += (x > 1.5 * self.period_ns) as u64;
        let bin = (interval_ns.max(0) / BIN_NS).min(BINS as i64 - 1) as usize;
        self.bins[bin] += 1;
    }

    /// The `q`-quantile (0..1), ms, to the bin's upper edge (intervals over 100 ms: the max).
    fn quantile_ms(&self, q: f64) -> f64 {
        let want = (q * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c as u64;
            if seen >= want {
                if i == BINS - 1 {
                    return self.max as f64 * 1e-6;
                }
                return ((i as i64 + 1) * BIN_NS).min(self.max) as f64 * 1e-6;
            }
        }
        self.max as f64 * 1e-6
    }

    pub fn summary(&self) -> FlipSummary {
        if self.n == 0 {
            return FlipSummary {
                nominal_ms: self.period_ns * 1e-6,
                ..FlipSummary::default()
            };
        }
        FlipSummary {
            intervals: self.n,
            nominal_ms: self.period_ns * 1e-6,
            mean_ms: self.mean * 1e-6,
            sd_ms: if self.n > 1 {
                (self.m2 / (self.n - 1) as f64).sqrt() * 1e-6
            } else {
                0.0
            },
            min_ms: self.min as f64 * 1e-6,
            p50_ms: self.quantile_ms(0.5),
            p99_ms: self.quantile_ms(0.99),
            max_ms: self.max as f64 * 1e-6,
            late: self.late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ViewGeometry;
    use std::cell::Cell;
    use std::rc::Rc;

    struct Recording {
        shown: Vec<String>,
        fail_on: Option<usize>,
    }

    impl Display for Recording {
        fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String> {
            let n = self.shown.len();
            let what = match content {
                FrameContent::Gray => "gray".to_string(),
                FrameContent::Grating { carrier, .. } => {
                    format!("grating {:.2}", carrier.phase_cycles)
                }
                _ => "other".into(),
            };
            self.shown.push(format!("{what} patch {}", patch.level));
            if self.fail_on == Some(n) {
                return Err("boom".into());
            }
            Ok(())
        }
    }

    fn config() -> PlayerConfig {
        PlayerConfig {
            rate_hz: 10.0,
            gray_s: 0.2,
            patch: PhotodiodePatch {
                onset_frames: 1,
                ..Default::default()
            },
        }
    }

    fn trial(n: u64) -> QueuedTrial {
        QueuedTrial {
            trial: n,
            spec: StimulusSpec::grating(0.0, 0.04, 1.0, 1.0, 0.0),
            duration_s: 0.3,
        }
    }

    #[test]
    fn trials_gray_underruns_and_flip_times() {
        let t = Rc::new(Cell::new(0i64));
        let clock = {
            let t = t.clone();
            move || {
                t.set(t.get() + 100_000_000);
                t.get()
            }
        };
        let queue: VecDeque<_> = [trial(7)].into_iter().collect();
        let display = Recording {
            shown: vec![],
            fail_on: None,
        };
        let mut p = Player::new(queue, display, clock, config());
        let flips: Vec<_> = (0..8).map(|_| p.step()).collect();
        // 2 gray frames, 3 trial frames, then gray; the queue is empty at frame 7.
        let trials: Vec<_> = flips.iter().map(|f| f.trial).collect();
        assert_eq!(
            trials,
            [None, None, Some(7), Some(7), Some(7), None, None, None]
        );
        assert!(flips[2].onset && !flips[3].onset);
        assert_eq!(flips[4].stimulus_frame, Some(2));
        assert_eq!(p.counts.underruns, 1);
        assert_eq!(p.counts.trials, 1);
        // Phase drifts 1 Hz at 10 frames/s: −0.1 cycle per frame.
        assert_eq!(p.display.shown[3], "grating 0.90 patch 0.3");
        assert_eq!(p.display.shown[2], "grating 0.00 patch 1");
        assert!(flips.iter().all(|f| f.missed_vsyncs == 0));
        assert_eq!(flips[7].t_ns, 800_000_000);
    }

    #[test]
    fn late_flips_count_missed_vsyncs() {
        let times = Rc::new(Cell::new(0usize));
        let schedule = [0i64, 100, 200, 400, 500, 520, 900];
        let clock = {
            let i = times.clone();
            move || {
                let k = i.get();
                i.set(k + 1);
                schedule[k] * 1_000_000
            }
        };
        let display = Recording {
            shown: vec![],
            fail_on: None,
        };
        let mut p = Player::new(VecDeque::new(), display, clock, config());
        let missed: Vec<u32> = (0..7).map(|_| p.step().missed_vsyncs).collect();
        assert_eq!(missed, [0, 0, 0, 1, 0, 0, 3]);
        assert_eq!(p.counts.missed_vsyncs, 4);
        assert_eq!(p.counts.dropped_frames, 2);
        // Intervals 100, 100, 200, 100, 20, 380 ms.
        let s = p.stats.summary();
        assert_eq!(s.intervals, 6);
        assert!((s.mean_ms - 150.0).abs() < 1e-9, "{s:?}");
        let sd = {
            let xs = [100.0f64, 100.0, 200.0, 100.0, 20.0, 380.0];
            let m = xs.iter().sum::<f64>() / 6.0;
            (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 5.0).sqrt()
        };
        assert!((s.sd_ms - sd).abs() < 1e-6, "{s:?} vs {sd}");
        assert_eq!((s.min_ms, s.max_ms, s.late), (20.0, 380.0, 2));
        // Percentiles from 0.1 ms bins (over 100 ms: the max).
        assert_eq!(s.p99_ms, 380.0);
    }

    #[test]
    fn errors_show_gray_and_go_on() {
        let mut n = 0;
        let clock = move || {
            n += 100_000_000;
            n
        };
        let bad = QueuedTrial {
            trial: 1,
            spec: StimulusSpec::Image(crate::spec::ImageSpec {
                path: "/nonexistent/image.png".into(),
                area: crate::spec::Rect {
                    az_deg: [0.0, 1.0],
                    el_deg: [0.0, 1.0],
                },
            }),
            duration_s: 1.0,
        };
        let queue: VecDeque<_> = [bad, trial(2)].into_iter().collect();
        let display = Recording {
            shown: vec![],
            fail_on: Some(3),
        };
        let mut p = Player::new(queue, display, clock, config());
        let flips: Vec<_> = (0..6).map(|_| p.step()).collect();
        assert_eq!(p.counts.prepare_errors, 1);
        assert!(p.last_error.is_some());
        // The bad trial is skipped; trial 2 starts on the next frame.
        assert_eq!(flips[3].trial, Some(2));
        assert!(flips[3].error, "the 4th show failed");
        assert_eq!(p.counts.render_errors, 1);
        assert!(
            p.display.shown[4].starts_with("gray"),
            "{:?}",
            p.display.shown
        );
        assert!(
            p.display.shown[5].starts_with("grating"),
            "{:?}",
            p.display.shown
        );
        assert_eq!(flips.len(), 6);
    }

    #[test]
    fn cpu_display_draws_the_patch() {
        let proj = Projection::Linear(ViewGeometry {
            width: 16,
            height: 8,
            ..Default::default()
        });
        let mut d = CpuDisplay::new(proj, GammaLut::identity());
        let patch = PatchFrame {
            patch: PhotodiodePatch {
                size_px: 4,
                ..Default::default()
            },
            level: 1.0,
        };
        d.show(&FrameContent::Gray, &patch).unwrap();
        assert_eq!(d.last_frame[7 * 16], 255);
        assert_eq!(d.last_frame[0], 128);
    }
}
