//! The filters of one cell and how their outputs combine into its drive: the one definition
//! both the running simulator ([`super::stage`]) and the static model ([`super::static_model`])
//! build from.

use crate::sim::receptive_field::GaborSpec;
use crate::sim::tuning::{CellParams, CellType};

/// Which linear filters a cell reads, and the weights of its divisor.
#[derive(Clone, Debug)]
pub(crate) struct CellFilters {
    /// The Gabor centre pair (absent for a conjunction cell).
    pub centre: Option<GaborSpec>,
    /// Simple cells half-rectify the centre's even filter; complex ones take the pair's energy.
    pub complex: bool,
    /// A conjunction cell's two subunit pairs.
    pub subunits: Option<[GaborSpec; 2]>,
    /// The suppressive surround pair.
    pub surround: Option<GaborSpec>,
    /// Weight of the surround energy in the divisor.
    pub surround_weight: f64,
    /// The normalisation pool: an envelope with no carrier, read on squared contrast.
    pub pool: Option<GaborSpec>,
    /// Weight of the pool's RMS contrast in the divisor.
    pub pool_weight: f64,
}

impl CellFilters {
    pub(crate) fn of(p: &CellParams) -> CellFilters {
        let centre = GaborSpec::of_cell(p);
        let complex = p.cell_type == CellType::Complex;
        let Some(v1) = &p.v1 else {
            return CellFilters {
                centre: Some(centre),
                complex,
                subunits: None,
                surround: None,
                surround_weight: 0.0,
                pool: None,
                pool_weight: 0.0,
            };
        };
        let subunits = v1.conjunction.as_ref().map(|c| {
            [0, 1].map(|k| {
                let (az, el, dir) = c.subunit(k, p.rf_azimuth_deg, p.rf_elevation_deg);
                GaborSpec {
                    azimuth_deg: az,
                    elevation_deg: el,
                    sigma_deg: c.sigma_deg,
                    spatial_freq_cpd: c.spatial_freq_cpd,
                    direction_deg: dir,
                    phase_deg: c.phase_deg[k],
                }
            })
        });
        let surround = v1.surround.as_ref().filter(|s| s.weight > 0.0);
        CellFilters {
            centre: subunits.is_none().then_some(centre),
            complex,
            subunits,
            surround: surround.map(|s| GaborSpec {
                sigma_deg: s.sigma_deg,
                ..centre
            }),
            surround_weight: surround.map_or(0.0, |s| s.weight),
            pool: (v1.normalisation_weight > 0.0).then_some(GaborSpec {
                spatial_freq_cpd: 0.0,
                phase_deg: 0.0,
                ..centre
            }),
            pool_weight: v1.normalisation_weight,
        }
    }

    /// The drive's gain: `G / (1 + w_s S + w_n N)` with `G = 1 + w_s + w_n`, so that an
    /// optimal full-field grating at full contrast (S = N = 1) still drives 1.
    pub(crate) fn gain(&self, surround_energy: f64, pool_rms: f64) -> f64 {
        let g = 1.0 + self.surround_weight + self.pool_weight;
        g / (1.0 + self.surround_weight * surround_energy + self.pool_weight * pool_rms)
    }

    /// Whether anything divides or replaces the Gabor centre (false for `gabor` cells).
    pub(crate) fn is_rich(&self) -> bool {
        self.subunits.is_some() || self.surround.is_some() || self.pool.is_some()
    }
}
