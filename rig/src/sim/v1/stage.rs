//! The `v1_rich` spatial stage of the running simulator: after the Gabor centres
//! ([`RfBank`]) have filtered the view, conjunction cells replace their centre by their
//! subunits' AND, and every rich cell's drive gain is set from its surround energy and its
//! normalisation pool. All three are further [`RfBank`]s (the window trick; a surround's window
//! is 2.5 of its s.d., up to the whole view), filtered only when the view or gaze changes.

use super::filters::CellFilters;
use crate::sim::config::SimGeometry;
use crate::sim::receptive_field::RfBank;
use crate::sim::tuning::CellParams;

/// One extra bank and which cell each of its pairs belongs to.
struct Extra {
    bank: RfBank,
    cell: Vec<usize>,
    even: Vec<f32>,
    odd: Vec<f32>,
}

impl Extra {
    fn new(bank: RfBank, cell: Vec<usize>) -> Extra {
        let n = cell.len();
        Extra {
            bank,
            cell,
            even: vec![0.0; n],
            odd: vec![0.0; n],
        }
    }

    fn filter(&mut self, view: &[u8], gaze_deg: (f64, f64), squared: bool) {
        if self.cell.is_empty() {
            return;
        }
        self.bank.load_view(view, gaze_deg);
        if squared {
            self.bank.square_contrast();
        }
        self.bank.project(&mut self.even, &mut self.odd);
    }
}

/// Subunits, surrounds and pools of every rich cell of one plane.
pub(crate) struct RichStage {
    subunits: Extra,
    surrounds: Extra,
    pools: Extra,
    filters: Vec<CellFilters>,
    surround_energy: Vec<f32>,
    pool_rms: Vec<f32>,
}

impl RichStage {
    /// The stage for `cells`, or `None` when none of them is a rich cell (the `gabor` model).
    pub(crate) fn new(cells: &[&CellParams], geom: &SimGeometry) -> Option<RichStage> {
        let filters: Vec<CellFilters> = cells.iter().map(|p| CellFilters::of(p)).collect();
        if !filters.iter().any(CellFilters::is_rich) {
            return None;
        }
        let (mut sub, mut sub_cell) = (Vec::new(), Vec::new());
        let (mut sur, mut sur_cell) = (Vec::new(), Vec::new());
        let (mut pool, mut pool_cell) = (Vec::new(), Vec::new());
        for (i, f) in filters.iter().enumerate() {
            if let Some(s) = f.subunits {
                sub.extend(s);
                sub_cell.extend([i, i]);
            }
            if let Some(s) = f.surround {
                sur.push(s);
                sur_cell.push(i);
            }
            if let Some(s) = f.pool {
                pool.push(s);
                pool_cell.push(i);
            }
        }
        let n = cells.len();
        Some(RichStage {
            subunits: Extra::new(RfBank::from_specs(&sub, geom), sub_cell),
            surrounds: Extra::new(RfBank::from_specs(&sur, geom), sur_cell),
            pools: Extra::new(RfBank::from_specs(&pool, geom), pool_cell),
            filters,
            surround_energy: vec![0.0; n],
            pool_rms: vec![0.0; n],
        })
    }

    /// Filters the view for the extra banks, overwrites conjunction cells' pair in `even` /
    /// `odd` (their AND in `even`, 0 in `odd`), and writes every cell's drive gain.
    pub(crate) fn apply(
        &mut self,
        view: &[u8],
        gaze_deg: (f64, f64),
        even: &mut [f32],
        odd: &mut [f32],
        gain: &mut [f32],
    ) {
        self.subunits.filter(view, gaze_deg, false);
        self.surrounds.filter(view, gaze_deg, false);
        self.pools.filter(view, gaze_deg, true);
        let s = &self.subunits;
        for (k, pair) in s.cell.chunks_exact(2).enumerate() {
            let i = pair[0];
            let a = s.even[2 * k].hypot(s.odd[2 * k]);
            let b = s.even[2 * k + 1].hypot(s.odd[2 * k + 1]);
            if let (Some(e), Some(o)) = (even.get_mut(i), odd.get_mut(i)) {
                *e = (a * b).sqrt();
                *o = 0.0;
            }
        }
        self.surround_energy.fill(0.0);
        for (k, &i) in self.surrounds.cell.iter().enumerate() {
            self.surround_energy[i] = self.surrounds.even[k].hypot(self.surrounds.odd[k]);
        }
        self.pool_rms.fill(0.0);
        for (k, &i) in self.pools.cell.iter().enumerate() {
            self.pool_rms[i] = self.pools.even[k].max(0.0).sqrt();
        }
        for (i, (g, f)) in gain.iter_mut().zip(&self.filters).enumerate() {
            *g = f.gain(
                f64::from(self.surround_energy[i]),
                f64::from(self.pool_rms[i]),
            ) as f32;
        }
    }
}
