//! The per-cell parameters a `v1_rich` cell has beyond its Gabor centre (see the module docs
//! of [`super`] for the model and its literature ranges).

use serde::{Deserialize, Serialize};

/// What a `v1_rich` cell adds to the Gabor cell of [`crate::sim::CellParams`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct V1Tuning {
    /// Orientation-tuned suppressive surround, if the cell has one.
    pub surround: Option<Surround>,
    /// Weight `w_n` of the untuned normalisation pool (local RMS contrast over the centre's
    /// envelope) in the divisor: it is what makes a plaid drive less than its component.
    pub normalisation_weight: f64,
    /// Two oriented subunits combined AND-like, if the cell is a conjunction (corner) cell;
    /// it then replaces the Gabor centre of the base parameters.
    pub conjunction: Option<Conjunction>,
}

/// A Gaussian surround with the centre's carrier (iso-orientation suppression, as in mouse V1:
/// Self et al. 2014) and a wider envelope; its quadrature energy divides the drive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Surround {
    /// Envelope s.d. of the surround, deg (2-3 x the centre's by default).
    pub sigma_deg: f64,
    /// Weight `w_s` of the surround energy in the divisor.
    pub weight: f64,
    /// The suppression index the weight was solved for: 1 - (drive to a full-field optimal
    /// grating) / (drive to the best-sized disc of it), at full contrast, before the output
    /// nonlinearity.
    pub suppression_index: f64,
}

/// Two Gabor subunits along the arms of a corner whose vertex is the receptive-field centre:
/// subunit k sits `offset_deg` from the vertex along arm k and prefers an edge lying along it
/// (its carrier is perpendicular to the arm). The cell's drive is the geometric mean of the
/// two subunits' quadrature energies, so either arm alone drives it little.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conjunction {
    /// Direction of each arm from the vertex, deg (screen convention of
    /// [`crate::sim::CellParams`]: 0 = +azimuth, 90 = +elevation).
    pub arm_direction_deg: [f64; 2],
    /// Distance of each subunit's centre from the vertex along its arm, deg.
    pub offset_deg: f64,
    /// Envelope s.d. of each subunit, deg.
    pub sigma_deg: f64,
    /// Carrier spatial frequency of each subunit, cycles/deg.
    pub spatial_freq_cpd: f64,
    /// Carrier phase of each subunit, deg.
    pub phase_deg: [f64; 2],
}

impl Conjunction {
    /// Centre (azimuth, elevation) and carrier direction (deg) of subunit `k` of a cell whose
    /// receptive field is centred at (`az`, `el`).
    pub fn subunit(&self, k: usize, az: f64, el: f64) -> (f64, f64, f64) {
        let arm = self.arm_direction_deg[k];
        let (s, c) = arm.to_radians().sin_cos();
        (
            az + self.offset_deg * c,
            el + self.offset_deg * s,
            arm + 90.0,
        )
    }
}
