//! The information gain of [`LANES`] candidates at once for one unit, one SIMD lane per
//! candidate, in f32: the kernel behind [`super::batched`].
//!
//! Why lanes across candidates: at rig scale (`d ≈ 19` features, `T ≈ 10` frames per clip) the
//! per-pair matrices are too small for the reference's 4 × 4 register blocks to pay, and a unit
//! is scored against hundreds of candidates with the same `μ` and `L`. Laid side by side, every
//! scalar step of the `T × T` form (rates, whitening, Gram matrix, Cholesky) is one vector
//! operation over 16 candidates, with no shuffles and no horizontal sums; `μ` and `L` are
//! broadcast scalars.
//!
//! The maths is the reference's `T × T` form (`criterion.rs`): `ψ_t = √(λ_t dt) · Lᵀx_t`,
//! gain `½ log det(I_T + ΨΨᵀ)`. A frame of zeros adds a zero row to `Ψ` and leaves the
//! determinant unchanged, so clips shorter than the block's `T` are zero-padded exactly.
//!
//! Precision: features arrive in f32; `L` and `μ` are rounded to f32 and all arithmetic is f32
//! except the last step. The Cholesky pivots of `I + ΨΨᵀ` are kept as `e_i = pivot_i − 1`, never
//! as `1 + e_i`, so that a small gain (a pivot near 1) keeps its relative precision, and
//! `Π (1 + e_i)` is formed in f64. The tests bound the resulting error against the f64
//! reference (`batched.rs`).

use super::MAX_LOG_RATE;
use crate::ops::elementwise::exp_approx;

/// Candidates per kernel call: one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;

/// One value per candidate of a block.
pub(crate) type Lane = [f32; LANES];

/// Largest `λ_t dt · x_tᵀΣx_t` (a diagonal entry of `ΨΨᵀ`) trusted to f32. Rounding in `Ψ` is
/// relative to its rows, so a pivot that cancels (frames nearly alike) carries an absolute error
/// of about `T · peak · 2⁻²⁴`; below this peak that is under 1e-3 nats per pivot even for `T = 96`
/// and far below at rig scale (peaks of 0.1–10). Lanes above it are recomputed in f64.
pub(crate) const SAFE_PEAK: f32 = 1e3;

/// Longest clip (in frames) the lane kernel takes. Its scratch grows as `T²`; past `d` frames
/// the reference's `d × d` form is the better algorithm anyway; and below [`SAFE_PEAK`] every
/// pivot is at most `1 + SAFE_PEAK`, so `Π (1 + e_i) ≤ 1001^96 < 1e289` cannot overflow.
pub(crate) const MAX_FRAMES: usize = 96;

/// Per-thread scratch of [`info_gain_lanes`], grown on demand.
#[derive(Default)]
pub(crate) struct Scratch {
    /// `√(λ_t dt)` per frame.
    w: Vec<Lane>,
    /// Whitened rows `Ψ`, `T × d`.
    psi: Vec<Lane>,
    /// Lower triangle of `ΨΨᵀ`, then its Cholesky factor (row-major `T × T`).
    g: Vec<Lane>,
    /// `1 / √(1 + e_i)`.
    inv: Vec<Lane>,
    /// Pivots minus one, `e_i`.
    e: Vec<Lane>,
}

/// Row stride of [`UnitF32::l`]: `d` rounded up to whole whitening tiles, so that a tile's
/// columns are a fixed-size array and its accumulators stay in registers.
pub(crate) fn padded(d: usize) -> usize {
    d.next_multiple_of(COLS)
}

/// One unit's inputs, rounded to f32 once per unit.
///
/// A block may carry only the leading `cols` of the `d` features: the rest (behaviour
/// covariates and the bias, constant over a clip) enter as per-unit offsets, `μ·x_t =
/// rate_offset + Σ_{k<cols} μ_k x_tk` and `(Lᵀx_t)_j = psi_offset_j + Σ_{j≤k<cols} L_kj x_tk`,
/// computed once per unit instead of once per frame and candidate ([`super::cache`]). A full
/// block has `cols = d` and zero offsets, which add exactly nothing.
pub(crate) struct UnitF32<'a> {
    /// `L` with `Σ = L Lᵀ`, row-major `d × padded(d)`, zero above the diagonal and in the
    /// padding columns.
    pub l: &'a [f32],
    /// `μ`.
    pub mean: &'a [f32],
    /// `½ ln dt`: `√(λ dt) = exp(½ρ + ½ ln dt)`, one `exp` per frame and no square root.
    pub half_ln_dt: f32,
    /// Feature columns present in the block (`≤ d`).
    pub cols: usize,
    /// The constant columns' share of `μ·x_t`.
    pub rate_offset: f32,
    /// The constant columns' share of `Lᵀx_t`, `padded(d)` long.
    pub psi_offset: &'a [f32],
}

/// What the kernel gives per lane.
pub(crate) struct LaneGains {
    /// `Π_i (1 + e_i) = det(I + ΨΨᵀ)`, f64; NaN (or not normal) where the lane failed
    /// (non-finite features, a pivot that is not positive).
    pub det: [f64; LANES],
    /// `max_t (ΨΨᵀ)_tt`: above [`SAFE_PEAK`] the caller recomputes the lane in f64.
    pub peak: Lane,
}

/// [`LaneGains`] for the block `x` (`frames × unit.cols` lanes, row-major; `frames ≤
/// MAX_FRAMES`).
/// `mask` (one lane per frame, 1 or 0), where given, zeroes the frames past each lane's clip:
/// with offsets a zero-padded frame is not a zero row of `Ψ`, so padding must be masked.
pub(crate) fn info_gain_lanes(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    mask: Option<&[Lane]>,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { kernel_avx512(unit, x, frames, mask, scratch, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { kernel_avx2(unit, x, frames, mask, scratch, out) };
        }
    }
    kernel::<false, false>(unit, x, frames, mask, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn kernel_avx512(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    mask: Option<&[Lane]>,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    kernel::<true, true>(unit, x, frames, mask, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    mask: Option<&[Lane]>,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    kernel::<true, false>(unit, x, frames, mask, scratch, out)
}

/// `a·b + c`, fused where the caller's target has FMA (a library call otherwise, hence the
/// switch).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `acc[i] += a[i] · b` for every lane.
#[inline(always)]
fn lane_madd<const FMA: bool>(acc: &mut Lane, a: &Lane, b: f32) {
    for (c, &v) in acc.iter_mut().zip(a) {
        *c = madd::<FMA>(v, b, *c);
    }
}

/// `acc[i] += a[i] · b[i]` for every lane.
#[inline(always)]
fn lane_madd2<const FMA: bool>(acc: &mut Lane, a: &Lane, b: &Lane) {
    for ((c, &v), &u) in acc.iter_mut().zip(a).zip(b) {
        *c = madd::<FMA>(v, u, *c);
    }
}

/// Whitening columns computed together, so each loaded feature lane feeds this many FMAs.
const COLS: usize = 4;

/// `ψ_t = w_t · Lᵀx_t`, `L` (`d × dp`, zero above the diagonal) in tiles of [`COLS`] columns:
/// column `j` sums `x_tk L_kj` over `k ≥ j`, so a tile starts at its first column's diagonal.
#[inline(always)]
fn whiten<const FMA: bool>(
    l: &[f32],
    dp: usize,
    x: &[Lane],
    w: &[Lane],
    cols: usize,
    offset: &[f32],
    psi: &mut [Lane],
) {
    for ((xt, pt), w) in x.chunks_exact(cols).zip(psi.chunks_exact_mut(dp)).zip(w) {
        for (j0, tile) in (0..dp).step_by(COLS).zip(pt.chunks_exact_mut(COLS)) {
            for (q, p) in tile.iter_mut().enumerate() {
                let mut acc = [offset[j0 + q]; LANES];
                for (k, xk) in xt.iter().enumerate().skip(j0) {
                    lane_madd::<FMA>(&mut acc, xk, l[k * dp + j0 + q]);
                }
                for ((pi, &ai), &wi) in p.iter_mut().zip(&acc).zip(w) {
                    *pi = ai * wi;
                }
            }
        }
    }
}

/// [`whiten`] with AVX-512 intrinsics: a tile's four accumulators held in registers (the
/// auto-vectoriser spills or scalarises them).
///
/// # Safety
/// The CPU must support AVX-512F (the caller is compiled for it and inlines this).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn whiten_zmm(
    l: &[f32],
    dp: usize,
    x: &[Lane],
    w: &[Lane],
    cols: usize,
    offset: &[f32],
    psi: &mut [Lane],
) {
    use std::arch::x86_64::{
        _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    const _: () = assert!(COLS == 4 && LANES == 16);
    for ((xt, pt), wt) in x.chunks_exact(cols).zip(psi.chunks_exact_mut(dp)).zip(w) {
        // SAFETY (all intrinsics below): AVX-512F per the contract; every pointer is from a
        // `Lane` (16 f32) or a 4-entry slice of `l`, in bounds.
        unsafe {
            let wv = _mm512_loadu_ps(wt.as_ptr());
            for (j0, tile) in (0..dp).step_by(COLS).zip(pt.chunks_exact_mut(COLS)) {
                let o = &offset[j0..][..COLS];
                let mut acc = [
                    _mm512_set1_ps(o[0]),
                    _mm512_set1_ps(o[1]),
                    _mm512_set1_ps(o[2]),
                    _mm512_set1_ps(o[3]),
                ];
                for (k, xk) in xt.iter().enumerate().skip(j0) {
                    let xv = _mm512_loadu_ps(xk.as_ptr());
                    let lk = &l[k * dp + j0..][..COLS];
                    acc[0] = _mm512_fmadd_ps(xv, _mm512_set1_ps(lk[0]), acc[0]);
                    acc[1] = _mm512_fmadd_ps(xv, _mm512_set1_ps(lk[1]), acc[1]);
                    acc[2] = _mm512_fmadd_ps(xv, _mm512_set1_ps(lk[2]), acc[2]);
                    acc[3] = _mm512_fmadd_ps(xv, _mm512_set1_ps(lk[3]), acc[3]);
                }
                for (p, a) in tile.iter_mut().zip(acc) {
                    _mm512_storeu_ps(p.as_mut_ptr(), _mm512_mul_ps(a, wv));
                }
            }
        }
    }
}

#[inline(always)]
fn kernel<const FMA: bool, const ZMM: bool>(
    unit: &UnitF32<'_>,
    x: &[Lane],
    t_len: usize,
    mask: Option<&[Lane]>,
    s: &mut Scratch,
    out: &mut LaneGains,
) {
    let (d, cols) = (unit.mean.len(), unit.cols);
    let dp = padded(d);
    let zero = [0.0f32; LANES];
    s.w.resize(t_len, zero);
    s.psi.resize(t_len * dp, zero);
    s.g.resize(t_len * t_len, zero);
    s.inv.resize(t_len, zero);
    s.e.resize(t_len, zero);
    let max = MAX_LOG_RATE as f32;
    // √(λ_t dt) with λ_t = exp(clamp(μ·x_t)).
    for (xt, w) in x.chunks_exact(cols).zip(s.w.iter_mut()) {
        let mut rho = [unit.rate_offset; LANES];
        for (xk, &m) in xt.iter().zip(unit.mean) {
            lane_madd::<FMA>(&mut rho, xk, m);
        }
        for (wi, r) in w.iter_mut().zip(rho) {
            *wi = exp_approx(0.5 * r.clamp(-max, max) + unit.half_ln_dt);
        }
    }
    if let Some(mask) = mask {
        // Finite weights times 0: the masked frames' rows of Ψ are exactly 0.
        for (w, m) in s.w.iter_mut().zip(mask) {
            for (wi, &mi) in w.iter_mut().zip(m) {
                *wi *= mi;
            }
        }
    }
    // ψ_t = w_t · Lᵀx_t (padding columns come out 0).
    #[cfg(target_arch = "x86_64")]
    if ZMM {
        // SAFETY: ZMM is only set by `kernel_avx512`, compiled for AVX-512F.
        unsafe { whiten_zmm(unit.l, dp, x, &s.w, cols, unit.psi_offset, &mut s.psi) };
    } else {
        whiten::<FMA>(unit.l, dp, x, &s.w, cols, unit.psi_offset, &mut s.psi);
    }
    #[cfg(not(target_arch = "x86_64"))]
    whiten::<FMA>(unit.l, dp, x, &s.w, cols, unit.psi_offset, &mut s.psi);
    // Lower triangle of ΨΨᵀ, and its largest diagonal entry.
    let mut peak = zero;
    for t in 0..t_len {
        let pt = &s.psi[t * dp..(t + 1) * dp];
        for u in 0..=t {
            let pu = &s.psi[u * dp..(u + 1) * dp];
            let mut acc = zero;
            for (a, b) in pt.iter().zip(pu) {
                lane_madd2::<FMA>(&mut acc, a, b);
            }
            s.g[t * t_len + u] = acc;
        }
        for (p, &g) in peak.iter_mut().zip(&s.g[t * t_len + t]) {
            // NaN-propagating max: a NaN lane must not look safe.
            *p = if g > *p || g.is_nan() { g } else { *p };
        }
    }
    out.peak = peak;
    // Cholesky of I + ΨΨᵀ, the unit diagonal left implicit: e_i = G_ii − Σ_k L_ik².
    for i in 0..t_len {
        let (done, rest) = s.g.split_at_mut(i * t_len);
        let row = &mut rest[..t_len];
        for j in 0..i {
            let rj = &done[j * t_len..j * t_len + j];
            let mut v = row[j];
            for (a, b) in row[..j].iter().zip(rj) {
                for ((vi, &ai), &bi) in v.iter_mut().zip(a).zip(b) {
                    *vi = madd::<FMA>(-ai, bi, *vi);
                }
            }
            for ((r, &vi), &q) in row[j].iter_mut().zip(&v).zip(&s.inv[j]) {
                *r = vi * q;
            }
        }
        let mut e = row[i];
        for a in &row[..i] {
            for (ei, &ai) in e.iter_mut().zip(a) {
                *ei = madd::<FMA>(-ai, ai, *ei);
            }
        }
        for ((q, ei), &ev) in s.inv[i].iter_mut().zip(s.e[i].iter_mut()).zip(&e) {
            *ei = ev;
            // NaN when the pivot is not positive: the lane then fails, as the reference does.
            *q = 1.0 / (1.0 + ev).sqrt();
        }
    }
    // Π (1 + e_i) in f64: exact products of f32-rounded factors to 1e-16 relative.
    let mut prod = [1.0f64; LANES];
    for (e, inv) in s.e.iter().zip(&s.inv) {
        for ((p, &ei), &q) in prod.iter_mut().zip(e).zip(inv) {
            // A NaN inverse (failed pivot) poisons the lane.
            *p *= (1.0 + f64::from(ei)) + 0.0 * f64::from(q);
        }
    }
    out.det = prod;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The portable kernel, the AVX2 one and the AVX-512 one (those this CPU has) agree: the
    /// dispatcher's choice is not what the scores depend on. Every path is compared with the
    /// portable one on random blocks, `d` from 1 to 13 (tiles and padding), with a NaN lane.
    #[test]
    fn every_instruction_set_gives_the_same_gains() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for d in 1..14 {
            let (t_len, dp) = (1 + d % 6, padded(d));
            let mut l = vec![0.0f32; d * dp];
            for k in 0..d {
                for j in 0..=k {
                    l[k * dp + j] = if j == k {
                        rng.random_range(0.3..1.0)
                    } else {
                        rng.random_range(-0.3..0.3)
                    };
                }
            }
            let mean: Vec<f32> = (0..d).map(|_| rng.random_range(-0.5..0.5)).collect();
            let mut x: Vec<Lane> = (0..t_len * d)
                .map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0)))
                .collect();
            x[0][3] = f32::NAN;
            let zeros = vec![0.0f32; dp];
            let unit = UnitF32 {
                l: &l,
                mean: &mean,
                half_ln_dt: 0.5 * 0.2f32.ln(),
                cols: d,
                rate_offset: 0.0,
                psi_offset: &zeros,
            };
            let run = |f: &dyn Fn(&mut Scratch, &mut LaneGains)| {
                let mut out = LaneGains {
                    det: [0.0; LANES],
                    peak: [0.0; LANES],
                };
                f(&mut Scratch::default(), &mut out);
                out
            };
            let portable = run(&|s, o| kernel::<false, false>(&unit, &x, t_len, None, s, o));
            let dispatched = run(&|s, o| info_gain_lanes(&unit, &x, t_len, None, s, o));
            let mut others = vec![dispatched];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features.
                others.push(run(&|s, o| unsafe {
                    kernel_avx2(&unit, &x, t_len, None, s, o)
                }));
            }
            for other in &others {
                assert!(other.det[3].is_nan() && other.peak[3].is_nan(), "d={d}");
                for lane in (0..LANES).filter(|&i| i != 3) {
                    let (a, b) = (portable.det[lane], other.det[lane]);
                    assert!(
                        a >= 1.0 && (a - b).abs() <= 1e-5 * a,
                        "d={d} lane {lane}: {a} vs {b}"
                    );
                    let (p, q) = (portable.peak[lane], other.peak[lane]);
                    assert!((p - q).abs() <= 1e-5 * p, "d={d} lane {lane}: {p} vs {q}");
                }
            }
        }
    }
}
