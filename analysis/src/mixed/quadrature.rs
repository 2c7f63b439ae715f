//! Gauss–Hermite nodes and weights for ∫ f(z) e^{-z²} dz. Roots of the orthonormal Hermite
//! polynomial are bracketed on a fine grid (they lie within ±√(2n+1) and are at least
//! ~π/√(2n+1) apart) and polished by Newton: slower than Golub–Welsch but needs no eigensolver,
//! and it runs once per fit.

/// `(nodes, weights)` of the n-point rule, nodes ascending; n in 1..=100.
pub fn gauss_hermite(n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(
        (1..=100).contains(&n),
        "Gauss–Hermite order {n} out of 1..=100"
    );
    let bound = ((2 * n + 1) as f64).sqrt();
    let steps = 4000 * n;
    let mut nodes = Vec::with_capacity(n);
    let mut prev_z = -bound;
    let mut prev_p = hermite(n, prev_z).0;
    for s in 1..=steps {
        let z = -bound + 2.0 * bound * s as f64 / steps as f64;
        let p = hermite(n, z).0;
        // A grid point exactly on a root (z = 0 for odd n) is counted once, there.
        if p == 0.0 {
            nodes.push(z);
        } else if prev_p * p < 0.0 {
            nodes.push(polish(n, prev_z, z));
        }
        prev_z = z;
        prev_p = p;
    }
    debug_assert_eq!(nodes.len(), n, "found {} of {n} roots", nodes.len());
    let weights = nodes
        .iter()
        .map(|&z| 2.0 / hermite(n, z).1.powi(2))
        .collect();
    (nodes, weights)
}

/// Orthonormal Hermite polynomial p_n(z) (w.r.t. e^{-z²}) and its derivative.
fn hermite(n: usize, z: f64) -> (f64, f64) {
    let mut p0 = std::f64::consts::PI.powf(-0.25);
    let mut pm1 = 0.0;
    for j in 0..n {
        let j = j as f64;
        let p1 = z * (2.0 / (j + 1.0)).sqrt() * p0 - (j / (j + 1.0)).sqrt() * pm1;
        pm1 = p0;
        p0 = p1;
    }
    (p0, (2.0 * n as f64).sqrt() * pm1)
}

/// A root inside [lo, hi] where p_n changes sign: bisection steps until Newton is safe.
fn polish(n: usize, mut lo: f64, mut hi: f64) -> f64 {
    let f_lo = hermite(n, lo).0;
    let mut z = 0.5 * (lo + hi);
    for _ in 0..100 {
        let (p, dp) = hermite(n, z);
        if p.signum() == f_lo.signum() {
            lo = z
        } else {
            hi = z
        }
        let newton = z - p / dp;
        let next = if newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - z).abs() < 1e-15 * (1.0 + z.abs()) {
            return next;
        }
        z = next;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_polynomials_exactly() {
        // ∫ z^{2k} e^{-z²} = Γ(k + 1/2); exact for degree ≤ 2n − 1.
        let sqrt_pi = std::f64::consts::PI.sqrt();
        for n in [1, 2, 5, 12, 30] {
            let (z, w) = gauss_hermite(n);
            assert_eq!(z.len(), n);
            let moment = |k: i32| z.iter().zip(&w).map(|(z, w)| w * z.powi(k)).sum::<f64>();
            assert!((moment(0) - sqrt_pi).abs() < 1e-12, "n={n}");
            if n >= 3 {
                assert!((moment(4) - 0.75 * sqrt_pi).abs() < 1e-11, "n={n}");
                assert!(moment(3).abs() < 1e-11);
            }
        }
    }
}
