//! Merging masks that are one cell seeded twice (a large or ring-shaped soma can hold two
//! seeds; its halves then carry the same activity).

use super::images::CalibrationBlock;
use super::seeds::centroid;

/// Merges touching masks that are one cell seeded twice: centroids closer than
/// `diameter`, mean traces (over the binned, background-subtracted movie) correlated at least
/// `min_r`, and together no larger than `max_area`. Strongest pairs first; a merged mask keeps
/// the index and score of its stronger part. Returns how many masks were merged away.
pub(crate) fn merge_split_cells(
    block: &CalibrationBlock,
    masks: &mut Vec<Vec<(u32, f32)>>,
    scores: &mut Vec<f32>,
    diameter: f32,
    max_area: usize,
    min_r: f32,
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
                if r >= min_r {
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
