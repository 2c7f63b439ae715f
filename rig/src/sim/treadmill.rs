//! The treadmill's rotary encoder: cumulative counts from the distance the mouse has run.
//!
//! The wheel turns by distance / (pi diameter) revolutions; the encoder reports whole counts
//! (floor), as a quadrature decoder does, with no wrap (the daemon handles wrap of real
//! hardware counters).

use super::config::TreadmillConfig;

/// Converts run distance to encoder counts.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Encoder {
    counts_per_cm: f64,
}

impl Encoder {
    pub(crate) fn new(cfg: &TreadmillConfig) -> Encoder {
        Encoder {
            counts_per_cm: cfg.counts_per_rev as f64
                / (std::f64::consts::PI * cfg.wheel_diameter_cm),
        }
    }

    /// Cumulative count after running `distance_cm`.
    pub(crate) fn count(&self, distance_cm: f64) -> i64 {
        (distance_cm * self.counts_per_cm).floor() as i64
    }

    /// Centimetres per count, for turning counts back into speed.
    pub(crate) fn cm_per_count(&self) -> f64 {
        1.0 / self.counts_per_cm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_revolution_is_counts_per_rev() {
        let cfg = TreadmillConfig {
            wheel_diameter_cm: 20.0,
            counts_per_rev: 1000,
        };
        let e = Encoder::new(&cfg);
        let circumference = std::f64::consts::PI * 20.0;
        assert_eq!(e.count(circumference + 1e-9), 1000);
        assert_eq!(e.count(0.5 * circumference + 1e-9), 500);
        assert_eq!(e.count(0.0), 0);
        assert!((e.cm_per_count() * 1000.0 - circumference).abs() < 1e-9);
    }
}
