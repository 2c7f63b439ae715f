//! Perspective (fnn `MonitorRetina`): where the eye looks decides what the retina sees.
//!
//! pupil centre `[N, 2]` → MLP (scaled GELU) → angles (x, y, z) → rotation `Rz Ry Rx` → rays of
//! an angular retina grid → intersection with a learned monitor plane → monitor coordinates →
//! bilinear sampling of `stimulus^power` (zeros outside: a dark periphery) →
//! `(p + eps)^(sigmoid(logit) max_power) scale + offset` → retina image `[N, 1, H', W']`.
//!
//! The geometry is a few thousand rays per frame and runs on the host in f64.

use candle_core::{Device, Tensor};

use crate::config::TwinConfig;
use crate::error::{CandleContext, ModelError, Result};
use crate::layers::{Linear, gelu};
use crate::ops::{Padding, grid_sample};
use crate::weights::Weights;

type Mat3 = [[f64; 3]; 3];

/// `Rz(z) Ry(y) Rx(x)`, fnn's `rmat_3d`.
pub fn rmat_3d(x: f64, y: f64, z: f64) -> Mat3 {
    let (sx, cx) = x.sin_cos();
    let (sy, cy) = y.sin_cos();
    let (sz, cz) = z.sin_cos();
    let a = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
    let b = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let c = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
    matmul3(&matmul3(&a, &b), &c)
}

fn matmul3(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut o = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            o[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    o
}

fn linspace(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| -1.0 + 2.0 * i as f64 / (n - 1) as f64)
        .collect()
}

/// fnn `isotropic_grid_2d(height, width, major="x")` as `(x, y)` per pixel, row-major.
pub fn isotropic_grid(height: usize, width: usize) -> Vec<(f64, f64)> {
    let gx = linspace(width);
    let gy: Vec<f64> = linspace(height)
        .into_iter()
        .map(|v| v * height as f64 / width as f64)
        .collect();
    let scale = (width as f64 - 1.0) / width as f64;
    let mut out = Vec::with_capacity(height * width);
    for y in &gy {
        for x in &gx {
            out.push((x * scale, y * scale));
        }
    }
    out
}

/// Shared perspective module.
#[derive(Clone)]
pub struct Perspective {
    layers: Vec<Linear>,
    out: Linear,
    /// Unit rays of the angular retina, row-major `[H' W']`.
    retina: Vec<[f64; 3]>,
    center: [f64; 3],
    /// Monitor axes X, Y, Z (columns of the monitor rotation).
    axes: [[f64; 3]; 3],
    monitor_power: f64,
    monitor_scale: f64,
    monitor_offset: f64,
    retina_power: f64,
    retina_scale: f64,
    retina_offset: f64,
    retina_eps: f64,
    monitor_eps: f64,
    height: usize,
    width: usize,
    stim_h: usize,
    stim_w: usize,
}

fn vec3(w: &Weights, name: &str) -> Result<[f64; 3]> {
    let v: Vec<f32> = w.get(name, &[3])?.to_vec1().ctx(name)?;
    Ok([v[0] as f64, v[1] as f64, v[2] as f64])
}

impl Perspective {
    pub fn load(w: &Weights, cfg: &TwinConfig, dev: &Device) -> Result<Self> {
        let pc = &cfg.perspective;
        let mut layers = Vec::new();
        let mut fin = cfg.perspectives;
        for (i, &f) in pc.features.iter().enumerate() {
            layers.push(Linear::load(
                w,
                &format!("perspective.layers.{i}"),
                0,
                fin,
                f,
                true,
                dev,
            )?);
            fin = f;
        }
        let out = Linear::load(w, "perspective.out", 0, fin, 3, true, dev)?;
        let radians = pc.degrees / 180.0 * std::f64::consts::PI;
        let retina = isotropic_grid(pc.height, pc.width)
            .into_iter()
            .map(|(x, y)| {
                let r = ((x * x + y * y).sqrt() * radians).clamp(0.0, std::f64::consts::FRAC_PI_2);
                let theta = y.atan2(x);
                [r.sin() * theta.cos(), r.sin() * theta.sin(), r.cos()]
            })
            .collect();
        let center = vec3(w, "perspective.monitor.center")?;
        let angle = vec3(w, "perspective.monitor.angle")?;
        // Training-time jitter scales: checked, unused at inference.
        vec3(w, "perspective.monitor.center_std")?;
        vec3(w, "perspective.monitor.angle_std")?;
        let m = rmat_3d(angle[0], angle[1], angle[2]);
        let col = |j: usize| [m[0][j], m[1][j], m[2][j]];
        let one = |name: &str| -> Result<f64> {
            let v: Vec<f32> = w.get(name, &[1])?.to_vec1().ctx(name)?;
            Ok(v[0] as f64)
        };
        let logit = one("perspective.retina_pixel.logit")?;
        Ok(Self {
            layers,
            out,
            retina,
            center,
            axes: [col(0), col(1), col(2)],
            monitor_power: w.scalar("perspective.monitor_pixel.power")? as f64,
            monitor_scale: w.scalar("perspective.monitor_pixel.scale")? as f64,
            monitor_offset: w.scalar("perspective.monitor_pixel.offset")? as f64,
            retina_power: 1.0 / (1.0 + (-logit).exp()) * pc.retina_max_power,
            retina_scale: one("perspective.retina_pixel.scale")?,
            retina_offset: one("perspective.retina_pixel.offset")?,
            retina_eps: pc.retina_eps,
            monitor_eps: pc.monitor_eps,
            height: pc.height,
            width: pc.width,
            stim_h: cfg.stimulus_height,
            stim_w: cfg.stimulus_width,
        })
    }

    /// Rotation angles `[N, 3]` from pupil centres `[N, P]`.
    pub fn angles(&self, perspective: &Tensor) -> Result<Tensor> {
        let mut x = perspective.clone();
        for l in &self.layers {
            x = gelu(&l.forward(&x)?)?;
        }
        self.out.forward(&x)
    }

    /// Sampling grid `[N, H', W', 2]` in the stimulus' normalised coordinates.
    ///
    /// Tensor ops throughout, so the gradient reaches the pupil-to-rotation MLP when the twin is
    /// fitted. With the monitor axes as rows of `M`, `P = M R(angles) G` gives each ray's
    /// coordinates along the monitor's x, y and normal; the ray meets the plane at
    /// `k = (z.c) / max(P_z, eps)`, and the monitor coordinates are `k P_xy - (x.c, y.c)`.
    pub fn grid(&self, perspective: &Tensor) -> Result<Tensor> {
        let angles = self.angles(perspective)?;
        let n = angles.dim(0).ctx("perspective angles")?;
        let col = |i: usize| angles.narrow(1, i, 1).ctx("perspective angles");
        let (ax, ay, az) = (col(0)?, col(1)?, col(2)?);
        let trig = |t: &Tensor| -> Result<(Tensor, Tensor)> {
            Ok((t.sin().ctx("sin")?, t.cos().ctx("cos")?))
        };
        let ((sx, cx), (sy, cy), (sz, cz)) = (trig(&ax)?, trig(&ay)?, trig(&az)?);
        let mul = |a: &Tensor, b: &Tensor| (a * b).ctx("rotation");
        let add = |a: Tensor, b: Tensor| (a + b).ctx("rotation");
        let sub = |a: Tensor, b: Tensor| (a - b).ctx("rotation");
        // Rz Ry Rx, entry by entry (fnn's `rmat_3d`), each `[N, 1]`.
        let entries = [
            mul(&cz, &cy)?,
            sub(mul(&mul(&cz, &sy)?, &sx)?, mul(&sz, &cx)?)?,
            add(mul(&sz, &sx)?, mul(&mul(&cz, &sy)?, &cx)?)?,
            mul(&sz, &cy)?,
            add(mul(&cz, &cx)?, mul(&mul(&sz, &sy)?, &sx)?)?,
            sub(mul(&mul(&sz, &sy)?, &cx)?, mul(&cz, &sx)?)?,
            sy.neg().ctx("rotation")?,
            mul(&cy, &sx)?,
            mul(&cy, &cx)?,
        ];
        let refs: Vec<&Tensor> = entries.iter().collect();
        let r = Tensor::cat(&refs, 1)
            .and_then(|t| t.reshape((n, 3, 3)))
            .ctx("rotation")?;
        let [xa, ya, za] = self.axes;
        let m: Vec<f32> = [xa, ya, za]
            .iter()
            .flat_map(|a| a.iter().map(|&v| v as f32))
            .collect();
        let m = Tensor::from_vec(m, (1, 3, 3), r.device()).ctx("monitor axes")?;
        let rays: Vec<f32> = (0..3)
            .flat_map(|i| self.retina.iter().map(move |g| g[i] as f32))
            .collect();
        let hw = self.retina.len();
        let g = Tensor::from_vec(rays, (1, 3, hw), r.device()).ctx("retina rays")?;
        let p = m
            .broadcast_matmul(&r)
            .and_then(|mr| mr.broadcast_matmul(&g))
            .ctx("rays on the monitor")?; // [N, 3, HW]
        let c = self.center;
        let dot = |a: &[f64; 3]| a[0] * c[0] + a[1] * c[1] + a[2] * c[2];
        let (sh, sw) = (self.stim_h as f64, self.stim_w as f64);
        let scale = sw / (sw - 1.0);
        let fx = scale * (self.width as f64 - 1.0) / self.width as f64;
        let fy = sw / sh * scale * (self.height as f64 - 1.0) / self.height as f64;
        let k = p
            .narrow(1, 2, 1)
            .and_then(|b| b.maximum(self.monitor_eps))
            .and_then(|b| b.recip())
            .and_then(|b| b.affine(dot(&za), 0.0))
            .ctx("ray length")?; // [N, 1, HW]
        let xy = p
            .narrow(1, 0, 2)
            .and_then(|q| q.broadcast_mul(&k))
            .ctx("monitor point")?; // [N, 2, HW]
        let gx = xy
            .narrow(1, 0, 1)
            .and_then(|t| t.affine(fx, -dot(&xa) * fx));
        let gy = xy
            .narrow(1, 1, 1)
            .and_then(|t| t.affine(fy, -dot(&ya) * fy));
        Tensor::cat(&[&gx.ctx("grid x")?, &gy.ctx("grid y")?], 1)
            .and_then(|t| t.transpose(1, 2))
            .and_then(|t| t.reshape((n, self.height, self.width, 2)))
            .ctx("perspective grid")
    }

    /// Retina image `[N, 1, H', W']` from stimulus `[N, 1, H, W]` (values in [0, 1]) and pupil
    /// centres `[N, P]`.
    pub fn forward(&self, stimulus: &Tensor, perspective: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = stimulus.dims4().ctx("stimulus")?;
        if (c, h, w) != (1, self.stim_h, self.stim_w) {
            return Err(ModelError::Input {
                input: "stimulus".into(),
                reason: format!(
                    "shape [{n}, {c}, {h}, {w}], expected [N, 1, {}, {}]",
                    self.stim_h, self.stim_w
                ),
            });
        }
        let pixels = stimulus
            .powf(self.monitor_power)
            .and_then(|p| p.affine(self.monitor_scale, self.monitor_offset))
            .ctx("monitor pixel")?;
        let grid = self.grid(perspective)?;
        let sampled = grid_sample(&pixels, &grid, Padding::Zeros)?;
        sampled
            .affine(1.0, self.retina_eps)
            .and_then(|p| p.powf(self.retina_power))
            .and_then(|p| p.affine(self.retina_scale, self.retina_offset))
            .ctx("retina pixel")
    }
}
