//! Cell masks and neuropil masks, compressed (CSR) and saved with the session.
//!
//! A cell's mask is a list of (pixel index `y * width + x`, weight) with weights summing to 1,
//! so its fluorescence is a dot product with the frame. Its neuropil mask is a list of pixels
//! (equal weights), built as suite2p does: an annulus around the cell, starting beyond its own
//! mask grown by `inner_gap_px` and widening (in rings of equal distance from the cell's centre)
//! until it holds `min_pixels`, leaving out every pixel of every cell grown by
//! `cell_exclusion_px`.
//!
//! # Files (in the directory given to [`CellMasks::save`])
//! | file | content |
//! | --- | --- |
//! | `cells.json` | the index: format `version`, frame `height`/`width`, the neuropil settings, and per cell `id`, centroid y/x (px), equivalent radius (px), pixel counts, detection score |
//! | `cell_pixels.npy` | u32 [sum of cells' `pixels`]: the cells' pixel indices, cell after cell in index order |
//! | `cell_weights.npy` | f32 [same]: their weights (each cell's sum to 1) |
//! | `neuropil_pixels.npy` | u32 [sum of cells' `neuropil_pixels`]: the neuropil pixels, cell after cell |
//!
//! [`CellMasks::load`] checks the version, the frame size and every length and index, and names
//! the file at fault, so a day's cells stay the same cells across sessions or fail loudly.

mod rejected;

use super::{CellsError, NeuropilParams};
use npyz::WriterBuilder;
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// Version of the saved format; bumped on any change to the files' meaning.
pub const CELLS_FORMAT_VERSION: u32 = 1;

const INDEX_FILE: &str = "cells.json";
const PIXELS_FILE: &str = "cell_pixels.npy";
const WEIGHTS_FILE: &str = "cell_weights.npy";
const NEUROPIL_FILE: &str = "neuropil_pixels.npy";

/// What the index says about one cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellInfo {
    /// The cell's index: row of its traces everywhere downstream.
    pub id: u32,
    /// Weighted centroid of the mask, px from the top.
    pub centroid_y_px: f32,
    /// Weighted centroid of the mask, px from the left.
    pub centroid_x_px: f32,
    /// Radius of a disc of the mask's area, px.
    pub radius_px: f32,
    /// Pixels in the cell's mask.
    pub pixels: u32,
    /// Pixels in its neuropil mask.
    pub neuropil_pixels: u32,
    /// Detection score (peak of the detection image, robust s.d.); 0 when not detected.
    pub score: f32,
}

/// The saved index.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellsIndex {
    version: u32,
    height: usize,
    width: usize,
    neuropil: NeuropilParams,
    cells: Vec<CellInfo>,
}

/// Weighted cell masks and neuropil masks of one field of view.
#[derive(Clone, Debug, PartialEq)]
pub struct CellMasks {
    height: usize,
    width: usize,
    neuropil_params: NeuropilParams,
    info: Vec<CellInfo>,
    cell_start: Vec<usize>,
    cell_pixel: Vec<u32>,
    cell_weight: Vec<f32>,
    np_start: Vec<usize>,
    np_pixel: Vec<u32>,
}

impl CellMasks {
    /// Builds masks from each cell's (pixel, weight) list (weights > 0, any scale; they are
    /// normalised to sum to 1; pixels sorted) and draws the neuropil annuli. `scores` is one per
    /// cell or empty. Errors on an empty mask, a pixel outside the frame, a weight that is not
    /// positive and finite, or invalid neuropil settings.
    pub fn from_weighted(
        height: usize,
        width: usize,
        masks: &[Vec<(u32, f32)>],
        scores: &[f32],
        neuropil: &NeuropilParams,
    ) -> Result<CellMasks, CellsError> {
        let n_px = height * width;
        if n_px == 0 {
            return Err(CellsError::InvalidMasks(format!(
                "frame size {height}x{width} is empty"
            )));
        }
        if !scores.is_empty() && scores.len() != masks.len() {
            return Err(CellsError::InvalidMasks(format!(
                "{} scores for {} masks",
                scores.len(),
                masks.len()
            )));
        }
        let mut cell_start = Vec::with_capacity(masks.len() + 1);
        let mut cell_pixel = Vec::new();
        let mut cell_weight = Vec::new();
        let mut info = Vec::with_capacity(masks.len());
        let mut sorted: Vec<(u32, f32)> = Vec::new();
        for (i, m) in masks.iter().enumerate() {
            if m.is_empty() {
                return Err(CellsError::InvalidMasks(format!(
                    "cell {i} has an empty mask"
                )));
            }
            sorted.clear();
            sorted.extend_from_slice(m);
            sorted.sort_unstable_by_key(|&(p, _)| p);
            let mut total = 0.0f64;
            for (k, &(p, w)) in sorted.iter().enumerate() {
                if p as usize >= n_px {
                    return Err(CellsError::InvalidMasks(format!(
                        "cell {i}: pixel {p} is outside the {height}x{width} frame"
                    )));
                }
                if !(w.is_finite() && w > 0.0) {
                    return Err(CellsError::InvalidMasks(format!(
                        "cell {i}: pixel {p} has weight {w}; weights must be positive"
                    )));
                }
                if k > 0 && sorted[k - 1].0 == p {
                    return Err(CellsError::InvalidMasks(format!(
                        "cell {i}: pixel {p} listed twice"
                    )));
                }
                total += f64::from(w);
            }
            cell_start.push(cell_pixel.len());
            let (mut cy, mut cx) = (0.0f64, 0.0f64);
            for &(p, w) in &sorted {
                let w = f64::from(w) / total;
                cy += w * (p as usize / width) as f64;
                cx += w * (p as usize % width) as f64;
                cell_pixel.push(p);
                cell_weight.push(w as f32);
            }
            info.push(CellInfo {
                id: i as u32,
                centroid_y_px: cy as f32,
                centroid_x_px: cx as f32,
                radius_px: (sorted.len() as f64 / std::f64::consts::PI).sqrt() as f32,
                pixels: sorted.len() as u32,
                neuropil_pixels: 0,
                score: scores.get(i).copied().unwrap_or(0.0),
            });
        }
        cell_start.push(cell_pixel.len());
        let mut masks = CellMasks {
            height,
            width,
            neuropil_params: neuropil.clone(),
            info,
            cell_start,
            cell_pixel,
            cell_weight,
            np_start: Vec::new(),
            np_pixel: Vec::new(),
        };
        masks.draw_neuropil()?;
        Ok(masks)
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.info.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// Frame height the masks were drawn on, px.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Frame width the masks were drawn on, px.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The neuropil settings the annuli were drawn with.
    pub fn neuropil_params(&self) -> &NeuropilParams {
        &self.neuropil_params
    }

    /// Per-cell summary, indexed by cell id.
    pub fn info(&self) -> &[CellInfo] {
        &self.info
    }

    /// Cell `i`'s pixel indices (ascending) and weights (summing to 1).
    pub fn cell(&self, i: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.cell_start[i], self.cell_start[i + 1]);
        (&self.cell_pixel[s..e], &self.cell_weight[s..e])
    }

    /// Index of cell `i`'s first pixel in the concatenation of all cells' pixels (`i` up to
    /// `len()`, which gives the total).
    pub fn cell_offset(&self, i: usize) -> usize {
        self.cell_start[i]
    }

    /// Cell `i`'s neuropil pixel indices (ascending).
    pub fn neuropil(&self, i: usize) -> &[u32] {
        &self.np_pixel[self.np_start[i]..self.np_start[i + 1]]
    }

    /// Draws every cell's neuropil annulus (see the module docs).
    fn draw_neuropil(&mut self) -> Result<(), CellsError> {
        let p = &self.neuropil_params;
        if p.min_pixels == 0 || p.max_radius_px <= p.inner_gap_px + 1 {
            return Err(CellsError::InvalidParam {
                field: "neuropil.max_radius_px",
                reason: "must exceed neuropil.inner_gap_px + 1, and min_pixels must be >= 1".into(),
            });
        }
        let (h, w) = (self.height as isize, self.width as isize);
        // Every cell pixel, grown by the exclusion margin.
        let mut excluded = vec![false; self.height * self.width];
        let e = p.cell_exclusion_px as isize;
        for &px in &self.cell_pixel {
            let (y, x) = (
                (px as usize / self.width) as isize,
                (px as usize % self.width) as isize,
            );
            for yy in (y - e).max(0)..(y + e + 1).min(h) {
                for xx in (x - e).max(0)..(x + e + 1).min(w) {
                    excluded[(yy * w + xx) as usize] = true;
                }
            }
        }
        let offsets = ring_offsets(p.max_radius_px);
        let g = p.inner_gap_px as isize;
        let mut own: Vec<bool> = Vec::new();
        let mut ring: Vec<u32> = Vec::new();
        self.np_start = Vec::with_capacity(self.len() + 1);
        self.np_pixel = Vec::with_capacity(self.len() * p.min_pixels * 11 / 10);
        for i in 0..self.len() {
            let (pixels, _) = self.cell(i);
            // The cell's own mask grown by the inner gap, in a local box.
            let (mut y0, mut y1, mut x0, mut x1) = (isize::MAX, isize::MIN, isize::MAX, isize::MIN);
            for &px in pixels {
                let (y, x) = (
                    (px as usize / self.width) as isize,
                    (px as usize % self.width) as isize,
                );
                y0 = y0.min(y - g);
                y1 = y1.max(y + g);
                x0 = x0.min(x - g);
                x1 = x1.max(x + g);
            }
            let bw = (x1 - x0 + 1) as usize;
            own.clear();
            own.resize(bw * (y1 - y0 + 1) as usize, false);
            for &px in pixels {
                let (y, x) = (
                    (px as usize / self.width) as isize,
                    (px as usize % self.width) as isize,
                );
                for yy in y - g..=y + g {
                    for xx in x - g..=x + g {
                        own[(yy - y0) as usize * bw + (xx - x0) as usize] = true;
                    }
                }
            }
            let in_own = |y: isize, x: isize| {
                y >= y0
                    && y <= y1
                    && x >= x0
                    && x <= x1
                    && own[(y - y0) as usize * bw + (x - x0) as usize]
            };
            let cy = self.info[i].centroid_y_px.round() as isize;
            let cx = self.info[i].centroid_x_px.round() as isize;
            let start = self.np_pixel.len();
            self.np_start.push(start);
            let mut last_d2 = 0u32;
            for &(dy, dx, d2) in &offsets {
                if self.np_pixel.len() - start >= p.min_pixels && d2 != last_d2 {
                    break;
                }
                last_d2 = d2;
                let (y, x) = (cy + dy as isize, cx + dx as isize);
                if y < 0 || y >= h || x < 0 || x >= w || in_own(y, x) {
                    continue;
                }
                let q = (y * w + x) as usize;
                if !excluded[q] {
                    self.np_pixel.push(q as u32);
                }
            }
            ring.clear();
            ring.extend_from_slice(&self.np_pixel[start..]);
            ring.sort_unstable();
            self.np_pixel[start..].copy_from_slice(&ring);
            self.info[i].neuropil_pixels = ring.len() as u32;
        }
        self.np_start.push(self.np_pixel.len());
        Ok(())
    }

    /// The same cells moved by `(dy, dx)` whole pixels (a later session's field of view against
    /// the one they were found in), neuropil annuli redrawn around their new places. Ids and
    /// scores are kept, so row `i` is still cell `i`. Pixels pushed out of the frame are
    /// dropped; a cell left with none is an error (the field of view moved too far).
    pub fn shifted(&self, dy: i32, dx: i32) -> Result<CellMasks, CellsError> {
        let (h, w) = (self.height as i64, self.width as i64);
        let mut masks = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let (pixels, weights) = self.cell(i);
            let moved: Vec<(u32, f32)> = pixels
                .iter()
                .zip(weights)
                .filter_map(|(&p, &wt)| {
                    let y = p as i64 / w + i64::from(dy);
                    let x = p as i64 % w + i64::from(dx);
                    ((0..h).contains(&y) && (0..w).contains(&x) && wt > 0.0)
                        .then_some(((y * w + x) as u32, wt))
                })
                .collect();
            if moved.is_empty() {
                return Err(CellsError::InvalidMasks(format!(
                    "cell {i} leaves the {}x{} frame when the masks move by ({dy}, {dx}) px",
                    self.height, self.width
                )));
            }
            masks.push(moved);
        }
        let scores: Vec<f32> = self.info.iter().map(|c| c.score).collect();
        CellMasks::from_weighted(
            self.height,
            self.width,
            &masks,
            &scores,
            &self.neuropil_params,
        )
    }

    /// Saves the masks into `dir` (created if needed): `cells.json` and three `.npy` files.
    pub fn save(&self, dir: &Path) -> Result<(), CellsError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        write_npy(&dir.join(PIXELS_FILE), &self.cell_pixel)?;
        write_npy(&dir.join(WEIGHTS_FILE), &self.cell_weight)?;
        write_npy(&dir.join(NEUROPIL_FILE), &self.np_pixel)?;
        let index = CellsIndex {
            version: CELLS_FORMAT_VERSION,
            height: self.height,
            width: self.width,
            neuropil: self.neuropil_params.clone(),
            cells: self.info.clone(),
        };
        let path = dir.join(INDEX_FILE);
        let json = serde_json::to_vec_pretty(&index).map_err(|e| file_err(&path, e))?;
        // The index last: a directory with a complete index has complete arrays.
        std::fs::write(&path, json).map_err(|e| file_err(&path, e))
    }

    /// Loads masks saved by [`CellMasks::save`] for frames of `height` x `width`.
    pub fn load(dir: &Path, height: usize, width: usize) -> Result<CellMasks, CellsError> {
        let path = dir.join(INDEX_FILE);
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CellsError::MaskFile {
                    path: path.clone(),
                    reason: "missing: detect cells first (a calibration block at the start of \
                             the session), or point to the directory that holds them"
                        .into(),
                }
            } else {
                file_err(&path, e)
            }
        })?;
        let index: CellsIndex = serde_json::from_slice(&bytes).map_err(|e| file_err(&path, e))?;
        if index.version != CELLS_FORMAT_VERSION {
            return Err(CellsError::MaskFile {
                path,
                reason: format!(
                    "format version {} but this build reads version {CELLS_FORMAT_VERSION}",
                    index.version
                ),
            });
        }
        if (index.height, index.width) != (height, width) {
            return Err(CellsError::FrameSizeMismatch {
                path,
                saved: (index.height, index.width),
                expected: (height, width),
            });
        }
        for (i, c) in index.cells.iter().enumerate() {
            if c.id as usize != i {
                return Err(CellsError::MaskFile {
                    path,
                    reason: format!("cell at position {i} has id {}", c.id),
                });
            }
        }
        let cell_pixel: Vec<u32> = read_npy(&dir.join(PIXELS_FILE))?;
        let cell_weight: Vec<f32> = read_npy(&dir.join(WEIGHTS_FILE))?;
        let np_pixel: Vec<u32> = read_npy(&dir.join(NEUROPIL_FILE))?;
        let starts = |count: &dyn Fn(&CellInfo) -> u32| {
            let mut s = Vec::with_capacity(index.cells.len() + 1);
            let mut acc = 0usize;
            s.push(0);
            for c in &index.cells {
                acc += count(c) as usize;
                s.push(acc);
            }
            s
        };
        let cell_start = starts(&|c| c.pixels);
        let np_start = starts(&|c| c.neuropil_pixels);
        let n_px = (height * width) as u32;
        let check = |file: &str, len: usize, expected: usize, pixels: Option<&[u32]>| {
            let path = dir.join(file);
            if len != expected {
                return Err(CellsError::MaskFile {
                    path,
                    reason: format!("holds {len} values but cells.json counts {expected}"),
                });
            }
            if let Some(bad) = pixels.and_then(|p| p.iter().find(|&&p| p >= n_px)) {
                return Err(CellsError::MaskFile {
                    path,
                    reason: format!("pixel {bad} is outside the {height}x{width} frame"),
                });
            }
            Ok(())
        };
        let n_cell = *cell_start.last().unwrap_or(&0);
        check(PIXELS_FILE, cell_pixel.len(), n_cell, Some(&cell_pixel))?;
        check(WEIGHTS_FILE, cell_weight.len(), n_cell, None)?;
        let n_np = *np_start.last().unwrap_or(&0);
        check(NEUROPIL_FILE, np_pixel.len(), n_np, Some(&np_pixel))?;
        if let Some(w) = cell_weight.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(CellsError::MaskFile {
                path: dir.join(WEIGHTS_FILE),
                reason: format!("weight {w} is not a finite non-negative number"),
            });
        }
        Ok(CellMasks {
            height,
            width,
            neuropil_params: index.neuropil,
            info: index.cells,
            cell_start,
            cell_pixel,
            cell_weight,
            np_start,
            np_pixel,
        })
    }
}

/// Every (dy, dx) within `max_r` of the origin with its squared distance, nearest first.
fn ring_offsets(max_r: usize) -> Vec<(i32, i32, u32)> {
    let r = max_r as i32;
    let r2 = (r * r) as u32;
    let mut v = Vec::with_capacity((4 * r * r) as usize);
    for dy in -r..=r {
        for dx in -r..=r {
            let d2 = (dy * dy + dx * dx) as u32;
            if d2 <= r2 {
                v.push((dy, dx, d2));
            }
        }
    }
    v.sort_unstable_by_key(|&(dy, dx, d2)| (d2, dy, dx));
    v
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> CellsError {
    CellsError::MaskFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    path: &Path,
    data: &[T],
) -> Result<(), CellsError> {
    let f = std::fs::File::create(path).map_err(|e| file_err(path, e))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[data.len() as u64])
        .writer(BufWriter::new(f))
        .begin_nd()
        .map_err(|e| file_err(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| file_err(path, e))?;
    w.finish().map_err(|e| file_err(path, e))
}

fn read_npy<T: npyz::Deserialize>(path: &PathBuf) -> Result<Vec<T>, CellsError> {
    let f = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CellsError::MaskFile {
                path: path.clone(),
                reason: "missing (cells.json is there but its arrays are not)".into(),
            }
        } else {
            file_err(path, e)
        }
    })?;
    let npy = npyz::NpyFile::new(BufReader::new(f)).map_err(|e| file_err(path, e))?;
    if npy.shape().len() != 1 {
        return Err(file_err(
            path,
            format!("expected a 1-d array, found shape {:?}", npy.shape()),
        ));
    }
    npy.into_vec::<T>().map_err(|e| file_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Discs of radius 5 on a grid, weights falling off from the centre.
    fn grid_of_discs(h: usize, w: usize, spacing: usize) -> Vec<Vec<(u32, f32)>> {
        let mut masks = Vec::new();
        for cy in (spacing / 2..h).step_by(spacing) {
            for cx in (spacing / 2..w).step_by(spacing) {
                let mut m = Vec::new();
                for y in cy.saturating_sub(5)..(cy + 6).min(h) {
                    for x in cx.saturating_sub(5)..(cx + 6).min(w) {
                        let d2 = (y as f32 - cy as f32).powi(2) + (x as f32 - cx as f32).powi(2);
                        if d2 <= 25.0 {
                            m.push(((y * w + x) as u32, 1.0 - d2 / 50.0));
                        }
                    }
                }
                masks.push(m);
            }
        }
        masks
    }

    #[test]
    fn neuropil_excludes_every_cell_and_reaches_its_size() {
        let (h, w) = (128, 128);
        let masks = grid_of_discs(h, w, 16);
        let p = NeuropilParams::default();
        let m = CellMasks::from_weighted(h, w, &masks, &[], &p).unwrap();
        assert_eq!(m.len(), 64);
        // Every pixel of every cell, grown by the exclusion margin.
        let mut near_cell = vec![false; h * w];
        for i in 0..m.len() {
            for &px in m.cell(i).0 {
                let (y, x) = (px as usize / w, px as usize % w);
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xx in x.saturating_sub(1)..(x + 2).min(w) {
                        near_cell[yy * w + xx] = true;
                    }
                }
            }
        }
        for i in 0..m.len() {
            let np = m.neuropil(i);
            assert!(np.len() >= p.min_pixels, "cell {i}: {} px", np.len());
            assert!(np.len() < 2 * p.min_pixels, "cell {i}: {} px", np.len());
            assert!(np.windows(2).all(|a| a[0] < a[1]), "sorted, no repeats");
            assert!(np.iter().all(|&q| !near_cell[q as usize]), "cell {i}");
            // The annulus starts beyond the cell: no pixel within gap + radius of the centre.
            let c = &m.info()[i];
            for &q in np {
                let (y, x) = ((q as usize / w) as f32, (q as usize % w) as f32);
                let d = ((y - c.centroid_y_px).powi(2) + (x - c.centroid_x_px).powi(2)).sqrt();
                assert!(d > 5.0 + 2.0, "cell {i}: neuropil pixel at {d} px");
            }
            assert_eq!(c.neuropil_pixels as usize, np.len());
        }
        // Weights are normalised, centroids where the discs are.
        let (_, wts) = m.cell(9);
        assert!((wts.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let c = &m.info()[9];
        assert!((c.centroid_y_px - 24.0).abs() < 1e-3 && (c.centroid_x_px - 24.0).abs() < 1e-3);
        assert!((c.radius_px - (81.0f32 / std::f32::consts::PI).sqrt()).abs() < 1e-3);
    }

    #[test]
    fn shifted_masks_keep_ids_and_weights_and_move_centroids() {
        let (h, w) = (96, 96);
        let scores: Vec<f32> = (0..36).map(|i| i as f32).collect();
        let p = NeuropilParams::default();
        let m = CellMasks::from_weighted(h, w, &grid_of_discs(h, w, 16), &scores, &p).unwrap();
        let s = m.shifted(3, -2).unwrap();
        assert_eq!(s.len(), m.len());
        for (a, b) in m.info().iter().zip(s.info()) {
            assert_eq!((a.id, a.score), (b.id, b.score));
            if a.pixels != b.pixels {
                // Clipped at the frame's edge: its centroid moved less.
                continue;
            }
            assert!((b.centroid_y_px - a.centroid_y_px - 3.0).abs() < 1e-3);
            assert!((b.centroid_x_px - a.centroid_x_px + 2.0).abs() < 1e-3);
        }
        assert!(s.info().iter().filter(|c| c.pixels == 81).count() >= 25);
        // A cell pushed wholly out of the frame is an error naming it.
        let e = m.shifted(0, -200).unwrap_err().to_string();
        assert!(e.contains("cell 0") && e.contains("(0, -200)"), "{e}");
    }

    #[test]
    fn save_load_round_trip_and_errors_name_the_file() {
        let (h, w) = (64, 96);
        let masks = grid_of_discs(h, w, 20);
        let scores: Vec<f32> = (0..masks.len()).map(|i| i as f32).collect();
        let m =
            CellMasks::from_weighted(h, w, &masks, &scores, &NeuropilParams::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = CellMasks::load(dir.path(), h, w).unwrap();
        assert_eq!(back, m);

        let e = CellMasks::load(dir.path(), 512, 512)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cells.json") && e.contains("64x96") && e.contains("512x512"),
            "{e}"
        );

        std::fs::remove_file(dir.path().join(NEUROPIL_FILE)).unwrap();
        let e = CellMasks::load(dir.path(), h, w).unwrap_err().to_string();
        assert!(e.contains(NEUROPIL_FILE) && e.contains("missing"), "{e}");

        let empty = tempfile::tempdir().unwrap();
        let e = CellMasks::load(empty.path(), h, w).unwrap_err().to_string();
        assert!(e.contains("cells.json") && e.contains("missing"), "{e}");

        // An array that does not match the index.
        m.save(dir.path()).unwrap();
        write_npy(&dir.path().join(PIXELS_FILE), &[1u32, 2, 3]).unwrap();
        let e = CellMasks::load(dir.path(), h, w).unwrap_err().to_string();
        assert!(e.contains(PIXELS_FILE) && e.contains("holds 3"), "{e}");

        // Another format version.
        m.save(dir.path()).unwrap();
        let path = dir.path().join(INDEX_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"version\": 1", "\"version\": 99", 1)).unwrap();
        let e = CellMasks::load(dir.path(), h, w).unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
    }

    #[test]
    fn bad_masks_are_refused() {
        let p = NeuropilParams::default();
        let e = CellMasks::from_weighted(8, 8, &[vec![(64, 1.0)]], &[], &p).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let e = CellMasks::from_weighted(8, 8, &[vec![]], &[], &p).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = CellMasks::from_weighted(8, 8, &[vec![(3, -1.0)]], &[], &p).unwrap_err();
        assert!(e.to_string().contains("weight"), "{e}");
    }

    #[test]
    fn a_crowded_field_stops_at_the_maximum_radius() {
        // Cells everywhere: the annulus cannot find its pixels and stops at max_radius_px.
        let (h, w) = (40, 40);
        let masks = grid_of_discs(h, w, 10);
        let p = NeuropilParams {
            max_radius_px: 12,
            ..NeuropilParams::default()
        };
        let m = CellMasks::from_weighted(h, w, &masks, &[], &p).unwrap();
        for i in 0..m.len() {
            assert!(m.neuropil(i).len() < p.min_pixels);
        }
    }
}
