//! Validation errors and the checks the specs share.

use super::Rect;
use thiserror::Error;

/// Why a spec was rejected; every variant names the kind and the field.
#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error("{kind}.{field} = {value} is out of range: {allowed}")]
    OutOfRange {
        kind: &'static str,
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error("{kind}.{field} is invalid: {problem}")]
    Invalid {
        kind: &'static str,
        field: &'static str,
        problem: String,
    },
    #[error(
        "{kind}.{field} = ({az:.2}, {el:.2}) deg is outside the display's field of view: {fov}"
    )]
    OutsideFieldOfView {
        kind: &'static str,
        field: &'static str,
        az: f64,
        el: f64,
        fov: String,
    },
}

/// One numeric check: `ok` must hold and the value be finite.
pub(crate) fn check(
    kind: &'static str,
    field: &'static str,
    value: f64,
    ok: bool,
    allowed: &'static str,
) -> Result<(), SpecError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(SpecError::OutOfRange {
            kind,
            field,
            value,
            allowed,
        })
    }
}

pub(crate) fn invalid(kind: &'static str, field: &'static str, problem: String) -> SpecError {
    SpecError::Invalid {
        kind,
        field,
        problem,
    }
}

/// Check a rectangle in degrees: finite, ordered, non-empty, within the sphere's ranges.
pub(crate) fn check_rect(
    kind: &'static str,
    field: &'static str,
    r: &Rect,
) -> Result<(), SpecError> {
    let [a0, a1] = r.az_deg;
    let [e0, e1] = r.el_deg;
    let ok = [a0, a1, e0, e1].iter().all(|v| v.is_finite())
        && a0 < a1
        && e0 < e1
        && a0 >= -180.0
        && a1 <= 180.0
        && e0 >= -90.0
        && e1 <= 90.0;
    if ok {
        Ok(())
    } else {
        Err(invalid(
            kind,
            field,
            format!(
                "az_deg = [{a0}, {a1}], el_deg = [{e0}, {e1}]: need az0 < az1 within [-180, 180] \
                 and el0 < el1 within [-90, 90] deg"
            ),
        ))
    }
}

/// The part of the visual field a display covers, as azimuth/elevation bounds (degrees).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldOfView {
    pub az_deg: [f64; 2],
    pub el_deg: [f64; 2],
}

impl FieldOfView {
    pub fn contains(&self, az: f64, el: f64) -> bool {
        (self.az_deg[0]..=self.az_deg[1]).contains(&az)
            && (self.el_deg[0]..=self.el_deg[1]).contains(&el)
    }

    fn describe(&self) -> String {
        format!(
            "azimuth [{:.1}, {:.1}] deg, elevation [{:.1}, {:.1}] deg",
            self.az_deg[0], self.az_deg[1], self.el_deg[0], self.el_deg[1]
        )
    }

    pub(crate) fn check_point(
        &self,
        kind: &'static str,
        field: &'static str,
        az: f64,
        el: f64,
    ) -> Result<(), SpecError> {
        if self.contains(az, el) {
            Ok(())
        } else {
            Err(SpecError::OutsideFieldOfView {
                kind,
                field,
                az,
                el,
                fov: self.describe(),
            })
        }
    }

    /// A rectangle must overlap the field of view.
    pub(crate) fn check_rect(
        &self,
        kind: &'static str,
        field: &'static str,
        r: &Rect,
    ) -> Result<(), SpecError> {
        let overlaps = r.az_deg[0] < self.az_deg[1]
            && r.az_deg[1] > self.az_deg[0]
            && r.el_deg[0] < self.el_deg[1]
            && r.el_deg[1] > self.el_deg[0];
        if overlaps {
            Ok(())
        } else {
            Err(SpecError::OutsideFieldOfView {
                kind,
                field,
                az: 0.5 * (r.az_deg[0] + r.az_deg[1]),
                el: 0.5 * (r.el_deg[0] + r.el_deg[1]),
                fov: self.describe(),
            })
        }
    }
}
