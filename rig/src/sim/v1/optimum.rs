//! Each cell's true optimum: the static image, under a mean-luminance and RMS-contrast budget,
//! that drives the cell's own model hardest.
//!
//! Dense parametric search first (full-field gratings over orientation, spatial frequency and
//! phase; Gabor patches over position, size, orientation, frequency and phase near the
//! receptive field; corners of two patches for conjunction cells; the cell's own filters as
//! matched stimuli), every candidate projected onto the budget; then projected gradient ascent
//! on the static drive (closed-form gradient, [`StaticCell::drive`]) from the best candidates.
//! The rate is monotone in the drive, so the drive is what is maximised. The result is scored
//! as the u8 image the simulator would be shown.

use super::budget::{BudgetError, StimBudget, contrast_of};
use super::static_model::{StaticCell, StaticResponse, view_contrast};
use crate::sim::config::{SimConfig, SimGeometry};
use crate::sim::tuning::CellParams;
use std::f64::consts::TAU;

/// Which family the optimum came from before refinement.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StimulusFamily {
    /// A full-field grating.
    Grating,
    /// A Gabor patch.
    Patch,
    /// Two Gabor patches meeting at a vertex.
    Corner,
    /// One of the cell's own filters (or, for a conjunction cell, its two subunits').
    Matched,
}

/// A cell's best static stimulus under a budget.
#[derive(Clone, Debug)]
pub struct Optimum {
    /// The image, `view_height x view_width` u8, row-major, matched to the budget by the
    /// shared matcher (as the MEIs are).
    pub image: Vec<u8>,
    /// The same before rounding, [0, 1].
    pub pixels: Vec<f64>,
    /// The cell's steady-state response to `image`.
    pub response: StaticResponse,
    /// The family of the start that gradient ascent refined into the optimum.
    pub family: StimulusFamily,
    /// The best full-field grating of the search, scored the same way (u8): the bar a grating
    /// pool can reach at best.
    pub best_grating: StaticResponse,
}

/// How hard to search.
#[derive(Copy, Clone, Debug)]
pub struct SearchOptions {
    /// Candidates refined by gradient ascent.
    pub starts: usize,
    /// Gradient steps per start.
    pub steps: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            starts: 4,
            steps: 300,
        }
    }
}

/// Pixel values of a candidate, row-major over the view, as a function of (azimuth,
/// elevation).
fn render(geom: &SimGeometry, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut px = Vec::with_capacity(geom.view_width * geom.view_height);
    for r in 0..geom.view_height {
        for c in 0..geom.view_width {
            let (az, el) = geom.view_pixel_deg(r as f64, c as f64);
            px.push(f(az, el));
        }
    }
    px
}

/// A Gabor patch's contrast at (az, el): envelope centred at (`az0`, `el0`) with s.d. `sigma`
/// (infinite: a grating), carrier of `sf` along direction `dir` (rad), phase `ph` (rad).
#[allow(clippy::too_many_arguments)]
fn gabor(az: f64, el: f64, az0: f64, el0: f64, sigma: f64, dir: f64, sf: f64, ph: f64) -> f64 {
    let (u, v) = (az - az0, el - el0);
    let env = if sigma.is_finite() {
        (-(u * u + v * v) / (2.0 * sigma * sigma)).exp()
    } else {
        1.0
    };
    env * (TAU * sf * (u * dir.cos() + v * dir.sin()) + ph).cos()
}

struct Candidate {
    pixels: Vec<f64>,
    drive: f64,
    family: StimulusFamily,
}

struct Search<'a> {
    model: &'a StaticCell,
    budget: StimBudget,
    found: Vec<Candidate>,
}

impl Search<'_> {
    fn offer(&mut self, mut pixels: Vec<f64>, family: StimulusFamily) {
        self.budget.project(&mut pixels);
        let drive = self.model.drive(&contrast_of(&pixels), None);
        self.found.push(Candidate {
            pixels,
            drive,
            family,
        });
    }

    /// Projected gradient ascent from `start`; returns the best iterate.
    fn ascend(&self, start: &Candidate, steps: usize) -> Candidate {
        let n = start.pixels.len();
        // The budget's L2 radius of the deviation from the mean, in pixel units.
        let radius = self.budget.rms_contrast * (n as f64).sqrt();
        let mut x = start.pixels.clone();
        let mut grad = vec![0.0; n];
        let (mut best, mut best_drive) = (x.clone(), start.drive);
        for k in 0..steps {
            // Step length decays geometrically from a third of the radius to a thousandth.
            let eta = radius * 0.3 * (0.003f64 / 0.3).powf(k as f64 / steps.max(1) as f64);
            let drive = self.model.drive(&contrast_of(&x), Some(&mut grad));
            if drive > best_drive {
                best_drive = drive;
                best.copy_from_slice(&x);
            }
            let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            if norm <= 0.0 {
                break;
            }
            // d drive / d pixel = 2 d drive / d contrast; only the direction matters here.
            for (xi, gi) in x.iter_mut().zip(&grad) {
                *xi += eta * gi / norm;
            }
            self.budget.project(&mut x);
        }
        let drive = self.model.drive(&contrast_of(&x), None);
        if drive > best_drive {
            best_drive = drive;
            best = x;
        }
        Candidate {
            pixels: best,
            drive: best_drive,
            family: start.family,
        }
    }
}

/// The cell's best static stimulus under `budget` (see the module docs for the search).
pub fn true_optimum(
    cell: &CellParams,
    cfg: &SimConfig,
    geom: &SimGeometry,
    budget: StimBudget,
    opts: SearchOptions,
) -> Result<Optimum, BudgetError> {
    budget.validate()?;
    let model = StaticCell::new(cell, cfg, geom);
    let mut s = Search {
        model: &model,
        budget,
        found: Vec::new(),
    };
    let to_px = |f: &dyn Fn(f64, f64) -> f64| render(geom, |a, e| 0.5 + 0.5 * f(a, e));
    // Full-field gratings: orientation every 7.5 deg, 10 frequencies up to the view's
    // Nyquist, 8 phases.
    let nyquist = 0.5 / geom.view_deg_per_px().0.max(geom.view_deg_per_px().1);
    for o in 0..24 {
        let dir = (o as f64 * 7.5).to_radians();
        for f in 0..10 {
            let sf = 0.01 * (0.95 * nyquist / 0.01).powf(f as f64 / 9.0);
            for p in 0..8 {
                let ph = p as f64 * TAU / 8.0;
                let px = to_px(&|a, e| gabor(a, e, 0.0, 0.0, f64::INFINITY, dir, sf, ph));
                s.offer(px, StimulusFamily::Grating);
            }
        }
    }
    let n_gratings = s.found.len();
    // Gabor patches near the receptive field.
    let (az0, el0, sig) = (
        cell.rf_azimuth_deg,
        cell.rf_elevation_deg,
        cell.rf_sigma_deg,
    );
    let grid = [-0.75, 0.0, 0.75];
    for dy in grid {
        for dx in grid {
            for size in [0.5, 0.75, 1.0, 1.5, 2.5] {
                for o in 0..12 {
                    let dir = (o as f64 * 15.0).to_radians();
                    for fm in [0.5, 0.7, 1.0, 1.4, 2.0] {
                        let sf = (cell.spatial_freq_cpd * fm).min(0.95 * nyquist);
                        for p in 0..4 {
                            let ph = p as f64 * TAU / 4.0;
                            let (a0, e0) = (az0 + dx * sig, el0 + dy * sig);
                            let px = to_px(&|a, e| gabor(a, e, a0, e0, size * sig, dir, sf, ph));
                            s.offer(px, StimulusFamily::Patch);
                        }
                    }
                }
            }
        }
    }
    // Corners for conjunction cells: two patches from a vertex near the receptive field.
    if let Some(c) = cell.v1.as_ref().and_then(|v| v.conjunction.as_ref()) {
        let ps = c.sigma_deg;
        for dy in grid {
            for dx in grid {
                let (va, ve) = (az0 + dx * 0.5 * sig, el0 + dy * 0.5 * sig);
                for o in 0..12 {
                    let arm_a = (o as f64 * 30.0).to_radians();
                    for open in [
                        60.0f64, 75.0, 90.0, 105.0, 120.0, -60.0, -75.0, -90.0, -105.0, -120.0,
                    ] {
                        let arm_b = arm_a + open.to_radians();
                        for ph in [
                            (0.0, 0.0),
                            (0.5 * TAU / 2.0, 0.5 * TAU / 2.0),
                            (0.0, TAU / 2.0),
                        ] {
                            let d = 1.2 * ps;
                            let (pa, pb) = (
                                (va + d * arm_a.cos(), ve + d * arm_a.sin()),
                                (va + d * arm_b.cos(), ve + d * arm_b.sin()),
                            );
                            let quarter = TAU / 4.0;
                            let px = to_px(&|a, e| {
                                0.5 * gabor(
                                    a,
                                    e,
                                    pa.0,
                                    pa.1,
                                    ps,
                                    arm_a + quarter,
                                    c.spatial_freq_cpd,
                                    ph.0,
                                ) + 0.5
                                    * gabor(
                                        a,
                                        e,
                                        pb.0,
                                        pb.1,
                                        ps,
                                        arm_b + quarter,
                                        c.spatial_freq_cpd,
                                        ph.1,
                                    )
                            });
                            s.offer(px, StimulusFamily::Corner);
                        }
                    }
                }
            }
        }
    }
    // The cell's own filters as stimuli (the optimum of a linear stage under an L2 budget).
    for filter in model.matched_stimuli() {
        let px = filter.iter().map(|w| 0.5 + w).collect();
        s.offer(px, StimulusFamily::Matched);
    }
    let best_grating_px = s.found[..n_gratings]
        .iter()
        .max_by(|a, b| a.drive.total_cmp(&b.drive))
        .map(|c| c.pixels.clone())
        .unwrap_or_default();
    let mut order: Vec<usize> = (0..s.found.len()).collect();
    order.sort_by(|&a, &b| s.found[b].drive.total_cmp(&s.found[a].drive));
    let mut best: Option<Candidate> = None;
    for &i in order.iter().take(opts.starts.max(1)) {
        let c = s.ascend(&s.found[i], opts.steps);
        if best.as_ref().is_none_or(|b| c.drive > b.drive) {
            best = Some(c);
        }
    }
    let best = best.unwrap_or(Candidate {
        pixels: vec![budget.mean_luminance; model.pixels()],
        drive: 0.0,
        family: StimulusFamily::Grating,
    });
    let image = budget.match_to_u8(&best.pixels)?;
    Ok(Optimum {
        response: model.response(&view_contrast(&image)),
        best_grating: model.response(&view_contrast(&budget.match_to_u8(&best_grating_px)?)),
        image,
        pixels: best.pixels,
        family: best.family,
    })
}
