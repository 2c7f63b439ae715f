//! A round's design, off the selector thread: the twin transfer-fitted on everything recorded
//! so far, the controls rendered and matched to the budget, the library screened for each
//! target's predicted best, then the MEIs at low and at full contrast; every stimulus's
//! predicted response of every target computed before the selector sees it.
//!
//! The worker sends two messages: [`DesignMessage::Screened`] (controls and library bests,
//! all the fallback needs) and then [`DesignMessage::Designed`] (the MEIs), or
//! [`DesignMessage::Failed`]. The selector logs each with the decision it took it at, so a
//! replay takes the same images and predictions at the same trial without recomputing them.

use super::config::InceptionConfig;
use super::records::{Contrast, Role, RoleTag, StimulusId};
use crate::stages::decide::design::CandidatePool;
use crate::stages::decide::design::twin_refit::{
    Snapshot, TwinRefitSetup, lowest_priority, render_entry, transfer_fit,
};
use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use twinloop_model::insilico::{
    Library, MeiOptions, Responder, ScreenOptions, StimulusBudget, TwinResponder, mei_with, screen,
};
use twinloop_model::{Tensor, Twin, Weights};

/// One synthesised or matched image of a verify block, as logged: its pixels are what the
/// display shows (stretched over the view), its predictions were made before it was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignedStimulus {
    pub id: StimulusId,
    pub tag: RoleTag,
    pub width: u32,
    pub height: u32,
    /// u8 `[height, width]`, row 0 at the top.
    pub pixels: Vec<u8>,
    /// The twin's predicted response of every target, in pre-registration order.
    pub predicted: Vec<f64>,
}

/// Where a design's time went (wall seconds), for the summary and BENCHMARKS.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DesignTimes {
    pub refit_s: f64,
    pub controls_s: f64,
    pub screen_s: f64,
    pub mei_s: f64,
}

/// What the worker sends, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "message")]
pub enum DesignMessage {
    /// The controls (best pool, random pool) and each target's library best.
    Screened {
        stimuli: Vec<DesignedStimulus>,
        times: DesignTimes,
    },
    /// The MEIs at both contrasts.
    Designed {
        stimuli: Vec<DesignedStimulus>,
        times: DesignTimes,
    },
    /// The design stopped (the reason says where); no later message comes.
    Failed { reason: String },
}

/// What the worker needs, taken on the selector thread when the design phase starts.
pub struct DesignJob {
    pub round: u32,
    pub cfg: InceptionConfig,
    pub setup: TwinRefitSetup,
    pub pool: Arc<CandidatePool>,
    pub snapshot: Snapshot,
    /// The targets' twin units (designer order), in pre-registration order.
    pub units: Vec<usize>,
    /// Each target's best pool entry by measured response.
    pub best_pool: Vec<usize>,
    /// The random pool controls.
    pub random: Vec<usize>,
    pub seed: u64,
}

/// The id a pool entry's matched frame has in the log.
pub fn pool_id(entry: usize) -> StimulusId {
    StimulusId(format!("pool/{entry}"))
}

/// Starts the design on a worker thread at the lowest priority; messages go to `tx`.
pub fn spawn(job: DesignJob, tx: Sender<DesignMessage>) {
    let spawned = std::thread::Builder::new()
        .name("inception-design".into())
        .spawn(move || {
            lowest_priority();
            if let Err(reason) = run(job, &tx) {
                tracing::warn!(%reason, "inception design failed");
                let _ = tx.send(DesignMessage::Failed { reason });
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the inception design worker");
        // The receiver sees a disconnected channel: the selector counts a failure.
    }
}

fn run(job: DesignJob, tx: &Sender<DesignMessage>) -> Result<(), String> {
    let mut times = DesignTimes::default();
    let t0 = Instant::now();
    let round = 1_000 + u64::from(job.round);
    let (cfg, weights, report) =
        transfer_fit(&job.setup, round, &job.pool, &OnceLock::new(), job.snapshot)
            .map_err(|e| format!("the twin's transfer fit: {e}"))?;
    times.refit_s = t0.elapsed().as_secs_f64();
    tracing::info!(
        round = job.round,
        seconds = times.refit_s,
        best_val_loss = report.best_val_loss,
        "inception design: twin refitted"
    );
    if let Some(&u) = job.units.iter().find(|&&u| u >= cfg.units) {
        return Err(format!(
            "target unit {u} is not in the refitted twin ({} units)",
            cfg.units
        ));
    }
    let dev = twinloop_model::select_device(job.setup.device);
    let mut twin = Twin::new(cfg.clone(), &Weights::from_params(weights), &dev)
        .map_err(|e| format!("the refitted twin: {e}"))?;
    let frames = job.cfg.design_frames as usize;
    let mut model = responder(&mut twin, frames)?;
    let (h, w) = model.stimulus_size();
    let low = StimulusBudget {
        mean_luminance: job.cfg.mean_luminance,
        rms_contrast: job.cfg.low_contrast,
    };
    let full = StimulusBudget {
        rms_contrast: job.cfg.full_contrast,
        ..low
    };

    // Controls: each pool entry's middle frame, matched to the low-contrast budget (what the
    // verify block shows of it: a static image, so every stimulus of the block is one).
    let t1 = Instant::now();
    let mut controls: Vec<(StimulusId, RoleTag, Vec<u8>)> = Vec::new();
    let tagged = job
        .best_pool
        .iter()
        .enumerate()
        .map(|(t, &e)| (e, Role::BestPool, Some(t as u32)))
        .chain(job.random.iter().map(|&e| (e, Role::Random, None)));
    for (entry, role, target) in tagged {
        let clip = render_entry(&job.pool, entry, (h, w));
        let mid = (job.pool.frames() / 2) * h * w;
        let frame = clip.get(mid..mid + h * w).unwrap_or(&clip[..h * w]);
        let (pixels, _) = low
            .match_u8(frame)
            .map_err(|e| format!("pool entry {entry} cannot meet the budget: {e}"))?;
        controls.push((pool_id(entry), RoleTag { role, target }, pixels));
    }
    times.controls_s = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let library = Library {
        seed: job.seed,
        size: job.cfg.library_size as usize,
    };
    let screened = screen(
        &mut model,
        &library,
        &job.units,
        &ScreenOptions {
            batch: 64,
            budget: low,
        },
    )
    .map_err(|e| format!("the library screen: {e}"))?;
    for (t, best) in screened.best.into_iter().enumerate() {
        controls.push((
            StimulusId(format!("library/{}", best.index)),
            RoleTag {
                role: Role::LibraryBest,
                target: Some(t as u32),
            },
            best.image,
        ));
    }
    times.screen_s = t2.elapsed().as_secs_f64();
    let stimuli = predict(&mut model, &job.units, controls, (h, w))?;
    if tx.send(DesignMessage::Screened { stimuli, times }).is_err() {
        return Ok(()); // The session ended.
    }

    let t3 = Instant::now();
    let mut meis = Vec::new();
    for (contrast, budget) in [(Contrast::Low, low), (Contrast::Full, full)] {
        let found = synthesise_meis(
            &mut model,
            &job.units,
            budget,
            job.cfg.mei_steps as usize,
            job.seed ^ u64::from(job.round),
        )
        .map_err(|e| format!("the MEIs at {contrast:?} contrast: {e}"))?;
        for (t, image) in found.into_iter().enumerate() {
            let name = match contrast {
                Contrast::Low => "low",
                Contrast::Full => "full",
            };
            meis.push((
                StimulusId(format!("mei/r{}/t{t}/{name}", job.round)),
                RoleTag {
                    role: Role::Mei { contrast },
                    target: Some(t as u32),
                },
                image,
            ));
        }
    }
    times.mei_s = t3.elapsed().as_secs_f64();
    let stimuli = predict(&mut model, &job.units, meis, (h, w))?;
    tracing::info!(round = job.round, ?times, "inception design done");
    let _ = tx.send(DesignMessage::Designed { stimuli, times });
    Ok(())
}

/// The twin as the design sees it: `frames`-frame presentations of a static image, scored
/// over their last half.
pub fn responder(twin: &mut Twin, frames: usize) -> Result<TwinResponder<'_>, String> {
    TwinResponder::new(twin, frames, frames.div_ceil(2))
        .map_err(|e| format!("the twin as a responder: {e}"))
}

/// Each unit's MEI under `budget` as the design phase synthesises it: one static image by
/// `steps` of gradient ascent from a `seed`ed start, u8 `[h, w]` (the model's stimulus size).
/// `twinloop twin mei` calls this too, so offline MEIs are the live ones.
pub fn synthesise_meis<R: Responder>(
    model: &mut R,
    units: &[usize],
    budget: StimulusBudget,
    steps: usize,
    seed: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let frames = model.frames();
    let (h, w) = model.stimulus_size();
    let opts = MeiOptions {
        frames,
        static_image: true,
        score_frames: frames.div_ceil(2),
        rms_contrast: budget.rms_contrast,
        steps,
        step_size: 0.1,
        seed,
    };
    let found = mei_with(model, units, &opts, budget.mean_luminance).map_err(|e| e.to_string())?;
    Ok(found
        .into_iter()
        .map(|m| m.clip[..h * w].to_vec())
        .collect())
}

/// Every target's predicted response to each image, in one batch.
pub fn predict<R: Responder>(
    model: &mut R,
    units: &[usize],
    images: Vec<(StimulusId, RoleTag, Vec<u8>)>,
    (h, w): (usize, usize),
) -> Result<Vec<DesignedStimulus>, String> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let px: Vec<f32> = images
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|&v| f32::from(v) / 255.0))
        .collect();
    let x = Tensor::from_vec(px, (images.len(), 1, h, w), model.device())
        .map_err(|e| format!("prediction batch: {e}"))?;
    let r = model
        .responses(&x)
        .map_err(|e| format!("predictions: {e}"))?;
    let r: Vec<Vec<f32>> = r
        .to_device(&twinloop_model::Device::Cpu)
        .and_then(|r| r.to_vec2())
        .map_err(|e| format!("predictions: {e}"))?;
    Ok(images
        .into_iter()
        .zip(r)
        .map(|((id, tag, pixels), row)| DesignedStimulus {
            id,
            tag,
            width: w as u32,
            height: h as u32,
            pixels,
            predicted: units.iter().map(|&u| f64::from(row[u])).collect(),
        })
        .collect())
}
