//! Summary images of a calibration block, from one streaming pass over its frames.
//!
//! [`BlockAccumulator::push`] takes one registered u16 frame at a time and keeps running sums
//! and a temporally binned copy of the movie (`bin_frames` frames averaged per bin; detection
//! grows masks from it): nothing of shape [frames x pixels] at full rate.
//! [`BlockAccumulator::finish`] returns a [`CalibrationBlock`] with the [`ProjectionImages`]:
//!
//! - **mean**: the mean of the raw frames, ADU;
//! - **max**: the per-pixel maximum of the raw frames, ADU;
//! - **correlation**: each pixel's mean Pearson correlation with its 8 neighbours (fewer at the
//!   border) over the binned movie, from running sums of x, x^2 and the products of each pixel
//!   with its right, lower, lower-right and lower-left neighbours (each pair once), taken in
//!   one pass over the bins.
//!
//! Before correlations are taken, each bin has its local **neuropil background** subtracted:
//! the mean, over a `background_box_px` box, of the pixels that are not foreground in the mean
//! image (foreground: more than 2 robust s.d. above the mean image's local background, grown
//! by 1 px; see `background` for how dense fields are handled). Neuropil follows the population's activity, which under a full-field stimulus is
//! largely synchronous; left in, it makes every pixel correlate with its neighbours, and a plain
//! box high-pass would instead subtract the synchronous cells from the pixels between them,
//! with the same effect. Binning lifts a calcium transient (about a second long) above the shot
//! noise of single frames.
//!
//! The binned movie is kept raw (the fluorescence extractor primes its baseline from it); the
//! background of each bin is kept on a coarse grid and subtracted on the fly.
//!
//! Memory: 4 bytes per pixel per bin for the binned movie (131 MB for 500 frames of 512x512
//! with 4-frame bins) and about 60 bytes per pixel of sums while finishing. Time: O(pixels) per
//! frame and O(pixels) per bin at the end.

use super::background::{above_local_background, box_mean, robust_z};
use super::{CellDetectionParams, CellsError};

/// Detector full scale: samples at this value are saturated.
pub const FULL_SCALE_ADU: u16 = u16::MAX;

/// Streams a block of frames into summary images and a binned movie.
pub struct BlockAccumulator {
    height: usize,
    width: usize,
    bin_frames: usize,
    background_box_px: usize,
    min_frames: usize,
    max_saturated_fraction: f64,
    frames: usize,
    saturated: u64,
    raw_sum: Vec<u64>,
    raw_max: Vec<u16>,
    raw_min: Vec<u16>,
    bin_sum: Vec<u32>,
    in_bin: usize,
    bins: usize,
    /// Binned frames (means), bin-major: bin b is `movie[b * pixels..(b + 1) * pixels]`.
    movie: Vec<f32>,
}

/// Pixels this many robust s.d. above the mean image's local background are foreground (cells),
/// left out of the neuropil background.
const FOREGROUND_SD: f32 = 2.0;

/// Neighbour offsets (dy, dx) whose products are accumulated; the other four are their mirror.
const PAIRS: [(isize, isize); 4] = [(0, 1), (1, 0), (1, 1), (1, -1)];

impl BlockAccumulator {
    /// An empty accumulator for `height` x `width` frames, binning and background as `params`
    /// say (see the module docs); the binned movie is reserved for
    /// `params.calibration_frames` frames.
    pub fn new(
        height: usize,
        width: usize,
        params: &CellDetectionParams,
    ) -> Result<BlockAccumulator, CellsError> {
        params.validate()?;
        let bin_frames = params.bin_frames;
        if height < 3 || width < 3 {
            return Err(CellsError::InvalidParam {
                field: "frame size",
                reason: format!("must be at least 3x3 px, got {height}x{width}"),
            });
        }
        let n = height * width;
        Ok(BlockAccumulator {
            height,
            width,
            bin_frames,
            background_box_px: params.background_box_px(),
            min_frames: params.min_frames,
            max_saturated_fraction: params.max_saturated_fraction,
            frames: 0,
            saturated: 0,
            raw_sum: vec![0; n],
            raw_max: vec![0; n],
            raw_min: vec![u16::MAX; n],
            bin_sum: vec![0; n],
            in_bin: 0,
            bins: 0,
            movie: Vec::with_capacity(params.calibration_frames / bin_frames * n),
        })
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds one frame (`height * width` u16, row-major).
    pub fn push(&mut self, frame: &[u16]) -> Result<(), CellsError> {
        let n = self.height * self.width;
        if frame.len() != n {
            return Err(CellsError::FrameLength {
                frame: self.frames,
                got: frame.len(),
                expected: n,
                height: self.height,
                width: self.width,
            });
        }
        let mut saturated = 0u64;
        for (i, &v) in frame.iter().enumerate() {
            self.raw_sum[i] += u64::from(v);
            self.raw_max[i] = self.raw_max[i].max(v);
            self.raw_min[i] = self.raw_min[i].min(v);
            self.bin_sum[i] += u32::from(v);
            saturated += u64::from(v == FULL_SCALE_ADU);
        }
        self.saturated += saturated;
        self.frames += 1;
        self.in_bin += 1;
        if self.in_bin == self.bin_frames {
            self.close_bin();
        }
        Ok(())
    }

    fn close_bin(&mut self) {
        let k = 1.0 / self.in_bin as f32;
        self.movie
            .extend(self.bin_sum.iter().map(|&s| s as f32 * k));
        self.bin_sum.fill(0);
        self.in_bin = 0;
        self.bins += 1;
    }

    /// Finishes the block: the images and the binned movie. Frames of an incomplete last bin
    /// count in the mean and max but not in the correlation. Errors if fewer than `min_frames`
    /// frames were pushed, if the block has no variation (all zero or constant) or if more
    /// than `max_saturated_fraction` of its samples are at full scale.
    pub fn finish(self) -> Result<CalibrationBlock, CellsError> {
        let (min_frames, max_saturated_fraction) = (self.min_frames, self.max_saturated_fraction);
        let needed = min_frames.max(3 * self.bin_frames);
        if self.frames < needed {
            return Err(CellsError::TooFewFrames {
                got: self.frames,
                needed,
            });
        }
        let n = self.height * self.width;
        let samples = (self.frames * n) as f64;
        let saturated_fraction = self.saturated as f64 / samples;
        if saturated_fraction > max_saturated_fraction {
            return Err(CellsError::Saturated {
                fraction: saturated_fraction,
                limit: max_saturated_fraction,
            });
        }
        if self.raw_max.iter().all(|&v| v == 0) {
            return Err(CellsError::FlatBlock {
                detail: format!("every pixel of all {} frames is 0", self.frames),
            });
        }
        let varying = self
            .raw_max
            .iter()
            .zip(&self.raw_min)
            .filter(|(a, b)| a > b)
            .count();
        if varying == 0 {
            return Err(CellsError::FlatBlock {
                detail: format!(
                    "no pixel changes over the {} frames (a frozen or constant image)",
                    self.frames
                ),
            });
        }
        let (h, w) = (self.height, self.width);
        let inv = 1.0 / self.frames as f64;
        let mean: Vec<f32> = self
            .raw_sum
            .iter()
            .map(|&s| (s as f64 * inv) as f32)
            .collect();
        let movie = self.movie;
        let (sums, neuropil) =
            neuropil_free_sums(&movie, &mean, h, w, self.bins, self.background_box_px);
        let correlation = sums.correlation_image(h, w);
        Ok(CalibrationBlock {
            images: ProjectionImages {
                height: h,
                width: w,
                frames: self.frames,
                mean,
                max: self.raw_max,
                correlation,
            },
            bins: self.bins,
            bin_frames: self.bin_frames,
            movie,
            neuropil,
            pixel_mean: sums.mean(),
            saturated_fraction,
        })
    }
}

/// Running sums over the bins of a movie.
struct MovieSums {
    bins: usize,
    s1: Vec<f64>,
    s2: Vec<f64>,
    /// Sums of x_p x_q for q right of, below, below-right and below-left of p.
    cross: [Vec<f64>; 4],
}

/// The local neuropil background of every bin, sampled on a coarse grid (a quarter of the
/// background box apart) and bilinearly interpolated in between: the box mean is smooth at
/// that scale, and the grid costs a few kB per bin where a full copy would double the movie.
pub(crate) struct NeuropilGrid {
    width: usize,
    gy: Vec<usize>,
    gx: Vec<usize>,
    /// Per row and per column: the grid interval and the fraction through it.
    row: Vec<(usize, f32)>,
    col: Vec<(usize, f32)>,
    /// Bin-major: bin b's grid is `values[b * cells..(b + 1) * cells]`.
    values: Vec<f32>,
}

impl NeuropilGrid {
    fn new(h: usize, w: usize, step: usize) -> NeuropilGrid {
        let gy = grid(h, step);
        let gx = grid(w, step);
        let row = (0..h).map(|y| locate(&gy, y)).collect();
        let col = (0..w).map(|x| locate(&gx, x)).collect();
        NeuropilGrid {
            width: w,
            gy,
            gx,
            row,
            col,
            values: Vec::new(),
        }
    }

    fn cells(&self) -> usize {
        self.gy.len() * self.gx.len()
    }

    /// The background of bin `b` at pixel `p`.
    #[inline]
    pub(crate) fn at(&self, b: usize, p: usize) -> f32 {
        let (iy, fy) = self.row[p / self.width];
        let (ix, fx) = self.col[p % self.width];
        let gw = self.gx.len();
        let g = &self.values[b * self.cells()..(b + 1) * self.cells()];
        let iy1 = (iy + 1).min(self.gy.len() - 1);
        let ix1 = (ix + 1).min(gw - 1);
        (1.0 - fy) * ((1.0 - fx) * g[iy * gw + ix] + fx * g[iy * gw + ix1])
            + fy * ((1.0 - fx) * g[iy1 * gw + ix] + fx * g[iy1 * gw + ix1])
    }
}

/// Grid points 0, step, 2 step, ... and the last index.
fn grid(len: usize, step: usize) -> Vec<usize> {
    let mut g: Vec<usize> = (0..len).step_by(step.max(1)).collect();
    if g.last() != Some(&(len - 1)) {
        g.push(len - 1);
    }
    g
}

/// The grid interval holding `p` and the fraction of the way through it.
fn locate(g: &[usize], p: usize) -> (usize, f32) {
    let i = g.partition_point(|&v| v <= p).saturating_sub(1);
    if i + 1 >= g.len() {
        return (g.len() - 1, 0.0);
    }
    (i, (p - g[i]) as f32 / (g[i + 1] - g[i]) as f32)
}

/// Estimates the local neuropil background of every bin of `movie` (see the module docs) and
/// returns the running sums over the background-subtracted bins, and the background.
fn neuropil_free_sums(
    movie: &[f32],
    mean: &[f32],
    h: usize,
    w: usize,
    bins: usize,
    box_px: usize,
) -> (MovieSums, NeuropilGrid) {
    let n = h * w;
    // Background pixels: not foreground in the mean image, foreground grown by 1 px.
    let z = robust_z(&above_local_background(mean, h, w, box_px));
    let mut keep = vec![1.0f32; n];
    for y in 0..h {
        for x in 0..w {
            if z[y * w + x] > FOREGROUND_SD {
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xx in x.saturating_sub(1)..(x + 2).min(w) {
                        keep[yy * w + xx] = 0.0;
                    }
                }
            }
        }
    }
    let kept = keep.iter().filter(|&&k| k > 0.0).count().max(1) as f32;
    let mut frac = vec![0.0f32; n];
    box_mean(&keep, &mut frac, h, w, box_px);
    let mut grid = NeuropilGrid::new(h, w, box_px / 4);
    grid.values.reserve(bins * grid.cells());
    let mut masked = vec![0.0f32; n];
    let mut local = vec![0.0f32; n];
    let mut clean = vec![0.0f32; n];
    let mut sums = MovieSums {
        bins,
        s1: vec![0.0; n],
        s2: vec![0.0; n],
        cross: std::array::from_fn(|_| vec![0.0; n]),
    };
    for (b, bin) in movie.chunks_exact(n).enumerate() {
        for ((m, &v), &k) in masked.iter_mut().zip(bin.iter()).zip(&keep) {
            *m = v * k;
        }
        // Where a box holds almost no background pixels, the bin's mean background stands in.
        let global = masked.iter().sum::<f32>() / kept;
        box_mean(&masked, &mut local, h, w, box_px);
        for &y in &grid.gy {
            for &x in &grid.gx {
                let p = y * w + x;
                let f = frac[p];
                grid.values
                    .push(if f > 0.02 { local[p] / f } else { global });
            }
        }
        for (p, (c, &v)) in clean.iter_mut().zip(bin.iter()).enumerate() {
            *c = v - grid.at(b, p);
        }
        sums.add(&clean, h, w);
    }
    (sums, grid)
}

impl MovieSums {
    fn add(&mut self, x: &[f32], h: usize, w: usize) {
        for (i, &v) in x.iter().enumerate() {
            let v = f64::from(v);
            self.s1[i] += v;
            self.s2[i] += v * v;
        }
        for (acc, &(dy, dx)) in self.cross.iter_mut().zip(PAIRS.iter()) {
            for y in 0..h {
                let ny = y as isize + dy;
                if ny >= h as isize {
                    continue;
                }
                for xx in 0..w {
                    let nx = xx as isize + dx;
                    if nx < 0 || nx >= w as isize {
                        continue;
                    }
                    let p = y * w + xx;
                    let q = ny as usize * w + nx as usize;
                    acc[p] += f64::from(x[p]) * f64::from(x[q]);
                }
            }
        }
    }

    fn mean(&self) -> Vec<f32> {
        let bins = self.bins.max(1) as f64;
        self.s1.iter().map(|&s| (s / bins) as f32).collect()
    }

    fn correlation_image(&self, h: usize, w: usize) -> Vec<f32> {
        let bins = self.bins.max(1) as f64;
        let n = h * w;
        let mean: Vec<f64> = self.s1.iter().map(|s| s / bins).collect();
        let sd: Vec<f64> = self
            .s2
            .iter()
            .zip(&mean)
            .map(|(s2, m)| (s2 / bins - m * m).max(0.0).sqrt())
            .collect();
        let mut total = vec![0.0f64; n];
        let mut count = vec![0u8; n];
        for (acc, &(dy, dx)) in self.cross.iter().zip(PAIRS.iter()) {
            for y in 0..h {
                let ny = y as isize + dy;
                if ny >= h as isize {
                    continue;
                }
                for x in 0..w {
                    let nx = x as isize + dx;
                    if nx < 0 || nx >= w as isize {
                        continue;
                    }
                    let p = y * w + x;
                    let q = ny as usize * w + nx as usize;
                    let denom = sd[p] * sd[q];
                    let r = if denom > 0.0 {
                        ((acc[p] / bins - mean[p] * mean[q]) / denom).clamp(-1.0, 1.0)
                    } else {
                        0.0
                    };
                    total[p] += r;
                    total[q] += r;
                    count[p] += 1;
                    count[q] += 1;
                }
            }
        }
        total
            .iter()
            .zip(&count)
            .map(|(&t, &c)| (t / f64::from(c.max(1))) as f32)
            .collect()
    }
}

/// The images of a calibration block (all `height * width`, row-major).
#[derive(Clone, Debug)]
pub struct ProjectionImages {
    /// Frame height, px.
    pub height: usize,
    /// Frame width, px.
    pub width: usize,
    /// Frames in the block.
    pub frames: usize,
    /// Mean of the raw frames, ADU.
    pub mean: Vec<f32>,
    /// Per-pixel maximum of the raw frames, ADU.
    pub max: Vec<u16>,
    /// Mean correlation of each pixel with its 8 neighbours over the binned, background-subtracted movie.
    pub correlation: Vec<f32>,
}

/// A finished calibration block: its images and the binned movie detection grows masks from.
pub struct CalibrationBlock {
    /// The summary images.
    pub images: ProjectionImages,
    bins: usize,
    bin_frames: usize,
    movie: Vec<f32>,
    neuropil: NeuropilGrid,
    pixel_mean: Vec<f32>,
    saturated_fraction: f64,
}

impl CalibrationBlock {
    /// Streams `frames` (`n * height * width` u16, frame-major) through a [`BlockAccumulator`].
    pub fn from_frames(
        frames: &[u16],
        height: usize,
        width: usize,
        params: &CellDetectionParams,
    ) -> Result<CalibrationBlock, CellsError> {
        let px = height * width;
        if px == 0 || !frames.len().is_multiple_of(px) {
            return Err(CellsError::FrameLength {
                frame: frames.len() / px.max(1),
                got: frames.len() % px.max(1),
                expected: px,
                height,
                width,
            });
        }
        let mut acc = BlockAccumulator::new(height, width, params)?;
        for f in frames.chunks_exact(px) {
            acc.push(f)?;
        }
        acc.finish()
    }

    /// Number of time bins in the binned movie.
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Frames summed per bin.
    pub fn bin_frames(&self) -> usize {
        self.bin_frames
    }

    /// Fraction of samples at full scale.
    pub fn saturated_fraction(&self) -> f64 {
        self.saturated_fraction
    }

    /// Background-subtracted value of pixel `p` in bin `b`.
    #[inline]
    pub(crate) fn binned(&self, b: usize, p: usize) -> f32 {
        self.movie[b * self.images.height * self.images.width + p] - self.neuropil.at(b, p)
    }

    /// Bin `b` of the raw binned movie (mean of its frames, ADU), row-major.
    pub fn raw_bin(&self, b: usize) -> &[f32] {
        let n = self.images.height * self.images.width;
        &self.movie[b * n..(b + 1) * n]
    }

    /// Temporal mean of pixel `p` over the binned movie.
    #[inline]
    pub(crate) fn pixel_mean(&self, p: usize) -> f32 {
        self.pixel_mean[p]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlated_patch_lights_up_the_correlation_image() {
        // A bright 4x4 patch (a tiny cell) shares one random signal; everything else is
        // independent noise.
        let (h, w, n) = (24, 24, 200);
        let mut state = 12345u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut frames = Vec::with_capacity(n * h * w);
        for _ in 0..n {
            let s = rnd() * 400.0;
            for y in 0..h {
                for x in 0..w {
                    let inside = (10..14).contains(&y) && (10..14).contains(&x);
                    let v = 1000.0 + rnd() * 100.0 + if inside { 300.0 + s } else { 0.0 };
                    frames.push(v as u16);
                }
            }
        }
        let p = CellDetectionParams {
            min_frames: 50,
            bin_frames: 1,
            cell_diameter_px: 5.0,
            background_diameters: 3.0,
            ..CellDetectionParams::default()
        };
        let block = CalibrationBlock::from_frames(&frames, h, w, &p).unwrap();
        let c = &block.images.correlation;
        assert!(c[11 * w + 11] > 0.5, "inside {}", c[11 * w + 11]);
        assert!(c[3 * w + 3].abs() < 0.2, "outside {}", c[3 * w + 3]);
        assert_eq!(block.images.frames, n);
        assert_eq!(block.bins(), n);
        let mean = block.images.mean[3 * w + 3];
        assert!((block.images.mean[11 * w + 11] - 1300.0).abs() < 20.0);
        assert!((mean - 1000.0).abs() < 10.0, "{mean}");
    }
}
