//! Weighted pixel masks, stored as one compressed sparse row matrix (cells x pixels).

use crate::vocab::protocol::Dtype;

#[derive(Debug, Clone)]
pub struct Footprints {
    /// `starts[c]..starts[c + 1]` indexes cell c's pixels and weights.
    starts: Vec<usize>,
    pixels: Vec<u32>,
    weights: Vec<f32>,
}

impl Footprints {
    /// The simulator's true footprints (PLACEHOLDER: only the simulator knows these).
    pub fn from_truth(masks: &[super::TrueMask]) -> Footprints {
        Footprints::from_masks(masks.iter().map(|m| m.iter().copied()))
    }

    /// Square `block` x `block` tiles over a `width` x `height` frame (PLACEHOLDER cells).
    pub fn grid(width: u32, height: u32, block: u32) -> Footprints {
        let mut masks = Vec::new();
        for by in 0..height / block {
            for bx in 0..width / block {
                let mut m = Vec::with_capacity((block * block) as usize);
                for y in by * block..(by + 1) * block {
                    for x in bx * block..(bx + 1) * block {
                        m.push((y * width + x, 1.0f32));
                    }
                }
                masks.push(m);
            }
        }
        Footprints::from_masks(masks.into_iter().map(|m| m.into_iter()))
    }

    /// From any masks of (pixel index, weight); weights are normalised to sum to 1 per cell.
    pub fn from_masks<I: Iterator<Item = (u32, f32)>>(
        masks: impl Iterator<Item = I>,
    ) -> Footprints {
        let mut f = Footprints {
            starts: vec![0],
            pixels: Vec::new(),
            weights: Vec::new(),
        };
        for mask in masks {
            let start = f.pixels.len();
            for (p, w) in mask {
                f.pixels.push(p);
                f.weights.push(w);
            }
            let total: f32 = f.weights[start..].iter().sum();
            if total > 0.0 {
                f.weights[start..].iter_mut().for_each(|w| *w /= total);
            }
            f.starts.push(f.pixels.len());
        }
        f
    }

    pub fn cells(&self) -> usize {
        self.starts.len() - 1
    }

    /// Cell `c`'s pixel indices (`y * width + x`) and weights (summing to 1).
    pub fn cell(&self, c: usize) -> (&[u32], &[f32]) {
        let range = self.starts[c]..self.starts[c + 1];
        (&self.pixels[range.clone()], &self.weights[range])
    }

    /// The largest pixel index any mask touches (to check against the frame size).
    pub fn max_pixel(&self) -> Option<u32> {
        self.pixels.iter().copied().max()
    }

    /// Weighted mean per cell into `out` (`cells()` long). Pixels outside `frame` count as 0,
    /// so a short frame cannot make this panic.
    pub fn extract(&self, frame: &[u16], dtype: Dtype, out: &mut [f32]) {
        let signed = dtype == Dtype::I16;
        for (c, o) in out.iter_mut().enumerate().take(self.cells()) {
            let (a, b) = (self.starts[c], self.starts[c + 1]);
            let mut acc = 0.0f32;
            for (&p, &w) in self.pixels[a..b].iter().zip(&self.weights[a..b]) {
                let raw = frame.get(p as usize).copied().unwrap_or(0);
                let v = if signed {
                    raw as i16 as f32
                } else {
                    raw as f32
                };
                acc += w * v;
            }
            *o = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_means_equal_block_means() {
        let (w, h, b) = (8u32, 4u32, 2u32);
        let frame: Vec<u16> = (0..w * h).map(|i| i as u16).collect();
        let f = Footprints::grid(w, h, b);
        assert_eq!(f.cells(), 8);
        let mut out = vec![0f32; 8];
        f.extract(&frame, Dtype::U16, &mut out);
        // Block (0,0) covers pixels 0, 1, 8, 9.
        assert_eq!(out[0], (1 + 8 + 9) as f32 / 4.0);
        // Block (1,3) covers 22, 23, 30, 31.
        assert_eq!(out[7], (22 + 23 + 30 + 31) as f32 / 4.0);
    }

    #[test]
    fn weights_are_normalised_and_signed_frames_read_as_i16() {
        let f = Footprints::from_masks([vec![(0u32, 2.0f32), (1, 6.0)].into_iter()].into_iter());
        let frame = [(-4i16) as u16, 8u16];
        let mut out = [0f32];
        f.extract(&frame, Dtype::I16, &mut out);
        assert_eq!(out[0], 0.25 * -4.0 + 0.75 * 8.0);
        f.extract(&frame[..1], Dtype::I16, &mut out);
        assert_eq!(out[0], -1.0, "a missing pixel counts as zero, no panic");
    }
}
