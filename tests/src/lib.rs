//! End-to-end test helpers shared by the tests in this crate.

use std::path::Path;
use twinloop_rig::config::Config;
use twinloop_rig::session::{self, Hooks, SessionSummary};

/// The embedded default, shortened and sped up for a test, writing under `out_dir`.
pub fn fast_sim_config(out_dir: &Path, duration_s: f64) -> Config {
    let mut cfg = Config::default_sim();
    cfg.session.duration_s = duration_s;
    cfg.session.realtime = false;
    cfg.session.progress = false;
    cfg.session.out_dir = out_dir.to_path_buf();
    cfg.source.idle_timeout_s = 5.0;
    // The loop's mechanics are tested on the placeholder extraction (every frame gets activity
    // from the first, no calibration phase); the pipeline has its own tests.
    cfg.imaging.extraction = twinloop_rig::config::Extraction::TruthFootprints;
    // Tests run sessions side by side; the dashboard has its own tests.
    cfg.dashboard.enabled = false;
    cfg
}

/// Run a session to its end.
pub fn run_session(cfg: &Config) -> SessionSummary {
    session::run(cfg, vec!["e2e-test".into()], Hooks::default()).expect("session runs")
}

/// Pearson correlation of two equally long series.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt().max(1e-12)
}
