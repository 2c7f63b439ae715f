//! Between blocks, the closed loop refits the twin itself: perspective, modulation and readouts
//! (fnn's transfer fit, `twinloop_model::train::fit` with `FitScope::Transfer`) on everything
//! recorded so far, on a worker thread, and the designer folds the result in.
//!
//! Every `twin_refit_every` trials (once the readouts are placed) the designer hands a worker a
//! snapshot of its kept history as a [`Recording`]: per imaging frame the pool entry's frame
//! that was on screen at the frame's time minus the response delay (rendered as the pool
//! renders it, at the core's input size; mean gray between trials), the standardised behaviour
//! as the modulation input (the pupil centre is not measured here: the perspective sees the
//! centre of gaze, as the pool's core does), and each unit's activity as the designer kept it.
//! The worker fits a fixed number of steps from the current twin with a fixed seed (no
//! wall-clock budget, so the same snapshot gives the same weights), placing readouts from the
//! data only on the first round, then recomputes the pool's features through the refitted
//! twin ([`FnnCore`] on the new weights).
//!
//! The designer consumes the result at a deterministic point: the first decision at or after
//! `launch + max(every / 2, 1)` at which the worker has finished (live, with a decision
//! deadline, a decision never waits for it; without one it waits until it is done). The trial
//! at which it was taken goes in the decision record ([`TwinRefitNote`]), and replay takes it at
//! the same trial ([`TwinRefit::script`]), so decisions replay exactly (on the same device: a
//! GPU fit and a CPU fit differ in the last bits). Applying swaps the pool's features and
//! batch-refits every unit's posterior over the kept history; the readouts keep the positions
//! the receptive-field map gives them (the fit's own, fnn's `tanh(mu)` mapped onto the pool's
//! grid, are logged for comparison: moving the designer's linear readouts there cost held-out
//! accuracy). A failed fit (an error, a non-finite loss or weight) is logged and counted and
//! the loop goes on with the old twin.
//!
//! The energy bank has no perspective or modulation to fit: with it the loop stays
//! readouts-only (`twin_refit_every` is ignored, with a notice).
//!
//! At the session's end one more fit runs on everything kept ([`final_round`]), so that the
//! live twin is saved even when no round was applied; with `twin_refit_every = 0` that final
//! refit is the only one.

mod final_round;
mod snapshot;
pub use final_round::{FinalRefitBudget, FinalRefitJob, FinalRefitReport};
pub use snapshot::Snapshot;

use super::pool::{CandidatePool, PoolError};
pub use crate::stages::decide::decision::TwinRefitNote;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use twinloop_model::frozen_core::FnnCore;
use twinloop_model::train::{FitConfig, FitReport, FitScope, MouseFit};
use twinloop_model::{Device, DevicePreference, Tensor, Twin, TwinConfig, Weights};
use twinloop_stimulus::{LibraryEntry, Prepared, Projection, ViewGeometry, cpu};

/// The twin the pool's core came from, and how to refit it.
#[derive(Clone)]
pub struct TwinRefitSetup {
    /// The architecture (`units` is taken from the data at each round).
    pub config: TwinConfig,
    /// All of the twin's tensors, fnn names (the readouts may be another mouse's: the first
    /// round replaces them).
    pub weights: HashMap<String, Tensor>,
    /// Gray frames the pool's core runs before each clip (`[twin] preroll_frames`).
    pub preroll: usize,
    /// The fit's settings (`max_steps` from `[trials.design] twin_refit_steps`); each round
    /// sets its own seed and whether readouts are placed.
    pub fit: FitConfig,
    /// Where the fit and the pool's features run (`Auto`: a GPU when built with `cuda`).
    pub device: DevicePreference,
    /// Fails every round without fitting (tests of the failure path).
    pub force_failure: bool,
}

impl std::fmt::Debug for TwinRefitSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinRefitSetup")
            .field("tensors", &self.weights.len())
            .field("preroll", &self.preroll)
            .field("steps", &self.fit.max_steps)
            .field("device", &self.device)
            .field("force_failure", &self.force_failure)
            .finish_non_exhaustive()
    }
}

impl TwinRefitSetup {
    /// The transfer fit's defaults with `steps` steps, no wall-clock budget (so a snapshot
    /// always gives the same weights) and the held-out loss checked four times.
    pub fn default_fit(steps: usize) -> FitConfig {
        FitConfig {
            scope: FitScope::Transfer,
            max_steps: steps,
            max_seconds: f64::INFINITY,
            eval_every: (steps / 4).max(1),
            // Early stopping would make the step count depend on the data's noise; the best
            // evaluated weights are returned anyway.
            patience: usize::MAX,
            ..FitConfig::default()
        }
    }

    /// Round `round`'s settings: its own fixed seed; readouts placed from the data or not;
    /// `max_seconds` of wall clock (infinite for the rounds, so a snapshot always gives the same
    /// weights). The scope is the setup's (the transfer fit everywhere a session refits;
    /// `twinloop bench inception`'s scratch arm fits everything).
    fn fit_config(&self, round: u64, place_readouts: bool, max_seconds: f64) -> FitConfig {
        FitConfig {
            max_seconds,
            place_readouts,
            seed: 0x7e1f17 ^ round,
            ..self.fit.clone()
        }
    }
}

/// The twin the closed loop refitted, at the session's end: what `[twin] save` writes and
/// `[source.twin]` reads back.
#[derive(Clone)]
pub struct LiveTwin {
    /// The architecture, with this mouse's unit count.
    pub config: TwinConfig,
    /// Every tensor, fnn names, on the CPU.
    pub weights: HashMap<String, Tensor>,
    /// Refit rounds applied over the session.
    pub rounds_applied: usize,
}

/// What a finished round gives the designer.
pub struct TwinRefitOutcome {
    pub pool: CandidatePool,
    /// Each unit's readout position in the pool's grid coordinates `(row, col)`.
    pub positions: Vec<(f32, f32)>,
    pub report: FitReport,
    /// Wall time of the round (fit and pool), seconds.
    pub seconds: f64,
    weights: HashMap<String, Tensor>,
}

/// One frame of the designer's history, as the snapshot takes it.
pub struct HistoryRow<'a> {
    /// Rig seconds, response delay taken off.
    pub t_s: f64,
    /// The pool entry and its twin frame on screen then (`None`: gray).
    pub shown: Option<(usize, usize, u64)>,
    /// Standardised running speed and pupil size.
    pub behaviour: [f32; 2],
    pub values: &'a [f32],
}

struct Pending {
    launched: u64,
    due: u64,
    rx: Receiver<Result<TwinRefitOutcome, String>>,
}

/// The refit worker's state, owned by the designer.
pub struct TwinRefit {
    setup: TwinRefitSetup,
    every: u64,
    /// Rounds between blocks (`twin_refit_every > 0`); without, only the final refit runs.
    periodic: bool,
    /// Raised at the session's end: a round still running stops at its next step.
    abandon: Arc<AtomicBool>,
    rounds: u64,
    next_launch: u64,
    pending: Option<Pending>,
    /// Replay: the trials at which live took a result (`None`: live).
    script: Option<BTreeSet<u64>>,
    /// Trials that will be decided, when known (an experiment): no round is launched that
    /// could not be taken before the end.
    horizon: Option<u64>,
    /// Every pool entry rendered at the core's input size, `[entry][frame][pixel]`, made once
    /// by the first worker.
    rendered: Arc<OnceLock<Vec<u8>>>,
    rounds_taken: Vec<TwinRefitRound>,
    last_note: Option<TwinRefitNote>,
}

/// One round the designer took, for reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TwinRefitRound {
    pub launched: u64,
    pub applied: bool,
    /// Wall time of the round (fit and pool features), s (NaN when it failed).
    pub seconds: f64,
    /// Of which the fit, s.
    pub fit_seconds: f64,
    /// The fit's held-out Poisson loss at its start and its best (NaN when it failed).
    pub initial_val_loss: f64,
    pub best_val_loss: f64,
}

impl TwinRefit {
    /// Rounds every `every` trials; `every = 0`: none, only the final refit
    /// ([`Self::final_job`]).
    pub fn new(setup: TwinRefitSetup, every: u32) -> TwinRefit {
        TwinRefit {
            setup,
            every: u64::from(every.max(1)),
            periodic: every > 0,
            abandon: Arc::new(AtomicBool::new(false)),
            rounds: 0,
            // The first round comes after a block of data, not straight after the warm-up.
            next_launch: u64::from(every.max(1)),
            pending: None,
            script: None,
            horizon: None,
            rendered: Arc::new(OnceLock::new()),
            rounds_taken: Vec::new(),
            last_note: None,
        }
    }

    /// Replay: take results exactly at these trials (and only there), waiting as long as it
    /// takes.
    pub fn script(&mut self, trials: BTreeSet<u64>) {
        self.script = Some(trials);
    }

    /// A session or experiment of `trials` trials: rounds that could not be taken before the end
    /// are not launched (they would only hold the CPU).
    pub fn set_horizon(&mut self, trials: u64) {
        self.horizon = Some(trials);
    }

    /// The twin as the last applied round left it (the first round's start before any).
    pub fn setup(&self) -> &TwinRefitSetup {
        &self.setup
    }

    /// The live twin: the architecture with this mouse's units and the weights the last
    /// applied round left (perspective, modulation, core and this mouse's readouts), or why
    /// there is none yet (no round applied: the readouts are still another mouse's).
    pub fn live_twin(&self) -> Result<LiveTwin, String> {
        let applied = self.rounds_taken.iter().filter(|r| r.applied).count();
        if applied == 0 {
            return Err(format!(
                "no twin refit round was applied ({} taken): the twin's readouts are not this                  mouse's yet",
                self.rounds_taken.len()
            ));
        }
        let units = self
            .setup
            .weights
            .get("readout.position.mu")
            .and_then(|mu| mu.dims().first().copied())
            .ok_or("the refitted twin has no readout.position.mu")?;
        Ok(LiveTwin {
            config: TwinConfig {
                units,
                ..self.setup.config.clone()
            },
            weights: self.setup.weights.clone(),
            rounds_applied: applied,
        })
    }

    /// What the last decision took, if anything.
    pub fn last_note(&self) -> Option<TwinRefitNote> {
        self.last_note
    }

    /// Every round taken so far, oldest first.
    pub fn rounds(&self) -> &[TwinRefitRound] {
        &self.rounds_taken
    }

    /// At decision `trial`: a finished round to take now, if one is due (waiting for it up to
    /// `wait`; `None` = as long as it takes). Call once per decision, then [`Self::record`]
    /// what was done with it.
    pub fn take(
        &mut self,
        trial: u64,
        wait: Option<Duration>,
    ) -> Option<(u64, Result<TwinRefitOutcome, String>)> {
        self.last_note = None;
        let p = self.pending.as_ref()?;
        if trial < p.due {
            return None;
        }
        let got = match &self.script {
            Some(trials) if !trials.contains(&trial) => return None,
            Some(_) => p.rx.recv().map_err(|_| ()),
            None => match wait {
                None => p.rx.recv().map_err(|_| ()),
                Some(w) => match p.rx.recv_timeout(w) {
                    Ok(r) => Ok(r),
                    Err(RecvTimeoutError::Timeout) => return None,
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                },
            },
        };
        let launched = p.launched;
        self.pending = None;
        let result =
            got.unwrap_or_else(|()| Err("the refit worker stopped without a result".into()));
        Some((launched, result))
    }

    /// The designer took the round launched at `launched`: applied (`Some`: its weights are the
    /// next round's start) or not.
    pub fn record(&mut self, launched: u64, applied: Option<&TwinRefitOutcome>) {
        if let Some(o) = applied {
            self.setup.weights = o.weights.clone();
        }
        self.rounds_taken.push(TwinRefitRound {
            launched,
            applied: applied.is_some(),
            seconds: applied.map_or(f64::NAN, |o| o.seconds),
            fit_seconds: applied.map_or(f64::NAN, |o| o.report.seconds),
            initial_val_loss: applied.map_or(f64::NAN, |o| o.report.initial_val_loss),
            best_val_loss: applied.map_or(f64::NAN, |o| o.report.best_val_loss),
        });
        self.last_note = Some(TwinRefitNote {
            launched,
            applied: applied.is_some(),
        });
    }

    /// Whether a round should be launched at decision `trial` (none running, one due; in
    /// replay, only while live took a round at or after this trial).
    pub fn launch_due(&self, trial: u64) -> bool {
        let wanted = self
            .script
            .as_ref()
            .is_none_or(|s| s.range(trial..).next().is_some());
        let in_time = self
            .horizon
            .is_none_or(|h| trial + (self.every / 2).max(1) < h);
        self.periodic && self.pending.is_none() && trial >= self.next_launch && wanted && in_time
    }

    /// The final refit on `history` (the designer's kept frames, oldest first), after the
    /// last decision. A round still running is abandoned (it stops at its next step: the final
    /// refit fits on more).
    pub fn final_job<'a>(
        &self,
        pool: &Arc<CandidatePool>,
        frame_period_s: f64,
        history: impl Iterator<Item = HistoryRow<'a>>,
    ) -> Result<FinalRefitJob, String> {
        self.abandon
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let snapshot = Snapshot::take(pool, frame_period_s, history);
        let frames = snapshot.rows.len();
        let stimulus_frames = snapshot.rows.iter().filter(|r| r.is_some()).count();
        if stimulus_frames == 0 || snapshot.units == 0 {
            return Err(final_round::nothing_to_fit(frames, stimulus_frames));
        }
        Ok(FinalRefitJob {
            setup: self.setup.clone(),
            pool: Arc::clone(pool),
            rendered: Arc::clone(&self.rendered),
            snapshot,
            round: self.rounds,
            rounds_applied: self.rounds_taken.iter().filter(|r| r.applied).count(),
            frames,
            stimulus_frames,
        })
    }

    /// Launches a round on `history` (the designer's kept frames, oldest first) at decision
    /// `trial`.
    pub fn launch<'a>(
        &mut self,
        trial: u64,
        pool: &Arc<CandidatePool>,
        frame_period_s: f64,
        history: impl Iterator<Item = HistoryRow<'a>>,
    ) {
        self.next_launch = trial + self.every;
        let round = self.rounds;
        self.rounds += 1;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.pending = Some(Pending {
            launched: trial,
            due: trial + (self.every / 2).max(1),
            rx,
        });
        let snapshot = Snapshot::take(pool, frame_period_s, history);
        let setup = self.setup.clone();
        let pool = Arc::clone(pool);
        let rendered = Arc::clone(&self.rendered);
        let abandon = Arc::clone(&self.abandon);
        tracing::info!(
            trial,
            round,
            frames = snapshot.rows.len(),
            units = snapshot.units,
            "twin refit launched"
        );
        let spawned = std::thread::Builder::new()
            .name("twin-refit".into())
            .spawn(move || {
                lowest_priority();
                let started = Instant::now();
                let result =
                    run_round(&setup, round, &pool, &rendered, snapshot, &abandon, started)
                        .map_err(|e| e.to_string());
                // The designer may have gone (end of session): nothing to do then.
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the twin refit worker");
            // The receiver sees a disconnected channel and counts a failure.
        }
    }
}

/// Drops the calling thread to the lowest CPU priority (nice 19), so a refit on the CPU takes
/// only what the rig's real-time stages leave idle. Linux nice values are per thread and
/// inherited by threads it creates; elsewhere this is a no-op.
pub fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on this thread's own id; failure only leaves the priority.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) } != 0 {
            tracing::debug!("twin refit: could not lower the worker's priority");
        }
    }
}

/// Why a round failed (logged; the loop keeps the old twin).
#[derive(Debug, thiserror::Error)]
pub enum TwinRefitError {
    #[error("the refit was told to fail (test)")]
    Forced,
    #[error("no frames with activity to fit")]
    NoData,
    #[error("fit: {0}")]
    Fit(#[from] twinloop_model::ModelError),
    #[error("the fit diverged: {0}")]
    NonFinite(String),
    #[error("pool features through the refitted twin: {0}")]
    Pool(#[from] PoolError),
    #[error("abandoned at the session's end (the final refit fits on more)")]
    Abandoned,
}

/// Every pool entry rendered at the core's input size over the view, as the pool renders it.
fn render_pool(pool: &CandidatePool, size: (usize, usize)) -> Vec<u8> {
    (0..pool.len())
        .flat_map(|e| render_entry(pool, e, size))
        .collect()
}

/// Pool entry `entry`'s frames (`[frame][pixel]`, u8) at `(height, width)` over the pool's
/// view, as the pool renders them; a spec that does not prepare stays gray.
pub fn render_entry(
    pool: &CandidatePool,
    entry: usize,
    (height, width): (usize, usize),
) -> Vec<u8> {
    let view = ViewGeometry {
        width,
        height,
        ..pool.view()
    };
    let px = view.pixels();
    let projection = Projection::Linear(view);
    let frames = pool.frames();
    let mut out = vec![cpu::MEAN_GRAY; frames * px];
    // The pool was built from these specs, so they prepare; a failure leaves gray.
    if let Some(e) = pool.entries().get(entry)
        && let Ok(mut p) = Prepared::new(&e.spec)
    {
        for (f, o) in out.chunks_exact_mut(px).enumerate() {
            cpu::render_content(&p.frame(f as f64 / pool.twin_hz()), &projection, o);
        }
    }
    out
}

/// `tanh(mu)` (x, y in the core map's `align_corners = false` coordinates) → grid coordinates
/// `(row, col)` of a `rows x cols` grid at the centres of an even partition of the map (as
/// [`FnnCore`] samples it).
pub fn mu_to_grid(mu_x: f32, mu_y: f32, (rows, cols): (usize, usize)) -> (f32, f32) {
    let (x, y) = (mu_x.tanh(), mu_y.tanh());
    (
        ((y + 1.0) * rows as f32 - 1.0) / 2.0,
        ((x + 1.0) * cols as f32 - 1.0) / 2.0,
    )
}

/// A transfer fit of `setup`'s twin on `snapshot`: round `round`'s seed, readouts kept when
/// they are this mouse's, else fresh and placed from the data. Returns the architecture with
/// this mouse's units, the fitted weights and the fit's report.
pub fn transfer_fit(
    setup: &TwinRefitSetup,
    round: u64,
    pool: &CandidatePool,
    rendered: &OnceLock<Vec<u8>>,
    snapshot: Snapshot,
) -> Result<(TwinConfig, HashMap<String, Tensor>, FitReport), TwinRefitError> {
    let never = AtomicBool::new(false);
    transfer_fit_until(
        setup,
        round,
        pool,
        rendered,
        snapshot,
        &never,
        f64::INFINITY,
    )
}

/// [`transfer_fit`] within `max_seconds` of wall clock, stopping before its next step once
/// `stop` is raised (the report's `stopped` then says `interrupted`).
fn transfer_fit_until(
    setup: &TwinRefitSetup,
    round: u64,
    pool: &CandidatePool,
    rendered: &OnceLock<Vec<u8>>,
    snapshot: Snapshot,
    stop: &AtomicBool,
    max_seconds: f64,
) -> Result<(TwinConfig, HashMap<String, Tensor>, FitReport), TwinRefitError> {
    if setup.force_failure {
        return Err(TwinRefitError::Forced);
    }
    if snapshot.rows.is_empty() || snapshot.units == 0 {
        return Err(TwinRefitError::NoData);
    }
    let size = (setup.config.stimulus_height, setup.config.stimulus_width);
    let rendered = rendered.get_or_init(|| render_pool(pool, size));
    let recording = snapshot.recording(pool, rendered, size);
    drop(snapshot);
    let units = recording.units();
    let cfg = TwinConfig {
        units,
        ..setup.config.clone()
    };
    // Readouts of this mouse's units: kept from the previous round, else fresh and placed
    // from the data.
    let mut weights = setup.weights.clone();
    let has_readouts = weights
        .get("readout.position.mu")
        .is_some_and(|mu| mu.dims().first() == Some(&units));
    if !has_readouts {
        let fresh = twinloop_model::train::fresh_weights(&cfg, 0x7e1f17)?;
        weights.retain(|k, _| !k.starts_with("readout."));
        weights.extend(fresh.into_iter().filter(|(k, _)| k.starts_with("readout.")));
    }
    let dev = twinloop_model::select_device(setup.device);
    let fc = setup.fit_config(round, !has_readouts, max_seconds);
    let fitted = twinloop_model::train::fit_until(
        &cfg,
        vec![MouseFit {
            recording: &recording,
            weights,
        }],
        &fc,
        &dev,
        stop,
    )?;
    let report = fitted.report;
    if !report.best_val_loss.is_finite() {
        return Err(TwinRefitError::NonFinite(format!(
            "held-out loss {} ({})",
            report.best_val_loss, report.stopped
        )));
    }
    let weights = fitted
        .weights
        .into_iter()
        .next()
        .ok_or(TwinRefitError::NoData)?;
    Ok((cfg, weights, report))
}

fn run_round(
    setup: &TwinRefitSetup,
    round: u64,
    pool: &CandidatePool,
    rendered: &OnceLock<Vec<u8>>,
    snapshot: Snapshot,
    abandon: &AtomicBool,
    started: Instant,
) -> Result<TwinRefitOutcome, TwinRefitError> {
    let (cfg, weights, report) = transfer_fit_until(
        setup,
        round,
        pool,
        rendered,
        snapshot,
        abandon,
        f64::INFINITY,
    )?;
    if report.stopped == twinloop_model::train::STOPPED_BY_FLAG {
        return Err(TwinRefitError::Abandoned);
    }
    let dev = twinloop_model::select_device(setup.device);
    let mu = weights
        .get("readout.position.mu")
        .ok_or_else(|| TwinRefitError::NonFinite("no readout positions".into()))?
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| TwinRefitError::NonFinite(e.to_string()))?;
    if mu.iter().any(|v| !v.is_finite()) {
        return Err(TwinRefitError::NonFinite("readout positions".into()));
    }
    let grid = pool.core().grid();
    let positions = mu
        .chunks_exact(2)
        .map(|m| mu_to_grid(m[0], m[1], grid))
        .collect();
    let twin = Twin::new(cfg, &Weights::from_params(weights.clone()), &dev)?;
    let core = FnnCore::new(twin, grid, setup.preroll)?;
    let (mut candidates, mut tests): (Vec<LibraryEntry>, Vec<LibraryEntry>) = Default::default();
    for (i, e) in pool.entries().iter().enumerate() {
        match pool.is_test(i) {
            true => tests.push(e.clone()),
            false => candidates.push(e.clone()),
        }
    }
    let new_pool = CandidatePool::build(
        candidates,
        tests,
        pool.view(),
        Box::new(core),
        pool.frames() as f64 / pool.twin_hz(),
        pool.twin_hz(),
    )?;
    // CPU copies, so the next round (and the designer) need not touch the fit's device.
    let weights = weights
        .into_iter()
        .map(|(k, t)| {
            let t = t.to_device(&Device::Cpu).unwrap_or(t);
            (k, t)
        })
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        round,
        initial_val_loss = report.initial_val_loss,
        best_val_loss = report.best_val_loss,
        best_step = report.best_step,
        fit_seconds = report.seconds,
        seconds,
        "twin refit done"
    );
    Ok(TwinRefitOutcome {
        pool: new_pool,
        positions,
        report,
        seconds,
        weights,
    })
}

/// The refit for `twin`'s core, when `design` asks for one: `None` when off or on the energy
/// bank (no perspective or modulation to fit: readouts only, with a notice).
pub fn setup_for(
    twin: &crate::stages::decide::TwinSettings,
    design: &super::DesignConfig,
) -> Result<Option<TwinRefitSetup>, PoolError> {
    use crate::stages::decide::CoreKind;
    if design.twin_refit_every == 0 {
        return Ok(None);
    }
    let bad = |e: twinloop_model::ModelError| PoolError::Twin(format!("twin refit: {e}"));
    let (config, weights) = match twin.core {
        CoreKind::Energy => {
            tracing::info!(
                "trials.design.twin_refit_every is set but the core is the energy bank, which has \
                 no perspective or modulation to fit: the loop refits readouts only"
            );
            return Ok(None);
        }
        CoreKind::Pretrained => (
            twinloop_model::pretrained::sim_config().map_err(bad)?,
            twinloop_model::pretrained::sim_weights().map_err(bad)?,
        ),
        CoreKind::Fnn => {
            let Some(path) = twin.weights.as_deref() else {
                return Err(PoolError::Twin(
                    "twin.weights is required when twin.core = \"fnn\"".into(),
                ));
            };
            let w = Weights::load(path).map_err(bad)?;
            let cfg = twinloop_model::cli::twin_config(&w, twin.config.as_deref()).map_err(bad)?;
            (cfg, w)
        }
    };
    Ok(Some(TwinRefitSetup {
        config,
        weights: weights.to_map(),
        preroll: twin.preroll_frames,
        fit: TwinRefitSetup::default_fit(design.twin_refit_steps as usize),
        device: DevicePreference::Auto,
        force_failure: false,
    }))
}

#[cfg(test)]
mod tests;
