//! Custom ops candle lacks or runs slowly, CPU first (the reference); other devices
//! round-trip through the CPU until a native kernel lands.
//!
//! - [`grid_sample`]: bilinear sampling with its backward (perspective and readout), and the
//!   fused readout forward.
//! - [`conv_cpu`], [`attention_cpu`], [`elementwise`]: forward-only CPU fast paths for inference, taken when
//!   nothing needs a gradient; candle's ops stay the reference they are tested against.
//! - [`conv_grad`]: the same im2col/gemm convolution with a gemm backward, for the CPU graphs
//!   that need gradients (MEIs, the refit).

pub mod attention_cpu;
pub mod conv_cpu;
pub mod conv_grad;
pub mod elementwise;
pub mod grid_sample;

pub use grid_sample::{Padding, grid_sample};

use candle_core::{DType, Storage, Tensor};

use crate::error::{CandleContext, ModelError, Result};

/// The contiguous f32 data of a custom op's CPU operand (`op` names it in the error).
pub(crate) fn op_operand_f32<'a>(
    op: &str,
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        candle_core::CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

/// The contiguous f32 data of a CPU tensor's storage (a fast path's input).
pub(crate) fn cpu_slice<'a>(
    guard: &'a (candle_core::StorageRef<'_>, &candle_core::Layout),
    what: &str,
) -> Result<&'a [f32]> {
    let (storage, layout) = guard;
    let Storage::Cpu(cpu) = &**storage else {
        return Err(ModelError::Input {
            input: what.into(),
            reason: "a CPU fast path got a non-CPU tensor".into(),
        });
    };
    let data = cpu.as_slice::<f32>().ctx(what)?;
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| ModelError::Input {
            input: what.into(),
            reason: "a CPU fast path got a non-contiguous tensor".into(),
        })?;
    Ok(&data[a..b])
}

/// Whether the forward-only CPU fast paths may run on these tensors: all f32 on the CPU and none
/// tracking a gradient (else the candle ops, the reference, run).
pub(crate) fn fast_path(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// Runs `f` on the contiguous f32 data of CPU tensors (copied only where not contiguous).
pub(crate) fn with_cpu_slices<const N: usize, R>(
    tensors: [&Tensor; N],
    what: &str,
    f: impl FnOnce([&[f32]; N]) -> R,
) -> Result<R> {
    let parts = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()
        .ctx(what)?;
    let guards: Vec<_> = parts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = [&[][..]; N];
    for (slot, guard) in slices.iter_mut().zip(&guards) {
        *slot = cpu_slice(guard, what)?;
    }
    Ok(f(slices))
}
