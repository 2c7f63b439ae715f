//! Drawing a `v1_rich` cell's extra tuning, and the closed form of its size tuning that turns a
//! drawn suppression index into a surround weight.

use super::config::V1RichConfig;
use super::params::{Conjunction, Surround, V1Tuning};
use crate::sim::random::uniform;
use crate::sim::tuning::CellParams;
use rand::Rng;

/// Draws the extra tuning of the cell whose Gabor parameters are `base`, from the `v1_rich`
/// stream (never from the tuning stream, so the Gabor parameters of a `v1_rich` mouse are
/// those of the `gabor` mouse of the same seed). Every cell takes the same number of draws
/// whatever it becomes, so one cell's type never shifts another's parameters.
pub(crate) fn draw(cfg: &V1RichConfig, base: &CellParams, rng: &mut impl Rng) -> V1Tuning {
    let u_conjunction: f64 = rng.random();
    let u_surround: f64 = rng.random();
    let si = uniform(rng, cfg.suppression_index[0], cfg.suppression_index[1]);
    let ratio = uniform(
        rng,
        cfg.surround_sigma_ratio[0],
        cfg.surround_sigma_ratio[1],
    );
    let w_n = uniform(
        rng,
        cfg.normalisation_weight[0],
        cfg.normalisation_weight[1],
    );
    let angle = uniform(
        rng,
        cfg.conjunction_angle_deg[0],
        cfg.conjunction_angle_deg[1],
    );
    let turn: f64 = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let sub_ratio = uniform(rng, cfg.subunit_sigma_ratio[0], cfg.subunit_sigma_ratio[1]);
    let cycles = uniform(
        rng,
        cfg.subunit_cycles_per_sigma[0],
        cfg.subunit_cycles_per_sigma[1],
    );
    let phases = [uniform(rng, 0.0, 360.0), uniform(rng, 0.0, 360.0)];
    if u_conjunction < cfg.conjunction_fraction {
        let sigma = sub_ratio * base.rf_sigma_deg;
        // Arm A lies across the base Gabor's carrier, so subunit A keeps the base orientation.
        let arm_a = base.preferred_direction_deg + 90.0;
        return V1Tuning {
            surround: None,
            normalisation_weight: w_n,
            conjunction: Some(Conjunction {
                arm_direction_deg: [arm_a, arm_a + turn * angle],
                offset_deg: cfg.subunit_offset_sigmas * sigma,
                sigma_deg: sigma,
                spatial_freq_cpd: cycles / sigma,
                phase_deg: phases,
            }),
        };
    }
    let surround = (u_surround < cfg.surround_fraction).then(|| Surround {
        sigma_deg: ratio * base.rf_sigma_deg,
        weight: surround_weight_for(si, ratio, w_n),
        suppression_index: si,
    });
    V1Tuning {
        surround,
        normalisation_weight: w_n,
        conjunction: None,
    }
}

/// Closed-form drive of a surround cell to a disc of its optimal grating at full contrast,
/// radius `r` in units of the centre s.d., relative to a full-field grating without any
/// divisor: the centre's and surround's Gaussian mass inside the disc,
/// `g(r; s) = 1 - exp(-r^2 / 2 s^2)`, enter `g_c / (1 + w_s g_s + w_n sqrt(g_c))` (the pool's
/// contrast energy over the centre's envelope grows as `g_c`, its RMS as the square root).
/// Exact for gratings with many cycles per envelope; the carrier adds ripple otherwise.
pub fn size_tuning_closed_form(r: f64, ratio: f64, w_s: f64, w_n: f64) -> f64 {
    let g_c = 1.0 - (-r * r / 2.0).exp();
    let g_s = 1.0 - (-r * r / (2.0 * ratio * ratio)).exp();
    g_c / (1.0 + w_s * g_s + w_n * g_c.sqrt())
}

/// Radii (in centre s.d.) on which the size-tuning peak is looked for.
fn radii() -> impl Iterator<Item = f64> {
    (1..=600).map(|i| i as f64 * 0.02)
}

/// The suppression index of [`size_tuning_closed_form`]: 1 - full-field drive / peak drive.
pub fn suppression_index(ratio: f64, w_s: f64, w_n: f64) -> f64 {
    let peak = radii()
        .map(|r| size_tuning_closed_form(r, ratio, w_s, w_n))
        .fold(0.0, f64::max);
    let full = 1.0 / (1.0 + w_s + w_n);
    1.0 - full / peak
}

/// The surround weight that gives suppression index `si` (bisection: the index grows with the
/// weight). Indices below the pool's own (a cell with no surround is already a little
/// suppressed by its normalisation pool) give weight 0.
pub fn surround_weight_for(si: f64, ratio: f64, w_n: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    if suppression_index(ratio, 0.0, w_n) >= si {
        return 0.0;
    }
    while suppression_index(ratio, hi, w_n) < si && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if suppression_index(ratio, mid, w_n) < si {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}
