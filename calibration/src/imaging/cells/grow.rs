//! Growing one seed into a weighted mask, inside its territory.
//!
//! A pixel's weight blends its **anatomy** (the mean image above its background, relative to
//! the seed core's mean) with its **activity loading** (the regression coefficient of its binned,
//! background-subtracted trace on the summed trace of the seed's core, relative to the core's
//! mean coefficient); the caller sets the activity share from how strongly the seed's pixels
//! correlate (none for a cell that does not fire in the block). Pixels below a fraction of the
//! territory's robust peak weight (its 90th percentile within twice the core radius) are
//! dropped, and the mask is the 4-connected region holding the best pixel of the core, with
//! its holes filled: a soma's nucleus excludes the indicator, so its pixels fall under the cut
//! although they are inside the cell (filled at the cut's weight, they count as the cell's
//! outline without pulling its trace toward the nucleus's weaker signal).

use super::images::CalibrationBlock;

/// Scratch for growing one mask, reused across seeds.
pub(crate) struct Grower {
    /// Centred binned traces of the window's pixels, pixel-major.
    traces: Vec<f32>,
    seed_trace: Vec<f32>,
    weight: Vec<f32>,
    inside: Vec<bool>,
    visited: Vec<bool>,
    stack: Vec<usize>,
    peak: Vec<f32>,
    out: Vec<(u32, f32)>,
    in_mask: Vec<bool>,
    bins: usize,
    /// Fill the holes a nucleus leaves (`CellDetectionParams::fill_holes`).
    fill: bool,
}

impl Grower {
    /// Scratch for windows of `side` x `side` px and traces of `bins` bins; `fill`: fill the
    /// holes of each mask.
    pub(crate) fn new(side: usize, bins: usize, fill: bool) -> Grower {
        let m = side * side;
        Grower {
            traces: vec![0.0; m * bins],
            seed_trace: vec![0.0; bins],
            weight: vec![0.0; m],
            inside: vec![false; m],
            visited: vec![false; m],
            stack: Vec::with_capacity(m),
            peak: Vec::with_capacity(m),
            out: Vec::with_capacity(m),
            in_mask: vec![false; m],
            bins,
            fill,
        }
    }

    /// The mask of seed `k` at pixel `s` (see the module docs): (pixel, weight) of the
    /// 4-connected region above `threshold` x the robust peak weight, within the pixels of
    /// `owner` equal to `k` in the window of `reach` px around the seed. `hp_mean` is the mean
    /// image above its background; `activity` in [0, 1] is the share of the activity loading in
    /// the weights; `core_r` is the radius of the seed's core.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn grow(
        &mut self,
        block: &CalibrationBlock,
        hp_mean: &[f32],
        owner: &[u32],
        k: u32,
        s: usize,
        reach: isize,
        core_r: f32,
        activity: f32,
        threshold: f32,
    ) -> &[(u32, f32)] {
        let (h, w) = (block.images.height, block.images.width);
        let bins = self.bins;
        let (sy, sx) = ((s / w) as isize, (s % w) as isize);
        let y0 = (sy - reach).max(0) as usize;
        let x0 = (sx - reach).max(0) as usize;
        let y1 = ((sy + reach + 1).min(h as isize)) as usize;
        let x1 = ((sx + reach + 1).min(w as isize)) as usize;
        let bw = x1 - x0;
        let m = (y1 - y0) * bw;
        let core2 = core_r * core_r;
        // Traces (only for pixels of this territory) and the core's mean trace.
        self.seed_trace.fill(0.0);
        let mut core_n = 0usize;
        let mut core_mean = 0.0f32;
        for ly in 0..y1 - y0 {
            for lx in 0..bw {
                let (y, x) = (y0 + ly, x0 + lx);
                let p = y * w + x;
                let l = ly * bw + lx;
                self.inside[l] = owner[p] == k;
                if !self.inside[l] {
                    continue;
                }
                let mu = block.pixel_mean(p);
                let t = &mut self.traces[l * bins..(l + 1) * bins];
                for (b, v) in t.iter_mut().enumerate() {
                    *v = block.binned(b, p) - mu;
                }
                let d2 = ((y as isize - sy).pow(2) + (x as isize - sx).pow(2)) as f32;
                if d2 <= core2 {
                    for (a, v) in self.seed_trace.iter_mut().zip(t.iter()) {
                        *a += *v;
                    }
                    core_n += 1;
                    core_mean += hp_mean[p];
                }
            }
        }
        core_mean /= core_n.max(1) as f32;
        let var_s: f32 = self.seed_trace.iter().map(|v| v * v).sum();
        // Activity loading: regression of each pixel on the core's mean trace.
        let mut core_beta = 0.0f32;
        for l in 0..m {
            self.weight[l] = 0.0;
            if !self.inside[l] {
                continue;
            }
            let t = &self.traces[l * bins..(l + 1) * bins];
            let cov: f32 = t.iter().zip(&self.seed_trace).map(|(a, b)| a * b).sum();
            self.weight[l] = if var_s > 0.0 { cov / var_s } else { 0.0 };
        }
        for ly in 0..y1 - y0 {
            for lx in 0..bw {
                let l = ly * bw + lx;
                let d2 = ((y0 + ly) as isize - sy).pow(2) + ((x0 + lx) as isize - sx).pow(2);
                if self.inside[l] && (d2 as f32) <= core2 {
                    core_beta += self.weight[l];
                }
            }
        }
        core_beta /= core_n.max(1) as f32;
        // Blend anatomy and activity, each relative to the core.
        let anat_ref = if core_mean > 0.0 { core_mean } else { 1.0 };
        let act_ref = if core_beta > 0.0 { core_beta } else { 1.0 };
        let act = if core_beta > 0.0 { activity } else { 0.0 };
        for ly in 0..y1 - y0 {
            for lx in 0..bw {
                let l = ly * bw + lx;
                if !self.inside[l] {
                    continue;
                }
                let p = (y0 + ly) * w + x0 + lx;
                let anatomy = hp_mean[p] / anat_ref;
                let loading = self.weight[l] / act_ref;
                self.weight[l] = (1.0 - act) * anatomy + act * loading;
            }
        }
        // Robust peak within half a diameter; the start is the best core pixel.
        let half2 = 4.0 * core2;
        self.peak.clear();
        let mut start = usize::MAX;
        let mut best = f32::MIN;
        for ly in 0..y1 - y0 {
            for lx in 0..bw {
                let l = ly * bw + lx;
                if !self.inside[l] {
                    continue;
                }
                let d2 =
                    (((y0 + ly) as isize - sy).pow(2) + ((x0 + lx) as isize - sx).pow(2)) as f32;
                if d2 <= half2 {
                    self.peak.push(self.weight[l]);
                }
                if d2 <= core2 && self.weight[l] > best {
                    best = self.weight[l];
                    start = l;
                }
            }
        }
        self.out.clear();
        if start == usize::MAX || self.peak.is_empty() {
            return &self.out;
        }
        let q = ((self.peak.len() - 1) as f32 * 0.9).round() as usize;
        let (_, peak, _) = self.peak.select_nth_unstable_by(q, f32::total_cmp);
        let cut = threshold * peak.max(f32::MIN_POSITIVE);
        // 4-connected flood fill from the start over pixels above the cut.
        self.visited[..m].fill(false);
        self.stack.clear();
        self.stack.push(start);
        self.visited[start] = true;
        while let Some(l) = self.stack.pop() {
            if !(self.inside[l] && self.weight[l] >= cut) {
                continue;
            }
            let (ly, lx) = (l / bw, l % bw);
            self.out
                .push((((y0 + ly) * w + x0 + lx) as u32, self.weight[l]));
            let mut visit = |nl: usize| {
                if !self.visited[nl] {
                    self.visited[nl] = true;
                    self.stack.push(nl);
                }
            };
            if ly > 0 {
                visit(l - bw);
            }
            if ly + 1 < y1 - y0 {
                visit(l + bw);
            }
            if lx > 0 {
                visit(l - 1);
            }
            if lx + 1 < bw {
                visit(l + 1);
            }
        }
        if self.fill {
            self.fill_holes(y0, x0, y1 - y0, bw, w, cut);
        }
        &self.out
    }

    /// Adds to the mask (at weight `cut`) the territory pixels of the `rows` x `bw` window at
    /// (`y0`, `x0`) that the mask encloses: those not 4-connected to the window's border
    /// through pixels outside the mask.
    fn fill_holes(&mut self, y0: usize, x0: usize, rows: usize, bw: usize, w: usize, cut: f32) {
        let m = rows * bw;
        self.in_mask[..m].fill(false);
        for &(p, _) in &self.out {
            let (y, x) = (p as usize / w, p as usize % w);
            self.in_mask[(y - y0) * bw + (x - x0)] = true;
        }
        // Flood the outside from every border pixel not in the mask.
        self.visited[..m].fill(false);
        self.stack.clear();
        for l in 0..m {
            let (ly, lx) = (l / bw, l % bw);
            let border = ly == 0 || lx == 0 || ly + 1 == rows || lx + 1 == bw;
            if border && !self.in_mask[l] {
                self.visited[l] = true;
                self.stack.push(l);
            }
        }
        while let Some(l) = self.stack.pop() {
            let (ly, lx) = (l / bw, l % bw);
            let mut next = [usize::MAX; 4];
            if ly > 0 {
                next[0] = l - bw;
            }
            if ly + 1 < rows {
                next[1] = l + bw;
            }
            if lx > 0 {
                next[2] = l - 1;
            }
            if lx + 1 < bw {
                next[3] = l + 1;
            }
            for nl in next {
                if nl != usize::MAX && !self.visited[nl] && !self.in_mask[nl] {
                    self.visited[nl] = true;
                    self.stack.push(nl);
                }
            }
        }
        for l in 0..m {
            if !self.in_mask[l] && !self.visited[l] && self.inside[l] {
                let (ly, lx) = (l / bw, l % bw);
                self.out
                    .push((((y0 + ly) * w + x0 + lx) as u32, cut.max(f32::MIN_POSITIVE)));
            }
        }
    }
}
