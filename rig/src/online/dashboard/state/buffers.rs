//! Bounded buffers: a time window of samples, a decimated whole-session series, running
//! per-cell statistics.

use super::snapshot::{num_f32, num_t};
use super::*;

/// A time-windowed, decimated ring of samples.
#[derive(Debug, Clone)]
pub(super) struct Window<T> {
    pub(super) buf: VecDeque<(f64, T)>,
}

impl<T> Window<T> {
    pub(super) fn new() -> Self {
        Window {
            buf: VecDeque::new(),
        }
    }

    /// Adds a sample; returns whether it was kept.
    pub(super) fn push(&mut self, t: f64, v: T, history_s: f64) -> bool {
        if !t.is_finite() {
            return false;
        }
        if let Some(&(last, _)) = self.buf.back() {
            if t < last - 1.0 {
                // The clock restarted (a new session or a replay): start over.
                self.buf.clear();
            } else if t - last < history_s / MAX_TRACE_POINTS as f64 {
                return false;
            }
        }
        self.buf.push_back((t, v));
        while self.buf.len() > MAX_TRACE_POINTS {
            self.buf.pop_front();
        }
        while self.buf.front().is_some_and(|&(t0, _)| t0 < t - history_s) {
            self.buf.pop_front();
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn times(&self) -> Value {
        Value::Array(self.buf.iter().map(|&(t, _)| num_t(t)).collect())
    }

    pub(super) fn column(&self, f: impl Fn(&T) -> Option<f32>) -> Value {
        Value::Array(
            self.buf
                .iter()
                .map(|(_, v)| f(v).map_or(Value::Null, num_f32))
                .collect(),
        )
    }
}

/// A whole-session series: keeps at most [`MAX_SERIES_POINTS`] points by
/// halving its resolution when full, and always remembers the latest point.
#[derive(Debug, Clone)]
pub(super) struct Decimated<T> {
    pub(super) buf: Vec<T>,
    pub(super) stride: u64,
    pub(super) seen: u64,
    pub(super) last: Option<T>,
    pub(super) last_kept: bool,
}

impl<T: Clone> Decimated<T> {
    pub(super) fn new() -> Self {
        Decimated {
            buf: Vec::new(),
            stride: 1,
            seen: 0,
            last: None,
            last_kept: false,
        }
    }

    pub(super) fn push(&mut self, v: T) {
        self.last_kept = self.seen.is_multiple_of(self.stride);
        if self.last_kept {
            self.buf.push(v.clone());
            if self.buf.len() > MAX_SERIES_POINTS {
                let old = std::mem::take(&mut self.buf);
                self.buf = old.into_iter().step_by(2).collect();
                self.stride *= 2;
                // The point just pushed may have been thinned out.
                self.last_kept = self.seen.is_multiple_of(self.stride);
            }
        }
        self.seen += 1;
        self.last = Some(v);
    }

    /// The kept points plus the latest one.
    pub(super) fn points(&self) -> impl Iterator<Item = &T> {
        let extra = if self.last_kept {
            None
        } else {
            self.last.as_ref()
        };
        self.buf.iter().chain(extra)
    }

    pub(super) fn stored(&self) -> usize {
        self.buf.len()
    }
}

/// Running mean and variance of every cell's activity (Welford).
#[derive(Debug, Clone, Default)]
pub(super) struct CellStats {
    pub(super) n: Vec<u64>,
    pub(super) mean: Vec<f64>,
    pub(super) m2: Vec<f64>,
    pub(super) samples: u64,
}

impl CellStats {
    pub(super) fn reset(&mut self, cells: usize) {
        self.n = vec![0; cells];
        self.mean = vec![0.0; cells];
        self.m2 = vec![0.0; cells];
        self.samples = 0;
    }

    pub(super) fn add(&mut self, values: &[f32]) {
        self.samples += 1;
        for (i, &v) in values.iter().enumerate().take(self.n.len()) {
            if !v.is_finite() {
                continue;
            }
            let v = f64::from(v);
            self.n[i] += 1;
            let d = v - self.mean[i];
            self.mean[i] += d / self.n[i] as f64;
            self.m2[i] += d * (v - self.mean[i]);
        }
    }

    pub(super) fn variance(&self, i: usize) -> f64 {
        match self.n.get(i) {
            Some(&n) if n >= 2 => self.m2[i] / (n - 1) as f64,
            _ => 0.0,
        }
    }
}
