//! Small dense f64 helpers for the design module: all matrices are square, row-major `n × n`
//! slices. Nothing here allocates except [`lower_inverse`]'s caller-provided output. Mostly
//! private to the crate; [`cholesky`] and [`forward_rows`] are public for the rig's
//! receptive-field regression, so the project has one Cholesky.

/// `Σ a_i b_i` over the common length, with four independent accumulators so that the loop
/// vectorises (the summation order is fixed, so results are deterministic).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `Σ x_i m_i` with `x` in f32 (features) and `m` in f64.
#[inline]
pub(crate) fn dot_f32(x: &[f32], m: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut cx = x.chunks_exact(4);
    let mut cm = m.chunks_exact(4);
    for (a, b) in (&mut cx).zip(&mut cm) {
        acc[0] += f64::from(a[0]) * b[0];
        acc[1] += f64::from(a[1]) * b[1];
        acc[2] += f64::from(a[2]) * b[2];
        acc[3] += f64::from(a[3]) * b[3];
    }
    let mut tail = 0.0;
    for (a, b) in cx.remainder().iter().zip(cm.remainder()) {
        tail += f64::from(*a) * b;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y += alpha · x`.
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Read-only strided matrix view: element `(i, k)` is `data[i·row + k·col]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f64],
    pub row: usize,
    pub col: usize,
}

impl<'a> Strided<'a> {
    /// A row-major matrix with rows of length `k`.
    pub(crate) fn rows(data: &'a [f64], k: usize) -> Self {
        Strided {
            data,
            row: k,
            col: 1,
        }
    }

    /// The transpose of a row-major matrix with rows of length `n`.
    pub(crate) fn transposed(data: &'a [f64], n: usize) -> Self {
        Strided {
            data,
            row: 1,
            col: n,
        }
    }
}

/// Structure a product can exploit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tri {
    /// Every block.
    Full,
    /// `B` is lower triangular (`B(k, j) = 0` for `k < j`): those terms are skipped.
    LowerB,
    /// `B` is upper triangular (`B(k, j) = 0` for `k > j`): those terms are skipped.
    UpperB,
    /// The product is symmetric: only the blocks that touch the lower triangle are written.
    LowerOut,
}

/// `acc[p][q] += a[p] · b[q]`.
#[inline(always)]
fn kernel4(acc: &mut [[f64; 4]; 4], a: [f64; 4], b: &[f64]) {
    let b: &[f64; 4] = b.try_into().unwrap_or(&[0.0; 4]);
    for (row, &ap) in acc.iter_mut().zip(&a) {
        for (c, &bq) in row.iter_mut().zip(b) {
            *c += ap * bq;
        }
    }
}

/// `out[i·out_row + j] = Σ_{k < kd} A(i, k) · b[k·b_row + j]` for `i < m`, `j < n`, computed in
/// 4 × 4 register blocks (the inner loop is a broadcast-multiply-add on 4 contiguous `b`).
pub(crate) fn matmul(
    a: Strided<'_>,
    b: &[f64],
    b_row: usize,
    (m, n, kd): (usize, usize, usize),
    tri: Tri,
    out: &mut [f64],
    out_row: usize,
) {
    let at = |i: usize, k: usize| a.data[i * a.row + k * a.col];
    for i0 in (0..m).step_by(4) {
        let ri = (m - i0).min(4);
        for j0 in (0..n).step_by(4) {
            if tri == Tri::LowerOut && j0 >= i0 + ri {
                break;
            }
            let rj = (n - j0).min(4);
            let k0 = if tri == Tri::LowerB { j0.min(kd) } else { 0 };
            let kd = if tri == Tri::UpperB {
                kd.min(j0 + 4)
            } else {
                kd
            };
            let mut acc = [[0.0f64; 4]; 4];
            if ri == 4 && rj == 4 {
                let bs = &b[k0 * b_row + j0..];
                if a.col == 1 {
                    // A's rows are contiguous along k.
                    let r: [&[f64]; 4] = std::array::from_fn(|p| &a.data[(i0 + p) * a.row..][..kd]);
                    for (k, bk) in (k0..kd).zip(bs.chunks(b_row)) {
                        kernel4(&mut acc, [r[0][k], r[1][k], r[2][k], r[3][k]], &bk[..4]);
                    }
                } else if a.row == 1 {
                    // A's columns are contiguous along i.
                    for (k, bk) in (k0..kd).zip(bs.chunks(b_row)) {
                        let ak = &a.data[i0 + k * a.col..][..4];
                        kernel4(&mut acc, [ak[0], ak[1], ak[2], ak[3]], &bk[..4]);
                    }
                } else {
                    for (k, bk) in (k0..kd).zip(bs.chunks(b_row)) {
                        kernel4(&mut acc, std::array::from_fn(|p| at(i0 + p, k)), &bk[..4]);
                    }
                }
            } else {
                for k in k0..kd {
                    let bk = &b[k * b_row + j0..][..rj];
                    for (p, row) in acc.iter_mut().enumerate().take(ri) {
                        let ap = at(i0 + p, k);
                        for (c, &bq) in row.iter_mut().zip(bk) {
                            *c += ap * bq;
                        }
                    }
                }
            }
            for (p, row) in acc.iter().enumerate().take(ri) {
                out[(i0 + p) * out_row + j0..][..rj].copy_from_slice(&row[..rj]);
            }
        }
    }
}

/// Solves `N Z = R` in place for the `n × c` row-major `rows` (`R` becomes `Z`), `N` the
/// `n × n` lower-triangular factor: forward substitution on whole rows.
pub fn forward_rows(l: &[f64], n: usize, rows: &mut [f64], c: usize) {
    for i in 0..n {
        let (done, rest) = rows.split_at_mut(i * c);
        let zi = &mut rest[..c];
        for k in 0..i {
            axpy(-l[i * n + k], &done[k * c..(k + 1) * c], zi);
        }
        let inv = 1.0 / l[i * n + i];
        zi.iter_mut().for_each(|v| *v *= inv);
    }
}

/// In-place lower Cholesky factor `A = L Lᵀ` of the symmetric `n × n` matrix in `a` (only the
/// lower triangle is read); the strict upper triangle is zeroed. `Err(k)` names the first pivot
/// that is not positive and finite (the matrix is not numerically positive definite).
pub fn cholesky(a: &mut [f64], n: usize) -> Result<(), usize> {
    debug_assert_eq!(a.len(), n * n);
    for i in 0..n {
        for j in 0..=i {
            let (head, row_i) = a.split_at_mut(i * n);
            let s = if j == i {
                row_i[j] - dot(&row_i[..j], &row_i[..j])
            } else {
                row_i[j] - dot(&row_i[..j], &head[j * n..j * n + j])
            };
            if j == i {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(i);
                }
                row_i[i] = s.sqrt();
            } else {
                row_i[j] = s / head[j * n + j];
            }
        }
        a[i * n + i + 1..(i + 1) * n].fill(0.0);
    }
    Ok(())
}

/// `log det A = 2 Σ ln L_ii` from the Cholesky factor `L` of `A`. Multiplies the diagonal and
/// takes one logarithm per ~100 decades rather than one per entry.
pub(crate) fn chol_logdet(l: &[f64], n: usize) -> f64 {
    let (mut log, mut prod) = (0.0, 1.0f64);
    for i in 0..n {
        prod *= l[i * n + i];
        if !(1e-100..=1e100).contains(&prod) {
            log += prod.ln();
            prod = 1.0;
        }
    }
    2.0 * (log + prod.ln())
}

/// Solves `L Lᵀ x = b` in place (`b` becomes `x`).
pub(crate) fn chol_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s = b[i] - dot(&l[i * n..i * n + i], &b[..i]);
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// `out = L⁻¹` for a lower-triangular `L` (non-zero diagonal); `out` is lower triangular.
pub(crate) fn lower_inverse(l: &[f64], n: usize, out: &mut [f64]) {
    out.fill(0.0);
    // Row i of L⁻¹: (e_i − Σ_{k<i} L_ik · row_k(L⁻¹)) / L_ii, rows k < i already known.
    for i in 0..n {
        let (done, row) = out.split_at_mut(i * n);
        let row = &mut row[..n];
        row[i] = 1.0;
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                axpy(-lik, &done[k * n..k * n + k + 1], &mut row[..=k]);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for v in &mut row[..=i] {
            *v *= inv;
        }
    }
}

/// `out = A⁻¹ = L⁻ᵀ L⁻¹` from the Cholesky factor; `scratch` is `n × n`. Exactly symmetric.
pub(crate) fn chol_inverse(l: &[f64], n: usize, scratch: &mut [f64], out: &mut [f64]) {
    lower_inverse(l, n, scratch);
    // (A⁻¹)_ij = Σ_{k ≥ max(i,j)} Linv_ki Linv_kj: accumulate row by row of L⁻¹.
    out.fill(0.0);
    for k in 0..n {
        let row = &scratch[k * n..k * n + k + 1];
        for i in 0..=k {
            let v = row[i];
            if v != 0.0 {
                axpy(v, &row[..=i], &mut out[i * n..i * n + i + 1]);
            }
        }
    }
    mirror_lower(out, n);
}

/// Copies the lower triangle onto the upper one.
pub(crate) fn mirror_lower(a: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            a[j * n + i] = a[i * n + j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // B Bᵀ + n I with a fixed, irregular B.
        let b: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 % 11) as f64 - 5.0) / 7.0)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn cholesky_reconstructs_and_inverts() {
        for n in [1, 2, 5, 9] {
            let a = spd(n);
            let mut l = a.clone();
            cholesky(&mut l, n).unwrap();
            for i in 0..n {
                for j in 0..n {
                    let r: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                    assert!((r - a[i * n + j]).abs() < 1e-10);
                }
            }
            let mut inv = vec![0.0; n * n];
            let mut s = vec![0.0; n * n];
            chol_inverse(&l, n, &mut s, &mut inv);
            for i in 0..n {
                for j in 0..n {
                    let r: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                    assert!((r - f64::from(u8::from(i == j))).abs() < 1e-10);
                }
            }
            let want: f64 = (0..n).map(|i| (l[i * n + i] * l[i * n + i]).ln()).sum();
            assert!((chol_logdet(&l, n) - want).abs() < 1e-12 * (1.0 + want.abs()));
            let b: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
            let mut x = b.clone();
            chol_solve(&l, n, &mut x);
            for i in 0..n {
                let r: f64 = (0..n).map(|k| a[i * n + k] * x[k]).sum();
                assert!((r - b[i]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn blocked_matmul_matches_naive() {
        for (m, n, kd) in [
            (1, 1, 1),
            (4, 4, 4),
            (5, 7, 3),
            (8, 18, 18),
            (9, 6, 0),
            (13, 13, 11),
        ] {
            let a: Vec<f64> = (0..m * kd)
                .map(|k| ((k * 13 % 7) as f64 - 3.0) / 3.0)
                .collect();
            let b: Vec<f64> = (0..kd * n)
                .map(|k| ((k * 5 % 9) as f64 - 4.0) / 5.0)
                .collect();
            for tri in [Tri::Full, Tri::LowerOut, Tri::LowerB, Tri::UpperB] {
                let mut b = b.clone();
                // Zero the strict upper (LowerB) or lower (UpperB) triangle of b (kd × n).
                for k in 0..kd {
                    for j in 0..n {
                        if (tri == Tri::LowerB && j > k) || (tri == Tri::UpperB && j < k) {
                            b[k * n + j] = 0.0;
                        }
                    }
                }
                // A as its transpose view too (row = 1, col = m).
                let at: Vec<f64> = (0..kd * m).map(|q| a[(q % m) * kd + q / m]).collect();
                for view in [
                    Strided {
                        data: &a,
                        row: kd,
                        col: 1,
                    },
                    Strided {
                        data: &at,
                        row: 1,
                        col: m,
                    },
                ] {
                    let mut out = vec![f64::NAN; m * n];
                    matmul(view, &b, n, (m, n, kd), tri, &mut out, n);
                    for i in 0..m {
                        for j in 0..n {
                            if tri == Tri::LowerOut && j > i {
                                continue;
                            }
                            let r: f64 = (0..kd).map(|k| a[i * kd + k] * b[k * n + j]).sum();
                            assert!((out[i * n + j] - r).abs() < 1e-12, "{m}x{n}x{kd} {tri:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn logdet_survives_extreme_diagonals() {
        let n = 40;
        let mut l = vec![0.0f64; n * n];
        for i in 0..n {
            l[i * n + i] = if i % 2 == 0 { 1e30 } else { 1e-20 };
        }
        let want: f64 = (0..n).map(|i| 2.0 * l[i * n + i].ln()).sum();
        assert!((chol_logdet(&l, n) - want).abs() < 1e-9 * want.abs());
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky(&mut a, 2), Err(1));
        let mut b = vec![f64::NAN];
        assert_eq!(cholesky(&mut b, 1), Err(0));
    }
}

/// Reference routines for the tests, written independently of the routines above (plain Gaussian
/// elimination with partial pivoting), so the tests do not check the code against itself.
#[cfg(test)]
pub(crate) mod test_ref {
    /// LU with partial pivoting of the `n × n` row-major `a`; returns (LU, permutation, sign).
    fn lu(a: &[f64], n: usize) -> (Vec<f64>, Vec<usize>, f64) {
        let mut m = a.to_vec();
        let mut perm: Vec<usize> = (0..n).collect();
        let mut sign = 1.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| m[i * n + c].abs().total_cmp(&m[j * n + c].abs()))
                .unwrap();
            if p != c {
                for k in 0..n {
                    m.swap(p * n + k, c * n + k);
                }
                perm.swap(p, c);
                sign = -sign;
            }
            for r in c + 1..n {
                let f = m[r * n + c] / m[c * n + c];
                m[r * n + c] = f;
                for k in c + 1..n {
                    m[r * n + k] -= f * m[c * n + k];
                }
            }
        }
        (m, perm, sign)
    }

    /// `ln |det A|` by LU.
    pub fn ln_abs_det(a: &[f64], n: usize) -> f64 {
        let (m, _, _) = lu(a, n);
        (0..n).map(|i| m[i * n + i].abs().ln()).sum()
    }

    /// Solves `A x = b` by LU.
    pub fn solve(a: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
        let (m, perm, _) = lu(a, n);
        let mut x: Vec<f64> = perm.iter().map(|&p| b[p]).collect();
        for i in 0..n {
            for k in 0..i {
                x[i] -= m[i * n + k] * x[k];
            }
        }
        for i in (0..n).rev() {
            for k in i + 1..n {
                x[i] -= m[i * n + k] * x[k];
            }
            x[i] /= m[i * n + i];
        }
        x
    }

    /// `A⁻¹` column by column.
    pub fn inverse(a: &[f64], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * n];
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let col = solve(a, n, &e);
            for i in 0..n {
                out[i * n + j] = col[i];
            }
        }
        out
    }

    /// `C = A B` for `A: r × k`, `B: k × c`.
    pub fn matmul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[i * c + j] = (0..k).map(|q| a[i * k + q] * b[q * c + j]).sum();
            }
        }
        out
    }

    /// Transpose of an `r × c` matrix.
    pub fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = a[i * c + j];
            }
        }
        out
    }
}
