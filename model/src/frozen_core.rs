//! The frozen core the closed loop's readouts read, behind one trait: an fnn core
//! ([`FnnCore`]: the embedded pretrained core, the default, or one loaded from weights) or the
//! baseline motion-energy bank ([`crate::energy_core::EnergyCore`]).
//!
//! A frozen core maps a clip of u8 frames to one feature map per frame on a coarse grid of
//! readout positions, `[position][channel]` with `position = row·cols + col`. The online
//! readouts (`design`) place each cell at a continuous grid coordinate and read the map there
//! bilinearly ([`sample_grid`]), as fnn's readout reads its core at a learned position.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::energy_core::{EnergyCore, EnergyCoreError};
use crate::error::{CandleContext, ModelError};
use crate::network::Twin;
use crate::ops::conv_cpu::{serial, stream_threads};
use crate::ops::{Padding, grid_sample};

/// Why a frozen core could not run.
#[derive(Debug, thiserror::Error)]
pub enum FrozenCoreError {
    #[error(transparent)]
    Energy(#[from] EnergyCoreError),
    #[error(transparent)]
    Twin(#[from] ModelError),
    #[error(
        "argument `{arg}` has length {got} but this core needs {expected} ({layout}); fix: pass exactly {expected} elements"
    )]
    Length {
        arg: &'static str,
        got: usize,
        expected: usize,
        layout: &'static str,
    },
}

/// What the closed loop needs of a core.
pub trait FrozenCore: Send + Sync {
    /// One line for logs and reports.
    fn describe(&self) -> String;
    /// Feature channels per position.
    fn channels(&self) -> usize;
    /// The grid of readout positions, `(rows, cols)`.
    fn grid(&self) -> (usize, usize);
    /// Positions per map (`rows·cols`).
    fn positions(&self) -> usize {
        let (r, c) = self.grid();
        r * c
    }
    /// The frames it takes, `(height, width)` u8 pixels.
    fn input_size(&self) -> (usize, usize);
    /// `n` clips of `t` frames each (`n·t·height·width` bytes, clip-major), each starting after
    /// a long mean-gray screen → `out[n·t·P·C]`.
    fn clips(
        &mut self,
        frames: &[u8],
        n: usize,
        t: usize,
        out: &mut [f32],
    ) -> Result<(), FrozenCoreError>;
    /// The map of the mean-gray screen after a long mean-gray screen, `out[P·C]`.
    fn gray(&mut self, out: &mut [f32]) -> Result<(), FrozenCoreError>;
    /// Bilinear read of one map at continuous grid coordinates → `out[C]` (see [`sample_grid`]).
    fn sample(&self, map: &[f32], gr: f32, gc: f32, out: &mut [f32]) {
        let (rows, cols) = self.grid();
        sample_grid(map, rows, cols, gr, gc, out);
    }
}

/// Bilinear read of a position-major map (`rows·cols·C`, channel fastest, `C = out.len()`) at
/// continuous grid coordinates `(gr, gc)`: integers are grid positions; coordinates are clamped
/// to the grid and NaN reads as 0. The caller guarantees the lengths.
pub fn sample_grid(map: &[f32], rows: usize, cols: usize, gr: f32, gc: f32, out: &mut [f32]) {
    let c = out.len();
    let axis = |g: f32, n: usize| {
        let g = if g >= 0.0 { g.min((n - 1) as f32) } else { 0.0 };
        let i0 = (g.floor() as usize).min(n - 1);
        (i0, (i0 + 1).min(n - 1), g - i0 as f32)
    };
    let (r0, r1, fr) = axis(gr, rows);
    let (c0, c1, fc) = axis(gc, cols);
    let at = |r: usize, col: usize| &map[(r * cols + col) * c..][..c];
    let (m00, m01, m10, m11) = (at(r0, c0), at(r0, c1), at(r1, c0), at(r1, c1));
    let (w00, w01) = ((1.0 - fr) * (1.0 - fc), (1.0 - fr) * fc);
    let (w10, w11) = (fr * (1.0 - fc), fr * fc);
    for (i, o) in out.iter_mut().enumerate() {
        *o = w00 * m00[i] + w01 * m01[i] + w10 * m10[i] + w11 * m11[i];
    }
}

impl FrozenCore for EnergyCore {
    fn describe(&self) -> String {
        let c = self.config();
        format!(
            "energy bank (baseline), {}x{} grid, {} channels, {}x{} px",
            c.grid_rows,
            c.grid_cols,
            self.channels(),
            c.height,
            c.width
        )
    }

    fn channels(&self) -> usize {
        EnergyCore::channels(self)
    }

    fn grid(&self) -> (usize, usize) {
        (self.config().grid_rows, self.config().grid_cols)
    }

    fn input_size(&self) -> (usize, usize) {
        (self.config().height, self.config().width)
    }

    fn clips(
        &mut self,
        frames: &[u8],
        n: usize,
        t: usize,
        out: &mut [f32],
    ) -> Result<(), FrozenCoreError> {
        let (h, w) = FrozenCore::input_size(self);
        let per_clip_out = t * FrozenCore::positions(self) * FrozenCore::channels(self);
        check_clips(frames, out, n, t * h * w, per_clip_out)?;
        for (clip, o) in frames
            .chunks_exact(t * h * w)
            .zip(out.chunks_exact_mut(per_clip_out))
        {
            self.clip(clip, t, o)?;
        }
        Ok(())
    }

    fn gray(&mut self, out: &mut [f32]) -> Result<(), FrozenCoreError> {
        let (h, w) = FrozenCore::input_size(self);
        let mut state = self.initial_state();
        self.step(&mut state, &vec![MEAN_GRAY; h * w], out)?;
        Ok(())
    }
}

/// Mean gray (the inter-trial screen).
const MEAN_GRAY: u8 = 128;

/// Checks a [`FrozenCore::clips`] call's buffers: `n` clips of `per_clip_in` pixels in, of
/// `per_clip_out` values out; a mismatch names the argument and the layout expected.
pub fn check_clips(
    frames: &[u8],
    out: &[f32],
    n: usize,
    per_clip_in: usize,
    per_clip_out: usize,
) -> Result<(), FrozenCoreError> {
    let want = |arg, got: usize, per: usize, layout| {
        if got == n * per {
            Ok(())
        } else {
            Err(FrozenCoreError::Length {
                arg,
                got,
                expected: n * per,
                layout,
            })
        }
    };
    want(
        "frames",
        frames.len(),
        per_clip_in,
        "n·t·height·width u8 pixels",
    )?;
    want("out", out.len(), per_clip_out, "n·t·positions·channels")
}

/// An fnn core (Wang et al. 2025) as the loop's frozen core: the twin's perspective (pupil at
/// the centre of gaze) and every stream's modulation (at rest) and core, read at a grid of
/// positions spread evenly over the core's map (cell centres, fnn's `align_corners = false`
/// coordinates, border padding as its readout). The streams' channels are concatenated: fnn
/// averages stream log-rates, which is linear in the concatenated features, so an online
/// readout on them spans fnn's.
///
/// Clips run in batches of a fixed size, each batch from a copy of the twin after the gray
/// pre-roll (run once per batch size, not once per batch), batches spread over candle's CPU
/// threads with each batch's ops single-threaded. A clip's features depend only on its batch's
/// position in the call, never on the thread count (replay rebuilds the same pool).
pub struct FnnCore {
    /// The twin as loaded (never stepped: every pre-roll starts from a copy).
    twin: Twin,
    grid: (usize, usize),
    /// Mean-gray frames run before every clip, so a clip starts as a trial does, after gray.
    preroll: usize,
    /// Clips run together.
    batch: usize,
    channels: usize,
    /// The twin after the pre-roll, per batch size (see [`FnnCore::prerolled`]).
    prerolled: Vec<(usize, Twin)>,
}

/// The inputs of a batch of `n` clips that do not change over a clip: the mean-gray screen,
/// the pupil at the centre of gaze, behaviour at rest, and the readout grid.
struct AtRest {
    gray: Tensor,
    pupil: Tensor,
    modulation: Tensor,
    /// `[n, rows, cols, 2]` (x, y) at the centres of an even partition of the map.
    grid: Tensor,
}

impl AtRest {
    fn new(twin: &Twin, n: usize, (rows, cols): (usize, usize)) -> Result<AtRest, ModelError> {
        let dev = twin.device();
        let cfg = twin.config();
        let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
        let mut g = Vec::with_capacity(n * rows * cols * 2);
        for _ in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    g.push(-1.0 + (2 * c + 1) as f32 / cols as f32);
                    g.push(-1.0 + (2 * r + 1) as f32 / rows as f32);
                }
            }
        }
        Ok(AtRest {
            gray: Tensor::full(f32::from(MEAN_GRAY) / 255.0, (n, 1, h, w), dev).ctx("gray")?,
            pupil: Tensor::zeros((n, cfg.perspectives), candle_core::DType::F32, dev)
                .ctx("pupil at rest")?,
            modulation: Tensor::zeros((n, cfg.modulations), candle_core::DType::F32, dev)
                .ctx("behaviour at rest")?,
            grid: Tensor::from_vec(g, (n, rows, cols, 2), dev).ctx("sampling grid")?,
        })
    }

    /// One frame `stim` (`None`: mean gray) through `twin` → the maps `[n][rows·cols·S·C]`.
    fn step(&self, twin: &mut Twin, stim: Option<&Tensor>) -> Result<Vec<f32>, ModelError> {
        let maps = twin.core_features(stim.unwrap_or(&self.gray), &self.pupil, &self.modulation)?;
        let mut sampled = Vec::with_capacity(maps.len());
        for m in &maps {
            sampled.push(grid_sample(m, &self.grid, Padding::Border)?);
        }
        // [n, S·C, rows, cols] → [n, rows, cols, S·C]: position-major, channel fastest.
        Tensor::cat(&sampled, 1)
            .and_then(|t| t.permute((0, 2, 3, 1)))
            .and_then(|t| t.contiguous())
            .and_then(|t| t.to_device(&Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .ctx("core maps")
    }
}

impl FnnCore {
    /// Wraps a twin; `grid` is `(rows, cols)` of readout positions, `preroll` gray frames run
    /// before each clip.
    pub fn new(twin: Twin, grid: (usize, usize), preroll: usize) -> Result<FnnCore, ModelError> {
        if grid.0 == 0 || grid.1 == 0 {
            return Err(crate::error::config_err(
                "grid",
                "needs at least one row and one column",
            ));
        }
        let channels = twin.config().streams * twin.config().recurrent.out_channels;
        Ok(FnnCore {
            twin,
            grid,
            preroll,
            batch: 8,
            channels,
            prerolled: Vec::new(),
        })
    }

    /// Clips run together (default 8; at least 1). Larger batches amortise each op's
    /// overhead; smaller ones share a call's clips more evenly over the threads.
    pub fn with_batch(mut self, batch: usize) -> FnnCore {
        self.batch = batch.max(1);
        self
    }

    /// Loads the twin from a safetensors file and a config JSON (`None`: fnn's released
    /// network with the unit count found in the file).
    pub fn from_files(
        weights: &Path,
        config: Option<&Path>,
        grid: (usize, usize),
        preroll: usize,
        dev: &Device,
    ) -> Result<FnnCore, ModelError> {
        FnnCore::new(crate::cli::load_twin(weights, config, dev)?, grid, preroll)
    }

    /// The twin after `preroll` mean-gray frames at batch size `n`, from a fresh state: what
    /// every clip of a batch of `n` starts from. Every clip's pre-roll is the same, so it runs
    /// once per batch size and batches start from copies (a copy shares the weights).
    fn prerolled(&mut self, n: usize) -> Result<&Twin, ModelError> {
        let i = match self.prerolled.iter().position(|(b, _)| *b == n) {
            Some(i) => i,
            None => {
                let rest = AtRest::new(&self.twin, n, self.grid)?;
                let mut twin = self.twin.clone();
                twin.reset();
                // Single-threaded as the batches are (see `run_batch`).
                serial(|| {
                    (0..self.preroll).try_for_each(|_| {
                        twin.core_features(&rest.gray, &rest.pupil, &rest.modulation)
                            .map(drop)
                    })
                })?;
                self.prerolled.push((n, twin));
                self.prerolled.len() - 1
            }
        };
        Ok(&self.prerolled[i].1)
    }
}

/// One batch of `n` clips of `t` frames (`n·t·H·W` u8, clip-major) from `twin` (pre-rolled at
/// batch size `n`) → `dst[n·t·P·C]`, clip-major. Ops single-threaded (`conv_cpu::serial`),
/// so the result does not depend on how many batches run at once.
fn run_batch(
    twin: &mut Twin,
    rest: &AtRest,
    clips: &[u8],
    n: usize,
    t: usize,
    dst: &mut [f32],
) -> Result<(), ModelError> {
    let (h, w) = (twin.config().stimulus_height, twin.config().stimulus_width);
    let px = h * w;
    let per_map = dst.len() / (n * t).max(1);
    let dev = twin.device().clone();
    serial(|| {
        for k in 0..t {
            let pix: Vec<f32> = (0..n)
                .flat_map(|i| &clips[(i * t + k) * px..][..px])
                .map(|&v| f32::from(v) / 255.0)
                .collect();
            let stim = Tensor::from_vec(pix, (n, 1, h, w), &dev).ctx("clip frame")?;
            let maps = rest.step(twin, Some(&stim))?;
            debug_assert_eq!(maps.len(), n * per_map);
            for (i, m) in maps.chunks_exact(per_map).enumerate() {
                dst[(i * t + k) * per_map..][..per_map].copy_from_slice(m);
            }
        }
        Ok(())
    })
}

impl FrozenCore for FnnCore {
    fn describe(&self) -> String {
        let c = self.twin.config();
        format!(
            "fnn core, {} stream(s) x {} channels, {}x{} grid, {}x{} px, {} gray frames before each clip",
            c.streams,
            c.recurrent.out_channels,
            self.grid.0,
            self.grid.1,
            c.stimulus_height,
            c.stimulus_width,
            self.preroll
        )
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn grid(&self) -> (usize, usize) {
        self.grid
    }

    fn input_size(&self) -> (usize, usize) {
        let c = self.twin.config();
        (c.stimulus_height, c.stimulus_width)
    }

    fn clips(
        &mut self,
        frames: &[u8],
        n: usize,
        t: usize,
        out: &mut [f32],
    ) -> Result<(), FrozenCoreError> {
        let (h, w) = FrozenCore::input_size(self);
        let px = h * w;
        let per_map = FrozenCore::positions(self) * self.channels;
        check_clips(frames, out, n, t * px, t * per_map)?;
        if n == 0 || t == 0 {
            return Ok(());
        }
        // Batches of `self.batch` clips in order (the last one shorter): the split never
        // depends on the thread count, so neither do the features.
        let size = self.batch;
        let batches: Vec<(&[u8], &mut [f32])> = frames
            .chunks(size * t * px)
            .zip(out.chunks_mut(size * t * per_map))
            .collect();
        let sizes: Vec<usize> = batches.iter().map(|(c, _)| c.len() / (t * px)).collect();
        let mut starts = Vec::with_capacity(2);
        for &b in &sizes {
            if !starts.iter().any(|(s, _, _)| *s == b) {
                let rest = AtRest::new(&self.twin, b, self.grid)?;
                starts.push((b, self.prerolled(b)?.clone(), rest));
            }
        }
        let start = |b: usize| {
            starts
                .iter()
                .find(|(s, _, _)| *s == b)
                .map(|(_, twin, rest)| (twin, rest))
        };
        let threads = stream_threads(self.twin.device()).min(batches.len());
        // Batches are handed out one at a time (a thread slowed by other load takes fewer).
        let queue = std::sync::Mutex::new(batches.into_iter().enumerate());
        let work = || -> Result<(), ModelError> {
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .next();
                let Some((i, (clips, dst))) = next else {
                    return Ok(());
                };
                let (twin, rest) = start(sizes[i])
                    .ok_or_else(|| crate::error::config_err("batch", "no pre-rolled twin"))?;
                run_batch(&mut twin.clone(), rest, clips, sizes[i], t, dst)?;
            }
        };
        if threads <= 1 {
            return Ok(work()?);
        }
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads).map(|_| sc.spawn(work)).collect();
            handles.into_iter().try_for_each(|h| match h.join() {
                Ok(r) => r,
                Err(payload) => std::panic::resume_unwind(payload),
            })
        })?;
        Ok(())
    }

    fn gray(&mut self, out: &mut [f32]) -> Result<(), FrozenCoreError> {
        let per_map = FrozenCore::positions(self) * self.channels;
        if out.len() != per_map {
            return Err(FrozenCoreError::Length {
                arg: "out",
                got: out.len(),
                expected: per_map,
                layout: "positions·channels",
            });
        }
        let rest = AtRest::new(&self.twin, 1, self.grid)?;
        let mut twin = self.prerolled(1)?.clone();
        let maps = serial(|| rest.step(&mut twin, None))?;
        out.copy_from_slice(&maps);
        Ok(())
    }
}
