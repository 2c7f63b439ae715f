//! `twinloop process <movie.tif> --out <dir>`: the imaging pipeline over a ScanImage (Big)TIFF
//! or a plain multi-page TIFF — the same per-plane code the daemon's imaging stage is built on.
//!
//! Output, per plane `plane<p>/` (cells x frames float32 `.npy`, C order, suite2p's names):
//! `F.npy`, `Fneu.npy`, `dff.npy`, `spks.npy`, `shifts.npy` (frames x 2: dy, dx in px),
//! `reference.npy` (height x width float32), the masks (`cells.json`, `cell_pixels.npy`,
//! `cell_weights.npy`, `neuropil_pixels.npy`) and `process.json` (parameters, counts, timings);
//! and suite2p's folder, `suite2p/plane<p>/` (`stat`, `iscell`, `ops`, `F`, `Fneu`, `spks`, in
//! suite2p's units: see [`crate::offline::suite2p`]), which also holds the ROIs the classifier
//! rejected (`iscell` 0), traced like the cells, as suite2p's own folder does.

mod budget;
mod plane_run;

use crate::offline::scanimage::header::{Rate, check_rate, rate_from_timestamps};
use crate::offline::scanimage::{LayoutOverride, StackMeta, TiffSeries};
use crate::stages::imaging::{ImagingParams, PlaneCalibration};
use anyhow::{Context, bail};
use budget::MemoryBudget;
use clap::Args;
use plane_run::{PlaneRun, Provenance};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// A ScanImage (Big)TIFF or plain multi-page TIFF, u16 or i16; or the files of one
    /// multi-file acquisition, in order (`name_00001_*.tif`: the shell sorts them).
    #[arg(required = true)]
    pub movie: Vec<PathBuf>,
    /// Output directory (one `plane<p>` folder per plane, and suite2p's `suite2p/plane<p>`).
    #[arg(long)]
    pub out: PathBuf,
    /// Channels interleaved in the file (default: from ScanImage metadata, else 1).
    #[arg(long)]
    pub channels: Option<u8>,
    /// Pages of one channel per volume: the planes, and a fast stack's flyback pages (default:
    /// from ScanImage metadata, which skips the flyback pages, else 1).
    #[arg(long)]
    pub planes: Option<u8>,
    /// The functional channel to process (from 0).
    #[arg(long, default_value_t = 0)]
    pub channel: u8,
    /// Volume rate in Hz, the rate of each plane's series (default: from the ScanImage header,
    /// else from the pages' `frameTimestamps_sec`; needed only for files with neither).
    #[arg(long)]
    pub fs: Option<f64>,
    /// Pipeline parameters (TOML with `registration`, `cells`, `fluorescence`, `tau_decay_s`,
    /// `lambda_noise`); defaults are suite2p's and OASIS's.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Frames used to detect cells, from the start of each plane (0: all of them). Detection
    /// keeps about 4 bytes per pixel per bin in memory: ~0.5 GB for 2,000 frames at 512x512.
    /// More frames reveal cells that are silent in a short block.
    #[arg(long, default_value_t = DETECTION_FRAMES)]
    pub detection_frames: usize,
    /// Memory process may use, GiB. The movie is read twice and never held: the detection
    /// block fits half of this (fewer frames than --detection-frames if need be), and the
    /// traces (32 bytes per cell-frame) are checked against it before the second pass.
    #[arg(long, default_value_t = 4.0)]
    pub memory_gb: f64,
}

/// Frames offline detection uses by default: enough for sparse cells to fire (a minute at
/// 30 Hz), bounded in memory.
const DETECTION_FRAMES: usize = 2000;

/// The volume rate must be a number of Hz a movie can have (`--fs`).
fn check_fs(fs: f64) -> anyhow::Result<()> {
    check_rate(fs).map_err(|why| anyhow::anyhow!("--fs {fs}: the volume rate is wrong: {why}"))
}

/// `--channels` / `--planes`: 1 to 64 pages, and `--channel` one of the channels.
fn check_layout(args: &ProcessArgs) -> anyhow::Result<()> {
    for (flag, value) in [("--channels", args.channels), ("--planes", args.planes)] {
        if let Some(v) = value
            && !(1..=64).contains(&v)
        {
            bail!(
                "{flag} {v}: must be 1 to 64 (leave it out to read it from the ScanImage header)"
            );
        }
    }
    if let Some(c) = args.channels
        && args.channel >= c
    {
        bail!(
            "--channel {} but --channels {c}: channels count from 0",
            args.channel
        );
    }
    Ok(())
}

/// Where the volume rate came from.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum RateSource {
    Flag,
    ScanimageHeader,
    FrameTimestamps,
}

/// `--out` must be a directory or not exist yet (an existing file cannot hold `plane0/`).
fn check_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        bail!(
            "--out {} is an existing file, not a directory: name a new or existing directory",
            out.display()
        );
    }
    Ok(())
}

pub fn run(args: &ProcessArgs) -> anyhow::Result<()> {
    let params: ImagingParams = match &args.params {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("invalid pipeline parameters in {}", p.display()))?,
        // As a parameters file that does not name them: no ROI classifier, no hole filling
        // (on the simulator's 400-frame movies the classifier keeps 27 of 250 cells; it is
        // opt-in with `[cells] classifier_threshold = 0.5`, `fill_holes = true`).
        None => ImagingParams::as_configured(),
    };
    let origin = args
        .params
        .as_ref()
        .map_or("the default pipeline parameters".into(), |p| {
            p.display().to_string()
        });
    // Everything the arguments alone can refuse is refused before the movie is opened.
    if let Some(fs) = args.fs {
        check_fs(fs)?;
        params
            .validate(fs)
            .map_err(|e| anyhow::anyhow!("{origin} at --fs {fs}: {e}"))?;
    }
    check_layout(args)?;
    check_out_dir(&args.out)?;
    let budget = MemoryBudget::new(args.memory_gb)?;
    let layout = LayoutOverride {
        channels: args.channels,
        planes: args.planes,
    };
    let started = Instant::now();
    let movie_name = args.movie[0].display().to_string();
    let mut movie = TiffSeries::open(&args.movie, layout)
        .with_context(|| format!("cannot open movie {movie_name}"))?;
    let meta = movie.meta().clone();
    if args.channel >= meta.channels {
        bail!(
            "--channel {} but the file has {} channel(s); channels count from 0",
            args.channel,
            meta.channels
        );
    }
    let (h, w) = (meta.height as usize, meta.width as usize);
    // The rate: the flag, else the header, else measured from the pages' timestamps below.
    let known = match (args.fs, &meta.plane_rate) {
        (Some(fs), _) => Some((fs, RateSource::Flag)),
        (None, Rate::Hz(hz)) => Some((*hz, RateSource::ScanimageHeader)),
        (None, Rate::Unusable(why)) if meta.timestamps => {
            tracing::warn!(movie = %movie_name, "{why}; using the frames' timestamps");
            None
        }
        (None, Rate::Absent) if meta.timestamps => None,
        (None, Rate::Unusable(why)) => bail!(
            "{movie_name}: {why}, and the pages carry no frameTimestamps_sec: pass --fs HZ \
             (the volume rate)"
        ),
        (None, Rate::Absent) => bail!(
            "{movie_name}: no frame rate in the file (no ScanImage SI.hRoiManager.scanFrameRate \
             or scanVolumeRate, no frameTimestamps_sec): pass --fs HZ (the volume rate)"
        ),
    };
    if let Some((fs, RateSource::ScanimageHeader)) = known {
        params
            .validate(fs)
            .map_err(|e| anyhow::anyhow!("{origin} at the header's {fs} Hz: {e}"))?;
    }
    let planes = meta.planes as usize;
    // Pass 1: each plane's detection block, from its start, and no more of the movie.
    let wanted = match args.detection_frames {
        0 => usize::MAX,
        k => k.max(params.cells.calibration_frames),
    };
    let block_len = budget.detection_frames(wanted, planes, h * w);
    let blocks = read_blocks(&mut movie, args.channel, planes, block_len);
    let (fs, rate_source) = match known {
        Some(known) => known,
        None => {
            let fs = rate_from_timestamps(&blocks.stamps).map_err(|why| {
                anyhow::anyhow!("{movie_name}: {why}; pass --fs HZ (the volume rate)")
            })?;
            params
                .validate(fs)
                .map_err(|e| anyhow::anyhow!("{origin} at the timestamps' {fs} Hz: {e}"))?;
            (fs, RateSource::FrameTimestamps)
        }
    };
    tracing::info!(movie = %movie_name, fs, source = ?rate_source, "volume rate");
    let mut runs = Vec::with_capacity(planes);
    for (p, block) in blocks.frames.into_iter().enumerate() {
        let t_plane = Instant::now();
        let block_len = block.len();
        let block: Vec<&[u16]> = block.iter().map(|f| f.as_slice()).collect();
        let calibration = PlaneCalibration::from_block_tracing_rejected(&block, h, w, fs, &params)
            .with_context(|| format!("plane {p}: calibration from {block_len} frames failed"))?;
        runs.push(PlaneRun::new(
            calibration,
            block_len,
            h,
            w,
            &params,
            t_plane,
        )?);
    }
    // The block is gone; the traces are what grows with the movie.
    let rois: usize = runs.iter().map(PlaneRun::rois).sum();
    budget.check_traces(rois, movie.total_bytes(), &meta)?;
    // Pass 2: every frame, one page in memory at a time, through its plane's pipeline.
    movie
        .rewind()
        .with_context(|| format!("cannot reopen movie {movie_name}"))?;
    let mut px = Vec::new();
    let mut read_error = blocks.read_error;
    loop {
        match movie.next_page(&mut px) {
            Ok(Some(info)) if info.channel == args.channel && !info.flyback => {
                runs[info.plane as usize].push(&px)?;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                // A truncated file: process what was read, say where it stopped.
                tracing::warn!(movie = %movie.current_path().display(), error = %e, "stopping at the damaged page");
                read_error = Some(format!("{}: {e}", movie.current_path().display()));
                break;
            }
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out directory {}", args.out.display()))?;
    let source = Provenance {
        movie: &args.movie,
        channel: args.channel,
        planes,
        flyback: meta.flyback,
        fs,
        rate_source,
        memory_gb: args.memory_gb,
        read_error: read_error.as_deref(),
    };
    for (p, run) in runs.into_iter().enumerate() {
        run.write(p, &args.out, &source, &params)?;
    }
    println!(
        "processed {movie_name}{} in {:.1} s",
        match args.movie.len() {
            1 => String::new(),
            n => format!(" and {} more file(s)", n - 1),
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(e) = read_error {
        bail!("the movie is damaged: {e} (frames before it were processed and written)");
    }
    Ok(())
}

/// What pass 1 read: each plane's detection block, and the volume timestamps it passed.
struct Blocks {
    frames: Vec<Vec<Vec<u16>>>,
    /// frameTimestamps_sec of the processed channel's first plane: one per volume.
    stamps: Vec<f64>,
    read_error: Option<String>,
}

/// Reads pages until every plane holds `block_len` frames of `channel` (or the movie ends).
fn read_blocks(movie: &mut TiffSeries, channel: u8, planes: usize, block_len: usize) -> Blocks {
    let mut blocks = Blocks {
        frames: vec![Vec::new(); planes],
        stamps: Vec::new(),
        read_error: None,
    };
    let mut px = Vec::new();
    while blocks.frames.iter().any(|b| b.len() < block_len) {
        match movie.next_page(&mut px) {
            Ok(Some(info)) if info.channel == channel && !info.flyback => {
                if info.plane == 0
                    && let Some(t) = info.timestamp_s
                {
                    blocks.stamps.push(t);
                }
                let block = &mut blocks.frames[info.plane as usize];
                if block.len() < block_len {
                    block.push(px.clone());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                // Pass 2 stops at the same page and says so; detection uses what came before.
                blocks.read_error = Some(format!("{}: {e}", movie.current_path().display()));
                break;
            }
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> ProcessArgs {
        ProcessArgs {
            // Absent: every check below must fire before the movie is opened.
            movie: vec![dir.join("absent.tif")],
            out: dir.join("out"),
            channels: None,
            planes: None,
            channel: 0,
            fs: None,
            params: None,
            detection_frames: DETECTION_FRAMES,
            memory_gb: 4.0,
        }
    }

    /// `--fs 0` used to be refused only after the whole movie was registered, naming an
    /// internal field (#16); an `--out` that is a file gave an error naming no path.
    #[test]
    fn bad_arguments_are_refused_before_the_movie_is_read_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        for fs in [0.0, -30.0, f64::NAN, 1e300] {
            let a = ProcessArgs {
                fs: Some(fs),
                ..args(dir.path())
            };
            let e = format!("{:#}", run(&a).unwrap_err());
            assert!(e.starts_with(&format!("--fs {fs}")), "{e}");
        }
        let file = dir.path().join("taken");
        std::fs::write(&file, b"x").unwrap();
        let a = ProcessArgs {
            out: file.clone(),
            ..args(dir.path())
        };
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(
            e.contains(&file.display().to_string()) && e.contains("--out"),
            "{e}"
        );
        // With good arguments the first error is the movie, named.
        let e = format!("{:#}", run(&args(dir.path())).unwrap_err());
        assert!(e.contains("absent.tif"), "{e}");
    }

    #[test]
    fn layout_flags_and_parameters_are_refused_before_the_movie_is_read_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(ProcessArgs, &str); 4] = [
            (
                ProcessArgs {
                    channels: Some(0),
                    ..args(dir.path())
                },
                "--channels 0",
            ),
            (
                ProcessArgs {
                    planes: Some(65),
                    ..args(dir.path())
                },
                "--planes 65",
            ),
            (
                ProcessArgs {
                    channel: 2,
                    channels: Some(2),
                    ..args(dir.path())
                },
                "--channel 2 but --channels 2",
            ),
            (
                ProcessArgs {
                    fs: Some(1e-6),
                    ..args(dir.path())
                },
                "--fs 0.000001",
            ),
        ];
        for (a, want) in cases {
            let e = format!("{:#}", run(&a).unwrap_err());
            assert!(e.starts_with(want), "{e}");
        }
        // Parameters that cannot work at the given rate: named with the file, before reading.
        let params = dir.path().join("params.toml");
        std::fs::write(&params, "[fluorescence]\nbaseline_window_s = 0.01\n").unwrap();
        let a = ProcessArgs {
            fs: Some(30.0),
            params: Some(params.clone()),
            ..args(dir.path())
        };
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(
            e.contains("params.toml") && e.contains("baseline_window_s") && !e.contains("absent"),
            "{e}"
        );
    }

    /// A file whose rate nothing gives is refused, naming the file and `--fs`; a header rate or
    /// timestamps that are nonsense are named too.
    #[test]
    fn a_movie_without_a_usable_rate_asks_for_fs() {
        use crate::offline::scanimage::write_stack;
        let dir = tempfile::tempdir().unwrap();
        let movie = dir.path().join("movie.tif");
        let cases: [(&str, Option<f64>, &[&str]); 4] = [
            ("", None, &["movie.tif", "no frame rate", "--fs"]),
            (
                "SI.hChannels.channelSave = 1\nSI.hRoiManager.scanFrameRate = NaN\n",
                None,
                &["SI.hRoiManager.scanFrameRate = NaN", "--fs"],
            ),
            (
                "SI.hChannels.channelSave = 1\nSI.hRoiManager.scanFrameRate = -30\n",
                None,
                &["SI.hRoiManager.scanFrameRate = -30", "--fs"],
            ),
            // Timestamps that never advance.
            ("", Some(0.0), &["frameTimestamps_sec", "--fs"]),
        ];
        for (software, stamp, want) in cases {
            write_stack(&movie, software, 6, |_| stamp);
            let a = ProcessArgs {
                movie: vec![movie.clone()],
                ..args(dir.path())
            };
            let e = format!("{:#}", run(&a).unwrap_err());
            for w in want {
                assert!(e.contains(w), "{software:?}: {e}");
            }
        }
    }
}
