//! A fitted twin's per-unit embeddings in the NWB file (issue #21): one `DynamicTable` at
//! `/analysis/twin_embeddings`, a row per twin unit, its `roi` column a `DynamicTableRegion`
//! into the plane segmentation (a unit of a session's twin is the ROI of its column).
//!
//! The twin is the one given to the export (`export nwb --twin-weights --twin-config`, a
//! `twin fit` output) or else the live twin the session saved (`live_twin.safetensors` and
//! `live_twin.json`). It is scored on the session itself, read as `twin recording` reads it at
//! the twin's stimulus size, and the embeddings are computed by the code `twin embeddings`
//! runs (`sim::twin_embeddings`), so the table holds the values of that command's CSV and npy
//! files on the same twin and recording.

use std::path::Path;

use hdf5_metno::Group;
use twinloop_model::embeddings::{REFERENCE_FRAMES, REFERENCE_SCORED, REFERENCE_SEED};

use super::h5::{self, Column, HDMF, Result};
use super::{ExportError, TwinFiles};
use crate::offline::twin_data::session_embeddings;
use crate::sim::twin_embeddings::{CcSource, EmbeddingsError, TwinEmbeddings};

/// The table's name under `/analysis`.
pub const TABLE: &str = "twin_embeddings";
/// The live twin's files in a session directory: the names `online::session::live_twin` writes
/// (the layer rule keeps `offline` from importing `online`; `rig/tests/nwb_embeddings.rs`
/// checks that the two agree).
pub const LIVE_TWIN_WEIGHTS: &str = "live_twin.safetensors";
/// The live twin's architecture (see [`LIVE_TWIN_WEIGHTS`]).
pub const LIVE_TWIN_CONFIG: &str = "live_twin.json";

/// Which twin a session's file describes, and where it came from.
pub struct Chosen {
    pub files: TwinFiles,
    /// Given to the export (its failure is an error) or found in the session (a warning).
    pub given: bool,
}

/// The twin to export: the one given, else the session's live twin when it saved one.
pub fn choose(session_dir: &Path, given: Option<&TwinFiles>) -> Option<Chosen> {
    if let Some(files) = given {
        return Some(Chosen {
            files: files.clone(),
            given: true,
        });
    }
    let files = TwinFiles {
        weights: session_dir.join(LIVE_TWIN_WEIGHTS),
        config: session_dir.join(LIVE_TWIN_CONFIG),
    };
    (files.weights.exists() && files.config.exists()).then_some(Chosen {
        files,
        given: false,
    })
}

/// The twin's embeddings, scored on the session in `session_dir`
/// ([`session_embeddings`], the code a session's end runs).
pub fn compute(
    session_dir: &Path,
    twin: &TwinFiles,
) -> std::result::Result<TwinEmbeddings, ExportError> {
    session_embeddings(session_dir, &twin.weights, &twin.config).map_err(|e| match e {
        EmbeddingsError::Twin { path, reason } => ExportError::Twin { path, reason },
        e => ExportError::Twin {
            path: twin.weights.clone(),
            reason: e.to_string(),
        },
    })
}

/// Writes the table; `segmentation` is the plane segmentation's path when the units are its
/// ROIs (same count). Returns the rows written.
pub fn write(
    analysis: &Group,
    e: &TwinEmbeddings,
    weights: &Path,
    segmentation: Option<&str>,
) -> Result<usize> {
    let rows = e.rows.len();
    let width = e.rows.first().map_or(0, |r| r.features.len());
    let reference_width = e.reference.first().map_or(0, Vec::len);
    let ids: Vec<i64> = e.rows.iter().map(|r| r.cell_id as i64).collect();
    let col = |f: fn(&twinloop_analysis::wiring::Embedding) -> f64| -> Vec<f64> {
        e.rows.iter().map(f).collect()
    };
    let (az, el, cc_abs, cc_max) = (
        col(|r| r.azimuth_deg),
        col(|r| r.elevation_deg),
        col(|r| r.cc_abs),
        col(|r| r.cc_max),
    );
    let features: Vec<f64> = e.rows.iter().flat_map(|r| r.features.clone()).collect();
    let reference: Vec<f32> = e.reference.iter().flatten().copied().collect();
    let text = |f: fn(&twinloop_analysis::wiring::Embedding) -> &String| -> Vec<String> {
        e.rows.iter().map(|r| f(r).clone()).collect()
    };
    let (core, cell_type, area) = (
        text(|r| &r.core_id),
        text(|r| &r.cell_type),
        text(|r| &r.area),
    );
    let cc = match e.cc_source {
        CcSource::Repeats => {
            "the session's repeated trials (CC_abs of the repeat means, CC_max their ceiling)"
        }
        CcSource::Truth => "the simulator's true rates (CC_abs: correlation with them; CC_max = 1)",
    };
    let g = h5::group(analysis, TABLE, Some(("DynamicTable", HDMF)))?;
    let mut columns = vec![(
        "cell_id",
        "the twin's unit id: the column of the session's traces, so the ROI's index",
        Column::I64(&ids),
    )];
    if let Some(table) = segmentation {
        columns.push((
            "roi",
            "the unit's ROI in the plane segmentation",
            Column::Region(&ids, table),
        ));
    }
    columns.extend([
        (
            "core_id",
            "SHA-256 of the twin's core tensors: feature similarity is comparable only within one core",
            Column::Text(&core),
        ),
        (
            "feature_weights",
            "standardised readout feature weights (one per core channel; the mean over streams)",
            Column::F64Rows(&features, width),
        ),
        (
            "azimuth_deg",
            "readout position, azimuth in degrees of the twin's retina (eye-centred)",
            Column::F64(&az),
        ),
        (
            "elevation_deg",
            "readout position, elevation in degrees (up positive)",
            Column::F64(&el),
        ),
        ("cc_abs", "CC_abs of the twin's prediction", Column::F64(&cc_abs)),
        ("cc_max", "CC_max, the ceiling of CC_abs", Column::F64(&cc_max)),
        (
            "reference_responses",
            "the twin's mean rate to each image of the fixed reference set, for signal correlations",
            Column::F32Rows(&reference, reference_width),
        ),
        ("cell_type", "anatomy label (unknown: none given)", Column::Text(&cell_type)),
        ("area", "anatomy label (unknown: none given)", Column::Text(&area)),
    ]);
    h5::dynamic_table(
        &g,
        &format!(
            "per-unit embeddings of the twin {} (core SHA-256 {}), as `twinloop twin \
             embeddings` writes them: CC from {cc}; reference set: {reference_width} images \
             of the in-silico library at seed {REFERENCE_SEED}, each shown {REFERENCE_FRAMES} \
             frames from a reset twin, the last {REFERENCE_SCORED} averaged",
            weights.display(),
            e.core_id
        ),
        rows,
        &columns,
        &[],
    )?;
    Ok(rows)
}
