//! What an NWB file is made of, read from a session directory: the report's reader
//! ([`SessionData`]) for the manifest, trials, decisions and behaviour, then one more pass over
//! the record log for what the report does not keep frame by frame (traces, pupil, flips, the
//! two-photon frames' times).
//!
//! Every time is the rig clock. The traces' records carry it already; a recorded frame's
//! `Input` record keeps its time as received, which for a stream on a device clock
//! (`[clocks] two_photon = "device"`) is the device's: it is mapped with the logged `Clock`
//! record of the generation the frame was mapped with live, the line that gave the frame's
//! traces their times, so the raw frames and the ROI series share timestamps.
//!
//! Read leniently, like the report: a killed session gives what it recorded, each gap named in
//! [`SessionContents::warnings`]. Only a directory that is not a session, or a manifest whose
//! config this version cannot read, is an error.

use std::collections::BTreeMap;
use std::path::Path;

use super::ExportError;
use crate::backbone::frames::FrameMeta;
use crate::backbone::session_log::{MANIFEST_FILE, SessionDir};
use crate::config::{Config, Extraction};
use crate::offline::report::SessionData;
use crate::stages::behaviour::PupilRecord;
use crate::stages::clocks::{ClockUpdate, Mapping};
use crate::stages::extract::Footprints;
use crate::vocab::protocol::{ClockDomain, Stream};
use crate::vocab::records::{self, RecordKind};
use twinloop_calibration::imaging::cells::CellMasks;

/// Where the pipeline saves plane 0's reference and masks, inside the session directory.
pub const CALIBRATION_DIR: &str = "calibration/plane0";

/// Warnings about undecodable records named one by one; the rest are counted.
const MAX_NAMED: usize = 5;

/// One pixel of a cell's mask, NWB's `pixel_mask` element: column, row, weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskPixel {
    /// Column, px from the left.
    pub x: u32,
    /// Row, px from the top.
    pub y: u32,
    pub weight: f32,
}

/// Where the regions of interest came from (what the traces are means over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoiSource {
    /// Cells detected by the imaging pipeline (`calibration/plane0/`).
    Pipeline,
    /// PLACEHOLDER extraction: the simulator's true footprints (`truth/cells.json`).
    TruthFootprints,
    /// PLACEHOLDER extraction: square blocks tiling the frame.
    Grid,
}

/// The regions of interest of plane 0, in trace-column order.
#[derive(Debug, Clone)]
pub struct Rois {
    pub source: RoiSource,
    pub masks: Vec<Vec<MaskPixel>>,
}

/// Per-frame values of every cell: `values[frame * cells + cell]`.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    /// Rig time of each frame, ns.
    pub t_ns: Vec<i64>,
    /// Each frame's sequence number (per plane; a jump is a lost or skipped frame).
    pub seq: Vec<u64>,
    pub cells: usize,
    pub values: Vec<f32>,
}

impl Traces {
    fn new(cells: usize) -> Traces {
        Traces {
            cells,
            ..Traces::default()
        }
    }

    pub fn frames(&self) -> usize {
        self.t_ns.len()
    }

    /// Appends one frame; a row of another width is cut or padded with NaN (and `false` is
    /// returned so the caller can say so).
    fn push(&mut self, seq: u64, t_ns: i64, row: &[f32]) -> bool {
        self.t_ns.push(t_ns);
        self.seq.push(seq);
        let n = row.len().min(self.cells);
        self.values.extend_from_slice(&row[..n]);
        self.values
            .extend(std::iter::repeat_n(f32::NAN, self.cells - n));
        row.len() == self.cells
    }
}

/// The two-photon frames whose pixels the log holds (plane 0, channel 0).
#[derive(Debug, Clone, Default)]
pub struct Movie {
    pub height: u32,
    pub width: u32,
    /// Rig time of each recorded frame, ns, in log order.
    pub t_ns: Vec<i64>,
}

/// Everything the NWB file holds except the frames' pixels (streamed from the log when written).
#[derive(Debug)]
pub struct SessionContents {
    pub data: SessionData,
    pub config: Config,
    pub rois: Option<Rois>,
    /// What the daemon's `Activity` records hold for plane 0: deconvolved activity with the
    /// pipeline, footprint means otherwise.
    pub activity: Traces,
    /// F, Fneu and dF/F (`Fluorescence` records; pipeline sessions only).
    pub f: Traces,
    pub fneu: Traces,
    pub dff: Traces,
    pub pupil: Vec<PupilRecord>,
    /// Rig time each trial left the screen (its last flip's successor), ns, by trial index.
    pub trial_ends_ns: BTreeMap<u64, i64>,
    /// Every display flip, in log order (what was on screen when).
    pub flips: Vec<records::FlipRecord>,
    /// Rig time of one display frame, ns (from the config).
    pub display_frame_ns: i64,
    pub movie: Option<Movie>,
    /// What is missing or odd, for the log and the report of the export.
    pub warnings: Vec<String>,
}

impl SessionContents {
    /// Reads the session in `path`.
    pub fn load(path: &Path) -> Result<SessionContents, ExportError> {
        let data = SessionData::load_without_responses(path).map_err(ExportError::Session)?;
        let config: Config = serde_json::from_value(data.manifest.config.clone()).map_err(|e| {
            ExportError::Config {
                path: data.dir.join(MANIFEST_FILE),
                reason: format!(
                    "{e}; the session was recorded by twinloop {}, this is {}: export it with \
                     the version that recorded it",
                    data.manifest.twinloop_version,
                    env!("CARGO_PKG_VERSION")
                ),
            }
        })?;
        let dir = SessionDir::open(path).map_err(|e| ExportError::Config {
            path: path.join(MANIFEST_FILE),
            reason: e.to_string(),
        })?;
        let mut warnings = Vec::new();
        if let Some(problem) = &data.summary_problem {
            warnings.push(problem.clone());
        }
        if let Some(problem) = &data.log_problem {
            warnings.push(problem.clone());
        }
        if let Some(log) = &data.log
            && log.cut_short()
            && let Some(tail) = &log.tail
        {
            warnings.push(format!(
                "the record log {} was cut short ({tail}): exporting the records before it",
                log.path.display()
            ));
        }
        let rois = read_rois(&dir, &config, &mut warnings);
        let display_frame_ns = (1e9 / config.display.refresh_hz).round() as i64;
        let mut contents = SessionContents {
            data,
            config,
            rois,
            activity: Traces::default(),
            f: Traces::default(),
            fneu: Traces::default(),
            dff: Traces::default(),
            pupil: Vec::new(),
            trial_ends_ns: BTreeMap::new(),
            flips: Vec::new(),
            display_frame_ns,
            movie: None,
            warnings,
        };
        if contents.data.log.is_some() {
            contents.read_frames(&dir)?;
        }
        Ok(contents)
    }

    /// Cells per frame: the ROIs when there are masks, else the widest activity row.
    pub fn cells(&self) -> usize {
        self.rois
            .as_ref()
            .map_or(self.activity.cells, |r| r.masks.len())
    }

    /// The pass over the log for per-frame data.
    fn read_frames(&mut self, dir: &SessionDir) -> Result<(), ExportError> {
        let log_err = |source| ExportError::Log {
            path: dir.records_log_path(),
            source,
        };
        let cells = self.rois.as_ref().map(|r| r.masks.len());
        let mut activity: Option<Traces> = cells.map(Traces::new);
        let mut fluorescence: Option<[Traces; 3]> = None;
        let mut movie: Option<Movie> = None;
        // Each recorded frame's clock generation, and each generation's line (two-photon).
        let mut movie_gens: Vec<u32> = Vec::new();
        let mut lines: BTreeMap<u32, Mapping> = BTreeMap::new();
        let mut ragged = 0u64;
        let mut other_planes = 0u64;
        let mut undecodable = 0u64;
        // Flips: a trial ends at the first flip that no longer shows it.
        let mut showing: Option<u64> = None;
        let mut last_flip_ns = None;

        let mut reader = dir.open_log().map_err(log_err)?;
        let mut buf = Vec::new();
        while let Some(info) = reader.next_into(&mut buf).map_err(log_err)? {
            let mut bad = |what: &str, e: &dyn std::fmt::Display| {
                undecodable += 1;
                if undecodable as usize <= MAX_NAMED {
                    self.warnings
                        .push(format!("{what} record {} not decoded: {e}", info.index));
                }
            };
            match RecordKind::from_code(info.kind) {
                Some(RecordKind::Activity) => match records::decode_activity(&buf) {
                    Ok(a) if a.plane == 0 => {
                        let traces = activity.get_or_insert_with(|| Traces::new(a.values.len()));
                        if !traces.push(a.frame_seq, a.t.as_nanos(), &a.values) {
                            ragged += 1;
                        }
                    }
                    Ok(_) => other_planes += 1,
                    Err(e) => bad("activity", &e),
                },
                Some(RecordKind::Fluorescence) => match records::decode_fluorescence(&buf) {
                    Ok(r) if r.plane == 0 => {
                        let n = cells.unwrap_or(r.f.len());
                        let [f, fneu, dff] = fluorescence.get_or_insert_with(|| {
                            [Traces::new(n), Traces::new(n), Traces::new(n)]
                        });
                        let (s, t) = (r.frame_seq, r.t.as_nanos());
                        let whole =
                            f.push(s, t, &r.f) & fneu.push(s, t, &r.fneu) & dff.push(s, t, &r.dff);
                        if !whole {
                            ragged += 1;
                        }
                    }
                    Ok(_) => other_planes += 1,
                    Err(e) => bad("fluorescence", &e),
                },
                Some(RecordKind::Pupil) => match records::decode_json::<PupilRecord>("pupil", &buf)
                {
                    Ok(p) => self.pupil.push(p),
                    Err(e) => bad("pupil", &e),
                },
                Some(RecordKind::Flip) => match records::FlipRecord::decode(&buf) {
                    Ok(flip) => {
                        let t = flip.t.as_nanos();
                        let now = u64::try_from(flip.trial).ok();
                        if let Some(trial) = showing
                            && now != Some(trial)
                        {
                            self.trial_ends_ns.insert(trial, t);
                        }
                        showing = now;
                        last_flip_ns = Some(t);
                        self.flips.push(flip);
                    }
                    Err(e) => bad("flip", &e),
                },
                Some(RecordKind::Input) => match records::decode_input(&buf) {
                    Ok(input) if input.header.stream == Stream::TwoPhoton => {
                        let meta = FrameMeta::from_header(&input.header, input.recv_ns);
                        if input.payload.is_some() && meta.plane == 0 && meta.channel == 0 {
                            let m = movie.get_or_insert_with(|| Movie {
                                height: meta.height,
                                width: meta.width,
                                t_ns: Vec::new(),
                            });
                            if (m.height, m.width) == (meta.height, meta.width) {
                                m.t_ns.push(meta.t.as_nanos());
                                movie_gens.push(input.clock_gen);
                            } else {
                                bad("input", &"a two-photon frame of another size");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => bad("input", &e),
                },
                Some(RecordKind::Clock) => {
                    match records::decode_json::<ClockUpdate>("clock", &buf) {
                        Ok(u) if u.domain == ClockDomain::TwoPhoton => {
                            lines.insert(u.generation, u.mapping);
                        }
                        Ok(_) => {}
                        Err(e) => bad("clock", &e),
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = &mut movie
            && self.config.clocks.domain_of(Stream::TwoPhoton).is_some()
        {
            let unmapped = to_rig_clock(&mut m.t_ns, &movie_gens, &lines);
            if unmapped > 0 {
                self.warnings.push(format!(
                    "{unmapped} recorded frames were mapped live with a two-photon clock fit \
                     whose Clock record is missing; their TwoPhotonSeries times use the \
                     newest earlier fit (none: the device clock)"
                ));
            }
        }
        // The trial still on screen when the log ended: up to the end of its last flip.
        if let (Some(trial), Some(t)) = (showing, last_flip_ns) {
            self.trial_ends_ns.insert(trial, t + self.display_frame_ns);
        }
        if undecodable as usize > MAX_NAMED {
            self.warnings.push(format!(
                "{} more records not decoded",
                undecodable as usize - MAX_NAMED
            ));
        }
        if ragged > 0 {
            self.warnings.push(format!(
                "{ragged} frames had traces of another width than the {} cells; cut or padded \
                 with NaN",
                self.cells()
            ));
        }
        if other_planes > 0 {
            self.warnings.push(format!(
                "{other_planes} activity records of planes other than 0 are not exported \
                 (the daemon processes plane 0 online)"
            ));
        }
        self.activity = activity.unwrap_or_default();
        if let Some([f, fneu, dff]) = fluorescence {
            (self.f, self.fneu, self.dff) = (f, fneu, dff);
        }
        self.rois_from_log();
        if self.config.session.record_frames && movie.is_none() {
            self.warnings
                .push("session.record_frames is set but the log holds no frame pixels".into());
        }
        self.movie = movie;
        Ok(())
    }
}

/// Maps device times `t_ns` (in place) to the rig clock with the line of each one's generation
/// (0: mapped with none live, so left as received). A generation without its line (a cut log)
/// takes the newest earlier one's; returns how many did.
fn to_rig_clock(t_ns: &mut [i64], gens: &[u32], lines: &BTreeMap<u32, Mapping>) -> usize {
    let mut stand_ins = 0;
    for (t, &g) in t_ns.iter_mut().zip(gens) {
        if g == 0 {
            continue;
        }
        let line = match lines.get(&g) {
            Some(line) => Some(line),
            None => {
                stand_ins += 1;
                lines.range(..g).next_back().map(|(_, line)| line)
            }
        };
        if let Some(line) = line {
            *t = line.to_rig_ns(*t);
        }
    }
    stand_ins
}

impl SessionContents {
    /// Without masks (`calibration/` or the truth lost) the log still holds every frame's
    /// traces: export them over ROIs whose masks are unknown (empty), and say so, rather than
    /// drop the traces.
    fn rois_from_log(&mut self) {
        if self.rois.is_some() || self.activity.cells == 0 {
            return;
        }
        let source = match self.config.imaging.extraction {
            Extraction::Pipeline => RoiSource::Pipeline,
            Extraction::Grid => RoiSource::Grid,
            Extraction::TruthFootprints => RoiSource::TruthFootprints,
        };
        self.warnings.push(format!(
            "the cells' masks are missing, so their pixel masks are exported empty; the traces \
             of the {} cells over {} frames are read from the log's activity and fluorescence \
             records",
            self.activity.cells,
            self.activity.frames()
        ));
        tracing::warn!(
            cells = self.activity.cells,
            "exporting traces from the log without cell masks"
        );
        self.rois = Some(Rois {
            source,
            masks: vec![Vec::new(); self.activity.cells],
        });
    }
}

/// The ROIs of the extraction the session used; `None` (with a warning) when they cannot be had.
fn read_rois(dir: &SessionDir, config: &Config, warnings: &mut Vec<String>) -> Option<Rois> {
    let (h, w) = (config.imaging.height, config.imaging.width);
    let from_footprints = |source, f: &Footprints| Rois {
        source,
        masks: (0..f.cells())
            .map(|c| {
                let (pixels, weights) = f.cell(c);
                mask(pixels, weights, w)
            })
            .collect(),
    };
    match config.imaging.extraction {
        Extraction::Pipeline => {
            let cal = dir.path().join(CALIBRATION_DIR);
            match CellMasks::load(&cal, h as usize, w as usize) {
                Ok(masks) => Some(Rois {
                    source: RoiSource::Pipeline,
                    masks: (0..masks.len())
                        .map(|c| {
                            let (pixels, weights) = masks.cell(c);
                            mask(pixels, weights, w)
                        })
                        .collect(),
                }),
                Err(e) => {
                    warnings.push(format!(
                        "no cell masks ({e}): the calibration is lost or the session ended \
                         before its calibration block was done; traces come from the log alone"
                    ));
                    None
                }
            }
        }
        Extraction::Grid => Some(from_footprints(
            RoiSource::Grid,
            &Footprints::grid(w, h, config.imaging.grid_block_px),
        )),
        Extraction::TruthFootprints => match crate::offline::replay::truth_cells(dir) {
            Ok(cells) => {
                let masks: Vec<_> = cells.into_iter().map(|c| c.footprint).collect();
                Some(from_footprints(
                    RoiSource::TruthFootprints,
                    &Footprints::from_truth(&masks),
                ))
            }
            Err(e) => {
                warnings.push(format!(
                    "no footprints ({e}): no plane segmentation or traces are exported"
                ));
                None
            }
        },
    }
}

fn mask(pixels: &[u32], weights: &[f32], width: u32) -> Vec<MaskPixel> {
    pixels
        .iter()
        .zip(weights)
        .map(|(&p, &weight)| MaskPixel {
            x: p % width.max(1),
            y: p / width.max(1),
            weight,
        })
        .collect()
}
