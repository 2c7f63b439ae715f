//! Latency histograms (hdrhistogram): preallocated, so recording never allocates.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Nanosecond latencies from 100 ns to 100 s at 3 significant figures.
#[derive(Clone)]
pub struct LatencyHist {
    name: &'static str,
    hist: Histogram<u64>,
}

/// One stage's latency percentiles, as written to `summary.json` and `latency.json` (fields
/// missing from an older file read as 0).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LatencySummary {
    pub stage: String,
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl LatencyHist {
    pub fn new(name: &'static str) -> LatencyHist {
        // Bounds are constants that hdrhistogram accepts; failure would be a code defect.
        let hist =
            Histogram::new_with_bounds(100, 100_000_000_000, 3).expect("valid histogram bounds");
        LatencyHist { name, hist }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Record one latency; values outside the bounds are clamped, never dropped.
    pub fn record_ns(&mut self, ns: i64) {
        let v = (ns.max(0) as u64).clamp(self.hist.low(), self.hist.high());
        self.hist.saturating_record(v);
    }

    pub fn merge(&mut self, other: &LatencyHist) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    pub fn summary(&self) -> LatencySummary {
        let us = |v: u64| v as f64 / 1e3;
        LatencySummary {
            stage: self.name.to_string(),
            count: self.hist.len(),
            p50_us: us(self.hist.value_at_quantile(0.5)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
            mean_us: self.hist.mean() / 1e3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_a_known_distribution() {
        let mut h = LatencyHist::new("t");
        for us in 1..=1000 {
            h.record_ns(us * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.5, "{s:?}");
        h.record_ns(-5);
        h.record_ns(i64::MAX);
        assert_eq!(h.len(), 1002, "out-of-range values are clamped, not lost");
    }
}
