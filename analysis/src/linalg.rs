//! Small dense linear algebra for the fits: Cholesky factorisation of symmetric positive definite
//! matrices (row-major `n × n` slices), solves, inverses. The designs here have at most a few
//! hundred columns, so plain loops are enough and keep the crate free of a BLAS dependency.
#![expect(
    clippy::needless_range_loop,
    reason = "matrix code reads as its index formulas"
)]

/// Lower-triangular Cholesky factor `L` of a symmetric positive definite `A = L Lᵀ`.
#[derive(Debug, Clone)]
pub struct Cholesky {
    n: usize,
    l: Vec<f64>,
}

impl Cholesky {
    /// Factorises the `n × n` row-major `a`; `None` when `a` is not positive definite.
    pub fn new(a: &[f64], n: usize) -> Option<Self> {
        debug_assert_eq!(a.len(), n * n);
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= l[i * n + k] * l[j * n + k];
                }
                if i == j {
                    if s <= 0.0 || !s.is_finite() {
                        return None;
                    }
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
        Some(Self { n, l })
    }

    /// Solves `A x = b`.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let n = self.n;
        let mut y = b.to_vec();
        for i in 0..n {
            let mut s = y[i];
            for k in 0..i {
                s -= self.l[i * n + k] * y[k];
            }
            y[i] = s / self.l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = y[i];
            for k in i + 1..n {
                s -= self.l[k * n + i] * y[k];
            }
            y[i] = s / self.l[i * n + i];
        }
        y
    }

    /// `A⁻¹`, row-major.
    pub fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        let mut inv = vec![0.0; n * n];
        let mut e = vec![0.0; n];
        for j in 0..n {
            e.iter_mut().for_each(|v| *v = 0.0);
            e[j] = 1.0;
            let col = self.solve(&e);
            for i in 0..n {
                inv[i * n + j] = col[i];
            }
        }
        inv
    }
}

/// Factorises `a + λ I` with the smallest λ in `0, 1e-10·s, 1e-8·s, …` (s the mean diagonal)
/// that makes it positive definite: a Levenberg-style safeguard for Newton steps.
pub fn cholesky_damped(a: &[f64], n: usize) -> Option<(Cholesky, f64)> {
    if let Some(c) = Cholesky::new(a, n) {
        return Some((c, 0.0));
    }
    let scale = (0..n).map(|i| a[i * n + i].abs()).sum::<f64>() / n.max(1) as f64;
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let mut lambda = 1e-10 * scale;
    let mut m = a.to_vec();
    while lambda < 1e6 * scale {
        for i in 0..n {
            m[i * n + i] = a[i * n + i] + lambda;
        }
        if let Some(c) = Cholesky::new(&m, n) {
            return Some((c, lambda));
        }
        lambda *= 100.0;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_and_inverse_round_trip() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let c = Cholesky::new(&a, 3).expect("positive definite");
        let x = c.solve(&[1.0, 2.0, 3.0]);
        for i in 0..3 {
            let ax: f64 = (0..3).map(|j| a[i * 3 + j] * x[j]).sum();
            assert!((ax - [1.0, 2.0, 3.0][i]).abs() < 1e-12);
        }
        let inv = c.inverse();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn indefinite_is_refused_and_damping_rescues_it() {
        // Eigenvalues 2.5 and −0.5.
        let a = [1.0, 1.5, 1.5, 1.0];
        assert!(Cholesky::new(&a, 2).is_none());
        let (_, lambda) = cholesky_damped(&a, 2).expect("damped");
        assert!(
            lambda > 0.5,
            "needs λ above the negative eigenvalue's size, got {lambda}"
        );
    }
}
