//! What the design phase drives: a model that maps a batch of stimuli to every unit's scored
//! response, differentiably. The twin is one ([`TwinResponder`]); a bank of linear filters is
//! another ([`LinearUnits`]), whose optimum under a budget has a closed form, so the MEI
//! search and the library screen can be checked against it.

use candle_core::{DType, Device, Tensor};

use crate::error::{CandleContext, ModelError, Result};
use crate::network::Twin;

use super::budget::StimulusBudget;

/// A model the MEI search and the library screen can drive.
pub trait Responder {
    /// Stimulus `(height, width)` in pixels.
    fn stimulus_size(&self) -> (usize, usize);
    /// Units read out.
    fn units(&self) -> usize;
    /// Presentation length in frames (a clip MEI has this many).
    fn frames(&self) -> usize;
    fn device(&self) -> &Device;
    /// `[N, U]` scored responses of stimuli `x` `[N, F, H, W]` in [0, 1], `F` = `frames()` or
    /// 1 (one static image shown on every frame). Differentiable in `x`.
    fn responses(&mut self, x: &Tensor) -> Result<Tensor>;
}

/// Checks a stimulus batch against a responder's shape; returns `(N, F)`.
pub fn check_stimulus(r: &impl Responder, x: &Tensor) -> Result<(usize, usize)> {
    let (n, f, h, w) = x.dims4().ctx("stimulus")?;
    let (sh, sw) = r.stimulus_size();
    if (h, w) != (sh, sw) || (f != 1 && f != r.frames()) {
        return Err(ModelError::Input {
            input: "stimulus".into(),
            reason: format!(
                "shape [{n}, {f}, {h}, {w}]; need [N, {} or 1, {sh}, {sw}]",
                r.frames()
            ),
        });
    }
    Ok((n, f))
}

/// The twin as a responder: a presentation of `frames` from a reset twin (pupil centre and
/// behaviour at 0), scored as each unit's mean rate over the last `score_frames`.
pub struct TwinResponder<'a> {
    pub twin: &'a mut Twin,
    pub frames: usize,
    pub score_frames: usize,
}

impl<'a> TwinResponder<'a> {
    pub fn new(twin: &'a mut Twin, frames: usize, score_frames: usize) -> Result<Self> {
        if frames == 0 || score_frames == 0 || score_frames > frames {
            return Err(ModelError::Input {
                input: "score_frames".into(),
                reason: format!(
                    "{score_frames} scored of {frames} frames; need 1 ≤ score_frames ≤ frames"
                ),
            });
        }
        Ok(Self {
            twin,
            frames,
            score_frames,
        })
    }
}

impl Responder for TwinResponder<'_> {
    fn stimulus_size(&self) -> (usize, usize) {
        let c = self.twin.config();
        (c.stimulus_height, c.stimulus_width)
    }

    fn units(&self) -> usize {
        self.twin.config().units
    }

    fn frames(&self) -> usize {
        self.frames
    }

    fn device(&self) -> &Device {
        self.twin.device()
    }

    fn responses(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, f) = check_stimulus(self, x)?;
        let cfg = self.twin.config().clone();
        let dev = x.device().clone();
        let pupil = Tensor::zeros((n, cfg.perspectives), DType::F32, &dev).ctx("pupil")?;
        let behaviour = Tensor::zeros((n, cfg.modulations), DType::F32, &dev).ctx("behaviour")?;
        self.twin.reset();
        let mut total: Option<Tensor> = None;
        for t in 0..self.frames {
            let frame = if f == 1 {
                x.clone()
            } else {
                x.narrow(1, t, 1).ctx("stimulus frame")?
            };
            let out = self.twin.step(&frame, &pupil, &behaviour)?;
            if t + self.score_frames >= self.frames {
                total = Some(match total {
                    None => out.rate,
                    Some(acc) => (acc + out.rate).ctx("scored rate")?,
                });
            }
        }
        self.twin.reset();
        let total = total.ok_or_else(|| ModelError::Input {
            input: "frames".into(),
            reason: "no frame is scored".into(),
        })?;
        total
            .affine(1.0 / self.score_frames as f64, 0.0)
            .ctx("scored rate")
    }
}

/// Units that are linear filters of a static image: `r_u = Σ_p w_up · x_p` (frames averaged).
/// A reference model, not a neuron model: under a budget (mean `m`, RMS contrast `c`, no
/// clipping) its optimum is `m + c · sqrt(P) · ŵ`, with `ŵ` the zero-mean part of the filter
/// normalised to unit L2 norm ([`optimum`](Self::optimum)).
pub struct LinearUnits {
    height: usize,
    width: usize,
    /// `[U, H · W]`.
    filters: Vec<f32>,
    filters_t: Tensor,
    dev: Device,
}

impl LinearUnits {
    /// `filters` is `[U, H · W]` row-major.
    pub fn new(height: usize, width: usize, filters: Vec<f32>, dev: &Device) -> Result<Self> {
        let p = height * width;
        if p == 0 || filters.is_empty() || !filters.len().is_multiple_of(p) {
            return Err(ModelError::Input {
                input: "linear filters".into(),
                reason: format!("{} weights for {height} x {width} pixels", filters.len()),
            });
        }
        let u = filters.len() / p;
        let filters_t = Tensor::from_vec(filters.clone(), (u, p), dev)
            .and_then(|t| t.t())
            .ctx("linear filters")?;
        Ok(Self {
            height,
            width,
            filters,
            filters_t,
            dev: dev.clone(),
        })
    }

    /// The budget's optimum for `unit` (float pixels), and its response; `None` if the filter
    /// is flat or the optimum would leave [0, 1] (then the closed form does not hold).
    pub fn optimum(&self, unit: usize, budget: &StimulusBudget) -> Option<(Vec<f32>, f64)> {
        let p = self.height * self.width;
        let w = self.filters.get(unit * p..(unit + 1) * p)?;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / p as f64;
        let norm = w
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm <= 0.0 {
            return None;
        }
        let k = budget.rms_contrast * (p as f64).sqrt() / norm;
        let x: Vec<f32> = w
            .iter()
            .map(|&v| (budget.mean_luminance + k * (v as f64 - mean)) as f32)
            .collect();
        if x.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return None;
        }
        let r = x.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
        Some((x, r))
    }
}

impl Responder for LinearUnits {
    fn stimulus_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    fn units(&self) -> usize {
        self.filters.len() / (self.height * self.width)
    }

    fn frames(&self) -> usize {
        1
    }

    fn device(&self) -> &Device {
        &self.dev
    }

    fn responses(&mut self, x: &Tensor) -> Result<Tensor> {
        let (n, _) = check_stimulus(self, x)?;
        x.mean(1)
            .and_then(|m| m.reshape((n, self.height * self.width)))
            .and_then(|m| m.matmul(&self.filters_t))
            .ctx("linear responses")
    }
}
