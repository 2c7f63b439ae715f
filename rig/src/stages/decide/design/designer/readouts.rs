//! The readouts: each plane's units, their receptive-field placement on the core's grid,
//! their features and batch refits, and the standardised behaviour covariates.

use super::*;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RunningStats {
    pub(super) n: f64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

impl RunningStats {
    /// Welford's update.
    pub(super) fn push(&mut self, v: f64) {
        self.n += 1.0;
        let d = v - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (v - self.mean);
    }

    /// Sample standard deviation (0 with fewer than two values).
    pub(super) fn sd(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            (self.m2 / (self.n - 1.0)).sqrt()
        }
    }
}

/// One imaging plane's cells among the designer's units.
pub(super) struct PlaneUnits {
    /// Its first unit (plane-major order).
    pub(super) start: usize,
    pub(super) units: usize,
    /// Each cell's scan offset within its frame, s.
    pub(super) scan_offsets_s: Vec<f64>,
    /// Its readouts have been placed (after warm-up, or after its cells changed).
    pub(super) positions_known: bool,
    /// Receptive-field regression statistics of its cells (on its frames' stimuli).
    pub(super) rf: RfMapper,
}

impl PlaneUnits {
    pub(super) fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.units
    }
}

impl Designer {
    /// Plane `plane`'s entry, made (with no cells) if this is the first word of it.
    pub(super) fn plane_mut(&mut self, plane: u8) -> &mut PlaneUnits {
        let p = usize::from(plane);
        while self.planes.len() <= p {
            self.planes.push(PlaneUnits {
                start: self.units,
                units: 0,
                scan_offsets_s: Vec::new(),
                positions_known: false,
                rf: RfMapper::new(0, 0, 0),
            });
        }
        &mut self.planes[p]
    }

    /// Measured covariates → z-scores against everything seen so far (this frame included);
    /// a missing value is the mean (0), as is any value before there is a spread.
    pub(super) fn standardise(&mut self, raw: [f32; BEHAVIOUR_DIMS]) -> [f32; BEHAVIOUR_DIMS] {
        let mut z = [0.0f32; BEHAVIOUR_DIMS];
        for ((z, &v), s) in z.iter_mut().zip(&raw).zip(&mut self.behaviour_stats) {
            if !v.is_finite() {
                continue;
            }
            let v = f64::from(v);
            s.push(v);
            let sd = s.sd();
            if sd > 0.0 {
                *z = ((v - s.mean) / sd).clamp(-BEHAVIOUR_CLAMP_SD, BEHAVIOUR_CLAMP_SD) as f32;
            }
        }
        z
    }

    /// Unit `u`'s (of plane `p`) scan offset within its frame, s.
    pub(super) fn scan_offset(&self, p: usize, u: usize) -> f64 {
        let pl = &self.planes[p];
        pl.scan_offsets_s.get(u - pl.start).copied().unwrap_or(0.0)
    }

    /// The plane unit `u` is on.
    pub(super) fn plane_of(&self, u: usize) -> usize {
        self.planes
            .iter()
            .position(|p| p.range().contains(&u))
            .unwrap_or(0)
    }

    /// Plane `p`'s cells appeared or vanished: its readouts cannot be matched any more, so its
    /// fit starts again (logged and counted), as does the held-out evaluation (its units
    /// changed); the other planes' readouts keep their fits. The record keeps everything.
    pub(super) fn resize(&mut self, p: usize, units: usize) {
        let old = self.planes[p].range();
        if !old.is_empty() {
            self.counts.unit_count_changes += 1;
            tracing::warn!(
                plane = p,
                from = old.len(),
                to = units,
                "the number of cells changed; this plane's readouts start again"
            );
        }
        let total = self.units - old.len() + units;
        self.activity_stats.splice(
            old.clone(),
            std::iter::repeat_n(RunningStats::default(), units),
        );
        let centre = self.grid_centre();
        self.positions
            .splice(old.clone(), std::iter::repeat_n(centre, units));
        match self.posterior.as_mut() {
            Some(post) if total > 0 => post.splice_units(old.clone(), units),
            _ => {
                let dim = self.dim();
                let mut prior_mean = vec![0.0; dim];
                prior_mean[dim - 1] = -1.0;
                self.posterior = if total == 0 {
                    None
                } else {
                    match Posterior::new(
                        total,
                        PosteriorConfig {
                            dim,
                            prior_var: self.cfg.prior_var,
                            prior_mean,
                            process_noise_per_s: self.cfg.process_noise_per_s,
                        },
                    ) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot build the readout posterior");
                            None
                        }
                    }
                };
            }
        }
        self.units = total;
        let (positions, channels) = (self.pool.core().positions(), self.pool.core().channels());
        let plane = &mut self.planes[p];
        plane.units = units;
        plane.positions_known = false;
        plane.rf = RfMapper::new(units, positions, channels);
        let mut start = 0;
        for plane in &mut self.planes {
            plane.start = start;
            start += plane.units;
        }
        // This plane's kept frames no longer match its units; the others' still do.
        let plane = p as u8;
        let mut k = 0;
        while k < self.history.len() {
            if self.history[k].plane == plane {
                self.history.remove(k);
                self.history_values.remove(k);
            } else {
                k += 1;
            }
        }
        self.tests.clear();
        self.accuracy.clear();
        self.best_accuracy = f64::NEG_INFINITY;
        self.since_best = 0;
        self.planned.clear();
    }

    pub(super) fn grid_centre(&self) -> (f32, f32) {
        let (rows, cols) = self.pool.core().grid();
        ((rows as f32 - 1.0) / 2.0, (cols as f32 - 1.0) / 2.0)
    }

    /// Features of unit `u` at a stimulus frame (or gray), with the current behaviour and bias.
    pub(super) fn features_into(&self, u: usize, at: Option<(usize, usize)>, out: &mut [f32]) {
        self.features_with(u, at, self.behaviour_now, out);
    }

    pub(super) fn features_with(
        &self,
        u: usize,
        at: Option<(usize, usize)>,
        behaviour: [f32; BEHAVIOUR_DIMS],
        out: &mut [f32],
    ) {
        let c = self.pool.core().channels();
        let map = match at {
            Some((e, f)) => self.pool.feature_map(e, f),
            None => self.pool.gray_map(),
        };
        let (gr, gc) = self.positions[u];
        self.pool.core().sample(map, gr, gc, &mut out[..c]);
        out[c..c + BEHAVIOUR_DIMS].copy_from_slice(&behaviour);
        out[c + BEHAVIOUR_DIMS] = 1.0;
    }

    pub(super) fn accumulate_rf(&mut self, p: usize, t_s: f64, values: &[f32]) {
        let map = match self.stimulus_at(t_s) {
            Some((e, f, _)) => self.pool.feature_map(e, f),
            None => self.pool.gray_map(),
        };
        self.planes[p].rf.accumulate(map, values);
    }

    /// Re-estimates plane `p`'s units' readout positions from its receptive-field statistics;
    /// returns the units that moved.
    pub(super) fn estimate_positions(&mut self, p: usize) -> Vec<usize> {
        let (rows, cols) = self.pool.core().grid();
        let plane = &self.planes[p];
        let estimates = plane.rf.estimate(rows, cols);
        let (start, known) = (plane.start, plane.positions_known);
        let mut moved = Vec::new();
        for (k, new) in estimates.into_iter().enumerate() {
            let Some(new) = new else { continue };
            let u = start + k;
            let old = self.positions[u];
            if !known || (new.0 - old.0).hypot(new.1 - old.1) > 0.25 {
                self.positions[u] = new;
                moved.push(u);
            }
        }
        moved
    }

    /// Batch MAP refit of `units` over the kept history.
    pub(super) fn refit(&mut self, units: &[usize]) {
        let Some(mut post) = self.posterior.take() else {
            return;
        };
        let dim = self.dim();
        let n = self.history.len();
        let mut xs = vec![0.0f32; n * dim];
        let mut ys = vec![0.0f32; n];
        for &u in units {
            let p = self.plane_of(u);
            let (plane, first) = (p as u8, self.planes[p].start);
            let mut k = 0;
            for (frame, values) in self.history.iter().zip(&self.history_values) {
                if frame.plane != plane {
                    continue;
                }
                let y = values[u - first];
                if !y.is_finite() {
                    continue;
                }
                let at = self.stimulus_at(frame.t_s + self.scan_offset(p, u));
                self.features_with(
                    u,
                    at.map(|(e, f, _)| (e, f)),
                    frame.behaviour,
                    &mut xs[k * dim..(k + 1) * dim],
                );
                ys[k] = y;
                k += 1;
            }
            post.reset_unit(u);
            self.counts.refits += 1;
            if let Err(e) = post.refit_unit(u, &xs[..k * dim], &ys[..k], self.volume_period_s) {
                self.counts.refit_failures += 1;
                tracing::warn!(unit = u, error = %e, "readout refit failed; the unit restarts from its prior");
                post.reset_unit(u);
            }
        }
        self.posterior = Some(post);
    }

    /// Places readouts after warm-up and refits moved units every `refit_every` trials.
    pub(super) fn maintain(&mut self, trial: u64) {
        // Due by trial count, not on exact multiples: a due trial that falls on a test slot
        // (which `decide` never maintains for) must not skip its block's refit. A plane whose readouts
        // are not placed yet (its cells just appeared or changed) is placed at once.
        let all_placed = self
            .planes
            .iter()
            .all(|p| p.positions_known || p.units == 0);
        if all_placed && trial < self.next_refit {
            return;
        }
        self.next_refit = trial + u64::from(self.cfg.refit_every);
        self.refit_rounds += 1;
        let _span = tracing::info_span!("refit", trial).entered();
        let mut moved_total = 0;
        for p in 0..self.planes.len() {
            if self.planes[p].units == 0 {
                continue;
            }
            let moved = self.estimate_positions(p);
            moved_total += moved.len();
            if !self.planes[p].positions_known {
                self.planes[p].positions_known = true;
                let all: Vec<usize> = self.planes[p].range().collect();
                self.refit(&all);
            } else {
                self.refit(&moved);
            }
        }
        tracing::debug!(moved = moved_total, "readout positions re-estimated");
    }
}

/// Each candidate's features at each unit's readout, every `stride`-th frame.
pub(super) struct Features<'a> {
    pub(super) designer: &'a Designer,
    pub(super) stride: usize,
}

impl FeatureSource for Features<'_> {
    fn dim(&self) -> usize {
        self.designer.dim()
    }

    fn frames(&self, _candidate: usize) -> usize {
        self.designer.pool.frames().div_ceil(self.stride)
    }

    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]) {
        let d = self.dim();
        for (k, row) in out.chunks_exact_mut(d).enumerate() {
            self.designer
                .features_into(unit, Some((candidate, k * self.stride)), row);
        }
    }
}
