//! Direct least-squares ellipse fitting and the conic ↔ ellipse conversions around it.
//!
//! The fit is Fitzgibbon, Pilu & Fisher's direct method ("Direct least square fitting of
//! ellipses", IEEE PAMI 21(5), 1999) in the split form of Halíř & Flusser ("Numerically stable
//! direct least squares fitting of ellipses", WSCG 1998): minimise the algebraic distance
//! `Σ (a x² + b xy + c y² + d x + e y + f)²` subject to `4ac − b² = 1`, which always returns an
//! ellipse. The 6×6 scatter matrix splits into quadratic and linear blocks; eliminating the
//! linear part leaves the 3×3 generalised eigenproblem `M a = λ C a` with `M` positive
//! semi-definite (a Schur complement of the scatter) and `C` the constraint matrix. Here it is
//! reduced to a symmetric one with a Cholesky factor of `M` (`L⁻¹ C L⁻ᵀ`) and solved with a few
//! Jacobi sweeps; by Sylvester's law of inertia exactly one eigenvalue is positive, and its
//! eigenvector is the ellipse. Points are centred and scaled to unit RMS radius first, so the
//! moments stay well conditioned at any image size.
//!
//! Coordinates are whatever the caller passes (the tracker uses pixel units with the centre of
//! pixel `(i, j)` at `(i + 0.5, j + 0.5)`); angles are measured from +x towards +y, which in an
//! image (y down) is clockwise on screen.
//!
//! Everything here works on the stack: no allocation.

use thiserror::Error;

/// Why a set of points has no ellipse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EllipseFitError {
    #[error("ellipse fit needs at least 6 points, got {points}")]
    TooFewPoints { points: usize },
    #[error("points are degenerate (coincident or collinear): no conic through them")]
    Degenerate,
    #[error("the best conic through the points is not a real ellipse")]
    NotAnEllipse,
}

/// An ellipse by its geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ellipse {
    pub centre_x_px: f64,
    pub centre_y_px: f64,
    /// Semi-major axis (≥ `semi_minor_px`).
    pub semi_major_px: f64,
    pub semi_minor_px: f64,
    /// Direction of the major axis from +x towards +y, radians in (−π/2, π/2].
    pub angle_rad: f64,
}

impl Ellipse {
    /// Geometric mean of the semi-axes: the radius of the circle with the same area.
    pub fn mean_radius_px(&self) -> f64 {
        (self.semi_major_px * self.semi_minor_px).sqrt()
    }

    /// `semi_minor / semi_major`, in (0, 1].
    pub fn axis_ratio(&self) -> f64 {
        self.semi_minor_px / self.semi_major_px
    }

    /// The point at parameter `t` (radians) on the ellipse.
    pub fn point_at(&self, t: f64) -> [f64; 2] {
        let (s, c) = self.angle_rad.sin_cos();
        let (u, v) = (self.semi_major_px * t.cos(), self.semi_minor_px * t.sin());
        [
            self.centre_x_px + u * c - v * s,
            self.centre_y_px + u * s + v * c,
        ]
    }

    /// Half-widths of the axis-aligned bounding box, `[x, y]`.
    pub fn half_extent(&self) -> [f64; 2] {
        let (s, c) = self.angle_rad.sin_cos();
        let (a, b) = (self.semi_major_px, self.semi_minor_px);
        [
            ((a * c).powi(2) + (b * s).powi(2)).sqrt(),
            ((a * s).powi(2) + (b * c).powi(2)).sqrt(),
        ]
    }
}

/// A conic `a x² + b xy + c y² + d x + e y + f = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conic {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub e: f64,
    pub f: f64,
}

impl Conic {
    /// The algebraic value at `(x, y)` (zero on the curve).
    pub fn value(&self, x: f64, y: f64) -> f64 {
        self.a * x * x + self.b * x * y + self.c * y * y + self.d * x + self.e * y + self.f
    }

    /// Sampson distance: the first-order geometric distance `|Q| / |∇Q|` of `(x, y)` from the
    /// curve, in the units of the coordinates. Signed: negative inside an ellipse whose `a > 0`.
    pub fn sampson_distance(&self, x: f64, y: f64) -> f64 {
        let gx = 2.0 * self.a * x + self.b * y + self.d;
        let gy = self.b * x + 2.0 * self.c * y + self.e;
        let g = (gx * gx + gy * gy).sqrt();
        if g > 0.0 { self.value(x, y) / g } else { 0.0 }
    }

    /// The conic as an ellipse, or `None` if it is not a real ellipse.
    pub fn to_ellipse(&self) -> Option<Ellipse> {
        // Make the quadratic form positive definite so the inside is negative.
        let s = if self.a + self.c < 0.0 { -1.0 } else { 1.0 };
        let (a, b, c, d, e, f) = (
            s * self.a,
            s * self.b,
            s * self.c,
            s * self.d,
            s * self.e,
            s * self.f,
        );
        let det = 4.0 * a * c - b * b;
        if !finite_above(det, 0.0) {
            return None;
        }
        let x0 = (b * e - 2.0 * c * d) / det;
        let y0 = (b * d - 2.0 * a * e) / det;
        let f0 = f + 0.5 * (d * x0 + e * y0);
        let mean = 0.5 * (a + c);
        let half_diff = (0.25 * (a - c).powi(2) + 0.25 * b * b).sqrt();
        let (lam_small, lam_big) = (mean - half_diff, mean + half_diff);
        if !finite_above(-f0, 0.0) || !finite_above(lam_small, 0.0) {
            return None;
        }
        let semi_major = (-f0 / lam_small).sqrt();
        let semi_minor = (-f0 / lam_big).sqrt();
        let mut angle = 0.5 * (-b).atan2(c - a);
        if angle <= -std::f64::consts::FRAC_PI_2 {
            angle += std::f64::consts::PI;
        }
        let out = Ellipse {
            centre_x_px: x0,
            centre_y_px: y0,
            semi_major_px: semi_major,
            semi_minor_px: semi_minor,
            angle_rad: angle,
        };
        [x0, y0, semi_major, semi_minor, angle]
            .iter()
            .all(|v| v.is_finite())
            .then_some(out)
    }
}

/// The result of a fit: the conic (for distances) and its geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EllipseFit {
    pub conic: Conic,
    pub ellipse: Ellipse,
}

type M3 = [[f64; 3]; 3];

/// Fits an ellipse to `points` (any iterator that can be walked twice).
pub fn fit_ellipse<I>(points: I) -> Result<EllipseFit, EllipseFitError>
where
    I: Iterator<Item = [f64; 2]> + Clone,
{
    // Pass 1: centre and scale.
    let (mut n, mut sx, mut sy) = (0usize, 0.0, 0.0);
    for [x, y] in points.clone() {
        n += 1;
        sx += x;
        sy += y;
    }
    if n < 6 {
        return Err(EllipseFitError::TooFewPoints { points: n });
    }
    let (mx, my) = (sx / n as f64, sy / n as f64);
    let mut r2 = 0.0;
    for [x, y] in points.clone() {
        r2 += (x - mx).powi(2) + (y - my).powi(2);
    }
    let scale = (r2 / (2.0 * n as f64)).sqrt();
    if !finite_above(scale, 1e-12) {
        return Err(EllipseFitError::Degenerate);
    }
    // Pass 2: moments of the normalised points, u = (x − mx) / scale.
    let mut m = [0.0f64; 15];
    for [x, y] in points {
        let (u, v) = ((x - mx) / scale, (y - my) / scale);
        let (uu, uv, vv) = (u * u, u * v, v * v);
        m[0] += uu * uu;
        m[1] += uu * uv;
        m[2] += uu * vv;
        m[3] += uv * vv;
        m[4] += vv * vv;
        m[5] += uu * u;
        m[6] += uu * v;
        m[7] += u * vv;
        m[8] += vv * v;
        m[9] += uu;
        m[10] += uv;
        m[11] += vv;
        m[12] += u;
        m[13] += v;
    }
    m[14] = n as f64;
    // Quadratic block (u², uv, v²)², cross block (quadratic × linear (u, v, 1)), linear block.
    let s1: M3 = [[m[0], m[1], m[2]], [m[1], m[2], m[3]], [m[2], m[3], m[4]]];
    let s2: M3 = [[m[5], m[6], m[9]], [m[6], m[7], m[10]], [m[7], m[8], m[11]]];
    let s3: M3 = [
        [m[9], m[10], m[12]],
        [m[10], m[11], m[13]],
        [m[12], m[13], m[14]],
    ];
    let s3_inv = invert_spd(&s3).ok_or(EllipseFitError::Degenerate)?;
    // T = −S3⁻¹ S2ᵀ maps the quadratic coefficients to the linear ones.
    let mut t: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            t[i][j] = -(0..3).map(|k| s3_inv[i][k] * s2[j][k]).sum::<f64>();
        }
    }
    // Reduced scatter M = S1 + S2 T (symmetric positive semi-definite).
    let mut red: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            red[i][j] = s1[i][j] + (0..3).map(|k| s2[i][k] * t[k][j]).sum::<f64>();
        }
    }
    let red: M3 = std::array::from_fn(|i| std::array::from_fn(|j| 0.5 * (red[i][j] + red[j][i])));
    let quad = constrained_min(&red).ok_or(EllipseFitError::Degenerate)?;
    let lin: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| t[i][k] * quad[k]).sum());
    let normalised = Conic {
        a: quad[0],
        b: quad[1],
        c: quad[2],
        d: lin[0],
        e: lin[1],
        f: lin[2],
    };
    let e = normalised
        .to_ellipse()
        .ok_or(EllipseFitError::NotAnEllipse)?;
    let ellipse = Ellipse {
        centre_x_px: mx + scale * e.centre_x_px,
        centre_y_px: my + scale * e.centre_y_px,
        semi_major_px: scale * e.semi_major_px,
        semi_minor_px: scale * e.semi_minor_px,
        angle_rad: e.angle_rad,
    };
    Ok(EllipseFit {
        conic: denormalise(&normalised, mx, my, scale),
        ellipse,
    })
}

/// The conic in original coordinates from the one in `u = (x − mx) / s` coordinates.
fn denormalise(q: &Conic, mx: f64, my: f64, s: f64) -> Conic {
    let c = Conic {
        a: q.a,
        b: q.b,
        c: q.c,
        d: -2.0 * q.a * mx - q.b * my + q.d * s,
        e: -q.b * mx - 2.0 * q.c * my + q.e * s,
        f: q.a * mx * mx + q.b * mx * my + q.c * my * my - q.d * s * mx - q.e * s * my
            + q.f * s * s,
    };
    // Scale so the quadratic part has unit norm (keeps Sampson distances well conditioned).
    let k = (c.a * c.a + c.b * c.b + c.c * c.c).sqrt();
    if k > 0.0 {
        Conic {
            a: c.a / k,
            b: c.b / k,
            c: c.c / k,
            d: c.d / k,
            e: c.e / k,
            f: c.f / k,
        }
    } else {
        c
    }
}

/// The quadratic coefficients `(a, b, c)` minimising `xᵀ M x` subject to `4ac − b² > 0`:
/// the eigenvector of the single positive eigenvalue of `L⁻¹ C L⁻ᵀ`, mapped back by `L⁻ᵀ`.
fn constrained_min(m: &M3) -> Option<[f64; 3]> {
    let trace = m[0][0] + m[1][1] + m[2][2];
    if !finite_above(trace, 0.0) {
        return None;
    }
    // A tiny ridge keeps the Cholesky factor defined when the points lie exactly on a conic.
    let mut ridge = 1e-13 * trace;
    let l = loop {
        let mut r = *m;
        for (i, row) in r.iter_mut().enumerate() {
            row[i] += ridge;
        }
        if let Some(l) = cholesky(&r) {
            break l;
        }
        ridge *= 100.0;
        if ridge > 1e-3 * trace {
            return None;
        }
    };
    let l_inv = invert_lower(&l);
    // Constraint matrix C for 4ac − b² (symmetric form).
    let c: M3 = [[0.0, 0.0, 2.0], [0.0, -1.0, 0.0], [2.0, 0.0, 0.0]];
    // K = L⁻¹ C L⁻ᵀ.
    let mut lc: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            lc[i][j] = (0..3).map(|k| l_inv[i][k] * c[k][j]).sum();
        }
    }
    let mut k: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            k[i][j] = (0..3).map(|p| lc[i][p] * l_inv[j][p]).sum();
        }
    }
    let (values, vectors) = jacobi_eigen(k);
    let best = (0..3).max_by(|&i, &j| values[i].total_cmp(&values[j]))?;
    if !finite_above(values[best], 0.0) {
        return None;
    }
    let y: [f64; 3] = std::array::from_fn(|r| vectors[r][best]);
    // x = L⁻ᵀ y.
    let x: [f64; 3] = std::array::from_fn(|i| (0..3).map(|p| l_inv[p][i] * y[p]).sum());
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// `x` is finite and above `lo`.
fn finite_above(x: f64, lo: f64) -> bool {
    x.is_finite() && x > lo
}

/// Lower Cholesky factor of a symmetric positive definite 3×3 matrix.
fn cholesky(a: &M3) -> Option<M3> {
    let mut l: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if !finite_above(s, 0.0) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix with a positive diagonal.
#[expect(
    clippy::needless_range_loop,
    reason = "triangular algebra reads best with indices"
)]
fn invert_lower(l: &M3) -> M3 {
    let mut inv: M3 = [[0.0; 3]; 3];
    for i in 0..3 {
        inv[i][i] = 1.0 / l[i][i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| l[i][k] * inv[k][j]).sum();
            inv[i][j] = -s / l[i][i];
        }
    }
    inv
}

/// Inverse of a symmetric positive definite 3×3 matrix, `None` if it is not.
fn invert_spd(a: &M3) -> Option<M3> {
    let l = cholesky(a)?;
    let li = invert_lower(&l);
    // A⁻¹ = L⁻ᵀ L⁻¹.
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| (0..3).map(|k| li[k][i] * li[k][j]).sum())
    }))
}

/// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations. Returns the
/// eigenvalues and the eigenvectors as the columns of the second matrix.
#[expect(
    clippy::needless_range_loop,
    reason = "the rotation touches rows and columns p and q by index"
)]
fn jacobi_eigen(mut a: M3) -> ([f64; 3], M3) {
    let mut v: M3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..50 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let diag = a[0][0].powi(2) + a[1][1].powi(2) + a[2][2].powi(2);
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for (p, q) in [(0usize, 1usize), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A ← Jᵀ A J on rows/columns p and q.
            for k in 0..3 {
                let (akp, akq) = (a[k][p], a[k][q]);
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for k in 0..3 {
                let (apk, aqk) = (a[p][k], a[q][k]);
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn truth() -> Ellipse {
        Ellipse {
            centre_x_px: 160.3,
            centre_y_px: 118.7,
            semi_major_px: 21.0,
            semi_minor_px: 14.5,
            angle_rad: 0.6,
        }
    }

    fn assert_close(e: &Ellipse, t: &Ellipse, tol: f64) {
        assert!(
            (e.centre_x_px - t.centre_x_px).abs() < tol,
            "{e:?} vs {t:?}"
        );
        assert!(
            (e.centre_y_px - t.centre_y_px).abs() < tol,
            "{e:?} vs {t:?}"
        );
        assert!(
            (e.semi_major_px - t.semi_major_px).abs() < tol,
            "{e:?} vs {t:?}"
        );
        assert!(
            (e.semi_minor_px - t.semi_minor_px).abs() < tol,
            "{e:?} vs {t:?}"
        );
        let da = (e.angle_rad - t.angle_rad).rem_euclid(PI);
        assert!(da.min(PI - da) < tol, "{e:?} vs {t:?}");
    }

    #[test]
    fn exact_points_give_the_exact_ellipse() {
        let t = truth();
        let pts: Vec<[f64; 2]> = (0..40).map(|k| t.point_at(k as f64 * 0.157)).collect();
        let fit = fit_ellipse(pts.iter().copied()).expect("fits");
        assert_close(&fit.ellipse, &t, 1e-7);
        for p in &pts {
            assert!(fit.conic.sampson_distance(p[0], p[1]).abs() < 1e-7);
        }
    }

    #[test]
    fn circle_and_axis_aligned_and_vertical() {
        for (a, b, ang) in [
            (10.0, 10.0, 0.0),
            (12.0, 6.0, 0.0),
            (12.0, 6.0, PI / 2.0),
            (9.0, 8.0, -1.2),
        ] {
            let t = Ellipse {
                centre_x_px: 5.0,
                centre_y_px: -3.0,
                semi_major_px: a,
                semi_minor_px: b,
                angle_rad: ang,
            };
            let pts: Vec<[f64; 2]> = (0..24).map(|k| t.point_at(k as f64 * PI / 12.0)).collect();
            let fit = fit_ellipse(pts.iter().copied()).expect("fits");
            let mut want = t;
            if a == b {
                want.angle_rad = fit.ellipse.angle_rad;
            }
            assert_close(&fit.ellipse, &want, 1e-7);
        }
    }

    #[test]
    fn noisy_partial_arc_is_close() {
        // 240 degrees of arc with ±0.2 px deterministic noise.
        let t = truth();
        let pts: Vec<[f64; 2]> = (0..120)
            .map(|k| {
                let th = k as f64 * (4.0 * PI / 3.0) / 120.0;
                let p = t.point_at(th);
                let n = 0.2 * ((k * 7919 % 101) as f64 / 50.0 - 1.0);
                [p[0] + n * th.cos(), p[1] + n * th.sin()]
            })
            .collect();
        let fit = fit_ellipse(pts.iter().copied()).expect("fits");
        assert_close(&fit.ellipse, &t, 0.3);
    }

    #[test]
    fn far_from_origin_is_still_exact() {
        let mut t = truth();
        t.centre_x_px = 1.0e5;
        t.centre_y_px = -2.0e5;
        let pts: Vec<[f64; 2]> = (0..30).map(|k| t.point_at(k as f64 * 0.21)).collect();
        let fit = fit_ellipse(pts.iter().copied()).expect("fits");
        assert_close(&fit.ellipse, &t, 1e-5);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let few = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        assert_eq!(
            fit_ellipse(few.iter().copied()).unwrap_err(),
            EllipseFitError::TooFewPoints { points: 3 }
        );
        let same = [[2.0, 2.0]; 10];
        assert!(fit_ellipse(same.iter().copied()).is_err());
        let line: Vec<[f64; 2]> = (0..10).map(|k| [k as f64, 2.0 * k as f64]).collect();
        assert!(fit_ellipse(line.iter().copied()).is_err());
    }

    #[test]
    fn hyperbola_points_still_give_an_ellipse_or_error() {
        // The direct method never returns a hyperbola: either an ellipse or an error.
        let pts: Vec<[f64; 2]> = (1..20)
            .flat_map(|k| {
                let x = k as f64 * 0.5;
                [[x, 1.0 / x], [-x, -1.0 / x]]
            })
            .collect();
        if let Ok(fit) = fit_ellipse(pts.iter().copied()) {
            assert!(fit.ellipse.semi_minor_px > 0.0);
            assert!(fit.ellipse.semi_major_px >= fit.ellipse.semi_minor_px);
        }
    }

    #[test]
    fn conic_round_trip_and_extent() {
        let t = truth();
        let [hx, hy] = t.half_extent();
        let mut xmax: f64 = 0.0;
        let mut ymax: f64 = 0.0;
        for k in 0..3600 {
            let p = t.point_at(k as f64 * PI / 1800.0);
            xmax = xmax.max(p[0] - t.centre_x_px);
            ymax = ymax.max(p[1] - t.centre_y_px);
        }
        assert!((xmax - hx).abs() < 1e-3 && (ymax - hy).abs() < 1e-3);
        assert!((t.mean_radius_px() - (21.0f64 * 14.5).sqrt()).abs() < 1e-12);
    }
}
