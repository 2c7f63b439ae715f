//! The baseline core: a fixed motion-energy bank (quadrature Gabor energy,
//! opponent motion, luminance and contrast). It was the loop's stand-in until
//! the pretrained fnn core (`crate::pretrained`) shipped; it stays as the
//! baseline that core is measured against (`twin.core = "energy"`). It sits
//! close to the simulator's own cells (energy-model complex cells), so on
//! simulated mice it is a strong, nearly well-specified baseline.
//!
//! The twin's core must stay frozen while the closed loop fits each recorded
//! neuron's readout online. [`EnergyCore`] maps a stimulus movie to a fixed
//! set of V1-like features on a coarse retinotopic grid; a neuron's readout
//! is the feature vector at one (bilinearly interpolated, see
//! [`EnergyCore::sample`]) grid position, dotted with that neuron's weights.
//! Nothing here is learned; it is deterministic (fixed summation order, no
//! threads, no randomness) and cheap.
//!
//! # Input
//! Frames are `u8` grayscale, row-major `height × width`. Pixel value `p` maps
//! to contrast `c = (p − 128) / 127.5`, so 128 (mean gray) is exactly 0, and
//! 0 / 255 are −1.004 / +0.996. (The nominal `(p/255 − 0.5)·2` would put mean
//! gray at +0.004 and break "gray gives 0"; the half-level shift fixes that.)
//!
//! # Geometry
//! Grid position `p = gr·grid_cols + gc`. Centres are evenly spaced with a
//! half-spacing margin: row `(gr + 0.5)·height/grid_rows − 0.5` in pixel-index
//! coordinates (pixel `i` is centred at `i`), likewise for columns.
//!
//! # The bank
//! For each spatial frequency `f` in `cycles_per_px` and each of `orientations`
//! orientations `θ = 180°·o / orientations` there is one quadrature Gabor pair
//! at every grid position. `θ` is the bar orientation, counter-clockwise from
//! rightward on screen (0° = horizontal bars, 90° = vertical bars); the wave
//! vector points along `θ + 90°`. The envelope is an isotropic Gaussian with a
//! fixed `envelope_sigma_px` for every frequency (a fixed receptive-field size,
//! so lower frequencies are more broadly tuned), truncated to a square window
//! of ±3σ per axis and clipped to the frame. Because a complex Gabor with a
//! Gaussian envelope is separable, responses are computed as a shared row pass
//! plus a short column pass, only at the grid positions (see `filters.rs`).
//!
//! Per position and pair, the even/odd filters are made zero-sum over the
//! clipped window (so any uniform screen gives 0), orthogonalised so that they
//! are in exact quadrature for the preferred grating, and scaled so that a
//! full-contrast grating at the preferred frequency and orientation gives
//! `even² + odd² = 1` at every phase — also at edge positions.
//!
//! # Channel layout
//! `K = cycles_per_px.len() · orientations` pairs, pair `k = s·orientations + o`
//! (frequency-major). Output per frame is `out[p·C + c]` (position-major,
//! channel fastest) with `C = 2K + 2`:
//!
//! | channels   | name                                   | value |
//! |------------|----------------------------------------|-------|
//! | `k`        | `energy sf{f} ori{θ}`                  | `sqrt(even² + odd²)`; preferred grating of contrast `c` → `c` |
//! | `K + k`    | `motion sf{f} ori{θ} (+ = towards {θ+90})` | `x = even₋₁·odd − odd₋₁·even`, output `sign(x)·sqrt(abs(x))` |
//! | `2K`       | `luminance`                            | Gaussian-weighted (σ = envelope) mean contrast |
//! | `2K + 1`   | `rms contrast`                         | Gaussian-weighted RMS of contrast about that mean |
//!
//! Motion is the Adelson–Bergen opponent term written with the pair's phase
//! advance between consecutive frames: a preferred grating of contrast `c`
//! drifting by `Δφ` radians of phase per frame gives `x = c²·sin Δφ`, so the
//! output `±c·sqrt(abs(sin Δφ))` is linear in contrast like the energy channel,
//! positive when the grating drifts towards `θ + 90°` (e.g. 2 Hz at 30 Hz:
//! 0.64·c), and exactly 0 for a static image. A sine grating of contrast `c`
//! gives RMS contrast `c/√2`.
//!
//! Every channel then passes a first-order low-pass
//! `y ← y + α·(x − y)`, `α = 1 − exp(−1/(frame_rate_hz·tau_s))`, so a step
//! reaches `1 − 1/e` of its final value `tau_s` after onset (counting the
//! onset frame as one frame period). [`EnergyCore::initial_state`] is the state
//! after a long mean-gray screen: all zeros.

mod filters;

use filters::{Bank, LANES, dot, dot64, gauss_moments, padded};
use thiserror::Error;

/// Configuration of the baseline motion-energy core.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyCoreConfig {
    /// Input frame height in pixels.
    pub height: usize,
    /// Input frame width in pixels.
    pub width: usize,
    /// Readout grid rows (≤ `height`).
    pub grid_rows: usize,
    /// Readout grid columns (≤ `width`).
    pub grid_cols: usize,
    /// Number of orientations, evenly spaced over 180°.
    pub orientations: usize,
    /// Spatial frequencies of the Gabor pairs, each in (0, 0.5) cycles/px.
    pub cycles_per_px: Vec<f64>,
    /// Gaussian envelope sigma in pixels, the same for every frequency (≥ 0.5).
    pub envelope_sigma_px: f64,
    /// Stimulus frame rate.
    pub frame_rate_hz: f64,
    /// Time constant of the output low-pass.
    pub tau_s: f64,
}

impl Default for EnergyCoreConfig {
    /// 36 × 64 px frames, 6 × 10 grid, 4 orientations, 0.04 and 0.09
    /// cycles/px, σ = 5 px, 30 Hz, τ = 80 ms.
    fn default() -> Self {
        EnergyCoreConfig {
            height: 36,
            width: 64,
            grid_rows: 6,
            grid_cols: 10,
            orientations: 4,
            cycles_per_px: vec![0.04, 0.09],
            envelope_sigma_px: 5.0,
            frame_rate_hz: 30.0,
            tau_s: 0.08,
        }
    }
}

/// Errors of [`EnergyCore`]; each names the offending field or argument and
/// says how to fix it.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum EnergyCoreError {
    /// A configuration field is out of range.
    #[error("EnergyCoreConfig.{field}: {problem}; fix: {fix}")]
    Config {
        field: &'static str,
        problem: String,
        fix: String,
    },
    /// A slice argument has the wrong length.
    #[error(
        "argument `{arg}` has length {got} but this core needs {expected} ({layout}); \
         fix: pass exactly {expected} elements"
    )]
    Length {
        arg: &'static str,
        got: usize,
        expected: usize,
        layout: &'static str,
    },
    /// Some other argument is unusable.
    #[error("argument `{arg}`: {problem}; fix: {fix}")]
    Argument {
        arg: &'static str,
        problem: String,
        fix: &'static str,
    },
}

impl EnergyCoreError {
    /// The config field or argument the error is about.
    pub fn name(&self) -> &'static str {
        match self {
            EnergyCoreError::Config { field, .. } => field,
            EnergyCoreError::Length { arg, .. } | EnergyCoreError::Argument { arg, .. } => arg,
        }
    }
}

fn config_err(field: &'static str, problem: String, fix: &str) -> EnergyCoreError {
    EnergyCoreError::Config {
        field,
        problem,
        fix: fix.to_owned(),
    }
}

fn validate(cfg: &EnergyCoreConfig) -> Result<(), EnergyCoreError> {
    for (field, v) in [("height", cfg.height), ("width", cfg.width)] {
        if v == 0 {
            return Err(config_err(
                field,
                "is 0".into(),
                "set it to the frame size in pixels",
            ));
        }
    }
    for (field, v, size, size_name) in [
        ("grid_rows", cfg.grid_rows, cfg.height, "height"),
        ("grid_cols", cfg.grid_cols, cfg.width, "width"),
    ] {
        if v == 0 || v > size {
            return Err(config_err(
                field,
                format!(
                    "is {v}, but the grid must have 1..={size} positions ({size_name} = {size} px)"
                ),
                "use at most one grid position per pixel (and at least one)",
            ));
        }
    }
    if cfg.orientations == 0 {
        return Err(config_err(
            "orientations",
            "is 0".into(),
            "use at least 1 (e.g. 4)",
        ));
    }
    if cfg.cycles_per_px.is_empty() {
        return Err(config_err(
            "cycles_per_px",
            "is empty".into(),
            "give at least one frequency (e.g. [0.04, 0.09])",
        ));
    }
    for (i, &f) in cfg.cycles_per_px.iter().enumerate() {
        if !(f > 0.0 && f < 0.5) {
            return Err(config_err(
                "cycles_per_px",
                format!(
                    "element {i} is {f}, outside (0, 0.5) cycles/px (0.5 is the Nyquist limit)"
                ),
                "use finite frequencies strictly between 0 and 0.5",
            ));
        }
    }
    if !(cfg.envelope_sigma_px >= 0.5 && cfg.envelope_sigma_px.is_finite()) {
        return Err(config_err(
            "envelope_sigma_px",
            format!("is {}, below 0.5 px or not finite", cfg.envelope_sigma_px),
            "use a finite sigma of at least 0.5 px (e.g. 5.0)",
        ));
    }
    for (field, v, eg) in [
        ("frame_rate_hz", cfg.frame_rate_hz, "30"),
        ("tau_s", cfg.tau_s, "0.08"),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(config_err(
                field,
                format!("is {v}, must be positive and finite"),
                &format!("use a positive value (e.g. {eg})"),
            ));
        }
    }
    Ok(())
}

/// The fixed motion-energy bank (see the module docs).
#[derive(Debug, Clone)]
pub struct EnergyCore {
    cfg: EnergyCoreConfig,
    bank: Bank,
    n_pairs: usize,
    channels: usize,
    alpha: f32,
    lut: [f32; 256],
}

/// Per-stream state: the previous frame's quadrature responses, the low-pass
/// state, and scratch buffers reused by [`EnergyCore::step`] (no allocation
/// per frame). Only valid with the core that made it.
#[derive(Debug, Clone)]
pub struct EnergyState {
    prev_even: Vec<f32>,
    prev_odd: Vec<f32>,
    lowpass: Vec<f32>,
    contrast: Vec<f32>,
    lum_rows: Vec<f64>,
    sq_rows: Vec<f64>,
    rows_re: Vec<f32>,
    rows_im: Vec<f32>,
}

impl EnergyState {
    /// The latest (low-passed) output, `P·C` values, as written by the last step.
    pub fn output(&self) -> &[f32] {
        &self.lowpass
    }
}

impl EnergyCore {
    /// Validates every field (errors name the field) and precomputes the bank.
    pub fn new(cfg: EnergyCoreConfig) -> Result<EnergyCore, EnergyCoreError> {
        validate(&cfg)?;
        let bank = Bank::build(&cfg)?;
        let n_pairs = cfg.cycles_per_px.len() * cfg.orientations;
        let alpha = (1.0 - (-1.0 / (cfg.frame_rate_hz * cfg.tau_s)).exp()) as f32;
        let lut = std::array::from_fn(|p| ((p as f64 - 128.0) / 127.5) as f32);
        Ok(EnergyCore {
            cfg,
            bank,
            n_pairs,
            channels: 2 * n_pairs + 2,
            alpha,
            lut,
        })
    }

    pub fn config(&self) -> &EnergyCoreConfig {
        &self.cfg
    }

    /// Channels per position, `C = 2·K + 2`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Grid positions, `P = grid_rows · grid_cols`.
    pub fn positions(&self) -> usize {
        self.cfg.grid_rows * self.cfg.grid_cols
    }

    /// Quadrature pairs, `K = cycles_per_px.len() · orientations`.
    pub fn pairs(&self) -> usize {
        self.n_pairs
    }

    /// Channel of the energy of (frequency index `sf`, orientation index `ori`).
    pub fn energy_channel(&self, sf: usize, ori: usize) -> usize {
        sf * self.cfg.orientations + ori
    }

    /// Channel of the signed motion of (frequency index `sf`, orientation index `ori`).
    pub fn motion_channel(&self, sf: usize, ori: usize) -> usize {
        self.n_pairs + self.energy_channel(sf, ori)
    }

    /// The local mean-luminance channel, `2K`.
    pub fn luminance_channel(&self) -> usize {
        2 * self.n_pairs
    }

    /// The local RMS-contrast channel, `2K + 1`.
    pub fn rms_channel(&self) -> usize {
        2 * self.n_pairs + 1
    }

    /// Bar orientation of orientation index `ori`, degrees counter-clockwise
    /// from rightward.
    pub fn orientation_deg(&self, ori: usize) -> f64 {
        180.0 * ori as f64 / self.cfg.orientations as f64
    }

    /// `(row, col)` centre of position `p` in pixel-index coordinates.
    ///
    /// # Panics
    /// If `p >= positions()`.
    pub fn position_px(&self, p: usize) -> (f32, f32) {
        assert!(
            p < self.positions(),
            "position {p} out of range 0..{}",
            self.positions()
        );
        let (gr, gc) = (p / self.cfg.grid_cols, p % self.cfg.grid_cols);
        (
            self.bank.row_centre_px[gr] as f32,
            self.bank.col_centre_px[gc] as f32,
        )
    }

    /// Human-readable name of channel `c` (see the module docs).
    ///
    /// # Panics
    /// If `c >= channels()`.
    pub fn channel_name(&self, c: usize) -> String {
        assert!(
            c < self.channels,
            "channel {c} out of range 0..{}",
            self.channels
        );
        let deg = |d: f64| {
            if (d - d.round()).abs() < 1e-9 {
                format!("{}", d.round())
            } else {
                format!("{d:.2}")
            }
        };
        let pair = |k: usize| {
            let (s, o) = (k / self.cfg.orientations, k % self.cfg.orientations);
            (self.cfg.cycles_per_px[s], self.orientation_deg(o))
        };
        if c < self.n_pairs {
            let (f, th) = pair(c);
            format!("energy sf{f} ori{}", deg(th))
        } else if c < 2 * self.n_pairs {
            let (f, th) = pair(c - self.n_pairs);
            format!(
                "motion sf{f} ori{} (+ = towards {})",
                deg(th),
                deg((th + 90.0) % 360.0)
            )
        } else if c == 2 * self.n_pairs {
            "luminance".into()
        } else {
            "rms contrast".into()
        }
    }

    /// Buffer lengths of a state of this core, in field order.
    fn state_lens(&self) -> [usize; 8] {
        let rows = self.cfg.grid_cols * self.bank.slot_stride;
        let pk = self.positions() * self.n_pairs;
        [
            pk,
            pk,
            self.positions() * self.channels,
            self.cfg.height * (self.cfg.width + LANES),
            rows,
            rows,
            rows * self.bank.n_h,
            rows * self.bank.n_h,
        ]
    }

    /// The state after a long mean-gray screen: every response and output 0.
    pub fn initial_state(&self) -> EnergyState {
        let [pe, po, lp, px, lum, sq, re, im] = self.state_lens();
        EnergyState {
            prev_even: vec![0.0; pe],
            prev_odd: vec![0.0; po],
            lowpass: vec![0.0; lp],
            contrast: vec![0.0; px],
            lum_rows: vec![0.0; lum],
            sq_rows: vec![0.0; sq],
            rows_re: vec![0.0; re],
            rows_im: vec![0.0; im],
        }
    }

    fn check_state(&self, s: &EnergyState) -> Result<(), EnergyCoreError> {
        let lens = [
            s.prev_even.len(),
            s.prev_odd.len(),
            s.lowpass.len(),
            s.contrast.len(),
            s.lum_rows.len(),
            s.sq_rows.len(),
            s.rows_re.len(),
            s.rows_im.len(),
        ];
        if lens == self.state_lens() {
            Ok(())
        } else {
            Err(EnergyCoreError::Argument {
                arg: "state",
                problem: "was made by a core with a different configuration".into(),
                fix: "create it with initial_state() on this core",
            })
        }
    }

    /// One frame (`height·width` bytes) → `out[P·C]` (position-major, channel
    /// fastest), advancing `state`. Errors, without touching `state` or `out`,
    /// on a wrong `frame` or `out` length or a foreign `state`; never panics.
    pub fn step(
        &self,
        state: &mut EnergyState,
        frame: &[u8],
        out: &mut [f32],
    ) -> Result<(), EnergyCoreError> {
        let px = self.cfg.height * self.cfg.width;
        if frame.len() != px {
            return Err(EnergyCoreError::Length {
                arg: "frame",
                got: frame.len(),
                expected: px,
                layout: "height·width u8 pixels, row-major",
            });
        }
        let n_out = self.positions() * self.channels;
        if out.len() != n_out {
            return Err(EnergyCoreError::Length {
                arg: "out",
                got: out.len(),
                expected: n_out,
                layout: "positions·channels, channel fastest",
            });
        }
        self.check_state(state)?;
        self.advance(state, frame);
        out.copy_from_slice(&state.lowpass);
        Ok(())
    }

    /// `t` frames (`t·height·width` bytes) from [`initial_state`](Self::initial_state)
    /// → `out[t·P·C]`; identical to `t` calls of [`step`](Self::step).
    pub fn clip(&self, frames: &[u8], t: usize, out: &mut [f32]) -> Result<(), EnergyCoreError> {
        self.clip_from(&mut self.initial_state(), frames, t, out)
    }

    /// Like [`clip`](Self::clip) but continuing from (and advancing) `state`.
    pub fn clip_from(
        &self,
        state: &mut EnergyState,
        frames: &[u8],
        t: usize,
        out: &mut [f32],
    ) -> Result<(), EnergyCoreError> {
        let px = self.cfg.height * self.cfg.width;
        let n_out = self.positions() * self.channels;
        let overflow = || EnergyCoreError::Argument {
            arg: "t",
            problem: format!("{t} frames overflow the address space"),
            fix: "process the clip in shorter pieces",
        };
        let want_in = t.checked_mul(px).ok_or_else(overflow)?;
        let want_out = t.checked_mul(n_out).ok_or_else(overflow)?;
        if frames.len() != want_in {
            return Err(EnergyCoreError::Length {
                arg: "frames",
                got: frames.len(),
                expected: want_in,
                layout: "t·height·width u8 pixels, frame-major",
            });
        }
        if out.len() != want_out {
            return Err(EnergyCoreError::Length {
                arg: "out",
                got: out.len(),
                expected: want_out,
                layout: "t·positions·channels, channel fastest",
            });
        }
        self.check_state(state)?;
        for (frame, o) in frames.chunks_exact(px).zip(out.chunks_exact_mut(n_out)) {
            self.advance(state, frame);
            o.copy_from_slice(&state.lowpass);
        }
        Ok(())
    }

    /// Bilinear readout of one frame's map (`P·C`) at continuous grid
    /// coordinates `(gr, gc)` (grid units: integer values are grid positions;
    /// clamped to `[0, grid_rows−1] × [0, grid_cols−1]`, NaN counts as 0)
    /// → `out[C]`.
    ///
    /// # Panics
    /// If `map.len() != P·C` or `out.len() != C`; use
    /// [`try_sample`](Self::try_sample) for an error instead.
    pub fn sample(&self, map: &[f32], gr: f32, gc: f32, out: &mut [f32]) {
        if let Err(e) = self.try_sample(map, gr, gc, out) {
            panic!("EnergyCore::sample: {e}");
        }
    }

    /// [`sample`](Self::sample) that returns an error on wrong lengths.
    pub fn try_sample(
        &self,
        map: &[f32],
        gr: f32,
        gc: f32,
        out: &mut [f32],
    ) -> Result<(), EnergyCoreError> {
        let c = self.channels;
        for (arg, got, expected, layout) in [
            (
                "map",
                map.len(),
                self.positions() * c,
                "positions·channels, channel fastest",
            ),
            ("out", out.len(), c, "channels"),
        ] {
            if got != expected {
                return Err(EnergyCoreError::Length {
                    arg,
                    got,
                    expected,
                    layout,
                });
            }
        }
        crate::frozen_core::sample_grid(map, self.cfg.grid_rows, self.cfg.grid_cols, gr, gc, out);
        Ok(())
    }

    /// The unchecked frame update (lengths already validated).
    fn advance(&self, st: &mut EnergyState, frame: &[u8]) {
        let b = &self.bank;
        let (w, n_h, n_pairs, nc) = (self.cfg.width, b.n_h, self.n_pairs, self.channels);
        let (stride, slots) = (w + LANES, b.slot_stride);
        for (dst, src) in st
            .contrast
            .chunks_exact_mut(stride)
            .zip(frame.chunks_exact(w))
        {
            for (c, &p) in dst.iter_mut().zip(src) {
                *c = self.lut[usize::from(p)];
            }
        }

        // Row pass: every needed frame row × every grid column's window.
        for (gc, span) in b.col_span.iter().enumerate() {
            for (slot, &y) in b.needed_rows.iter().enumerate() {
                let row = &st.contrast[y * stride + span.start..][..padded(span.len)];
                let (m1, m2) = gauss_moments(&b.h_gauss[gc], row);
                let i = gc * slots + slot;
                st.lum_rows[i] = m1;
                st.sq_rows[i] = m2;
                let base = gc * n_h * slots + slot;
                st.rows_re[base] = m1 as f32; // h = 0 is the plain Gaussian
                st.rows_im[base] = 0.0;
                for h in 1..n_h {
                    let j = base + h * slots;
                    st.rows_re[j] = dot(&b.h_re[gc * n_h + h], row);
                    st.rows_im[j] = dot(&b.h_im[gc * n_h + h], row);
                }
            }
        }

        // Column pass per position, then the nonlinearities and the low-pass.
        let alpha = self.alpha;
        for (gr, span) in b.row_span.iter().enumerate() {
            let s0 = b.row_slot0[gr];
            for gc in 0..self.cfg.grid_cols {
                let p = gr * self.cfg.grid_cols + gc;
                let plen = padded(span.len);
                let rows = gc * slots + s0..gc * slots + s0 + plen;
                let sum_c = dot64(&b.v_gauss[gr], &st.lum_rows[rows.clone()]);
                let sum_c2 = dot64(&b.v_gauss[gr], &st.sq_rows[rows]);
                let inv = b.inv_env_sum[p];
                let lum = sum_c * inv;
                let rms = (sum_c2 * inv - lum * lum).max(0.0).sqrt();
                let l = sum_c as f32;
                let lp = &mut st.lowpass[p * nc..][..nc];
                for k in 0..n_pairs {
                    let r0 = (gc * n_h + b.pair_h[k]) * slots + s0;
                    let rre = &st.rows_re[r0..][..plen];
                    let rim = &st.rows_im[r0..][..plen];
                    let (vre, vim) = (&b.v_re[gr * n_pairs + k], &b.v_im[gr * n_pairs + k]);
                    let g_re = dot(vre, rre) - dot(vim, rim);
                    let g_im = dot(vre, rim) + dot(vim, rre);
                    let cf = &b.coef[p * n_pairs + k];
                    let even = cf.e_re * g_re + cf.e_l * l;
                    let odd = cf.o_im * g_im + cf.o_re * g_re + cf.o_l * l;
                    let q = p * n_pairs + k;
                    let cross = st.prev_even[q] * odd - st.prev_odd[q] * even;
                    st.prev_even[q] = even;
                    st.prev_odd[q] = odd;
                    let energy = (even * even + odd * odd).sqrt();
                    let motion = cross.abs().sqrt().copysign(cross);
                    lp[k] += alpha * (energy - lp[k]);
                    lp[n_pairs + k] += alpha * (motion - lp[n_pairs + k]);
                }
                lp[2 * n_pairs] += alpha * (lum as f32 - lp[2 * n_pairs]);
                lp[2 * n_pairs + 1] += alpha * (rms as f32 - lp[2 * n_pairs + 1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    // ---- stimuli, rendered from the analytic formulas (not from the core) ----

    /// Full-frame sine grating: bars along `ori_deg` (counter-clockwise from
    /// rightward, screen y up), luminance `128 + 127.5·c·cos(2π·sf·(X·u) + phase)`
    /// with `u` the unit vector at `ori_deg + 90°`.
    fn grating(h: usize, w: usize, sf: f64, ori_deg: f64, contrast: f64, phase: f64) -> Vec<u8> {
        let d = (ori_deg + 90.0).to_radians();
        let mut f = Vec::with_capacity(h * w);
        for r in 0..h {
            for c in 0..w {
                let (x, y) = (c as f64, -(r as f64));
                let v = 128.0
                    + 127.5
                        * contrast
                        * (2.0 * PI * sf * (x * d.cos() + y * d.sin()) + phase).cos();
                f.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
        f
    }

    /// `t` frames of a grating drifting towards `ori_deg + 90°` at `tf_hz`
    /// (negative: the opposite way; 0: static).
    fn drifting(
        cfg: &EnergyCoreConfig,
        sf: f64,
        ori_deg: f64,
        contrast: f64,
        tf_hz: f64,
        t: usize,
    ) -> Vec<u8> {
        (0..t)
            .flat_map(|i| {
                let phase = -2.0 * PI * tf_hz * i as f64 / cfg.frame_rate_hz;
                grating(cfg.height, cfg.width, sf, ori_deg, contrast, phase)
            })
            .collect()
    }

    /// The default config with one edit applied.
    fn with(edit: impl FnOnce(&mut EnergyCoreConfig)) -> EnergyCoreConfig {
        let mut cfg = EnergyCoreConfig::default();
        edit(&mut cfg);
        cfg
    }

    /// 144 × 256 px frames on a 9 × 16 grid, otherwise default.
    fn large() -> EnergyCoreConfig {
        with(|c| (c.height, c.width, c.grid_rows, c.grid_cols) = (144, 256, 9, 16))
    }

    fn core(cfg: EnergyCoreConfig) -> EnergyCore {
        EnergyCore::new(cfg).expect("valid config")
    }

    /// Output map of the last of `t` frames, starting from the initial state.
    fn last_map(core: &EnergyCore, frames: &[u8], t: usize) -> Vec<f32> {
        let n = core.positions() * core.channels();
        let mut out = vec![0.0; t * n];
        core.clip(frames, t, &mut out).unwrap();
        out[(t - 1) * n..].to_vec()
    }

    fn at(core: &EnergyCore, map: &[f32], p: usize) -> Vec<f32> {
        map[p * core.channels()..][..core.channels()].to_vec()
    }

    /// Position whose centre is nearest the frame centre.
    fn central(core: &EnergyCore) -> usize {
        let c = core.config();
        let (yc, xc) = ((c.height as f32 - 1.0) / 2.0, (c.width as f32 - 1.0) / 2.0);
        let d = |p: usize| {
            let (y, x) = core.position_px(p);
            (y - yc).powi(2) + (x - xc).powi(2)
        };
        (0..core.positions())
            .min_by(|&a, &b| d(a).total_cmp(&d(b)))
            .unwrap()
    }

    fn pairs(cfg: &EnergyCoreConfig) -> Vec<(usize, f64, usize, f64)> {
        let n = cfg.orientations;
        cfg.cycles_per_px
            .iter()
            .enumerate()
            .flat_map(|(s, &f)| (0..n).map(move |o| (s, f, o, 180.0 * o as f64 / n as f64)))
            .collect()
    }

    // ---- 1. tuning, normalisation, linearity ----

    #[test]
    fn preferred_grating_energy_is_unit_largest_and_linear() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let p = central(&core);
        let t = 30;
        for (s, sf, o, ori) in pairs(&cfg) {
            let ch = core.energy_channel(s, o);
            let mut e = Vec::new();
            for c in [0.25, 0.5, 1.0] {
                let v = at(
                    &core,
                    &last_map(&core, &drifting(&cfg, sf, ori, c, 2.0, t), t),
                    p,
                );
                e.push(v[ch]);
                if c == 1.0 {
                    assert!(
                        (v[ch] - 1.0).abs() < 0.1,
                        "sf{sf} ori{ori}: energy {}",
                        v[ch]
                    );
                    for k in (0..core.pairs()).filter(|&k| k != ch) {
                        assert!(
                            v[k] < v[ch],
                            "sf{sf} ori{ori}: channel {k} = {} ≥ {}",
                            v[k],
                            v[ch]
                        );
                    }
                }
            }
            for (i, c) in [0.25f32, 0.5].into_iter().enumerate() {
                let rel = e[i] / (c * e[2]);
                assert!(
                    (rel - 1.0).abs() < 0.03,
                    "sf{sf} ori{ori} contrast {c}: ratio {rel}"
                );
            }
        }
    }

    #[test]
    fn preferred_grating_energy_is_unit_at_every_position_including_edges() {
        for cfg in [EnergyCoreConfig::default(), large()] {
            let core = core(cfg.clone());
            for (s, sf, o, ori) in pairs(&cfg) {
                for phase in [0.0, 1.3, 2.9] {
                    let frame = grating(cfg.height, cfg.width, sf, ori, 1.0, phase);
                    let mut st = core.initial_state();
                    let mut out = vec![0.0; core.positions() * core.channels()];
                    for _ in 0..40 {
                        core.step(&mut st, &frame, &mut out).unwrap();
                    }
                    for p in 0..core.positions() {
                        let e = out[p * core.channels() + core.energy_channel(s, o)];
                        assert!(
                            (e - 1.0).abs() < 0.05,
                            "{}x{} sf{sf} ori{ori} p{p}: {e}",
                            cfg.height,
                            cfg.width
                        );
                    }
                }
            }
        }
    }

    // ---- 2. direction ----

    #[test]
    fn drift_direction_sets_motion_sign_and_static_gives_zero() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let p = central(&core);
        let t = 30;
        let tf = 2.0;
        // Preferred grating, Δφ = 2π·tf/fps per frame → |motion| = sqrt(sin Δφ).
        let expect = (2.0 * PI * tf / cfg.frame_rate_hz).sin().sqrt() as f32;
        for (s, sf, o, ori) in pairs(&cfg) {
            let ch = core.motion_channel(s, o);
            let fwd = at(
                &core,
                &last_map(&core, &drifting(&cfg, sf, ori, 1.0, tf, t), t),
                p,
            )[ch];
            let back = at(
                &core,
                &last_map(&core, &drifting(&cfg, sf, ori, 1.0, -tf, t), t),
                p,
            )[ch];
            let stat = at(
                &core,
                &last_map(&core, &drifting(&cfg, sf, ori, 1.0, 0.0, t), t),
                p,
            )[ch];
            assert!(fwd > 0.0 && back < 0.0, "sf{sf} ori{ori}: {fwd} {back}");
            for m in [fwd, -back] {
                assert!(
                    (m / expect - 1.0).abs() < 0.1,
                    "sf{sf} ori{ori}: |motion| {m}, expected {expect}"
                );
            }
            assert!(stat.abs() < 1e-6, "sf{sf} ori{ori}: static motion {stat}");
        }
    }

    // ---- 3. phase invariance ----

    #[test]
    fn energy_is_phase_invariant_for_static_gratings() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let p = central(&core);
        for (s, sf, o, ori) in pairs(&cfg) {
            let e: Vec<f32> = (0..8)
                .map(|i| {
                    let f = grating(cfg.height, cfg.width, sf, ori, 1.0, PI * i as f64 / 4.0);
                    let frames: Vec<u8> = (0..30).flat_map(|_| f.iter().copied()).collect();
                    at(&core, &last_map(&core, &frames, 30), p)[core.energy_channel(s, o)]
                })
                .collect();
            let (lo, hi) = e
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            assert!((hi - lo) / hi < 0.05, "sf{sf} ori{ori}: {e:?}");
        }
    }

    // ---- 4. uniform screens, RMS contrast ----

    #[test]
    fn gray_gives_zero_and_uniform_screens_drive_luminance_only() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let px = cfg.height * cfg.width;
        let n = core.positions() * core.channels();
        let gray = last_map(&core, &vec![128u8; 10 * px], 10);
        assert!(gray.iter().all(|x| x.abs() < 1e-6));
        for (value, lum) in [
            (255u8, 127.0 / 127.5),
            (0, -128.0 / 127.5),
            (200, 72.0 / 127.5),
        ] {
            let map = last_map(&core, &vec![value; 40 * px], 40);
            assert_eq!(map.len(), n);
            for p in 0..core.positions() {
                let v = at(&core, &map, p);
                let l = v[core.luminance_channel()];
                assert!((l - lum).abs() < 1e-4, "p{p} value {value}: luminance {l}");
                assert!(v[core.rms_channel()].abs() < 1e-4);
                for (k, x) in v[..2 * core.pairs()].iter().enumerate() {
                    let name = core.channel_name(k);
                    assert!(x.abs() < 1e-4, "p{p} value {value}: {name} = {x}");
                }
            }
        }
    }

    #[test]
    fn rms_contrast_of_a_sine_grating_is_contrast_over_root_two() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let p = central(&core);
        for c in [0.5, 1.0] {
            let map = last_map(&core, &drifting(&cfg, 0.09, 45.0, c, 0.0, 30), 30);
            let v = at(&core, &map, p);
            let want = (c / 2f64.sqrt()) as f32;
            assert!(
                (v[core.rms_channel()] / want - 1.0).abs() < 0.05,
                "{} vs {want}",
                v[core.rms_channel()]
            );
            assert!(v[core.luminance_channel()].abs() < 0.05);
        }
    }

    // ---- 5. locality ----

    #[test]
    fn a_top_left_patch_drives_top_left_positions_only() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let full = grating(cfg.height, cfg.width, 0.09, 90.0, 1.0, 0.0);
        let frame: Vec<u8> = full
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if i / cfg.width < 16 && i % cfg.width < 16 {
                    v
                } else {
                    128
                }
            })
            .collect();
        let map = last_map(&core, &frame.repeat(30), 30);
        let max_energy = |p: usize| {
            at(&core, &map, p)[..core.pairs()]
                .iter()
                .fold(0.0f32, |a, &b| a.max(b))
        };
        let top_left = max_energy(0);
        let bottom_right = max_energy(core.positions() - 1);
        assert!(top_left > 0.2, "top-left {top_left}");
        assert!(
            bottom_right < 0.01 * top_left,
            "bottom-right {bottom_right} vs {top_left}"
        );
    }

    // ---- 6. low-pass ----

    #[test]
    fn step_onset_reaches_one_minus_inv_e_after_tau() {
        for (fps, tau) in [(30.0, 0.08), (30.0, 0.2), (60.0, 0.05), (60.0, 0.5)] {
            let cfg = with(|c| (c.frame_rate_hz, c.tau_s) = (fps, tau));
            let core = core(cfg.clone());
            let p = central(&core);
            let ch = core.energy_channel(1, 2);
            let t = (10.0 * tau * fps) as usize + 5;
            let frames = drifting(&cfg, 0.09, 90.0, 1.0, 0.0, t);
            let mut out = vec![0.0; t * core.positions() * core.channels()];
            core.clip(&frames, t, &mut out).unwrap();
            let trace: Vec<f32> = (0..t)
                .map(|i| out[(i * core.positions() + p) * core.channels() + ch])
                .collect();
            let fin = trace[t - 1];
            let k = trace
                .iter()
                .position(|&y| y >= (1.0 - (-1.0f32).exp()) * fin)
                .unwrap();
            // Frame k's output is available one frame period after its onset.
            let t_cross = (k + 1) as f64 / fps;
            assert!(
                (t_cross - tau).abs() <= 1.0 / fps,
                "fps {fps} tau {tau}: crossed at {t_cross}"
            );
        }
    }

    // ---- 7. clip vs step, sampling ----

    fn noise_frames(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn clip_equals_repeated_step_bit_for_bit() {
        let core = core(EnergyCoreConfig::default());
        let cfg = core.config().clone();
        let (px, n, t) = (
            cfg.height * cfg.width,
            core.positions() * core.channels(),
            12,
        );
        let frames = noise_frames(t * px, 0x9E37_79B9_7F4A_7C15);
        let mut clip_out = vec![0.0; t * n];
        core.clip(&frames, t, &mut clip_out).unwrap();
        let mut st = core.initial_state();
        let mut out = vec![0.0; n];
        for i in 0..t {
            core.step(&mut st, &frames[i * px..][..px], &mut out)
                .unwrap();
            let want = &clip_out[i * n..][..n];
            assert!(
                out.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "frame {i}"
            );
        }
        assert_eq!(st.output(), &out[..]);
        // Continuing from a given state, and a second core, agree too.
        let mut st2 = core.initial_state();
        let mut a = vec![0.0; 5 * n];
        core.clip_from(&mut st2, &frames[..5 * px], 5, &mut a)
            .unwrap();
        let mut b = vec![0.0; 7 * n];
        core.clip_from(&mut st2, &frames[5 * px..], 7, &mut b)
            .unwrap();
        let again = self::core(cfg);
        let mut c = vec![0.0; t * n];
        again.clip(&frames, t, &mut c).unwrap();
        a.extend_from_slice(&b);
        assert!(
            a.iter()
                .zip(&clip_out)
                .chain(c.iter().zip(&clip_out))
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    #[test]
    fn sample_is_bilinear_over_the_grid() {
        let core = core(EnergyCoreConfig::default());
        let (rows, cols, nc) = (
            core.config().grid_rows,
            core.config().grid_cols,
            core.channels(),
        );
        let map: Vec<f32> = noise_frames(core.positions() * nc, 7)
            .iter()
            .map(|&b| b as f32 / 7.0 - 3.0)
            .collect();
        let m = |r: usize, c: usize, ch: usize| map[(r * cols + c) * nc + ch];
        let mut out = vec![0.0; nc];
        for r in 0..rows {
            for c in 0..cols {
                core.sample(&map, r as f32, c as f32, &mut out);
                assert!((0..nc).all(|ch| out[ch].to_bits() == m(r, c, ch).to_bits()));
            }
        }
        for r in 0..rows - 1 {
            for c in 0..cols - 1 {
                core.sample(&map, r as f32 + 0.5, c as f32, &mut out);
                assert!(
                    (0..nc)
                        .all(|ch| (out[ch] - (m(r, c, ch) + m(r + 1, c, ch)) / 2.0).abs() < 1e-5)
                );
                core.sample(&map, r as f32, c as f32 + 0.5, &mut out);
                assert!(
                    (0..nc)
                        .all(|ch| (out[ch] - (m(r, c, ch) + m(r, c + 1, ch)) / 2.0).abs() < 1e-5)
                );
                core.sample(&map, r as f32 + 0.5, c as f32 + 0.5, &mut out);
                let avg = |ch| {
                    (m(r, c, ch) + m(r + 1, c, ch) + m(r, c + 1, ch) + m(r + 1, c + 1, ch)) / 4.0
                };
                assert!((0..nc).all(|ch| (out[ch] - avg(ch)).abs() < 1e-5));
            }
        }
        // Clamped outside the grid (NaN counts as 0).
        core.sample(&map, -3.0, f32::NAN, &mut out);
        assert!((0..nc).all(|ch| out[ch] == m(0, 0, ch)));
        core.sample(&map, 1e9, 1e9, &mut out);
        assert!((0..nc).all(|ch| out[ch] == m(rows - 1, cols - 1, ch)));
    }

    // ---- 8. bad input ----

    #[test]
    fn wrong_lengths_and_foreign_state_are_named_errors() {
        let core = core(EnergyCoreConfig::default());
        let (px, n) = (36 * 64, core.positions() * core.channels());
        let mut st = core.initial_state();
        let mut out = vec![0.0; n];
        let err = core
            .step(&mut st, &vec![0u8; px - 1], &mut out)
            .unwrap_err();
        assert_eq!(err.name(), "frame");
        assert!(err.to_string().contains("frame") && err.to_string().contains("fix"));
        assert_eq!(
            core.step(&mut st, &vec![0u8; px], &mut out[1..])
                .unwrap_err()
                .name(),
            "out"
        );
        assert_eq!(
            core.clip(&vec![0u8; 2 * px + 1], 2, &mut vec![0.0; 2 * n])
                .unwrap_err()
                .name(),
            "frames"
        );
        assert_eq!(
            core.clip(&vec![0u8; 2 * px], 2, &mut vec![0.0; n])
                .unwrap_err()
                .name(),
            "out"
        );
        assert_eq!(core.clip(&[], usize::MAX, &mut []).unwrap_err().name(), "t");
        assert!(core.clip(&[], 0, &mut []).is_ok());
        let other = self::core(with(|c| c.grid_cols = 5));
        let mut foreign = other.initial_state();
        assert_eq!(
            core.step(&mut foreign, &vec![0u8; px], &mut out)
                .unwrap_err()
                .name(),
            "state"
        );
        assert_eq!(
            core.try_sample(&out[1..], 0.0, 0.0, &mut [0.0; 18])
                .unwrap_err()
                .name(),
            "map"
        );
        assert_eq!(
            core.try_sample(&out, 0.0, 0.0, &mut [0.0; 17])
                .unwrap_err()
                .name(),
            "out"
        );
        // Errors leave state and out untouched.
        assert!(st.output().iter().all(|&x| x == 0.0) && out.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn bad_config_fields_are_named() {
        type Edit = fn(&mut EnergyCoreConfig);
        let cases: [(&str, Edit); 18] = [
            ("height", |c| c.height = 0),
            ("width", |c| c.width = 0),
            ("grid_rows", |c| c.grid_rows = 0),
            ("grid_rows", |c| c.grid_rows = 37),
            ("grid_cols", |c| c.grid_cols = 65),
            ("orientations", |c| c.orientations = 0),
            ("cycles_per_px", |c| c.cycles_per_px.clear()),
            ("cycles_per_px", |c| c.cycles_per_px = vec![0.04, 0.5]),
            ("cycles_per_px", |c| c.cycles_per_px = vec![0.7]),
            ("cycles_per_px", |c| c.cycles_per_px = vec![0.0]),
            ("cycles_per_px", |c| c.cycles_per_px = vec![f64::NAN]),
            ("envelope_sigma_px", |c| c.envelope_sigma_px = 0.0),
            ("envelope_sigma_px", |c| c.envelope_sigma_px = f64::INFINITY),
            ("frame_rate_hz", |c| c.frame_rate_hz = -30.0),
            ("tau_s", |c| c.tau_s = 0.0),
            ("tau_s", |c| c.tau_s = -0.1),
            ("tau_s", |c| c.tau_s = f64::NAN),
            // A 4 × 4 frame cannot hold a usable pair at 0.01 cycles/px.
            ("cycles_per_px", |c| {
                (c.height, c.width, c.grid_rows, c.grid_cols) = (4, 4, 1, 1);
                c.cycles_per_px = vec![0.01];
            }),
        ];
        for (field, edit) in cases {
            let cfg = with(edit);
            let err = EnergyCore::new(cfg.clone()).unwrap_err();
            assert_eq!(err.name(), field, "{cfg:?}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(field) && msg.contains("fix:"), "{msg}");
        }
    }

    // ---- geometry and names ----

    #[test]
    fn geometry_and_channel_names() {
        let core = core(EnergyCoreConfig::default());
        assert_eq!(
            (core.positions(), core.pairs(), core.channels()),
            (60, 8, 18)
        );
        assert_eq!(core.position_px(0), (2.5, 2.7));
        let (r, c) = core.position_px(59);
        assert!((r - 32.5).abs() < 1e-5 && (c - 60.3).abs() < 1e-5);
        assert_eq!(
            core.channel_name(core.energy_channel(0, 1)),
            "energy sf0.04 ori45"
        );
        assert_eq!(
            core.channel_name(core.motion_channel(0, 1)),
            "motion sf0.04 ori45 (+ = towards 135)"
        );
        assert_eq!(
            core.channel_name(core.motion_channel(1, 3)),
            "motion sf0.09 ori135 (+ = towards 225)"
        );
        assert_eq!(core.channel_name(16), "luminance");
        assert_eq!(core.channel_name(17), "rms contrast");
        assert_eq!(core.energy_channel(1, 0), 4);
        assert_eq!(core.motion_channel(0, 0), 8);
        let names: std::collections::HashSet<String> =
            (0..18).map(|c| core.channel_name(c)).collect();
        assert_eq!(names.len(), 18);
        assert!(core.initial_state().output().iter().all(|&x| x == 0.0));
    }
}
