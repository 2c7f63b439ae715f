//! History: which stimulus was on screen when (the onsets), and the kept frames the refits
//! and the twin refit read.

use super::*;
use crate::stages::decide::design::twin_refit::FinalRefitJob;

/// Why a designer has no fnn twin to refit or save.
pub const NO_FNN_TWIN: &str = "no fnn twin to refit (twin.core = \"energy\": the motion-energy \
     bank has no perspective, modulation or fnn readouts; the loop's online readouts alone are \
     not a twin [source.twin] can load)";

pub(super) struct Onset {
    pub(super) trial: u64,
    pub(super) entry: usize,
    pub(super) t_s: f64,
}

pub(super) struct FrameRef {
    pub(super) plane: u8,
    pub(super) t_s: f64,
    pub(super) behaviour: [f32; BEHAVIOUR_DIMS],
}

impl Designer {
    /// A trial's stimulus came on the screen at `t`.
    pub fn onset(&mut self, trial: u64, entry: usize, t: RigTime) {
        if entry >= self.pool.len() {
            tracing::warn!(
                trial,
                entry,
                "onset of a stimulus outside the pool; ignored"
            );
            return;
        }
        if self.pool.is_test(entry) {
            self.evaluate();
            self.tests.insert(
                trial,
                TestPresentation {
                    entry,
                    sums: vec![0.0; TEST_BINS * self.units.max(1)],
                    counts: vec![[0; TEST_BINS]; self.planes.len().max(1)],
                },
            );
        }
        self.onsets.push(Onset {
            trial,
            entry,
            t_s: t.as_secs_f64(),
        });
    }

    /// The kept frames, oldest first, with what was on the screen at each (what a twin fit
    /// reads).
    pub fn history_rows(&self) -> impl Iterator<Item = HistoryRow<'_>> {
        self.history
            .iter()
            .zip(&self.history_values)
            .map(|(f, v)| HistoryRow {
                t_s: f.t_s,
                shown: self.stimulus_at(f.t_s),
                behaviour: f.behaviour,
                values: v,
            })
    }

    /// The final refit at the session's end, on every kept frame (`twin_refit/final_round.rs`),
    /// or why there is none: no twin refit on this core, cells on several planes, nothing seen.
    pub fn final_refit_job(&self) -> Result<FinalRefitJob, String> {
        let Some(tr) = &self.twin_refit else {
            return Err(NO_FNN_TWIN.into());
        };
        // PLACEHOLDER for multi-plane sessions, as for the rounds: a fit's recording is one
        // plane's frames.
        if self.planes.iter().filter(|p| p.units > 0).count() > 1 {
            return Err(
                "the session's cells are on several imaging planes, and a twin refit fits one                  plane's frames (multi-plane refits are not built)"
                    .into(),
            );
        }
        tr.final_job(&self.pool, self.frame_period_s, self.history_rows())
    }

    /// Seconds of one imaging frame.
    pub fn frame_period_s(&self) -> f64 {
        self.frame_period_s
    }

    /// What was on the screen at `t_s` (rig seconds): the pool entry and its twin frame, or
    /// `None` for gray.
    pub(super) fn stimulus_at(&self, t_s: f64) -> Option<(usize, usize, u64)> {
        let i = self.onsets.partition_point(|o| o.t_s <= t_s);
        let o = self.onsets.get(i.checked_sub(1)?)?;
        // A frame exactly on a twin-frame boundary belongs to that frame (not the one before
        // it through rounding).
        let f = ((t_s - o.t_s) * self.pool.twin_hz() + 1e-6).floor() as usize;
        (f < self.pool.frames()).then_some((o.entry, f, o.trial))
    }
}
