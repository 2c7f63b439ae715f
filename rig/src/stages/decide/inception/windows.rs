//! Trial responses as the protocol measures them: each unit's mean activity over the frames
//! from `onset + delay` to `onset + delay + stimulus_s`, for pool trials (the record phase's
//! measured best) and verify trials (the tally). Units are the designer's (planes in turn).

use crate::vocab::clock::RigTime;
use std::ops::Range;

/// What a trial showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Pool { entry: usize },
    Verify { round: u32, index: usize },
}

struct Open {
    shown: Shown,
    start_s: f64,
    end_s: f64,
    sums: Vec<f64>,
    counts: Vec<u32>,
}

/// Open response windows, closed as frames pass their end.
pub struct Windows {
    delay_s: f64,
    stimulus_s: f64,
    open: Vec<Open>,
}

/// A closed window: each unit's mean (NaN where no frame of its plane fell in it).
pub struct Closed {
    pub shown: Shown,
    pub means: Vec<f64>,
}

impl Windows {
    pub fn new(delay_s: f64, stimulus_s: f64) -> Windows {
        Windows {
            delay_s,
            stimulus_s,
            open: Vec::new(),
        }
    }

    /// A trial showing `shown` came on at `t`.
    pub fn onset(&mut self, shown: Shown, t: RigTime, units: usize) {
        let start_s = t.as_secs_f64() + self.delay_s;
        self.open.push(Open {
            shown,
            start_s,
            end_s: start_s + self.stimulus_s,
            sums: vec![0.0; units],
            counts: vec![0; units],
        });
    }

    /// One frame of the plane whose units are `units`; returns the windows it closed (those
    /// whose end it passed), oldest first.
    pub fn frame(&mut self, t: RigTime, units: Range<usize>, values: &[f32]) -> Vec<Closed> {
        let t_s = t.as_secs_f64();
        let mut closed = Vec::new();
        let mut k = 0;
        while k < self.open.len() {
            if t_s >= self.open[k].end_s {
                let o = self.open.remove(k);
                closed.push(Closed {
                    shown: o.shown,
                    means: o
                        .sums
                        .iter()
                        .zip(&o.counts)
                        .map(|(&s, &n)| if n > 0 { s / f64::from(n) } else { f64::NAN })
                        .collect(),
                });
                continue;
            }
            let o = &mut self.open[k];
            if t_s >= o.start_s {
                for (u, &v) in units.clone().zip(values) {
                    if u < o.sums.len() && v.is_finite() {
                        o.sums[u] += f64::from(v);
                        o.counts[u] += 1;
                    }
                }
            }
            k += 1;
        }
        closed
    }
}

/// Each pool entry's measured mean response per unit over the record phases' trials.
#[derive(Default)]
pub struct PoolMeasure {
    /// `[entry][unit]`: sum of trial means and trials.
    sums: Vec<Vec<f64>>,
    counts: Vec<Vec<u32>>,
}

impl PoolMeasure {
    pub fn add(&mut self, entry: usize, means: &[f64]) {
        if self.sums.len() <= entry {
            self.sums.resize(entry + 1, Vec::new());
            self.counts.resize(entry + 1, Vec::new());
        }
        let (s, c) = (&mut self.sums[entry], &mut self.counts[entry]);
        if s.len() < means.len() {
            s.resize(means.len(), 0.0);
            c.resize(means.len(), 0);
        }
        for (u, &m) in means.iter().enumerate() {
            if m.is_finite() {
                s[u] += m;
                c[u] += 1;
            }
        }
    }

    /// The entry (among `allowed`) with the highest mean measured response of `unit`, ties to
    /// the lower entry; `None` when none was measured.
    pub fn best(&self, unit: usize, allowed: impl Fn(usize) -> bool) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (e, (s, c)) in self.sums.iter().zip(&self.counts).enumerate() {
            let (Some(&s), Some(&n)) = (s.get(unit), c.get(unit)) else {
                continue;
            };
            if n == 0 || !allowed(e) {
                continue;
            }
            let m = s / f64::from(n);
            if best.is_none_or(|(_, b)| m > b) {
                best = Some((e, m));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window takes the frames in [onset + delay, onset + delay + stimulus) of each unit's
    /// own plane and closes at the first frame past its end.
    #[test]
    fn a_window_averages_its_frames_and_closes_after_them() {
        let mut w = Windows::new(0.5, 1.0);
        w.onset(Shown::Pool { entry: 3 }, RigTime::from_secs_f64(10.0), 3);
        let at = RigTime::from_secs_f64;
        assert!(w.frame(at(10.4), 0..2, &[9.0, 9.0]).is_empty());
        assert!(w.frame(at(10.5), 0..2, &[1.0, 2.0]).is_empty());
        assert!(w.frame(at(11.0), 0..2, &[3.0, f32::NAN]).is_empty());
        assert!(w.frame(at(11.2), 2..3, &[5.0]).is_empty());
        let c = w.frame(at(11.5), 0..2, &[100.0, 100.0]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].shown, Shown::Pool { entry: 3 });
        assert_eq!(c[0].means, vec![2.0, 2.0, 5.0]);
        let mut p = PoolMeasure::default();
        p.add(3, &c[0].means);
        p.add(1, &[2.5, f64::NAN, 1.0]);
        assert_eq!(p.best(0, |_| true), Some((1, 2.5)));
        assert_eq!(p.best(1, |_| true), Some((3, 2.0)));
        assert_eq!(p.best(2, |e| e != 3), Some((1, 1.0)));
        assert_eq!(p.best(7, |_| true), None);
    }
}
