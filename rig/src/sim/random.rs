//! Random streams and the fast samplers the per-frame loops use.
//!
//! Every component draws from its own ChaCha8 stream of the one seed, so changing how often one
//! stream is sampled (the eye-camera rate, say) never changes what another produces. The per-pixel
//! samplers trade exactness in the far tails for speed: a 512x512 frame needs a quarter of a
//! million noise draws within a few milliseconds.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The independent random streams of the simulator.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Stream {
    /// Cell positions, footprints, blood vessels, neuropil maps.
    Anatomy = 1,
    /// Receptive fields, tuning, nonlinearity, couplings, brightness.
    Tuning = 2,
    /// Poisson spikes.
    Spikes = 3,
    /// Running, arousal, gaze, blinks.
    Behaviour = 4,
    /// Brain motion, laser drift, neuropil fluctuation.
    Motion = 5,
    /// Photon shot noise and read noise of the microscope.
    Photons = 6,
    /// Eye and face textures.
    EyeAnatomy = 7,
    /// Eye-camera pixel noise.
    EyeNoise = 8,
    /// The brain's shared latent fluctuation.
    Latent = 9,
    /// The extra tuning of `v1_rich` cells (surround, normalisation, conjunctions).
    RichTuning = 10,
}

/// The ChaCha8 stream `stream` of `seed`.
pub(crate) fn stream(seed: u64, stream: Stream) -> ChaCha8Rng {
    plane_stream(seed, stream, 0)
}

/// Stream ids between one plane's streams and the next: more than any [`Stream`] id.
const PLANE_STREAM_STRIDE: u64 = 16;

/// Imaging plane `plane`'s own copy of `stream` of `seed`, for the per-plane components (cells,
/// spikes, microscope). Plane 0's are exactly [`stream`]'s, so a one-plane mouse is unchanged;
/// other planes' are further ChaCha8 streams of the same seed, independent of every other.
pub(crate) fn plane_stream(seed: u64, stream: Stream, plane: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64 + PLANE_STREAM_STRIDE * plane as u64);
    rng
}

/// A standard normal draw (Box-Muller; used off the per-pixel paths).
pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform draw in [lo, hi).
pub(crate) fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A log-uniform draw in [lo, hi).
pub(crate) fn log_uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
}

/// Approximately standard normal from 64 random bits: the sum of four 16-bit uniforms
/// (Irwin-Hall), exact in mean and variance, tails cut at 3.46 s.d.
#[inline]
pub(crate) fn normal_from_bits(bits: u64) -> f32 {
    let s = (bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48);
    // Mean 4 * 65535 / 2, s.d. sqrt(4 * (65536^2 - 1) / 12).
    (s as f32 - 131_070.0) * (1.0 / 37_837.23)
}

/// Approximately standard normal from 32 random bits (four 8-bit uniforms); for read noise,
/// where its 0.15-s.d. granularity is far below one ADU step.
#[inline]
pub(crate) fn normal_from_bits32(bits: u32) -> f32 {
    let s = (bits & 0xff) + ((bits >> 8) & 0xff) + ((bits >> 16) & 0xff) + (bits >> 24);
    (s as f32 - 510.0) * (1.0 / 147.80)
}

/// Uniform in [0, 1) from 32 random bits (24 significant).
#[inline]
pub(crate) fn unit_from_bits(bits: u32) -> f32 {
    (bits >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Poisson draw by inversion of the CDF with the uniform `u`; exact for the small means it is
/// used for (cost grows with the mean). Capped at 200 so a bad mean cannot loop long.
#[inline]
pub(crate) fn poisson_inversion(mean: f32, u: f32) -> u32 {
    let mut p = (-mean).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while u > cdf && k < 200 {
        k += 1;
        p *= mean / k as f32;
        cdf += p;
        if p <= 0.0 {
            break;
        }
    }
    k
}

/// Poisson sampling for the per-pixel photon counts: inverse-CDF tables on a grid of means
/// `1/32` photon apart (a quantisation far below the noise it models), searched with 32 random
/// bits. Valid for means below `max_mean`.
pub(crate) struct PoissonTable {
    inv_step: f32,
    bins: usize,
    /// `cdf[bin * MAX_K + k]` = P(X <= k) * 2^32 for mean `bin / 32`.
    cdf: Vec<u32>,
}

impl PoissonTable {
    const MAX_K: usize = 48;

    pub(crate) fn new(max_mean: f32) -> PoissonTable {
        let inv_step = 32.0f32;
        let bins = (max_mean * inv_step).ceil() as usize + 2;
        let mut cdf = Vec::with_capacity(bins * Self::MAX_K);
        for b in 0..bins {
            let mean = b as f64 / inv_step as f64;
            let mut p = (-mean).exp();
            let mut acc = 0.0f64;
            for k in 0..Self::MAX_K {
                acc += p;
                p *= mean / (k + 1) as f64;
                cdf.push((acc * 4_294_967_296.0).min(u32::MAX as f64) as u32);
            }
            // The last entry catches everything left, so a search always ends.
            if let Some(last) = cdf.last_mut() {
                *last = u32::MAX;
            }
        }
        PoissonTable {
            inv_step,
            bins,
            cdf,
        }
    }

    /// A Poisson draw with mean `mean` (clamped to the table) from 32 random bits.
    #[inline]
    pub(crate) fn sample(&self, mean: f32, bits: u32) -> u32 {
        let bin = ((mean * self.inv_step + 0.5) as usize).min(self.bins - 1);
        let row = &self.cdf[bin * Self::MAX_K..(bin + 1) * Self::MAX_K];
        // Branch-free (a data-dependent search mispredicts on every pixel): the count of CDF
        // entries below the draw is the sample. The last entry is u32::MAX, never below.
        row.iter().map(|&c| u32::from(bits > c)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn fast_normals_have_unit_variance() {
        let mut rng = stream(7, Stream::Photons);
        let n = 200_000;
        let (mut s1, mut s2, mut t1, mut t2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for _ in 0..n {
            let z = normal_from_bits(rng.next_u64()) as f64;
            s1 += z;
            s2 += z * z;
            let w = normal_from_bits32(rng.next_u32()) as f64;
            t1 += w;
            t2 += w * w;
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 0.01 && (s2 / nf - 1.0).abs() < 0.02);
        assert!((t1 / nf).abs() < 0.01 && (t2 / nf - 1.0).abs() < 0.02);
    }

    #[test]
    fn poisson_inversion_matches_mean_and_variance() {
        let mut rng = stream(3, Stream::Spikes);
        for mean in [0.05f32, 0.8, 4.0, 11.0] {
            let n = 100_000;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for _ in 0..n {
                let k = poisson_inversion(mean, unit_from_bits(rng.next_u32())) as f64;
                s1 += k;
                s2 += k * k;
            }
            let m = s1 / n as f64;
            let v = s2 / n as f64 - m * m;
            let tol = 0.03 * mean as f64 + 0.005;
            assert!((m - mean as f64).abs() < tol, "mean {m} for {mean}");
            assert!(
                (v - mean as f64).abs() < 2.0 * tol,
                "variance {v} for {mean}"
            );
        }
    }

    #[test]
    fn poisson_table_matches_mean_and_variance() {
        let table = PoissonTable::new(12.0);
        let mut rng = stream(4, Stream::Photons);
        for mean in [0.0f32, 0.3, 2.0, 6.5, 11.9] {
            let n = 100_000;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for _ in 0..n {
                let k = table.sample(mean, rng.next_u32()) as f64;
                s1 += k;
                s2 += k * k;
            }
            let m = s1 / n as f64;
            let v = s2 / n as f64 - m * m;
            let tol = 0.03 * mean as f64 + 0.02;
            assert!((m - mean as f64).abs() < tol, "mean {m} for {mean}");
            assert!(
                (v - mean as f64).abs() < 2.0 * tol,
                "variance {v} for {mean}"
            );
        }
    }

    #[test]
    fn streams_are_independent_of_each_other() {
        let a = stream(1, Stream::Spikes).next_u64();
        let b = stream(1, Stream::Photons).next_u64();
        let c = stream(2, Stream::Spikes).next_u64();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, stream(1, Stream::Spikes).next_u64());
    }
}
