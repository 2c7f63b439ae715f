//! Writing an acquisition the way ScanImage (2020 and later) does: BigTIFF files of at most
//! `frames_per_file` pages, each file opening with the `SI.*` header in its first page's
//! Software tag, every page carrying `frameNumbers` and `frameTimestamps_sec` that run on
//! across files. For trying `twinloop process` on simulated data (`twinloop sim-movie`) and
//! for its tests; one channel, one plane.

use std::path::{Path, PathBuf};
use thiserror::Error;
use tiff::encoder::{TiffEncoder, colortype::Gray16};
use tiff::tags::Tag;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("frame {frame}: {reason}")]
    Frame { frame: usize, reason: String },
}

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct Acquisition {
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    /// Pages per file (ScanImage's `logFramesPerFile`); the last file may hold fewer.
    pub frames_per_file: usize,
    pub rate_hz: f64,
}

/// `<dir>/<stem>_00001_00001.tif`, `_00002.tif`, ...: `frame(k, pixels)` fills frame k.
pub fn write_acquisition(
    dir: &Path,
    stem: &str,
    acq: &Acquisition,
    mut frame: impl FnMut(usize, &mut [u16]) -> Result<(), String>,
) -> Result<Vec<PathBuf>, WriteError> {
    let header = format!(
        "SI.VERSION_MAJOR = 2023\nSI.hChannels.channelSave = 1\n\
         SI.hRoiManager.scanFrameRate = {r}\nSI.hRoiManager.scanVolumeRate = {r}\n\
         SI.hScan2D.logFramesPerFile = {n}\nSI.hStackManager.enable = false\n",
        r = acq.rate_hz,
        n = acq.frames_per_file
    );
    let mut px = vec![0u16; acq.width as usize * acq.height as usize];
    let mut files = Vec::new();
    for (i, start) in (0..acq.frames)
        .step_by(acq.frames_per_file.max(1))
        .enumerate()
    {
        let path = dir.join(format!("{stem}_00001_{:05}.tif", i + 1));
        let err = |e: &dyn std::fmt::Display| WriteError::Write {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut file = std::fs::File::create(&path).map_err(|e| err(&e))?;
        // The encoder borrows the file until the end of this block; then the file is synced.
        {
            let mut tif = TiffEncoder::new_big(&mut file).map_err(|e| err(&e))?;
            for k in start..(start + acq.frames_per_file).min(acq.frames) {
                frame(k, &mut px).map_err(|reason| WriteError::Frame { frame: k, reason })?;
                let mut page = tif
                    .new_image::<Gray16>(acq.width, acq.height)
                    .map_err(|e| err(&e))?;
                if k == start {
                    page.encoder()
                        .write_tag(Tag::Software, header.as_str())
                        .map_err(|e| err(&e))?;
                }
                let description = format!(
                    "frameNumbers = {}\nframeTimestamps_sec = {:.6}\n",
                    k + 1,
                    k as f64 / acq.rate_hz
                );
                page.encoder()
                    .write_tag(Tag::ImageDescription, description.as_str())
                    .map_err(|e| err(&e))?;
                page.write_data(&px).map_err(|e| err(&e))?;
            }
        }
        file.sync_all().map_err(|e| err(&e))?;
        files.push(path);
    }
    Ok(files)
}
