//! The scheduler: which stimulus comes next ([`selector`], [`design`]) and when each display
//! frame flips ([`renderer`]: the simulated monitor and the flip records; [`live`]: the
//! stimulus window or offscreen renderer in real time). The selector fills a one-deep queue; the renderer takes from it at
//! each trial onset and never waits on it (an empty queue shows gray and counts an underrun), and
//! tells the selector each onset so activity can be matched to what was on screen.

pub mod design;
pub mod live;
pub mod renderer;
pub mod scan;
pub mod selector;

pub use design::AdaptiveSelector;
pub use live::LiveRenderer;
pub use renderer::{RendererLink, RendererParams, RendererReport, SimMonitor};
pub use scan::{CellPlace, ScanOffsets, ScanSlot};
pub use selector::{Decision, FrameBehaviour, Onset, RandomSelector, Selector, SelectorThread};

use crate::config::{Config, Policy};
use std::sync::Arc;
use twinloop_model::energy_core::EnergyCoreConfig;
use twinloop_stimulus::{Library, ViewGeometry};

/// The frozen core over the display view: the energy bank on a 6 x 10 grid, its spatial
/// frequencies in cycles per view pixel chosen for the view's degrees per pixel (about 0.03 and
/// 0.06 cycles/deg, the middle of mouse V1's range).
pub fn core_config(view: &ViewGeometry, twin_hz: f64) -> EnergyCoreConfig {
    let deg_per_px = (view.azimuth_deg.1 - view.azimuth_deg.0).abs() / view.width.max(1) as f64;
    EnergyCoreConfig {
        height: view.height,
        width: view.width,
        grid_rows: 6,
        grid_cols: 10,
        cycles_per_px: vec![(0.03 * deg_per_px).min(0.45), (0.06 * deg_per_px).min(0.45)],
        frame_rate_hz: twin_hz,
        ..EnergyCoreConfig::default()
    }
}

/// The default candidate pool and test block for `cfg`'s display view, trial length and imaging
/// rate, rendered and passed through the frozen core.
pub fn default_pool(cfg: &Config) -> Result<design::CandidatePool, design::PoolError> {
    let candidates = design::default_candidates();
    let tests = design::default_tests(candidates.len() as u32);
    let view = cfg.display.view();
    let twin_hz = cfg.imaging.frame_rate_hz;
    design::CandidatePool::build(
        candidates,
        tests,
        view,
        core_config(&view, twin_hz),
        cfg.trials.stimulus_s,
        twin_hz,
    )
}

/// The selector `cfg.trials.policy` names, with its candidate pool built (rendered and passed
/// through the frozen core once).
pub fn build_selector(cfg: &Config) -> Result<Box<dyn Selector>, design::PoolError> {
    match cfg.trials.policy {
        Policy::Random => Ok(Box::new(RandomSelector::new(
            Library {
                entries: design::default_candidates(),
            },
            cfg.session.seed,
        ))),
        Policy::Adaptive => Ok(Box::new(AdaptiveSelector::new(
            Arc::new(default_pool(cfg)?),
            cfg.trials.design.clone(),
            cfg.session.seed,
            1.0 / cfg.imaging.frame_rate_hz,
        ))),
    }
}
