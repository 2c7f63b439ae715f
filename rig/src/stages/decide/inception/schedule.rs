//! The verify block: the round's stimuli (MEIs and controls, one entry per distinct stimulus)
//! in an interleaved, seeded order, every stimulus `repeats` times, never twice in a row. A
//! presentation is handed out only once its trial record, with the twin's predictions, has been
//! logged ([`VerifySchedule::present`]).

use super::records::{RoleTag, StimulusId, VerifyTrial};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use thiserror::Error;
use twinloop_model::insilico::StimulusBudget;

#[derive(Debug, Error, PartialEq)]
pub enum ScheduleError {
    #[error("a verify block needs at least two distinct stimuli to interleave, got {0}")]
    TooFewStimuli(usize),
    #[error("stimulus {id}: {got} predictions, one per target ({targets}) needed")]
    Predictions {
        id: String,
        got: usize,
        targets: usize,
    },
    #[error("stimulus {id}: prediction {target} is not finite")]
    NotFinite { id: String, target: usize },
    #[error("stimulus {id}: role for target {target}, but the round has {targets} targets")]
    NoSuchTarget {
        id: String,
        target: u32,
        targets: usize,
    },
    #[error("stimulus {id} was added twice with different predictions")]
    Disagrees { id: String },
    #[error(
        "stimulus {id}: mean luminance {mean:.4} and RMS contrast {contrast:.4} match no budget \
         within {tolerance}: refused before it is shown"
    )]
    OffBudget {
        id: String,
        mean: f64,
        contrast: f64,
        tolerance: f64,
    },
    #[error("verify entry {index} does not exist (the block has {len})")]
    NoSuchEntry { index: usize, len: usize },
}

/// A stimulus's mean luminance and RMS contrast, in pixel units [0, 1]: the model crate's
/// measure, so the verify block and the MEIs' budget mean the same two numbers.
pub type Photometry = twinloop_model::insilico::ImageStats;

/// One distinct stimulus of a verify block.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyStimulus {
    pub id: StimulusId,
    /// Why it is shown, for which targets (a pool stimulus may be several targets' best).
    pub roles: Vec<RoleTag>,
    /// The twin's predicted response of every target to it.
    pub predicted: Vec<f64>,
    pub photometry: Photometry,
}

/// The round's distinct stimuli, gathered target by target; a stimulus added again (the same
/// pool stimulus for two targets) gains the role, not a second entry.
#[derive(Debug, Clone)]
pub struct StimulusSet {
    targets: usize,
    budgets: Vec<Photometry>,
    tolerance: f64,
    stimuli: Vec<VerifyStimulus>,
    by_id: BTreeMap<StimulusId, usize>,
}

impl StimulusSet {
    /// A set for `targets` targets whose stimuli must each match one of `budgets` within
    /// `tolerance` (`[inception]`: low and full contrast at the mean luminance, ±5%).
    pub fn new(targets: usize, budgets: Vec<Photometry>, tolerance: f64) -> StimulusSet {
        StimulusSet {
            targets,
            budgets,
            tolerance,
            stimuli: Vec::new(),
            by_id: BTreeMap::new(),
        }
    }

    pub fn add(
        &mut self,
        id: StimulusId,
        tag: RoleTag,
        predicted: Vec<f64>,
        photometry: Photometry,
    ) -> Result<(), ScheduleError> {
        let name = || id.0.clone();
        if predicted.len() != self.targets {
            return Err(ScheduleError::Predictions {
                id: name(),
                got: predicted.len(),
                targets: self.targets,
            });
        }
        if let Some(target) = predicted.iter().position(|p| !p.is_finite()) {
            return Err(ScheduleError::NotFinite { id: name(), target });
        }
        if let Some(target) = tag.target
            && target as usize >= self.targets
        {
            return Err(ScheduleError::NoSuchTarget {
                id: name(),
                target,
                targets: self.targets,
            });
        }
        // Relative errors against each budget, as the MEIs' matcher measures them.
        let on = |b: &Photometry| {
            let budget = StimulusBudget {
                mean_luminance: b.mean_luminance,
                rms_contrast: b.rms_contrast,
            };
            budget.check(photometry).within(self.tolerance)
        };
        if !self.budgets.iter().any(on) {
            return Err(ScheduleError::OffBudget {
                id: name(),
                mean: photometry.mean_luminance,
                contrast: photometry.rms_contrast,
                tolerance: self.tolerance,
            });
        }
        if let Some(&i) = self.by_id.get(&id) {
            let s = &mut self.stimuli[i];
            if s.predicted != predicted {
                return Err(ScheduleError::Disagrees { id: name() });
            }
            if !s.roles.contains(&tag) {
                s.roles.push(tag);
            }
            return Ok(());
        }
        self.by_id.insert(id.clone(), self.stimuli.len());
        self.stimuli.push(VerifyStimulus {
            id,
            roles: vec![tag],
            predicted,
            photometry,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.stimuli.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stimuli.is_empty()
    }
}

/// A round's verify block: its stimuli and their presentation order.
#[derive(Debug, Clone)]
pub struct VerifySchedule {
    round: u32,
    stimuli: Vec<VerifyStimulus>,
    /// Indices into `stimuli`, in presentation order.
    order: Vec<u32>,
}

/// What the presentation shows: built only by [`VerifySchedule::present`], after its trial
/// record (stimulus, roles, the twin's predictions) has been logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Presentation<'a> {
    index: usize,
    stimulus: &'a VerifyStimulus,
}

impl<'a> Presentation<'a> {
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn stimulus(&self) -> &'a StimulusId {
        &self.stimulus.id
    }

    /// The predictions that were logged for it.
    pub fn predicted(&self) -> &'a [f64] {
        &self.stimulus.predicted
    }
}

impl VerifySchedule {
    /// `repeats` blocks, each a fresh shuffle of every stimulus (so slow drifts touch all
    /// alike), the seam between blocks mended so no stimulus follows itself. The same seed
    /// gives the same order.
    pub fn build(
        round: u32,
        set: StimulusSet,
        repeats: u32,
        seed: u64,
    ) -> Result<VerifySchedule, ScheduleError> {
        let n = set.stimuli.len();
        if n < 2 {
            return Err(ScheduleError::TooFewStimuli(n));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order = Vec::with_capacity(n * repeats as usize);
        let mut block: Vec<u32> = (0..n as u32).collect();
        for _ in 0..repeats {
            block.shuffle(&mut rng);
            if order.last() == Some(&block[0]) {
                // Any other place holds a different stimulus: swap it to the front.
                let j = rng.random_range(1..n);
                block.swap(0, j);
            }
            order.extend_from_slice(&block);
        }
        Ok(VerifySchedule {
            round,
            stimuli: set.stimuli,
            order,
        })
    }

    /// Presentations in the block.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn stimuli(&self) -> &[VerifyStimulus] {
        &self.stimuli
    }

    /// The distinct stimulus presentation `index` shows.
    pub fn stimulus_index(&self, index: usize) -> Option<usize> {
        self.order.get(index).map(|&s| s as usize)
    }

    /// Presentation `index`'s trial record.
    pub fn record(&self, index: usize) -> Result<VerifyTrial, ScheduleError> {
        let s = self.entry(index)?;
        Ok(VerifyTrial {
            round: self.round,
            index: index as u32,
            stimulus: s.id.clone(),
            roles: s.roles.clone(),
            predicted: s.predicted.clone(),
        })
    }

    /// Presentation `index`, once `log` has taken its trial record: a failed log shows nothing.
    pub fn present<E>(
        &self,
        index: usize,
        log: impl FnOnce(&VerifyTrial) -> Result<(), E>,
    ) -> Result<Presentation<'_>, PresentError<E>> {
        let record = self.record(index).map_err(PresentError::Schedule)?;
        log(&record).map_err(PresentError::Log)?;
        Ok(Presentation {
            index,
            stimulus: &self.stimuli[self.order[index] as usize],
        })
    }

    fn entry(&self, index: usize) -> Result<&VerifyStimulus, ScheduleError> {
        self.stimulus_index(index)
            .map(|s| &self.stimuli[s])
            .ok_or(ScheduleError::NoSuchEntry {
                index,
                len: self.order.len(),
            })
    }
}

/// Why a presentation was not handed out.
#[derive(Debug, Error)]
pub enum PresentError<E> {
    #[error(transparent)]
    Schedule(ScheduleError),
    /// The trial record could not be logged, so the stimulus is not shown.
    #[error("the verify trial's record was not logged, so it is not shown: {0}")]
    Log(E),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::decide::inception::records::{Contrast, Role};

    const GRAY: Photometry = Photometry {
        mean_luminance: 0.5,
        rms_contrast: 0.1,
    };

    fn tag(role: Role, target: Option<u32>) -> RoleTag {
        RoleTag { role, target }
    }

    /// `n` distinct random controls for one target, predictions 0, 1, 2, ...
    fn set_of(n: usize) -> StimulusSet {
        let mut set = StimulusSet::new(1, vec![GRAY], 0.05);
        for i in 0..n {
            let id = StimulusId(format!("pool/{i}"));
            set.add(id, tag(Role::Random, None), vec![i as f64], GRAY)
                .unwrap();
        }
        set
    }

    /// Every stimulus `repeats` times, once in each block of `n`, never twice in a row, the
    /// same order from the same seed and (past two stimuli) another from another seed.
    #[test]
    fn the_order_is_balanced_interleaved_and_seeded() {
        for (n, repeats, seed) in [
            (2, 10, 1),
            (3, 20, 7),
            (5, 10, 42),
            (9, 15, 3),
            (40, 12, 99),
        ] {
            let s = VerifySchedule::build(1, set_of(n), repeats, seed).unwrap();
            let order: Vec<usize> = (0..s.len()).map(|i| s.stimulus_index(i).unwrap()).collect();
            assert_eq!(order.len(), n * repeats as usize);
            for block in order.chunks(n) {
                let mut b = block.to_vec();
                b.sort();
                assert_eq!(
                    b,
                    (0..n).collect::<Vec<_>>(),
                    "n {n} seed {seed}: {order:?}"
                );
            }
            assert!(
                order.windows(2).all(|w| w[0] != w[1]),
                "n {n} seed {seed}: back to back in {order:?}"
            );
            let again = VerifySchedule::build(1, set_of(n), repeats, seed).unwrap();
            assert_eq!(again.order, s.order);
            // Two stimuli can only alternate: the seed picks which comes first, no more.
            if n > 2 {
                let other = VerifySchedule::build(1, set_of(n), repeats, seed + 1).unwrap();
                assert_ne!(other.order, s.order, "n {n}: seeds {seed} and {}", seed + 1);
            }
        }
        assert_eq!(
            VerifySchedule::build(1, set_of(1), 10, 0).unwrap_err(),
            ScheduleError::TooFewStimuli(1)
        );
    }

    /// Each presentation comes only after its record, carrying its predictions, was logged; a
    /// log that fails shows nothing.
    #[test]
    fn a_presentation_needs_its_logged_prediction() {
        let s = VerifySchedule::build(3, set_of(4), 10, 5).unwrap();
        let mut logged: Vec<VerifyTrial> = Vec::new();
        for i in 0..s.len() {
            let p = s
                .present(i, |r| {
                    logged.push(r.clone());
                    Ok::<(), String>(())
                })
                .unwrap();
            let last = logged.last().unwrap();
            assert_eq!((last.round, last.index as usize), (3, p.index()));
            assert_eq!(&last.stimulus, p.stimulus());
            assert_eq!(last.predicted, p.predicted());
            // Predictions were made stimulus by stimulus (`pool/i` predicts i).
            assert_eq!(p.stimulus().0, format!("pool/{}", p.predicted()[0]));
        }
        assert_eq!(logged.len(), 40);
        let e = s.present(0, |_| Err("disk full")).unwrap_err();
        assert!(matches!(e, PresentError::Log("disk full")), "{e}");
        let e = s.present(40, |_| Ok::<(), ()>(())).unwrap_err();
        assert!(matches!(
            e,
            PresentError::Schedule(ScheduleError::NoSuchEntry { index: 40, len: 40 })
        ));
    }

    /// The same pool stimulus for two targets is one stimulus with two roles; a stimulus that
    /// disagrees with itself, lacks predictions, names no target or misses the budget is
    /// refused.
    #[test]
    fn the_stimulus_set_merges_shared_stimuli_and_refuses_bad_ones() {
        let full = Photometry {
            mean_luminance: 0.5,
            rms_contrast: 0.25,
        };
        let mut set = StimulusSet::new(2, vec![GRAY, full], 0.05);
        let pool = StimulusId("pool/17".into());
        let best = |t| tag(Role::BestPool, Some(t));
        set.add(pool.clone(), best(0), vec![1.0, 2.0], GRAY)
            .unwrap();
        set.add(pool.clone(), best(1), vec![1.0, 2.0], GRAY)
            .unwrap();
        set.add(pool.clone(), best(1), vec![1.0, 2.0], GRAY)
            .unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.stimuli[0].roles, vec![best(0), best(1)]);
        let mei = tag(
            Role::Mei {
                contrast: Contrast::Full,
            },
            Some(0),
        );
        let id = || StimulusId("mei/0/full".into());
        assert!(matches!(
            set.add(pool.clone(), best(0), vec![1.0, 2.5], GRAY),
            Err(ScheduleError::Disagrees { .. })
        ));
        assert!(matches!(
            set.add(id(), mei, vec![1.0], full),
            Err(ScheduleError::Predictions {
                got: 1,
                targets: 2,
                ..
            })
        ));
        assert!(matches!(
            set.add(id(), mei, vec![1.0, f64::NAN], full),
            Err(ScheduleError::NotFinite { target: 1, .. })
        ));
        assert!(matches!(
            set.add(id(), tag(Role::LibraryBest, Some(2)), vec![1.0, 2.0], full),
            Err(ScheduleError::NoSuchTarget { target: 2, .. })
        ));
        // ±5% of each budget: 0.25 × 1.049 is in, 0.25 × 1.051 is out, as is a luminance of
        // 0.5 × 0.949; the low budget's contrast is no help at full contrast.
        let with = |m: f64, c: f64| Photometry {
            mean_luminance: m,
            rms_contrast: c,
        };
        set.add(id(), mei, vec![3.0, 0.5], with(0.5, 0.25 * 1.049))
            .unwrap();
        for off in [
            with(0.5, 0.25 * 1.051),
            with(0.5 * 0.949, 0.25),
            with(0.5, 0.17),
        ] {
            assert!(
                matches!(
                    set.add(StimulusId("x".into()), mei, vec![0.0, 0.0], off),
                    Err(ScheduleError::OffBudget { .. })
                ),
                "{off:?}"
            );
        }
        assert_eq!(set.len(), 2);
    }
}
