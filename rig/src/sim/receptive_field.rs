//! The spatial stage of every cell: a quadrature pair of Gabor filters applied to the view.
//!
//! Filtering is the costliest step of the brain (cells x RF pixels x 2 per view), so it runs only
//! when the view or the gaze has changed, over each cell's window of the view (2.5 envelope s.d.
//! around the centre, clipped to the view, since outside it the screen is mean grey). Windows
//! are padded to a multiple of 8 columns so the dot products vectorise.

use super::config::SimGeometry;
use super::tuning::CellParams;

const LANES: usize = 8;

struct Window {
    /// Start of this cell's weights in `even` / `odd`.
    offset: usize,
    row0: usize,
    col0: usize,
    rows: usize,
    /// Multiple of `LANES`.
    cols: usize,
}

/// One quadrature pair: a Gaussian envelope times a cosine / sine carrier, normalised so that
/// its optimal full-contrast grating gives a unit-amplitude pair.
#[derive(Copy, Clone, Debug)]
pub(crate) struct GaborSpec {
    /// Centre at zero gaze, deg.
    pub azimuth_deg: f64,
    /// Centre at zero gaze, deg.
    pub elevation_deg: f64,
    /// Envelope s.d., deg.
    pub sigma_deg: f64,
    /// Carrier frequency, cycles/deg (0: the envelope alone, in the even filter).
    pub spatial_freq_cpd: f64,
    /// Direction of the carrier's wavevector, deg.
    pub direction_deg: f64,
    /// Carrier phase, deg.
    pub phase_deg: f64,
}

impl GaborSpec {
    /// A cell's own Gabor centre.
    pub(crate) fn of_cell(p: &CellParams) -> GaborSpec {
        GaborSpec {
            azimuth_deg: p.rf_azimuth_deg,
            elevation_deg: p.rf_elevation_deg,
            sigma_deg: p.rf_sigma_deg,
            spatial_freq_cpd: p.spatial_freq_cpd,
            direction_deg: p.preferred_direction_deg,
            phase_deg: p.phase_deg,
        }
    }
}

/// All cells' Gabor pairs, and the gaze-shifted contrast image they read.
pub(crate) struct RfBank {
    view_w: usize,
    view_h: usize,
    /// Row stride of `contrast`: the view width plus zero padding for the last lanes.
    stride: usize,
    deg_per_px: (f64, f64),
    windows: Vec<Window>,
    even: Vec<f32>,
    odd: Vec<f32>,
    /// Contrast in [-1, 1] of the view as the retina sees it (shifted by the gaze), padded.
    contrast: Vec<f32>,
}

impl RfBank {
    pub(crate) fn new(cells: &[&CellParams], geom: &SimGeometry) -> RfBank {
        let specs: Vec<GaborSpec> = cells.iter().map(|p| GaborSpec::of_cell(p)).collect();
        RfBank::from_specs(&specs, geom)
    }

    /// A bank of arbitrary pairs (surrounds, subunits, pools), one output per spec.
    pub(crate) fn from_specs(specs: &[GaborSpec], geom: &SimGeometry) -> RfBank {
        let (vw, vh) = (geom.view_width, geom.view_height);
        let stride = vw + LANES;
        let (dx_deg, dy_deg) = geom.view_deg_per_px();
        let mut windows = Vec::with_capacity(specs.len());
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        for p in specs {
            let sigma = p.sigma_deg;
            let reach = 2.5 * sigma;
            // Columns grow with azimuth, rows shrink with elevation.
            let (a0, _) = geom.view_azimuth_deg;
            let (_, e1) = geom.view_elevation_deg;
            let col_c = (p.azimuth_deg - a0) / dx_deg - 0.5;
            let row_c = (e1 - p.elevation_deg) / dy_deg - 0.5;
            let col0 = ((col_c - reach / dx_deg).floor().max(0.0) as usize).min(vw - 1);
            let col1 = ((col_c + reach / dx_deg).ceil().max(0.0) as usize).min(vw - 1);
            let row0 = ((row_c - reach / dy_deg).floor().max(0.0) as usize).min(vh - 1);
            let row1 = ((row_c + reach / dy_deg).ceil().max(0.0) as usize).min(vh - 1);
            let cols = (col1 + 1 - col0).div_ceil(LANES) * LANES;
            let rows = row1 + 1 - row0;
            // Normalised so that an optimal full-contrast grating gives a unit-amplitude pair:
            // the envelope integrates to 2 pi sigma^2, the carrier halves it.
            let norm = dx_deg * dy_deg / (std::f64::consts::PI * sigma * sigma);
            let k = std::f64::consts::TAU * p.spatial_freq_cpd;
            let (ds, dc) = p.direction_deg.to_radians().sin_cos();
            let phase = p.phase_deg.to_radians();
            let offset = even.len();
            for r in row0..row0 + rows {
                for c in col0..col0 + cols {
                    let (az, el) = geom.view_pixel_deg(r as f64, c as f64);
                    let (u, v) = (az - p.azimuth_deg, el - p.elevation_deg);
                    let inside = c < vw;
                    let g = if inside {
                        norm * (-(u * u + v * v) / (2.0 * sigma * sigma)).exp()
                    } else {
                        0.0
                    };
                    let arg = k * (u * dc + v * ds) + phase;
                    even.push((g * arg.cos()) as f32);
                    odd.push((g * arg.sin()) as f32);
                }
            }
            windows.push(Window {
                offset,
                row0,
                col0,
                rows,
                cols,
            });
        }
        RfBank {
            view_w: vw,
            view_h: vh,
            stride,
            deg_per_px: (dx_deg, dy_deg),
            windows,
            even,
            odd,
            contrast: vec![0.0; stride * vh],
        }
    }

    /// Loads `view` (u8, 128 = mean grey) as the retina sees it with the eye rotated by
    /// `gaze_deg` (azimuth, elevation): a receptive field at screen position p at zero gaze
    /// looks at p + gaze. Bilinear; the screen beyond the view is mean grey.
    pub(crate) fn load_view(&mut self, view: &[u8], gaze_deg: (f64, f64)) {
        let (vw, vh, stride) = (self.view_w, self.view_h, self.stride);
        let shift_c = (gaze_deg.0 / self.deg_per_px.0) as f32;
        let shift_r = (-gaze_deg.1 / self.deg_per_px.1) as f32;
        let at = |r: i64, c: i64| -> f32 {
            if r < 0 || c < 0 || r >= vh as i64 || c >= vw as i64 {
                0.0
            } else {
                let p = view
                    .get(r as usize * vw + c as usize)
                    .copied()
                    .unwrap_or(128);
                (p as f32 / 255.0 - 0.5) * 2.0
            }
        };
        let (fr, fc) = (shift_r.floor(), shift_c.floor());
        let (wr, wc) = (shift_r - fr, shift_c - fc);
        let (ir, ic) = (fr as i64, fc as i64);
        for r in 0..vh {
            for c in 0..vw {
                let (sr, sc) = (r as i64 + ir, c as i64 + ic);
                let v = (1.0 - wr) * ((1.0 - wc) * at(sr, sc) + wc * at(sr, sc + 1))
                    + wr * ((1.0 - wc) * at(sr + 1, sc) + wc * at(sr + 1, sc + 1));
                self.contrast[r * stride + c] = v;
            }
        }
    }

    /// Squares the loaded contrast in place, so that a pair built with zero carrier frequency
    /// reads the local contrast energy under its envelope (a normalisation pool).
    pub(crate) fn square_contrast(&mut self) {
        for v in &mut self.contrast {
            *v *= *v;
        }
    }

    /// Pair `i`'s weights over the whole view (row-major, zero outside its window), for the
    /// static model that scores single images.
    pub(crate) fn dense_weights(&self, i: usize) -> (Vec<f64>, Vec<f64>) {
        let n = self.view_w * self.view_h;
        let (mut e, mut o) = (vec![0.0; n], vec![0.0; n]);
        if let Some(w) = self.windows.get(i) {
            for r in 0..w.rows {
                for c in 0..w.cols {
                    let (row, col) = (w.row0 + r, w.col0 + c);
                    if col < self.view_w {
                        let k = w.offset + r * w.cols + c;
                        e[row * self.view_w + col] = f64::from(self.even[k]);
                        o[row * self.view_w + col] = f64::from(self.odd[k]);
                    }
                }
            }
        }
        (e, o)
    }

    /// Filters the loaded view: `even[i]`, `odd[i]` are cell i's quadrature responses.
    pub(crate) fn project(&self, even_out: &mut [f32], odd_out: &mut [f32]) {
        for ((w, e_out), o_out) in self
            .windows
            .iter()
            .zip(even_out.iter_mut())
            .zip(odd_out.iter_mut())
        {
            let mut acc_e = [0.0f32; LANES];
            let mut acc_o = [0.0f32; LANES];
            for r in 0..w.rows {
                let img_start = (w.row0 + r) * self.stride + w.col0;
                let Some(img) = self.contrast.get(img_start..img_start + w.cols) else {
                    continue;
                };
                let wstart = w.offset + r * w.cols;
                let we = &self.even[wstart..wstart + w.cols];
                let wo = &self.odd[wstart..wstart + w.cols];
                for ((i8, e8), o8) in img
                    .chunks_exact(LANES)
                    .zip(we.chunks_exact(LANES))
                    .zip(wo.chunks_exact(LANES))
                {
                    for l in 0..LANES {
                        acc_e[l] += i8[l] * e8[l];
                        acc_o[l] += i8[l] * o8[l];
                    }
                }
            }
            *e_out = acc_e.iter().sum();
            *o_out = acc_o.iter().sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tuning::CellType;

    fn cell(az: f64, el: f64, dir: f64, sf: f64) -> CellParams {
        CellParams {
            rf_azimuth_deg: az,
            rf_elevation_deg: el,
            rf_sigma_deg: 8.0,
            preferred_direction_deg: dir,
            preferred_orientation_deg: dir % 180.0,
            spatial_freq_cpd: sf,
            temporal_freq_hz: 2.0,
            phase_deg: 30.0,
            direction_selectivity: 0.0,
            cell_type: CellType::Complex,
            sustained_fraction: 0.2,
            baseline_rate_hz: 1.0,
            max_rate_hz: 10.0,
            c50: 0.2,
            nr_exponent: 2.0,
            run_coupling: 0.0,
            pupil_coupling: 0.0,
            latent_coupling: 0.0,
            f0_photons: 5.0,
            dff_per_spike: 0.2,
            v1: None,
        }
    }

    fn grating(geom: &SimGeometry, dir: f64, sf: f64, phase: f64) -> Vec<u8> {
        let (s, c) = dir.to_radians().sin_cos();
        let mut v = Vec::new();
        for r in 0..geom.view_height {
            for col in 0..geom.view_width {
                let (az, el) = geom.view_pixel_deg(r as f64, col as f64);
                let arg = std::f64::consts::TAU * sf * (az * c + el * s) + phase;
                v.push((127.5 * (1.0 + arg.cos())).round() as u8);
            }
        }
        v
    }

    #[test]
    fn an_optimal_grating_gives_a_unit_quadrature_pair() {
        let geom = SimGeometry::default();
        let cells = [cell(0.0, 0.0, 30.0, 0.06), cell(-20.0, 10.0, 200.0, 0.05)];
        let refs: Vec<&CellParams> = cells.iter().collect();
        let mut bank = RfBank::new(&refs, &geom);
        let (mut e, mut o) = (vec![0.0; 2], vec![0.0; 2]);
        for (i, c) in cells.iter().enumerate() {
            for phase in [0.0, 1.0, 2.5] {
                bank.load_view(
                    &grating(&geom, c.preferred_direction_deg, c.spatial_freq_cpd, phase),
                    (0.0, 0.0),
                );
                bank.project(&mut e, &mut o);
                let amp = e[i].hypot(o[i]);
                assert!(
                    (amp - 1.0).abs() < 0.1,
                    "cell {i}, phase {phase}: amplitude {amp}"
                );
            }
            // The orthogonal grating barely drives it.
            bank.load_view(
                &grating(
                    &geom,
                    c.preferred_direction_deg + 90.0,
                    c.spatial_freq_cpd,
                    0.0,
                ),
                (0.0, 0.0),
            );
            bank.project(&mut e, &mut o);
            assert!(
                e[i].hypot(o[i]) < 0.2,
                "cell {i}: orthogonal drive {}",
                e[i].hypot(o[i])
            );
        }
    }

    #[test]
    fn looking_right_moves_the_scene_left_on_the_retina() {
        let geom = SimGeometry::default();
        let mut bank = RfBank::new(&[], &geom);
        let (w, h) = (geom.view_width, geom.view_height);
        let mut view = vec![128u8; w * h];
        let (r0, c0) = (18, 30);
        view[r0 * w + c0] = 255;
        let (dx, dy) = geom.view_deg_per_px();
        // Eye rotated 3 px right and 2 px up: the spot lands 3 px left and 2 px lower.
        bank.load_view(&view, (3.0 * dx, 2.0 * dy));
        let (mut best, mut at) = (f32::MIN, (0, 0));
        for r in 0..h {
            for c in 0..w {
                let v = bank.contrast[r * bank.stride + c];
                if v > best {
                    best = v;
                    at = (r, c);
                }
            }
        }
        assert_eq!(at, (r0 + 2, c0 - 3));
        assert!((best - 1.0).abs() < 0.01);
    }
}
