//! Registration on each instruction-set path, interleaved frame by frame in one thread, so that
//! other processes' load falls on every path alike (sequential runs under a shared machine's
//! changing load cannot be compared). Every path gives the same bits (the kernels' tests).

use crate::backbone::telemetry::LatencyHist;
use crate::vocab::clock::host_monotonic_ns;
use anyhow::Result;
use twinloop_calibration::imaging::kernels::round_to_u16;
use twinloop_calibration::imaging::register::{Registrar, RegistrationParams};
use twinloop_calibration::simd::SimdPath;

/// Per path: registration + rounding of each frame, p50 and p99 in µs.
pub(super) fn time_paths(
    reference: &[f32],
    frames: &[u16],
    size: usize,
    params: &RegistrationParams,
) -> Result<Vec<(SimdPath, f64, f64)>> {
    let px = size * size;
    let mut runs = Vec::new();
    for path in SimdPath::all_supported() {
        let mut r = Registrar::new(reference, size, size, params)?;
        r.set_simd(path);
        runs.push((path, r, LatencyHist::new("registration")));
    }
    let mut registered = vec![0f32; px];
    let mut rounded = vec![0u16; px];
    for frame in frames.chunks_exact(px) {
        for (path, r, hist) in runs.iter_mut() {
            let t0 = host_monotonic_ns();
            r.register(frame, &mut registered)?;
            round_to_u16(&registered, &mut rounded, *path);
            hist.record_ns(host_monotonic_ns() - t0);
        }
    }
    Ok(runs
        .into_iter()
        .map(|(path, _, h)| {
            let s = h.summary();
            (path, s.p50_us, s.p99_us)
        })
        .collect())
}
