//! A parametric stimulus library for the in-silico screen: candidate `i` of a seeded library
//! is a pure function of `(seed, i)`, so a screen can stream it, and a log need only hold
//! the seed and an index (or the [`Candidate`], which serialises) to reproduce an image.
//!
//! Families, in turn by index (`i % 6`), so every family has a sixth of any prefix:
//! full-field gratings, Gabor patches, plaids (two superimposed gratings: cross-orientation
//! suppression needs both), corners (two oriented arms meeting at a vertex), curves (arcs)
//! and 1/f noise. Geometry is in fractions of the image width, so the library is the same at
//! any resolution; spatial frequency in cycles per image width.
//!
//! Ranges: mouse V1 prefers about 0.02–0.16 cycles/degree, peak near 0.04 (Niell & Stryker
//! 2008, J Neurosci 28:7520). On a monitor spanning about 120° that is 2.4–19 cycles per width;
//! capped at 12 so a 64-pixel-wide twin stimulus keeps ≥ 5 pixels per cycle. Natural images
//! have an amplitude spectrum near 1/f^α with α ≈ 1–1.2 (Field 1987; van der Schaaf & van
//! Hateren 1996): the noise family draws α in [0.8, 1.6].
//!
//! Raw renders are zero-mean-ish patterns of arbitrary contrast; [`Library::image`] matches
//! them to a [`StimulusBudget`].

use std::f64::consts::PI;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::budget::{BudgetCheck, BudgetError, StimulusBudget};
use super::mei::normals;

/// The family names, in the order of `i % 6`.
pub const FAMILIES: [&str; 6] = ["grating", "gabor", "plaid", "corner", "curve", "noise"];

/// Spatial frequency range, cycles per image width (see the module doc).
const CYCLES: (f64, f64) = (1.5, 12.0);

/// One parametric stimulus. Positions `x`, `y` are fractions of width and height; sizes are
/// fractions of the width; angles in degrees; `cycles` per image width.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Candidate {
    Grating {
        orientation: f64,
        cycles: f64,
        phase: f64,
    },
    Gabor {
        x: f64,
        y: f64,
        sigma: f64,
        orientation: f64,
        cycles: f64,
        phase: f64,
    },
    Plaid {
        orientation: f64,
        /// Angle between the two components.
        separation: f64,
        cycles: f64,
        phase_a: f64,
        phase_b: f64,
    },
    Corner {
        x: f64,
        y: f64,
        /// Direction of the first arm.
        orientation: f64,
        /// Angle between the arms.
        opening: f64,
        length: f64,
        /// Line width (Gaussian profile s.d.).
        width: f64,
        /// +1 bright, −1 dark.
        polarity: f64,
    },
    Curve {
        x: f64,
        y: f64,
        radius: f64,
        /// Direction from the circle's centre to the arc's middle.
        orientation: f64,
        /// Arc length in degrees.
        arc: f64,
        width: f64,
        polarity: f64,
    },
    Noise {
        seed: u64,
        /// Amplitude spectrum exponent α (1/f^α).
        alpha: f64,
    },
}

impl Candidate {
    /// The family's name (one of [`FAMILIES`]).
    pub fn family(&self) -> &'static str {
        match self {
            Self::Grating { .. } => FAMILIES[0],
            Self::Gabor { .. } => FAMILIES[1],
            Self::Plaid { .. } => FAMILIES[2],
            Self::Corner { .. } => FAMILIES[3],
            Self::Curve { .. } => FAMILIES[4],
            Self::Noise { .. } => FAMILIES[5],
        }
    }

    /// The raw pattern `[h, w]` (arbitrary contrast around 0).
    pub fn render(&self, h: usize, w: usize) -> Vec<f32> {
        if let Self::Noise { seed, alpha } = *self {
            return pink_noise(seed, alpha, h, w);
        }
        let mut out = Vec::with_capacity(h * w);
        for row in 0..h {
            for col in 0..w {
                // Pixel centre in width units (isotropic): u in [0, 1], v in [0, h / w].
                let u = (col as f64 + 0.5) / w as f64;
                let v = (row as f64 + 0.5) / w as f64;
                out.push(self.at(u, v, h as f64 / w as f64) as f32);
            }
        }
        out
    }

    fn at(&self, u: f64, v: f64, aspect: f64) -> f64 {
        let wave = |ori: f64, cycles: f64, phase: f64| {
            let t = ori.to_radians();
            (2.0 * PI * cycles * (u * t.cos() + v * t.sin()) + phase.to_radians()).sin()
        };
        match *self {
            Self::Grating {
                orientation,
                cycles,
                phase,
            } => wave(orientation, cycles, phase),
            Self::Gabor {
                x,
                y,
                sigma,
                orientation,
                cycles,
                phase,
            } => {
                let r2 = (u - x).powi(2) + (v - y * aspect).powi(2);
                (-r2 / (2.0 * sigma * sigma)).exp() * wave(orientation, cycles, phase)
            }
            Self::Plaid {
                orientation,
                separation,
                cycles,
                phase_a,
                phase_b,
            } => {
                wave(orientation, cycles, phase_a) + wave(orientation + separation, cycles, phase_b)
            }
            Self::Corner {
                x,
                y,
                orientation,
                opening,
                length,
                width,
                polarity,
            } => {
                let p = (u - x, v - y * aspect);
                let d = [orientation, orientation + opening]
                    .iter()
                    .map(|a| segment_distance(p, a.to_radians(), length))
                    .fold(f64::INFINITY, f64::min);
                polarity * (-d * d / (2.0 * width * width)).exp()
            }
            Self::Curve {
                x,
                y,
                radius,
                orientation,
                arc,
                width,
                polarity,
            } => {
                let (dx, dy) = (u - x, v - y * aspect);
                let off = (dx * dx + dy * dy).sqrt() - radius;
                // Angle from the arc's middle, wrapped to (−180°, 180°].
                let ang =
                    (dy.atan2(dx).to_degrees() - orientation + 540.0).rem_euclid(360.0) - 180.0;
                let outside = (ang.abs() - arc / 2.0).max(0.0).to_radians() * radius;
                polarity * (-(off * off + outside * outside) / (2.0 * width * width)).exp()
            }
            Self::Noise { .. } => unreachable!("noise is rendered whole"),
        }
    }
}

/// Distance from `p` to the segment from the origin along angle `a` of length `len`.
fn segment_distance(p: (f64, f64), a: f64, len: f64) -> f64 {
    let (c, s) = (a.cos(), a.sin());
    let t = (p.0 * c + p.1 * s).clamp(0.0, len);
    ((p.0 - t * c).powi(2) + (p.1 - t * s).powi(2)).sqrt()
}

/// 1/f^α noise without an FFT: octaves of white noise on grids of 2, 4, 8 … cells across,
/// bilinearly upsampled, octave `k` weighted `2^(−k (α − 1))` (equal power per octave at
/// α = 1, the natural-image slope).
fn pink_noise(seed: u64, alpha: f64, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f64; h * w];
    let mut k = 0;
    loop {
        let cells = 2usize << k;
        if cells > w {
            break;
        }
        let (gw, gh) = (cells + 1, (cells * h).div_ceil(w) + 1);
        let grid = normals(seed.wrapping_add(k as u64 * 0x1000_0001), gw * gh);
        let weight = 2f64.powf(-(k as f64) * (alpha - 1.0));
        for row in 0..h {
            let gy = (row as f64 + 0.5) / w as f64 * cells as f64;
            let (y0, fy) = (gy.floor() as usize, gy.fract());
            for col in 0..w {
                let gx = (col as f64 + 0.5) / w as f64 * cells as f64;
                let (x0, fx) = (gx.floor() as usize, gx.fract());
                let g = |yy: usize, xx: usize| grid[yy.min(gh - 1) * gw + xx.min(gw - 1)];
                let top = g(y0, x0) * (1.0 - fx) + g(y0, x0 + 1) * fx;
                let bottom = g(y0 + 1, x0) * (1.0 - fx) + g(y0 + 1, x0 + 1) * fx;
                out[row * w + col] += weight * (top * (1.0 - fy) + bottom * fy);
            }
        }
        k += 1;
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// A seeded library of `size` candidates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Library {
    pub seed: u64,
    pub size: usize,
}

impl Library {
    /// Candidate `index` (any index: the library is a function, `size` only bounds a screen).
    pub fn candidate(&self, index: usize) -> Candidate {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        let cycles = |rng: &mut ChaCha8Rng| {
            (CYCLES.0.ln() + rng.random::<f64>() * (CYCLES.1 / CYCLES.0).ln()).exp()
        };
        let angle = |rng: &mut ChaCha8Rng| rng.random::<f64>() * 180.0;
        let phase = |rng: &mut ChaCha8Rng| rng.random::<f64>() * 360.0;
        let pos = |rng: &mut ChaCha8Rng| 0.15 + 0.7 * rng.random::<f64>();
        let polarity = |rng: &mut ChaCha8Rng| if rng.random::<bool>() { 1.0 } else { -1.0 };
        match index % FAMILIES.len() {
            0 => Candidate::Grating {
                orientation: angle(&mut rng),
                cycles: cycles(&mut rng),
                phase: phase(&mut rng),
            },
            1 => Candidate::Gabor {
                x: pos(&mut rng),
                y: pos(&mut rng),
                sigma: rng.random_range(0.06..0.25),
                orientation: angle(&mut rng),
                cycles: cycles(&mut rng),
                phase: phase(&mut rng),
            },
            2 => Candidate::Plaid {
                orientation: angle(&mut rng),
                separation: rng.random_range(30.0..=90.0),
                cycles: cycles(&mut rng),
                phase_a: phase(&mut rng),
                phase_b: phase(&mut rng),
            },
            3 => Candidate::Corner {
                x: pos(&mut rng),
                y: pos(&mut rng),
                orientation: 2.0 * angle(&mut rng),
                opening: rng.random_range(45.0..=135.0),
                length: rng.random_range(0.1..0.35),
                width: rng.random_range(0.015..0.05),
                polarity: polarity(&mut rng),
            },
            4 => Candidate::Curve {
                x: pos(&mut rng),
                y: pos(&mut rng),
                radius: rng.random_range(0.05..0.25),
                orientation: 2.0 * angle(&mut rng),
                arc: rng.random_range(60.0..=240.0),
                width: rng.random_range(0.015..0.05),
                polarity: polarity(&mut rng),
            },
            _ => Candidate::Noise {
                seed: rng.random(),
                alpha: rng.random_range(0.8..=1.6),
            },
        }
    }

    /// Candidate `index` rendered at `h x w` and matched to `budget` (u8 `[h, w]`).
    pub fn image(
        &self,
        index: usize,
        h: usize,
        w: usize,
        budget: &StimulusBudget,
    ) -> Result<(Vec<u8>, BudgetCheck), BudgetError> {
        budget.match_to_u8(&self.candidate(index).render(h, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_a_function_of_seed_and_index() {
        let a = Library { seed: 7, size: 600 };
        let b = a;
        for i in [0, 1, 5, 17, 599] {
            assert_eq!(a.candidate(i), b.candidate(i));
            assert_eq!(a.candidate(i).render(9, 16), b.candidate(i).render(9, 16));
        }
        // Another seed, other candidates (all 600 distinct within the library too).
        let c = Library { seed: 8, ..a };
        assert_ne!(a.candidate(3), c.candidate(3));
        let mut seen: Vec<String> = (0..a.size)
            .map(|i| serde_json::to_string(&a.candidate(i)).unwrap())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), a.size);
        // The log's JSON reproduces the candidate.
        let back: Candidate =
            serde_json::from_str(&serde_json::to_string(&a.candidate(4)).unwrap()).unwrap();
        assert_eq!(back, a.candidate(4));
    }

    #[test]
    fn every_family_appears_and_most_meet_both_budgets() {
        let lib = Library { seed: 1, size: 600 };
        let (h, w) = (36, 64);
        for budget in [
            StimulusBudget::low_contrast(),
            StimulusBudget::full_contrast(),
        ] {
            let mut met = [0usize; 6];
            for i in 0..lib.size {
                let c = lib.candidate(i);
                assert_eq!(c.family(), FAMILIES[i % 6]);
                if let Ok((img, check)) = lib.image(i, h, w, &budget) {
                    assert_eq!(img.len(), h * w);
                    assert!(budget.check_u8(&img).meets_verify(), "{c:?}: {check:?}");
                    met[i % 6] += 1;
                }
            }
            // Full-field families always can; a small patch cannot carry a high whole-image
            // RMS contrast, but at least half of each family must.
            for (f, &m) in met.iter().enumerate() {
                assert!(m >= 50, "{budget:?}: {} met {m} of 100", FAMILIES[f]);
            }
            for f in [0, 2, 5] {
                assert_eq!(met[f], 100, "{budget:?}: {}", FAMILIES[f]);
            }
        }
    }

    #[test]
    fn renders_follow_their_closed_forms() {
        let (h, w) = (20, 40);
        // A vertical grating (orientation 0°) of 4 cycles: constant down a column, period
        // 10 pixels along a row.
        let g = Candidate::Grating {
            orientation: 0.0,
            cycles: 4.0,
            phase: 0.0,
        }
        .render(h, w);
        for c in 0..w {
            assert!((g[c] - g[(h - 1) * w + c]).abs() < 1e-6);
            if c + 10 < w {
                assert!((g[c] - g[c + 10]).abs() < 1e-5);
            }
        }
        // A Gabor peaks near its centre and vanishes far from it.
        let gab = Candidate::Gabor {
            x: 0.5,
            y: 0.5,
            sigma: 0.05,
            orientation: 0.0,
            cycles: 1.0,
            phase: 90.0,
        }
        .render(h, w);
        let peak = gab.iter().cloned().fold(0f32, |a, v| a.max(v.abs()));
        assert!(gab[h / 2 * w + w / 2].abs() > 0.9 * peak);
        assert!(gab[0].abs() < 1e-3 * peak);
        // A corner's arms: bright on the arm, dark off it.
        let corner = Candidate::Corner {
            x: 0.25,
            y: 0.5,
            orientation: 0.0,
            opening: 90.0,
            length: 0.4,
            width: 0.02,
            polarity: 1.0,
        }
        .render(h, w);
        let vertex_row = h / 2;
        let on_arm = corner[vertex_row * w + 20];
        let off_arm = corner[2 * w + 30];
        assert!(on_arm > 0.5 && off_arm < 0.01, "{on_arm} {off_arm}");
        // Noise: steeper α, more of the variance in coarse structure (neighbour correlation).
        let corr = |alpha: f64| {
            let n = Candidate::Noise { seed: 3, alpha }.render(h, w);
            let m = n.iter().map(|&v| v as f64).sum::<f64>() / n.len() as f64;
            let (mut num, mut den) = (0.0, 0.0);
            for r in 0..h {
                for c in 0..w - 1 {
                    let (a, b) = (n[r * w + c] as f64 - m, n[r * w + c + 1] as f64 - m);
                    num += a * b;
                    den += a * a;
                }
            }
            num / den
        };
        assert!(corr(1.6) > corr(0.8), "{} {}", corr(1.6), corr(0.8));
    }
}
