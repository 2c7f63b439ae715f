//! Where cells are and how their arbors overlap: layers, areas, retinotopy, cell types, and the
//! co-travel length of a Gaussian axon cloud with a Gaussian dendrite cloud.

use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Slab extent across cortex (x, y) and V1's edge; x beyond the border is the higher area.
pub(crate) const SLAB_X_UM: f64 = 1000.0;
pub(crate) const SLAB_Y_UM: f64 = 600.0;
pub(crate) const BORDER_X_UM: f64 = 600.0;
/// Total axon × dendrite length density of a pair, so that L_ij = this × overlap density;
/// gives tens of µm for neighbouring cells, as in MICrONS.
const ARBOR_PRODUCT_UM4: f64 = 1.5e9;

/// Visual area of a cell.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Area {
    V1,
    /// A higher visual area (LM-like): mirror-reversed azimuth map, lower SF preference.
    Hva,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::V1 => "V1",
            Area::Hva => "HVA",
        }
    }
}

/// Cell class: excitatory by layer, and three inhibitory classes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum CellType {
    L23Exc,
    L4Exc,
    L5Exc,
    Pv,
    Sst,
    Vip,
}

impl CellType {
    pub const ALL: [CellType; 6] = [
        CellType::L23Exc,
        CellType::L4Exc,
        CellType::L5Exc,
        CellType::Pv,
        CellType::Sst,
        CellType::Vip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CellType::L23Exc => "L23_exc",
            CellType::L4Exc => "L4_exc",
            CellType::L5Exc => "L5_exc",
            CellType::Pv => "PV",
            CellType::Sst => "SST",
            CellType::Vip => "VIP",
        }
    }

    /// Draws a type with MICrONS-like proportions (80% excitatory).
    pub(crate) fn draw(rng: &mut impl Rng) -> Self {
        let u: f64 = rng.random();
        match u {
            u if u < 0.40 => CellType::L23Exc,
            u if u < 0.60 => CellType::L4Exc,
            u if u < 0.80 => CellType::L5Exc,
            u if u < 0.88 => CellType::Pv,
            u if u < 0.95 => CellType::Sst,
            _ => CellType::Vip,
        }
    }

    /// Depth range of the soma, µm below pia (inhibitory cells anywhere in L2/3–L5).
    fn depth_range_um(self) -> (f64, f64) {
        match self {
            CellType::L23Exc => (100.0, 300.0),
            CellType::L4Exc => (300.0, 400.0),
            CellType::L5Exc => (400.0, 600.0),
            _ => (100.0, 600.0),
        }
    }

    /// Dendrite cloud SD, µm.
    fn dendrite_sd_um(self) -> f64 {
        match self {
            CellType::L5Exc => 90.0,
            CellType::L23Exc | CellType::L4Exc => 70.0,
            _ => 50.0,
        }
    }

    /// Axon cloud SD and its centre's depth shift from the soma (L4 projects up to L2/3), µm.
    fn axon_um(self) -> (f64, f64) {
        match self {
            CellType::L23Exc => (120.0, 0.0),
            CellType::L4Exc => (90.0, -120.0),
            CellType::L5Exc => (140.0, -50.0),
            CellType::Pv => (70.0, 0.0),
            CellType::Sst => (90.0, -80.0),
            CellType::Vip => (60.0, 40.0),
        }
    }
}

/// One cell's anatomy.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub cell_type: CellType,
    pub area: Area,
    pub soma_um: [f64; 3],
    pub rf_deg: [f64; 2],
}

impl Cell {
    pub(crate) fn draw(rng: &mut impl Rng) -> Self {
        let cell_type = CellType::draw(rng);
        let (z0, z1) = cell_type.depth_range_um();
        let soma_um = [
            rng.random::<f64>() * SLAB_X_UM,
            rng.random::<f64>() * SLAB_Y_UM,
            rng.random_range(z0..z1),
        ];
        let area = if soma_um[0] < BORDER_X_UM {
            Area::V1
        } else {
            Area::Hva
        };
        let scatter = Normal::new(0.0, 3.0).expect("valid SD");
        let rf_deg = retinotopy(soma_um, area).map(|v| v + scatter.sample(rng));
        Self {
            cell_type,
            area,
            soma_um,
            rf_deg,
        }
    }

    /// A cell of `cell_type` in `area` whose receptive field is `rf_deg`, placed on this
    /// slab's maps: across cortex by inverting the retinotopy over the visual field `field_deg`
    /// ((azimuth lo, hi), (elevation lo, hi)) — V1's azimuth runs from the slab's edge to the
    /// border, the higher area's mirror-reverses from the border, so the two meet at the same
    /// azimuth — and at `depth_fraction` ∈ [0, 1] of the type's depth range.
    pub fn place(
        cell_type: CellType,
        area: Area,
        rf_deg: [f64; 2],
        field_deg: ([f64; 2], [f64; 2]),
        depth_fraction: f64,
    ) -> Self {
        let frac = |v: f64, [lo, hi]: [f64; 2]| {
            if hi > lo {
                ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                0.5
            }
        };
        let (fa, fe) = (frac(rf_deg[0], field_deg.0), frac(rf_deg[1], field_deg.1));
        let x = match area {
            Area::V1 => fa * BORDER_X_UM,
            Area::Hva => BORDER_X_UM + (1.0 - fa) * (SLAB_X_UM - BORDER_X_UM),
        };
        let (z0, z1) = cell_type.depth_range_um();
        Self {
            cell_type,
            area,
            soma_um: [
                x,
                fe * SLAB_Y_UM,
                z0 + depth_fraction.clamp(0.0, 1.0) * (z1 - z0),
            ],
            rf_deg,
        }
    }

    fn axon(&self) -> ([f64; 3], f64) {
        let (sd, dz) = self.cell_type.axon_um();
        ([self.soma_um[0], self.soma_um[1], self.soma_um[2] + dz], sd)
    }
}

/// Retinotopic map: azimuth runs one way across V1 and mirror-reverses at the border, so both
/// areas meet at the same azimuth there (as V1 and LM do).
fn retinotopy(soma_um: [f64; 3], area: Area) -> [f64; 2] {
    let (x, y) = (soma_um[0], soma_um[1]);
    match area {
        Area::V1 => [-40.0 + 0.1 * x, -20.0 + 0.07 * y],
        Area::Hva => [20.0 - 0.15 * (x - BORDER_X_UM), -20.0 + 0.1 * y],
    }
}

/// Length of `post`'s dendrite within reach of `pre`'s axon, µm: both arbors are isotropic
/// Gaussian clouds, so the expected co-travel length is the arbor product times the density of
/// the difference of two Gaussians at zero, N(μ_axon − μ_dendrite; 0, (σa² + σd²) I).
pub(crate) fn co_travel(pre: &Cell, post: &Cell) -> f64 {
    let (centre, axon_sd) = pre.axon();
    co_travel_length_um(
        centre,
        axon_sd,
        post.soma_um,
        post.cell_type.dendrite_sd_um(),
    )
}

/// The analytic co-travel length of an axon cloud (centre, SD) and a dendrite cloud, µm.
pub fn co_travel_length_um(
    axon_centre: [f64; 3],
    axon_sd_um: f64,
    dendrite_centre: [f64; 3],
    dendrite_sd_um: f64,
) -> f64 {
    let var = axon_sd_um.powi(2) + dendrite_sd_um.powi(2);
    let d2: f64 = axon_centre
        .iter()
        .zip(&dendrite_centre)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    ARBOR_PRODUCT_UM4 * (-d2 / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).powf(1.5)
}
