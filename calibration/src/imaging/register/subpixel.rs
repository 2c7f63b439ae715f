//! Subpixel peak by kriging (suite2p `utils.mat_upsample` / `kernelD`).
//!
//! The `7 x 7` correlation values around the integer peak (offsets `-3..=3`) are interpolated
//! onto a grid of step `1 / subpixel` px with a Gaussian-kernel (kriging) interpolant,
//! `sigma = 0.85` px, and the largest interpolated value gives the shift. suite2p builds a
//! `49 x 61^2` matrix for this; the kernel is a product of a y and an x Gaussian, so the matrix
//! is a Kronecker product `M (x) M` with `M = K0^-1 Kup` (`7 x n_up`), and the interpolated
//! grid is `M^T C M`: two small matrix products instead of one large one.
//!
//! One more saving: only offsets within `+-1` px of the integer peak are evaluated (suite2p
//! evaluates `+-3`). The integer peak is the largest sample, so the interpolant's maximum lies
//! within a pixel of it; the numpy peer (`tests/fixtures/register/s2p_numpy.py`) searches the
//! full `+-3` grid and agrees.

use super::phasecorr::{LPAD, PATCH_LEN};

/// Width of suite2p's kriging kernel, px.
const KRIGING_SIGMA: f64 = 0.85;

/// Precomputed kriging interpolation for one `subpixel` setting, with its scratch.
pub(crate) struct Kriging {
    subpixel: usize,
    /// Interpolated offsets per axis: `2 * subpixel + 1` (offsets `-1..=1` px).
    n_up: usize,
    /// `[7][n_up]`: weight of sample `a` (offset `a - 3`) at fine offset `u`.
    m: Vec<f32>,
    /// `[7][n_up]`: `C M`.
    cm: Vec<f32>,
}

/// Solves `a x = b` for a small symmetric positive-definite `a` (`n x n`) and `b` (`n x k`),
/// in place in `b`, by Gaussian elimination with partial pivoting (f64).
fn solve(mut a: Vec<f64>, b: &mut [f64], n: usize, k: usize) {
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if piv != col {
            for c in 0..n {
                a.swap(col * n + c, piv * n + c);
            }
            for c in 0..k {
                b.swap(col * k + c, piv * k + c);
            }
        }
        let d = a[col * n + col];
        for r in 0..n {
            if r == col {
                continue;
            }
            let f = a[r * n + col] / d;
            if f == 0.0 {
                continue;
            }
            for c in 0..n {
                a[r * n + c] -= f * a[col * n + c];
            }
            for c in 0..k {
                b[r * k + c] -= f * b[col * k + c];
            }
        }
    }
    for r in 0..n {
        let d = a[r * n + r];
        for c in 0..k {
            b[r * k + c] /= d;
        }
    }
}

impl Kriging {
    pub(crate) fn new(subpixel: u32) -> Self {
        let subpixel = subpixel.max(1) as usize;
        let side = 2 * LPAD + 1;
        let n_up = 2 * subpixel + 1;
        let g = |d: f64| (-(d * d) / (2.0 * KRIGING_SIGMA * KRIGING_SIGMA)).exp();
        let k0: Vec<f64> = (0..side * side)
            .map(|i| g((i / side) as f64 - (i % side) as f64))
            .collect();
        let mut kup = vec![0.0f64; side * n_up];
        for a in 0..side {
            for u in 0..n_up {
                let fine = (u as f64 - subpixel as f64) / subpixel as f64;
                kup[a * n_up + u] = g(a as f64 - LPAD as f64 - fine);
            }
        }
        solve(k0, &mut kup, side, n_up);
        Self {
            subpixel,
            n_up,
            m: kup.iter().map(|&v| v as f32).collect(),
            cm: vec![0.0; side * n_up],
        }
    }

    /// Subpixel offset `(dy, dx)` in px (each in `[-1, 1]`, steps of `1 / subpixel`) of the
    /// interpolated maximum of `patch` (`7 x 7`, row-major, centred on the integer peak), and
    /// the interpolated maximum. Ties go to the first in row-major order.
    pub(crate) fn refine(&mut self, patch: &[f32; PATCH_LEN]) -> (f32, f32, f32) {
        let side = 2 * LPAD + 1;
        let n_up = self.n_up;
        // cm = C M : [7][n_up]
        for a in 0..side {
            let dst = &mut self.cm[a * n_up..(a + 1) * n_up];
            dst.fill(0.0);
            for b in 0..side {
                let c = patch[a * side + b];
                for (d, &m) in dst.iter_mut().zip(&self.m[b * n_up..(b + 1) * n_up]) {
                    *d += c * m;
                }
            }
        }
        // U[u][v] = sum_a M[a][u] cm[a][v]
        let mut best = (0usize, 0usize, f32::NEG_INFINITY);
        for u in 0..n_up {
            for v in 0..n_up {
                let mut s = 0.0f32;
                for a in 0..side {
                    s += self.m[a * n_up + u] * self.cm[a * n_up + v];
                }
                if s > best.2 {
                    best = (u, v, s);
                }
            }
        }
        let sp = self.subpixel as f32;
        ((best.0 as f32 - sp) / sp, (best.1 as f32 - sp) / sp, best.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_samples_exactly_and_finds_a_gaussian_peak() {
        let mut k = Kriging::new(10);
        // A Gaussian peak of sigma 1.3 centred at (0.3, -0.4).
        let mut patch = [0.0f32; PATCH_LEN];
        let side = 2 * LPAD + 1;
        for a in 0..side {
            for b in 0..side {
                let (y, x) = (a as f32 - 3.0 - 0.3, b as f32 - 3.0 + 0.4);
                patch[a * side + b] = (-(y * y + x * x) / (2.0 * 1.3 * 1.3)).exp();
            }
        }
        let (dy, dx, v) = k.refine(&patch);
        assert!(
            (dy - 0.3).abs() <= 0.051 && (dx + 0.4).abs() <= 0.051,
            "{dy} {dx}"
        );
        assert!(v >= patch[3 * side + 3]);
        // At an integer offset the interpolant equals the sample.
        let mut delta = [0.0f32; PATCH_LEN];
        delta[3 * side + 3] = 1.0;
        let (dy, dx, v) = k.refine(&delta);
        assert_eq!((dy, dx), (0.0, 0.0));
        assert!((v - 1.0).abs() < 1e-4, "{v}");
    }
}
