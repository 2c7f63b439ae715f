//! A cell's response to a static image, and its gradient: the truth later code scores any
//! image against (an MEI, a pool frame, a library item).
//!
//! "Response" is the steady-state rate while the image stays on: the transient of the
//! band-pass temporal filter has passed, so each channel is the spatial drive times the
//! filter's sustained gain, and a constant has no temporal derivative, so direction
//! selectivity only divides by 1 + ds ([`Bandpass::sustained_gain`]). The brain state is
//! neutral (not running, pupil at its mean, latent 0: gain 1), and the gaze is straight ahead.
//! For complex and conjunction cells the whole response to a flash is the spatial drive times
//! one time course, so any image ranks the same by its mean rate over a presentation as by
//! this steady state; simple cells' onset transients also mix in the odd filter.
//!
//! The filters are exactly the simulator's ([`RfBank`] windows, unpacked over the view), in
//! f64.

use super::filters::CellFilters;
use crate::sim::config::{SimConfig, SimGeometry};
use crate::sim::neurons::Bandpass;
use crate::sim::receptive_field::{GaborSpec, RfBank};
use crate::sim::tuning::CellParams;

/// A cell's steady-state response to a static image.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StaticResponse {
    /// Drive into the output nonlinearity (1 = an optimal full-contrast grating's, before the
    /// temporal filter's sustained gain).
    pub drive: f64,
    /// Firing rate, Hz.
    pub rate_hz: f64,
}

/// One quadrature pair over the whole view.
struct Dense {
    even: Vec<f64>,
    odd: Vec<f64>,
}

impl Dense {
    fn of(spec: GaborSpec, geom: &SimGeometry) -> Dense {
        let (even, odd) = RfBank::from_specs(&[spec], geom).dense_weights(0);
        Dense { even, odd }
    }

    fn dot(&self, x: &[f64]) -> (f64, f64) {
        let (mut e, mut o) = (0.0, 0.0);
        for ((xi, we), wo) in x.iter().zip(&self.even).zip(&self.odd) {
            e += xi * we;
            o += xi * wo;
        }
        (e, o)
    }

    /// Quadrature energy and, if `grad` is given, adds `scale` times its gradient to it.
    fn energy(&self, x: &[f64], grad: Option<(&mut [f64], f64)>) -> f64 {
        let (e, o) = self.dot(x);
        let h = e.hypot(o);
        if let Some((g, scale)) = grad
            && h > 0.0
        {
            let (a, b) = (scale * e / h, scale * o / h);
            for ((gi, we), wo) in g.iter_mut().zip(&self.even).zip(&self.odd) {
                *gi += a * we + b * wo;
            }
        }
        h
    }
}

/// One cell's static model: its filters over the whole view and its output stage.
pub struct StaticCell {
    centre: Option<Dense>,
    complex: bool,
    subunits: Option<[Dense; 2]>,
    surround: Option<Dense>,
    pool: Option<Vec<f64>>,
    filters: CellFilters,
    sustained_gain: f64,
    baseline_hz: f64,
    max_hz: f64,
    c50: f64,
    exponent: f64,
    pixels: usize,
}

impl StaticCell {
    /// The static model of `cell` in a mouse with settings `cfg` on a rig with `geom`.
    pub fn new(cell: &CellParams, cfg: &SimConfig, geom: &SimGeometry) -> StaticCell {
        let filters = CellFilters::of(cell);
        StaticCell {
            centre: filters.centre.map(|s| Dense::of(s, geom)),
            complex: filters.complex,
            subunits: filters.subunits.map(|s| s.map(|s| Dense::of(s, geom))),
            surround: filters.surround.map(|s| Dense::of(s, geom)),
            pool: filters.pool.map(|s| Dense::of(s, geom).even),
            filters,
            sustained_gain: Bandpass::sustained_gain(cell, cfg.neural_dt_s),
            baseline_hz: cell.baseline_rate_hz,
            max_hz: cell.max_rate_hz,
            c50: cell.c50,
            exponent: cell.nr_exponent,
            pixels: geom.view_width * geom.view_height,
        }
    }

    /// The cell's own filters as images (deviation from the mean, any scale): the centre's
    /// even and odd filters, or the four even/odd sums of a conjunction cell's subunits. For a
    /// linear stage these are the optimum under an RMS budget.
    pub fn matched_stimuli(&self) -> Vec<Vec<f64>> {
        let sum = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect();
        match (&self.subunits, &self.centre) {
            (Some([a, b]), _) => vec![
                sum(&a.even, &b.even),
                sum(&a.even, &b.odd),
                sum(&a.odd, &b.even),
                sum(&a.odd, &b.odd),
            ],
            (None, Some(c)) => vec![c.even.clone(), c.odd.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// Pixels of the view the model reads.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// The rate (Hz) the output nonlinearity gives for `drive`.
    pub fn rate_for_drive(&self, drive: f64) -> f64 {
        let dp = if drive > 0.0 {
            drive.powf(self.exponent)
        } else {
            0.0
        };
        self.baseline_hz + self.max_hz * dp / (dp + self.c50.powf(self.exponent))
    }

    /// Drive and rate for `contrast` (the view as the retina sees it: row-major, each pixel
    /// `(p / 255 - 0.5) * 2`).
    pub fn response(&self, contrast: &[f64]) -> StaticResponse {
        let drive = self.drive(contrast, None);
        StaticResponse {
            drive,
            rate_hz: self.rate_for_drive(drive),
        }
    }

    /// Drive for `contrast`; with `grad`, also writes d drive / d contrast into it.
    pub fn drive(&self, x: &[f64], mut grad: Option<&mut [f64]>) -> f64 {
        if let Some(g) = grad.as_deref_mut() {
            g.fill(0.0);
        }
        // The centre (or the subunits' AND), with its gradient in `grad` for now.
        let centre = if let Some([a, b]) = &self.subunits {
            let (ea, eb) = (a.energy(x, None), b.energy(x, None));
            let e = (ea * eb).sqrt();
            if let Some(g) = grad.as_deref_mut()
                && e > 0.0
            {
                a.energy(x, Some((g, eb / (2.0 * e))));
                b.energy(x, Some((g, ea / (2.0 * e))));
            }
            e
        } else if let Some(c) = &self.centre {
            if self.complex {
                c.energy(x, grad.as_deref_mut().map(|g| (g, 1.0)))
            } else {
                let (e, _) = c.dot(x);
                if let Some(g) = grad.as_deref_mut()
                    && e > 0.0
                {
                    g.copy_from_slice(&c.even);
                }
                e.max(0.0)
            }
        } else {
            0.0
        };
        let f = &self.filters;
        let surround = self.surround.as_ref().map_or(0.0, |s| s.energy(x, None));
        let pool = self.pool.as_ref().map_or(0.0, |w| {
            w.iter()
                .zip(x)
                .map(|(wi, xi)| wi * xi * xi)
                .sum::<f64>()
                .max(0.0)
                .sqrt()
        });
        let gain = f.gain(surround, pool);
        let drive = self.sustained_gain * gain * centre;
        if let Some(g) = grad {
            // d(G E / den) = G (dE den - E d den) / den^2 = gain dE - drive/den d den.
            let den = 1.0 + f.surround_weight * surround + f.pool_weight * pool;
            let k = self.sustained_gain * gain;
            for gi in g.iter_mut() {
                *gi *= k;
            }
            let back = -drive / den;
            if let Some(s) = &self.surround {
                s.energy(x, Some((g, back * f.surround_weight)));
            }
            if let (Some(w), true) = (&self.pool, pool > 0.0) {
                let scale = back * f.pool_weight / pool;
                for ((gi, wi), xi) in g.iter_mut().zip(w).zip(x) {
                    *gi += scale * wi * xi;
                }
            }
        }
        drive
    }
}

/// Contrast of a u8 view as the simulator's retina sees it at zero gaze.
pub fn view_contrast(image: &[u8]) -> Vec<f64> {
    image
        .iter()
        .map(|&p| f64::from((p as f32 / 255.0 - 0.5) * 2.0))
        .collect()
}

/// The steady-state response of `cell` to the static u8 `image` (a `view_height x
/// view_width` frame, 128 = grey) held on screen; see the module docs for the definition.
/// Builds the cell's filters each call: for many images, keep a [`StaticCell`].
pub fn static_response(
    cell: &CellParams,
    cfg: &SimConfig,
    geom: &SimGeometry,
    image: &[u8],
) -> StaticResponse {
    StaticCell::new(cell, cfg, geom).response(&view_contrast(image))
}
