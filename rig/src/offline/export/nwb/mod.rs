//! `twinloop export nwb`: a recorded session as a Neurodata Without Borders 2.x file (HDF5),
//! readable by pynwb and checked by nwbinspector.
//!
//! Reading the session ([`SessionContents`]) reuses the report's reader and the session-log
//! reader; writing needs the cargo feature `nwb`, which links the system libhdf5 (Debian:
//! `apt-get install libhdf5-dev`). Without it, [`export`] returns [`ExportError::NotBuilt`]
//! saying how to build it.
//!
//! ## What goes where
//! | NWB object | from |
//! | --- | --- |
//! | root: `session_start_time`, `identifier` (fresh UUID), `session_id` (directory name), `general/data_collection` (the manifest as JSON), `source_script` (command line) | `manifest.json` |
//! | `general/devices/Microscope`, `general/optophysiology/ImagingPlane` + `OpticalChannel` | config (`[imaging]`); indicator, wavelengths and location are nominal (PLACEHOLDER: not in the config) |
//! | `acquisition/TwoPhotonSeries` (u16, frames x rows x columns) | frame pixels, only when the session recorded them (`session.record_frames`); plane 0, channel 0 |
//! | `processing/ophys/ImageSegmentation/PlaneSegmentation` (`pixel_mask`: x column, y row, weight) | `calibration/plane0/` (pipeline), else the placeholder extraction's footprints |
//! | `processing/ophys/Fluorescence` (F, `Neuropil`), `DfOverF`, `Deconvolved` (RoiResponseSeries) | `Fluorescence` and `Activity` records (pipeline); with a placeholder extraction, `Fluorescence` holds the footprint means |
//! | `processing/behavior/PupilTracking` (`pupil_radius`, `pupil_centre`), `treadmill_velocity` | `Pupil` records (per eye frame), `Behaviour` records (per imaging frame) |
//! | `intervals/trials` (start, stop, trial, stimulus id and name, the decision's mode and score) | `Stimulus`, `Flip` and `Decision` records |
//! | `intervals/stimulus_presentations` (…, `spec` as JSON text) | `Stimulus` records |
//! | `analysis/twin_embeddings` (`DynamicTable`: per twin unit, its ROI (`DynamicTableRegion`), core SHA-256, standardised readout feature weights, position in degrees, CC_abs, CC_max, reference responses) | a twin given to the export, else the session's live twin (`live_twin.safetensors`), scored on the session ([`embeddings`]) |
//! | `stimulus/templates/inception_images` (`Images` of `GrayscaleImage`: MEIs and controls as shown), `analysis/inception_targets` (`DynamicTable`: per target cell, measured and predicted means, SE, n, Welch t, p, BH q, gains) | the inception protocol's design notes and `summary.json`'s verdict ([`inception`]) |
//!
//! Every timestamp is the rig clock in seconds, as logged (`timestamps_reference_time` is the
//! session start). A trial runs from its first flip to the first flip that no longer shows it.
//!
//! ## Bad input
//! - Not a session, or missing: an error naming the directory and what a session holds.
//! - A manifest whose config this version cannot read (an older twinloop): an error naming
//!   `manifest.json` and the version that wrote it.
//! - A killed session: what was recorded is exported, and [`Exported::warnings`] says what is
//!   missing (no summary, a cut log, no masks when it died before calibrating).
//!
//! The file is written beside `out` under a temporary name and renamed into place, so a reader
//! never sees half a file.

mod session;

#[cfg(feature = "nwb")]
pub mod embeddings;
#[cfg(feature = "nwb")]
mod file;
#[cfg(feature = "nwb")]
mod h5;
#[cfg(feature = "nwb")]
pub mod inception;

use std::path::{Path, PathBuf};

pub use session::{CALIBRATION_DIR, MaskPixel, Movie, RoiSource, Rois, SessionContents, Traces};

use crate::backbone::session_log::LogError;
use crate::offline::report::ReportError;

/// Whether this build can write NWB files (the cargo feature `nwb`).
pub const BUILT: bool = cfg!(feature = "nwb");

/// The NWB schema version written.
pub const NWB_VERSION: &str = "2.8.0";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "this twinloop was built without NWB export; rebuild it with the `nwb` feature, \
         which needs the HDF5 library (Debian/Ubuntu: `apt-get install libhdf5-dev`): \
         `cargo build --release --features twinloop-rig/nwb`"
    )]
    NotBuilt,

    #[error(transparent)]
    Session(ReportError),

    #[error("cannot export {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("cannot read the record log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: LogError,
    },

    #[error("cannot write the NWB file {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    /// The twin whose embeddings were asked for cannot be read or scored on the session.
    #[error("cannot export the embeddings of the twin {path}: {reason}")]
    Twin { path: PathBuf, reason: String },
}

/// A fitted twin's files (as `twin fit` writes them, or the session's live twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinFiles {
    pub weights: PathBuf,
    pub config: PathBuf,
}

/// What to add to a session's file.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The twin whose per-unit embeddings go into `/analysis/twin_embeddings`; `None`: the
    /// session's live twin when it saved one (a live twin that cannot be scored is a warning,
    /// a twin given here an error).
    pub twin: Option<TwinFiles>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub out: PathBuf,
    pub bytes: u64,
    pub rois: usize,
    /// Imaging frames with traces.
    pub frames: usize,
    /// Raw frames written to the TwoPhotonSeries (0 when not recorded).
    pub movie_frames: usize,
    pub trials: usize,
    /// Inception images written to `/stimulus/templates` (0 without the protocol).
    pub inception_images: usize,
    /// The twin whose embeddings were written, and its units (rows of the table).
    pub twin: Option<(PathBuf, usize)>,
    /// What was missing or odd in the session (a killed run, say); empty for a complete one.
    pub warnings: Vec<String>,
}

/// Writes the session in `session_dir` as an NWB file at `out` (with its live twin's
/// embeddings when it saved one).
pub fn export(session_dir: &Path, out: &Path) -> Result<Exported, ExportError> {
    export_with(session_dir, out, &ExportOptions::default())
}

/// [`export`] with options.
pub fn export_with(
    session_dir: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<Exported, ExportError> {
    if !BUILT {
        return Err(ExportError::NotBuilt);
    }
    let mut contents = SessionContents::load(session_dir)?;
    for warning in &contents.warnings {
        tracing::warn!(session = %session_dir.display(), "{warning}");
    }
    write(&mut contents, session_dir, out, options)
}

#[cfg(feature = "nwb")]
fn write(
    contents: &mut SessionContents,
    session_dir: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<Exported, ExportError> {
    let twin = match embeddings::choose(session_dir, options.twin.as_ref()) {
        None => None,
        Some(chosen) => match embeddings::compute(session_dir, &chosen.files) {
            Ok(e) => Some((chosen.files.weights, e)),
            Err(e) if chosen.given => return Err(e),
            Err(e) => {
                let warning = format!("the live twin's embeddings are not exported: {e}");
                tracing::warn!(session = %session_dir.display(), "{warning}");
                contents.warnings.push(warning);
                None
            }
        },
    };
    let contents = &*contents;
    let write_err = |reason: String| ExportError::Write {
        path: out.to_path_buf(),
        reason,
    };
    let mut tmp_name = out.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    let written = file::write(contents, session_dir, &tmp, twin.as_ref())
        .map_err(|e| e.to_string())
        .and_then(|w| {
            std::fs::rename(&tmp, out)
                .map(|()| w)
                .map_err(|e| e.to_string())
        });
    let written = match written {
        Ok(w) => w,
        Err(reason) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(write_err(reason));
        }
    };
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Exported {
        out: out.to_path_buf(),
        bytes,
        rois: written.rois,
        frames: written.frames,
        movie_frames: written.movie_frames,
        trials: written.trials,
        inception_images: written.inception_images,
        twin: twin.map(|(path, e)| (path, e.rows.len())),
        warnings: contents.warnings.clone(),
    })
}

#[cfg(not(feature = "nwb"))]
fn write(
    _: &mut SessionContents,
    _: &Path,
    _: &Path,
    _: &ExportOptions,
) -> Result<Exported, ExportError> {
    Err(ExportError::NotBuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "nwb"))]
    #[test]
    fn without_the_feature_export_says_how_to_build_it() {
        let err = export(Path::new("no-such-session"), Path::new("x.nwb")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ExportError::NotBuilt), "{text}");
        assert!(
            text.contains("--features twinloop-rig/nwb") && text.contains("libhdf5-dev"),
            "{text}"
        );
    }

    #[cfg(feature = "nwb")]
    #[test]
    fn object_ids_are_uuid4() {
        let a = h5::uuid4();
        assert_ne!(a, h5::uuid4());
        let parts: Vec<&str> = a.split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12], "{a}");
        assert!(parts[2].starts_with('4'), "version 4: {a}");
        assert!(
            matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
            "variant: {a}"
        );
    }
}
