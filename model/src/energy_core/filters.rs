//! Construction of the baseline motion-energy bank: grid geometry, the
//! separable 1-D Gabor weights, the per-position quadrature coefficients, and
//! the fixed-order dot kernels used by [`super::EnergyCore::step`].
//!
//! A complex Gabor `env(dy, dx)·exp(i(ky·dy + kx·dx))` with a Gaussian
//! envelope is the product of a vertical and a horizontal complex 1-D filter,
//! and a square window (truncated at ±3σ per axis, clipped to the frame) keeps
//! that product form. So the response at a grid position is a row pass
//! (horizontal filter over each needed frame row, shared by every grid row in
//! that grid column) followed by a short column pass. The zero-mean, quadrature
//! and gain corrections are linear in the complex response `G` and the local
//! Gaussian sum `L`, so they fold into five per-(position, pair) scalars.

use super::{EnergyCoreConfig, EnergyCoreError};
use std::f64::consts::PI;

/// Half-width of every window, in envelope sigmas (per axis: square window).
pub(super) const TRUNCATE_SIGMAS: f64 = 3.0;

/// Largest allowed L1 norm of a normalised filter (worst-case output for a
/// unit-contrast image, relative to 1.0 for the preferred grating). Well-formed
/// pairs sit near 1.5–3; larger means the clipped window holds too little of a
/// cycle and the pair would mostly amplify noise.
pub(super) const MAX_FILTER_GAIN: f64 = 25.0;

/// Lane count of the dot kernels. Weight vectors are zero-padded to a
/// multiple of it, and the buffers they are dotted with (frame rows, row-pass
/// columns) carry `LANES` extra zeroed entries at their end, so a padded
/// slice never runs out of bounds and the kernels have no scalar tail (the
/// extra entries meet zero weights).
pub(super) const LANES: usize = 8;

/// `n` rounded up to a multiple of [`LANES`].
pub(super) fn padded(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// A contiguous pixel range `[start, start + len)` along one axis; weights
/// over it are stored zero-padded to `padded(len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub len: usize,
}

/// Maps the separable complex response `G` and the Gaussian sum `L` of one
/// (position, pair) to its quadrature outputs:
/// `even = e_re·Re G + e_l·L`, `odd = o_im·Im G + o_re·Re G + o_l·L`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PairCoef {
    pub e_re: f32,
    pub e_l: f32,
    pub o_im: f32,
    pub o_re: f32,
    pub o_l: f32,
}

/// Everything `step` needs, precomputed once.
#[derive(Debug, Clone)]
pub(super) struct Bank {
    pub row_centre_px: Vec<f64>,
    pub col_centre_px: Vec<f64>,
    /// Per grid row: the window's frame rows.
    pub row_span: Vec<Span>,
    /// Per grid column: the window's frame columns.
    pub col_span: Vec<Span>,
    /// Frame rows touched by any window, ascending (slot → row).
    pub needed_rows: Vec<usize>,
    /// Per grid row: slot of its first window row (its rows occupy
    /// consecutive slots because every row of a window is needed).
    pub row_slot0: Vec<usize>,
    /// Distinct horizontal filters; index 0 is the plain Gaussian (kx = 0).
    pub n_h: usize,
    /// Pair → horizontal filter index.
    pub pair_h: Vec<usize>,
    /// Per (grid col, h), index `gc * n_h + h`: complex horizontal weights.
    pub h_re: Vec<Vec<f32>>,
    pub h_im: Vec<Vec<f32>>,
    /// Per grid col: Gaussian horizontal weights (f64 for the luminance path).
    pub h_gauss: Vec<Vec<f64>>,
    /// Frame rows that touch no window are skipped; slots per grid column
    /// in the row-pass buffers, including `LANES` zero slack.
    pub slot_stride: usize,
    /// Per (grid row, pair), index `gr * n_pairs + k`: complex vertical weights.
    pub v_re: Vec<Vec<f32>>,
    pub v_im: Vec<Vec<f32>>,
    /// Per grid row: Gaussian vertical weights.
    pub v_gauss: Vec<Vec<f64>>,
    /// Per (position, pair), index `p * n_pairs + k`.
    pub coef: Vec<PairCoef>,
    /// Per position: 1 / Σ envelope over the clipped window.
    pub inv_env_sum: Vec<f64>,
}

/// Centre of grid cell `g` of `n` over `size` pixels, in pixel-index
/// coordinates (pixel `i` is centred at `i`), with a half-spacing margin.
pub(super) fn grid_centre_px(g: usize, n: usize, size: usize) -> f64 {
    (g as f64 + 0.5) * size as f64 / n as f64 - 0.5
}

fn window(centre: f64, size: usize, sigma: f64) -> Span {
    let r = TRUNCATE_SIGMAS * sigma;
    // centre ∈ [0, size − 1] and r ≥ 1.5, so the span is never empty.
    let lo = (centre - r).ceil().max(0.0) as usize;
    let hi = ((centre + r).floor() as usize).min(size - 1);
    Span {
        start: lo,
        len: hi + 1 - lo,
    }
}

fn gauss(d: f64, sigma: f64) -> f64 {
    (-d * d / (2.0 * sigma * sigma)).exp()
}

/// Gaussian envelope `g(d)` and unit carrier `exp(i·k·d)` over `span`,
/// `d = x − centre`.
fn axis(span: Span, centre: f64, k: f64, sigma: f64) -> (Vec<f64>, Vec<(f64, f64)>) {
    (span.start..span.start + span.len)
        .map(|x| {
            let d = x as f64 - centre;
            (gauss(d, sigma), ((k * d).cos(), (k * d).sin()))
        })
        .unzip()
}

/// The complex 1-D filter `g·carrier` as f32 (re, im).
/// Zero-padded to `padded(len)`.
fn complex_f32(g: &[f64], carrier: &[(f64, f64)]) -> (Vec<f32>, Vec<f32>) {
    let (mut re, mut im): (Vec<f32>, Vec<f32>) = g
        .iter()
        .zip(carrier)
        .map(|(g, (c, s))| ((g * c) as f32, (g * s) as f32))
        .unzip();
    re.resize(padded(g.len()), 0.0);
    im.resize(padded(g.len()), 0.0);
    (re, im)
}

fn padded_f64(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.resize(padded(v.len()), 0.0);
    v
}

/// Wave vector (ky along rows, pointing down; kx along columns) of pair
/// orientation `theta` (bar orientation, counter-clockwise from rightward):
/// the wave vector points along `theta + 90°` on screen.
pub(super) fn wave_vector(cycles_per_px: f64, theta_rad: f64) -> (f64, f64) {
    let k = 2.0 * PI * cycles_per_px;
    let dir = theta_rad + PI / 2.0;
    let snap = |v: f64| if v.abs() < 1e-12 * k { 0.0 } else { v };
    (snap(-k * dir.sin()), snap(k * dir.cos()))
}

impl Bank {
    pub(super) fn build(cfg: &EnergyCoreConfig) -> Result<Bank, EnergyCoreError> {
        let sigma = cfg.envelope_sigma_px;
        let n_ori = cfg.orientations;
        let n_pairs = cfg.cycles_per_px.len() * n_ori;
        let row_centre_px: Vec<f64> = (0..cfg.grid_rows)
            .map(|g| grid_centre_px(g, cfg.grid_rows, cfg.height))
            .collect();
        let col_centre_px: Vec<f64> = (0..cfg.grid_cols)
            .map(|g| grid_centre_px(g, cfg.grid_cols, cfg.width))
            .collect();
        let row_span: Vec<Span> = row_centre_px
            .iter()
            .map(|&c| window(c, cfg.height, sigma))
            .collect();
        let col_span: Vec<Span> = col_centre_px
            .iter()
            .map(|&c| window(c, cfg.width, sigma))
            .collect();

        let mut needed = vec![false; cfg.height];
        for s in &row_span {
            needed[s.start..s.start + s.len].fill(true);
        }
        let needed_rows: Vec<usize> = (0..cfg.height).filter(|&y| needed[y]).collect();
        let row_slot0: Vec<usize> = row_span
            .iter()
            .map(|s| needed_rows.partition_point(|&y| y < s.start))
            .collect();

        // Wave vectors per pair (k = sf_index * n_ori + ori_index) and the
        // distinct horizontal frequencies (kx = 0 is the Gaussian, index 0).
        let kvec: Vec<(f64, f64)> = cfg
            .cycles_per_px
            .iter()
            .flat_map(|&f| (0..n_ori).map(move |o| wave_vector(f, PI * o as f64 / n_ori as f64)))
            .collect();
        let mut kx_list = vec![0.0f64];
        let pair_h: Vec<usize> = kvec
            .iter()
            .map(|&(_, kx)| {
                let same = |v: &f64| (v - kx).abs() <= 1e-12 * kx.abs().max(1.0);
                kx_list.iter().position(same).unwrap_or_else(|| {
                    kx_list.push(kx);
                    kx_list.len() - 1
                })
            })
            .collect();
        let n_h = kx_list.len();

        let h_gauss: Vec<Vec<f64>> = col_span
            .iter()
            .zip(&col_centre_px)
            .map(|(&span, &c)| axis(span, c, 0.0, sigma).0)
            .collect();
        let v_gauss: Vec<Vec<f64>> = row_span
            .iter()
            .zip(&row_centre_px)
            .map(|(&span, &c)| axis(span, c, 0.0, sigma).0)
            .collect();
        let mut h_carrier = Vec::with_capacity(cfg.grid_cols * n_h);
        let (mut h_re, mut h_im) = (Vec::new(), Vec::new());
        for (gc, (&span, &c)) in col_span.iter().zip(&col_centre_px).enumerate() {
            for &kx in &kx_list {
                let carrier = axis(span, c, kx, sigma).1;
                let (re, im) = complex_f32(&h_gauss[gc], &carrier);
                h_re.push(re);
                h_im.push(im);
                h_carrier.push(carrier);
            }
        }
        let mut v_carrier = Vec::with_capacity(cfg.grid_rows * n_pairs);
        let (mut v_re, mut v_im) = (Vec::new(), Vec::new());
        for (gr, (&span, &c)) in row_span.iter().zip(&row_centre_px).enumerate() {
            for &(ky, _) in &kvec {
                let carrier = axis(span, c, ky, sigma).1;
                let (re, im) = complex_f32(&v_gauss[gr], &carrier);
                v_re.push(re);
                v_im.push(im);
                v_carrier.push(carrier);
            }
        }

        let positions = cfg.grid_rows * cfg.grid_cols;
        let mut coef = Vec::with_capacity(positions * n_pairs);
        let mut inv_env_sum = Vec::with_capacity(positions);
        for gr in 0..cfg.grid_rows {
            for gc in 0..cfg.grid_cols {
                let gy = &v_gauss[gr];
                let gx = &h_gauss[gc];
                inv_env_sum.push(1.0 / (gy.iter().sum::<f64>() * gx.iter().sum::<f64>()));
                for (k, &h) in pair_h.iter().enumerate() {
                    let cy = &v_carrier[gr * n_pairs + k];
                    let cx = &h_carrier[gc * n_h + h];
                    let c = pair_coef(gy, gx, cy, cx).ok_or_else(|| {
                        let f = cfg.cycles_per_px[k / n_ori];
                        EnergyCoreError::Config {
                            field: "cycles_per_px",
                            problem: format!(
                                "the quadrature pair for {f} cycles/px at orientation index {} is \
                                 degenerate at grid position ({gr}, {gc}): its clipped {}x{} px \
                                 window holds too little of one cycle",
                                k % n_ori,
                                row_span[gr].len,
                                col_span[gc].len
                            ),
                            fix: "raise cycles_per_px or envelope_sigma_px, or use a larger \
                                  frame / fewer grid positions"
                                .into(),
                        }
                    })?;
                    coef.push(c);
                }
            }
        }

        Ok(Bank {
            slot_stride: needed_rows.len() + LANES,
            row_centre_px,
            col_centre_px,
            row_span,
            col_span,
            needed_rows,
            row_slot0,
            n_h,
            pair_h,
            h_re,
            h_im,
            h_gauss: h_gauss.iter().map(|g| padded_f64(g)).collect(),
            v_re,
            v_im,
            v_gauss: v_gauss.iter().map(|g| padded_f64(g)).collect(),
            coef,
            inv_env_sum,
        })
    }
}

/// Zero-mean, quadrature-orthogonalised, unit-gain coefficients of one pair at
/// one position, from the explicit 2-D weights (f64). `None` if degenerate.
///
/// With `env` the envelope and `ph` the carrier phase over the clipped window:
/// even₀ = env·(cos ph − a_e), odd₀ = env·(sin ph − a_o) (zero-sum by choice of
/// a_e, a_o). For a grating `cos(ph + φ)` each filter responds `Re(e^{iφ} W)`
/// with `W = Σ w·e^{i ph}`. Gram–Schmidt makes `W_odd ⟂ W_even`, and each is
/// scaled to |W| = 1, so the preferred grating gives even² + odd² = 1 at every
/// phase, even in clipped windows.
fn pair_coef(gy: &[f64], gx: &[f64], cy: &[(f64, f64)], cx: &[(f64, f64)]) -> Option<PairCoef> {
    let mut env_sum = 0.0;
    let (mut sg_re, mut sg_im) = (0.0, 0.0); // Σ env e^{i ph}
    let (mut a_re, mut a_im) = (0.0, 0.0); // Σ env cos ph e^{i ph}
    let (mut b_re, mut b_im) = (0.0, 0.0); // Σ env sin ph e^{i ph}
    let carrier = |iy: usize, ix: usize| {
        let (yr, yi) = cy[iy];
        let (xr, xi) = cx[ix];
        (yr * xr - yi * xi, yr * xi + yi * xr)
    };
    for (iy, wy) in gy.iter().enumerate() {
        for (ix, wx) in gx.iter().enumerate() {
            let env = wy * wx;
            let (c, s) = carrier(iy, ix);
            env_sum += env;
            sg_re += env * c;
            sg_im += env * s;
            a_re += env * c * c;
            a_im += env * c * s;
            b_re += env * s * c;
            b_im += env * s * s;
        }
    }
    let a_e = sg_re / env_sum;
    let a_o = sg_im / env_sum;
    let we = (a_re - a_e * sg_re, a_im - a_e * sg_im);
    let wo = (b_re - a_o * sg_re, b_im - a_o * sg_im);
    let we2 = we.0 * we.0 + we.1 * we.1;
    let beta = (wo.0 * we.0 + wo.1 * we.1) / we2;
    let wo_perp = (wo.0 - beta * we.0, wo.1 - beta * we.1);
    let quad = wo.1 * we.0 - wo.0 * we.1; // Im(W_o · conj W_e): + means odd leads by +90°
    let we_abs = we2.sqrt();
    let wo_abs = wo_perp.0.hypot(wo_perp.1);
    let tiny = 1e-9 * env_sum;
    if !(we_abs > tiny && wo_abs > tiny && quad > 0.0) {
        return None;
    }
    let (s_e, s_o) = (1.0 / we_abs, 1.0 / wo_abs);
    let (mut l1_e, mut l1_o) = (0.0, 0.0);
    for (iy, wy) in gy.iter().enumerate() {
        for (ix, wx) in gx.iter().enumerate() {
            let env = wy * wx;
            let (c, s) = carrier(iy, ix);
            let e = env * (c - a_e);
            l1_e += e.abs();
            l1_o += (env * (s - a_o) - beta * e).abs();
        }
    }
    if !(l1_e * s_e <= MAX_FILTER_GAIN && l1_o * s_o <= MAX_FILTER_GAIN) {
        return None;
    }
    Some(PairCoef {
        e_re: s_e as f32,
        e_l: (-s_e * a_e) as f32,
        o_im: s_o as f32,
        o_re: (-s_o * beta) as f32,
        o_l: (-s_o * (a_o - beta * a_e)) as f32,
    })
}

/// Fixed-order f32 dot product over `LANES`-wide chunks, so results are
/// bit-identical run to run. Both slices must have the same length, a
/// multiple of [`LANES`].
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert!(a.len() == b.len() && a.len().is_multiple_of(LANES));
    let (ca, cb) = (a.as_chunks::<LANES>().0, b.as_chunks::<LANES>().0);
    let mut acc = [0.0f32; LANES];
    for (x, y) in ca.iter().zip(cb) {
        for ((s, xi), yi) in acc.iter_mut().zip(x).zip(y) {
            *s += xi * yi;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Gaussian row sums of `c` and `c²` in f64 (the luminance / RMS path).
#[inline]
pub(super) fn gauss_moments(g: &[f64], row: &[f32]) -> (f64, f64) {
    debug_assert_eq!(g.len(), row.len());
    let (cg, rg) = g.as_chunks::<4>();
    let (cr, rr) = row.as_chunks::<4>();
    let mut s1 = [0.0f64; 4];
    let mut s2 = [0.0f64; 4];
    for (w, c) in cg.iter().zip(cr) {
        for i in 0..4 {
            let wc = w[i] * f64::from(c[i]);
            s1[i] += wc;
            s2[i] += wc * f64::from(c[i]);
        }
    }
    let (mut t1, mut t2) = (0.0, 0.0);
    for (w, &c) in rg.iter().zip(rr) {
        let wc = w * f64::from(c);
        t1 += wc;
        t2 += wc * f64::from(c);
    }
    (
        (s1[0] + s1[2]) + (s1[1] + s1[3]) + t1,
        (s2[0] + s2[2]) + (s2[1] + s2[3]) + t2,
    )
}

/// Fixed-order f64 dot product.
#[inline]
pub(super) fn dot64(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    let mut acc = [0.0f64; 4];
    for (x, y) in ca.iter().zip(cb) {
        for ((s, xi), yi) in acc.iter_mut().zip(x).zip(y) {
            *s += xi * yi;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}
