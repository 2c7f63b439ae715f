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

/// One unit's inputs, rounded to f32 once per unit.
pub(crate) struct UnitF32<'a> {
    /// `L` with `Σ = L Lᵀ`, row-major `d × d`, zero above the diagonal.
    pub l: &'a [f32],
    /// `μ`.
    pub mean: &'a [f32],
    /// `½ ln dt`: `√(λ dt) = exp(½ρ + ½ ln dt)`, one `exp` per frame and no square root.
    pub half_ln_dt: f32,
}

/// What the kernel gives per lane.
pub(crate) struct LaneGains {
    /// `Π_i (1 + e_i) = det(I + ΨΨᵀ)`, f64; NaN (or not normal) where the lane failed
    /// (non-finite features, a pivot that is not positive).
    pub det: [f64; LANES],
    /// `max_t (ΨΨᵀ)_tt`: above [`SAFE_PEAK`] the caller recomputes the lane in f64.
    pub peak: Lane,
}

/// [`LaneGains`] for the block `x` (`frames × d` lanes, row-major; `frames ≤ MAX_FRAMES`).
pub(crate) fn info_gain_lanes(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { kernel_avx512(unit, x, frames, scratch, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { kernel_avx2(unit, x, frames, scratch, out) };
        }
    }
    kernel::<false>(unit, x, frames, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn kernel_avx512(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    kernel::<true>(unit, x, frames, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(
    unit: &UnitF32<'_>,
    x: &[Lane],
    frames: usize,
    scratch: &mut Scratch,
    out: &mut LaneGains,
) {
    kernel::<true>(unit, x, frames, scratch, out)
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

#[inline(always)]
fn kernel<const FMA: bool>(
    unit: &UnitF32<'_>,
    x: &[Lane],
    t_len: usize,
    s: &mut Scratch,
    out: &mut LaneGains,
) {
    let d = unit.mean.len();
    let zero = [0.0f32; LANES];
    s.w.resize(t_len, zero);
    s.psi.resize(t_len * d, zero);
    s.g.resize(t_len * t_len, zero);
    s.inv.resize(t_len, zero);
    s.e.resize(t_len, zero);
    let max = MAX_LOG_RATE as f32;
    // √(λ_t dt) with λ_t = exp(clamp(μ·x_t)).
    for (xt, w) in x.chunks_exact(d).zip(s.w.iter_mut()) {
        let mut rho = zero;
        for (xk, &m) in xt.iter().zip(unit.mean) {
            lane_madd::<FMA>(&mut rho, xk, m);
        }
        for (wi, r) in w.iter_mut().zip(rho) {
            *wi = exp_approx(0.5 * r.clamp(-max, max) + unit.half_ln_dt);
        }
    }
    // ψ_t = w_t · Lᵀx_t: column j sums x_tk L_kj over k ≥ j (L is zero above its diagonal, so a
    // tile of COLS columns starts at its first column's diagonal).
    for ((xt, pt), w) in x
        .chunks_exact(d)
        .zip(s.psi.chunks_exact_mut(d))
        .zip(&s.w)
    {
        for j0 in (0..d).step_by(COLS) {
            let cols = COLS.min(d - j0);
            let mut acc = [zero; COLS];
            for (k, xk) in xt.iter().enumerate().skip(j0) {
                let lk = &unit.l[k * d + j0..][..cols];
                for (a, &lkj) in acc.iter_mut().zip(lk) {
                    lane_madd::<FMA>(a, xk, lkj);
                }
            }
            for (p, a) in pt[j0..j0 + cols].iter_mut().zip(&acc) {
                for ((pi, &ai), &wi) in p.iter_mut().zip(a).zip(w) {
                    *pi = ai * wi;
                }
            }
        }
    }
    // Lower triangle of ΨΨᵀ, and its largest diagonal entry.
    let mut peak = zero;
    for t in 0..t_len {
        let pt = &s.psi[t * d..(t + 1) * d];
        for u in 0..=t {
            let pu = &s.psi[u * d..(u + 1) * d];
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
