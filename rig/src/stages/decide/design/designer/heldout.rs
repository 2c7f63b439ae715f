//! Held-out evaluation: the repeated test block's responses binned per presentation, and
//! CC_norm of the twin's predictions against them.

use super::*;

pub(super) struct TestPresentation {
    pub(super) entry: usize,
    /// `[bin][unit]`, all planes' units.
    pub(super) sums: Vec<f64>,
    /// Frames summed per bin, per plane (each plane's frames fall in the bins on their own).
    pub(super) counts: Vec<[u32; TEST_BINS]>,
}

impl TestPresentation {
    /// Every plane with cells has a frame in every bin.
    pub(super) fn complete(&self, planes: &[PlaneUnits]) -> bool {
        planes.iter().enumerate().all(|(p, pl)| {
            pl.units == 0 || self.counts.get(p).is_some_and(|c| c.iter().all(|&n| n > 0))
        })
    }
}

impl Designer {
    /// Plane `p`'s frame of a test presentation into its units' bins.
    pub(super) fn accumulate_test(&mut self, p: usize, t_s: f64, values: &[f32]) {
        let Some((entry, f, trial)) = self.stimulus_at(t_s) else {
            return;
        };
        if !self.pool.is_test(entry) {
            return;
        }
        let bin = f * TEST_BINS / self.pool.frames();
        let units = self.units;
        let start = self.planes[p].start;
        if let Some(pres) = self.tests.get_mut(&trial) {
            if pres.sums.len() != TEST_BINS * units {
                return;
            }
            let Some(counts) = pres.counts.get_mut(p) else {
                return;
            };
            counts[bin] += 1;
            for (u, &y) in values.iter().enumerate() {
                if y.is_finite() {
                    pres.sums[bin * units + start + u] += f64::from(y);
                }
            }
        }
    }

    /// Held-out accuracy on the completed test presentations (each unit's CC_norm over test
    /// stimuli x response bins, averaged over units where CC_max is defined).
    pub(super) fn evaluate(&mut self) {
        let Some(post) = self.posterior.as_ref() else {
            return;
        };
        if !self.planes.iter().any(|p| p.positions_known) || self.units == 0 {
            return;
        }
        let tests = self.pool.tests();
        let mut by_entry: BTreeMap<usize, Vec<&TestPresentation>> = BTreeMap::new();
        for p in self.tests.values() {
            if p.complete(&self.planes) {
                by_entry.entry(p.entry).or_default().push(p);
            }
        }
        let repeats = tests
            .iter()
            .map(|e| by_entry.get(e).map_or(0, |v| v.len()))
            .min()
            .unwrap_or(0);
        if repeats < 2 {
            return;
        }
        let units = self.units;
        let mut total = 0.0;
        let mut counted = 0usize;
        let mut x = vec![0.0f32; self.dim()];
        let mut unit_cc = vec![f64::NAN; units];
        // Every placed plane's units (a plane whose cells just changed waits for its placement).
        let placed = self
            .planes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.positions_known)
            .flat_map(|(i, p)| p.range().map(move |u| (i, u)));
        for (plane, u) in placed {
            let mut trials = vec![Vec::with_capacity(tests.len() * TEST_BINS); repeats];
            let mut prediction = Vec::with_capacity(tests.len() * TEST_BINS);
            for e in &tests {
                let pres = &by_entry[e];
                for bin in 0..TEST_BINS {
                    for (r, p) in pres.iter().take(repeats).enumerate() {
                        trials[r].push(p.sums[bin * units + u] / f64::from(p.counts[plane][bin]));
                    }
                    let (f0, f1) = bin_frames(bin, self.pool.frames());
                    let mut rate = 0.0;
                    for f in f0..f1 {
                        self.features_with(u, Some((*e, f)), [0.0; BEHAVIOUR_DIMS], &mut x);
                        rate += post.predict_rate(u, &x);
                    }
                    prediction.push(rate / (f1 - f0) as f64 * self.volume_period_s);
                }
            }
            let refs: Vec<&[f64]> = trials.iter().map(|t| t.as_slice()).collect();
            if let Ok(cc) = metrics::cc_norm(&refs, &prediction)
                && cc.is_finite()
            {
                unit_cc[u] = cc;
                total += cc;
                counted += 1;
            }
        }
        self.unit_cc = unit_cc;
        if counted == 0 {
            return;
        }
        let cc = total / counted as f64;
        self.accuracy.push(AccuracyPoint {
            trials: self.decided,
            cc_norm: cc,
            units: counted,
        });
        // CC_norm from a few repeats is noisy; the fallback watches its running mean over the
        // last evaluations so one lucky estimate does not set an unbeatable best.
        let recent: Vec<f64> = self
            .accuracy
            .iter()
            .rev()
            .take(SMOOTH_EVALUATIONS)
            .map(|a| a.cc_norm)
            .collect();
        let smoothed = recent.iter().sum::<f64>() / recent.len() as f64;
        if smoothed > self.best_accuracy + 1e-3 {
            self.best_accuracy = smoothed;
            self.since_best = 0;
            if self.fallback {
                tracing::info!(
                    cc_norm = smoothed,
                    "held-out accuracy improves again; adaptive trials resume"
                );
            }
            self.fallback = false;
        } else {
            self.since_best += 1;
            if !self.fallback && self.cfg.patience > 0 && self.since_best >= self.cfg.patience {
                self.fallback = true;
                tracing::warn!(
                    cc_norm = smoothed,
                    best = self.best_accuracy,
                    evaluations = self.since_best,
                    "held-out accuracy stopped improving; falling back to random trials"
                );
            }
        }
    }
}

/// Frames `[start, end)` of response bin `bin` of a clip of `frames` frames.
pub(super) fn bin_frames(bin: usize, frames: usize) -> (usize, usize) {
    let start = bin * frames / TEST_BINS;
    let end = ((bin + 1) * frames / TEST_BINS).max(start + 1).min(frames);
    (start.min(end - 1), end)
}
