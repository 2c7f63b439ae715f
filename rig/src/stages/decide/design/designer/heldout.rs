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
    /// stimuli x response bins, averaged over units whose CC_max is defined and at least
    /// `min_cc_max`).
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
            if let Some(cc) = unit_cc_norm(&refs, &prediction, self.cfg.min_cc_max) {
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

/// One unit's CC_norm = CC_abs / CC_max, or `None` where it is undefined, not finite, or the
/// unit is too noisy to score (CC_max under `min_cc_max`): left out rather than divided by a
/// number near zero. With `min_cc_max = 0` this is `metrics::cc_norm` exactly.
fn unit_cc_norm(trials: &[&[f64]], prediction: &[f64], min_cc_max: f64) -> Option<f64> {
    let max = metrics::cc_max(trials).ok().filter(|&m| m >= min_cc_max)?;
    let cc = metrics::cc_abs(trials, prediction).ok()? / max;
    cc.is_finite().then_some(cc)
}

/// Frames `[start, end)` of response bin `bin` of a clip of `frames` frames.
pub(super) fn bin_frames(bin: usize, frames: usize) -> (usize, usize) {
    let start = bin * frames / TEST_BINS;
    let end = ((bin + 1) * frames / TEST_BINS).max(start + 1).min(frames);
    (start.min(end - 1), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_with_cc_max_near_zero_is_left_out_not_divided_by() {
        let prediction = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        // Reliable: two repeats of the same modulated response.
        let a = [0.1, 0.9, 0.2, 1.1, 0.0, 1.0];
        let b = [0.0, 1.0, 0.1, 0.9, 0.1, 1.1];
        // Barely reliable: mostly noise, CC_max 0.065 (numpy: CC_abs 0.75, CC_norm 11.5).
        let c = [-0.6, -0.8, 0.7, 1.4, 0.2, 0.7];
        let d = [-0.2, 0.4, -1.1, 0.4, -1.0, 0.5];
        let reliable: [&[f64]; 2] = [&a, &b];
        let noisy: [&[f64]; 2] = [&c, &d];
        let noisy_max = metrics::cc_max(&noisy).unwrap();
        assert!(
            noisy_max > 0.0 && noisy_max < 0.2,
            "precondition: CC_max {noisy_max}"
        );

        // No floor: exactly the model crate's CC_norm, blow-up included.
        let exact = metrics::cc_norm(&reliable, &prediction).unwrap();
        assert_eq!(unit_cc_norm(&reliable, &prediction, 0.0), Some(exact));
        let blown = unit_cc_norm(&noisy, &prediction, 0.0).unwrap();
        assert_eq!(blown, metrics::cc_norm(&noisy, &prediction).unwrap());
        assert!(
            (blown - 11.5).abs() < 1e-9,
            "the unfloored noisy unit's CC_norm {blown}"
        );
        // The floor keeps the reliable unit and leaves the noisy one out.
        assert_eq!(unit_cc_norm(&reliable, &prediction, 0.2), Some(exact));
        assert_eq!(unit_cc_norm(&noisy, &prediction, 0.2), None);
        // Undefined stays undefined: a flat prediction has no correlation.
        assert_eq!(unit_cc_norm(&reliable, &[0.5; 6], 0.0), None);
    }
}
