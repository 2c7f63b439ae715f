//! What the session log carries for the inception protocol (serde JSON payloads). The log's
//! record kinds live in `vocab::records`; these are the payloads the lead wires to them.
//! Predictions are logged with the trial they belong to, before it is shown
//! ([`super::schedule::VerifySchedule::present`]).

use crate::vocab::clock::RigTime;
use serde::{Deserialize, Serialize};

/// One imaged cell: its plane and its index in that plane's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetCell {
    pub plane: u8,
    pub cell: u32,
}

/// A stimulus as the log names it: a pool or library entry, or a synthesised image whose
/// pixels the design result's record carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StimulusId(pub String);

/// The two contrast budgets an MEI is synthesised under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contrast {
    /// Non-saturating: the verdict's key comparison (issue #18's goal is stated at low contrast).
    Low,
    Full,
}

/// Why a stimulus is in a verify block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// A target's most exciting input at one contrast budget.
    Mei { contrast: Contrast },
    /// The pool stimulus that drove the target most in the record phase, by measured response:
    /// what an experimenter does without a twin, the key baseline.
    BestPool,
    /// The twin's predicted best of the screened library.
    LibraryBest,
    /// A random pool stimulus (shared by all targets).
    Random,
}

/// A stimulus's role for one target (`None`: for all of them, as random controls are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoleTag {
    #[serde(flatten)]
    pub role: Role,
    /// The target's index in the round's pre-registered list.
    pub target: Option<u32>,
}

/// The pre-registered target rule, written into the log before any design.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetRule {
    /// Least held-out correlation (CC_norm) of a target.
    pub min_heldout_cc: f64,
    pub max_targets: u32,
}

/// One chosen target and the score that chose it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChosenTarget {
    pub cell: TargetCell,
    pub heldout_cc: f64,
}

/// The rule and the targets it chose, logged before the round's design starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreRegistration {
    pub round: u32,
    pub at: RigTime,
    pub rule: TargetRule,
    /// Cells the rule was applied to.
    pub candidates: u32,
    /// In the order every later record's `target` index refers to.
    pub targets: Vec<ChosenTarget>,
}

/// How a round's design ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum DesignOutcome {
    /// MEIs synthesised within the filler block.
    Designed,
    /// No MEIs: the verify block shows the library's predicted best and the controls.
    LibraryBestFallback { reason: FallbackReason },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum FallbackReason {
    /// The filler block ended first.
    TimedOut,
    /// The design failed (the message says why).
    Failed(String),
}

/// One target's designed stimuli and the twin's predictions for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetDesign {
    /// Index in the round's pre-registration.
    pub target: u32,
    /// The MEIs (low, full contrast); `None` after a fallback.
    pub mei_low: Option<StimulusId>,
    pub mei_full: Option<StimulusId>,
    pub library_best: StimulusId,
    pub best_pool: StimulusId,
    /// The twin's predicted response of the target to each, in the order above (`None` where
    /// there is no stimulus).
    pub predicted_mei_low: Option<f64>,
    pub predicted_mei_full: Option<f64>,
    pub predicted_library_best: f64,
    pub predicted_best_pool: f64,
}

/// A round's design, logged when it ends (or falls back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignResult {
    pub round: u32,
    pub at: RigTime,
    #[serde(flatten)]
    pub outcome: DesignOutcome,
    pub targets: Vec<TargetDesign>,
}

/// One verify presentation, logged before it is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyTrial {
    pub round: u32,
    /// Its place in the round's presentation order.
    pub index: u32,
    pub stimulus: StimulusId,
    /// Why it is shown, for which targets.
    pub roles: Vec<RoleTag>,
    /// The twin's predicted response of every target to it, in pre-registration order.
    pub predicted: Vec<f64>,
}

/// A target whose cell vanished from the masks: reported, never dropped in silence. Its
/// trials stay in the log; the verdict leaves it out and says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetLost {
    pub round: u32,
    pub target: u32,
    pub cell: TargetCell,
    pub at: RigTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record reads back as written, roles and outcomes tagged by name (what `replay`
    /// and the report rely on).
    #[test]
    fn records_round_trip_through_json() {
        let trial = VerifyTrial {
            round: 1,
            index: 7,
            stimulus: StimulusId("mei/r1/t0/low".into()),
            roles: vec![
                RoleTag {
                    role: Role::Mei {
                        contrast: Contrast::Low,
                    },
                    target: Some(0),
                },
                RoleTag {
                    role: Role::Random,
                    target: None,
                },
            ],
            predicted: vec![0.1 + 0.2, 1e-300],
        };
        let json = serde_json::to_string(&trial).unwrap();
        assert!(json.contains(r#""role":"mei","contrast":"low""#), "{json}");
        assert_eq!(serde_json::from_str::<VerifyTrial>(&json).unwrap(), trial);

        let result = DesignResult {
            round: 2,
            at: RigTime::from_nanos(5),
            outcome: DesignOutcome::LibraryBestFallback {
                reason: FallbackReason::Failed("no gradient".into()),
            },
            targets: vec![],
        };
        let json = serde_json::to_string(&result).unwrap();
        assert!(
            json.contains(r#""outcome":"library_best_fallback""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<DesignResult>(&json).unwrap(), result);

        let pre = PreRegistration {
            round: 1,
            at: RigTime::from_nanos(1),
            rule: TargetRule {
                min_heldout_cc: 0.5,
                max_targets: 3,
            },
            candidates: 40,
            targets: vec![ChosenTarget {
                cell: TargetCell { plane: 0, cell: 12 },
                heldout_cc: 0.71,
            }],
        };
        let json = serde_json::to_string(&pre).unwrap();
        assert_eq!(serde_json::from_str::<PreRegistration>(&json).unwrap(), pre);
    }
}
