//! The measured responses of a verify block, gathered presentation by presentation: each
//! target's responses to each distinct stimulus, and what the verdict needs from them.

use super::records::{Role, RoleTag, StimulusId};
use super::schedule::VerifySchedule;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum TallyError {
    #[error("verify entry {index} does not exist (the block has {len})")]
    NoSuchEntry { index: usize, len: usize },
    #[error("entry {index}: {got} responses, one per target ({targets}) needed")]
    Responses {
        index: usize,
        got: usize,
        targets: usize,
    },
}

/// One target's measured responses and the twin's predictions, for one comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSamples {
    /// Index in the round's pre-registration.
    pub target: u32,
    /// Responses to the stimulus tested (the target's MEI, or its library best).
    pub challenger: Vec<f64>,
    /// Responses to the target's best measured pool stimulus: the key baseline.
    pub best_pool: Vec<f64>,
    /// The twin's predictions for the two, logged before they were shown.
    pub predicted_challenger: f64,
    pub predicted_best_pool: f64,
    /// The block's other stimuli for this target: its library best or other MEI, and the
    /// random controls every target shares.
    pub controls: Vec<ControlSamples>,
}

/// A target's responses to one control stimulus, and the twin's prediction for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSamples {
    pub role: Role,
    pub stimulus: StimulusId,
    pub responses: Vec<f64>,
    pub predicted: f64,
}

/// Responses by (distinct stimulus, target), in presentation order.
#[derive(Debug, Clone)]
pub struct Tally<'s> {
    schedule: &'s VerifySchedule,
    targets: usize,
    /// `[stimulus][target]`: the responses measured so far.
    responses: Vec<Vec<Vec<f64>>>,
}

impl<'s> Tally<'s> {
    pub fn new(schedule: &'s VerifySchedule) -> Tally<'s> {
        let targets = schedule.stimuli().first().map_or(0, |s| s.predicted.len());
        Tally {
            schedule,
            targets,
            responses: vec![vec![Vec::new(); targets]; schedule.stimuli().len()],
        }
    }

    /// Presentation `index`'s measured response of every target (NaN: not measured, as for a
    /// lost target's cell; left out).
    pub fn record(&mut self, index: usize, responses: &[f64]) -> Result<(), TallyError> {
        let Some(s) = self.schedule.stimulus_index(index) else {
            return Err(TallyError::NoSuchEntry {
                index,
                len: self.schedule.len(),
            });
        };
        if responses.len() != self.targets {
            return Err(TallyError::Responses {
                index,
                got: responses.len(),
                targets: self.targets,
            });
        }
        for (t, &r) in responses.iter().enumerate() {
            if r.is_finite() {
                self.responses[s][t].push(r);
            }
        }
        Ok(())
    }

    /// The distinct stimulus that plays `role` for `target`.
    fn stimulus_for(&self, role: Role, target: u32) -> Option<usize> {
        let tag = RoleTag {
            role,
            target: Some(target),
        };
        self.schedule
            .stimuli()
            .iter()
            .position(|s| s.roles.contains(&tag))
    }

    /// Each target's responses to its `challenger` stimulus and to its best pool stimulus;
    /// targets without either (a fallback round has no MEIs) are left out.
    pub fn samples(&self, challenger: Role) -> Vec<TargetSamples> {
        (0..self.targets as u32)
            .filter_map(|t| {
                let c = self.stimulus_for(challenger, t)?;
                let b = self.stimulus_for(Role::BestPool, t)?;
                let stimuli = self.schedule.stimuli();
                let ti = t as usize;
                let controls = (0..stimuli.len())
                    .filter(|&s| s != c && s != b)
                    .filter_map(|s| {
                        let tag = stimuli[s]
                            .roles
                            .iter()
                            .find(|r| r.target.is_none_or(|rt| rt == t))?;
                        Some(ControlSamples {
                            role: tag.role,
                            stimulus: stimuli[s].id.clone(),
                            responses: self.responses[s][ti].clone(),
                            predicted: stimuli[s].predicted[ti],
                        })
                    })
                    .collect();
                Some(TargetSamples {
                    target: t,
                    challenger: self.responses[c][ti].clone(),
                    best_pool: self.responses[b][ti].clone(),
                    predicted_challenger: stimuli[c].predicted[ti],
                    predicted_best_pool: stimuli[b].predicted[ti],
                    controls,
                })
            })
            .collect()
    }

    /// The selectivity matrix for `mei`: row i, column j is target i's mean response to target
    /// j's stimulus in that role (NaN where nothing was measured). `None` unless every target
    /// has one.
    pub fn selectivity(&self, mei: Role) -> Option<Vec<Vec<f64>>> {
        let columns: Vec<usize> = (0..self.targets as u32)
            .map(|j| self.stimulus_for(mei, j))
            .collect::<Option<_>>()?;
        Some(
            (0..self.targets)
                .map(|i| {
                    columns
                        .iter()
                        .map(|&s| {
                            let r = &self.responses[s][i];
                            r.iter().sum::<f64>() / r.len() as f64
                        })
                        .collect()
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::decide::inception::records::Contrast;
    use crate::stages::decide::inception::schedule::{Photometry, StimulusSet};

    const LOW: Role = Role::Mei {
        contrast: Contrast::Low,
    };

    /// Two targets: each one's low-contrast MEI, one pool stimulus best for both, one random.
    /// `BASE[s][t]` is target t's response to stimulus s (before a per-presentation offset).
    const BASE: [[f64; 2]; 4] = [[3.0, 0.5], [0.7, 2.5], [2.0, 1.5], [0.2, 0.3]];

    fn schedule() -> VerifySchedule {
        let budget = Photometry {
            mean_luminance: 0.5,
            rms_contrast: 0.1,
        };
        let mut set = StimulusSet::new(2, vec![budget], 0.05);
        let tag = |role, target| RoleTag { role, target };
        let stimuli = [
            ("mei/0", vec![tag(LOW, Some(0))]),
            ("mei/1", vec![tag(LOW, Some(1))]),
            (
                "pool/3",
                vec![tag(Role::BestPool, Some(0)), tag(Role::BestPool, Some(1))],
            ),
            ("pool/8", vec![tag(Role::Random, None)]),
        ];
        for (s, (id, tags)) in stimuli.into_iter().enumerate() {
            for t in tags {
                // Predictions: the base response, doubled (so they differ from what is measured).
                let predicted = BASE[s].iter().map(|b| 2.0 * b).collect();
                set.add(StimulusId(id.into()), t, predicted, budget)
                    .unwrap();
            }
        }
        VerifySchedule::build(1, set, 10, 11).unwrap()
    }

    /// What presentation `i` measures: the base response plus a small offset per presentation,
    /// target 1's response missing on every 7th.
    fn measured(s: &VerifySchedule, i: usize) -> [f64; 2] {
        let b = BASE[s.stimulus_index(i).unwrap()];
        let t1 = if i.is_multiple_of(7) {
            f64::NAN
        } else {
            b[1] + 0.01 * i as f64
        };
        [b[0] + 0.01 * i as f64, t1]
    }

    #[test]
    fn responses_are_gathered_by_stimulus_and_target() {
        let s = schedule();
        let mut tally = Tally::new(&s);
        for i in 0..s.len() {
            tally.record(i, &measured(&s, i)).unwrap();
        }
        // The same, collected by a plain scan of the presentation order.
        let scan = |stim: usize, t: usize| -> Vec<f64> {
            (0..s.len())
                .filter(|&i| s.stimulus_index(i) == Some(stim))
                .map(|i| measured(&s, i)[t])
                .filter(|r| r.is_finite())
                .collect()
        };
        let got = tally.samples(LOW);
        assert_eq!(got.len(), 2);
        for (t, g) in got.iter().enumerate() {
            assert_eq!(g.target, t as u32);
            assert_eq!(g.challenger, scan(t, t), "target {t}'s own MEI");
            assert_eq!(g.best_pool, scan(2, t), "the shared best pool stimulus");
            assert_eq!(g.predicted_challenger, 2.0 * BASE[t][t]);
            assert_eq!(g.predicted_best_pool, 2.0 * BASE[2][t]);
            // The other target's MEI is no control of this one's; the random stimulus is.
            assert_eq!(g.controls.len(), 1, "{:?}", g.controls);
            let r = &g.controls[0];
            assert_eq!((r.role, r.stimulus.0.as_str()), (Role::Random, "pool/8"));
            assert_eq!(r.responses, scan(3, t));
            assert_eq!(r.predicted, 2.0 * BASE[3][t]);
        }
        assert_eq!(got[0].challenger.len(), 10);
        assert!(
            got[1].challenger.len() < 10,
            "target 1 lost some presentations"
        );
        let m = tally.selectivity(LOW).unwrap();
        for (i, row) in m.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let x = scan(j, i);
                let want = x.iter().sum::<f64>() / x.len() as f64;
                assert!((v - want).abs() < 1e-12, "[{i}][{j}] {v} vs {want}");
            }
        }
        // No MEI at full contrast in this block: nothing to compare, no matrix.
        let full = Role::Mei {
            contrast: Contrast::Full,
        };
        assert!(tally.samples(full).is_empty());
        assert!(tally.selectivity(full).is_none());
        assert_eq!(
            tally.record(40, &[0.0, 0.0]),
            Err(TallyError::NoSuchEntry { index: 40, len: 40 })
        );
        assert!(matches!(
            tally.record(0, &[0.0]),
            Err(TallyError::Responses {
                got: 1,
                targets: 2,
                ..
            })
        ));
    }
}
