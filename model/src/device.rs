//! Device choice: CUDA when built with the `cuda` feature and a GPU answers, else the CPU
//! (the reference backend), with a logged notice.

use candle_core::Device;

/// Which device the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePreference {
    /// CPU always.
    Cpu,
    /// CUDA ordinal 0 when available, else CPU with a notice.
    #[default]
    Auto,
}

/// Picks a device; never fails (falls back to the CPU).
pub fn select_device(pref: DevicePreference) -> Device {
    match pref {
        DevicePreference::Cpu => Device::Cpu,
        DevicePreference::Auto => cuda_or_cpu(),
    }
}

#[cfg(feature = "cuda")]
fn cuda_or_cpu() -> Device {
    // cudarc panics (rather than erring) when libcuda.so is absent: contain it.
    match std::panic::catch_unwind(|| Device::new_cuda(0)) {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::warn!("twin: CUDA requested but unavailable ({e}); running on the CPU");
            Device::Cpu
        }
        Err(_) => {
            tracing::warn!("twin: CUDA driver library missing; running on the CPU");
            Device::Cpu
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_or_cpu() -> Device {
    tracing::info!("twin: built without the `cuda` feature; running on the CPU");
    Device::Cpu
}

/// Confines candle's element-wise thread pool to the calling thread, unless the user set
/// `CANDLE_NUM_THREADS`. Call first thing in `main`, before any other thread exists.
///
/// Why: the twin parallelises itself — ensemble streams (and pool clips) on their own threads,
/// each running single-threaded fast paths — and candle's barrier pool, which spins between
/// ops, serialised those threads and fought a busy rig for the cores: on this 2-core VM
/// streaming fnn's network ran 1.6x faster and fitting 2x faster under load without it
/// (BENCHMARKS.md, "The twin"). candle's conv and matmul keep their own rayon threads.
pub fn confine_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called at the start of `main`, before any thread that could read the
        // environment concurrently has been spawned.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}
