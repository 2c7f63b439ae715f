//! The verify phase replaced by the truth: every designed image scored on its target cell's
//! static model (the noise-free steady-state rate, `sim::v1::static_model`) as the display
//! shows it, beside the cell's true optimum under the same budget, and Poisson repeats of each
//! for the significance test.

use super::InceptionExperiment;
use crate::sim::v1::{SearchOptions, StaticCell, StimBudget, true_optimum, view_contrast};
use crate::sim::{SimConfig, SimGeometry, SimMouse};
use crate::stages::decide::design::CandidatePool;
use crate::stages::decide::design::twin_refit::{TwinRefitSetup, render_entry};
use crate::stages::decide::inception::design::DesignedStimulus;
use crate::stages::decide::inception::records::{Contrast, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use twinloop_model::insilico::StimulusBudget;
use twinloop_stimulus::spec::{Rect, TwinImageSpec};
use twinloop_stimulus::{Prepared, Projection, StimulusSpec, ViewGeometry, cpu};

/// JSON has no NaN: written as null, read back as NaN.
fn nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A target's noise-free rates (Hz), or the twin's predictions (its units: events per frame).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rates {
    #[serde(deserialize_with = "nan")]
    pub mei_low: f64,
    #[serde(deserialize_with = "nan")]
    pub mei_full: f64,
    /// The best measured pool stimulus's middle frame matched to the low budget: the live
    /// verify block's key control.
    #[serde(deserialize_with = "nan")]
    pub pool_low: f64,
    /// The same frame matched to the full budget (a fair match for the full-contrast MEI; the
    /// design predicts nothing for it: NaN among the predictions).
    #[serde(deserialize_with = "nan")]
    pub pool_full: f64,
    /// The twin's predicted best of the library (low budget).
    #[serde(deserialize_with = "nan")]
    pub library: f64,
    /// The cell's true optimum under each budget (NaN among the predictions).
    #[serde(deserialize_with = "nan")]
    pub optimum_low: f64,
    #[serde(deserialize_with = "nan")]
    pub optimum_full: f64,
}

/// One target: who it is, the truth and the twin's predictions, and the Poisson samples
/// (events per frame over the response window) the significance test reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetTruth {
    pub target: u32,
    pub unit: usize,
    /// The designer's held-out CC_norm the rule chose it by.
    #[serde(deserialize_with = "nan")]
    pub heldout_cc: f64,
    pub best_pool_entry: usize,
    /// The best pool entry's mean response in the record phase (events per frame).
    #[serde(deserialize_with = "nan")]
    pub measured_best_pool: f64,
    /// A conjunction (corner) cell.
    pub conjunction: bool,
    /// Why the best pool frame has no full-contrast match (then `pool_full` is NaN).
    pub pool_full_unmatched: Option<String>,
    /// Why a budget's true optimum could not be found (then its `optimum_*` is NaN).
    #[serde(default)]
    pub optimum_failed: Vec<String>,
    pub rate_hz: Rates,
    pub predicted: Rates,
    pub samples: Samples,
}

/// `repeats` Poisson responses per stimulus, events per imaging frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Samples {
    pub mei_low: Vec<f64>,
    pub mei_full: Vec<f64>,
    pub pool_low: Vec<f64>,
    pub pool_full: Vec<f64>,
    pub library: Vec<f64>,
}

pub(super) struct Scorer<'a> {
    exp: &'a InceptionExperiment,
    sim: SimConfig,
    geom: SimGeometry,
    cells: Vec<crate::sim::CellParams>,
    view: ViewGeometry,
    size: (usize, usize),
    pool: &'a Arc<CandidatePool>,
}

impl<'a> Scorer<'a> {
    pub(super) fn new(
        exp: &'a InceptionExperiment,
        mouse: &SimMouse,
        view: ViewGeometry,
        twin: &TwinRefitSetup,
        pool: &'a Arc<CandidatePool>,
    ) -> Scorer<'a> {
        Scorer {
            exp,
            sim: mouse.config().clone(),
            geom: exp.geometry(view),
            cells: mouse.cells().iter().map(|c| c.params.clone()).collect(),
            view,
            size: (twin.config.stimulus_height, twin.config.stimulus_width),
            pool,
        }
    }

    fn budget(&self, contrast: Contrast) -> StimulusBudget {
        let c = &self.exp.inception;
        StimulusBudget {
            mean_luminance: c.mean_luminance,
            rms_contrast: match contrast {
                Contrast::Low => c.low_contrast,
                Contrast::Full => c.full_contrast,
            },
        }
    }

    /// A twin-resolution image as the display shows it: stretched over the whole view, as
    /// the live verify decision's `TwinImageSpec` is.
    fn on_view(&self, (h, w): (usize, usize), pixels: &[u8]) -> Result<Vec<u8>, String> {
        let (a0, a1) = self.view.azimuth_deg;
        let (e0, e1) = self.view.elevation_deg;
        let spec = StimulusSpec::TwinImage(TwinImageSpec {
            width: w as u32,
            height: h as u32,
            pixels: pixels.to_vec(),
            area: Rect {
                az_deg: [a0.min(a1), a0.max(a1)],
                el_deg: [e0.min(e1), e0.max(e1)],
            },
        });
        let mut prepared = Prepared::new(&spec).map_err(|e| format!("a verify image: {e}"))?;
        let mut out = vec![cpu::MEAN_GRAY; self.view.pixels()];
        cpu::render_content(
            &prepared.frame(0.0),
            &Projection::Linear(self.view),
            &mut out,
        );
        Ok(out)
    }

    /// `repeats` responses to a stimulus of true rate `rate_hz`: Poisson spike counts over
    /// the response window, as events per imaging frame (the twin's and the record's unit).
    fn draw(&self, rate_hz: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let window_s = self.exp.stimulus_s;
        let per_frame = 1.0 / (window_s * self.exp.frame_rate_hz);
        let lambda = rate_hz.max(0.0) * window_s;
        (0..self.exp.repeats)
            .map(|_| match Poisson::new(lambda) {
                Ok(p) => p.sample(rng) * per_frame,
                Err(_) => 0.0,
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn target(
        &self,
        target: u32,
        unit: usize,
        heldout_cc: f64,
        (best_pool_entry, measured_best_pool): (usize, f64),
        screened: &[DesignedStimulus],
        designed: &[DesignedStimulus],
        seed: u64,
    ) -> Result<TargetTruth, String> {
        let cell = self
            .cells
            .get(unit)
            .ok_or_else(|| format!("target {target}: unit {unit} is not a cell of the mouse"))?;
        let model = StaticCell::new(cell, &self.sim, &self.geom);
        fn find(
            set: &[DesignedStimulus],
            role: Role,
            target: u32,
        ) -> Result<&DesignedStimulus, String> {
            set.iter()
                .find(|s| s.tag.role == role && s.tag.target == Some(target))
                .ok_or_else(|| format!("target {target}: the design made no {role:?}"))
        }
        let score = |s: &DesignedStimulus| -> Result<(f64, f64), String> {
            let img = self.on_view((s.height as usize, s.width as usize), &s.pixels)?;
            let predicted = s
                .predicted
                .get(target as usize)
                .copied()
                .unwrap_or(f64::NAN);
            Ok((model.response(&view_contrast(&img)).rate_hz, predicted))
        };
        let mei = |c| Role::Mei { contrast: c };
        let (mei_low, p_mei_low) = score(find(designed, mei(Contrast::Low), target)?)?;
        let (mei_full, p_mei_full) = score(find(designed, mei(Contrast::Full), target)?)?;
        let (pool_low, p_pool_low) = score(find(screened, Role::BestPool, target)?)?;
        let (library, p_library) = score(find(screened, Role::LibraryBest, target)?)?;
        // The best pool frame at full contrast: the design's control frame (its middle frame,
        // `inception::design`), matched to the full budget by the same matcher.
        let clip = render_entry(self.pool, best_pool_entry, self.size);
        let (h, w) = self.size;
        let mid = (self.pool.frames() / 2) * h * w;
        let frame = clip.get(mid..mid + h * w).unwrap_or(&clip[..h * w]);
        // A frame that cannot carry the full budget's contrast at the mean (a dark, sparse
        // frame) has no full-contrast control: NaN, left out of the medians and untested.
        let (pool_full, pool_full_unmatched) = match self.budget(Contrast::Full).match_u8(frame) {
            Ok((full_px, _)) => {
                let full_view = self.on_view(self.size, &full_px)?;
                (model.response(&view_contrast(&full_view)).rate_hz, None)
            }
            Err(e) => (f64::NAN, Some(e.to_string())),
        };
        let opts = SearchOptions {
            starts: self.exp.optimum_starts,
            steps: self.exp.optimum_steps,
        };
        let optimum = |c| {
            let b = self.budget(c);
            let budget = StimBudget {
                mean_luminance: b.mean_luminance,
                rms_contrast: b.rms_contrast,
            };
            // The optimum's image can fail the shared u8 matcher (seen at full contrast: a
            // sparse optimum); then that budget's optimum is NaN and the reason is kept.
            match true_optimum(cell, &self.sim, &self.geom, budget, opts) {
                Ok(o) => (o.response.rate_hz, None),
                Err(e) => (f64::NAN, Some(format!("{c:?} contrast: {e}"))),
            }
        };
        let (optimum_low, low_failed) = optimum(Contrast::Low);
        let (optimum_full, full_failed) = optimum(Contrast::Full);
        let rate_hz = Rates {
            mei_low,
            mei_full,
            pool_low,
            pool_full,
            library,
            optimum_low,
            optimum_full,
        };
        let predicted = Rates {
            mei_low: p_mei_low,
            mei_full: p_mei_full,
            pool_low: p_pool_low,
            pool_full: f64::NAN,
            library: p_library,
            optimum_low: f64::NAN,
            optimum_full: f64::NAN,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e57_0000 ^ u64::from(target));
        let samples = Samples {
            mei_low: self.draw(mei_low, &mut rng),
            mei_full: self.draw(mei_full, &mut rng),
            pool_low: self.draw(pool_low, &mut rng),
            pool_full: if pool_full.is_finite() {
                self.draw(pool_full, &mut rng)
            } else {
                Vec::new()
            },
            library: self.draw(library, &mut rng),
        };
        Ok(TargetTruth {
            target,
            unit,
            heldout_cc,
            best_pool_entry,
            measured_best_pool,
            conjunction: cell.v1.as_ref().is_some_and(|v| v.conjunction.is_some()),
            pool_full_unmatched,
            optimum_failed: low_failed.into_iter().chain(full_failed).collect(),
            rate_hz,
            predicted,
            samples,
        })
    }
}
