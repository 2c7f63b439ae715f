//! Seeds and territories: where cells are, before their masks are drawn.

/// Seeds closer than `diameter` with no dip between them (the blob image never falls below
/// `dip` x the weaker seed's value along the segment joining them) mark one cell: the weaker is
/// dropped. `seeds` come strongest first and keep their order.
pub(crate) fn drop_same_cell_seeds(
    seeds: &[usize],
    blob: &[f32],
    w: usize,
    diameter: f32,
    dip: f32,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::with_capacity(seeds.len());
    'seed: for &s in seeds {
        let (sy, sx) = ((s / w) as f32, (s % w) as f32);
        for &k in &kept {
            let (ky, kx) = ((k / w) as f32, (k % w) as f32);
            let dist = ((sy - ky).powi(2) + (sx - kx).powi(2)).sqrt();
            if dist >= diameter {
                continue;
            }
            let floor = dip * blob[s].min(blob[k]);
            let steps = (2.0 * dist).ceil().max(1.0) as usize;
            let no_valley = (0..=steps).all(|i| {
                let t = i as f32 / steps as f32;
                let (y, x) = (sy + t * (ky - sy), sx + t * (kx - sx));
                blob[y.round() as usize * w + x.round() as usize] >= floor
            });
            if no_valley {
                continue 'seed;
            }
        }
        kept.push(s);
    }
    kept
}

/// Indices of pixels `p` that are the strict maximum (ties to the lower index) of their
/// (2 r + 1)^2 neighbourhood and pass `keep(p)`.
pub(crate) fn local_maxima(
    img: &[f32],
    h: usize,
    w: usize,
    r: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut out = Vec::new();
    let r = r as isize;
    for y in 0..h {
        'px: for x in 0..w {
            let p = y * w + x;
            let v = img[p];
            if !v.is_finite() || !keep(p) {
                continue;
            }
            for yy in (y as isize - r).max(0)..(y as isize + r + 1).min(h as isize) {
                for xx in (x as isize - r).max(0)..(x as isize + r + 1).min(w as isize) {
                    let q = yy as usize * w + xx as usize;
                    let u = img[q];
                    if u > v || (u == v && q < p) {
                        continue 'px;
                    }
                }
            }
            out.push(p);
        }
    }
    out
}

/// Every pixel within `reach` px of a seed and not yet `claimed` goes to the nearest seed
/// (`owner[p]` = the seed's index, `u32::MAX` for none): a Voronoi partition, so touching somata
/// split along their border instead of the stronger one swallowing the weaker.
pub(crate) fn territories(
    seeds: &[usize],
    claimed: &[bool],
    h: usize,
    w: usize,
    reach: isize,
    owner: &mut [u32],
    owner_d2: &mut [f32],
) {
    owner.fill(u32::MAX);
    owner_d2.fill(f32::INFINITY);
    let reach2 = (reach * reach) as f32;
    for (k, &s) in seeds.iter().enumerate() {
        let (sy, sx) = ((s / w) as isize, (s % w) as isize);
        for y in (sy - reach).max(0)..(sy + reach + 1).min(h as isize) {
            for x in (sx - reach).max(0)..(sx + reach + 1).min(w as isize) {
                let d2 = ((y - sy) * (y - sy) + (x - sx) * (x - sx)) as f32;
                let p = y as usize * w + x as usize;
                if d2 <= reach2 && d2 < owner_d2[p] && !claimed[p] {
                    owner_d2[p] = d2;
                    owner[p] = k as u32;
                }
            }
        }
    }
}

/// Weighted centroid (y, x) of a mask, px.
pub(crate) fn centroid(mask: &[(u32, f32)], w: usize) -> (f32, f32) {
    let (mut cy, mut cx, mut total) = (0.0f32, 0.0f32, 0.0f32);
    for &(p, wt) in mask {
        cy += wt * (p as usize / w) as f32;
        cx += wt * (p as usize % w) as f32;
        total += wt;
    }
    let total = total.max(f32::MIN_POSITIVE);
    (cy / total, cx / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima_are_strict_and_spaced() {
        let (h, w) = (9, 9);
        let mut img = vec![0.0f32; h * w];
        img[2 * w + 2] = 5.0;
        img[2 * w + 4] = 4.0; // within r = 2 of the first: not a maximum
        img[7 * w + 7] = 3.0;
        img[7 * w + 6] = 3.0; // a tie: the lower index wins
        let m = local_maxima(&img, h, w, 2, |_| true);
        assert_eq!(m, vec![2 * w + 2, 7 * w + 6]);
        assert!(local_maxima(&img, h, w, 2, |p| img[p] > 4.0) == vec![2 * w + 2]);
    }

    #[test]
    fn seeds_without_a_valley_between_them_are_one_cell() {
        // A plateau with two bumps (one cell), and a third bump across a valley.
        let w = 30;
        let mut blob = vec![0.0f32; w];
        for (x, v) in blob.iter_mut().enumerate() {
            *v = if x < 12 {
                1.0
            } else if x < 16 {
                0.1
            } else {
                1.0
            };
        }
        blob[3] = 1.1;
        blob[9] = 1.05;
        blob[20] = 1.2;
        let kept = drop_same_cell_seeds(&[20, 3, 9], &blob, w, 20.0, 0.85);
        assert_eq!(kept, vec![20, 3]);
    }

    #[test]
    fn territories_go_to_the_nearest_seed() {
        let (h, w) = (5, 12);
        let (mut owner, mut d2) = (vec![0u32; h * w], vec![0.0f32; h * w]);
        let mut claimed = vec![false; h * w];
        claimed[2 * w + 6] = true;
        territories(
            &[2 * w + 2, 2 * w + 9],
            &claimed,
            h,
            w,
            4,
            &mut owner,
            &mut d2,
        );
        assert_eq!(owner[2 * w + 4], 0);
        assert_eq!(owner[2 * w + 7], 1);
        assert_eq!(owner[2 * w + 6], u32::MAX, "claimed pixels stay out");
        assert_eq!(owner[2 * w], 0);
    }
}
