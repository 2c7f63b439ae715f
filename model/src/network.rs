//! The whole twin (fnn `Visual`): shared perspective, per-stream modulation, core and readout,
//! streams averaged in log space, then `exp` (Poisson units).

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::core::Core;
use crate::error::{CandleContext, ModelError, Result};
use crate::modulation::Modulation;
use crate::perspective::Perspective;
use crate::readout::{Readout, load_positions};
use crate::weights::Weights;

/// One ensemble stream.
#[derive(Clone)]
pub struct Stream {
    pub modulation: Modulation,
    pub core: Core,
    pub readout: Readout,
}

/// One stream's core output and (when asked) its readout log-rates.
type StreamOut = (Tensor, Option<Tensor>);

/// Outputs of one frame.
pub struct FrameOutput {
    /// Stream-averaged log-rates `[N, U]`.
    pub log_rate: Tensor,
    /// Predicted responses `exp(log_rate)` `[N, U]`.
    pub rate: Tensor,
}

/// The digital twin, streaming one frame per call with its state kept between calls.
/// A clone shares the weights and copies the state (a state reached once, run on from twice).
#[derive(Clone)]
pub struct Twin {
    cfg: TwinConfig,
    dev: Device,
    perspective: Perspective,
    positions: Tensor,
    streams: Vec<Stream>,
}

impl Twin {
    /// Builds the twin from weights, checking every tensor against `cfg`.
    pub fn new(cfg: TwinConfig, weights: &Weights, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let perspective = Perspective::load(weights, &cfg, dev)?;
        let positions = load_positions(weights, &cfg, dev)?;
        let mut streams = Vec::with_capacity(cfg.streams);
        for s in 0..cfg.streams {
            streams.push(Stream {
                modulation: Modulation::load(weights, &cfg, s, dev)?,
                core: Core::load(weights, &cfg, s, dev)?,
                readout: Readout::load(weights, &cfg, s, dev)?,
            });
        }
        weights.check_all_used()?;
        Ok(Self {
            cfg,
            dev: dev.clone(),
            perspective,
            positions,
            streams,
        })
    }

    /// Loads a safetensors weight file.
    pub fn from_file(cfg: TwinConfig, path: &Path, dev: &Device) -> Result<Self> {
        let w = Weights::load(path)?;
        Self::new(cfg, &w, dev)
    }

    pub fn config(&self) -> &TwinConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The ensemble streams (modulation, core, readout each).
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// Readout positions `tanh(mu)` as `[1, U, 1, 2]` (x, y in [-1, 1]).
    pub fn positions(&self) -> &Tensor {
        &self.positions
    }

    /// Forgets all temporal state (start of a new clip).
    pub fn reset(&mut self) {
        for s in &mut self.streams {
            s.modulation.reset();
            s.core.reset();
        }
    }

    /// Retina images `[N, 1, H', W']` for a stimulus batch.
    pub fn perspective(&self, stimulus: &Tensor, pupil: &Tensor) -> Result<Tensor> {
        self.perspective.forward(stimulus, pupil)
    }

    /// One frame: stimulus `[N, 1, H, W]` in [0, 1], pupil centre `[N, P]`, modulation `[N, M]`.
    pub fn step(
        &mut self,
        stimulus: &Tensor,
        perspective: &Tensor,
        modulation: &Tensor,
    ) -> Result<FrameOutput> {
        let outs = self.run_streams(stimulus, perspective, modulation, true)?;
        let mut sum: Option<Tensor> = None;
        for (_, r) in outs {
            let r = r.ok_or_else(|| crate::error::config_err("streams", "readout not run"))?;
            sum = Some(match sum {
                None => r,
                Some(acc) => (acc + r).ctx("stream sum")?,
            });
        }
        let sum = sum.ok_or_else(|| crate::error::config_err("streams", "must be at least 1"))?;
        let log_rate = sum
            .affine(1.0 / self.streams.len() as f64, 0.0)
            .ctx("stream mean")?;
        let rate = log_rate.exp().ctx("exp")?;
        Ok(FrameOutput { log_rate, rate })
    }

    /// One frame up to the cores: every stream's core output `[N, C, h, w]` (what its readout
    /// reads), advancing the state as [`step`](Self::step) does.
    pub fn core_features(
        &mut self,
        stimulus: &Tensor,
        perspective: &Tensor,
        modulation: &Tensor,
    ) -> Result<Vec<Tensor>> {
        Ok(self
            .run_streams(stimulus, perspective, modulation, false)?
            .into_iter()
            .map(|(core, _)| core)
            .collect())
    }

    /// Every stream's core output (and, if `readout`, its log-rates `[N, U]`) for one frame.
    ///
    /// On the CPU the streams run on parallel threads (stream `s` on thread `s % threads`, one
    /// join per frame) with each stream's convolutions single-threaded: on a 2-core machine
    /// that keeps both cores busy without a barrier per layer (see `ops::conv_cpu`).
    fn run_streams(
        &mut self,
        stimulus: &Tensor,
        perspective: &Tensor,
        modulation: &Tensor,
        readout: bool,
    ) -> Result<Vec<StreamOut>> {
        let (n, p) = perspective.dims2().ctx("perspective input")?;
        let (nm, m) = modulation.dims2().ctx("modulation input")?;
        if p != self.cfg.perspectives || m != self.cfg.modulations || nm != n {
            return Err(ModelError::Input {
                input: "perspective/modulation".into(),
                reason: format!(
                    "got [{n}, {p}] and [{nm}, {m}], expected [N, {}] and [N, {}]",
                    self.cfg.perspectives, self.cfg.modulations
                ),
            });
        }
        let retina = self.perspective.forward(stimulus, perspective)?;
        let positions = &self.positions;
        let run = |s: &mut Stream| -> Result<StreamOut> {
            let mo = s.modulation.step(modulation)?;
            let core = s.core.step(&retina, &mo)?;
            let r = if readout {
                Some(s.readout.forward(&core, positions)?)
            } else {
                None
            };
            Ok((core, r))
        };
        let threads = crate::ops::conv_cpu::stream_threads(&self.dev).min(self.streams.len());
        if threads <= 1 {
            return self.streams.iter_mut().map(run).collect();
        }
        let mut lanes: Vec<Vec<(usize, &mut Stream)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, s) in self.streams.iter_mut().enumerate() {
            lanes[i % threads].push((i, s));
        }
        let mut results: Vec<(usize, Result<StreamOut>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = lanes
                .into_iter()
                .map(|lane| {
                    sc.spawn(|| {
                        crate::ops::conv_cpu::serial(|| {
                            lane.into_iter()
                                .map(|(i, s)| (i, run(s)))
                                .collect::<Vec<_>>()
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(v) => v,
                    Err(payload) => std::panic::resume_unwind(payload),
                })
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// One frame for a single animal: `frame` is u8 `[H, W]` row-major (divided by 255 as fnn),
    /// `pupil` the perspective inputs, `behaviour` the modulation inputs. Returns `[U]` rates.
    pub fn step_u8(&mut self, frame: &[u8], pupil: &[f32], behaviour: &[f32]) -> Result<Vec<f32>> {
        let (h, w) = (self.cfg.stimulus_height, self.cfg.stimulus_width);
        if frame.len() != h * w {
            return Err(ModelError::Input {
                input: "frame".into(),
                reason: format!("{} pixels, expected {h}x{w}", frame.len()),
            });
        }
        let pix: Vec<f32> = frame.iter().map(|&v| v as f32 / 255.0).collect();
        let stim = Tensor::from_vec(pix, (1, 1, h, w), &self.dev).ctx("frame")?;
        let p = Tensor::from_vec(pupil.to_vec(), (1, pupil.len()), &self.dev).ctx("pupil")?;
        let m = Tensor::from_vec(behaviour.to_vec(), (1, behaviour.len()), &self.dev)
            .ctx("behaviour")?;
        let out = self.step(&stim, &p, &m)?;
        out.rate
            .squeeze(0)
            .and_then(|t| t.to_device(&Device::Cpu))
            .and_then(|t| t.to_vec1())
            .ctx("rate")
    }
}
