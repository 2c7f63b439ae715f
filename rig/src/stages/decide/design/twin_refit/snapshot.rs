//! The designer's kept history, copied for a fit off the designer's thread, and turned into
//! the twin's [`Recording`] there.

use super::{CandidatePool, HistoryRow};
use twinloop_model::train::{RecordedTrial, Recording, RecordingMeta};
use twinloop_stimulus::cpu;

/// The designer's history, copied for a worker (the rendering happens there).
pub struct Snapshot {
    pub(super) rows: Vec<Option<(usize, usize, u64)>>,
    pub(super) t_s: Vec<f64>,
    pub(super) behaviour: Vec<[f32; 2]>,
    pub(super) values: Vec<f32>,
    pub(super) units: usize,
    pub(super) frame_period_s: f64,
}

impl Snapshot {
    /// Copies `history` (the designer's kept frames, oldest first) for a fit off this thread.
    pub fn take<'a>(
        pool: &CandidatePool,
        frame_period_s: f64,
        history: impl Iterator<Item = HistoryRow<'a>>,
    ) -> Snapshot {
        let mut s = Snapshot {
            rows: Vec::new(),
            t_s: Vec::new(),
            behaviour: Vec::new(),
            values: Vec::new(),
            units: 0,
            frame_period_s,
        };
        for h in history {
            if s.rows.is_empty() {
                s.units = h.values.len();
            }
            if h.values.len() != s.units {
                continue;
            }
            s.rows.push(
                h.shown
                    .filter(|&(e, f, _)| e < pool.len() && f < pool.frames()),
            );
            s.t_s.push(h.t_s);
            s.behaviour.push(h.behaviour);
            s.values.extend_from_slice(h.values);
        }
        s
    }

    /// The snapshot as the twin's recording, frames from `rendered` (`[entry][frame][px]`).
    pub(super) fn recording(
        &self,
        pool: &CandidatePool,
        rendered: &[u8],
        (height, width): (usize, usize),
    ) -> Recording {
        let px = height * width;
        let t = self.rows.len();
        let mut frames = vec![cpu::MEAN_GRAY; t * px];
        for (row, out) in self.rows.iter().zip(frames.chunks_exact_mut(px)) {
            if let Some((e, f, _)) = *row {
                let at = (e * pool.frames() + f) * px;
                out.copy_from_slice(&rendered[at..at + px]);
            }
        }
        // fnn's modulation takes pupil size then running speed; the designer keeps them the
        // other way round.
        let modulation = self.behaviour.iter().flat_map(|b| [b[1], b[0]]).collect();
        // Gap-free spans: consecutive kept frames about one frame period apart.
        let mut segments = Vec::new();
        let mut start = 0;
        for i in 1..=t {
            if i == t || self.t_s[i] - self.t_s[i - 1] > 1.5 * self.frame_period_s {
                if i > start {
                    segments.push(start..i);
                }
                start = i;
            }
        }
        let mut trials = Vec::new();
        let mut i = 0;
        while i < t {
            let Some((e, _, trial)) = self.rows[i] else {
                i += 1;
                continue;
            };
            let first = i;
            while i < t && self.rows[i].is_some_and(|r| r.2 == trial) {
                i += 1;
            }
            trials.push(RecordedTrial {
                start: first,
                frames: i - first,
                stimulus: pool.entry(e).name.clone(),
            });
        }
        Recording {
            height,
            width,
            frames,
            perspective: vec![0.0; t * 2],
            modulation,
            responses: self.values.clone(),
            meta: RecordingMeta {
                frame_hz: 1.0 / self.frame_period_s,
                unit_ids: (0..self.units as u32).collect(),
                segments,
                trials,
                standardisation: None,
            },
        }
    }
}
