//! Config sections check themselves one way: [`Section::validate`] names the offending field by
//! its full path (`imaging.width`), the value it had and what is allowed.

use std::fmt;

/// The longest session, in seconds (a week). Durations become `std::time::Duration` and frame
/// counts; unbounded ones panic (`Duration::from_secs_f64(1e300)`) or never end.
pub const MAX_SESSION_S: f64 = 7.0 * 86_400.0;
/// The longest wait or interval any section may ask for (a day), in seconds.
pub const MAX_WAIT_S: f64 = 86_400.0;
/// The fastest device any section may describe (frames or samples per second): well above any
/// two-photon, camera, encoder or monitor rate, and low enough that a session's frame count
/// stays countable (a rate of 1e12 Hz would make the simulator spin for ever).
pub const MAX_DEVICE_RATE_HZ: f64 = 10_000.0;

/// One field's value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field's full path in the config file, e.g. `trials.design.random_share`.
    pub field: String,
    pub value: String,
    /// What is allowed, or how to fix it.
    pub allowed: String,
}

impl Invalid {
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        allowed: impl Into<String>,
    ) -> Invalid {
        Invalid {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// `v` must be a finite, positive number.
    pub fn positive(field: &str, v: f64) -> Result<(), Invalid> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Invalid::new(field, v, "must be a positive number"))
        }
    }

    /// `v` must be finite and zero or more.
    pub fn non_negative(field: &str, v: f64) -> Result<(), Invalid> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(Invalid::new(field, v, "must be zero or a positive number"))
        }
    }

    /// `v` must be finite, positive and at most `max` (in `unit`, named in the message).
    pub fn positive_at_most(field: &str, v: f64, max: f64, unit: &str) -> Result<(), Invalid> {
        if v.is_finite() && v > 0.0 && v <= max {
            Ok(())
        } else {
            Err(Invalid::new(
                field,
                v,
                format!("must be a positive number of {unit}, at most {max}"),
            ))
        }
    }

    /// `v` must be finite, zero or more and at most `max` (in `unit`, named in the message).
    pub fn non_negative_at_most(field: &str, v: f64, max: f64, unit: &str) -> Result<(), Invalid> {
        if v.is_finite() && (0.0..=max).contains(&v) {
            Ok(())
        } else {
            Err(Invalid::new(
                field,
                v,
                format!("must be zero or a positive number of {unit}, at most {max}"),
            ))
        }
    }

    /// `v` must lie in `lo ..= hi`.
    pub fn in_range(field: &str, v: u64, lo: u64, hi: u64, allowed: &str) -> Result<(), Invalid> {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(Invalid::new(field, v, allowed))
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` = {}: {}", self.field, self.value, self.allowed)
    }
}

impl std::error::Error for Invalid {}

/// A section of the session's config (`[imaging]`, `[trials]`, ...). The component it
/// configures takes it, never the whole config.
pub trait Section {
    /// Its path in the config file.
    const NAME: &'static str;

    /// Checks what serde cannot: ranges, finiteness, required combinations.
    fn validate(&self) -> Result<(), Invalid>;
}
