//! Calcium indicator kinetics: spikes in, noiseless calcium out.
//!
//! Each spike adds a difference of exponentials (rise `rise_s`, decay `decay_s`) normalised to a
//! peak of 1 on the substep grid, so a cell's fluorescence is F = F0 (1 + dff_per_spike c).
//! In discrete time this is the AR(2) process
//! `c[n] = g1 c[n-1] + g2 c[n-2] + k (a_d - a_r) s[n-1]`, with `a = exp(-dt / tau)`,
//! `g1 = a_d + a_r`, `g2 = -a_d a_r`: the model most deconvolution methods assume.

/// Kinetics shared by all cells (the indicator is the same everywhere).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Kinetics {
    /// Per-substep decay factor of the slow (decay) component.
    pub a_decay: f32,
    /// Per-substep decay factor of the fast (rise) component.
    pub a_rise: f32,
    /// Scale that makes a single spike peak at 1.
    pub peak_norm: f32,
}

impl Kinetics {
    pub(crate) fn new(decay_s: f64, rise_s: f64, dt_s: f64) -> Kinetics {
        let a_decay = (-dt_s / decay_s).exp();
        let a_rise = (-dt_s / rise_s).exp();
        // Peak of a_d^n - a_r^n over whole substeps n >= 1.
        let peak = (1..100_000)
            .map(|n| a_decay.powi(n) - a_rise.powi(n))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        Kinetics {
            a_decay: a_decay as f32,
            a_rise: a_rise as f32,
            peak_norm: (1.0 / peak) as f32,
        }
    }

    /// AR(2) coefficients (g1, g2) and the spike input gain of the previous step.
    #[cfg(test)]
    pub(crate) fn ar2(&self) -> (f32, f32, f32) {
        (
            self.a_decay + self.a_rise,
            -self.a_decay * self.a_rise,
            self.peak_norm * (self.a_decay - self.a_rise),
        )
    }
}

/// Calcium state of every cell.
pub(crate) struct Calcium {
    kinetics: Kinetics,
    slow: Vec<f32>,
    fast: Vec<f32>,
}

impl Calcium {
    pub(crate) fn new(kinetics: Kinetics, n_cells: usize) -> Calcium {
        Calcium {
            kinetics,
            slow: vec![0.0; n_cells],
            fast: vec![0.0; n_cells],
        }
    }

    /// Advances one substep: decays first, then adds this substep's spikes, so a spike shows
    /// from the next substep on (the finite rise).
    pub(crate) fn step(&mut self, spikes: &[u32]) {
        let (ad, ar) = (self.kinetics.a_decay, self.kinetics.a_rise);
        for ((s, f), &k) in self.slow.iter_mut().zip(self.fast.iter_mut()).zip(spikes) {
            *s = ad * *s + k as f32;
            *f = ar * *f + k as f32;
        }
    }

    /// Calcium of cell `i`, in units of one spike's peak.
    #[inline]
    pub(crate) fn level(&self, i: usize) -> f32 {
        self.kinetics.peak_norm * (self.slow[i] - self.fast[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_spike_peaks_at_one_after_the_rise() {
        let k = Kinetics::new(1.2, 0.1, 1.0 / 60.0);
        let mut c = Calcium::new(k, 1);
        c.step(&[1]);
        assert_eq!(
            c.level(0),
            0.0,
            "a spike must not show within its own substep"
        );
        let mut peak = (0.0f32, 0usize);
        for n in 1..300 {
            c.step(&[0]);
            if c.level(0) > peak.0 {
                peak = (c.level(0), n);
            }
        }
        assert!((peak.0 - 1.0).abs() < 1e-4, "peak {}", peak.0);
        // Rise of 0.1 s against a 1.2 s decay peaks after ~0.27 s.
        let t_peak = peak.1 as f64 / 60.0;
        assert!((0.15..0.45).contains(&t_peak), "peak at {t_peak} s");
    }

    #[test]
    fn calcium_follows_the_ar2_recursion() {
        let k = Kinetics::new(1.0, 0.08, 1.0 / 60.0);
        let (g1, g2, gain) = k.ar2();
        let spikes: Vec<u32> = (0..400)
            .map(|n| [0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0][n % 13] * (n < 250) as u32)
            .collect();
        let mut c = Calcium::new(k, 1);
        let mut levels = Vec::new();
        for &s in &spikes {
            c.step(&[s]);
            levels.push(c.level(0));
        }
        for n in 2..spikes.len() {
            let ar = g1 * levels[n - 1] + g2 * levels[n - 2] + gain * spikes[n - 1] as f32;
            assert!(
                (levels[n] - ar).abs() < 1e-3 * (1.0 + levels[n].abs()),
                "step {n}: {} vs {ar}",
                levels[n]
            );
        }
        // And it decays back to rest once spiking stops.
        assert!(levels[399] < 0.1 * levels[249]);
    }
}
