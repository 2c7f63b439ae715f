//! The `v1_rich` cell model: what mouse V1 has and a grating pool cannot reach, and each
//! cell's true optimum under a stimulus budget.
//!
//! Chosen by `[cells] model = "v1_rich"` (default `"gabor"`: the original Gabor simple/complex
//! cells, drawn and run bit for bit as before; the `v1_rich` extras come from their own random
//! stream, so a `v1_rich` mouse has the `gabor` mouse's positions, orientations and
//! frequencies). Ranges are `[cells.v1_rich]` ([`V1RichConfig`]).
//!
//! # Cell types and the drive
//! Every `v1_rich` cell's drive is `G E / (1 + w_s S + w_n N)`, with `G = 1 + w_s + w_n` so an
//! optimal full-field grating at full contrast still drives 1 (the unit `c50` is drawn in):
//! - `E`, the centre: the Gabor cell's (half-rectified even filter or quadrature energy), or
//!   for a **conjunction cell** (default 25 %) the geometric mean `sqrt(E_A E_B)` of two
//!   oriented subunits' energies along the two arms of a corner (60-120 deg apart) at the
//!   receptive field: AND-like, so either arm alone or any grating drives it little and its
//!   optimum is a localized corner. Subunits carry 0.4-0.5 cycles per envelope s.d.
//! - `S`, **surround suppression** (default 85 % of the other cells): the quadrature energy of
//!   the centre's carrier under a Gaussian envelope 2-3x the centre's (iso-orientation
//!   surround, Self et al. 2014, J Neurosci 34:9290; ratio-of-Gaussians size, Cavanaugh, Bair
//!   & Movshon 2002, J Neurophysiol 88:2530). Its weight is solved per cell from a drawn
//!   suppression index (default uniform 0.1-0.8, median 0.45; mouse V1 medians around 0.3-0.5,
//!   Vaiceliunaite et al. 2013, J Neurophysiol 109:1; Self et al. 2014) by the closed-form size
//!   tuning [`size_tuning_closed_form`]. The index is that of the drive at full contrast; the
//!   rate's index is larger at low contrast (expansive exponent) and smaller in saturation.
//! - `N`, **divisive normalisation** (Heeger 1992, Vis Neurosci 9:181; Carandini & Heeger 2012,
//!   Nat Rev Neurosci 13:51): the RMS contrast under the centre's envelope, an untuned pool
//!   over all orientations at the receptive field, weight 0.2-1.0. It is what makes a plaid
//!   drive less than its component grating (cross-orientation suppression; mouse V1 has it,
//!   weaker than cat, hence the moderate weights).
//!
//! `S` and `N` are energies of the current view (phase-invariant, so constant for a drifting
//! grating) and divide the drive after the temporal filter; a conjunction cell's `E` is formed
//! before it, so a drifting grating drives it only through the sustained path.
//!
//! # Truth for scoring
//! [`static_response`] / [`StaticCell`]: the steady-state rate to a static image (see
//! `static_model` for the definition). [`true_optimum`]: the best static image under a
//! [`StimBudget`] (mean luminance, RMS contrast), by dense parametric search plus projected
//! gradient ascent on the cell's own model.
//!
//! # Cost
//! Per view change, on top of the Gabor centres: one surround pair per surround cell (a
//! window of 2.5 surround s.d., up to the whole 64x36 view), one pool filter per cell on the
//! squared view, two small subunit pairs per conjunction cell.

mod budget;
mod config;
mod draw;
mod filters;
mod optimum;
mod params;
mod stage;
mod static_model;

#[cfg(test)]
mod tests;

pub use budget::{BudgetError, StimBudget};
pub use config::{CellModel, V1RichConfig};
pub use draw::{size_tuning_closed_form, suppression_index, surround_weight_for};
pub use optimum::{Optimum, SearchOptions, StimulusFamily, true_optimum};
pub use params::{Conjunction, Surround, V1Tuning};
pub use static_model::{StaticCell, StaticResponse, static_response, view_contrast};

pub(crate) use draw::draw;
pub(crate) use stage::RichStage;
