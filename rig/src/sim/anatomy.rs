//! The imaged tissue: where the somata sit, what each looks like, blood vessels and neuropil.
//!
//! Somata are placed by random sequential addition, away from vessels and without overlap while
//! the plane has room. When more cells are asked for than fit (20,000 in 512x512 px, say), the
//! allowed centre distance shrinks step by step, as if cells from slightly different depths
//! shared the optical section. A soma is a soft-edged ellipse with a dimmer nucleus (GCaMP is
//! cytosolic), so footprints look like the rings real data shows.

use super::config::{SimConfig, SimGeometry};
use super::field::smooth_field;
use super::random::{normal, uniform};
use rand::Rng;

/// One soma in the imaging plane.
pub(crate) struct Soma {
    pub centre_y_px: f32,
    pub centre_x_px: f32,
    pub radius_px: f32,
    /// (pixel index y * width + x, weight in (0, 1]), vessel shading included.
    pub footprint: Vec<(u32, f32)>,
}

/// The static tissue the microscope images.
pub(crate) struct Anatomy {
    pub somata: Vec<Soma>,
    /// Resting neuropil brightness per pixel, photons per frame, vessel shading included.
    pub neuropil_base: Vec<f32>,
    /// Two smooth zero-mean spatial modes along which the neuropil fluctuates.
    pub neuropil_modes: [Vec<f32>; 2],
}

/// Builds the tissue for `cfg` in a `geom.imaging_width` x `geom.imaging_height` plane.
pub(crate) fn build(cfg: &SimConfig, geom: &SimGeometry, rng: &mut impl Rng) -> Anatomy {
    let (w, h) = (geom.imaging_width, geom.imaging_height);
    let transmission = vessels(w, h, cfg.microscope.vessel_count, rng);
    let somata = place_somata(cfg, w, h, &transmission, rng);

    // Neuropil: a broad brightness gradient, fine granular texture (dendrites and axons, which
    // also give registration something to lock on to), and two slow modes of fluctuation.
    let broad = smooth_field(w, h, 120.0, rng);
    let fine = smooth_field(w, h, 3.0, rng);
    let base_photons = cfg.microscope.neuropil_photons as f32;
    let neuropil_base = (0..w * h)
        .map(|p| {
            let shape = (1.0 + 0.25 * broad[p] + 0.2 * fine[p]).max(0.2);
            base_photons * shape * transmission[p]
        })
        .collect();
    let neuropil_modes = [
        smooth_field(w, h, 150.0, rng),
        smooth_field(w, h, 50.0, rng),
    ];
    Anatomy {
        somata,
        neuropil_base,
        neuropil_modes,
    }
}

/// Transmission map of `count` blood vessels: smooth curves entering from an edge, a few to ten
/// px in radius, dark in the core.
fn vessels(w: usize, h: usize, count: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut t = vec![1.0f32; w * h];
    let (wf, hf) = (w as f64, h as f64);
    for _ in 0..count {
        let radius = uniform(rng, 2.5, 9.0);
        let depth = uniform(rng, 0.5, 0.85) as f32;
        // Start on a random edge, heading inwards.
        let (mut y, mut x, mut heading) = match rng.random_range(0..4) {
            0 => (0.0, uniform(rng, 0.0, wf), std::f64::consts::FRAC_PI_2),
            1 => (
                hf - 1.0,
                uniform(rng, 0.0, wf),
                -std::f64::consts::FRAC_PI_2,
            ),
            2 => (uniform(rng, 0.0, hf), 0.0, 0.0),
            _ => (uniform(rng, 0.0, hf), wf - 1.0, std::f64::consts::PI),
        };
        heading += uniform(rng, -0.6, 0.6);
        let mut turn = 0.0;
        let reach = radius.ceil() as i64 + 2;
        for _ in 0..(3 * (w + h)) {
            turn = 0.98 * turn + 0.004 * normal(rng);
            heading += turn;
            y += heading.sin();
            x += heading.cos();
            if y < -reach as f64
                || x < -reach as f64
                || y > hf + reach as f64
                || x > wf + reach as f64
            {
                break;
            }
            let (cy, cx) = (y.round() as i64, x.round() as i64);
            for py in (cy - reach).max(0)..(cy + reach + 1).min(h as i64) {
                for px in (cx - reach).max(0)..(cx + reach + 1).min(w as i64) {
                    let d = ((py as f64 - y).powi(2) + (px as f64 - x).powi(2)).sqrt() / radius;
                    let v = 1.0 - depth * (-(d.powi(4))).exp() as f32;
                    let i = py as usize * w + px as usize;
                    if v < t[i] {
                        t[i] = v;
                    }
                }
            }
        }
    }
    t
}

fn place_somata(
    cfg: &SimConfig,
    w: usize,
    h: usize,
    transmission: &[f32],
    rng: &mut impl Rng,
) -> Vec<Soma> {
    let [r_lo, r_hi] = cfg.cells.soma_radius_px;
    let gap_px = 1.0;
    let cell_px = 2.0 * r_hi + gap_px;
    let (gw, gh) = (
        (w as f64 / cell_px).ceil() as usize + 1,
        (h as f64 / cell_px).ceil() as usize + 1,
    );
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); gw * gh];
    let mut placed: Vec<(f64, f64, f64)> = Vec::with_capacity(cfg.neurons);
    // Scale on the no-overlap distance; only ever shrinks, so late cells do not retry in vain.
    let mut spacing = 1.0f64;
    let margin = 2.0;
    while placed.len() < cfg.neurons {
        let r = uniform(rng, r_lo, r_hi);
        let mut done = false;
        for _ in 0..30 {
            let y = uniform(rng, margin, h as f64 - margin);
            let x = uniform(rng, margin, w as f64 - margin);
            // Somata do not sit inside vessels while there is room elsewhere.
            if spacing > 0.5 && transmission[y as usize * w + x as usize] < 0.8 {
                continue;
            }
            let (gy, gx) = ((y / cell_px) as usize, (x / cell_px) as usize);
            let mut clash = false;
            'scan: for ny in gy.saturating_sub(1)..(gy + 2).min(gh) {
                for nx in gx.saturating_sub(1)..(gx + 2).min(gw) {
                    for &j in &grid[ny * gw + nx] {
                        let (yj, xj, rj) = placed[j];
                        let min_d = spacing * (r + rj + gap_px);
                        if (y - yj).powi(2) + (x - xj).powi(2) < min_d * min_d {
                            clash = true;
                            break 'scan;
                        }
                    }
                }
            }
            if !clash {
                grid[gy * gw + gx].push(placed.len());
                placed.push((y, x, r));
                done = true;
                break;
            }
        }
        if !done {
            spacing *= 0.9;
            if spacing < 0.05 {
                spacing = 0.0;
            }
        }
    }
    placed
        .into_iter()
        .map(|(y, x, r)| Soma {
            centre_y_px: y as f32,
            centre_x_px: x as f32,
            radius_px: r as f32,
            footprint: footprint(y, x, r, w, h, transmission, rng),
        })
        .collect()
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// A soft-edged, slightly elliptical soma with a dimmer nucleus.
fn footprint(
    y: f64,
    x: f64,
    r: f64,
    w: usize,
    h: usize,
    transmission: &[f32],
    rng: &mut impl Rng,
) -> Vec<(u32, f32)> {
    let aspect = uniform(rng, 0.85, 1.15);
    let angle = uniform(rng, 0.0, std::f64::consts::PI);
    let (s, c) = angle.sin_cos();
    let nucleus_dim = uniform(rng, 0.35, 0.6);
    let reach = (r * 1.2 + 3.0).ceil() as i64;
    let (cy, cx) = (y.round() as i64, x.round() as i64);
    let mut fp = Vec::new();
    for py in (cy - reach).max(0)..(cy + reach + 1).min(h as i64) {
        for px in (cx - reach).max(0)..(cx + reach + 1).min(w as i64) {
            let (dy, dx) = (py as f64 - y, px as f64 - x);
            let u = (dx * c + dy * s) / aspect;
            let v = (-dx * s + dy * c) * aspect;
            let d = (u * u + v * v).sqrt();
            let body = sigmoid((r - d) / 0.7);
            let nucleus = sigmoid((0.55 * r - d) / 0.8);
            let i = py as usize * w + px as usize;
            let wgt = body * (1.0 - nucleus_dim * nucleus) * transmission[i] as f64;
            if wgt > 0.03 {
                fp.push((i as u32, wgt as f32));
            }
        }
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::{Stream, stream};

    fn geom(w: usize, h: usize) -> SimGeometry {
        SimGeometry {
            imaging_width: w,
            imaging_height: h,
            ..SimGeometry::default()
        }
    }

    #[test]
    fn somata_do_not_overlap_when_there_is_room() {
        let cfg = SimConfig {
            neurons: 150,
            ..SimConfig::default()
        };
        let a = build(&cfg, &geom(256, 256), &mut stream(1, Stream::Anatomy));
        assert_eq!(a.somata.len(), 150);
        for (i, si) in a.somata.iter().enumerate() {
            assert!(!si.footprint.is_empty());
            for sj in &a.somata[i + 1..] {
                let d = ((si.centre_y_px - sj.centre_y_px).powi(2)
                    + (si.centre_x_px - sj.centre_x_px).powi(2))
                .sqrt();
                assert!(d >= si.radius_px + sj.radius_px, "somata overlap: {d}");
            }
        }
    }

    #[test]
    fn overfull_plane_still_places_every_cell() {
        let cfg = SimConfig {
            neurons: 3000,
            ..SimConfig::default()
        };
        let a = build(&cfg, &geom(128, 128), &mut stream(1, Stream::Anatomy));
        assert_eq!(a.somata.len(), 3000);
    }

    #[test]
    fn vessels_darken_the_tissue() {
        let t = vessels(128, 128, 4, &mut stream(2, Stream::Anatomy));
        let dark = t.iter().filter(|&&v| v < 0.6).count();
        assert!(dark > 50, "only {dark} px under vessels");
        assert!(t.iter().all(|&v| v > 0.1 && v <= 1.0));
        assert!(
            vessels(128, 128, 0, &mut stream(2, Stream::Anatomy))
                .iter()
                .all(|&v| v == 1.0)
        );
    }
}
