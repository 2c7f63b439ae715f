//! Gamma linearisation: an inverse lookup table from the luminance a stimulus asks for to the
//! drive level that makes the monitor emit it.
//!
//! A stimulus value `l ∈ [0, 1]` is a fraction of the monitor's luminance range (0 = its
//! black, 1 = its white, 0.5 = mean gray). The table holds 256 drive levels in [0, 1] for
//! `l = i / 255`; between entries the drive is interpolated linearly, so the table is applied
//! the same way on the CPU and in the shader. The fit from photometer readings lives in
//! `twinloop-calibration` (`display::gamma`); this crate only applies the result.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Entries in an inverse LUT.
pub const LUT_LEN: usize = 256;

#[derive(Debug, Error, PartialEq)]
pub enum GammaError {
    #[error("gamma LUT has {0} entries; it needs exactly {LUT_LEN}")]
    Length(usize),
    #[error("gamma LUT entry {index} = {value} is outside [0, 1]")]
    Range { index: usize, value: f64 },
    #[error("gamma LUT is not monotonic: entry {index} = {value} < entry {} = {previous}", index - 1)]
    NotMonotonic {
        index: usize,
        value: f64,
        previous: f64,
    },
}

/// A 256-entry inverse gamma LUT (non-decreasing drive levels in [0, 1]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LutTable", into = "LutTable")]
pub struct GammaLut {
    table: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LutTable {
    /// Drive level for each requested luminance i / 255.
    table: Vec<f64>,
}

impl TryFrom<LutTable> for GammaLut {
    type Error = GammaError;
    fn try_from(t: LutTable) -> Result<Self, GammaError> {
        GammaLut::from_table(&t.table)
    }
}

impl From<GammaLut> for LutTable {
    fn from(g: GammaLut) -> Self {
        LutTable {
            table: g.table.iter().map(|&v| v as f64).collect(),
        }
    }
}

impl Default for GammaLut {
    fn default() -> Self {
        GammaLut::identity()
    }
}

impl GammaLut {
    /// The identity: drive = requested luminance (a linear or already linearised display).
    pub fn identity() -> GammaLut {
        GammaLut {
            table: (0..LUT_LEN).map(|i| i as f32 / 255.0).collect(),
        }
    }

    /// The inverse of a pure power law `L = drive^γ`: drive = l^(1/γ).
    pub fn inverse_power(gamma: f64) -> GammaLut {
        GammaLut {
            table: (0..LUT_LEN)
                .map(|i| (i as f64 / 255.0).powf(1.0 / gamma) as f32)
                .collect(),
        }
    }

    /// Check and wrap a table of 256 non-decreasing values in [0, 1].
    pub fn from_table(table: &[f64]) -> Result<GammaLut, GammaError> {
        if table.len() != LUT_LEN {
            return Err(GammaError::Length(table.len()));
        }
        for (index, &value) in table.iter().enumerate() {
            if !(0.0..=1.0).contains(&value) {
                return Err(GammaError::Range { index, value });
            }
            if index > 0 && value < table[index - 1] {
                return Err(GammaError::NotMonotonic {
                    index,
                    value,
                    previous: table[index - 1],
                });
            }
        }
        Ok(GammaLut {
            table: table.iter().map(|&v| v as f32).collect(),
        })
    }

    pub fn table(&self) -> &[f32] {
        &self.table
    }

    /// Drive level for requested luminance `l` (clamped to [0, 1]), interpolated linearly.
    pub fn apply(&self, l: f64) -> f64 {
        let x = l.clamp(0.0, 1.0) * 255.0;
        let i = (x.floor() as usize).min(LUT_LEN - 2);
        let f = x - i as f64;
        let (a, b) = (self.table[i] as f64, self.table[i + 1] as f64);
        a + (b - a) * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_identity() {
        let g = GammaLut::identity();
        for l in [0.0, 0.1, 0.5, 0.77, 1.0] {
            assert!((g.apply(l) - l).abs() < 1e-6);
        }
    }

    #[test]
    fn power_inverse_undoes_the_power_law() {
        let g = GammaLut::inverse_power(2.2);
        for l in [0.05, 0.3, 0.5, 0.9] {
            let drive = g.apply(l);
            assert!((drive.powf(2.2) - l).abs() < 2e-3, "{l}");
        }
    }

    #[test]
    fn bad_tables_say_why() {
        assert_eq!(GammaLut::from_table(&[0.0; 3]), Err(GammaError::Length(3)));
        let mut t: Vec<f64> = (0..256).map(|i| i as f64 / 255.0).collect();
        t[10] = 0.01;
        let e = GammaLut::from_table(&t).unwrap_err().to_string();
        assert!(e.contains("not monotonic") && e.contains("entry 10"), "{e}");
        t[10] = 1.5;
        assert!(matches!(
            GammaLut::from_table(&t),
            Err(GammaError::Range { index: 10, .. })
        ));
    }

    #[test]
    fn serde_checks_the_table() {
        let g = GammaLut::inverse_power(2.0);
        let text = toml::to_string(&g).unwrap();
        let back: GammaLut = toml::from_str(&text).unwrap();
        assert_eq!(back, g);
        assert!(toml::from_str::<GammaLut>("table = [0.0, 1.0]").is_err());
    }
}
