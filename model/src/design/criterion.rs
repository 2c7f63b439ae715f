//! Scoring candidate stimulus clips against the current posteriors (Lewi et al. 2009, §3–5).
//!
//! A clip shown to unit `u` gives features `Φ` (`T × d`) and, at the predicted rates
//! `λ_t = exp(μ·x_t)`, expected Fisher information `Φᵀ D Φ` with `D = diag(λ_t dt)`. With
//! `Σ = L Lᵀ` and the whitened rows `ψ_t = √(λ_t dt) · Lᵀ x_t` (`Ψ`, `T × d`):
//! - information gain `½ log det(I_T + Ψ Ψᵀ) = ½ log det(I_d + Ψᵀ Ψ)` (Sylvester), computed in
//!   whichever form is smaller;
//! - the folded covariance `Σ' = (Σ⁻¹ + ΦᵀDΦ)⁻¹ = L (I_d + ΨᵀΨ)⁻¹ Lᵀ`, which equals the
//!   Woodbury form `Σ − ΣΦᵀ(D⁻¹ + ΦΣΦᵀ)⁻¹ΦΣ` but is positive definite by construction;
//! - variance reduction on a reference set: with `W = Σ_{r,t} λ_rt² x_rt x_rtᵀ` and
//!   `W̃ = Lᵀ W L`, `Σ_{r,t} λ_rt² x_rtᵀ(Σ − Σ')x_rt = tr((I − A⁻¹) W̃)`, `A = I_d + ΨᵀΨ`,
//!   evaluated as `Σ_t (W̃ψ_t)·(A⁻¹ψ_t)` or, in the `T × T` form, `Σ_t z_tᵀ W̃ z_t` with
//!   `Z = N⁻¹Ψ`, `N Nᵀ = I_T + ΨΨᵀ`.
//!
//! Cost per (unit, clip): `T d²/2` for `Ψ` plus `min(T,d)² max(T,d)/2` for the Gram matrix.

use std::ops::Range;
use std::time::Instant;

use super::linalg::{
    Strided, Tri, chol_logdet, chol_solve, cholesky, dot, dot_f32, forward_rows, lower_inverse,
    matmul, mirror_lower,
};
use super::posterior::Posterior;
use super::{
    DesignError, batched, check_dt, check_finite, check_len, check_value, par_ranges, rate,
};

/// Features of candidate clips, per unit, supplied by the caller (e.g. the frozen core's
/// features at each unit's readout position, plus bias and covariates).
pub trait FeatureSource: Sync {
    /// Feature dimension `d` (must equal the posterior's).
    fn dim(&self) -> usize;
    /// Frames `T` of `candidate` (may differ between candidates; 0 scores 0).
    fn frames(&self, candidate: usize) -> usize;
    /// Writes the `T × d` row-major features of `candidate` for `unit` into `out`
    /// (`out.len() == frames(candidate) * dim()`). Indices come straight from the caller's
    /// candidate lists; range-checking them is the source's business.
    fn fill(&self, candidate: usize, unit: usize, out: &mut [f32]);
}

/// What a clip is worth to one unit (summed over units by [`score`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// Expected entropy drop of the Laplace posterior, in nats (see [`info_gain_unit`]).
    InfoGain,
    /// Drop of `Σ_{r∈reference} Σ_t λ_rt² x_rtᵀ Σ x_rt`, the delta-method variance (1/s²) of the
    /// predicted rates on the reference clips (candidate indices into the same source), when
    /// the clip's expected Fisher information is folded in.
    VarianceReduction { reference: Vec<usize> },
    /// [`Criterion::VarianceReduction`] with a weight `w_r ≥ 0` per reference clip:
    /// `Σ_r w_r Σ_t λ_rt² x_rtᵀ(Σ − Σ')x_rt`, the expected drop of the predicted rates' variance
    /// over a target distribution of stimuli (e.g. natural clips) of which the reference clips
    /// are a weighted sample. Importance weights `p_target(r)/p_reference(r)` correct a
    /// reference set drawn from another distribution (the weighting of Sugiyama 2005 applied
    /// to where the twin will be used; the fit itself stays unweighted, see the module docs).
    /// `weights.len()` must equal `reference.len()`.
    PredictiveVariance {
        reference: Vec<usize>,
        weights: Vec<f64>,
    },
    /// Expected count `Σ_t λ_t dt`, divided by the unit's maximum over the scored candidates so
    /// that every unit counts equally (each unit contributes at most 1; a unit whose maximum is
    /// 0 contributes 0). Depends on the candidate list; not adaptive in greedy batches.
    ResponseMax,
}

/// Which matrix the determinant/inverse is taken of.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// `I_T + ΨΨᵀ` (`T × T`).
    Frames,
    /// `I_d + ΨᵀΨ` (`d × d`).
    Features,
}

fn cheaper_form(frames: usize, d: usize) -> Form {
    if frames < d {
        Form::Frames
    } else {
        Form::Features
    }
}

/// Scratch of the linear algebra kernels.
#[derive(Default)]
struct Bufs {
    /// Weighted features as f64 (`T × d`).
    x: Vec<f64>,
    /// Gram matrix / its Cholesky factor.
    m: Vec<f64>,
    /// Transposed copies.
    tt: Vec<f64>,
    tmp: Vec<f64>,
}

/// Per-thread buffers.
struct Work {
    phi: Vec<f32>,
    psi: Vec<f64>,
    l: Vec<f64>,
    wt: Vec<f64>,
    out: Vec<f64>,
    stack: Vec<f64>,
    b: Bufs,
}

impl Work {
    fn new(d: usize) -> Self {
        Work {
            phi: Vec::new(),
            psi: Vec::new(),
            l: vec![0.0; d * d],
            wt: vec![0.0; d * d],
            out: vec![0.0; d * d],
            stack: Vec::new(),
            b: Bufs::default(),
        }
    }

    /// Fills `phi` with `candidate`'s features for `unit`; returns `T`.
    fn fill(&mut self, src: &dyn FeatureSource, candidate: usize, unit: usize, d: usize) -> usize {
        let t = src.frames(candidate);
        self.phi.resize(t * d, 0.0);
        src.fill(candidate, unit, &mut self.phi[..t * d]);
        t
    }
}

/// Row weights of [`whiten`], as functions of the predicted rate `λ_t`.
#[derive(Clone, Copy)]
enum Weight {
    /// `√(λ_t dt)`: the square root of the expected Fisher information per frame.
    Fisher(f64),
    /// `λ_t`: the delta-method gradient of the rate.
    Rate,
}

/// `psi = diag(w_t) · Φ · L` (`T × d`), `λ_t = rate(μ·x_t)`: row `t` is `w_t · Lᵀx_t`.
fn whiten(
    mean: &[f64],
    l: &[f64],
    phi: &[f32],
    d: usize,
    weight: Weight,
    b: &mut Bufs,
    psi: &mut Vec<f64>,
) {
    let t = phi.len() / d;
    let xbuf = &mut b.x;
    xbuf.clear();
    for x in phi.chunks_exact(d) {
        let lam = rate(dot_f32(x, mean));
        let w = match weight {
            Weight::Fisher(dt) => (lam * dt).sqrt(),
            Weight::Rate => lam,
        };
        xbuf.extend(x.iter().map(|&v| f64::from(v) * w));
    }
    psi.resize(t * d, 0.0);
    matmul(Strided::rows(xbuf, d), l, d, (t, d, d), Tri::LowerB, psi, d);
}

/// Lower triangle of `ΨᵀΨ` (`d × d`) into `m` for `Ψ` with `rows × d`.
fn col_gram(psi: &[f64], rows: usize, d: usize, m: &mut [f64]) {
    let a = Strided::transposed(psi, d);
    matmul(a, psi, d, (d, d, rows), Tri::LowerOut, m, d);
}

/// Cholesky factor of `I + ΨΨᵀ` (`T × T`, `Form::Frames`) or `I + ΨᵀΨ` (`d × d`) into `m`;
/// returns the order, or `None` if it failed (non-finite features).
fn gram_factor(psi: &[f64], frames: usize, d: usize, form: Form, b: &mut Bufs) -> Option<usize> {
    let (m, tmp) = (&mut b.m, &mut b.tt);
    let n = match form {
        Form::Frames => frames,
        Form::Features => d,
    };
    m.clear();
    m.resize(n * n, 0.0);
    match form {
        Form::Frames => {
            // Ψᵀ (d × T) so that the product reads contiguous rows.
            transpose_into(psi, frames, d, tmp);
            let (a, t) = (Strided::rows(psi, d), frames);
            matmul(a, tmp, t, (t, t, d), Tri::LowerOut, m, t);
        }
        Form::Features => col_gram(psi, frames, d, m),
    }
    for i in 0..n {
        m[i * n + i] += 1.0;
    }
    cholesky(m, n).ok().map(|()| n)
}

/// `½ log det` of the Gram factor in `m`.
fn half_logdet(psi: &[f64], frames: usize, d: usize, form: Form, b: &mut Bufs) -> f64 {
    match gram_factor(psi, frames, d, form, b) {
        Some(n) => 0.5 * chol_logdet(&b.m, n),
        None => f64::NAN,
    }
}

/// `tr((I − A⁻¹) W̃)` (module docs) for the whitened `psi` and `wt = W̃` (`d × d`, symmetric).
fn variance_drop(
    psi: &[f64],
    frames: usize,
    d: usize,
    wt: &[f64],
    form: Form,
    b: &mut Bufs,
) -> f64 {
    let Some(n) = gram_factor(psi, frames, d, form, b) else {
        return f64::NAN;
    };
    let (m, tmp) = (&b.m, &mut b.tmp);
    let mut total = 0.0;
    match form {
        Form::Frames => {
            // Z = N⁻¹Ψ, then Σ_t z_tᵀ W̃ z_t.
            tmp.clear();
            tmp.extend_from_slice(psi);
            forward_rows(m, n, tmp, d);
            for z in tmp.chunks_exact(d) {
                total += (0..d)
                    .map(|a| z[a] * dot(&wt[a * d..(a + 1) * d], z))
                    .sum::<f64>();
            }
        }
        Form::Features => {
            tmp.resize(d, 0.0);
            for row in psi.chunks_exact(d) {
                tmp.copy_from_slice(row);
                chol_solve(m, n, tmp);
                total += (0..d)
                    .map(|a| tmp[a] * dot(&wt[a * d..(a + 1) * d], row))
                    .sum::<f64>();
            }
        }
    }
    total
}

/// The covariance after folding in the whitened clip `psi` (`T × d`) into `out`, given the
/// current `sigma = L Lᵀ`. For `T < d` the Woodbury form `Σ − VᵀV`, `V = N⁻¹ Ψ Lᵀ`,
/// `N Nᵀ = I_T + ΨΨᵀ` (`O(T d²)`); otherwise, or if that lost a positive diagonal, the
/// information form `L (I_d + ΨᵀΨ)⁻¹ Lᵀ = C Cᵀ`, `C = L K⁻ᵀ`, `K Kᵀ = I_d + ΨᵀΨ` (`O(d³)`,
/// positive semi-definite by construction). Returns false if neither gave a positive diagonal.
fn fold_whitened(sigma: &[f64], l: &[f64], psi: &[f64], b: &mut Bufs, out: &mut [f64]) -> bool {
    let d = sigma.len().isqrt();
    let t = psi.len() / d;
    let healthy = |out: &[f64]| (0..d).all(|i| out[i * d + i] > 0.0 && out[i * d + i].is_finite());
    if t < d && gram_factor(psi, t, d, Form::Frames, b).is_some() {
        transpose_into(l, d, d, &mut b.tt);
        b.tmp.resize(t * d, 0.0);
        matmul(
            Strided::rows(psi, d),
            &b.tt,
            d,
            (t, d, d),
            Tri::UpperB,
            &mut b.tmp,
            d,
        );
        forward_rows(&b.m, t, &mut b.tmp, d);
        col_gram(&b.tmp, t, d, out);
        for (o, s) in out.iter_mut().zip(sigma) {
            *o = s - *o;
        }
        mirror_lower(out, d);
        if healthy(out) {
            return true;
        }
    }
    if gram_factor(psi, t, d, Form::Features, b).is_none() {
        return false;
    }
    b.tmp.resize(2 * d * d, 0.0);
    let (kinv, c) = b.tmp.split_at_mut(d * d);
    lower_inverse(&b.m, d, kinv);
    transpose_into(kinv, d, d, &mut b.tt);
    let dims = (d, d, d);
    matmul(Strided::rows(l, d), &b.tt, d, dims, Tri::Full, c, d);
    transpose_into(c, d, d, &mut b.tt);
    matmul(Strided::rows(c, d), &b.tt, d, dims, Tri::LowerOut, out, d);
    mirror_lower(out, d);
    healthy(out)
}

/// `out = aᵀ` for `a` with `r × c`.
fn transpose_into(a: &[f64], r: usize, c: usize, out: &mut Vec<f64>) {
    out.clear();
    out.extend((0..r * c).map(|q| a[(q % r) * c + q / r]));
}

/// Information gain of one clip for one unit, in nats:
/// `½ log det(I_T + D^½ Φ Σ Φᵀ D^½)`, `D_t = exp(μ·x_t)·dt`.
///
/// `mean`: `μ` (`d`); `cov`: `Σ` (`d × d`, row-major, symmetric positive definite);
/// `phi`: `frames × d` row-major features; `dt_s`: frame length in seconds. Uses the `T × T`
/// form when `T < d`, else the `d × d` form. Returns NaN if `cov` is not positive definite.
/// Panics if the lengths do not agree.
pub fn info_gain_unit(mean: &[f64], cov: &[f64], phi: &[f32], frames: usize, dt_s: f64) -> f64 {
    let d = mean.len();
    gain_with_form(mean, cov, phi, frames, dt_s, cheaper_form(frames, d))
}

fn gain_with_form(
    mean: &[f64],
    cov: &[f64],
    phi: &[f32],
    frames: usize,
    dt_s: f64,
    form: Form,
) -> f64 {
    let d = mean.len();
    assert_eq!(cov.len(), d * d, "cov must be d × d");
    assert_eq!(phi.len(), frames * d, "phi must be frames × d");
    if d == 0 {
        return 0.0;
    }
    let mut l = cov.to_vec();
    if cholesky(&mut l, d).is_err() {
        return f64::NAN;
    }
    let (mut b, mut psi) = (Bufs::default(), Vec::new());
    whiten(mean, &l, phi, d, Weight::Fisher(dt_s), &mut b, &mut psi);
    half_logdet(&psi, frames, d, form, &mut b)
}

/// Covariance after folding in one clip's expected Fisher information at the predicted rates:
/// `(Σ⁻¹ + ΦᵀDΦ)⁻¹`, `D_t = exp(μ·x_t)·dt` (`d × d`, the Woodbury update in a form that stays
/// positive definite). Shapes as for [`info_gain_unit`].
pub fn fold_expected_fisher(
    mean: &[f64],
    cov: &[f64],
    phi: &[f32],
    frames: usize,
    dt_s: f64,
) -> Result<Vec<f64>, DesignError> {
    let d = mean.len();
    check_len("cov length", d * d, cov.len())?;
    check_len("phi length", frames * d, phi.len())?;
    if d == 0 {
        return Ok(Vec::new());
    }
    let mut l = cov.to_vec();
    let not_pd = |pivot| DesignError::NotPositiveDefinite { what: "cov", pivot };
    cholesky(&mut l, d).map_err(not_pd)?;
    let (mut b, mut psi) = (Bufs::default(), Vec::new());
    whiten(mean, &l, phi, d, Weight::Fisher(dt_s), &mut b, &mut psi);
    let mut out = vec![0.0; d * d];
    if !fold_whitened(cov, &l, &psi, &mut b, &mut out) {
        return Err(not_pd(0));
    }
    Ok(out)
}

/// One scoring pass: what every chunk of units needs.
struct Job<'a> {
    post: &'a Posterior,
    src: &'a dyn FeatureSource,
    candidates: &'a [usize],
    criterion: &'a Criterion,
    dt: f64,
    /// Stop (every chunk, without a result) once this has passed.
    deadline: Option<Instant>,
}

/// Units between deadline checks: a clock read per unit would be noise next to its cost, and
/// a few units are a few milliseconds at rig scale.
const DEADLINE_CHECK_UNITS: usize = 8;

impl<'a> Job<'a> {
    fn new(
        post: &'a Posterior,
        src: &'a dyn FeatureSource,
        candidates: &'a [usize],
        criterion: &'a Criterion,
        dt: f64,
    ) -> Self {
        Job {
            post,
            src,
            candidates,
            criterion,
            dt,
            deadline: None,
        }
    }

    /// Per-candidate values of unit `u` with covariance `cov` into `vals`.
    fn unit_values(&self, u: usize, cov: &[f64], work: &mut Work, vals: &mut [f64]) {
        let (d, dt, src) = (self.post.dim(), self.dt, self.src);
        let mean = self.post.mean(u);
        if let Criterion::ResponseMax = self.criterion {
            for (v, &c) in vals.iter_mut().zip(self.candidates) {
                let t = work.fill(src, c, u, d);
                *v = work.phi[..t * d]
                    .chunks_exact(d)
                    .map(|x| rate(dot_f32(x, mean)) * dt)
                    .sum();
            }
            let max = vals
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
            vals.iter_mut().for_each(|v| *v *= scale);
            return;
        }
        work.l.copy_from_slice(cov);
        if cholesky(&mut work.l, d).is_err() {
            vals.fill(0.0);
            return;
        }
        let reference = match self.criterion {
            Criterion::VarianceReduction { reference } => Some((reference, None)),
            Criterion::PredictiveVariance { reference, weights } => {
                Some((reference, Some(weights)))
            }
            _ => None,
        };
        if let Some((reference, weights)) = reference {
            // W̃ = Σ_r w_r Ψ_rᵀΨ_r with rows λ_rt · Lᵀx_rt, all reference rows stacked, each
            // clip's scaled by √w_r.
            work.stack.clear();
            for (i, &r) in reference.iter().enumerate() {
                let t = work.fill(src, r, u, d);
                let phi = &work.phi[..t * d];
                whiten(
                    mean,
                    &work.l,
                    phi,
                    d,
                    Weight::Rate,
                    &mut work.b,
                    &mut work.psi,
                );
                let scale = weights.map_or(1.0, |w| w[i].sqrt());
                work.stack.extend(work.psi.iter().map(|v| v * scale));
            }
            col_gram(&work.stack, work.stack.len() / d, d, &mut work.wt);
            mirror_lower(&mut work.wt, d);
        }
        for (v, &c) in vals.iter_mut().zip(self.candidates) {
            let t = work.fill(src, c, u, d);
            let phi = &work.phi[..t * d];
            whiten(
                mean,
                &work.l,
                phi,
                d,
                Weight::Fisher(dt),
                &mut work.b,
                &mut work.psi,
            );
            let form = cheaper_form(t, d);
            *v = match self.criterion {
                Criterion::InfoGain => half_logdet(&work.psi, t, d, form, &mut work.b),
                _ => variance_drop(&work.psi, t, d, &work.wt, form, &mut work.b),
            };
        }
    }

    /// Partial totals over the units in `range`. With `covs` (the covariances of exactly those
    /// units) they are used instead of the posterior's.
    fn run_chunk(&self, range: Range<usize>, covs: Option<&[f64]>) -> Option<Vec<f64>> {
        let d = self.post.dim();
        let mut work = Work::new(d);
        let mut vals = vec![0.0; self.candidates.len()];
        let mut partial = vec![0.0; self.candidates.len()];
        for (k, u) in range.enumerate() {
            if k % DEADLINE_CHECK_UNITS == 0 && self.deadline.is_some_and(|t| Instant::now() >= t) {
                return None;
            }
            let cov = match covs {
                Some(all) => &all[k * d * d..(k + 1) * d * d],
                None => self.post.cov(u),
            };
            self.unit_values(u, cov, &mut work, &mut vals);
            for (p, v) in partial.iter_mut().zip(&vals) {
                if v.is_finite() {
                    *p += v;
                }
            }
        }
        Some(partial)
    }

    /// Folds clip `c`'s expected Fisher information into unit `u`'s scratch covariance (left
    /// unchanged if that fails).
    fn fold_unit(&self, u: usize, c: usize, cov: &mut [f64], work: &mut Work) {
        let d = self.post.dim();
        work.l.copy_from_slice(cov);
        if cholesky(&mut work.l, d).is_err() {
            return;
        }
        let t = work.fill(self.src, c, u, d);
        let dt = self.dt;
        let (mean, phi) = (self.post.mean(u), &work.phi[..t * d]);
        whiten(
            mean,
            &work.l,
            phi,
            d,
            Weight::Fisher(dt),
            &mut work.b,
            &mut work.psi,
        );
        if fold_whitened(cov, &work.l, &work.psi, &mut work.b, &mut work.out) {
            cov.copy_from_slice(&work.out);
        }
    }

    /// Totals over all units, computed in `threads` contiguous unit chunks whose partial sums
    /// are added in chunk order (bit-reproducible for a given `threads`); `DeadlinePassed` if
    /// a chunk stopped at the deadline. `covs`: every unit's covariance, if not the posterior's.
    fn run(&self, threads: usize, covs: Option<&[f64]>) -> Result<Vec<f64>, DesignError> {
        let d2 = self.post.dim() * self.post.dim();
        let state = |r: &Range<usize>| covs.map(|all| &all[r.start * d2..r.end * d2]);
        let partials = par_ranges(self.post.units(), threads, state, |r, s| {
            self.run_chunk(r, s)
        });
        let mut total = vec![0.0; self.candidates.len()];
        for p in &partials {
            let Some(p) = p else {
                return Err(DesignError::DeadlinePassed);
            };
            for (t, v) in total.iter_mut().zip(p) {
                *t += v;
            }
        }
        Ok(total)
    }

    /// Folds clip `c`'s expected Fisher information into every unit's covariance in `covs`
    /// (`U × d × d`), units split over `threads`.
    fn fold_all(&self, threads: usize, covs: &mut [f64], c: usize) {
        let d2 = self.post.dim() * self.post.dim();
        let mut rest = Some(covs);
        let state = |r: &Range<usize>| {
            let (head, tail) = rest.take().unwrap_or_default().split_at_mut(r.len() * d2);
            rest = Some(tail);
            head
        };
        par_ranges(self.post.units(), threads, state, |r, chunk: &mut [f64]| {
            let mut work = Work::new(self.post.dim());
            for (u, cov) in r.zip(chunk.chunks_exact_mut(d2.max(1))) {
                self.fold_unit(u, c, cov, &mut work);
            }
        });
    }
}

/// Scores with unit `u`'s covariance at `covs[u·d²..]` (default: the posterior's): the f32
/// lane path ([`super::batched`]) for `InfoGain` on clips it takes, the f64 reference otherwise.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    post: &Posterior,
    covs: Option<&[f64]>,
    src: &dyn FeatureSource,
    candidates: &[usize],
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
    deadline: Option<Instant>,
    fast: bool,
) -> Result<Vec<f64>, DesignError> {
    let longest = candidates.iter().map(|&c| src.frames(c)).max().unwrap_or(0);
    if fast && *criterion == Criterion::InfoGain && batched::fits(longest) {
        let covs = covs.unwrap_or(post.covs());
        return batched::info_gain(post, covs, src, candidates, dt_s, threads, deadline);
    }
    let mut job = Job::new(post, src, candidates, criterion, dt_s);
    job.deadline = deadline;
    job.run(threads, covs)
}

fn validate(
    post: &Posterior,
    src: &dyn FeatureSource,
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
) -> Result<(), DesignError> {
    check_len("FeatureSource::dim", post.dim(), src.dim())?;
    check_dt(dt_s)?;
    check_value(threads >= 1, "threads", ">= 1", threads as f64)?;
    if let Criterion::PredictiveVariance { reference, weights } = criterion {
        check_len(
            "PredictiveVariance weights length (one per reference clip)",
            reference.len(),
            weights.len(),
        )?;
        check_finite("PredictiveVariance weights", weights)?;
        if let Some(&w) = weights.iter().find(|&&w| w < 0.0) {
            check_value(false, "PredictiveVariance weight", ">= 0", w)?;
        }
    }
    Ok(())
}

/// Scores every candidate in `candidates` (indices into `src`), summed over the posterior's
/// units; one value per entry of `candidates`. `dt_s`: frame length in seconds. Work is split
/// over `threads` (≥ 1) scoped threads. A unit whose covariance is not positive definite, or a
/// non-finite per-unit value, contributes 0.
///
/// `InfoGain` on clips of at most 96 frames takes the f32 lane path (`batched.rs`): units are
/// summed in fixed blocks, so the result is bit-identical for any `threads`, and it is within
/// 2e-5 relative of [`score_reference`] (tested). Everything else is the f64 reference: each
/// thread's chunk of units is summed in order and the chunk sums in chunk order, bit-identical
/// for a given `threads` and equal to rounding (≈1e-15 relative) across thread counts.
pub fn score(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
) -> Result<Vec<f64>, DesignError> {
    score_within(post, src, candidates, criterion, dt_s, threads, None)
}

/// [`score`], stopped at `deadline` (`Err(DeadlinePassed)`, no partial result): the daemon
/// scores within the time left before the trial's onset, and a decision that cannot be made
/// in time becomes a random one rather than a late one.
pub fn score_within(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
    deadline: Option<Instant>,
) -> Result<Vec<f64>, DesignError> {
    score_within_as(
        post, src, candidates, criterion, dt_s, threads, deadline, true,
    )
}

/// [`score_within`], choosing the path: `fast` takes the f32 lane path where it applies, else
/// the f64 reference throughout (what sessions recorded before the lane path scored with, so
/// they replay bit for bit).
#[allow(clippy::too_many_arguments)]
pub fn score_within_as(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
    deadline: Option<Instant>,
    fast: bool,
) -> Result<Vec<f64>, DesignError> {
    validate(post, src, criterion, dt_s, threads)?;
    dispatch(
        post, None, src, candidates, criterion, dt_s, threads, deadline, fast,
    )
}

/// [`score`] by the f64 reference implementation only (one (unit, clip) pair at a time, 4 × 4
/// register blocks), whatever the criterion: the yardstick of the lane path's tests and
/// benchmarks, and a fallback a caller can choose.
pub fn score_reference(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
) -> Result<Vec<f64>, DesignError> {
    validate(post, src, criterion, dt_s, threads)?;
    Job::new(post, src, candidates, criterion, dt_s).run(threads, None)
}

/// Greedy batch of up to `k` clips: score, pick the best (lowest position on ties), fold its
/// expected Fisher information into a scratch copy of every unit's covariance, rescore the
/// rest, repeat. Picks are without replacement by position in `candidates` (list a clip twice
/// to allow it twice). Returns `(candidate, total score at pick time)` in pick order. For
/// `InfoGain` (submodular) the gains are non-increasing. The scratch copy costs `U·d²` f64 (not
/// made for `ResponseMax`, which does not depend on `Σ`).
pub fn greedy_batch(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    k: usize,
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
) -> Result<Vec<(usize, f64)>, DesignError> {
    greedy_batch_as(post, src, candidates, k, criterion, dt_s, threads, true)
}

/// [`greedy_batch`], choosing the scoring path as [`score_within_as`] does.
#[allow(clippy::too_many_arguments)]
pub fn greedy_batch_as(
    post: &Posterior,
    src: &dyn FeatureSource,
    candidates: &[usize],
    k: usize,
    criterion: &Criterion,
    dt_s: f64,
    threads: usize,
    fast: bool,
) -> Result<Vec<(usize, f64)>, DesignError> {
    validate(post, src, criterion, dt_s, threads)?;
    let adaptive = !matches!(criterion, Criterion::ResponseMax);
    let mut scratch = if adaptive {
        post.covs().to_vec()
    } else {
        Vec::new()
    };
    let mut pool = candidates.to_vec();
    let mut picks = Vec::with_capacity(k.min(pool.len()));
    while picks.len() < k && !pool.is_empty() {
        let covs = adaptive.then_some(&scratch[..]);
        let totals = dispatch(post, covs, src, &pool, criterion, dt_s, threads, None, fast)?;
        let best = (0..totals.len())
            .filter(|&i| totals[i].is_finite())
            .fold(None, |b: Option<usize>, i| match b {
                Some(j) if totals[j] >= totals[i] => Some(j),
                _ => Some(i),
            })
            .unwrap_or(0);
        picks.push((pool[best], totals[best]));
        let picked = pool.remove(best);
        if adaptive && picks.len() < k && !pool.is_empty() {
            Job::new(post, src, &pool, criterion, dt_s).fold_all(threads, &mut scratch, picked);
        }
    }
    Ok(picks)
}

#[cfg(test)]
#[path = "criterion_tests.rs"]
mod tests;
