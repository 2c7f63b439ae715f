//! Per-pixel kernels shared between the imaging stages, compiled for each instruction-set path
//! ([`crate::simd`]) and bit-identical on all of them.

use crate::simd::SimdPath;

/// Just below 1/2: `trunc(v + HALF_DOWN)` rounds a non-negative `v` half away from zero exactly
/// as `f32::round` does (at `v = k + 1/2` the sum rounds up to `k + 1`; just below it, it stays
/// under). The same trick LLVM uses to lower `round` where the CPU has no such instruction.
const HALF_DOWN: f32 = 0.499_999_97;

/// `dst[i] = round(src[i])` clamped to `0..=65535` (NaN gives 0), as
/// `src.round().clamp(0.0, 65535.0) as u16` does, on `simd`'s instruction set.
///
/// Written so that it vectorises (the baseline's `f32::round` is a libm call per pixel):
/// clamping first and rounding after gives the same integer for every input, since the bounds
/// are integers.
pub fn round_to_u16(src: &[f32], dst: &mut [u16], simd: SimdPath) {
    assert_eq!(src.len(), dst.len(), "round_to_u16: lengths differ");
    simd.run(
        #[inline(always)]
        || round_to_u16_body(src, dst),
    )
}

// `max`/`min`, not `clamp`: `clamp` keeps a NaN, which `max` maps to 0 as the old `as u16` did.
#[allow(clippy::manual_clamp)]
#[inline(always)]
fn round_to_u16_body(src: &[f32], dst: &mut [u16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        // `max` drops a NaN (to 0), so `v` is finite and in [0, 65535].
        let v = s.max(0.0).min(65535.0) + HALF_DOWN;
        // SAFETY: `v` is finite and in [0, 65536), so the truncation fits an i32.
        *d = unsafe { v.to_int_unchecked::<i32>() } as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the pipeline did before this kernel, the definition it must keep.
    fn reference(s: f32) -> u16 {
        s.round().clamp(0.0, 65535.0) as u16
    }

    #[test]
    fn rounding_equals_f32_round_on_every_path_at_halves_edges_and_random_values() {
        let mut values: Vec<f32> = Vec::new();
        for k in 0..=65536u32 {
            let k = k as f32;
            // Every half-integer and its neighbours one ulp either side.
            let h = k + 0.5;
            values.extend([
                k,
                h,
                f32::from_bits(h.to_bits() - 1),
                f32::from_bits(h.to_bits() + 1),
            ]);
        }
        values.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            -0.5,
            -0.49999997,
            0.49999997,
            -1e30,
            1e30,
            65535.49,
            65535.5,
            65536.0,
            f32::MIN_POSITIVE,
            f32::EPSILON,
        ]);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push(f32::from_bits(state as u32));
            values.push((state >> 40) as f32 / 128.0 - 1000.0);
        }
        let want: Vec<u16> = values.iter().map(|&s| reference(s)).collect();
        for path in SimdPath::all_supported() {
            // Odd lengths and offsets: the vector loops' tails.
            for cut in [0usize, 1, 7, 31] {
                let src = &values[cut..values.len() - cut];
                let mut got = vec![1u16; src.len()];
                round_to_u16(src, &mut got, path);
                for (i, (&g, &w)) in got.iter().zip(&want[cut..]).enumerate() {
                    assert_eq!(g, w, "{:?}: round({}) = {g}, want {w}", path.isa(), src[i]);
                }
            }
        }
    }
}
