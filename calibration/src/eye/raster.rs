//! Pixel-level operations of the pupil tracker: grey-level histogram quantiles, a 5×5
//! binomial blur into u16, and a windowed 4-connected flood fill. No allocation: callers own
//! the buffers.

/// A rectangle of pixels `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) x0: usize,
    pub(super) x1: usize,
    pub(super) y0: usize,
    pub(super) y1: usize,
}

/// One 4-connected region of pixels at or below a level.
#[derive(Debug, Clone, Copy)]
pub(super) struct Blob {
    pub(super) area: usize,
    pub(super) x_min: usize,
    pub(super) x_max: usize,
    pub(super) y_min: usize,
    pub(super) y_max: usize,
    pub(super) darkest: usize,
    pub(super) darkest_value: u16,
    pub(super) touches_window: bool,
}

/// Grey level (u8 units) × 256 + 128, saturating: the u16 scale of the smoothed image.
pub(super) fn to_u16_level(grey: f64) -> u16 {
    (grey * 256.0 + 128.0).clamp(0.0, 65535.0) as u16
}

/// Smallest level whose cumulative count exceeds `rank` (0-based rank of a sorted sample).
pub(super) fn quantile_level(hist: &[u32; 256], rank: u64) -> usize {
    let mut cum = 0u64;
    for (v, &c) in hist.iter().enumerate() {
        cum += u64::from(c);
        if cum > rank {
            return v;
        }
    }
    255
}

/// 5×5 binomial blur ([1 4 6 4 1] / 16 each way), edges replicated, into grey × 256 (u16).
pub(super) fn blur_binomial5(src: &[u8], tmp: &mut [u16], dst: &mut [u16], w: usize, h: usize) {
    for (s, t) in src.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        let (a, b, c, d, e) = (
            &s[..w - 4],
            &s[1..w - 3],
            &s[2..w - 2],
            &s[3..w - 1],
            &s[4..],
        );
        for (i, o) in t[2..w - 2].iter_mut().enumerate() {
            *o = u16::from(a[i])
                + 4 * (u16::from(b[i]) + u16::from(d[i]))
                + 6 * u16::from(c[i])
                + u16::from(e[i]);
        }
        let at = |x: i64| u16::from(s[x.clamp(0, w as i64 - 1) as usize]);
        for x in [0, 1, w - 2, w - 1] {
            let x = x as i64;
            t[x as usize] = at(x - 2) + 4 * (at(x - 1) + at(x + 1)) + 6 * at(x) + at(x + 2);
        }
    }
    for y in 0..h {
        let r = |dy: i64| {
            let yy = (y as i64 + dy).clamp(0, h as i64 - 1) as usize;
            &tmp[yy * w..(yy + 1) * w]
        };
        let (a, b, c, d, e) = (r(-2), r(-1), r(0), r(1), r(2));
        let out = &mut dst[y * w..(y + 1) * w];
        for (i, o) in out.iter_mut().enumerate() {
            *o = a[i] + 4 * (b[i] + d[i]) + 6 * c[i] + e[i];
        }
    }
}

/// 4-connected flood fill from `seed` over pixels `<= level` inside `win`, marking `mark`.
pub(super) fn flood(
    img: &[u16],
    w: usize,
    mark: &mut [u8],
    stack: &mut Vec<u32>,
    seed: usize,
    level: u16,
    win: Window,
) -> Blob {
    let (sx, sy) = (seed % w, seed / w);
    let mut blob = Blob {
        area: 0,
        x_min: sx,
        x_max: sx,
        y_min: sy,
        y_max: sy,
        darkest: seed,
        darkest_value: img[seed],
        touches_window: false,
    };
    if img[seed] > level {
        return blob;
    }
    stack.clear();
    stack.push(seed as u32);
    mark[seed] = 1;
    while let Some(p) = stack.pop() {
        let p = p as usize;
        let (x, y) = (p % w, p / w);
        blob.area += 1;
        blob.x_min = blob.x_min.min(x);
        blob.x_max = blob.x_max.max(x);
        blob.y_min = blob.y_min.min(y);
        blob.y_max = blob.y_max.max(y);
        if img[p] < blob.darkest_value {
            blob.darkest_value = img[p];
            blob.darkest = p;
        }
        if x == win.x0 || x + 1 == win.x1 || y == win.y0 || y + 1 == win.y1 {
            blob.touches_window = true;
        }
        let mut visit = |q: usize| {
            if mark[q] == 0 && img[q] <= level {
                mark[q] = 1;
                stack.push(q as u32);
            }
        };
        if x > win.x0 {
            visit(p - 1);
        }
        if x + 1 < win.x1 {
            visit(p + 1);
        }
        if y > win.y0 {
            visit(p - w);
        }
        if y + 1 < win.y1 {
            visit(p + w);
        }
    }
    blob
}
