//! The simulated rig (TEMPORARY STUB while the simulator is being written; replaced wholesale).
use crate::clock::RigTime;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub neurons: usize,
    pub seed: u64,
}
impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            neurons: 1000,
            seed: 7,
        }
    }
}
#[derive(Debug, Clone)]
pub struct SimGeometry {
    pub imaging_width: usize,
    pub imaging_height: usize,
    pub imaging_rate_hz: f64,
    pub eye_width: usize,
    pub eye_height: usize,
    pub eye_rate_hz: f64,
    pub treadmill_rate_hz: f64,
    pub view_width: usize,
    pub view_height: usize,
    pub view_azimuth_deg: (f64, f64),
    pub view_elevation_deg: (f64, f64),
}
#[derive(Debug, thiserror::Error)]
#[error("sim")]
pub struct SimError;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellTruth {
    pub id: u32,
    pub centre_y: f32,
    pub centre_x: f32,
    pub radius_px: f32,
    pub footprint: Vec<(u32, f32)>,
}
pub struct SimMouse {
    cells: Vec<CellTruth>,
    w: usize,
}
impl SimMouse {
    pub fn new(_cfg: &SimConfig, g: &SimGeometry) -> Result<SimMouse, SimError> {
        let cells = (0..16u32)
            .map(|i| {
                let cy = 16 + 32 * (i / 4) as usize;
                let cx = 16 + 32 * (i % 4) as usize;
                CellTruth {
                    id: i,
                    centre_y: cy as f32,
                    centre_x: cx as f32,
                    radius_px: 3.0,
                    footprint: vec![((cy * g.imaging_width + cx) as u32, 1.0)],
                }
            })
            .collect();
        Ok(SimMouse {
            cells,
            w: g.imaging_width,
        })
    }
    pub fn show(&mut self, _view: &[u8], _t: RigTime) {}
    pub fn imaging_frame(&mut self, t: RigTime, out: &mut [u16]) {
        let v = (t.as_nanos() / 1_000_000 % 1000) as u16;
        out.fill(100);
        for c in &self.cells {
            for &(p, _) in &c.footprint {
                out[p as usize] = 100 + v + c.id as u16;
            }
        }
        let _ = self.w;
    }
    pub fn eye_frame(&mut self, _t: RigTime, out: &mut [u8]) {
        out.fill(128);
    }
    pub fn treadmill_count(&mut self, t: RigTime) -> i64 {
        t.as_nanos() / 10_000_000
    }
    pub fn cells(&self) -> &[CellTruth] {
        &self.cells
    }
    pub fn write_truth(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("cells.json"), serde_json::to_vec(&self.cells)?)
    }
}
pub mod bridge;
