//! Stimulus specs: what to show, in visual degrees on the sphere and seconds.
//!
//! Every kind is one serde struct (`deny_unknown_fields`) in a file by family; [`StimulusSpec`]
//! tags them with `kind = "..."`. Coordinates: azimuth (deg, positive to the right) and
//! elevation (deg, positive up) as seen from the eye; directions are angles in that plane
//! (0 = rightward, 90 = upward); spatial frequencies in cycles/deg, temporal in cycles/s (Hz),
//! speeds in deg/s. Luminance is expressed around mean gray (0.5 of the linearised range);
//! contrast is Michelson contrast in [0, 1]. Random content is deterministic from `seed`.

mod check;
mod dots;
mod grating;
mod image;
mod noise;
mod trial;

pub use check::{FieldOfView, SpecError};
pub use dots::{FlashingDotsSpec, MAX_DOTS, Polarity, RandomDotsSpec};
pub use grating::{Aperture, GaborSpec, GratingSpec, Waveform};
pub use image::{ImageSpec, MovieSpec, Rect, TwinImageSpec};
pub use noise::{MovingPinkNoiseSpec, PinkNoiseSpec, SparseNoiseSpec};
pub use trial::{Showing, Trial, TrialList};

use serde::{Deserialize, Serialize};

/// One stimulus. See each kind's struct for its fields and their units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StimulusSpec {
    /// Uniform mean-luminance gray (the inter-trial screen).
    Gray,
    /// A drifting or static sine/square grating, full field or in a circular aperture.
    Grating(GratingSpec),
    /// A grating under a Gaussian envelope.
    Gabor(GaborSpec),
    /// White and black squares on gray at random grid positions, a new pattern every frame.
    SparseNoise(SparseNoiseSpec),
    /// Spatial 1/f^α noise, static or refreshed.
    PinkNoise(PinkNoiseSpec),
    /// Pink noise, optionally orientation-filtered, translating along a direction.
    MovingPinkNoise(MovingPinkNoiseSpec),
    /// Dots flashed at random positions.
    FlashingDots(FlashingDotsSpec),
    /// A random-dot kinematogram (coherent motion among noise dots, limited lifetime).
    RandomDots(RandomDotsSpec),
    /// A natural movie clip from a file (`.npy` u8 [T,H,W] or a folder of PNG frames).
    Movie(MovieSpec),
    /// A static image from a file (`.npy` u8 [H,W] or [1,H,W], or a PNG).
    Image(ImageSpec),
    /// An in-memory u8 [H,W] image (e.g. produced by the twin).
    TwinImage(TwinImageSpec),
}

impl StimulusSpec {
    /// The compatible constructor of the original full-field sine grating.
    pub fn grating(
        direction_deg: f64,
        sf_cpd: f64,
        tf_hz: f64,
        contrast: f64,
        phase_deg: f64,
    ) -> StimulusSpec {
        StimulusSpec::Grating(GratingSpec {
            direction_deg,
            sf_cpd,
            tf_hz,
            contrast,
            phase_deg,
            ..GratingSpec::default()
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StimulusSpec::Gray => "gray",
            StimulusSpec::Grating(_) => "grating",
            StimulusSpec::Gabor(_) => "gabor",
            StimulusSpec::SparseNoise(_) => "sparse_noise",
            StimulusSpec::PinkNoise(_) => "pink_noise",
            StimulusSpec::MovingPinkNoise(_) => "moving_pink_noise",
            StimulusSpec::FlashingDots(_) => "flashing_dots",
            StimulusSpec::RandomDots(_) => "random_dots",
            StimulusSpec::Movie(_) => "movie",
            StimulusSpec::Image(_) => "image",
            StimulusSpec::TwinImage(_) => "twin_image",
        }
    }

    /// Check every parameter; the error names the field and what is allowed. Kinds read from
    /// files check the file's shape and dtype too.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            StimulusSpec::Gray => Ok(()),
            StimulusSpec::Grating(s) => s.validate(),
            StimulusSpec::Gabor(s) => s.validate(),
            StimulusSpec::SparseNoise(s) => s.validate(),
            StimulusSpec::PinkNoise(s) => s.validate(),
            StimulusSpec::MovingPinkNoise(s) => s.validate(),
            StimulusSpec::FlashingDots(s) => s.validate(),
            StimulusSpec::RandomDots(s) => s.validate(),
            StimulusSpec::Movie(s) => s.validate(),
            StimulusSpec::Image(s) => s.validate(),
            StimulusSpec::TwinImage(s) => s.validate(),
        }
    }

    /// [`validate`](Self::validate), then check that the stimulus lands inside the display's
    /// field of view (its centre, grid or area; full-field kinds always do).
    pub fn validate_for(&self, fov: &FieldOfView) -> Result<(), SpecError> {
        self.validate()?;
        let kind = self.kind();
        match self {
            StimulusSpec::Grating(s) => match &s.aperture {
                Some(a) => {
                    fov.check_point(kind, "aperture.center", a.center_az_deg, a.center_el_deg)
                }
                None => Ok(()),
            },
            StimulusSpec::Gabor(s) => {
                fov.check_point(kind, "center", s.center_az_deg, s.center_el_deg)
            }
            StimulusSpec::SparseNoise(s) => fov.check_rect(kind, "grid", &s.grid),
            StimulusSpec::FlashingDots(s) => fov.check_rect(kind, "area", &s.area),
            StimulusSpec::RandomDots(s) => fov.check_rect(kind, "area", &s.area),
            StimulusSpec::Movie(s) => fov.check_rect(kind, "area", &s.area),
            StimulusSpec::Image(s) => fov.check_rect(kind, "area", &s.area),
            StimulusSpec::TwinImage(s) => fov.check_rect(kind, "area", &s.area),
            StimulusSpec::Gray | StimulusSpec::PinkNoise(_) | StimulusSpec::MovingPinkNoise(_) => {
                Ok(())
            }
        }
    }
}
