//! twinloop's cell detection against suite2p's on the independent generator's movies, scored
//! by one implementation (`twinloop_moviegen::match_masks`, IoU >= 0.5, one to one).
//!
//! Driven by `bench/suite2p_moviegen.py`, which runs suite2p (PyPI, in a benchmark venv) between
//! the two steps:
//!
//! - `dump SEED DIR`: makes the movie (moviegen defaults at `SEED`), writes it as raw
//!   little-endian u16 (`movie.u16`, frames x height x width) with `movie.json` (its shape and
//!   rate), runs twinloop's detection on every frame and writes its kept masks
//!   (`twinloop.masks.u32`) and wall time (`twinloop.json`);
//! - `score SEED DIR`: reads `suite2p.masks.u32` (written by the script from suite2p's
//!   `stat.npy` and `iscell.npy`), remakes the movie's truth, and prints one JSON line per
//!   detector with recall over active somata, recall over all, precision and ROI count.
//!
//! Masks files are u32 little-endian: the number of masks, then for each its pixel count and
//! its pixels (`y * width + x`).

use std::path::{Path, PathBuf};
use std::time::Instant;
use twinloop_calibration::imaging::cells::{CalibrationBlock, CellDetectionParams, detect_cells};
use twinloop_moviegen::{MovieConfig, generate, match_masks};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: moviegen_vs_suite2p (dump|score) SEED DIR";
    let (cmd, seed, dir) = match args.as_slice() {
        [_, c, s, d] => (c.as_str(), s.parse::<u64>()?, PathBuf::from(d)),
        _ => return Err(usage.into()),
    };
    match cmd {
        "dump" => dump(seed, &dir),
        "score" => score(seed, &dir),
        _ => Err(usage.into()),
    }
}

fn config(seed: u64) -> MovieConfig {
    MovieConfig {
        seed,
        ..MovieConfig::default()
    }
}

fn dump(seed: u64, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let movie = generate(&config(seed))?;
    let bytes: Vec<u8> = movie.frames.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("movie.u16"), bytes)?;
    std::fs::write(
        dir.join("movie.json"),
        format!(
            "{{\"frames\": {}, \"height\": {}, \"width\": {}, \"fs_hz\": {}}}\n",
            movie.n_frames(),
            movie.height,
            movie.width,
            movie.fs_hz
        ),
    )?;
    let params = CellDetectionParams {
        calibration_frames: movie.n_frames(),
        ..CellDetectionParams::default()
    };
    // Timed as `process` runs it: the block's images over every frame, then detection.
    let started = Instant::now();
    let block = CalibrationBlock::from_frames(&movie.frames, movie.height, movie.width, &params)?;
    let det = detect_cells(&block, &params)?;
    let seconds = started.elapsed().as_secs_f64();
    let masks: Vec<Vec<u32>> = (0..det.masks.len())
        .map(|i| det.masks.cell(i).0.to_vec())
        .collect();
    write_masks(&dir.join("twinloop.masks.u32"), &masks)?;
    std::fs::write(
        dir.join("twinloop.json"),
        format!("{{\"detection_s\": {seconds:.3}}}\n"),
    )?;
    Ok(())
}

fn score(seed: u64, dir: &Path) -> Result<()> {
    let movie = generate(&config(seed))?;
    let truth = movie.true_masks();
    for name in ["twinloop", "suite2p"] {
        let found = read_masks(&dir.join(format!("{name}.masks.u32")))?;
        let m = match_masks(&truth, &found, 0.5);
        println!(
            "{{\"detector\": \"{name}\", \"seed\": {seed}, \"recall_active\": {:.3}, \
             \"recall_all\": {:.3}, \"precision\": {:.3}, \"rois\": {}, \"somata\": {}}}",
            m.recall_of(|i| movie.cells[i].active),
            m.recall(),
            m.precision(),
            found.len(),
            truth.len()
        );
    }
    Ok(())
}

fn write_masks(path: &Path, masks: &[Vec<u32>]) -> Result<()> {
    let mut out: Vec<u32> = vec![u32::try_from(masks.len())?];
    for m in masks {
        out.push(u32::try_from(m.len())?);
        out.extend_from_slice(m);
    }
    let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

fn read_masks(path: &Path) -> Result<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bad = || format!("{}: truncated masks file", path.display());
    let (&n, mut rest) = words.split_first().ok_or_else(bad)?;
    let mut masks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (&k, tail) = rest.split_first().ok_or_else(bad)?;
        if tail.len() < k as usize {
            return Err(bad().into());
        }
        let (m, tail) = tail.split_at(k as usize);
        masks.push(m.to_vec());
        rest = tail;
    }
    Ok(masks)
}
