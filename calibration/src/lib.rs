//! Calibration: what is measured before the loop runs. PLACEHOLDER crate: the calibration issues fill it.
