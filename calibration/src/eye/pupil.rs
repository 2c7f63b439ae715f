//! Pupil tracking: one grayscale eye-camera frame in, the pupil's ellipse and a quality flag out.
//!
//! # Method (per frame; every buffer is allocated once, in [`PupilTracker::new`])
//! 1. **Frame checks** from the grey-level histogram: [`PupilQuality::Dark`] (mean below
//!    `dark_mean_max`), [`PupilQuality::Saturated`] (too many pixels ≥ 250),
//!    [`PupilQuality::Flat`] (1st–99th percentile range below `min_range`, e.g. a constant frame).
//! 2. **Smoothing**: a 5×5 binomial kernel (Gaussian, σ ≈ 1 px), kept in u16 (grey × 256) so
//!    the edge interpolation below does not see u8 rounding.
//! 3. **Dark threshold** `T0`, halfway between the pupil level (the grey level under which the
//!    darkest half-minimum-pupil-area of pixels lie) and the frame median. The pupil must be
//!    darker than `max_pupil_to_background` × the median, otherwise [`PupilQuality::Blink`]: no
//!    dark blob, which is what a closed lid looks like.
//! 4. **Dark blobs** at `T0` (4-connected flood fill); the pupil is the largest one of plausible
//!    area that does not touch the frame border.
//! 5. **Edge level** `T1`, halfway between the blob's own median level and the median of a ring
//!    3 px outside its edge (corneal reflection excluded): the iso-level where an anti-aliased
//!    or blurred edge sits, so the radius is not biased by the choice of threshold. If the
//!    region at `T1` leaks into its surroundings, `T0` is kept.
//! 6. **Edge points**: the outermost crossings of the edge level along every row and column of
//!    the pupil region, interpolated linearly between pixel centres (subpixel; holes such as a
//!    reflection inside the pupil do not contribute). Points within 3 px of a pixel at
//!    `reflection_level` or brighter are dropped: the **corneal reflection** bites into the
//!    pupil's edge when it sits on it.
//! 7. **Ellipse fit** ([`super::ellipse::fit_ellipse`]) with up to three rounds of outlier
//!    rejection (Sampson distance beyond max(`inlier_px`, 3 × 1.4826 × median distance)).
//! 8. **Plausibility**: radius, axis ratio, RMS residual, inlier fraction, and the ellipse
//!    staying inside the frame; a failure is [`PupilQuality::Implausible`] with the reason.
//!
//! Coordinates are pixels with the centre of pixel `(i, j)` at `(i + 0.5, j + 0.5)` (so the
//! frame spans `[0, width] × [0, height]`; OpenCV reports centres 0.5 px lower). The radius is
//! the semi-major axis: a circular pupil seen off-axis keeps its diameter along the major axis
//! (the same assumption as the Allen Brain Observatory's eye tracking,
//! `allensdk.internal.brain_observatory.eye_calibration.EyeCalibration.compute_area`).
//!
//! # Performance
//! Per 320×240 frame on one core of the shared 2-core development machine (AMD EPYC, release,
//! `examples/bench_pupil.rs`, thread CPU time over 4,000 frames, three runs): p50 80–100 µs,
//! p99 140–175 µs, against p50 100–110 µs, p99 250–320 µs for OpenCV 5.0's blur → threshold →
//! contours → fitEllipse driven from Python on the same frames
//! (`tests/fixtures/pupil/bench_opencv.py`). No heap allocation per frame.

use super::ellipse::{Ellipse, EllipseFitError, fit_ellipse};
use super::raster::{Blob, Window, blur_binomial5, flood, quantile_level, to_u16_level};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Tracker settings. Distances in pixels of the eye camera, grey levels in 0–255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PupilConfig {
    /// Smallest plausible pupil radius (semi-major axis), px.
    pub min_radius_px: f64,
    /// Largest plausible pupil radius, px (also capped at a quarter of the smaller frame side).
    pub max_radius_px: f64,
    /// Smallest plausible semi-minor / semi-major ratio (a circle seen 60° off-axis is 0.5).
    pub min_axis_ratio: f64,
    /// Largest RMS distance of the kept edge points from the ellipse, px.
    pub max_residual_px: f64,
    /// Smallest fraction of edge points the robust fit may keep.
    pub min_inlier_fraction: f64,
    /// Edge points closer than this to the ellipse are always kept by the robust fit, px.
    pub inlier_px: f64,
    /// The pupil must be at most this fraction of the frame's median grey level.
    pub max_pupil_to_background: f64,
    /// Grey level at and above which a pixel belongs to the corneal reflection.
    pub reflection_level: u8,
    /// Frames with a mean grey level below this are `Dark`.
    pub dark_mean_max: f64,
    /// Frames with more than this fraction of pixels ≥ 250 are `Saturated`.
    pub saturated_fraction_max: f64,
    /// Frames whose 1st–99th percentile grey range is below this are `Flat`.
    pub min_range: u8,
}

impl Default for PupilConfig {
    fn default() -> Self {
        PupilConfig {
            min_radius_px: 3.0,
            max_radius_px: 80.0,
            min_axis_ratio: 0.5,
            max_residual_px: 1.0,
            min_inlier_fraction: 0.6,
            inlier_px: 0.75,
            max_pupil_to_background: 0.5,
            reflection_level: 200,
            dark_mean_max: 15.0,
            saturated_fraction_max: 0.25,
            min_range: 10,
        }
    }
}

impl PupilConfig {
    /// Checks every field; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), PupilError> {
        let check = |field: &'static str, value: f64, ok: bool, allowed: &'static str| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(PupilError::Config {
                    field,
                    value,
                    allowed,
                })
            }
        };
        let c = self;
        check(
            "min_radius_px",
            c.min_radius_px,
            c.min_radius_px >= 1.0,
            ">= 1",
        )?;
        check(
            "max_radius_px",
            c.max_radius_px,
            c.max_radius_px > c.min_radius_px,
            "> min_radius_px",
        )?;
        check(
            "min_axis_ratio",
            c.min_axis_ratio,
            (0.0..=1.0).contains(&c.min_axis_ratio),
            "in [0, 1]",
        )?;
        check(
            "max_residual_px",
            c.max_residual_px,
            c.max_residual_px > 0.0,
            "> 0",
        )?;
        check(
            "min_inlier_fraction",
            c.min_inlier_fraction,
            (0.0..=1.0).contains(&c.min_inlier_fraction),
            "in [0, 1]",
        )?;
        check("inlier_px", c.inlier_px, c.inlier_px > 0.0, "> 0")?;
        check(
            "max_pupil_to_background",
            c.max_pupil_to_background,
            c.max_pupil_to_background > 0.0 && c.max_pupil_to_background < 1.0,
            "in (0, 1)",
        )?;
        check(
            "reflection_level",
            f64::from(c.reflection_level),
            c.reflection_level > 0,
            "in [1, 255]",
        )?;
        check(
            "dark_mean_max",
            c.dark_mean_max,
            c.dark_mean_max >= 0.0,
            ">= 0",
        )?;
        check(
            "saturated_fraction_max",
            c.saturated_fraction_max,
            (0.0..=1.0).contains(&c.saturated_fraction_max),
            "in [0, 1]",
        )?;
        Ok(())
    }
}

/// Errors: a bad configuration or a frame of the wrong size (the frame is not looked at).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PupilError {
    #[error("pupil.{field} = {value} is out of range: {allowed}")]
    Config {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error("eye-camera frame size {width}x{height} is too small: at least 16x16")]
    FrameTooSmall { width: usize, height: usize },
    #[error("frame has {got} bytes, expected {expected} ({width}x{height} u8)")]
    FrameSize {
        got: usize,
        expected: usize,
        width: usize,
        height: usize,
    },
}

/// Why a fitted pupil was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Implausibility {
    /// Fewer than 6 usable edge points.
    TooFewEdgePoints,
    /// The edge points fit no ellipse.
    NotAnEllipse,
    /// Semi-major axis below `min_radius_px`.
    TooSmall,
    /// Semi-major axis above `max_radius_px`.
    TooLarge,
    /// Axis ratio below `min_axis_ratio`.
    TooEccentric,
    /// RMS residual above `max_residual_px` or too few inliers.
    PoorFit,
    /// The only dark blob, or the ellipse, reaches the frame border.
    TouchesBorder,
}

/// How much to trust one frame's pupil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PupilQuality {
    /// A plausible pupil.
    Good,
    /// No dark blob of pupil size and darkness: the lid is closed (or the eye left the frame).
    Blink,
    /// A dark blob was found but its ellipse was rejected.
    Implausible { why: Implausibility },
    /// The frame is almost black (illumination off, camera covered).
    Dark,
    /// Too much of the frame is saturated.
    Saturated,
    /// No contrast (a constant or nearly constant frame).
    Flat,
}

/// One frame's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PupilMeasurement {
    pub quality: PupilQuality,
    /// The fitted ellipse: present when `Good`, and when a fit was made but rejected.
    pub ellipse: Option<Ellipse>,
    /// RMS Sampson distance of the kept edge points, px (NaN without a fit).
    pub residual_rms_px: f64,
    /// Edge points found / kept by the robust fit.
    pub edge_points: u32,
    pub inliers: u32,
    /// Edge points dropped for lying next to the corneal reflection.
    pub reflection_points: u32,
    /// Grey level of the edge the points were taken at (0 when none).
    pub edge_level: f64,
}

impl PupilMeasurement {
    fn flagged(quality: PupilQuality) -> Self {
        PupilMeasurement {
            quality,
            ellipse: None,
            residual_rms_px: f64::NAN,
            edge_points: 0,
            inliers: 0,
            reflection_points: 0,
            edge_level: 0.0,
        }
    }

    pub fn is_good(&self) -> bool {
        self.quality == PupilQuality::Good
    }

    /// Pupil centre `[x, y]` px, only for a `Good` frame.
    pub fn centre_px(&self) -> Option<[f64; 2]> {
        self.good_ellipse().map(|e| [e.centre_x_px, e.centre_y_px])
    }

    /// Pupil radius (semi-major axis) px, only for a `Good` frame.
    pub fn radius_px(&self) -> Option<f64> {
        self.good_ellipse().map(|e| e.semi_major_px)
    }

    fn good_ellipse(&self) -> Option<&Ellipse> {
        if self.is_good() {
            self.ellipse.as_ref()
        } else {
            None
        }
    }
}

/// Distance outside the pupil's edge at which the surround level is sampled, px.
const SURROUND_PX: i64 = 3;
/// Edge points within this many px of a reflection pixel are dropped.
const REFLECTION_GUARD_PX: i64 = 3;
/// Grey level from which a pixel counts as saturated.
const SATURATED_LEVEL: usize = 250;

/// The pupil tracker for one camera's frame size. Reuse it for every frame.
pub struct PupilTracker {
    width: usize,
    height: usize,
    cfg: PupilConfig,
    max_radius_px: f64,
    tmp: Vec<u16>,
    smooth: Vec<u16>,
    visited: Vec<u8>,
    region: Vec<u8>,
    stack: Vec<u32>,
    row_span: Vec<[i64; 2]>,
    col_span: Vec<[i64; 2]>,
    points: Vec<[f64; 2]>,
    keep: Vec<bool>,
    scratch: Vec<f64>,
}

impl PupilTracker {
    /// A tracker for `width` × `height` u8 frames (row-major).
    pub fn new(width: usize, height: usize, cfg: PupilConfig) -> Result<Self, PupilError> {
        cfg.validate()?;
        if width < 16
            || height < 16
            || width
                .checked_mul(height)
                .is_none_or(|n| n > u32::MAX as usize)
        {
            return Err(PupilError::FrameTooSmall { width, height });
        }
        let n = width * height;
        let max_points = 4 * (width + height);
        Ok(PupilTracker {
            width,
            height,
            max_radius_px: cfg.max_radius_px.min(0.25 * width.min(height) as f64),
            cfg,
            tmp: vec![0; n],
            smooth: vec![0; n],
            visited: vec![0; n],
            region: vec![0; n],
            stack: Vec::with_capacity(n),
            row_span: vec![[-1, -1]; height],
            col_span: vec![[-1, -1]; width],
            points: Vec::with_capacity(max_points),
            keep: Vec::with_capacity(max_points),
            scratch: Vec::with_capacity(max_points),
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn config(&self) -> &PupilConfig {
        &self.cfg
    }

    /// Tracks the pupil in one frame (`width * height` bytes, row-major).
    pub fn track(&mut self, frame: &[u8]) -> Result<PupilMeasurement, PupilError> {
        let (w, h) = (self.width, self.height);
        if frame.len() != w * h {
            return Err(PupilError::FrameSize {
                got: frame.len(),
                expected: w * h,
                width: w,
                height: h,
            });
        }
        // 1. Frame checks.
        let mut hist = [0u32; 256];
        for &v in frame {
            hist[v as usize] += 1;
        }
        let n = (w * h) as f64;
        let mean = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| v as f64 * c as f64)
            .sum::<f64>()
            / n;
        if mean < self.cfg.dark_mean_max {
            return Ok(PupilMeasurement::flagged(PupilQuality::Dark));
        }
        let saturated: u32 = hist[SATURATED_LEVEL..].iter().sum();
        if saturated as f64 > self.cfg.saturated_fraction_max * n {
            return Ok(PupilMeasurement::flagged(PupilQuality::Saturated));
        }
        let p01 = quantile_level(&hist, (0.01 * n) as u64);
        let p99 = quantile_level(&hist, (0.99 * n) as u64);
        if p99.saturating_sub(p01) < self.cfg.min_range as usize {
            return Ok(PupilMeasurement::flagged(PupilQuality::Flat));
        }
        // 3. Dark threshold from the dark end of the histogram.
        let min_area = (std::f64::consts::PI * self.cfg.min_radius_px.powi(2)).max(8.0);
        let pupil_level = quantile_level(&hist, (0.5 * min_area) as u64) as f64;
        let background = quantile_level(&hist, (0.5 * n) as u64) as f64;
        if pupil_level > self.cfg.max_pupil_to_background * background {
            return Ok(PupilMeasurement::flagged(PupilQuality::Blink));
        }
        let t0 = to_u16_level(0.5 * (pupil_level + background));

        // 2. Smoothing.
        blur_binomial5(frame, &mut self.tmp, &mut self.smooth, w, h);
        let has_reflection = hist[self.cfg.reflection_level as usize..]
            .iter()
            .any(|&c| c > 0);

        // 4. Dark blobs.
        let max_area = std::f64::consts::PI * self.max_radius_px.powi(2) * 1.5;
        self.visited.fill(0);
        let full = Window {
            x0: 0,
            x1: w,
            y0: 0,
            y1: h,
        };
        let mut best: Option<Blob> = None;
        let mut border_candidate = false;
        for p in 0..w * h {
            if self.smooth[p] > t0 || self.visited[p] != 0 {
                continue;
            }
            let blob = flood(
                &self.smooth,
                w,
                &mut self.visited,
                &mut self.stack,
                p,
                t0,
                full,
            );
            let area = blob.area as f64;
            if area < 0.5 * min_area || area > max_area {
                continue;
            }
            if blob.touches_window {
                border_candidate = true;
                continue;
            }
            if best.is_none_or(|b| blob.area > b.area) {
                best = Some(blob);
            }
        }
        let Some(blob) = best else {
            return Ok(PupilMeasurement::flagged(if border_candidate {
                PupilQuality::Implausible {
                    why: Implausibility::TouchesBorder,
                }
            } else {
                PupilQuality::Blink
            }));
        };

        // 5. Edge level from the blob's own level and its surround.
        let margin = (0.3 * (blob.x_max - blob.x_min).max(blob.y_max - blob.y_min) as f64)
            .ceil()
            .max(4.0) as usize;
        let win = Window {
            x0: blob.x_min.saturating_sub(margin),
            x1: (blob.x_max + margin + 1).min(w),
            y0: blob.y_min.saturating_sub(margin),
            y1: (blob.y_max + margin + 1).min(h),
        };
        let seed = blob.darkest;
        let region0 = self.fill_region(seed, t0, win);
        self.spans(win);
        let (inside, surround) = self.levels(win);
        if inside > self.cfg.max_pupil_to_background * surround.max(background * 256.0) {
            self.clear_region(win);
            return Ok(PupilMeasurement::flagged(PupilQuality::Blink));
        }
        let t1 = to_u16_level((inside + surround) / 512.0);
        let mut level = t0;
        if t1 > blob.darkest_value && t1 != t0 {
            let region1 = self.fill_region(seed, t1, win);
            if region1.touches_window || region1.area < region0.area / 2 {
                self.fill_region(seed, t0, win);
            } else {
                level = t1;
            }
            self.spans(win);
        }

        // 6. Edge points.
        let reflection = if has_reflection {
            Some(u16::from(self.cfg.reflection_level) << 8)
        } else {
            None
        };
        let reflection_points = self.edge_points(win, inside, surround, reflection);
        self.clear_region(win);

        // 7–8. Fit and judge.
        let mut m = self.fit_robust();
        m.reflection_points = reflection_points;
        m.edge_level = f64::from(level) / 256.0;
        Ok(m)
    }

    /// Marks the region connected to `seed` at or below `level` inside `win` in `self.region`.
    fn fill_region(&mut self, seed: usize, level: u16, win: Window) -> Blob {
        self.clear_region(win);
        flood(
            &self.smooth,
            self.width,
            &mut self.region,
            &mut self.stack,
            seed,
            level,
            win,
        )
    }

    fn clear_region(&mut self, win: Window) {
        for y in win.y0..win.y1 {
            self.region[y * self.width + win.x0..y * self.width + win.x1].fill(0);
        }
    }

    /// Outermost region pixel of each row and column inside `win`, `[-1, -1]` where none.
    fn spans(&mut self, win: Window) {
        let w = self.width;
        for y in win.y0..win.y1 {
            let row = &self.region[y * w + win.x0..y * w + win.x1];
            self.row_span[y] = match (
                row.iter().position(|&m| m != 0),
                row.iter().rposition(|&m| m != 0),
            ) {
                (Some(a), Some(b)) => [(win.x0 + a) as i64, (win.x0 + b) as i64],
                _ => [-1, -1],
            };
        }
        for x in win.x0..win.x1 {
            let mut span = [-1i64, -1];
            for y in win.y0..win.y1 {
                if self.region[y * w + x] != 0 {
                    if span[0] < 0 {
                        span[0] = y as i64;
                    }
                    span[1] = y as i64;
                }
            }
            self.col_span[x] = span;
        }
    }

    /// Median smoothed level (grey × 256) inside the region and on a ring `SURROUND_PX` outside
    /// its row and column extremes, reflection pixels excluded.
    fn levels(&self, win: Window) -> (f64, f64) {
        let (w, h) = (self.width as i64, self.height as i64);
        let refl = u16::from(self.cfg.reflection_level) << 8;
        let mut inside = [0u32; 256];
        let mut ring = [0u32; 256];
        let mut sample = |x: i64, y: i64| {
            if x >= 0 && x < w && y >= 0 && y < h {
                let v = self.smooth[(y * w + x) as usize];
                if v < refl {
                    ring[(v >> 8) as usize] += 1;
                }
            }
        };
        for y in win.y0..win.y1 {
            let [a, b] = self.row_span[y];
            if a < 0 {
                continue;
            }
            sample(a - SURROUND_PX, y as i64);
            sample(b + SURROUND_PX, y as i64);
            for x in a..=b {
                let p = (y as i64 * w + x) as usize;
                if self.region[p] != 0 {
                    inside[(self.smooth[p] >> 8) as usize] += 1;
                }
            }
        }
        for x in win.x0..win.x1 {
            let [a, b] = self.col_span[x];
            if a < 0 {
                continue;
            }
            sample(x as i64, a - SURROUND_PX);
            sample(x as i64, b + SURROUND_PX);
        }
        let median = |hist: &[u32; 256]| {
            let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
            quantile_level(hist, total / 2) as f64 * 256.0 + 128.0
        };
        (median(&inside), median(&ring))
    }

    /// Subpixel edge crossings at the region's row and column extremes into `self.points`;
    /// returns how many were dropped next to the corneal reflection. `inside` and `surround`
    /// are the region's and the ring's median levels (grey × 256).
    fn edge_points(
        &mut self,
        win: Window,
        inside: f64,
        surround: f64,
        reflection: Option<u16>,
    ) -> u32 {
        let (w, h) = (self.width as i64, self.height as i64);
        self.points.clear();
        let mut dropped = 0u32;
        let smooth = &self.smooth;
        let near_reflection = |x: i64, y: i64| {
            let Some(refl) = reflection else {
                return false;
            };
            let g = REFLECTION_GUARD_PX;
            for yy in (y - g).max(0)..=(y + g).min(h - 1) {
                let row = &smooth[(yy * w) as usize..((yy + 1) * w) as usize];
                let lo = (x - g).max(0) as usize;
                let hi = (x + g).min(w - 1) as usize;
                if row[lo..=hi].iter().any(|&v| v >= refl) {
                    return true;
                }
            }
            false
        };
        let levels = EdgeLevels { inside, surround };
        let cap = self.points.capacity();
        for y in win.y0..win.y1 {
            let [a, b] = self.row_span[y];
            if a < 0 {
                continue;
            }
            let row = &smooth[y * self.width..(y + 1) * self.width];
            for (xi, dir) in [(a, -1), (b, 1)] {
                if xi + dir < 0 || xi + dir >= w || self.points.len() >= cap {
                    continue;
                }
                if near_reflection(xi + dir, y as i64) {
                    dropped += 1;
                    continue;
                }
                if let Some(x) = levels.crossing(|k| row[k as usize], w, xi, dir) {
                    self.points.push([x, y as f64 + 0.5]);
                }
            }
        }
        let stride = self.width;
        for x in win.x0..win.x1 {
            let [a, b] = self.col_span[x];
            if a < 0 {
                continue;
            }
            for (yi, dir) in [(a, -1), (b, 1)] {
                if yi + dir < 0 || yi + dir >= h || self.points.len() >= cap {
                    continue;
                }
                if near_reflection(x as i64, yi + dir) {
                    dropped += 1;
                    continue;
                }
                let col = |k: i64| smooth[k as usize * stride + x];
                if let Some(y) = levels.crossing(col, h, yi, dir) {
                    self.points.push([x as f64 + 0.5, y]);
                }
            }
        }
        dropped
    }

    /// Ellipse fit with outlier rejection, then the plausibility checks.
    fn fit_robust(&mut self) -> PupilMeasurement {
        let total = self.points.len();
        let mut m = PupilMeasurement::flagged(PupilQuality::Implausible {
            why: Implausibility::TooFewEdgePoints,
        });
        m.edge_points = total as u32;
        if total < 6 {
            return m;
        }
        self.keep.clear();
        self.keep.resize(total, true);
        let mut fit = None;
        for _round in 0..4 {
            let pts = self
                .points
                .iter()
                .zip(self.keep.iter())
                .filter(|(_, k)| **k)
                .map(|(p, _)| *p);
            let f = match fit_ellipse(pts) {
                Ok(f) => f,
                Err(e) => {
                    if fit.is_none() {
                        m.quality = PupilQuality::Implausible {
                            why: match e {
                                EllipseFitError::TooFewPoints { .. } => {
                                    Implausibility::TooFewEdgePoints
                                }
                                _ => Implausibility::NotAnEllipse,
                            },
                        };
                        return m;
                    }
                    break;
                }
            };
            fit = Some(f);
            // Robust scale: median distance of the points kept so far.
            self.scratch.clear();
            for (p, k) in self.points.iter().zip(self.keep.iter()) {
                if *k {
                    self.scratch
                        .push(f.conic.sampson_distance(p[0], p[1]).abs());
                }
            }
            let mid = self.scratch.len() / 2;
            let (_, med, _) = self.scratch.select_nth_unstable_by(mid, f64::total_cmp);
            let thresh = self.cfg.inlier_px.max(3.0 * 1.4826 * *med);
            let mut changed = false;
            for (p, k) in self.points.iter().zip(self.keep.iter_mut()) {
                let inlier = f.conic.sampson_distance(p[0], p[1]).abs() <= thresh;
                changed |= inlier != *k;
                *k = inlier;
            }
            if !changed {
                break;
            }
        }
        let Some(f) = fit else {
            return m;
        };
        let (mut kept, mut ss) = (0u32, 0.0);
        for (p, k) in self.points.iter().zip(self.keep.iter()) {
            if *k {
                kept += 1;
                ss += f.conic.sampson_distance(p[0], p[1]).powi(2);
            }
        }
        let e = f.ellipse;
        m.ellipse = Some(e);
        m.inliers = kept;
        m.residual_rms_px = (ss / f64::from(kept.max(1))).sqrt();
        let [hx, hy] = e.half_extent();
        let why = if kept < 6 {
            Some(Implausibility::TooFewEdgePoints)
        } else if e.semi_major_px < self.cfg.min_radius_px {
            Some(Implausibility::TooSmall)
        } else if e.semi_major_px > self.max_radius_px {
            Some(Implausibility::TooLarge)
        } else if e.axis_ratio() < self.cfg.min_axis_ratio {
            Some(Implausibility::TooEccentric)
        } else if m.residual_rms_px > self.cfg.max_residual_px
            || f64::from(kept) < self.cfg.min_inlier_fraction * total as f64
        {
            Some(Implausibility::PoorFit)
        } else if e.centre_x_px - hx < 0.0
            || e.centre_x_px + hx > self.width as f64
            || e.centre_y_px - hy < 0.0
            || e.centre_y_px + hy > self.height as f64
        {
            Some(Implausibility::TouchesBorder)
        } else {
            None
        };
        m.quality = match why {
            Some(why) => PupilQuality::Implausible { why },
            None => PupilQuality::Good,
        };
        m
    }
}

/// The pupil's and its surround's levels (grey × 256), for placing each edge point at the
/// local midpoint between them.
#[derive(Debug, Clone, Copy)]
struct EdgeLevels {
    inside: f64,
    surround: f64,
}

impl EdgeLevels {
    /// The edge on one scan line (a row or a column; `at(k)` is the smoothed value at index `k`
    /// of `len`): `last_inside` is the region's outermost pixel, `dir` (±1) points outwards.
    /// The level is halfway between the pupil's level and the line's own surround, sampled
    /// `SURROUND_PX` and one more pixel beyond the edge (clamped to the middle half of the
    /// global pupil–surround range), so that a darker or brighter patch of iris does not pull
    /// the edge. Returns the position (pixel-centre coordinates + 0.5) where the linear
    /// interpolant between pixel centres crosses that level, or `None` when it does not
    /// within 3 px.
    fn crossing(
        &self,
        at: impl Fn(i64) -> u16,
        len: i64,
        last_inside: i64,
        dir: i64,
    ) -> Option<f64> {
        let (p, s) = (self.inside, self.surround);
        let out_near = last_inside + dir * (SURROUND_PX + 1);
        let out_far = out_near + dir;
        let local_out = if out_far >= 0 && out_far < len {
            0.5 * (f64::from(at(out_near)) + f64::from(at(out_far)))
        } else {
            s
        };
        let t = (0.5 * (p + local_out)).clamp(p + 0.25 * (s - p), p + 0.75 * (s - p));
        let valid = |k: i64| k >= 0 && k < len;
        let mut k = last_inside;
        // Step inwards until the pixel is at or below the level, then outwards while the next
        // one still is.
        let mut steps = 0;
        while f64::from(at(k)) > t {
            k -= dir;
            steps += 1;
            if steps > 3 || !valid(k) {
                return None;
            }
        }
        while valid(k + dir) && f64::from(at(k + dir)) <= t {
            k += dir;
            steps += 1;
            if steps > 3 {
                return None;
            }
        }
        if !valid(k + dir) {
            return None;
        }
        let (vi, vo) = (f64::from(at(k)), f64::from(at(k + dir)));
        let frac = if vo > vi {
            ((t - vi) / (vo - vi)).clamp(0.0, 1.0)
        } else {
            0.5
        };
        Some(k as f64 + 0.5 + dir as f64 * frac)
    }
}
