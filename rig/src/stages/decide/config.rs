//! `[trials]` and `[twin]`: when trials come and how the next is chosen, and the frozen core the
//! adaptive design's readouts read. [`DecideSetup`] is everything building a selector needs.

use crate::stages::decide::design::DesignConfig;
use crate::vocab::section::{Invalid, MAX_WAIT_S, Section};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use twinloop_stimulus::ViewGeometry;

/// Which frozen core the closed loop's twin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreKind {
    /// A fixed motion-energy bank (`twinloop_model::energy_core`): no learned features; the
    /// baseline the pretrained core is measured against.
    Energy,
    /// An fnn twin's core (perspective, modulation at rest, streams) from `weights`.
    Fnn,
    /// The fnn-architecture core pretrained on simulated mice that ships inside the binary
    /// (`twinloop_model::pretrained`, `model/weights/sim/`).
    Pretrained,
}

/// The twin's frozen core (`[twin]`): the features every online readout reads, on a grid of
/// positions over the display view. Sessions logged before this section existed parse as the
/// energy bank on a 6 x 10 grid, which is what they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwinSettings {
    /// `"pretrained"` (the embedded core; `configs/sim.toml`), `"energy"` (the fixed
    /// motion-energy bank; the serde default, what sessions logged before this section ran) or
    /// `"fnn"` (a core from `weights`).
    pub core: CoreKind,
    /// `core = "fnn"`: safetensors with fnn's state-dict names (see
    /// `model/scripts/convert_fnn.py`).
    pub weights: Option<PathBuf>,
    /// `core = "fnn"`: the network's config JSON (`twinloop_model::TwinConfig`); default: fnn's
    /// released network sized to the weights' units.
    pub config: Option<PathBuf>,
    /// Rows of readout positions over the view (each cell's readout reads between them).
    pub grid_rows: usize,
    /// Columns of readout positions over the view.
    pub grid_cols: usize,
    /// `core = "fnn"`: mean-gray frames the core runs before each clip, so a clip starts as a
    /// trial does, after the inter-trial gray.
    pub preroll_frames: usize,
    /// Save the live twin (the refitted fnn twin: weights and this mouse's readouts) in the
    /// session directory at the end, as `live_twin.safetensors` and `live_twin.json`, which
    /// `[source.twin]` reads as it reads `twin fit` output, with its per-unit embeddings in
    /// `live_twin_embeddings/` (`twinloop run`). A session without one says why in its summary.
    pub save: bool,
    /// The final refit at the session's end (`design/twin_refit/final_round.rs`): at most this
    /// many optimiser steps of the transfer fit on everything the designer kept, after the
    /// recording is closed; its twin is the one saved. 0: no final refit (the twin of the last
    /// periodic round, if any, is saved).
    pub final_refit_steps: usize,
    /// ... and at most this many seconds of wall clock (the best evaluated weights are kept
    /// when it runs out). A stop signal (Ctrl-C, SIGTERM) during it skips it.
    pub final_refit_max_s: f64,
}

impl Default for TwinSettings {
    fn default() -> Self {
        TwinSettings {
            core: CoreKind::Energy,
            weights: None,
            config: None,
            grid_rows: 6,
            grid_cols: 10,
            preroll_frames: 10,
            save: true,
            final_refit_steps: 60,
            final_refit_max_s: 300.0,
        }
    }
}

impl Section for TwinSettings {
    const NAME: &'static str = "twin";

    /// Ranges and required fields; whether the files load is checked when the core is built.
    fn validate(&self) -> Result<(), Invalid> {
        let positions = "1 ..= 64 positions";
        Invalid::in_range("twin.grid_rows", self.grid_rows as u64, 1, 64, positions)?;
        Invalid::in_range("twin.grid_cols", self.grid_cols as u64, 1, 64, positions)?;
        Invalid::in_range(
            "twin.preroll_frames",
            self.preroll_frames as u64,
            0,
            10_000,
            "0 ..= 10000 frames",
        )?;
        Invalid::in_range(
            "twin.final_refit_steps",
            self.final_refit_steps as u64,
            0,
            1_000_000,
            "0 ..= 1000000 steps (0: no final refit)",
        )?;
        Invalid::positive_at_most(
            "twin.final_refit_max_s",
            self.final_refit_max_s,
            MAX_WAIT_S,
            "s",
        )?;
        if self.core == CoreKind::Fnn && self.weights.is_none() {
            return Err(Invalid::new(
                "twin.weights",
                "(missing)",
                "required when twin.core = \"fnn\": the path of the core's safetensors weights (or use twin.core = \"pretrained\")",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Uniform random choice from the candidate pool, no design rules (no test block).
    Random,
    /// The closed loop: the twin's readouts learn online and `[trials.design]` chooses
    /// (objective, random share, test block, kind cap, fallback, deadline).
    Adaptive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrialsConfig {
    /// How long each stimulus is shown (seconds).
    pub stimulus_s: f64,
    /// Inter-trial gray at mean luminance (seconds).
    pub gray_s: f64,
    pub policy: Policy,
    /// How long after a stimulus ends its responses are awaited before the next trial is
    /// decided (seconds): the stimulus-to-activity delay and the calcium indicator's rise, so
    /// each decision sees the trial before it whole.
    pub response_wait_s: f64,
    /// The next trial is decided this long before its onset at the latest (seconds), with the
    /// responses seen so far: the time the decision has to be computed and queued. Set it to a
    /// whole trial (`stimulus_s + gray_s`) to decide a trial ahead, without the last trial's
    /// responses.
    pub decision_lead_s: f64,
    /// The adaptive design (used when `policy = "adaptive"`).
    pub design: DesignConfig,
}

impl Default for TrialsConfig {
    fn default() -> Self {
        TrialsConfig {
            stimulus_s: 2.0,
            gray_s: 1.0,
            policy: Policy::Adaptive,
            response_wait_s: 0.2,
            decision_lead_s: 0.5,
            design: DesignConfig::default(),
        }
    }
}

impl Section for TrialsConfig {
    const NAME: &'static str = "trials";

    fn validate(&self) -> Result<(), Invalid> {
        let s = "seconds";
        Invalid::positive_at_most("trials.stimulus_s", self.stimulus_s, MAX_WAIT_S, s)?;
        Invalid::non_negative_at_most("trials.gray_s", self.gray_s, MAX_WAIT_S, s)?;
        Invalid::non_negative_at_most(
            "trials.response_wait_s",
            self.response_wait_s,
            MAX_WAIT_S,
            s,
        )?;
        // Its lower bound depends on the imaging rate (`Config::validate`).
        Invalid::positive_at_most(
            "trials.decision_lead_s",
            self.decision_lead_s,
            MAX_WAIT_S,
            s,
        )?;
        self.design.validate()
    }
}

/// What building a selector needs, from the session's config (`Config::decide_setup`): the
/// selector never sees the whole config.
#[derive(Debug, Clone)]
pub struct DecideSetup {
    pub trials: TrialsConfig,
    pub twin: TwinSettings,
    /// The display's view, as the twin sees it.
    pub view: ViewGeometry,
    /// The imaging frame rate, which is the twin's.
    pub frame_rate_hz: f64,
    pub planes: u8,
    /// `[session] seed`.
    pub seed: u64,
    /// Trials the session can show (none: unbounded); no twin refit is launched that could
    /// not be taken before then.
    pub planned_trials: Option<u64>,
    /// `[inception]`: the selector runs the protocol around the adaptive designer.
    pub inception: Option<super::inception::InceptionConfig>,
}
