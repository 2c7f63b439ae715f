//! The candidate pool: every stimulus the adaptive selector may choose, plus the repeated test
//! block, each rendered once at the core's input size over the display view's angular extent
//! and passed through the frozen core, so scoring a candidate never renders or runs the core
//! again (Lewi et al. 2009 cache the stimulus features the same way).

use std::collections::BTreeMap;
use twinloop_model::frozen_core::FrozenCore;
use twinloop_stimulus::spec::{Aperture, GratingSpec, MovingPinkNoiseSpec, Rect, SparseNoiseSpec};
use twinloop_stimulus::{
    LibraryEntry, Prepared, Projection, StimulusId, StimulusSpec, ViewGeometry, cpu,
};

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the candidate pool is empty: give the selector at least one stimulus")]
    Empty,
    #[error("candidate {index} (`{name}`) is rejected by the renderer: {reason}")]
    Rejected {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("frozen core: {0}")]
    Core(String),
    /// A `[twin]` setting cannot give a core (the message names the field and the fix).
    #[error("{0}")]
    Twin(String),
    #[error(
        "pool entry {index} (`{name}`) has stimulus id {id}; ids must equal positions (candidates first, then tests)"
    )]
    Id { index: usize, name: String, id: u32 },
}

/// The fewest clips passed to the core in one call while building a pool.
pub const BATCH: usize = 16;

/// Rendered clips held at once while building a pool: every clip of the default pool (18 MB)
/// goes to the core in one call, so an fnn core spreads all its batches over its threads; a
/// larger core input (fnn's released 144x256) goes in several calls.
const CALL_BYTES: usize = 64 << 20;

/// Candidates and test stimuli with their cached core features.
pub struct CandidatePool {
    entries: Vec<LibraryEntry>,
    /// `true` for the repeated test block (never chosen adaptively).
    is_test: Vec<bool>,
    /// The display view (what the screen shows, at the display's twin resolution).
    view: ViewGeometry,
    core: Box<dyn FrozenCore>,
    /// Twin frames per clip.
    frames: usize,
    twin_hz: f64,
    /// Features, `[entry][frame][position][channel]`.
    features: Vec<f32>,
    /// Features of the mean-gray screen after a long gray screen, `[position][channel]` (all
    /// zero for the energy core, not for an fnn core).
    gray: Vec<f32>,
}

impl CandidatePool {
    /// Renders each entry for `stimulus_s` at `twin_hz` at `core`'s input size over `view`'s
    /// angular extent and runs `core` over it, as many clips at a time as 64 MB of pixels hold
    /// (at least [`BATCH`]; an fnn core spreads a call's clips over its threads). Entries the renderer rejects are an error naming them (a pool is
    /// checked once, at start).
    pub fn build(
        candidates: Vec<LibraryEntry>,
        tests: Vec<LibraryEntry>,
        view: ViewGeometry,
        mut core: Box<dyn FrozenCore>,
        stimulus_s: f64,
        twin_hz: f64,
    ) -> Result<CandidatePool, PoolError> {
        if candidates.is_empty() {
            return Err(PoolError::Empty);
        }
        let frames = ((stimulus_s * twin_hz).round() as usize).max(1);
        let mut is_test = vec![false; candidates.len()];
        is_test.resize(candidates.len() + tests.len(), true);
        let entries: Vec<LibraryEntry> = candidates.into_iter().chain(tests).collect();
        let per_frame = core.positions() * core.channels();
        let per_clip = frames * per_frame;
        let (height, width) = core.input_size();
        let core_view = ViewGeometry {
            width,
            height,
            ..view
        };
        let px = core_view.pixels();
        let projection = Projection::Linear(core_view);
        for (index, e) in entries.iter().enumerate() {
            if e.id.0 as usize != index {
                return Err(PoolError::Id {
                    index,
                    name: e.name.clone(),
                    id: e.id.0,
                });
            }
        }
        let mut features = vec![0.0f32; entries.len() * per_clip];
        let per_call = (CALL_BYTES / (frames * px).max(1)).max(BATCH);
        let mut clips = vec![cpu::MEAN_GRAY; per_call.min(entries.len()) * frames * px];
        let (mut render_s, mut core_s) = (0.0, 0.0);
        for (call, (chunk, dst)) in entries
            .chunks(per_call)
            .zip(features.chunks_mut(per_call * per_clip))
            .enumerate()
        {
            let started = std::time::Instant::now();
            let clips = &mut clips[..chunk.len() * frames * px];
            render_clips(chunk, call * per_call, &projection, twin_hz, clips)?;
            let rendered = std::time::Instant::now();
            core.clips(clips, chunk.len(), frames, dst)
                .map_err(|err| PoolError::Core(err.to_string()))?;
            render_s += (rendered - started).as_secs_f64();
            core_s += rendered.elapsed().as_secs_f64();
        }
        tracing::debug!(
            entries = entries.len(),
            frames,
            render_s,
            core_s,
            "candidate pool rendered and passed through the core"
        );
        let mut gray = vec![0.0f32; per_frame];
        core.gray(&mut gray)
            .map_err(|err| PoolError::Core(err.to_string()))?;
        Ok(CandidatePool {
            entries,
            is_test,
            view,
            core,
            frames,
            twin_hz,
            features,
            gray,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, index: usize) -> &LibraryEntry {
        &self.entries[index]
    }

    pub fn entries(&self) -> &[LibraryEntry] {
        &self.entries
    }

    pub fn is_test(&self, index: usize) -> bool {
        self.is_test[index]
    }

    /// Indices of the candidates the selector may choose.
    pub fn candidates(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| !self.is_test[i]).collect()
    }

    /// Indices of the repeated test block.
    pub fn tests(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_test[i]).collect()
    }

    /// The frozen core the features came from (its grid, channels and bilinear read).
    pub fn core(&self) -> &dyn FrozenCore {
        self.core.as_ref()
    }

    pub fn view(&self) -> ViewGeometry {
        self.view
    }

    /// Twin frames per clip.
    pub fn frames(&self) -> usize {
        self.frames
    }

    pub fn twin_hz(&self) -> f64 {
        self.twin_hz
    }

    /// The core's feature map of `entry` at twin frame `frame`, `[position][channel]`; past
    /// the clip's end, the gray screen's.
    pub fn feature_map(&self, entry: usize, frame: usize) -> &[f32] {
        if frame >= self.frames {
            return &self.gray;
        }
        let per_frame = self.gray.len();
        let start = (entry * self.frames + frame) * per_frame;
        &self.features[start..start + per_frame]
    }

    pub fn gray_map(&self) -> &[f32] {
        &self.gray
    }

    /// The entry's stimulus kind, for the share cap.
    pub fn kind(&self, index: usize) -> &'static str {
        self.entries[index].spec.kind()
    }

    /// How many candidates of each kind (for logs).
    pub fn kinds(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for i in self.candidates() {
            *m.entry(self.kind(i)).or_insert(0) += 1;
        }
        m
    }
}

/// Renders `entries` (the first is pool entry `first`) at `twin_hz` through `projection` into
/// `clips` (clip-major, one clip per entry), the entries split over the machine's threads (each
/// clip is rendered alone, so the pixels do not depend on the split). The first entry the
/// renderer rejects is the error.
fn render_clips(
    entries: &[LibraryEntry],
    first: usize,
    projection: &Projection,
    twin_hz: f64,
    clips: &mut [u8],
) -> Result<(), PoolError> {
    let per_clip = clips.len() / entries.len().max(1);
    let px = projection.pixels();
    let render = |offset: usize, part: &[LibraryEntry], out: &mut [u8]| {
        for (i, (e, clip)) in part.iter().zip(out.chunks_exact_mut(per_clip)).enumerate() {
            let rejected = |reason: String| PoolError::Rejected {
                index: first + offset + i,
                name: e.name.clone(),
                reason,
            };
            e.spec.validate().map_err(|err| rejected(err.to_string()))?;
            let mut prepared = Prepared::new(&e.spec).map_err(|err| rejected(err.to_string()))?;
            for (f, frame) in clip.chunks_exact_mut(px).enumerate() {
                cpu::render_content(&prepared.frame(f as f64 / twin_hz), projection, frame);
            }
        }
        Ok(())
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(entries.len());
    if threads <= 1 {
        return render(0, entries, clips);
    }
    let per_thread = entries.len().div_ceil(threads);
    // Results in entry order: the lowest-indexed rejection is reported, however the split.
    std::thread::scope(|sc| {
        let handles: Vec<_> = entries
            .chunks(per_thread)
            .zip(clips.chunks_mut(per_thread * per_clip))
            .enumerate()
            .map(|(k, (part, out))| sc.spawn(move || render(k * per_thread, part, out)))
            .collect();
        handles.into_iter().try_for_each(|h| match h.join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        })
    })
}

fn entry(entries: &mut Vec<LibraryEntry>, offset: u32, name: String, spec: StimulusSpec) {
    entries.push(LibraryEntry {
        id: StimulusId(offset + entries.len() as u32),
        name,
        spec,
    });
}

/// The default candidate pool: full-field drifting gratings (8 directions x 2 spatial x 2
/// temporal frequencies), gratings in 12-degree apertures at 9 positions around the
/// retinotopic centre (8 directions), directional pink noise (8 directions x 2 seeds) and sparse
/// noise (8 seeds); 128 stimuli.
pub fn default_candidates() -> Vec<LibraryEntry> {
    let mut out = Vec::new();
    for sf_cpd in [0.03, 0.06] {
        for tf_hz in [1.5, 4.0] {
            for k in 0..8 {
                let dir = 45.0 * k as f64;
                let spec = StimulusSpec::grating(dir, sf_cpd, tf_hz, 1.0, 0.0);
                entry(
                    &mut out,
                    0,
                    format!("grating dir {dir:.0} sf {sf_cpd} tf {tf_hz}"),
                    spec,
                );
            }
        }
    }
    for el in [-20.0, 0.0, 20.0] {
        for az in [-20.0, 0.0, 20.0] {
            for k in 0..8 {
                let dir = 45.0 * k as f64;
                let spec = StimulusSpec::Grating(GratingSpec {
                    direction_deg: dir,
                    sf_cpd: 0.04,
                    tf_hz: 2.0,
                    contrast: 1.0,
                    aperture: Some(Aperture {
                        center_az_deg: az,
                        center_el_deg: el,
                        radius_deg: 12.0,
                    }),
                    ..GratingSpec::default()
                });
                entry(
                    &mut out,
                    0,
                    format!("patch dir {dir:.0} at ({az:.0}, {el:.0})"),
                    spec,
                );
            }
        }
    }
    for seed in [11, 12] {
        for k in 0..8 {
            let dir = 45.0 * k as f64;
            entry(
                &mut out,
                0,
                format!("pink noise dir {dir:.0} seed {seed}"),
                moving_pink(seed, dir),
            );
        }
    }
    for seed in 21..29 {
        entry(
            &mut out,
            0,
            format!("sparse noise seed {seed}"),
            sparse_noise(seed),
        );
    }
    out
}

/// The default repeated test block: six stimuli never offered to the adaptive selector —
/// directional pink noise in four directions and sparse noise with seeds outside the pool,
/// and an oblique grating between the pool's directions. Ids continue after `offset`.
pub fn default_tests(offset: u32) -> Vec<LibraryEntry> {
    let mut out = Vec::new();
    for (i, dir) in [0.0, 90.0, 180.0, 270.0].into_iter().enumerate() {
        entry(
            &mut out,
            offset,
            format!("test pink noise dir {dir:.0}"),
            moving_pink(101 + i as u64, dir),
        );
    }
    entry(
        &mut out,
        offset,
        "test sparse noise".into(),
        sparse_noise(131),
    );
    entry(
        &mut out,
        offset,
        "test grating dir 22".into(),
        StimulusSpec::grating(22.5, 0.045, 2.5, 0.8, 0.0),
    );
    out
}

fn moving_pink(seed: u64, direction_deg: f64) -> StimulusSpec {
    StimulusSpec::MovingPinkNoise(MovingPinkNoiseSpec {
        seed,
        exponent: 1.0,
        contrast: 1.0,
        texel_deg: 2.0,
        size_texels: 64,
        direction_deg,
        speed_dps: 20.0,
        orientation_kappa: 2.0,
    })
}

fn sparse_noise(seed: u64) -> StimulusSpec {
    StimulusSpec::SparseNoise(SparseNoiseSpec {
        seed,
        grid: Rect {
            az_deg: [-40.0, 40.0],
            el_deg: [-30.0, 30.0],
        },
        square_deg: 10.0,
        frame_s: 0.25,
        squares_per_frame: 6,
        contrast: 1.0,
    })
}
