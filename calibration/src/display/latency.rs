//! Display latency: from a photodiode trace over the patch and the logged flips to the delay
//! between a flip (its timestamp on the rig clock) and the light reaching the screen.
//!
//! The patch is white on onset frames and at most `parity_level` (≤ 0.5) otherwise, so the
//! onsets are the rising edges through a threshold halfway between the trace's median and its
//! top (the 99.9th percentile), with hysteresis. Each onset flip is matched to the first
//! unmatched edge within `max_delay` after it; the delays' median, 95th percentile and spread
//! are the display latency and its jitter.

use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LatencyError {
    #[error("{path}: {problem}")]
    Trace { path: String, problem: String },
    #[error("sample_rate_hz = {0} must be > 0")]
    SampleRate(f64),
    #[error(
        "the photodiode trace is flat (median {median}, top {top}): is the sensor over the patch?"
    )]
    Flat { median: f64, top: f64 },
    #[error(
        "cannot match photodiode edges to onsets: {edges} edges, {onsets} onset flips, {matched} \
         matched within {max_delay_ms} ms (need at least 3 and half of the onsets); check the \
         patch corner, the threshold, and that the trace's start time is on the rig clock"
    )]
    Unmatched {
        edges: usize,
        onsets: usize,
        matched: usize,
        max_delay_ms: f64,
    },
}

/// One logged flip: its rig time and whether a stimulus started on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flip {
    pub t_ns: i64,
    pub onset: bool,
}

/// The latency estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyReport {
    pub onsets: usize,
    pub edges: usize,
    pub matched: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    /// Standard deviation of the matched delays.
    pub jitter_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Each matched onset's delay, ms, in flip order.
    pub delays_ms: Vec<f64>,
}

/// Read a 1-D `.npy` of samples (u8, u16, i16, i32, f32 or f64).
pub fn read_trace(path: &Path) -> Result<Vec<f64>, LatencyError> {
    let err = |problem: String| LatencyError::Trace {
        path: path.display().to_string(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| err(format!("not a .npy file: {e}")))?;
    if npy.shape().len() != 1 {
        return Err(err(format!("shape {:?}: need a 1-D trace", npy.shape())));
    }
    let descr = npy.dtype().descr();
    let d = descr.trim_matches('\'');
    let v: Vec<f64> = match &d[1..] {
        "u1" => npy
            .into_vec::<u8>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        "u2" => npy
            .into_vec::<u16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        "i2" => npy
            .into_vec::<i16>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        "i4" => npy
            .into_vec::<i32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        "f4" => npy
            .into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        "f8" => npy.into_vec::<f64>(),
        _ => return Err(err(format!("dtype {descr}: need u1, u2, i2, i4, f4 or f8"))),
    }
    .map_err(|e| err(e.to_string()))?;
    Ok(v)
}

/// A uniformly sampled trace on the rig clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub samples: Vec<f64>,
    pub sample_rate_hz: f64,
    /// Rig time of sample 0.
    pub t0_ns: i64,
}

/// A sample interval further than this fraction from the mean one is not uniform sampling.
const MAX_INTERVAL_DEVIATION: f64 = 0.25;

/// Parse a `t_s,value` CSV: rig time (s) and photodiode level per line, uniformly sampled (a
/// DAQ's export; a header line is optional, `#` starts a comment).
pub fn parse_trace_csv(text: &str, path: &str) -> Result<Trace, LatencyError> {
    let err = |problem: String| LatencyError::Trace {
        path: path.to_string(),
        problem,
    };
    let pairs = super::csv::parse_pairs(text, ["t_s", "value"]).map_err(err)?;
    if pairs.len() < 2 {
        return Err(err(format!(
            "{} samples: need a recording of `t_s,value` lines",
            pairs.len()
        )));
    }
    let (first, last) = (pairs[0].1, pairs[pairs.len() - 1].1);
    let dt = (last - first) / (pairs.len() - 1) as f64;
    if !(dt > 0.0 && dt.is_finite()) {
        return Err(err(format!(
            "times run from {first} s to {last} s: they must increase (rig time, s)"
        )));
    }
    for w in pairs.windows(2) {
        let step = w[1].1 - w[0].1;
        let off = (step - dt).abs();
        if off.is_nan() || off > MAX_INTERVAL_DEVIATION * dt {
            return Err(err(format!(
                "line {}: {step} s after the previous sample, the mean interval is {dt} s: the \
                 trace must be sampled uniformly (one DAQ channel at a fixed rate)",
                w[1].0
            )));
        }
    }
    if let Some(&(line, _, v)) = pairs.iter().find(|p| !p.2.is_finite()) {
        return Err(err(format!("line {line}: value {v} is not finite")));
    }
    Ok(Trace {
        samples: pairs.iter().map(|p| p.2).collect(),
        sample_rate_hz: 1.0 / dt,
        t0_ns: (first * 1e9).round() as i64,
    })
}

pub fn read_trace_csv(path: &Path) -> Result<Trace, LatencyError> {
    let text = std::fs::read_to_string(path).map_err(|e| LatencyError::Trace {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    parse_trace_csv(&text, &path.display().to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Rising edges (rig ns) of a trace whose sample 0 is at `t0_ns`, through a threshold halfway
/// between the median and the top, with ±10 % hysteresis; times interpolated between samples.
pub fn rising_edges(
    samples: &[f64],
    sample_rate_hz: f64,
    t0_ns: i64,
) -> Result<Vec<i64>, LatencyError> {
    if !(sample_rate_hz > 0.0 && sample_rate_hz.is_finite()) {
        return Err(LatencyError::SampleRate(sample_rate_hz));
    }
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return Err(LatencyError::Flat {
            median: f64::NAN,
            top: f64::NAN,
        });
    }
    sorted.sort_by(f64::total_cmp);
    let (median, top) = (percentile(&sorted, 0.5), percentile(&sorted, 0.999));
    if top - median <= 0.0 {
        return Err(LatencyError::Flat { median, top });
    }
    let thr = 0.5 * (median + top);
    let (hi, lo) = (thr + 0.1 * (top - median), thr - 0.1 * (top - median));
    let dt_ns = 1e9 / sample_rate_hz;
    let mut edges = Vec::new();
    let mut armed = samples.first().is_some_and(|&x| x < lo);
    for i in 1..samples.len() {
        let (a, b) = (samples[i - 1], samples[i]);
        if b < lo {
            armed = true;
        }
        if armed && b >= hi {
            // Walk back to where the trace crossed the threshold itself.
            let mut j = i;
            while j > 0 && samples[j - 1] >= thr {
                j -= 1;
            }
            let (x0, x1) = if j > 0 {
                (samples[j - 1], samples[j])
            } else {
                (a, b)
            };
            let frac = if x1 != x0 {
                ((thr - x0) / (x1 - x0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let t = t0_ns as f64 + ((j.max(1) - 1) as f64 + frac) * dt_ns;
            edges.push(t.round() as i64);
            armed = false;
        }
    }
    Ok(edges)
}

/// Match onset flips to edges and summarise the delays.
pub fn match_onsets(
    edges_ns: &[i64],
    flips: &[Flip],
    max_delay_ns: i64,
) -> Result<LatencyReport, LatencyError> {
    let onsets: Vec<i64> = flips.iter().filter(|f| f.onset).map(|f| f.t_ns).collect();
    let mut delays = Vec::new();
    let mut next = 0usize;
    for &t in &onsets {
        while next < edges_ns.len() && edges_ns[next] < t {
            next += 1;
        }
        if next < edges_ns.len() && edges_ns[next] - t <= max_delay_ns {
            delays.push((edges_ns[next] - t) as f64 / 1e6);
            next += 1;
        }
    }
    let matched = delays.len();
    if matched < 3 || matched * 2 < onsets.len() {
        return Err(LatencyError::Unmatched {
            edges: edges_ns.len(),
            onsets: onsets.len(),
            matched,
            max_delay_ms: max_delay_ns as f64 / 1e6,
        });
    }
    let mut sorted = delays.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = delays.iter().sum::<f64>() / matched as f64;
    let var = delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / matched as f64;
    Ok(LatencyReport {
        onsets: onsets.len(),
        edges: edges_ns.len(),
        matched,
        median_ms: percentile(&sorted, 0.5),
        p95_ms: percentile(&sorted, 0.95),
        jitter_ms: var.sqrt(),
        min_ms: sorted[0],
        max_ms: sorted[matched - 1],
        delays_ms: delays,
    })
}

/// The whole measurement: trace samples (sample 0 at `t0_ns` on the rig clock) and flips.
pub fn measure(
    samples: &[f64],
    sample_rate_hz: f64,
    t0_ns: i64,
    flips: &[Flip],
    max_delay_ns: i64,
) -> Result<LatencyReport, LatencyError> {
    let edges = rising_edges(samples, sample_rate_hz, t0_ns)?;
    match_onsets(&edges, flips, max_delay_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60 Hz display with an onset every 30 frames and the patch seen `delay` ms later
    /// (plus a per-flip jitter), through a 0.5 ms photodiode, sampled at 10 kHz with noise.
    fn session(delay_ms: f64, jitter_ms: f64) -> (Vec<f64>, Vec<Flip>) {
        let fs = 10_000.0;
        let period = 1e9 / 60.0;
        let t0 = 1_000_000_000i64;
        let flips: Vec<Flip> = (0..600)
            .map(|k| Flip {
                t_ns: t0 + 5_000_000 + (k as f64 * period) as i64,
                onset: k % 30 == 3,
            })
            .collect();
        let n = (11.0 * fs) as usize;
        let mut level = vec![0.0; n];
        for (k, f) in flips.iter().enumerate() {
            let j = ((k * 7919) % 11) as f64 / 10.0 - 0.5;
            let on = (f.t_ns - t0) as f64 / 1e9 + (delay_ms + jitter_ms * j) / 1e3;
            let v = if f.onset {
                1.0
            } else if k % 2 == 1 {
                0.3
            } else {
                0.0
            };
            let start = (on * fs).ceil() as usize;
            for x in level.iter_mut().skip(start) {
                *x = v;
            }
        }
        let alpha = 1.0 - (-1.0 / (fs * 0.5e-3)).exp();
        let mut y = 0.0;
        let trace = level
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                y += alpha * (x - y);
                y + 0.01 * (((i * 2654435761) % 1000) as f64 / 500.0 - 1.0)
            })
            .collect();
        (trace, flips)
    }

    #[test]
    fn recovers_the_delay_and_its_jitter() {
        let (trace, flips) = session(25.0, 2.0);
        let r = measure(&trace, 10_000.0, 1_000_000_000, &flips, 100_000_000).unwrap();
        assert_eq!(r.onsets, 20);
        assert_eq!(r.matched, 20);
        // The 0.5 ms photodiode reaches the midpoint ~0.35 ms after the light.
        assert!((r.median_ms - 25.35).abs() < 0.3, "{r:?}");
        assert!(r.p95_ms > r.median_ms && r.p95_ms < 26.5, "{r:?}");
        assert!(r.jitter_ms > 0.3 && r.jitter_ms < 1.0, "{r:?}");
    }

    #[test]
    fn parity_flips_are_not_onsets() {
        let (trace, _) = session(10.0, 0.0);
        let edges = rising_edges(&trace, 10_000.0, 1_000_000_000).unwrap();
        assert_eq!(edges.len(), 20);
    }

    #[test]
    fn unmatched_traces_say_why() {
        let (trace, flips) = session(25.0, 0.0);
        // A trace 1.23 s off on the rig clock (onsets come every 0.5 s): nothing within 100 ms.
        let e = measure(&trace, 10_000.0, 2_230_000_000, &flips, 100_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot match") && e.contains("20 onset flips"),
            "{e}"
        );
        let e = measure(&[0.5; 100], 1000.0, 0, &flips, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("flat"), "{e}");
    }

    #[test]
    fn reads_npy_traces() {
        use npyz::WriterBuilder;
        let path = std::env::temp_dir().join(format!("twinloop-pd-{}.npy", std::process::id()));
        let mut w = npyz::WriteOptions::<i16>::new()
            .default_dtype()
            .shape(&[4])
            .writer(std::fs::File::create(&path).unwrap())
            .begin_nd()
            .unwrap();
        w.extend([0i16, 100, -3, 7]).unwrap();
        w.finish().unwrap();
        assert_eq!(read_trace(&path).unwrap(), vec![0.0, 100.0, -3.0, 7.0]);
    }

    #[test]
    fn a_csv_trace_reads_its_rate_and_start_and_refuses_gaps() {
        let t = parse_trace_csv(
            "t_s,value\n# DAQ ai0\n2.5,0.1\n2.5001,0.2\n2.5002,0.9\n",
            "p.csv",
        )
        .unwrap();
        assert_eq!(t.samples, vec![0.1, 0.2, 0.9]);
        assert!(
            (t.sample_rate_hz - 10_000.0).abs() < 1e-6,
            "{}",
            t.sample_rate_hz
        );
        assert_eq!(t.t0_ns, 2_500_000_000);
        // A dropped buffer: the interval on line 4 is twice the others.
        let e = parse_trace_csv("0,0\n0.001,0\n0.003,1\n0.004,1\n0.005,0\n", "p.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.csv") && e.contains("line 3") && e.contains("uniformly"),
            "{e}"
        );
        let e = parse_trace_csv("0,0\n0.001,x\n", "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`x`"), "{e}");
        let e = parse_trace_csv("1,0\n0.5,0\n", "p.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must increase"), "{e}");
    }
}
