//! What a config will cost in memory, checked before anything is allocated.
//!
//! A config can ask for more than the machine holds (`rings.frame_pool = 100000`, an 8192²
//! imaging frame, a 4096² simulated view): allocating it aborts the process with no message.
//! [`check`] adds up the large buffers the session preallocates and refuses the config, naming
//! the fields that cost most, when the sum exceeds the budget: `session.memory_budget_mib`, or
//! half of this machine's physical memory (`/proc/meminfo`) when that is 0.

use super::{Config, Extraction, Invalid, SourceKind};

/// One preallocated buffer family: the config fields that size it and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPart {
    pub fields: &'static str,
    pub bytes: u64,
}

const MIB: u64 = 1 << 20;

/// The large buffers `cfg` makes the session allocate up front (an upper bound where the true
/// size is known only later, such as the number of cells the pipeline will detect).
pub fn estimate(cfg: &Config) -> Vec<MemoryPart> {
    let im = &cfg.imaging;
    let frame_px = u64::from(im.width) * u64::from(im.height);
    let rings = &cfg.rings;
    // `online::session::wiring`: the frame pool of u16 frames, 64 eye frames of u8, and
    // activity buffers of 4 f32 per cell (values and 3 traces).
    let frame_pool = rings.frame_pool as u64 * frame_px * 2;
    let eye_pool = 64 * u64::from(cfg.eye.width) * u64::from(cfg.eye.height);
    let planes = u64::from(im.planes);
    let cells = match im.extraction {
        Extraction::Grid => {
            let b = u64::from(im.grid_block_px.max(1));
            planes * u64::from(im.width).div_ceil(b) * u64::from(im.height).div_ceil(b)
        }
        Extraction::TruthFootprints => cfg.sim.neurons as u64,
        // At most one cell per disc of the detector's cell diameter, in every plane.
        Extraction::Pipeline => {
            let d = im.pipeline.cells.cell_diameter_px.max(1.0);
            planes * (frame_px as f64 / (d * d)).ceil() as u64
        }
    };
    let activity_pool = (rings.recorder_ring as u64 * 2 + 16) * cells * 16;
    let mut parts = vec![
        MemoryPart {
            fields: "rings.frame_pool x imaging.width x imaging.height",
            bytes: frame_pool,
        },
        MemoryPart {
            fields: "eye.width x eye.height (64 frames)",
            bytes: eye_pool,
        },
        MemoryPart {
            fields: "rings.recorder_ring x cells (imaging.extraction)",
            bytes: activity_pool,
        },
    ];
    // A twin's cells have no receptive-field bank.
    if cfg.source.kind == SourceKind::Sim {
        parts.push(MemoryPart {
            fields: "display.view_width x display.view_height x sim.neurons",
            bytes: sim_receptive_fields(cfg),
        });
    }
    parts
}

/// The simulator's receptive fields: an even and an odd f32 kernel per neuron over a window
/// of 2.5 of its largest s.d. either side (`sim/receptive_field.rs`), cut at the view's edges.
fn sim_receptive_fields(cfg: &Config) -> u64 {
    let d = &cfg.display;
    let (w, h) = (d.view_width as f64, d.view_height as f64);
    let deg_per_px_x = (d.azimuth_deg.1 - d.azimuth_deg.0).abs() / w;
    let deg_per_px_y = (d.elevation_deg.1 - d.elevation_deg.0).abs() / h;
    let reach_deg = 5.0 * cfg.sim.cells.rf_sigma_deg[1].abs();
    // The window is padded to whole SIMD lanes (8) along a row.
    let side = |deg_per_px: f64, max: f64| {
        if deg_per_px > 0.0 {
            (reach_deg / deg_per_px + 2.0).min(max)
        } else {
            max
        }
    };
    let px = side(deg_per_px_x, w + 8.0) * side(deg_per_px_y, h);
    (cfg.sim.neurons as f64 * px * 8.0) as u64
}

/// The budget in bytes: `session.memory_budget_mib`, else half the machine's physical memory;
/// `None` when neither is known (a system without `/proc/meminfo`: nothing is refused).
pub fn budget_bytes(cfg: &Config) -> Option<u64> {
    if cfg.session.memory_budget_mib > 0 {
        return Some(cfg.session.memory_budget_mib.saturating_mul(MIB));
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_total_bytes(&text).map(|b| b / 2)
}

/// `MemTotal` from the text of `/proc/meminfo` (in kB there).
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// Refuses `cfg` when what it preallocates exceeds the budget, naming the costliest fields.
pub fn check(cfg: &Config) -> Result<(), Invalid> {
    let Some(budget) = budget_bytes(cfg) else {
        return Ok(());
    };
    let parts = estimate(cfg);
    let total: u64 = parts.iter().map(|p| p.bytes).fold(0, u64::saturating_add);
    if total <= budget {
        return Ok(());
    }
    let worst = parts
        .iter()
        .max_by_key(|p| p.bytes)
        .expect("estimate has parts");
    Err(Invalid::new(
        worst.fields,
        format!("{} MiB", worst.bytes / MIB),
        format!(
            "the config needs about {} MiB of preallocated buffers, more than the budget of {} \
             MiB (session.memory_budget_mib, or half this machine's memory when 0); make these \
             smaller or raise the budget",
            total / MIB,
            budget / MIB
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> Config {
        let mut c = Config::default_sim();
        c.session.memory_budget_mib = 4096;
        c
    }

    #[test]
    fn the_default_fits_and_meminfo_is_read() {
        check(&sim()).expect("the embedded default fits in 4 GiB");
        let text = "MemTotal:       16314444 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_bytes(text), Some(16_314_444 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }

    /// The three configs that aborted on allocation are refused, naming their fields.
    #[test]
    fn configs_that_cannot_be_held_are_refused_naming_the_fields() {
        let mut c = sim();
        c.rings.frame_pool = 100_000;
        let e = check(&c).unwrap_err();
        assert!(e.field.starts_with("rings.frame_pool"), "{e}");
        assert!(e.allowed.contains("memory_budget_mib"), "{e}");

        let mut c = sim();
        (c.imaging.width, c.imaging.height) = (8192, 8192);
        let e = check(&c).unwrap_err();
        assert!(e.field.contains("imaging.width"), "{e}");

        let mut c = sim();
        (c.display.view_width, c.display.view_height) = (4096, 4096);
        let e = check(&c).unwrap_err();
        assert!(e.field.contains("display.view_width"), "{e}");
        // The same view without the simulator allocates no receptive fields.
        c.source.kind = SourceKind::Bridge;
        check(&c).expect("a bridge session's view costs no receptive fields");
    }
}
