//! From a spec to what one frame shows.
//!
//! [`Prepared`] resolves a spec once (loads its clip, generates its noise, seeds its dots);
//! [`Prepared::frame`] then gives the [`FrameContent`] at `t` seconds after onset: the
//! parameters of an analytic pattern, a [`Field`] of values with its placement, or a list of
//! [`Dot`]s. Everything random or loaded is decided here, once, on the CPU; the CPU reference
//! and the GPU renderer each rasterise the same content independently (pixel → direction →
//! formula), which is what the pixel-by-pixel tests compare.

pub mod clip;
pub mod dots;
pub mod pink;

use crate::spec::{
    GaborSpec, GratingSpec, MovingPinkNoiseSpec, PinkNoiseSpec, Rect, SparseNoiseSpec, SpecError,
    StimulusSpec, Waveform,
};
use clip::Clip;
use dots::RdkSim;
use pink::{PinkParams, pink_field};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slack when turning a time into a frame index, so `t = k / rate` computed in floating
/// point lands on frame `k`.
const INDEX_EPS: f64 = 1e-6;

fn index_at(t_s: f64, rate_hz: f64) -> u64 {
    (t_s * rate_hz + INDEX_EPS).floor().max(0.0) as u64
}

static NEXT_FIELD_KEY: AtomicU64 = AtomicU64::new(1);

/// A grid of values in [−1, 1], row-major, row 0 at the top (highest elevation). `key` is
/// unique per field ever built, so a renderer can cache what it has uploaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
    pub key: u64,
}

impl Field {
    pub fn new(width: u32, height: u32, values: Vec<f32>) -> Field {
        debug_assert_eq!(values.len(), width as usize * height as usize);
        Field {
            width,
            height,
            values,
            key: NEXT_FIELD_KEY.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// u8 luminance levels as values: level / 127.5 − 1, so `L = 0.5 + 0.5 v = level / 255`.
    pub fn from_levels(width: u32, height: u32, levels: &[u8]) -> Field {
        Field::new(
            width,
            height,
            levels.iter().map(|&l| l as f32 / 127.5 - 1.0).collect(),
        )
    }

    pub fn get(&self, col: u32, row: u32) -> f32 {
        self.values[row as usize * self.width as usize + col as usize]
    }
}

/// How a field is sampled between texel centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// The texel a point falls in (sharp squares).
    Nearest,
    /// Bilinear between texel centres.
    Bilinear,
}

/// A dot: centre (deg) and sign (+1 white, −1 black).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dot {
    pub az_deg: f64,
    pub el_deg: f64,
    pub sign: f64,
}

/// A grating carrier at one instant; `phase_cycles` (in [0, 1)) is its phase at `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Carrier {
    pub direction_deg: f64,
    pub sf_cpd: f64,
    pub phase_cycles: f64,
    pub reference: (f64, f64),
}

impl Carrier {
    fn at(
        direction_deg: f64,
        sf_cpd: f64,
        tf_hz: f64,
        phase_deg: f64,
        t_s: f64,
        reference: (f64, f64),
    ) -> Carrier {
        Carrier {
            direction_deg,
            sf_cpd,
            phase_cycles: (phase_deg / 360.0 - tf_hz * t_s).rem_euclid(1.0),
            reference,
        }
    }
}

/// What one frame shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameContent<'a> {
    Gray,
    Grating {
        carrier: Carrier,
        contrast: f64,
        waveform: Waveform,
        /// Great-circle radius around `carrier.reference`; `None` = full field.
        aperture_radius_deg: Option<f64>,
    },
    Gabor {
        carrier: Carrier,
        contrast: f64,
        sigma_deg: f64,
    },
    Field {
        field: &'a Field,
        /// Azimuth and elevation of the field's top-left corner.
        corner_deg: (f64, f64),
        /// Texel size (azimuth, elevation), degrees.
        texel_deg: (f64, f64),
        /// The pattern is displaced by this much (deg); already reduced modulo the period for
        /// wrapping fields.
        shift_deg: (f64, f64),
        sampling: Sampling,
        /// Tile the field periodically; otherwise gray outside it.
        wrap: bool,
        contrast: f64,
    },
    Dots {
        dots: &'a [Dot],
        radius_deg: f64,
        contrast: f64,
    },
}

/// Why a spec could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{kind}.path: {problem}")]
    Load { kind: &'static str, problem: String },
}

enum Kind {
    Gray,
    Grating(GratingSpec),
    Gabor(GaborSpec),
    Sparse {
        spec: SparseNoiseSpec,
        cached: Option<(u64, Field)>,
    },
    Pink {
        spec: PinkNoiseSpec,
        cached: Option<(u64, Field)>,
    },
    MovingPink {
        spec: MovingPinkNoiseSpec,
        field: Field,
    },
    Flash {
        spec: crate::spec::FlashingDotsSpec,
        cached: Option<(u64, Vec<crate::content::Dot>)>,
    },
    Rdk {
        spec: crate::spec::RandomDotsSpec,
        sim: Box<RdkSim>,
    },
    Clip {
        clip: Clip,
        rate_hz: f64,
        looped: bool,
        area: Rect,
        cached: Option<(usize, Field)>,
    },
}

/// A spec resolved for rendering.
pub struct Prepared {
    spec: StimulusSpec,
    kind: Kind,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("spec", &self.spec.kind())
            .finish()
    }
}

fn sparse_pattern(spec: &SparseNoiseSpec, k: u64) -> Field {
    let (cols, rows) = spec.grid_shape();
    let cells = cols as usize * rows as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(k);
    let mut values = vec![0.0f32; cells];
    for i in rand::seq::index::sample(&mut rng, cells, spec.squares_per_frame as usize) {
        values[i] = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    }
    Field::new(cols, rows, values)
}

/// The cached value for index `k`, made anew when the index changed.
fn refresh<K: PartialEq + Copy, T>(
    cached: &mut Option<(K, T)>,
    k: K,
    make: impl FnOnce() -> T,
) -> &T {
    if cached.as_ref().is_none_or(|(ck, _)| *ck != k) {
        *cached = None;
    }
    &cached.get_or_insert_with(|| (k, make())).1
}

impl Prepared {
    /// Validate and resolve `spec`: read its file, generate its static noise, seed its dots.
    pub fn new(spec: &StimulusSpec) -> Result<Prepared, PrepareError> {
        spec.validate()?;
        let kind = match spec {
            StimulusSpec::Gray => Kind::Gray,
            StimulusSpec::Grating(s) => Kind::Grating(s.clone()),
            StimulusSpec::Gabor(s) => Kind::Gabor(s.clone()),
            StimulusSpec::SparseNoise(s) => Kind::Sparse {
                spec: s.clone(),
                cached: None,
            },
            StimulusSpec::PinkNoise(s) => Kind::Pink {
                spec: s.clone(),
                cached: None,
            },
            StimulusSpec::MovingPinkNoise(s) => {
                let n = s.size_texels as usize;
                let values = pink_field(&PinkParams {
                    seed: s.seed,
                    stream: 0,
                    n,
                    exponent: s.exponent,
                    kappa: s.orientation_kappa,
                    direction_deg: s.direction_deg,
                });
                Kind::MovingPink {
                    spec: s.clone(),
                    field: Field::new(n as u32, n as u32, values),
                }
            }
            StimulusSpec::FlashingDots(s) => Kind::Flash {
                spec: s.clone(),
                cached: None,
            },
            StimulusSpec::RandomDots(s) => Kind::Rdk {
                spec: s.clone(),
                sim: Box::new(RdkSim::new(s)),
            },
            StimulusSpec::Movie(s) => Kind::Clip {
                clip: clip::load_movie(&s.path).map_err(|problem| PrepareError::Load {
                    kind: "movie",
                    problem,
                })?,
                rate_hz: s.frame_rate_hz,
                looped: s.looped,
                area: s.area,
                cached: None,
            },
            StimulusSpec::Image(s) => Kind::Clip {
                clip: clip::load_image(&s.path).map_err(|problem| PrepareError::Load {
                    kind: "image",
                    problem,
                })?,
                rate_hz: 1.0,
                looped: false,
                area: s.area,
                cached: None,
            },
            StimulusSpec::TwinImage(s) => Kind::Clip {
                clip: Clip {
                    frames: 1,
                    height: s.height as usize,
                    width: s.width as usize,
                    data: s.pixels.clone(),
                },
                rate_hz: 1.0,
                looped: false,
                area: s.area,
                cached: None,
            },
        };
        Ok(Prepared {
            spec: spec.clone(),
            kind,
        })
    }

    /// Mean gray, which cannot fail to prepare.
    pub fn gray() -> Prepared {
        Prepared {
            spec: StimulusSpec::Gray,
            kind: Kind::Gray,
        }
    }

    pub fn spec(&self) -> &StimulusSpec {
        &self.spec
    }

    /// The content `t_s` seconds after onset.
    pub fn frame(&mut self, t_s: f64) -> FrameContent<'_> {
        let t = t_s.max(0.0);
        match &mut self.kind {
            Kind::Gray => FrameContent::Gray,
            Kind::Grating(s) => FrameContent::Grating {
                carrier: Carrier::at(
                    s.direction_deg,
                    s.sf_cpd,
                    s.tf_hz,
                    s.phase_deg,
                    t,
                    s.reference(),
                ),
                contrast: s.contrast,
                waveform: s.waveform,
                aperture_radius_deg: s.aperture.map(|a| a.radius_deg),
            },
            Kind::Gabor(s) => FrameContent::Gabor {
                carrier: Carrier::at(
                    s.direction_deg,
                    s.sf_cpd,
                    s.tf_hz,
                    s.phase_deg,
                    t,
                    (s.center_az_deg, s.center_el_deg),
                ),
                contrast: s.contrast,
                sigma_deg: s.sigma_deg,
            },
            Kind::Sparse { spec, cached } => {
                let k = index_at(t, 1.0 / spec.frame_s);
                let field = refresh(cached, k, || sparse_pattern(spec, k));
                FrameContent::Field {
                    field,
                    corner_deg: (spec.grid.az_deg[0], spec.grid.el_deg[1]),
                    texel_deg: (spec.square_deg, spec.square_deg),
                    shift_deg: (0.0, 0.0),
                    sampling: Sampling::Nearest,
                    wrap: false,
                    contrast: spec.contrast,
                }
            }
            Kind::Pink { spec, cached } => {
                let k = if spec.refresh_hz > 0.0 {
                    index_at(t, spec.refresh_hz)
                } else {
                    0
                };
                let n = spec.size_texels as usize;
                let field = refresh(cached, k, || {
                    let values = pink_field(&PinkParams {
                        seed: spec.seed,
                        stream: k,
                        n,
                        exponent: spec.exponent,
                        kappa: 0.0,
                        direction_deg: 0.0,
                    });
                    Field::new(n as u32, n as u32, values)
                });
                let half = 0.5 * spec.size_texels as f64 * spec.texel_deg;
                FrameContent::Field {
                    field,
                    corner_deg: (-half, half),
                    texel_deg: (spec.texel_deg, spec.texel_deg),
                    shift_deg: (0.0, 0.0),
                    sampling: Sampling::Bilinear,
                    wrap: true,
                    contrast: spec.contrast,
                }
            }
            Kind::MovingPink { spec, field } => {
                let period = spec.size_texels as f64 * spec.texel_deg;
                let travelled = spec.speed_dps * t;
                let (s, c) = spec.direction_deg.to_radians().sin_cos();
                let half = 0.5 * period;
                FrameContent::Field {
                    field,
                    corner_deg: (-half, half),
                    texel_deg: (spec.texel_deg, spec.texel_deg),
                    shift_deg: (
                        (travelled * c).rem_euclid(period),
                        (travelled * s).rem_euclid(period),
                    ),
                    sampling: Sampling::Bilinear,
                    wrap: true,
                    contrast: spec.contrast,
                }
            }
            Kind::Flash { spec, cached } => {
                let cycle = spec.on_s + spec.off_s;
                let k = index_at(t, 1.0 / cycle);
                let into = t - k as f64 * cycle;
                if into >= spec.on_s - INDEX_EPS {
                    return FrameContent::Gray;
                }
                let dots = refresh(cached, k, || dots::flash_dots(spec, k));
                FrameContent::Dots {
                    dots,
                    radius_deg: spec.dot_radius_deg,
                    contrast: spec.contrast,
                }
            }
            Kind::Rdk { spec, sim } => {
                let step = index_at(t, spec.update_hz);
                FrameContent::Dots {
                    dots: sim.at_step(step),
                    radius_deg: spec.dot_radius_deg,
                    contrast: spec.contrast,
                }
            }
            Kind::Clip {
                clip,
                rate_hz,
                looped,
                area,
                cached,
            } => {
                let k = index_at(t, *rate_hz) as usize;
                let k = if *looped {
                    k % clip.frames
                } else {
                    k.min(clip.frames - 1)
                };
                let field = refresh(cached, k, || {
                    Field::from_levels(clip.width as u32, clip.height as u32, clip.frame(k))
                });
                FrameContent::Field {
                    field,
                    corner_deg: (area.az_deg[0], area.el_deg[1]),
                    texel_deg: (
                        (area.az_deg[1] - area.az_deg[0]) / clip.width as f64,
                        (area.el_deg[1] - area.el_deg[0]) / clip.height as f64,
                    ),
                    shift_deg: (0.0, 0.0),
                    sampling: Sampling::Bilinear,
                    wrap: false,
                    contrast: 1.0,
                }
            }
        }
    }
}
