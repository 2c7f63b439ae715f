//! The NWB file's layout, written from [`SessionContents`] (see the module docs of
//! [`super`] for what goes where).

use std::path::{Path, PathBuf};

use hdf5_metno::{Group, H5Type};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView3, s};
use serde_json::Value;

use super::NWB_VERSION;
use super::h5::{self, CORE, Column, HDMF, Result};
use super::session::{MaskPixel, RoiSource, SessionContents, Traces};
use crate::backbone::session_log::SessionDir;
use crate::sim::twin_embeddings::TwinEmbeddings;
use crate::vocab::protocol::Stream;
use crate::vocab::records::{self, RecordKind};

const PLANE: &str = "/general/optophysiology/ImagingPlane";
const SEGMENTATION: &str = "/processing/ophys/ImageSegmentation/PlaneSegmentation";

/// NWB's `pixel_mask` element.
#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct PixelMask {
    x: u32,
    y: u32,
    weight: f32,
}

/// What was written, for the command's report.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub rois: usize,
    pub frames: usize,
    pub movie_frames: usize,
    pub trials: usize,
    pub inception_images: usize,
}

/// Writes the whole file at `out` (created; truncated if it exists).
pub fn write(
    c: &SessionContents,
    session_dir: &Path,
    out: &Path,
    twin: Option<&(PathBuf, TwinEmbeddings)>,
) -> Result<Written> {
    let file = hdf5_metno::File::create(out)?;
    let root: &Group = &file;
    let mut written = Written::default();
    h5::typed(root, "NWBFile", CORE)?;
    h5::attr_text(root, "nwb_version", NWB_VERSION)?;

    let m = &c.data.manifest;
    let start = iso_utc(&m.created_utc);
    let dir_name = session_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    h5::text_array(root, "file_create_date", &[now_utc()])?;
    h5::text_scalar(root, "identifier", &h5::uuid4())?;
    h5::text_scalar(
        root,
        "session_description",
        &format!(
            "twinloop closed-loop session {dir_name}: source {:?}, extraction {:?}, {:?} \
             stimulus selection",
            c.config.source.kind, c.config.imaging.extraction, c.config.trials.policy
        ),
    )?;
    h5::text_scalar(root, "session_start_time", &start)?;
    h5::text_scalar(root, "timestamps_reference_time", &start)?;

    let acquisition = h5::group(root, "acquisition", None)?;
    let analysis = h5::group(root, "analysis", None)?;
    let processing = h5::group(root, "processing", None)?;
    let stimulus = h5::group(root, "stimulus", None)?;
    h5::group(&stimulus, "presentation", None)?;
    let templates = h5::group(&stimulus, "templates", None)?;

    let general = h5::group(root, "general", None)?;
    h5::text_scalar(&general, "session_id", &dir_name)?;
    h5::text_scalar(
        &general,
        "experiment_description",
        "Closed-loop two-photon imaging of mouse visual cortex: a digital twin learns each \
         cell's response online and chooses the next stimulus (twinloop).",
    )?;
    let manifest_json = serde_json::to_string_pretty(m)
        .map_err(|e| h5::other(format!("the manifest cannot be encoded as JSON: {e}")))?;
    h5::text_scalar(&general, "data_collection", &manifest_json)?;
    if !m.notes.is_empty() {
        h5::text_scalar(&general, "notes", &m.notes)?;
    }
    let script = h5::text_scalar(&general, "source_script", &m.command_line.join(" "))?;
    h5::attr_text(
        &script,
        "file_name",
        &format!("twinloop {}", m.twinloop_version),
    )?;

    h5::text_array(
        &general,
        "keywords",
        &[
            "two-photon imaging",
            "closed loop",
            "digital twin",
            "mouse visual cortex",
        ],
    )?;
    subject(&general, c)?;
    let devices = h5::group(&general, "devices", None)?;
    let microscope = h5::group(&devices, "Microscope", Some(("Device", CORE)))?;
    h5::attr_text(
        &microscope,
        "description",
        &format!("two-photon microscope ({:?} source)", c.config.source.kind),
    )?;
    h5::attr_text(&microscope, "manufacturer", "unknown")?;
    imaging_plane(&general, c)?;

    if let Some(movie) = &c.movie {
        written.movie_frames = two_photon_series(&acquisition, movie, session_dir)?;
    }
    let cells = c.cells();
    if let Some(rois) = &c.rois {
        let ophys = h5::group(&processing, "ophys", Some(("ProcessingModule", CORE)))?;
        h5::attr_text(
            &ophys,
            "description",
            "optical physiology processed by twinloop",
        )?;
        plane_segmentation(&ophys, rois.source, &rois.masks)?;
        written.rois = rois.masks.len();
        let source = match rois.source {
            RoiSource::Pipeline => "cells detected by twinloop's imaging pipeline",
            RoiSource::TruthFootprints => {
                "PLACEHOLDER extraction: the simulator's true cell footprints"
            }
            RoiSource::Grid => "PLACEHOLDER extraction: square blocks tiling the frame",
        };
        if rois.source == RoiSource::Pipeline {
            let fl = h5::group(&ophys, "Fluorescence", Some(("Fluorescence", CORE)))?;
            roi_series(
                &fl,
                "RoiResponseSeries",
                &c.f,
                cells,
                "fluorescence F: weighted mean over each cell's mask of the registered frame",
                "a.u.",
            )?;
            roi_series(
                &fl,
                "Neuropil",
                &c.fneu,
                cells,
                "neuropil fluorescence Fneu: mean over each cell's neuropil annulus",
                "a.u.",
            )?;
            let df = h5::group(&ophys, "DfOverF", Some(("DfOverF", CORE)))?;
            roi_series(
                &df,
                "RoiResponseSeries",
                &c.dff,
                cells,
                "dF/F of F - c*Fneu against its causal running baseline",
                "n.a.",
            )?;
            let dec = h5::group(&ophys, "Deconvolved", Some(("Fluorescence", CORE)))?;
            roi_series(
                &dec,
                "RoiResponseSeries",
                &c.activity,
                cells,
                "deconvolved activity: online OASIS AR(1) spike estimate per frame, as the \
                 closed loop used it",
                "a.u.",
            )?;
        } else {
            let fl = h5::group(&ophys, "Fluorescence", Some(("Fluorescence", CORE)))?;
            roi_series(
                &fl,
                "RoiResponseSeries",
                &c.activity,
                cells,
                &format!("weighted mean of the raw frame over each ROI ({source})"),
                "a.u.",
            )?;
        }
        written.frames = c.activity.frames();
    }
    behaviour(&processing, c)?;
    written.trials = intervals(root, c)?;
    written.inception_images = super::inception::write(&templates, &analysis, c)?;
    if let Some((weights, e)) = twin {
        // The units are the ROIs when there are as many (a twin of this session's cells).
        let rois = c.rois.as_ref().map(|r| r.masks.len());
        let segmentation = (rois == Some(e.rows.len())).then_some(SEGMENTATION);
        super::embeddings::write(&analysis, e, weights, segmentation)?;
    }
    file.close()?;
    Ok(written)
}

/// The mouse: only that it is one (twinloop's config does not describe the animal).
fn subject(general: &Group, c: &SessionContents) -> Result<()> {
    let g = h5::group(general, "subject", Some(("Subject", CORE)))?;
    let (id, description) = if c.config.source.kind == crate::config::SourceKind::Twin {
        // Simulated, and by which twin: the manifest's identity (weights file and hashes).
        let twin = c.data.manifest.twin.as_ref();
        let field = |k: &str| {
            twin.and_then(|t| t.get(k)).map_or_else(
                || "unknown".to_string(),
                |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        };
        (
            "twin",
            format!(
                "simulated: a fitted digital twin in the mouse's place (source.kind = \"twin\"; \
                 weights {}, weights_sha256 {}, core_sha256 {}, {} units); age nominal",
                field("weights"),
                field("weights_sha256"),
                field("core_sha256"),
                field("units")
            ),
        )
    } else if c.config.source.kind.in_process() {
        (
            "sim",
            "twinloop's simulated V1-like mouse; age nominal".to_string(),
        )
    } else {
        (
            "unknown",
            "not recorded by twinloop (PLACEHOLDER: age and sex are nominal)".to_string(),
        )
    };
    h5::text_scalar(&g, "subject_id", id)?;
    h5::text_scalar(&g, "description", &description)?;
    // nwbinspector holds an age critical; twinloop does not know it, so a nominal adult range.
    h5::text_scalar(&g, "age", "P60D/P120D")?;
    h5::text_scalar(&g, "species", "Mus musculus")?;
    h5::text_scalar(&g, "sex", "U")?;
    Ok(())
}

fn imaging_plane(general: &Group, c: &SessionContents) -> Result<()> {
    let ophys = h5::group(general, "optophysiology", None)?;
    let plane = h5::group(&ophys, "ImagingPlane", Some(("ImagingPlane", CORE)))?;
    let im = &c.config.imaging;
    h5::text_scalar(
        &plane,
        "description",
        &format!(
            "plane 0 of {}, {}x{} px; indicator, wavelengths and location are nominal \
             (twinloop's config does not record them)",
            im.planes, im.width, im.height
        ),
    )?;
    h5::scalar(&plane, "excitation_lambda", 920.0f32)?;
    h5::scalar(
        &plane,
        "imaging_rate",
        (im.frame_rate_hz / f64::from(im.planes.max(1))) as f32,
    )?;
    h5::text_scalar(&plane, "indicator", "GCaMP (nominal)")?;
    // Allen CCF's term, as nwbinspector asks.
    h5::text_scalar(&plane, "location", "VISp")?;
    let ch = h5::group(&plane, "OpticalChannel", Some(("OpticalChannel", CORE)))?;
    h5::text_scalar(&ch, "description", "channel 0 (green)")?;
    h5::scalar(&ch, "emission_lambda", 510.0f32)?;
    plane.link_soft("/general/devices/Microscope", "device")?;
    Ok(())
}

/// `data` attributes of every TimeSeries.
fn data_attrs(ds: &hdf5_metno::Dataset, unit: &str) -> Result<()> {
    h5::attr(ds, "conversion", 1.0f32)?;
    h5::attr(ds, "offset", 0.0f32)?;
    h5::attr(ds, "resolution", -1.0f32)?;
    h5::attr_text(ds, "unit", unit)
}

/// A TimeSeries group's common parts: description, comments and timestamps (rig clock, s).
fn series_group(
    parent: &Group,
    name: &str,
    ty: &str,
    description: &str,
    t_ns: &[i64],
) -> Result<Group> {
    let g = h5::group(parent, name, Some((ty, CORE)))?;
    h5::attr_text(&g, "description", description)?;
    h5::attr_text(&g, "comments", "timestamps are rig-clock seconds")?;
    let t: Vec<f64> = t_ns.iter().map(|&t| t as f64 * 1e-9).collect();
    let ts = h5::array(&g, "timestamps", ArrayView1::from(t.as_slice()))?;
    h5::attr(&ts, "interval", 1i32)?;
    h5::attr_text(&ts, "unit", "seconds")?;
    Ok(g)
}

fn two_photon_series(
    acquisition: &Group,
    movie: &super::session::Movie,
    session_dir: &Path,
) -> Result<usize> {
    let g = series_group(
        acquisition,
        "TwoPhotonSeries",
        "TwoPhotonSeries",
        "raw two-photon frames of plane 0, channel 0, as received (rows x columns)",
        &movie.t_ns,
    )?;
    let (h, w) = (movie.height as usize, movie.width as usize);
    let n = movie.t_ns.len();
    let data = g
        .new_dataset::<u16>()
        .shape([n, h, w])
        .chunk([1, h, w])
        .create("data")?;
    data_attrs(&data, "a.u.")?;
    h5::array(
        &g,
        "dimension",
        ArrayView1::from(&[movie.height as i32, movie.width as i32][..]),
    )?;
    h5::text_scalar(&g, "format", "raw")?;
    g.link_soft(PLANE, "imaging_plane")?;
    g.link_soft("/general/devices/Microscope", "device")?;

    // Second pass over the log for the pixels, one frame at a time.
    let dir = SessionDir::open(session_dir).map_err(h5::other)?;
    let mut reader = dir.open_log().map_err(h5::other)?;
    let mut buf = Vec::new();
    let mut pixels = vec![0u16; h * w];
    let mut i = 0usize;
    while i < n {
        let Some(info) = reader.next_into(&mut buf).map_err(h5::other)? else {
            break;
        };
        if RecordKind::from_code(info.kind) != Some(RecordKind::Input) {
            continue;
        }
        let Ok(input) = records::decode_input(&buf) else {
            continue;
        };
        let hd = &input.header;
        let Some(payload) = input.payload else {
            continue;
        };
        if hd.stream != Stream::TwoPhoton
            || hd.plane != 0
            || hd.channel != 0
            || (hd.shape[0] as usize, hd.shape[1] as usize) != (h, w)
        {
            continue;
        }
        match hd.dtype {
            crate::vocab::protocol::Dtype::U16 => {
                for (p, b) in pixels.iter_mut().zip(payload.chunks_exact(2)) {
                    *p = u16::from_le_bytes([b[0], b[1]]);
                }
            }
            _ => {
                for (p, b) in pixels.iter_mut().zip(payload) {
                    *p = u16::from(*b);
                }
            }
        }
        let frame = ArrayView3::from_shape((1, h, w), &pixels).map_err(h5::other)?;
        data.write_slice(frame, s![i..i + 1, .., ..])?;
        i += 1;
    }
    Ok(i)
}

fn plane_segmentation(ophys: &Group, source: RoiSource, masks: &[Vec<MaskPixel>]) -> Result<()> {
    let seg = h5::group(
        ophys,
        "ImageSegmentation",
        Some(("ImageSegmentation", CORE)),
    )?;
    let ps = h5::group(&seg, "PlaneSegmentation", Some(("PlaneSegmentation", CORE)))?;
    let what = match source {
        RoiSource::Pipeline => "cells detected by twinloop's imaging pipeline (suite2p's method)",
        RoiSource::TruthFootprints => "PLACEHOLDER: the simulator's true footprints",
        RoiSource::Grid => "PLACEHOLDER: square blocks tiling the frame",
    };
    h5::dynamic_table(
        &ps,
        &format!(
            "{what}; pixel_mask x is the column and y the row (px from the top left) of the \
             imaging frame, weights sum to 1 per ROI"
        ),
        masks.len(),
        &[],
        &["pixel_mask"],
    )?;
    let flat: Vec<PixelMask> = masks
        .iter()
        .flatten()
        .map(|p| PixelMask {
            x: p.x,
            y: p.y,
            weight: p.weight,
        })
        .collect();
    let ends: Vec<u64> = masks
        .iter()
        .scan(0u64, |acc, m| {
            *acc += m.len() as u64;
            Some(*acc)
        })
        .collect();
    let pm = h5::array(&ps, "pixel_mask", ArrayView1::from(flat.as_slice()))?;
    h5::vector_data(&pm, "weighted pixels of each ROI: (x, y, weight)")?;
    let idx = h5::array(&ps, "pixel_mask_index", ArrayView1::from(ends.as_slice()))?;
    h5::typed(&idx, "VectorIndex", HDMF)?;
    h5::attr_text(&idx, "description", "index into pixel_mask")?;
    h5::attr_ref(&idx, "target", &format!("{SEGMENTATION}/pixel_mask"))?;
    // Required by the schema even when empty (pynwb's validator says so).
    h5::group(&ps, "reference_images", None)?;
    ps.link_soft(PLANE, "imaging_plane")?;
    Ok(())
}

/// A RoiResponseSeries of `traces` (frames x cells) over every ROI.
fn roi_series(
    parent: &Group,
    name: &str,
    traces: &Traces,
    cells: usize,
    description: &str,
    unit: &str,
) -> Result<()> {
    let g = series_group(parent, name, "RoiResponseSeries", description, &traces.t_ns)?;
    let frames = traces.frames();
    let data: ArrayView2<f32> =
        ArrayView2::from_shape((frames, traces.cells), &traces.values).map_err(h5::other)?;
    let ds = if traces.cells == cells {
        h5::array(&g, "data", data)?
    } else {
        // No frames (a session cut short before any): an empty frames x cells array.
        h5::array(&g, "data", Array2::<f32>::zeros((0, cells)).view())?
    };
    data_attrs(&ds, unit)?;
    let ids: Vec<i64> = (0..cells as i64).collect();
    let rois = h5::array(&g, "rois", ArrayView1::from(ids.as_slice()))?;
    h5::typed(&rois, "DynamicTableRegion", HDMF)?;
    h5::attr_text(
        &rois,
        "description",
        "every ROI of the plane segmentation, in order",
    )?;
    h5::attr_ref(&rois, "table", SEGMENTATION)?;
    Ok(())
}

fn behaviour(processing: &Group, c: &SessionContents) -> Result<()> {
    let behaviour = c.data.log.as_ref().map(|l| &l.behaviour[..]).unwrap_or(&[]);
    if c.pupil.is_empty() && behaviour.is_empty() {
        return Ok(());
    }
    let module = h5::group(processing, "behavior", Some(("ProcessingModule", CORE)))?;
    h5::attr_text(
        &module,
        "description",
        "pupil and running, as the daemon tracked them",
    )?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    if !c.pupil.is_empty() {
        let tracking = h5::group(&module, "PupilTracking", Some(("PupilTracking", CORE)))?;
        let t: Vec<i64> = c.pupil.iter().map(|p| p.t_ns).collect();
        let radius: Vec<f64> = c.pupil.iter().map(|p| nan(p.radius_px)).collect();
        let g = series_group(
            &tracking,
            "pupil_radius",
            "TimeSeries",
            "pupil radius per eye-camera frame (NaN where the pupil was not found)",
            &t,
        )?;
        data_attrs(
            &h5::array(&g, "data", ArrayView1::from(radius.as_slice()))?,
            "pixels",
        )?;
        let centre: Vec<f64> = c
            .pupil
            .iter()
            .flat_map(|p| [nan(p.centre_x_px), nan(p.centre_y_px)])
            .collect();
        let g = series_group(
            &tracking,
            "pupil_centre",
            "TimeSeries",
            "pupil centre (x = column, y = row) per eye-camera frame, eye-camera px (NaN \
             where the pupil was not found)",
            &t,
        )?;
        let data = ArrayView2::from_shape((c.pupil.len(), 2), &centre).map_err(h5::other)?;
        data_attrs(&h5::array(&g, "data", data)?, "pixels")?;
    }
    if !behaviour.is_empty() {
        let t: Vec<i64> = behaviour.iter().map(|b| b.t_ns).collect();
        let v: Vec<f64> = behaviour.iter().map(|b| nan(b.treadmill_cm_s)).collect();
        let g = series_group(
            &module,
            "treadmill_velocity",
            "TimeSeries",
            "treadmill speed resampled onto each imaging frame (NaN where no sample was near)",
            &t,
        )?;
        data_attrs(
            &h5::array(&g, "data", ArrayView1::from(v.as_slice()))?,
            "cm/s",
        )?;
    }
    Ok(())
}

/// The trials table and the stimulus presentations; returns the number of trials.
fn intervals(root: &Group, c: &SessionContents) -> Result<usize> {
    let Some(log) = &c.data.log else {
        return Ok(0);
    };
    if log.stimuli.is_empty() {
        return Ok(0);
    }
    let stimulus_ns = (c.config.trials.stimulus_s * 1e9).round() as i64;
    let mut stimuli = log.stimuli.clone();
    stimuli.sort_by_key(|s| s.onset_t_ns);
    let start: Vec<f64> = stimuli.iter().map(|s| s.onset_t_ns as f64 * 1e-9).collect();
    let stop: Vec<f64> = stimuli
        .iter()
        .map(|s| {
            let end = c
                .trial_ends_ns
                .get(&s.trial)
                .copied()
                .unwrap_or(s.onset_t_ns + stimulus_ns);
            end as f64 * 1e-9
        })
        .collect();
    let trial: Vec<i64> = stimuli.iter().map(|s| s.trial as i64).collect();
    let stim_id: Vec<i64> = stimuli
        .iter()
        .map(|s| s.stimulus.map_or(-1, |id| id as i64))
        .collect();
    let names: Vec<String> = stimuli.iter().map(|s| s.name.clone()).collect();
    let decision = |trial: u64| log.decisions.iter().find(|d| d.trial == trial);
    let mode: Vec<String> = stimuli
        .iter()
        .map(|s| decision(s.trial).map_or_else(|| "unknown".to_string(), |d| d.mode.clone()))
        .collect();
    let score: Vec<f64> = stimuli
        .iter()
        .map(|s| decision(s.trial).and_then(|d| d.score).unwrap_or(f64::NAN))
        .collect();
    let specs: Vec<String> = stimuli
        .iter()
        .map(|s| {
            s.spec
                .as_ref()
                .map_or_else(|| "null".to_string(), Value::to_string)
        })
        .collect();

    let intervals = h5::group(root, "intervals", None)?;
    let trials = h5::group(&intervals, "trials", Some(("TimeIntervals", CORE)))?;
    h5::dynamic_table(
        &trials,
        "one trial per stimulus shown: from its first flip to the first flip after it (rig \
         clock, s), with the selector's decision",
        stimuli.len(),
        &[
            (
                "start_time",
                "stimulus onset (first flip), s",
                Column::F64(&start),
            ),
            (
                "stop_time",
                "end of the stimulus on screen, s",
                Column::F64(&stop),
            ),
            ("trial", "trial index in the session", Column::I64(&trial)),
            (
                "stimulus_id",
                "index of the stimulus in the session's candidate pool (-1: none)",
                Column::I64(&stim_id),
            ),
            ("stimulus_name", "the stimulus' name", Column::Text(&names)),
            (
                "mode",
                "how the selector chose it: random, warmup, test, adaptive, fallback or late",
                Column::Text(&mode),
            ),
            (
                "score",
                "the selector's score of the chosen stimulus (NaN: not scored)",
                Column::F64(&score),
            ),
        ],
        &[],
    )?;
    let pres = h5::group(
        &intervals,
        "stimulus_presentations",
        Some(("TimeIntervals", CORE)),
    )?;
    h5::dynamic_table(
        &pres,
        "every stimulus presentation with its full spec (twinloop_stimulus JSON)",
        stimuli.len(),
        &[
            (
                "start_time",
                "first flip showing the stimulus, s",
                Column::F64(&start),
            ),
            ("stop_time", "first flip after it, s", Column::F64(&stop)),
            ("trial", "trial index in the session", Column::I64(&trial)),
            (
                "stimulus_id",
                "index in the candidate pool (-1: none)",
                Column::I64(&stim_id),
            ),
            ("stimulus_name", "the stimulus' name", Column::Text(&names)),
            (
                "spec",
                "the stimulus spec as JSON text",
                Column::Text(&specs),
            ),
        ],
        &[],
    )?;
    Ok(stimuli.len())
}

/// The manifest's `2026-11-28T21:40:03.123Z` as ISO 8601 with an explicit offset.
fn iso_utc(created_utc: &str) -> String {
    match created_utc.strip_suffix('Z') {
        Some(t) => format!("{t}+00:00"),
        None => created_utc.to_string(),
    }
}

fn now_utc() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    iso_utc(&crate::backbone::session_log::rfc3339_utc(ms))
}
