//! Per-unit embeddings of a fitted twin (issue #21): what the twin says about each neuron, as
//! the anatomy analyses read it (`analysis/SCHEMA.md`, `twinloop twin embeddings`).
//!
//! - **Feature weights**: the standardised readout weights `[U, C]`, exactly as the forward
//!   pass uses them ([`Readout::weights`]); with several streams, their mean (fnn's streams are
//!   an ensemble reading one feature space per stream; a one-stream twin is unchanged).
//! - **Position**: the readout position `tanh(mu)` on the core's grid, in degrees of visual
//!   angle from the retina's optical axis. The perspective module's retina is an azimuthal
//!   equidistant grid ([`crate::perspective::isotropic_grid`], `degrees` per unit of radius),
//!   and the core's feature map is on that grid, so a readout position is a point of it.
//!   Elevation is taken as up the image (grid −y), azimuth to the right.
//! - **Reference responses**: the twin's mean rate to a fixed set of static images (the
//!   in-silico library at [`REFERENCE_SEED`], matched to the full-contrast budget), for signal
//!   correlations; the same set for every twin, so responses of two twins line up column by
//!   column.
//! - **Core identity**: feature similarity means something only within one core's feature
//!   space, so the embeddings carry the SHA-256 of the core's tensors ([`core_digest_input`]
//!   gives the bytes; the rig hashes them).

use candle_core::{DType, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, ModelError, Result};
use crate::insilico::budget::StimulusBudget;
use crate::insilico::library::Library;
use crate::insilico::responder::{Responder, TwinResponder};
use crate::network::Twin;
use crate::perspective::isotropic_grid;
use crate::readout::Readout;
use crate::weights::Weights;

/// Seed of the reference stimulus set (the in-silico library's candidates `0..n`).
pub const REFERENCE_SEED: u64 = 21;
/// Frames each reference image is shown for, from a reset twin.
pub const REFERENCE_FRAMES: usize = 10;
/// Frames at the end of a presentation averaged into the response.
pub const REFERENCE_SCORED: usize = 5;
/// Reference images per batch through the twin.
const REFERENCE_BATCH: usize = 16;
/// Tensor-name prefix of the core (shared across mice).
pub const CORE_PREFIX: &str = "core.";

/// What the readout says about each unit.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadoutEmbedding {
    /// `[U][C]` standardised feature weights (mean over streams).
    pub features: Vec<Vec<f64>>,
    /// `[U]` (azimuth, elevation) of the readout position, degrees.
    pub position_deg: Vec<[f64; 2]>,
    /// `[U]` readout position on the core's grid, `tanh(mu)` in [−1, 1]².
    pub position_grid: Vec<[f64; 2]>,
}

/// A grid position `tanh(mu)` in degrees of visual angle (see the module doc): the grid
/// coordinate (grid_sample, align_corners = False) as a fractional pixel of the core's map, the
/// retina's coordinate there (the isotropic grid is linear in the pixel index), times the
/// retina's angle per unit.
pub fn grid_to_degrees(cfg: &TwinConfig, grid: [f64; 2]) -> [f64; 2] {
    let p = &cfg.perspective;
    let (h, w) = (p.height, p.width);
    if h == 0 || w == 0 {
        return [f64::NAN; 2];
    }
    let retina = isotropic_grid(h, w);
    let along = |g: f64, n: usize, first: f64, last: f64| {
        if n < 2 {
            return first;
        }
        let pixel = ((g + 1.0) * n as f64 - 1.0) / 2.0;
        first + (last - first) * pixel / (n - 1) as f64
    };
    let x = along(grid[0], w, retina[0].0, retina[w - 1].0);
    let y = along(grid[1], h, retina[0].1, retina[(h - 1) * w].1);
    [x * p.degrees, -y * p.degrees]
}

/// Reads the readout's feature weights and positions out of a twin's weights.
pub fn readout_embedding(w: &Weights, cfg: &TwinConfig) -> Result<ReadoutEmbedding> {
    let dev = candle_core::Device::Cpu;
    let (u, c) = (cfg.units, cfg.recurrent.out_channels);
    let mut sum = vec![vec![0f64; c]; u];
    for s in 0..cfg.streams {
        let r = Readout::load(w, cfg, s, &dev)?;
        let rows: Vec<Vec<f32>> = r.weights().0.to_vec2().ctx("readout feature weights")?;
        for (acc, row) in sum.iter_mut().zip(rows) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += f64::from(v);
            }
        }
    }
    let streams = cfg.streams.max(1) as f64;
    let features = sum
        .into_iter()
        .map(|row| row.into_iter().map(|v| v / streams).collect())
        .collect();
    let pos: Vec<f32> = crate::readout::load_positions(w, cfg, &dev)?
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .ctx("readout.position.mu")?;
    let position_grid: Vec<[f64; 2]> = pos
        .chunks_exact(2)
        .map(|p| [f64::from(p[0]), f64::from(p[1])])
        .collect();
    let position_deg = position_grid
        .iter()
        .map(|&g| grid_to_degrees(cfg, g))
        .collect();
    Ok(ReadoutEmbedding {
        features,
        position_deg,
        position_grid,
    })
}

/// The bytes that identify a twin's core: for every `core.*` tensor in name order, its name,
/// shape and little-endian f32 values. Equal for two twins exactly when their cores are
/// (readouts, perspective and modulation do not enter).
pub fn core_digest_input(w: &Weights) -> Result<Vec<u8>> {
    let mut names: Vec<String> = w
        .names()
        .into_iter()
        .filter(|n| n.starts_with(CORE_PREFIX))
        .collect();
    if names.is_empty() {
        return Err(ModelError::MissingTensor {
            name: format!("{CORE_PREFIX}* (no core tensors in the weights)"),
        });
    }
    names.sort();
    let map = w.to_map();
    let mut out = Vec::new();
    for name in names {
        let t = &map[&name];
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        for d in t.dims() {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        let v: Vec<f32> = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .ctx(&name)?;
        v.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    }
    Ok(out)
}

/// Candidates of the library tried per reference image before giving up.
const REFERENCE_TRIES: usize = 4;

/// The reference set's images, u8 `[n][H·W]` at the twin's stimulus size: the first `n`
/// candidates of the in-silico library that the full-contrast budget can be matched to at this
/// size. A few cannot (at 36x64 candidate 4 ends 0.9% off the mean after the matcher's 60
/// corrections), and one such candidate must not cost a twin its embeddings; which ones are
/// skipped depends only on the seed and the size, so every twin of one stimulus size sees the
/// same set.
pub fn reference_images(cfg: &TwinConfig, n: usize) -> Result<Vec<Vec<u8>>> {
    let lib = Library {
        seed: REFERENCE_SEED,
        size: n.saturating_mul(REFERENCE_TRIES).max(1),
    };
    let budget = StimulusBudget::full_contrast();
    let mut out = Vec::with_capacity(n);
    let mut last_error = None;
    for i in 0..lib.size {
        if out.len() == n {
            break;
        }
        match lib.image(i, cfg.stimulus_height, cfg.stimulus_width, &budget) {
            Ok((img, _)) => out.push(img),
            Err(e) => {
                tracing::debug!(candidate = i, "reference candidate skipped: {e}");
                last_error = Some((i, e.to_string()));
            }
        }
    }
    if out.len() < n {
        let (i, reason) = last_error.unwrap_or_default();
        return Err(ModelError::Input {
            input: format!("reference image {i}"),
            reason: format!(
                "only {} of {n} reference images match the full-contrast budget at {}x{}                  within {} candidates (last: {reason})",
                out.len(),
                cfg.stimulus_height,
                cfg.stimulus_width,
                lib.size
            ),
        });
    }
    Ok(out)
}

/// The twin's responses `[U][n]` to the first `n` reference images (mean rate over the last
/// [`REFERENCE_SCORED`] of [`REFERENCE_FRAMES`] frames, behaviour at its mean).
pub fn reference_responses(twin: &mut Twin, n: usize) -> Result<Vec<Vec<f32>>> {
    let cfg = twin.config().clone();
    let (h, w) = (cfg.stimulus_height, cfg.stimulus_width);
    let images = reference_images(&cfg, n)?;
    let dev = twin.device().clone();
    let mut out = vec![Vec::with_capacity(n); cfg.units];
    let mut responder = TwinResponder::new(twin, REFERENCE_FRAMES, REFERENCE_SCORED)?;
    for chunk in images.chunks(REFERENCE_BATCH) {
        let pixels: Vec<f32> = chunk
            .iter()
            .flat_map(|img| img.iter().map(|&p| f32::from(p) / 255.0))
            .collect();
        let x = Tensor::from_vec(pixels, (chunk.len(), 1, h, w), &dev).ctx("reference images")?;
        let r: Vec<Vec<f32>> = responder
            .responses(&x)?
            .to_vec2()
            .ctx("reference responses")?;
        for row in r {
            for (unit, v) in row.into_iter().enumerate() {
                out[unit].push(v);
            }
        }
    }
    debug_assert_eq!(responder.units(), cfg.units);
    Ok(out)
}
