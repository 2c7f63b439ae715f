//! Locating each unit's receptive field on the core's grid from early trials: at every grid
//! position, a ridge regression of the unit's activity on the core's features there; the
//! position whose features explain most of the activity's variance (refined by the centroid of
//! its neighbourhood) is where the unit's readout starts.
//!
//! The sufficient statistics are kept online — XᵀX per position (shared by all units), Xᵀy per
//! unit and position — so a frame costs P·(C+1)² plus, for each unit with non-zero activity,
//! P·(C+1) multiply-adds, and an estimate costs one (C+1)² solve per position and unit.

use twinloop_model::design::linalg::{cholesky, forward_rows};

/// Ridge added to XᵀX relative to its mean diagonal, for positions the stimuli rarely drive.
const RIDGE: f64 = 1e-3;

pub struct RfMapper {
    channels: usize,
    positions: usize,
    units: usize,
    xtx: Vec<f64>,
    xty: Vec<f64>,
    y_sum: Vec<f64>,
    y2_sum: Vec<f64>,
    n: f64,
    x: Vec<f64>,
}

impl RfMapper {
    pub fn new(units: usize, positions: usize, channels: usize) -> RfMapper {
        let k = channels + 1;
        RfMapper {
            channels,
            positions,
            units,
            xtx: vec![0.0; positions * k * k],
            xty: vec![0.0; units * positions * k],
            y_sum: vec![0.0; units],
            y2_sum: vec![0.0; units],
            n: 0.0,
            x: vec![0.0; positions * k],
        }
    }

    /// One frame: the core's map `[position][channel]` and each unit's activity (non-finite
    /// values are left out of that unit's sums).
    pub fn accumulate(&mut self, map: &[f32], y: &[f32]) {
        let (c, k) = (self.channels, self.channels + 1);
        if map.len() != self.positions * c || y.len() != self.units {
            return;
        }
        for p in 0..self.positions {
            let x = &mut self.x[p * k..(p + 1) * k];
            for (dst, &v) in x.iter_mut().zip(&map[p * c..(p + 1) * c]) {
                *dst = f64::from(v);
            }
            x[c] = 1.0;
            let a = &mut self.xtx[p * k * k..(p + 1) * k * k];
            for i in 0..k {
                for j in i..k {
                    a[i * k + j] += x[i] * x[j];
                }
            }
        }
        self.n += 1.0;
        for (u, &v) in y.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            let v = f64::from(v);
            self.y_sum[u] += v;
            self.y2_sum[u] += v * v;
            if v == 0.0 {
                continue;
            }
            let row = &mut self.xty[u * self.positions * k..(u + 1) * self.positions * k];
            for (acc, &x) in row.iter_mut().zip(&self.x) {
                *acc += v * x;
            }
        }
    }

    /// Each unit's position in grid units (row, col), or `None` where no position explains any
    /// variance.
    pub fn estimate(&self, rows: usize, cols: usize) -> Vec<Option<(f32, f32)>> {
        let k = self.channels + 1;
        let mut explained = vec![0.0f64; self.units * self.positions];
        let mut chol = vec![0.0f64; k * k];
        let mut z = vec![0.0f64; k];
        for p in 0..self.positions {
            let a = &self.xtx[p * k * k..(p + 1) * k * k];
            let mean_diag = (0..k).map(|i| a[i * k + i]).sum::<f64>() / k as f64;
            // Symmetric fill from the upper triangle, plus the ridge.
            for i in 0..k {
                for j in 0..k {
                    chol[i * k + j] = if i <= j { a[i * k + j] } else { a[j * k + i] };
                }
                chol[i * k + i] += RIDGE * mean_diag.max(1e-12);
            }
            if cholesky(&mut chol, k).is_err() {
                continue;
            }
            for u in 0..self.units {
                let b = &self.xty[(u * self.positions + p) * k..(u * self.positions + p + 1) * k];
                // bᵀ A⁻¹ b = |L⁻¹ b|².
                z.copy_from_slice(b);
                forward_rows(&chol, k, &mut z, 1);
                let fit = z.iter().map(|v| v * v).sum::<f64>();
                let mean_only = self.y_sum[u] * self.y_sum[u] / self.n.max(1.0);
                explained[u * self.positions + p] = (fit - mean_only).max(0.0);
            }
        }
        (0..self.units)
            .map(|u| {
                let e = &explained[u * self.positions..(u + 1) * self.positions];
                let best = (0..self.positions).fold(0, |b, p| if e[p] > e[b] { p } else { b });
                if e[best] <= 0.0 {
                    return None;
                }
                let (br, bc) = ((best / cols) as i64, (best % cols) as i64);
                let (mut w, mut r, mut c) = (0.0, 0.0, 0.0);
                for dr in -1..=1i64 {
                    for dc in -1..=1i64 {
                        let (rr, cc) = (br + dr, bc + dc);
                        if rr < 0 || cc < 0 || rr >= rows as i64 || cc >= cols as i64 {
                            continue;
                        }
                        // Only the part above the runner-up level pulls the centroid.
                        let k = (e[rr as usize * cols + cc as usize] - 0.5 * e[best]).max(0.0);
                        w += k;
                        r += k * rr as f64;
                        c += k * cc as f64;
                    }
                }
                Some(((r / w) as f32, (c / w) as f32))
            })
            .collect()
    }
}
