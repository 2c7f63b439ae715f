//! The fit: Poisson likelihood of the recorded responses under the twin, after a burn-in, by
//! Adam over clips streamed frame by frame (backpropagation through time within a clip).
//!
//! One or several mice. With [`FitScope::Full`] the core is shared by all mice and trained (the
//! foundation analog: pretraining on many mice); each mouse keeps its own perspective,
//! modulation and readout. With [`FitScope::Transfer`] each mouse's core is frozen and only its
//! own parts move (the paper's "a bit of additional training" for a new mouse). Readouts start
//! where their units' responses correlate best with the core's features
//! ([`placement`](super::placement)); training stops when the held-out loss (the last
//! `val_fraction` of each recording, never trained on) has not improved for `patience`
//! evaluations, and the best evaluated weights are returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::TwinConfig;
use crate::error::{CandleContext, ModelError, Result};
use crate::network::Twin;
use crate::train::clips::{ClipBatch, batch, clip_starts};
use crate::train::params::{FitScope, ParamSet, trains, weights_of};
use crate::train::placement::place_readouts;
use crate::train::recording::Recording;
use crate::weights::Weights;

/// How to fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    pub scope: FitScope,
    /// Frames per training clip (the twin's state runs through a clip).
    pub clip_frames: usize,
    /// Frames at the start of each clip left out of the loss while the state settles.
    pub burn_in: usize,
    /// Clips per mouse per step.
    pub batch: usize,
    pub max_steps: usize,
    /// Wall-clock budget; the best weights so far are returned when it runs out.
    pub max_seconds: f64,
    pub learning_rate: f64,
    /// Steps between held-out evaluations.
    pub eval_every: usize,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// The last fraction of each recording, held out for early stopping.
    pub val_fraction: f64,
    /// Place readouts from the data before training (off to continue a fit).
    pub place_readouts: bool,
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            scope: FitScope::Transfer,
            clip_frames: 40,
            burn_in: 10,
            batch: 8,
            max_steps: 2_000,
            max_seconds: f64::INFINITY,
            learning_rate: 5e-3,
            eval_every: 25,
            patience: 6,
            val_fraction: 0.15,
            place_readouts: true,
            seed: 0,
        }
    }
}

impl FitConfig {
    fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| Err(crate::error::config_err(field, reason));
        if self.clip_frames <= self.burn_in {
            return bad("fit.clip_frames", "must exceed fit.burn_in");
        }
        if self.batch == 0 || self.eval_every == 0 {
            return bad("fit.batch", "batch and eval_every must be at least 1");
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return bad("fit.val_fraction", "must lie in (0, 1)");
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return bad("fit.learning_rate", "must be positive");
        }
        Ok(())
    }
}

/// One mouse to fit: its recording and the weights to start from (all of a twin's tensors).
pub struct MouseFit<'a> {
    pub recording: &'a Recording,
    pub weights: HashMap<String, Tensor>,
}

/// A point of the learning curve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    pub step: usize,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Held-out Poisson loss (per observed unit-frame, constant term dropped).
    pub val_loss: f64,
    pub seconds: f64,
}

/// What a fit did.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub scope: FitScope,
    pub mice: usize,
    pub trained_elements: usize,
    pub train_clips: Vec<usize>,
    pub val_clips: Vec<usize>,
    pub steps: usize,
    pub best_step: usize,
    pub initial_val_loss: f64,
    pub best_val_loss: f64,
    pub stopped: String,
    pub seconds: f64,
    pub curve: Vec<CurvePoint>,
}

/// The fitted weights, one full set per mouse (shared core included), and the report.
pub struct Fitted {
    pub weights: Vec<HashMap<String, Tensor>>,
    pub report: FitReport,
}

/// Mean Poisson negative log-likelihood per observed unit-frame after the burn-in, streaming
/// the clips through `twin` from a fresh state.
pub fn clip_loss(twin: &mut Twin, clips: &ClipBatch, burn_in: usize) -> Result<Tensor> {
    twin.reset();
    let mut total: Option<Tensor> = None;
    let mut count = 0.0f64;
    for (t, f) in clips.frames.iter().enumerate() {
        let out = twin.step(&f.stimulus, &f.perspective, &f.modulation)?;
        if t < burn_in {
            continue;
        }
        let nll = (&out.rate - (&f.responses * &out.log_rate).ctx("loss")?)
            .and_then(|l| l * &f.mask)
            .and_then(|l| l.sum_all())
            .ctx("poisson loss")?;
        count += f64::from(
            f.mask
                .sum_all()
                .and_then(|m| m.to_scalar::<f32>())
                .ctx("mask")?,
        );
        total = Some(match total {
            None => nll,
            Some(a) => (a + nll).ctx("loss sum")?,
        });
    }
    let total = total.ok_or_else(|| ModelError::Input {
        input: "clip".into(),
        reason: "no frames after the burn-in".into(),
    })?;
    total.affine(1.0 / count.max(1.0), 0.0).ctx("loss mean")
}

struct Mouse<'a> {
    rec: &'a Recording,
    cfg: TwinConfig,
    params: ParamSet,
    train: Vec<usize>,
    val: Vec<ClipBatch>,
    val_clips: usize,
}

fn mouse_cfg(base: &TwinConfig, rec: &Recording) -> Result<TwinConfig> {
    if (rec.height, rec.width) != (base.stimulus_height, base.stimulus_width) {
        return Err(ModelError::Input {
            input: "recording stimulus".into(),
            reason: format!(
                "frames are {}x{}, the twin takes {}x{}: export the recording at the twin's \
                 resolution",
                rec.height, rec.width, base.stimulus_height, base.stimulus_width
            ),
        });
    }
    let cfg = TwinConfig {
        units: rec.units(),
        ..base.clone()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Why a fit stopped when [`fit_until`]'s `stop` flag was raised (`FitReport::stopped`).
pub const STOPPED_BY_FLAG: &str = "interrupted";

/// Fits the twin to one or more mice (see the module docs). `base` gives the architecture; each
/// mouse's unit count comes from its recording.
pub fn fit(
    base: &TwinConfig,
    mice: Vec<MouseFit<'_>>,
    fc: &FitConfig,
    dev: &Device,
) -> Result<Fitted> {
    fit_until(base, mice, fc, dev, &AtomicBool::new(false))
}

/// [`fit`], stopping before the next step (or before training starts) once `stop` is raised: the
/// report then says [`STOPPED_BY_FLAG`] and the weights are the best evaluated so far. The
/// readout placement and each held-out evaluation run to their end once begun, so a raised
/// flag is seen within one step or one evaluation.
pub fn fit_until(
    base: &TwinConfig,
    mice: Vec<MouseFit<'_>>,
    fc: &FitConfig,
    dev: &Device,
    stop: &AtomicBool,
) -> Result<Fitted> {
    fc.validate()?;
    if mice.is_empty() {
        return Err(ModelError::Input {
            input: "fit".into(),
            reason: "no recordings".into(),
        });
    }
    let started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(fc.seed);
    // The shared core (Full scope): taken from the first mouse's starting weights.
    let shared = match fc.scope {
        FitScope::Full => {
            let core: HashMap<String, Tensor> = mice[0]
                .weights
                .iter()
                .filter(|(k, _)| k.starts_with("core."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(ParamSet::new(&core, |n| trains(fc.scope, n), dev)?)
        }
        FitScope::Transfer | FitScope::Readout => None,
    };
    let mut ms = Vec::with_capacity(mice.len());
    for (i, m) in mice.into_iter().enumerate() {
        m.recording.validate()?;
        let cfg = mouse_cfg(base, m.recording)?;
        let own: HashMap<String, Tensor> = m
            .weights
            .into_iter()
            .filter(|(k, _)| shared.is_none() || !k.starts_with("core."))
            .collect();
        let params = ParamSet::new(&own, |n| trains(fc.scope, n), dev)?;
        let len = m.recording.len();
        let split = ((len as f64) * (1.0 - fc.val_fraction)).floor() as usize;
        let train = clip_starts(m.recording, fc.clip_frames, fc.clip_frames / 4, 0..split);
        let val_starts = clip_starts(m.recording, fc.clip_frames, fc.clip_frames, split..len);
        if train.is_empty() || val_starts.is_empty() {
            return Err(ModelError::Input {
                input: format!("recording {i}"),
                reason: format!(
                    "{len} frames give {} training and {} held-out clips of {} frames; record \
                     longer or shorten fit.clip_frames",
                    train.len(),
                    val_starts.len(),
                    fc.clip_frames
                ),
            });
        }
        let val = val_starts
            .chunks(fc.batch.max(16))
            .map(|c| batch(m.recording, c, fc.clip_frames, dev))
            .collect::<Result<Vec<_>>>()?;
        ms.push(Mouse {
            rec: m.recording,
            cfg,
            params,
            train,
            val,
            val_clips: val_starts.len(),
        });
    }
    fn sets<'s>(shared: &'s Option<ParamSet>, m: &'s Mouse) -> Vec<&'s ParamSet> {
        let mut v: Vec<&ParamSet> = shared.iter().collect();
        v.push(&m.params);
        v
    }
    if fc.place_readouts && !stop.load(Ordering::Relaxed) {
        for m in &ms {
            let mut starts = m.train.clone();
            starts.shuffle(&mut rng);
            starts.truncate(96);
            let batches = starts
                .chunks(16)
                .map(|c| batch(m.rec, c, fc.clip_frames, dev))
                .collect::<Result<Vec<_>>>()?;
            let mut twin = Twin::new(m.cfg.clone(), &snapshot_weights(&sets(&shared, m))?, dev)?;
            let placed = place_readouts(&mut twin, &batches, fc.burn_in)?;
            m.params.set("readout.position.mu", &placed.mu)?;
            let units = m.cfg.units;
            let bias = Tensor::from_vec(placed.log_mean.clone(), (units, 1), dev).ctx("bias")?;
            for s in 0..m.cfg.streams {
                m.params.set(&format!("readout.biases.{s}"), &bias)?;
            }
        }
    }
    let mut vars = Vec::new();
    if let Some(s) = &shared {
        vars.extend(s.vars());
    }
    for m in &ms {
        vars.extend(m.params.vars());
    }
    let trained_elements = vars.iter().map(|v| v.elem_count()).sum();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: fc.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
    .ctx("optimiser")?;
    let evaluate = |ms: &[Mouse]| -> Result<f64> {
        let mut total = 0.0;
        for m in ms {
            let mut twin = Twin::new(m.cfg.clone(), &snapshot_weights(&sets(&shared, m))?, dev)?;
            let mut sum = 0.0;
            for b in &m.val {
                let l = clip_loss(&mut twin, b, fc.burn_in)?;
                sum += f64::from(l.to_scalar::<f32>().ctx("val loss")?)
                    * b.frames[0].mask.dim(0).ctx("val")? as f64;
            }
            total += sum / m.val_clips as f64;
        }
        Ok(total / ms.len() as f64)
    };
    let initial = evaluate(&ms)?;
    let snapshot_all = |ms: &[Mouse]| -> Result<Vec<HashMap<String, Tensor>>> {
        ms.iter().map(|m| snapshot(&sets(&shared, m))).collect()
    };
    let mut best = (initial, 0usize, snapshot_all(&ms)?);
    let mut curve = vec![CurvePoint {
        step: 0,
        train_loss: f64::NAN,
        val_loss: initial,
        seconds: started.elapsed().as_secs_f64(),
    }];
    tracing::info!(initial_val_loss = initial, trained_elements, "fit: start");
    let mut since_best = 0usize;
    let mut running = (0.0f64, 0usize);
    let mut stopped = "max_steps".to_string();
    let mut step = 0usize;
    while step < fc.max_steps {
        if stop.load(Ordering::Relaxed) {
            stopped = STOPPED_BY_FLAG.into();
            break;
        }
        if started.elapsed().as_secs_f64() > fc.max_seconds {
            stopped = "max_seconds".into();
            break;
        }
        step += 1;
        let mut loss: Option<Tensor> = None;
        for m in &ms {
            let starts: Vec<usize> = (0..fc.batch)
                .map(|_| m.train[rng.random_range(0..m.train.len())])
                .collect();
            let clips = batch(m.rec, &starts, fc.clip_frames, dev)?;
            let mut twin = Twin::new(m.cfg.clone(), &weights_of(&sets(&shared, m)), dev)?;
            let l = clip_loss(&mut twin, &clips, fc.burn_in)?;
            loss = Some(match loss {
                None => l,
                Some(a) => (a + l).ctx("loss")?,
            });
        }
        let loss = loss
            .ok_or_else(|| crate::error::config_err("fit", "no mice"))?
            .affine(1.0 / ms.len() as f64, 0.0)
            .ctx("loss")?;
        let value = f64::from(loss.to_scalar::<f32>().ctx("loss")?);
        if !value.is_finite() {
            stopped = format!("non-finite training loss at step {step}");
            break;
        }
        running = (running.0 + value, running.1 + 1);
        opt.backward_step(&loss).ctx("optimiser step")?;
        if step.is_multiple_of(fc.eval_every) || step == fc.max_steps {
            let val = evaluate(&ms)?;
            let point = CurvePoint {
                step,
                train_loss: running.0 / running.1.max(1) as f64,
                val_loss: val,
                seconds: started.elapsed().as_secs_f64(),
            };
            tracing::info!(step, train_loss = point.train_loss, val_loss = val, "fit");
            curve.push(point);
            running = (0.0, 0);
            if val < best.0 {
                best = (val, step, snapshot_all(&ms)?);
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= fc.patience {
                    stopped = "patience".into();
                    break;
                }
            }
        }
    }
    let report = FitReport {
        scope: fc.scope,
        mice: ms.len(),
        trained_elements,
        train_clips: ms.iter().map(|m| m.train.len()).collect(),
        val_clips: ms.iter().map(|m| m.val_clips).collect(),
        steps: step,
        best_step: best.1,
        initial_val_loss: initial,
        best_val_loss: best.0,
        stopped,
        seconds: started.elapsed().as_secs_f64(),
        curve,
    };
    Ok(Fitted {
        weights: best.2,
        report,
    })
}

/// Detached copies of several parameter sets' current values, merged (one twin's tensors).
fn snapshot(sets: &[&ParamSet]) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for s in sets {
        all.extend(s.snapshot()?);
    }
    Ok(all)
}

/// Weights from detached copies (evaluation builds no autodiff graph).
fn snapshot_weights(sets: &[&ParamSet]) -> Result<Weights> {
    Ok(Weights::from_params(snapshot(sets)?))
}
