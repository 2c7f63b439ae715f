//! The ROIs a classifier turned down, kept beside the cells for the files labs curate.
//!
//! suite2p writes every ROI it found, cells and not, and lets its GUI move an ROI across; a
//! rejected ROI therefore needs masks and traces of its own. Its neuropil annulus must avoid
//! every ROI's pixels, the cells' included, as the cells' annuli avoid the rejected ROIs'
//! in suite2p; the cells' own annuli stay as drawn (they already fed the session's traces).

use super::CellMasks;
use crate::imaging::cells::CellsError;

impl CellMasks {
    /// Masks of `rejected` (pixel, weight lists, as [`CellMasks::from_weighted`] takes them),
    /// each neuropil annulus drawn clear of these cells' pixels and of the other rejected
    /// ROIs'. Row `i` is `rejected[i]`, ids from 0.
    pub fn rejected_beside(
        &self,
        rejected: &[Vec<(u32, f32)>],
        scores: &[f32],
    ) -> Result<CellMasks, CellsError> {
        if !scores.is_empty() && scores.len() != rejected.len() {
            return Err(CellsError::InvalidMasks(format!(
                "{} scores for {} rejected ROIs",
                scores.len(),
                rejected.len()
            )));
        }
        let n = self.len();
        let mut all: Vec<Vec<(u32, f32)>> = (0..n)
            .map(|i| {
                let (p, w) = self.cell(i);
                p.iter().copied().zip(w.iter().copied()).collect()
            })
            .collect();
        all.extend_from_slice(rejected);
        let mut all_scores: Vec<f32> = Vec::new();
        if !scores.is_empty() {
            all_scores.extend(self.info.iter().map(|c| c.score));
            all_scores.extend_from_slice(scores);
        }
        let both = CellMasks::from_weighted(
            self.height,
            self.width,
            &all,
            &all_scores,
            &self.neuropil_params,
        )?;
        Ok(both.rows_from(n))
    }

    /// These masks followed by `other`'s (same frame), each keeping its neuropil annulus as
    /// drawn: the ROI table of a plane whose rejected ROIs come after its cells.
    pub fn followed_by(&self, other: &CellMasks) -> Result<CellMasks, CellsError> {
        if (self.height, self.width) != (other.height, other.width) {
            return Err(CellsError::InvalidMasks(format!(
                "cannot join masks of a {}x{} frame with masks of a {}x{} frame",
                self.height, self.width, other.height, other.width
            )));
        }
        let mut joined = self.clone();
        let (cells, neuropil) = (joined.cell_pixel.len(), joined.np_pixel.len());
        joined.cell_start.pop();
        joined.np_start.pop();
        joined
            .cell_start
            .extend(other.cell_start.iter().map(|s| s + cells));
        joined
            .np_start
            .extend(other.np_start.iter().map(|s| s + neuropil));
        joined.cell_pixel.extend_from_slice(&other.cell_pixel);
        joined.cell_weight.extend_from_slice(&other.cell_weight);
        joined.np_pixel.extend_from_slice(&other.np_pixel);
        let first = joined.info.len() as u32;
        joined
            .info
            .extend(other.info.iter().enumerate().map(|(k, c)| super::CellInfo {
                id: first + k as u32,
                ..c.clone()
            }));
        Ok(joined)
    }

    /// Rows `from..` with their annuli as drawn, renumbered from 0.
    fn rows_from(&self, from: usize) -> CellMasks {
        let (c0, n0) = (self.cell_start[from], self.np_start[from]);
        CellMasks {
            height: self.height,
            width: self.width,
            neuropil_params: self.neuropil_params.clone(),
            info: self.info[from..]
                .iter()
                .enumerate()
                .map(|(k, c)| super::CellInfo {
                    id: k as u32,
                    ..c.clone()
                })
                .collect(),
            cell_start: self.cell_start[from..].iter().map(|s| s - c0).collect(),
            cell_pixel: self.cell_pixel[c0..].to_vec(),
            cell_weight: self.cell_weight[c0..].to_vec(),
            np_start: self.np_start[from..].iter().map(|s| s - n0).collect(),
            np_pixel: self.np_pixel[n0..].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::cells::NeuropilParams;

    /// A filled disc of radius `r` at (cy, cx), equal weights.
    fn disc(w: usize, cy: usize, cx: usize, r: usize) -> Vec<(u32, f32)> {
        let mut m = Vec::new();
        for y in cy - r..=cy + r {
            for x in cx - r..=cx + r {
                if (y.abs_diff(cy).pow(2) + x.abs_diff(cx).pow(2)) <= r * r {
                    m.push(((y * w + x) as u32, 1.0));
                }
            }
        }
        m
    }

    #[test]
    fn rejected_rois_are_the_tail_of_all_rois_drawn_together() {
        let (h, w) = (96, 96);
        let cells = vec![disc(w, 30, 30, 5), disc(w, 30, 60, 5), disc(w, 60, 45, 5)];
        // A vessel-like bar between two cells and a small blob touching a third's annulus.
        let bar: Vec<(u32, f32)> = (20..70).map(|x| ((40 * w + x) as u32, 1.0)).collect();
        let rejected = vec![bar, disc(w, 72, 45, 3)];
        let p = NeuropilParams::default();
        let kept = CellMasks::from_weighted(h, w, &cells, &[], &p).unwrap();
        let tail = kept.rejected_beside(&rejected, &[0.1, 0.2]).unwrap();
        let mut all = cells.clone();
        all.extend(rejected.iter().cloned());
        let together = CellMasks::from_weighted(h, w, &all, &[], &p).unwrap();
        assert_eq!(tail.len(), 2);
        for k in 0..2 {
            assert_eq!(tail.cell(k), together.cell(3 + k));
            assert_eq!(tail.neuropil(k), together.neuropil(3 + k));
            assert_eq!(tail.info()[k].id, k as u32);
            // The rejected ROI's annulus avoids the cells' pixels.
            for c in 0..3 {
                let (px, _) = kept.cell(c);
                assert!(tail.neuropil(k).iter().all(|q| !px.contains(q)));
            }
        }
        assert_eq!(tail.info()[1].score, 0.2);
        // Cells first, rejected after: every row as it was drawn, ids renumbered through.
        let table = kept.followed_by(&tail).unwrap();
        assert_eq!(table.len(), 5);
        for i in 0..5 {
            let (src, row) = if i < 3 { (&kept, i) } else { (&tail, i - 3) };
            assert_eq!(table.cell(i), src.cell(row));
            assert_eq!(table.neuropil(i), src.neuropil(row));
            assert_eq!(table.info()[i].id, i as u32);
        }
        // The cells' own annuli were drawn without the rejected ROIs: the bar's pixels may sit
        // in them, which is why the table keeps them as they were.
        assert_ne!(kept.neuropil(0), together.neuropil(0));
    }

    #[test]
    fn joining_masks_of_two_frame_sizes_is_refused() {
        let p = NeuropilParams::default();
        let a = CellMasks::from_weighted(64, 64, &[disc(64, 30, 30, 4)], &[], &p).unwrap();
        let b = CellMasks::from_weighted(64, 80, &[disc(80, 30, 30, 4)], &[], &p).unwrap();
        let e = a.followed_by(&b).unwrap_err().to_string();
        assert!(e.contains("64x64") && e.contains("64x80"), "{e}");
        assert!(
            a.rejected_beside(&[disc(64, 10, 10, 3)], &[0.1, 0.2])
                .is_err()
        );
    }
}
