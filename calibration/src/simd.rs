//! Run-time choice of the instruction set for the imaging hot kernels.
//!
//! The workspace is built for the x86-64 baseline (SSE2), so one binary runs on every lab PC.
//! The per-pixel kernels of registration and extraction (`imaging::kernels`) are compiled three
//! times: for AVX-512 (`avx512f`, `avx512bw`, `avx512vl`, `avx512dq`), for AVX2 (`avx2`, `fma`)
//! and for the baseline ([`Isa::Scalar`]: plain Rust with no vector instructions requested
//! beyond SSE2, which the compiler may still use). [`active`] picks the best one the CPU has,
//! once per process, and logs the choice once.
//!
//! **Override.** `TWINLOOP_SIMD=avx512|avx2|scalar` forces a path (to measure the AVX2 or the
//! scalar path on an AVX-512 machine, or to rule the vector code out when chasing a bug). A
//! value the CPU cannot run, or an unknown value, is refused by [`init`] with an error naming
//! the variable; [`active`] (which cannot fail) logs the same error and uses the detected path.
//!
//! **Equality.** Every kernel is written once, as element-wise arithmetic whose operation order
//! does not depend on the vector width (no reassociated sums, no fused multiply-add: Rust never
//! contracts `a * b + c`), so every path gives bit-identical results; the kernels' tests check
//! it on random inputs, odd lengths and edge values for each path this CPU supports.
//!
//! FFTs are rustfft's, which makes its own run-time choice (AVX + FMA where present; it has no
//! AVX-512 code), so the override does not change them.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a path.
pub const ENV_VAR: &str = "TWINLOOP_SIMD";

/// An instruction-set path of the hot kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// x86-64 baseline (SSE2) or any other architecture: plain Rust.
    Scalar,
    /// AVX2 + FMA (Intel Haswell, AMD Zen 1 and later).
    Avx2,
    /// AVX-512 F/BW/VL/DQ (Intel Skylake-SP and later server parts, AMD Zen 4 and later).
    Avx512,
}

impl Isa {
    /// Every path, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name `TWINLOOP_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && Isa::Avx2.supported()
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU supports, slowest first.
    pub fn supported_paths() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// The best path this CPU supports.
    pub fn detected() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.supported())
            .unwrap_or(Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a forced path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    #[error("{ENV_VAR}={value:?} is not a path: use avx512, avx2 or scalar, or unset it")]
    Unknown { value: String },
    #[error(
        "{ENV_VAR}={value}: this CPU cannot run it (it supports {supported}); pick one of those \
         or unset it"
    )]
    Unsupported { value: String, supported: String },
}

/// The path `value` names, if this CPU can run it.
pub fn parse(value: &str) -> Result<Isa, SimdError> {
    let isa = match value.trim().to_ascii_lowercase().as_str() {
        "avx512" | "avx-512" => Isa::Avx512,
        "avx2" => Isa::Avx2,
        "scalar" | "none" | "baseline" => Isa::Scalar,
        _ => {
            return Err(SimdError::Unknown {
                value: value.into(),
            });
        }
    };
    if !isa.supported() {
        return Err(SimdError::Unsupported {
            value: value.into(),
            supported: Isa::supported_paths()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(isa)
}

static ACTIVE: OnceLock<Isa> = OnceLock::new();

/// The path `TWINLOOP_SIMD` asks for (checked), or the detected one when it is unset.
fn from_env() -> Result<(Isa, bool), SimdError> {
    match std::env::var(ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => parse(&v).map(|i| (i, true)),
        _ => Ok((Isa::detected(), false)),
    }
}

fn choose() -> Isa {
    let (isa, forced) = from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "ignoring {ENV_VAR}");
        (Isa::detected(), false)
    });
    tracing::info!(
        path = isa.name(),
        forced,
        detected = Isa::detected().name(),
        "imaging kernels: instruction set chosen"
    );
    isa
}

/// Chooses the path now (from `TWINLOOP_SIMD`, else the CPU), refusing a bad override. Call at
/// start-up so a typo stops the program with a clear error instead of a logged fallback; later
/// calls return the path already chosen.
pub fn init() -> Result<Isa, SimdError> {
    if let Some(&isa) = ACTIVE.get() {
        return Ok(isa);
    }
    from_env()?;
    Ok(active())
}

/// The path the kernels use (chosen and logged on first use).
#[inline]
pub fn active() -> Isa {
    *ACTIVE.get_or_init(choose)
}

/// A path this CPU is known to run: made only by checking, so running a kernel compiled for
/// it is sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimdPath(Isa);

impl SimdPath {
    /// `isa` if this CPU supports it.
    pub fn new(isa: Isa) -> Option<SimdPath> {
        isa.supported().then_some(SimdPath(isa))
    }

    /// The process's path ([`active`]).
    #[inline]
    pub fn active() -> SimdPath {
        // `choose` only returns supported paths.
        SimdPath(active())
    }

    /// Every path this CPU supports, slowest first (for tests that compare them).
    pub fn all_supported() -> Vec<SimdPath> {
        Isa::supported_paths().into_iter().map(SimdPath).collect()
    }

    pub fn isa(self) -> Isa {
        self.0
    }

    /// Runs `f` compiled for this path: `f` is inlined into a function built with the path's
    /// target features, so the compiler vectorises it for that instruction set. Mark the
    /// closure `#[inline(always)]` (and the kernel it calls): a closure called from three
    /// trampolines is otherwise often left out of line, compiled for the baseline.
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `SimdPath` holding `Avx512` is only made after checking the CPU has it.
            Isa::Avx512 => unsafe { run_avx512(f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 + FMA.
            Isa::Avx2 => unsafe { run_avx2(f) },
            _ => f(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_or_unsupported_values_are_named() {
        for isa in Isa::supported_paths() {
            assert_eq!(parse(isa.name()), Ok(isa));
        }
        assert_eq!(parse(" AVX2 ").is_ok(), Isa::Avx2.supported());
        let e = parse("sse9").unwrap_err();
        assert!(e.to_string().contains("TWINLOOP_SIMD"), "{e}");
        assert!(matches!(e, SimdError::Unknown { .. }));
        for isa in Isa::ALL.into_iter().filter(|i| !i.supported()) {
            let e = parse(isa.name()).unwrap_err();
            assert!(matches!(e, SimdError::Unsupported { .. }), "{e}");
        }
    }

    #[test]
    fn detected_is_supported_and_scalar_always_is() {
        assert!(Isa::detected().supported());
        assert!(Isa::Scalar.supported());
        assert_eq!(Isa::supported_paths()[0], Isa::Scalar);
    }
}
