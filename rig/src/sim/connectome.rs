//! Anatomy for the simulated mouse's cells (issue #21): each cell gets a connectome identity
//! (area, type, 3-D soma position) read off its true tuning, and synapses are planted on them
//! by `twinloop_analysis::connectome::plant` (one rule, one implementation, shared with the
//! synthetic connectome) from the cells' TRUE features and RF distances.
//!
//! Identities follow the tuning the simulator already draws, so a good twin can recover them:
//! - **area**: speed preference ln(TF / SF) above the population's median → the higher area
//!   (faster, coarser, as mouse higher areas prefer), else V1;
//! - **type**: simple cells → `L4_exc`; complex cells → `L23_exc` below the complex cells'
//!   median direction selectivity, `L5_exc` at or above it. All cells are excitatory: the
//!   simulator draws no inhibitory tuning classes, so none are invented here;
//! - **soma**: the area's retinotopic map inverted at the cell's true RF centre (V1 and the
//!   higher area mirror-reversed at their border), at a random depth within the type's layer.
//!
//! True features (no RF position in them): direction (DS-weighted unit vector), orientation
//! axis (doubled angle), ln SF, ln TF, simple/complex and ln RF size, each column z-scored over
//! the cells; similarity is their cosine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use twinloop_analysis::connectome::{
    Area, Cell, CellType, ConnectomeConfig, Planted, SIMULATED_CORE, misregister, plant,
};
use twinloop_analysis::wiring::Embedding;

use super::tuning::{CellParams, CellType as Tuning};
use super::{SimConfig, SimError, SimGeometry, SimMouse};
use twinloop_stimulus::ViewGeometry;

/// The cells `twin_recording::record` draws for `mouse_seed`: the same `SimConfig` and
/// `SimGeometry` as it builds (256² imaging at `rate_hz`, the view given), so cell `i` here is
/// unit `i` of that recording. Kept in step with `record` by hand (that file is another
/// module's); `SimRecording` carrying its cells would remove the copy.
pub fn recorded_mouse_cells(
    mouse_seed: u64,
    neurons: usize,
    view: ViewGeometry,
    rate_hz: f64,
) -> Result<Vec<CellParams>, SimError> {
    let cfg = SimConfig {
        seed: mouse_seed,
        neurons,
        ..SimConfig::default()
    };
    let geom = SimGeometry {
        imaging_width: 256,
        imaging_height: 256,
        imaging_rate_hz: rate_hz,
        view_width: view.width,
        view_height: view.height,
        view_azimuth_deg: view.azimuth_deg,
        view_elevation_deg: view.elevation_deg,
        ..SimGeometry::default()
    };
    let mouse = SimMouse::new(&cfg, &geom)?;
    Ok(mouse.cells().iter().map(|c| c.params.clone()).collect())
}

/// The simulated mouse's anatomy and the rule planted on it.
#[derive(Debug, Clone)]
pub struct SimAnatomy {
    pub cells: Vec<Cell>,
    /// True feature vectors (z-scored tuning, no RF position).
    pub features: Vec<Vec<f64>>,
    pub planted: Planted,
    pub config: ConnectomeConfig,
}

/// What is saved beside the tables: the rule and every cell's identity and true features.
#[derive(Debug, Serialize)]
struct AnatomyTruth<'a> {
    beta_feature: f64,
    beta_rf_per_deg: f64,
    rho_per_um: f64,
    presynaptic: &'a [u64],
    presynaptic_effects: &'a [f64],
    cells: Vec<CellRecord<'a>>,
}

#[derive(Debug, Serialize)]
struct CellRecord<'a> {
    cell_id: usize,
    cell_type: &'static str,
    area: &'static str,
    soma_um: [f64; 3],
    rf_deg: [f64; 2],
    true_features: &'a [f64],
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Speed preference, ln(TF / SF) in ln(deg/s).
fn speed(p: &CellParams) -> f64 {
    p.temporal_freq_hz.ln() - p.spatial_freq_cpd.ln()
}

/// Each cell's identity (see the module doc); depths from `rng`.
pub fn identities(params: &[CellParams], rng: &mut impl Rng) -> Vec<Cell> {
    let speed_median = median(params.iter().map(speed).collect());
    let ds_median = median(
        params
            .iter()
            .filter(|p| p.cell_type == Tuning::Complex)
            .map(|p| p.direction_selectivity)
            .collect(),
    );
    let range = |f: fn(&CellParams) -> f64| {
        params
            .iter()
            .map(f)
            .fold([f64::MAX, f64::MIN], |[lo, hi], v| [lo.min(v), hi.max(v)])
    };
    let field = (range(|p| p.rf_azimuth_deg), range(|p| p.rf_elevation_deg));
    params
        .iter()
        .map(|p| {
            let area = if speed(p) > speed_median {
                Area::Hva
            } else {
                Area::V1
            };
            let cell_type = match p.cell_type {
                Tuning::Simple => CellType::L4Exc,
                Tuning::Complex if p.direction_selectivity < ds_median => CellType::L23Exc,
                Tuning::Complex => CellType::L5Exc,
            };
            let rf = [p.rf_azimuth_deg, p.rf_elevation_deg];
            Cell::place(cell_type, area, rf, field, rng.random())
        })
        .collect()
}

/// True feature vectors, columns z-scored over the cells (see the module doc).
pub fn true_features(params: &[CellParams]) -> Vec<Vec<f64>> {
    let raw: Vec<Vec<f64>> = params
        .iter()
        .map(|p| {
            let dir = p.preferred_direction_deg.to_radians();
            let axis = 2.0 * p.preferred_orientation_deg.to_radians();
            vec![
                p.direction_selectivity * dir.cos(),
                p.direction_selectivity * dir.sin(),
                axis.cos(),
                axis.sin(),
                p.spatial_freq_cpd.ln(),
                p.temporal_freq_hz.ln(),
                if p.cell_type == Tuning::Complex {
                    1.0
                } else {
                    0.0
                },
                p.rf_sigma_deg.ln(),
            ]
        })
        .collect();
    let d = raw.first().map_or(0, Vec::len);
    let n = raw.len().max(1) as f64;
    let stats: Vec<(f64, f64)> = (0..d)
        .map(|k| {
            let m = raw.iter().map(|r| r[k]).sum::<f64>() / n;
            let sd = (raw.iter().map(|r| (r[k] - m).powi(2)).sum::<f64>() / n).sqrt();
            (m, if sd > 1e-12 { sd } else { 1.0 })
        })
        .collect();
    raw.into_iter()
        .map(|r| {
            r.iter()
                .zip(&stats)
                .map(|(v, (m, sd))| (v - m) / sd)
                .collect()
        })
        .collect()
}

impl SimAnatomy {
    /// Identities for `params` and `config`'s rule planted on them; deterministic in
    /// `config.seed`.
    pub fn plant(
        params: &[CellParams],
        config: &ConnectomeConfig,
    ) -> twinloop_analysis::Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let cells = identities(params, &mut rng);
        let features = true_features(params);
        let planted = plant(&cells, &features, config, &mut rng)?;
        Ok(Self {
            cells,
            features,
            planted,
            config: config.clone(),
        })
    }

    /// The true features as an embeddings table (the ceiling a twin can reach): true RF
    /// centres, CC 1, core `simulated-truth`.
    pub fn true_embeddings(&self) -> Vec<Embedding> {
        self.cells
            .iter()
            .zip(&self.features)
            .enumerate()
            .map(|(i, (c, f))| Embedding {
                cell_id: i as u64,
                core_id: SIMULATED_CORE.to_string(),
                features: f.clone(),
                azimuth_deg: c.rf_deg[0],
                elevation_deg: c.rf_deg[1],
                cc_abs: 1.0,
                cc_max: 1.0,
                cell_type: c.cell_type.name().to_string(),
                area: c.area.name().to_string(),
            })
            .collect()
    }

    /// `cell_id,cell_type,area` per cell: the labels `twin embeddings --labels` reads.
    pub fn labels_csv(&self) -> String {
        let mut s = String::from("cell_id,cell_type,area\n");
        for (i, c) in self.cells.iter().enumerate() {
            s.push_str(&format!("{i},{},{}\n", c.cell_type.name(), c.area.name()));
        }
        s
    }

    /// Which rows of an embeddings table (one per cell, in cell order) are mis-co-registered:
    /// `config.coregistration_error` of them rotated among themselves, seeded by `config.seed`.
    pub fn misregister<T: Clone>(&self, rows: &mut [T]) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5eed_c0de);
        misregister(rows, self.config.coregistration_error, &mut rng)
    }

    /// `anatomy_truth.json`: the rule, u_i, every cell's identity and true features.
    pub fn truth_json(&self) -> serde_json::Result<String> {
        let truth = AnatomyTruth {
            beta_feature: self.config.beta_feature,
            beta_rf_per_deg: self.config.beta_rf_per_deg,
            rho_per_um: self.planted.rho_per_um,
            presynaptic: &self.planted.presynaptic,
            presynaptic_effects: &self.planted.presynaptic_effects,
            cells: self
                .cells
                .iter()
                .zip(&self.features)
                .enumerate()
                .map(|(i, (c, f))| CellRecord {
                    cell_id: i,
                    cell_type: c.cell_type.name(),
                    area: c.area.name(),
                    soma_um: c.soma_um,
                    rf_deg: c.rf_deg,
                    true_features: f,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&truth)
    }
}
