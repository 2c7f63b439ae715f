//! The pre-registered rule that picks the design phase's target units from their held-out
//! scores ([`UnitScores`], as `insilico::evaluate` gives them). Pure and serialisable: its
//! JSON goes into the session log before any design, and applying it to the logged scores
//! gives the same targets on replay.
//!
//! Defaults follow the functional-connectomics selection of well-predicted cells, CC_max > 0.4
//! and CC_abs > 0.2 (Ding et al., Nature 640:459, 2025; ../shared/SCIENCE.md).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

use super::evaluate::UnitScores;

/// The score targets are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    CcAbs,
    CcMax,
    CcNorm,
    Feve,
    SingleTrial,
}

impl RankBy {
    fn of(self, s: &UnitScores) -> Option<f64> {
        match self {
            Self::CcAbs => s.cc_abs,
            Self::CcMax => s.cc_max,
            Self::CcNorm => s.cc_norm,
            Self::Feve => s.feve,
            Self::SingleTrial => s.single_trial,
        }
    }
}

/// Which units become targets. A unit qualifies when every set threshold holds strictly (a
/// missing or non-finite score fails it); qualifying units are ranked by `rank_by`, highest
/// first, ties by lower unit id, and the first `max_targets` are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRule {
    pub min_cc_abs: Option<f64>,
    pub min_cc_max: Option<f64>,
    pub min_cc_norm: Option<f64>,
    pub min_feve: Option<f64>,
    pub rank_by: RankBy,
    pub max_targets: usize,
}

impl Default for TargetRule {
    fn default() -> Self {
        Self {
            min_cc_abs: Some(0.2),
            min_cc_max: Some(0.4),
            min_cc_norm: None,
            min_feve: None,
            rank_by: RankBy::CcAbs,
            max_targets: 100,
        }
    }
}

/// One chosen target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSelection {
    /// Position of the unit in the scores (the twin's unit index).
    pub unit: usize,
    pub unit_id: u32,
    /// Its `rank_by` score.
    pub score: f64,
}

impl TargetRule {
    /// Names the first field outside what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| ModelError::Config {
            field: format!("target_rule.{field}"),
            reason,
        };
        for (field, v) in [
            ("min_cc_abs", self.min_cc_abs),
            ("min_cc_max", self.min_cc_max),
            ("min_cc_norm", self.min_cc_norm),
        ] {
            if let Some(v) = v
                && !(-1.0..=1.0).contains(&v)
            {
                return Err(bad(field, format!("{v}; a correlation in [-1, 1]")));
            }
        }
        if let Some(v) = self.min_feve
            && !(v.is_finite() && v <= 1.0)
        {
            return Err(bad("min_feve", format!("{v}; need a finite value ≤ 1")));
        }
        if self.max_targets == 0 {
            return Err(bad("max_targets", "0; need at least 1".into()));
        }
        Ok(())
    }

    /// The JSON written into the session log before any design.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a TargetRule always serialises")
    }

    /// Reads a logged rule back, checked.
    pub fn from_json(text: &str) -> Result<Self> {
        let rule: Self = serde_json::from_str(text).map_err(|e| ModelError::Config {
            field: "target_rule".into(),
            reason: e.to_string(),
        })?;
        rule.validate()?;
        Ok(rule)
    }

    /// Applies the rule to per-unit scores (index = twin unit).
    pub fn select(&self, scores: &[UnitScores]) -> Result<Vec<TargetSelection>> {
        self.validate()?;
        let passes = |v: Option<f64>, min: Option<f64>| match min {
            None => true,
            Some(m) => v.is_some_and(|v| v.is_finite() && v > m),
        };
        let mut chosen: Vec<TargetSelection> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                passes(s.cc_abs, self.min_cc_abs)
                    && passes(s.cc_max, self.min_cc_max)
                    && passes(s.cc_norm, self.min_cc_norm)
                    && passes(s.feve, self.min_feve)
            })
            .filter_map(|(unit, s)| {
                let score = self.rank_by.of(s).filter(|v| v.is_finite())?;
                Some(TargetSelection {
                    unit,
                    unit_id: s.unit_id,
                    score,
                })
            })
            .collect();
        chosen.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.unit_id.cmp(&b.unit_id)));
        chosen.truncate(self.max_targets);
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: u32, cc_abs: Option<f64>, cc_max: Option<f64>, feve: Option<f64>) -> UnitScores {
        UnitScores {
            unit_id: id,
            cc_abs,
            cc_max,
            cc_norm: None,
            single_trial: None,
            feve,
            truth: None,
            frames: 100,
            repeat_frames: 10,
        }
    }

    #[test]
    fn the_rule_picks_targets_as_its_table_says() {
        let scores = vec![
            unit(10, Some(0.50), Some(0.80), Some(0.3)),  // passes
            unit(11, Some(0.20), Some(0.90), Some(0.5)),  // cc_abs not > 0.2
            unit(12, Some(0.60), Some(0.40), Some(0.6)),  // cc_max not > 0.4
            unit(13, Some(0.70), None, Some(0.2)),        // no cc_max
            unit(14, Some(f64::NAN), Some(0.9), None),    // NaN fails
            unit(15, Some(0.50), Some(0.45), None),       // ties unit 10 on cc_abs
            unit(16, Some(0.90), Some(0.95), Some(-0.1)), // best
            unit(17, Some(0.30), Some(0.50), Some(0.9)),  // passes, lowest cc_abs
        ];
        let ids = |rule: &TargetRule| -> Vec<u32> {
            rule.select(&scores)
                .unwrap()
                .iter()
                .map(|t| t.unit_id)
                .collect()
        };
        let default = TargetRule::default();
        // (rule, expected ids in order)
        let table: Vec<(TargetRule, Vec<u32>)> = vec![
            (default.clone(), vec![16, 10, 15, 17]),
            (
                TargetRule {
                    max_targets: 2,
                    ..default.clone()
                },
                vec![16, 10],
            ),
            (
                TargetRule {
                    min_feve: Some(0.0),
                    ..default.clone()
                },
                vec![10, 17],
            ),
            (
                TargetRule {
                    rank_by: RankBy::Feve,
                    ..default.clone()
                },
                vec![17, 10, 16],
            ),
            (
                TargetRule {
                    min_cc_abs: None,
                    min_cc_max: None,
                    ..default.clone()
                },
                vec![16, 13, 12, 10, 15, 17, 11],
            ),
        ];
        for (rule, want) in table {
            assert_eq!(ids(&rule), want, "{rule:?}");
        }
        // Units are indexed by position, whatever their ids.
        let t = default.select(&scores).unwrap();
        assert_eq!((t[0].unit, t[0].score), (6, 0.90));
    }

    #[test]
    fn the_logged_json_round_trips_and_bad_rules_are_named() {
        let rule = TargetRule {
            min_feve: Some(0.1),
            rank_by: RankBy::CcNorm,
            ..TargetRule::default()
        };
        let json = rule.to_json();
        assert!(json.contains("\"rank_by\":\"cc_norm\""), "{json}");
        assert_eq!(TargetRule::from_json(&json).unwrap(), rule);
        let e = TargetRule::from_json(&json.replace("\"max_targets\":100", "\"max_targets\":0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("target_rule.max_targets"), "{e}");
        let e = TargetRule {
            min_cc_max: Some(1.5),
            ..TargetRule::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("target_rule.min_cc_max") && e.contains("[-1, 1]"),
            "{e}"
        );
        let e = TargetRule::from_json(&json.replace("}", ",\"extra\":1}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
    }
}
