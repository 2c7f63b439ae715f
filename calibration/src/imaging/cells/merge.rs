//! Merging masks that are one cell seeded twice (a large or ring-shaped soma can hold two
//! seeds; its halves then carry the same activity).
//!
//! Two criteria: traces that correlate almost perfectly (`min_r`), or, with the donut-aware
//! rule on (`RoundMerge`), traces that correlate clearly and a union that is round. A donut
//! soma (a dark nucleus inside a bright ring) is often seeded on both sides of its nucleus and
//! grown into two crescents; with few transients, or noise differing between the halves, their
//! traces correlate well under 0.95, but together they make a round ring. Two touching somata
//! make an elongated union (two equal discs: aspect ratio 2.2), which the rule refuses.

use super::classify::features::shape;
use super::images::CalibrationBlock;
use super::seeds::centroid;

/// The donut-aware merge rule: touching masks whose traces correlate at least `min_r` and
/// whose union is round (aspect ratio at most `max_aspect`, suite2p's compactness at most
/// `max_compact`) are one soma.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RoundMerge {
    pub min_r: f32,
    pub max_aspect: f64,
    pub max_compact: f64,
}

/// Merges touching masks that are one cell seeded twice: centroids closer than
/// `diameter`, mean traces (over the binned, background-subtracted movie) correlated at least
/// `min_r`, and together no larger than `max_area`. Strongest pairs first; a merged mask keeps
/// the index and score of its stronger part; with `round` set, round unions of less
/// correlated parts merge too (see the module docs). Returns how many masks were merged away.
pub(crate) fn merge_split_cells(
    block: &CalibrationBlock,
    masks: &mut Vec<Vec<(u32, f32)>>,
    scores: &mut Vec<f32>,
    diameter: f32,
    max_area: usize,
    min_r: f32,
    round: Option<RoundMerge>,
) -> usize {
    let (h, w) = (block.images.height, block.images.width);
    let bins = block.bins();
    let mut owner = vec![u32::MAX; h * w];
    for (i, m) in masks.iter().enumerate() {
        for &(p, _) in m {
            owner[p as usize] = i as u32;
        }
    }
    // Standardised mean trace and centroid of every mask.
    let mut traces = vec![0.0f32; masks.len() * bins];
    let centroids: Vec<(f32, f32)> = masks.iter().map(|m| centroid(m, w)).collect();
    for (i, m) in masks.iter().enumerate() {
        let t = &mut traces[i * bins..(i + 1) * bins];
        for &(p, wt) in m {
            for (b, v) in t.iter_mut().enumerate() {
                *v += wt * block.binned(b, p as usize);
            }
        }
        let mean = t.iter().sum::<f32>() / bins as f32;
        let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / bins as f32).sqrt();
        for v in t.iter_mut() {
            *v = if sd > 0.0 { (*v - mean) / sd } else { 0.0 };
        }
    }
    // Touching pairs (4-neighbours), close enough to be one soma, correlated enough.
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for y in 0..h {
        for x in 0..w {
            let a = owner[y * w + x];
            if a == u32::MAX {
                continue;
            }
            for q in [
                (x + 1 < w).then(|| y * w + x + 1),
                (y + 1 < h).then(|| (y + 1) * w + x),
            ]
            .into_iter()
            .flatten()
            {
                let b = owner[q];
                if b == u32::MAX || b == a {
                    continue;
                }
                let (i, j) = (a.min(b) as usize, a.max(b) as usize);
                if !seen.insert((i, j)) {
                    continue;
                }
                let (ci, cj) = (centroids[i], centroids[j]);
                if (ci.0 - cj.0).hypot(ci.1 - cj.1) >= diameter {
                    continue;
                }
                let r = traces[i * bins..(i + 1) * bins]
                    .iter()
                    .zip(&traces[j * bins..(j + 1) * bins])
                    .map(|(u, v)| u * v)
                    .sum::<f32>()
                    / bins as f32;
                let is_round = || {
                    round.is_some_and(|rule| {
                        if r < rule.min_r || masks[i].len() + masks[j].len() > max_area {
                            return false;
                        }
                        let mut union: Vec<(u32, f32)> =
                            masks[i].iter().chain(&masks[j]).copied().collect();
                        fill_enclosed(&mut union, h, w);
                        let s = shape(&union, w);
                        s.aspect_ratio <= rule.max_aspect && s.compact <= rule.max_compact
                    })
                };
                if r >= min_r || is_round() {
                    pairs.push((r, i, j));
                }
            }
        }
    }
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    // Union-find, keeping the smaller (stronger) index as the root.
    let mut parent: Vec<usize> = (0..masks.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut area: Vec<usize> = masks.iter().map(Vec::len).collect();
    let mut merged = 0;
    for &(_, i, j) in &pairs {
        let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
        if ri == rj || area[ri] + area[rj] > max_area {
            continue;
        }
        let (keep, gone) = (ri.min(rj), ri.max(rj));
        parent[gone] = keep;
        area[keep] += area[gone];
        merged += 1;
    }
    if merged == 0 {
        return 0;
    }
    let mut out: Vec<Vec<(u32, f32)>> = Vec::with_capacity(masks.len() - merged);
    let mut out_scores = Vec::with_capacity(masks.len() - merged);
    let mut slot = vec![usize::MAX; masks.len()];
    for (i, mask) in masks.iter_mut().enumerate() {
        let r = root(&mut parent, i);
        if slot[r] == usize::MAX {
            slot[r] = out.len();
            out.push(Vec::new());
            out_scores.push(scores[r]);
        }
        out[slot[r]].extend(std::mem::take(mask));
    }
    *masks = out;
    *scores = out_scores;
    merged
}

/// Adds to `mask` the pixels it encloses (not 4-connected to its bounding box's rim through
/// pixels outside it), at its smallest weight: the nucleus between two merged crescents of a
/// donut. `Grower::fill_holes` does the same within one seed's territory while growing.
pub(crate) fn fill_enclosed(mask: &mut Vec<(u32, f32)>, h: usize, w: usize) {
    let Some(cut) = mask.iter().map(|&(_, v)| v).min_by(f32::total_cmp) else {
        return;
    };
    let ys = mask.iter().map(|&(p, _)| p as usize / w);
    let xs = mask.iter().map(|&(p, _)| p as usize % w);
    // Bounding box with a 1 px rim (clipped to the frame: the frame's edge is outside).
    let (y0, y1) = (ys.clone().min().unwrap_or(0), ys.max().unwrap_or(0));
    let (x0, x1) = (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0));
    let (y0, x0) = (y0.saturating_sub(1), x0.saturating_sub(1));
    let (y1, x1) = ((y1 + 1).min(h - 1), (x1 + 1).min(w - 1));
    let (rows, cols) = (y1 - y0 + 1, x1 - x0 + 1);
    let mut inside = vec![false; rows * cols];
    for &(p, _) in mask.iter() {
        inside[(p as usize / w - y0) * cols + p as usize % w - x0] = true;
    }
    let mut outside = vec![false; rows * cols];
    let mut stack: Vec<usize> = (0..rows * cols)
        .filter(|&l| {
            let (ly, lx) = (l / cols, l % cols);
            (ly == 0 || lx == 0 || ly + 1 == rows || lx + 1 == cols) && !inside[l]
        })
        .collect();
    for &l in &stack {
        outside[l] = true;
    }
    while let Some(l) = stack.pop() {
        let (ly, lx) = (l / cols, l % cols);
        let next = [
            (ly > 0).then(|| l - cols),
            (ly + 1 < rows).then(|| l + cols),
            (lx > 0).then(|| l - 1),
            (lx + 1 < cols).then(|| l + 1),
        ];
        for nl in next.into_iter().flatten() {
            if !outside[nl] && !inside[nl] {
                outside[nl] = true;
                stack.push(nl);
            }
        }
    }
    for l in 0..rows * cols {
        if !inside[l] && !outside[l] {
            let p = (y0 + l / cols) * w + x0 + l % cols;
            mask.push((p as u32, cut.max(f32::MIN_POSITIVE)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RoundMerge, fill_enclosed, merge_split_cells};
    use crate::imaging::cells::detect::tests::Noise;
    use crate::imaging::cells::{CalibrationBlock, CellDetectionParams};

    /// A ring (radius 3-6 px) split into its left and right halves, and two touching discs
    /// (radius 5, centres 10 px apart). Each pair shares its transients; each mask adds its own
    /// noise, so that a pair's traces correlate clearly but well under 0.95.
    #[test]
    fn the_round_rule_joins_a_split_ring_and_keeps_touching_somata_apart() {
        let (h, w, n) = (40usize, 40usize, 400usize);
        let disc = |cy: i32, cx: i32, r2: (i32, i32)| -> Vec<usize> {
            (0..h * w)
                .filter(|&p| {
                    let d2 = (p / w) as i32 - cy;
                    let d2 = d2 * d2 + ((p % w) as i32 - cx).pow(2);
                    (r2.0..=r2.1).contains(&d2)
                })
                .collect()
        };
        let ring = disc(11, 11, (9, 36));
        let left: Vec<usize> = ring.iter().copied().filter(|p| p % w < 11).collect();
        let right: Vec<usize> = ring.iter().copied().filter(|p| p % w >= 11).collect();
        let a = disc(28, 13, (0, 25));
        let b: Vec<usize> = disc(28, 23, (0, 25))
            .into_iter()
            .filter(|p| !a.contains(p))
            .collect();
        let parts = [&left, &right, &a, &b];
        let mut noise = Noise(3);
        let mut shared = [0.0f32; 2];
        let mut frames = Vec::with_capacity(n * h * w);
        for _ in 0..n {
            for s in &mut shared {
                *s *= 0.9;
                if noise.next() > 0.45 {
                    *s += 60.0;
                }
            }
            let own: Vec<f32> = parts.iter().map(|_| 40.0 * noise.next()).collect();
            let mut img = vec![300.0f32; h * w];
            for (k, part) in parts.iter().enumerate() {
                for &p in part.iter() {
                    img[p] += 100.0 + shared[k / 2] + own[k];
                }
            }
            frames.extend(img.iter().map(|v| (v + 10.0 * noise.next()) as u16));
        }
        let params = CellDetectionParams {
            cell_diameter_px: 12.0,
            min_frames: 100,
            bin_frames: 2,
            ..CellDetectionParams::default()
        };
        let block = CalibrationBlock::from_frames(&frames, h, w, &params).unwrap();
        let masks = || -> Vec<Vec<(u32, f32)>> {
            parts
                .iter()
                .map(|m| m.iter().map(|&p| (p as u32, 1.0)).collect())
                .collect()
        };
        let rule = RoundMerge {
            min_r: 0.5,
            max_aspect: 1.5,
            max_compact: 1.1,
        };
        // Only the near-perfect correlation rule: nothing is one soma.
        let (mut m, mut s) = (masks(), vec![1.0; 4]);
        assert_eq!(
            merge_split_cells(&block, &mut m, &mut s, 12.0, 300, 0.95, None),
            0
        );
        // The round rule joins the ring's halves, not the two discs.
        let (mut m, mut s) = (masks(), vec![1.0; 4]);
        assert_eq!(
            merge_split_cells(&block, &mut m, &mut s, 12.0, 300, 0.95, Some(rule)),
            1
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].len(), ring.len());
        assert_eq!((m[1].len(), m[2].len()), (a.len(), b.len()));
        // With a correlation floor above the pair's, the ring stays split.
        let strict = RoundMerge {
            min_r: 0.99,
            ..rule
        };
        let (mut m, mut s) = (masks(), vec![1.0; 4]);
        assert_eq!(
            merge_split_cells(&block, &mut m, &mut s, 12.0, 300, 0.95, Some(strict)),
            0
        );
    }

    #[test]
    fn a_ring_is_filled_and_a_crescent_is_not() {
        let (h, w) = (20, 20);
        let ring = |open: bool| -> Vec<(u32, f32)> {
            let mut m = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    let d2 = (y as i32 - 10).pow(2) + (x as i32 - 10).pow(2);
                    if (9..=25).contains(&d2) && !(open && x > 12) {
                        m.push(((y * w + x) as u32, 1.0 + (y as f32) / 100.0));
                    }
                }
            }
            m
        };
        let mut closed = ring(false);
        let n = closed.len();
        fill_enclosed(&mut closed, h, w);
        // The hole: the 25 lattice points closer than 3 px to the centre (d2 < 9).
        assert_eq!(closed.len(), n + 25);
        let cut = closed[..n].iter().map(|v| v.1).fold(f32::MAX, f32::min);
        assert!(closed[n..].iter().all(|&(_, v)| v == cut));
        let mut crescent = ring(true);
        let n = crescent.len();
        fill_enclosed(&mut crescent, h, w);
        assert_eq!(crescent.len(), n);
    }
}
