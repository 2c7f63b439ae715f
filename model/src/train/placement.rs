//! Where each readout starts: at the core position whose features best predict the unit.
//!
//! A receptive field in the core's own coordinates: one pass of the core over some clips, then
//! for each unit and each position of the feature map the share of the unit's response variance
//! a linear readout of all channels there explains (R², from the channels' covariance at that
//! position); the unit starts at the best position. This needs
//! no model of how the eye maps the monitor onto the core (the perspective), so it works for a
//! fresh perspective and a frozen pretrained core alike.

use candle_core::{DType, Device, Tensor};

use crate::design::linalg::{cholesky, forward_rows};
use crate::error::{CandleContext, Result};
use crate::network::Twin;
use crate::train::clips::ClipBatch;

/// Readout starting values for one mouse.
pub struct Placement {
    /// `readout.position.mu` `[U, 2]` (x, y before `tanh`).
    pub mu: Tensor,
    /// Per-unit log of the mean response, the readout bias that predicts the mean.
    pub log_mean: Vec<f32>,
    /// Frames the statistics used.
    pub frames: usize,
}

/// Runs `twin` over `batches` (skipping `burn_in` frames of each clip) and places every unit.
pub fn place_readouts(twin: &mut Twin, batches: &[ClipBatch], burn_in: usize) -> Result<Placement> {
    let dev = Device::Cpu;
    let mut sxy: Option<Tensor> = None; // [F, U]
    let mut sx: Option<Tensor> = None; // [F]
    let mut sxx: Option<Tensor> = None; // [hw, C, C] per-position Gram
    let mut sy: Option<Tensor> = None; // [U]
    let mut syy: Option<Tensor> = None;
    let mut n = 0usize;
    let (mut h, mut w, mut c) = (0, 0, 0);
    let acc = |slot: &mut Option<Tensor>, v: Tensor| -> Result<()> {
        *slot = Some(match slot.take() {
            None => v,
            Some(a) => (a + v).ctx("placement sums")?,
        });
        Ok(())
    };
    for batch in batches {
        twin.reset();
        for (t, f) in batch.frames.iter().enumerate() {
            let cores = twin.core_features(&f.stimulus, &f.perspective, &f.modulation)?;
            if t < burn_in {
                continue;
            }
            let refs: Vec<&Tensor> = cores.iter().collect();
            let x = Tensor::cat(&refs, 1).ctx("placement features")?; // [B, C, h, w]
            let (b, cc, hh, ww) = x.dims4().ctx("placement features")?;
            (h, w, c) = (hh, ww, cc);
            let x = x
                .reshape((b, cc * hh * ww))
                .and_then(|x| x.to_device(&dev))
                .and_then(|x| x.to_dtype(DType::F64))
                .ctx("placement features")?;
            let y = f
                .responses
                .to_device(&dev)
                .and_then(|y| y.to_dtype(DType::F64))
                .ctx("placement responses")?;
            acc(
                &mut sxy,
                x.t().and_then(|xt| xt.matmul(&y)).ctx("placement")?,
            )?;
            acc(&mut sx, x.sum(0).ctx("placement")?)?;
            let per_pos = x
                .reshape((b, cc, hh * ww))
                .and_then(|t| t.permute((2, 0, 1)))
                .and_then(|t| t.contiguous())
                .ctx("placement")?; // [hw, B, C]
            acc(
                &mut sxx,
                per_pos
                    .transpose(1, 2)
                    .and_then(|t| t.contiguous())
                    .and_then(|t| t.matmul(&per_pos))
                    .ctx("placement gram")?,
            )?;
            acc(&mut sy, y.sum(0).ctx("placement")?)?;
            acc(&mut syy, y.sqr().and_then(|v| v.sum(0)).ctx("placement")?)?;
            n += b;
        }
    }
    let (Some(sxy), Some(sx), Some(sxx), Some(sy), Some(syy)) = (sxy, sx, sxx, sy, syy) else {
        return Err(crate::error::ModelError::Input {
            input: "recording".into(),
            reason: format!("no frames after the {burn_in}-frame burn-in to place readouts"),
        });
    };
    let nf = n as f64;
    let vec = |t: &Tensor| t.to_vec1::<f64>().ctx("placement");
    let (sx, sy, syy) = (vec(&sx)?, vec(&sy)?, vec(&syy)?);
    let gram = sxx
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .ctx("placement")?;
    let sxy = sxy.to_vec2::<f64>().ctx("placement")?;
    let units = sy.len();
    let sd = |s: f64, ss: f64| ((ss / nf - (s / nf).powi(2)).max(0.0)).sqrt();
    let hw = h * w;
    // Per position: the channels' covariance, factored once (ridge 1e-6 of its trace keeps
    // collinear channels solvable).
    let mut factors = Vec::with_capacity(hw);
    for p in 0..hw {
        let mut cov = vec![0.0f64; c * c];
        for a in 0..c {
            for b in 0..c {
                let (fa, fb) = (a * hw + p, b * hw + p);
                cov[a * c + b] = gram[(p * c + a) * c + b] / nf - sx[fa] / nf * sx[fb] / nf;
            }
        }
        let trace: f64 = (0..c).map(|a| cov[a * c + a]).sum();
        for a in 0..c {
            cov[a * c + a] += 1e-6 * trace.max(1e-12);
        }
        factors.push(cholesky(&mut cov, c).is_ok().then_some(cov));
    }
    let mut mu = Vec::with_capacity(units * 2);
    let mut log_mean = Vec::with_capacity(units);
    let mut z = vec![0.0f64; c];
    for u in 0..units {
        let (my, sdy) = (sy[u] / nf, sd(sy[u], syy[u]));
        let mut best = (f64::NEG_INFINITY, 0usize);
        for (p, factor) in factors.iter().enumerate() {
            let Some(l) = factor else { continue };
            if sdy <= 0.0 {
                break;
            }
            // R² = c' S^-1 c / var(y) = |L^-1 c|² / var(y), with c the channels' covariance with y.
            for (a, za) in z.iter_mut().enumerate() {
                let f = a * hw + p;
                *za = sxy[f][u] / nf - sx[f] / nf * my;
            }
            forward_rows(l, c, &mut z, 1);
            let r2 = z.iter().map(|v| v * v).sum::<f64>() / (sdy * sdy);
            if r2 > best.0 {
                best = (r2, p);
            }
        }
        let (i, j) = (best.1 / w, best.1 % w);
        // Pixel centres in grid_sample's align_corners=False coordinates, always inside (-1, 1).
        let x = (2 * j + 1) as f64 / w as f64 - 1.0;
        let y = (2 * i + 1) as f64 / h as f64 - 1.0;
        mu.push(x.atanh() as f32);
        mu.push(y.atanh() as f32);
        log_mean.push((my.max(0.0) + 1e-3).ln() as f32);
    }
    Ok(Placement {
        mu: Tensor::from_vec(mu, (units, 2), &dev).ctx("placement mu")?,
        log_mean,
        frames: n,
    })
}
