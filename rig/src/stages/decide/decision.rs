//! What a decision says, as logged and published: the trial's stimulus, why it was chosen, its
//! score and runners-up, and what the selector had seen. A leaf of `decide`: the selectors and
//! the design import it, it imports neither.

use crate::stages::behaviour::BehaviourRecord;
use crate::vocab::clock::RigTime;
use serde::{Deserialize, Serialize};
use twinloop_stimulus::{StimulusId, StimulusSpec};

/// One decision, as logged and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub trial: u64,
    pub stimulus: StimulusId,
    pub name: String,
    pub spec: StimulusSpec,
    pub policy: String,
    /// Sequence number of the last imaging frame whose activity the selector had seen.
    pub after_frame_seq: Option<u64>,
    /// How many frames of activity it had seen.
    pub frames_seen: u64,
    /// Rig time of that last frame (ns; 0 before any).
    pub after_frame_t_ns: i64,
    /// Why this stimulus (random, warm-up, test block, adaptive, fallback, late).
    #[serde(default)]
    pub mode: DecisionMode,
    /// The chosen stimulus's score under the objective (adaptive decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The best candidates with their scores, best first (adaptive decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Trial onsets the selector had seen.
    #[serde(default)]
    pub onsets_seen: u64,
    /// The twin's latest held-out accuracy (CC_norm on the repeated test block), if any yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyPoint>,
    /// A twin refit (perspective, modulation, readouts) the selector took just before this
    /// decision; replay takes it at the same trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_refit: Option<TwinRefitNote>,
}

/// A trial's stimulus came on screen (the renderer tells the selector).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Onset {
    pub trial: u64,
    pub stimulus: StimulusId,
    pub t: RigTime,
}

/// What the twin's modulation takes for one imaging frame: running speed and pupil size, as
/// measured (the selector standardises them). `NaN` where the behaviour stage had none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameBehaviour {
    pub running_cm_s: f32,
    pub pupil_radius_px: f32,
}

impl FrameBehaviour {
    pub const MISSING: FrameBehaviour = FrameBehaviour {
        running_cm_s: f32::NAN,
        pupil_radius_px: f32::NAN,
    };

    /// From a logged or published behaviour record.
    pub fn from_record(r: &BehaviourRecord) -> FrameBehaviour {
        let f = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
        FrameBehaviour {
            running_cm_s: f(r.treadmill_cm_s),
            pupil_radius_px: f(r.pupil_radius_px),
        }
    }
}

/// Why a trial got its stimulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DecisionMode {
    /// Uniform over the candidates (the random policy, or the design's random share).
    #[default]
    Random,
    /// Random while the receptive fields are located.
    Warmup,
    /// The next stimulus of the repeated test block.
    Test,
    /// Maximised the objective.
    Adaptive,
    /// Random because held-out accuracy stopped improving.
    Fallback,
    /// Random because scoring overran its deadline.
    Late,
    /// A natural clip of the inception protocol's filler block, shown while the twin designs.
    Filler,
    /// A stimulus of the inception protocol's verify block (an MEI or a control).
    Verify,
}

/// One candidate's score, as logged beside a decision (`entry` is the pool index, which is
/// also the stimulus id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub entry: u32,
    pub score: f64,
}

impl Alternative {
    pub fn stimulus_id(&self) -> u32 {
        self.entry
    }
}

/// What the designer chose and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DesignChoice {
    pub entry: usize,
    pub mode: DecisionMode,
    /// The chosen stimulus's score (adaptive trials).
    pub score: Option<f64>,
    /// The best few candidates with their scores, best first (adaptive trials).
    pub alternatives: Vec<Alternative>,
}

/// Held-out accuracy after some trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccuracyPoint {
    pub trials: u64,
    /// Mean CC_norm over units with a defined CC_max, on the test block.
    pub cc_norm: f64,
    pub units: usize,
}

/// Counts of what the designer had to repair or refuse (kept with the session's counters,
/// so they reach the summary, the status heartbeat and the dashboard).
pub use crate::backbone::telemetry::DesignCounts;

/// A refit the designer took at a decision (logged with that decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinRefitNote {
    /// The trial at whose decision the round was launched.
    pub launched: u64,
    /// `false`: the fit failed and the old twin was kept.
    pub applied: bool,
}
