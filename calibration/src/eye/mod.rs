//! Eye: the pupil on each eye-camera frame, and where the eye looks in degrees.
//!
//! # Layout (in the order data flows)
//! - [`pupil`]: [`PupilTracker`], one u8 frame in, one [`PupilMeasurement`] out (centre, radius,
//!   ellipse and a [`PupilQuality`] flag), no allocation per frame.
//! - [`ellipse`]: the direct least-squares ellipse fit the tracker runs on the pupil's edge.
//! - `raster`: the tracker's pixel operations (histogram quantiles, blur, flood fill).
//! - [`mapping`]: pupil pixels → gaze degrees from the camera geometry, and the running
//!   standardisation statistics of the twin's behaviour inputs.
pub mod ellipse;
pub mod mapping;
pub mod pupil;
mod raster;

pub use ellipse::{Ellipse, EllipseFit, EllipseFitError, fit_ellipse};
pub use pupil::{
    Implausibility, PupilConfig, PupilError, PupilMeasurement, PupilQuality, PupilTracker,
};

#[cfg(test)]
mod tests;
