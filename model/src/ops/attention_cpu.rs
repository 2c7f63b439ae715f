//! CPU fast path of the CvtLstm's grouped self-attention (forward only): per image and group,
//! L2-normalise queries and keys over channels, scale the queries, softmax the query-key
//! logits over keys, and weight the values — two `gemm` calls on strided views and one
//! in-place softmax, with no transposed copies.
//!
//! Why: through candle this was two thirds of the recurrent cell's time on fnn's released
//! network (8 groups x 384 positions: logits of 1.2 M elements per frame, transposed and made
//! contiguous twice, softmax with scalar `exp`). The candle path in `core.rs` stays the
//! reference (and the path that trains); `attention_fast_path_matches_candle` checks they agree.

use super::conv_cpu::{SharedMut, split_over_pool};
use super::elementwise::exp_approx;

/// Shape of one attention call: `[N, G, C, P]` queries, keys and values.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub groups: usize,
    /// Channels per group.
    pub channels: usize,
    /// Positions (h x w).
    pub positions: usize,
}

/// `a[n, g, c, q] = sum_k v[n, g, c, k] softmax_k(<q̂[:, q] * s[g], k̂[:, k]>)`, with `q̂`, `k̂`
/// unit-norm over channels and `s` the per-group, per-channel `scales` `[G, C]`. All arrays
/// row-major `[N, G, C, P]`; returns `a` in the same layout.
pub fn attention(
    shape: AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scales: &[f32],
) -> Vec<f32> {
    let AttentionShape {
        batch,
        groups,
        channels: c,
        positions: p,
    } = shape;
    let items = batch * groups;
    let block = c * p;
    let mut out = vec![0f32; items * block];
    let dst = SharedMut(out.as_mut_ptr());
    split_over_pool(items, |tid, threads| {
        let mut qn = vec![0f32; block];
        let mut kn = vec![0f32; block];
        let mut logits = vec![0f32; p * p];
        let mut norms = vec![0f32; p];
        for item in (tid..items).step_by(threads) {
            let g = item % groups;
            let range = item * block..(item + 1) * block;
            normalise(
                &q[range.clone()],
                c,
                p,
                Some(&scales[g * c..(g + 1) * c]),
                &mut norms,
                &mut qn,
            );
            normalise(&k[range.clone()], c, p, None, &mut norms, &mut kn);
            // logits[i, j] = sum_c qn[c, i] kn[c, j]: lhs is qn transposed (a strided view).
            // SAFETY: every view stays inside its buffer (dimensions and strides as stated).
            unsafe {
                gemm::gemm(
                    p,
                    p,
                    c,
                    logits.as_mut_ptr(),
                    1,
                    p as isize,
                    false,
                    qn.as_ptr(),
                    p as isize,
                    1,
                    kn.as_ptr(),
                    1,
                    p as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
            for row in logits.chunks_exact_mut(p) {
                softmax_in_place(row);
            }
            // a[c, i] = sum_j v[c, j] logits[i, j]: rhs is the logits transposed.
            // SAFETY: as above; `item`'s output block belongs to this thread alone.
            unsafe {
                gemm::gemm(
                    c,
                    p,
                    p,
                    dst.ptr().add(item * block),
                    1,
                    p as isize,
                    false,
                    v[range].as_ptr(),
                    1,
                    p as isize,
                    logits.as_ptr(),
                    p as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
        }
    });
    out
}

/// `out[c, i] = x[c, i] / |x[:, i]| * scale[c]` for `x` `[C, P]` (no epsilon, as fnn).
fn normalise(
    x: &[f32],
    c: usize,
    p: usize,
    scale: Option<&[f32]>,
    norms: &mut [f32],
    out: &mut [f32],
) {
    norms.fill(0.0);
    for row in x.chunks_exact(p) {
        for (n, &v) in norms.iter_mut().zip(row) {
            *n += v * v;
        }
    }
    for n in norms.iter_mut() {
        *n = 1.0 / n.sqrt();
    }
    for ch in 0..c {
        let s = scale.map_or(1.0, |s| s[ch]);
        let (src, dst) = (&x[ch * p..(ch + 1) * p], &mut out[ch * p..(ch + 1) * p]);
        for ((d, &v), &n) in dst.iter_mut().zip(src).zip(norms.iter()) {
            *d = v * n * s;
        }
    }
}

const LANES: usize = 16;

/// Softmax of one row in place.
fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { softmax_avx2(row) };
    }
    softmax_generic(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32]) {
    softmax_generic(row)
}

/// Lane-wise reductions and a polynomial `exp`, written so the compiler vectorises them.
#[inline(always)]
fn softmax_generic(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for ch in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(ch) {
            *m = m.max(v);
        }
    }
    let max = chunks.remainder().iter().fold(
        lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |a, &b| a.max(b),
    );
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for ch in &mut chunks {
        for (s, v) in sums.iter_mut().zip(ch.iter_mut()) {
            *v = exp_approx(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp_approx(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}
