//! A multi-file acquisition read as one stack.
//!
//! ScanImage splits a long acquisition into files (`logFramesPerFile`): `name_00001_00001.tif`,
//! `name_00001_00002.tif`, ... Each file repeats the acquisition header, and the pages simply
//! continue: channel, plane and volume are counted over the whole series, not per file. Every
//! file is opened (its first IFD and header, no pixels) when the series is, so a file from
//! another acquisition is refused before any frame is read. A series can be read again from
//! the start ([`TiffSeries::rewind`]): `process` reads it twice, and holds one page at a time.

use super::{LayoutOverride, PageInfo, ScanImageTiff, StackMeta, TiffSourceError};
use std::path::{Path, PathBuf};

pub struct TiffSeries {
    paths: Vec<PathBuf>,
    layout: LayoutOverride,
    meta: StackMeta,
    /// The file being read, its position in `paths`, and the series pages before it.
    current: ScanImageTiff,
    file: usize,
    offset: usize,
}

impl TiffSeries {
    /// Opens every file's header and checks each continues the first's acquisition.
    pub fn open(paths: &[PathBuf], layout: LayoutOverride) -> Result<TiffSeries, TiffSourceError> {
        let first = paths.first().ok_or(TiffSourceError::NoFiles)?;
        let current = ScanImageTiff::open(first, layout)?;
        let meta = current.meta().clone();
        for path in &paths[1..] {
            let other = ScanImageTiff::open(path, layout)?;
            if let Some(why) = meta.same_layout(other.meta()) {
                return Err(TiffSourceError::Series {
                    path: path.clone(),
                    why,
                });
            }
        }
        Ok(TiffSeries {
            paths: paths.to_vec(),
            layout,
            meta,
            current,
            file: 0,
            offset: 0,
        })
    }

    /// The acquisition, as the first file's header gives it.
    pub fn meta(&self) -> &StackMeta {
        &self.meta
    }

    /// The files, in reading order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The file the last page came from (for error messages).
    pub fn current_path(&self) -> &Path {
        self.current.path()
    }

    /// Bytes of all the files: a length estimate that reads no page.
    pub fn total_bytes(&self) -> u64 {
        self.paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The next page of the acquisition, its place counted over the whole series.
    pub fn next_page(&mut self, out: &mut Vec<u16>) -> Result<Option<PageInfo>, TiffSourceError> {
        loop {
            if let Some(local) = self.current.next_page(out)? {
                let index = self.offset + local.index;
                return Ok(Some(PageInfo {
                    frame_number: local.frame_number,
                    timestamp_s: local.timestamp_s,
                    ..self.meta.place(index)
                }));
            }
            if self.file + 1 == self.paths.len() {
                return Ok(None);
            }
            // This file is done: the next one's pages continue the count.
            self.offset += self.current.pages_read();
            self.file += 1;
            self.current = ScanImageTiff::open(&self.paths[self.file], self.layout)?;
        }
    }

    /// Back to the first page of the first file.
    pub fn rewind(&mut self) -> Result<(), TiffSourceError> {
        self.current = ScanImageTiff::open(&self.paths[0], self.layout)?;
        self.file = 0;
        self.offset = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::scanimage::write_stack;

    /// 2 channels, 2 planes, no flyback, at 30 frames/s.
    const SI: &str = "SI.VERSION_MAJOR = 2023
SI.hChannels.channelSave = [1;2]
SI.hRoiManager.scanFrameRate = 30
SI.hRoiManager.scanVolumeRate = 15
SI.hStackManager.enable = true
SI.hStackManager.stackMode = 'fast'
SI.hStackManager.actualNumSlices = 2
SI.hStackManager.numSlices = 2
SI.hStackManager.numFramesPerVolume = 2
SI.hStackManager.numFramesPerVolumeWithFlyback = 2
";

    /// A file split in the middle of a volume still reads as one acquisition: the second
    /// file's first page is the channel and plane that follow the first file's last.
    #[test]
    fn pages_continue_across_files_split_mid_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a.tif"), tmp.path().join("b.tif"));
        // 4 pages a volume; 6 pages then 6: the split falls after volume 1's second page.
        write_stack(&a, SI, 6, |_| None);
        write_stack(&b, SI, 6, |_| None);
        let mut s = TiffSeries::open(&[a.clone(), b.clone()], LayoutOverride::default()).unwrap();
        let mut px = Vec::new();
        let mut seen = Vec::new();
        while let Some(info) = s.next_page(&mut px).unwrap() {
            seen.push((info.index, info.volume, info.plane, info.channel));
        }
        let expected: Vec<_> = (0..12usize)
            .map(|i| (i, (i / 4) as u64, ((i / 2) % 2) as u8, (i % 2) as u8))
            .collect();
        assert_eq!(seen, expected);
        // Read again from the start: the same pages.
        s.rewind().unwrap();
        let again: Vec<_> = std::iter::from_fn(|| s.next_page(&mut px).unwrap())
            .map(|i| (i.index, i.volume, i.plane, i.channel))
            .collect();
        assert_eq!(again, expected);
    }

    #[test]
    fn a_file_from_another_acquisition_is_refused_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a.tif"), tmp.path().join("other.tif"));
        write_stack(&a, SI, 4, |_| None);
        let one_channel = SI.replace("channelSave = [1;2]", "channelSave = 1");
        write_stack(&b, &one_channel, 4, |_| None);
        let e = TiffSeries::open(&[a, b], LayoutOverride::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("other.tif") && e.contains("1 channel(s)") && e.contains("2 channel(s)"),
            "{e}"
        );
        let e = TiffSeries::open(&[], LayoutOverride::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no movie file"), "{e}");
    }
}
