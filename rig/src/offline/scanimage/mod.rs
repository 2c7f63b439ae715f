//! ScanImage (Big)TIFF stacks as a source, for offline processing (`twinloop process`).
//!
//! ScanImage (2016 and later) writes acquisition-wide settings as `SI.* = value` lines in the
//! first page's Software tag (older versions: in the ImageDescription; read by [`header`]) and
//! per-frame values (`frameNumbers`, `frameTimestamps_sec`) in each page's ImageDescription.
//! Pages interleave channel fastest, then plane, then time; a fast stack's flyback pages close
//! each volume and are marked [`PageInfo::flyback`]. A plain multi-page TIFF reads as one
//! channel and one plane unless the caller says otherwise.

pub mod header;
mod series;
mod write;

pub use series::TiffSeries;
pub use write::{Acquisition, WriteError, write_acquisition};

use crate::vocab::protocol::Dtype;
use header::{HeaderError, Rate, SiHeader, si_value};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

#[derive(Debug, Error)]
pub enum TiffSourceError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable TIFF: {reason}")]
    NotTiff { path: PathBuf, reason: String },
    #[error("{path}: page {page} cannot be read ({reason}); the file may be truncated")]
    Page {
        path: PathBuf,
        page: usize,
        reason: String,
    },
    #[error(
        "{path}: page {page} is {got}, but the stack is {expected} (every page must match the first)"
    )]
    Mismatch {
        path: PathBuf,
        page: usize,
        got: String,
        expected: String,
    },
    #[error("{path}: {what} = {value} is not usable: {fix}")]
    Layout {
        path: PathBuf,
        what: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error("{path}: {source}")]
    Header { path: PathBuf, source: HeaderError },
    #[error(
        "{path} does not continue the acquisition: it is {why} (pass the files of one \
         acquisition, in order)"
    )]
    Series { path: PathBuf, why: String },
    #[error("no movie file given: pass one TIFF, or the files of one acquisition in order")]
    NoFiles,
}

/// How pages map to channels and planes; `None` fields come from the file's metadata.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayoutOverride {
    pub channels: Option<u8>,
    pub planes: Option<u8>,
}

/// What the whole stack is.
#[derive(Debug, Clone, PartialEq)]
pub struct StackMeta {
    pub width: u32,
    pub height: u32,
    pub dtype: Dtype,
    pub channels: u8,
    pub planes: u8,
    /// Flyback pages closing each volume, per channel (skipped; 0 when `--planes` is given).
    pub flyback: u8,
    /// ScanImage's `scanFrameRate`, Hz, when usable.
    pub frame_rate_hz: Option<f64>,
    /// The rate of one plane's series (volumes per second) as the header gives it.
    pub plane_rate: Rate,
    /// The file carried ScanImage metadata.
    pub scanimage: bool,
    /// The first page carries `frameTimestamps_sec` (a rate can be measured from the pages).
    pub timestamps: bool,
}

/// Where one page belongs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageInfo {
    pub index: usize,
    pub channel: u8,
    pub plane: u8,
    pub volume: u64,
    /// A flyback page (the z-scanner returning): no plane's image; `plane` is past the planes.
    pub flyback: bool,
    /// ScanImage's `frameNumbers` (per channel, from 1), when present.
    pub frame_number: Option<i64>,
    /// ScanImage's `frameTimestamps_sec`, when present.
    pub timestamp_s: Option<f64>,
}

pub struct ScanImageTiff {
    path: PathBuf,
    decoder: Decoder<BufReader<File>>,
    meta: StackMeta,
    next: usize,
    done: bool,
}

impl ScanImageTiff {
    pub fn open(path: &Path, layout: LayoutOverride) -> Result<ScanImageTiff, TiffSourceError> {
        let file = File::open(path).map_err(|source| TiffSourceError::Open {
            path: path.to_owned(),
            source,
        })?;
        let not_tiff = |e: tiff::TiffError| TiffSourceError::NotTiff {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut decoder = Decoder::new(BufReader::new(file))
            .map_err(not_tiff)?
            .with_limits(Limits::unlimited());
        let (width, height) = decoder.dimensions().map_err(not_tiff)?;
        let dtype = match decoder.colortype().map_err(not_tiff)? {
            tiff::ColorType::Gray(16) => {
                // Signedness lives in SampleFormat (2 = signed integer).
                match decoder.find_tag_unsigned::<u16>(Tag::SampleFormat) {
                    Ok(Some(2)) => Dtype::I16,
                    _ => Dtype::U16,
                }
            }
            other => {
                return Err(TiffSourceError::Layout {
                    path: path.to_owned(),
                    what: "pixel type",
                    value: format!("{other:?}"),
                    fix: "two-photon stacks must be 16-bit grayscale (u16 or i16)",
                });
            }
        };
        let software = decoder
            .get_tag_ascii_string(Tag::Software)
            .unwrap_or_default();
        let description = decoder
            .get_tag_ascii_string(Tag::ImageDescription)
            .unwrap_or_default();
        // Older ScanImage versions put the SI block in the description, with a prefix.
        let si_text = format!("{software}\n{}", description.replace("scanimage.SI", "SI"));
        let scanimage = si_text.contains("SI.");
        let header = SiHeader::parse(&si_text);
        let header_err = |source| TiffSourceError::Header {
            path: path.to_owned(),
            source,
        };
        // A flag wins over the header, and makes the header's error for that value moot.
        let channels = match layout.channels {
            Some(c) => usize::from(c),
            None => header.channels.clone().map_err(header_err)?.unwrap_or(1),
        };
        let (planes, flyback) = match layout.planes {
            Some(p) => (usize::from(p), 0),
            None => header.stack.clone().map_err(header_err)?.unwrap_or((1, 0)),
        };
        for (what, value) in [("channels", channels), ("planes", planes + flyback)] {
            if value == 0 || value > 64 {
                return Err(TiffSourceError::Layout {
                    path: path.to_owned(),
                    what,
                    value: value.to_string(),
                    fix: "must be 1..=64; pass --channels/--planes to override the metadata",
                });
            }
        }
        let plane_rate = header.plane_rate(planes + flyback);
        let frame_rate_hz = match header.frame_rate {
            Rate::Hz(f) => Some(f),
            _ => None,
        };
        let timestamps = si_value(&description, "frameTimestamps_sec").is_some();
        Ok(ScanImageTiff {
            path: path.to_owned(),
            decoder,
            meta: StackMeta {
                width,
                height,
                dtype,
                channels: channels as u8,
                planes: planes as u8,
                flyback: flyback as u8,
                frame_rate_hz,
                plane_rate,
                scanimage,
                timestamps,
            },
            next: 0,
            done: false,
        })
    }

    pub fn meta(&self) -> &StackMeta {
        &self.meta
    }

    /// Read the next page into `out` (i16 pages keep their bit pattern as u16, as on the wire).
    pub fn next_page(&mut self, out: &mut Vec<u16>) -> Result<Option<PageInfo>, TiffSourceError> {
        if self.done {
            return Ok(None);
        }
        let index = self.next;
        let page_err = |e: tiff::TiffError| TiffSourceError::Page {
            path: self.path.clone(),
            page: index,
            reason: e.to_string(),
        };
        if index > 0 {
            if !self.decoder.more_images() {
                self.done = true;
                return Ok(None);
            }
            self.decoder.next_image().map_err(page_err)?;
        }
        let dims = self.decoder.dimensions().map_err(page_err)?;
        if dims != (self.meta.width, self.meta.height) {
            return Err(TiffSourceError::Mismatch {
                path: self.path.clone(),
                page: index,
                got: format!("{}x{}", dims.0, dims.1),
                expected: format!("{}x{}", self.meta.width, self.meta.height),
            });
        }
        let description = self
            .decoder
            .get_tag_ascii_string(Tag::ImageDescription)
            .unwrap_or_default();
        let pixels = self.decoder.read_image().map_err(page_err)?;
        out.clear();
        match pixels {
            DecodingResult::U16(v) => out.extend_from_slice(&v),
            DecodingResult::I16(v) => out.extend(v.iter().map(|&p| p as u16)),
            other => {
                return Err(TiffSourceError::Mismatch {
                    path: self.path.clone(),
                    page: index,
                    got: format!("{} bytes of another sample type", other_len(&other)),
                    expected: "16-bit samples".into(),
                });
            }
        }
        self.next += 1;
        Ok(Some(PageInfo {
            frame_number: si_value(&description, "frameNumbers").and_then(|v| v.parse().ok()),
            timestamp_s: si_value(&description, "frameTimestamps_sec").and_then(|v| v.parse().ok()),
            ..self.meta.place(index)
        }))
    }

    /// Pages read so far.
    pub fn pages_read(&self) -> usize {
        self.next
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StackMeta {
    /// Where the page `index` (counted over the whole acquisition) belongs: channel fastest,
    /// then plane (flyback slots last), then volume.
    pub fn place(&self, index: usize) -> PageInfo {
        let (c, p) = (self.channels as usize, self.planes as usize);
        let slots = p + self.flyback as usize;
        let slot = (index / c) % slots;
        PageInfo {
            index,
            channel: (index % c) as u8,
            plane: slot as u8,
            volume: (index / (c * slots)) as u64,
            flyback: slot >= p,
            frame_number: None,
            timestamp_s: None,
        }
    }

    /// The same acquisition layout: what every file of a series must share with the first.
    fn same_layout(&self, other: &StackMeta) -> Option<String> {
        let key = |m: &StackMeta| (m.width, m.height, m.dtype, m.channels, m.planes, m.flyback);
        let shape = |m: &StackMeta| {
            format!(
                "{}x{} {:?}, {} channel(s), {} plane(s) + {} flyback",
                m.width, m.height, m.dtype, m.channels, m.planes, m.flyback
            )
        };
        (key(self) != key(other))
            .then(|| format!("{}, but the first file is {}", shape(other), shape(self)))
    }
}

fn other_len(r: &DecodingResult) -> usize {
    match r {
        DecodingResult::U8(v) => v.len(),
        DecodingResult::F32(v) => v.len() * 4,
        _ => 0,
    }
}

#[cfg(test)]
/// For tests: a small stack written the way ScanImage 2020+ writes one: the `SI.*` lines in the first
/// page's Software tag, `frameNumbers` and `frameTimestamps_sec` in every page's
/// ImageDescription (`stamp` None: no description).
pub(crate) fn write_stack(
    path: &Path,
    software: &str,
    pages: usize,
    stamp: impl Fn(usize) -> Option<f64>,
) {
    let mut file = File::create(path).unwrap();
    let mut tif = tiff::encoder::TiffEncoder::new_big(&mut file).unwrap();
    for k in 0..pages {
        let mut img = tif
            .new_image::<tiff::encoder::colortype::Gray16>(4, 3)
            .unwrap();
        if k == 0 && !software.is_empty() {
            img.encoder().write_tag(Tag::Software, software).unwrap();
        }
        if let Some(t) = stamp(k) {
            let d = format!("frameNumbers = {}\nframeTimestamps_sec = {t:.6}\n", k + 1);
            img.encoder()
                .write_tag(Tag::ImageDescription, d.as_str())
                .unwrap();
        }
        img.write_data(&[k as u16; 12]).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/scanimage")
            .join(name)
    }

    #[test]
    fn reads_a_tifffile_written_scanimage_stack_with_its_interleaving() {
        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("truth.json")).unwrap()).unwrap();
        let mut s =
            ScanImageTiff::open(&fixture("si_2ch_3planes.tif"), LayoutOverride::default()).unwrap();
        let m = s.meta().clone();
        assert!(m.scanimage);
        assert_eq!((m.width, m.height, m.channels, m.planes), (32, 24, 2, 3));
        assert_eq!((m.dtype, m.frame_rate_hz), (Dtype::I16, Some(30.0)));
        let mut px = Vec::new();
        let pages = truth["pages"].as_array().unwrap();
        for expected in pages {
            let info = s.next_page(&mut px).unwrap().unwrap();
            let (t, p, c) = (
                expected["volume"].as_u64().unwrap(),
                expected["plane"].as_u64().unwrap() as u8,
                expected["channel"].as_u64().unwrap() as u8,
            );
            assert_eq!(
                (info.volume, info.plane, info.channel),
                (t, p, c),
                "page {}",
                info.index
            );
            assert_eq!(
                px[0] as i16 as u64,
                t * 100 + p as u64 * 10 + c as u64,
                "pixel (0,0) names its page"
            );
            assert_eq!(px[1] as i16, -299, "signed samples survive");
            assert_eq!(info.frame_number, expected["frame_number"].as_i64());
            let stamp = expected["timestamp_s"].as_f64().unwrap();
            assert!((info.timestamp_s.unwrap() - stamp).abs() < 1e-9);
        }
        assert!(s.next_page(&mut px).unwrap().is_none());
    }

    #[test]
    fn a_plain_stack_is_one_channel_one_plane_unless_told() {
        let mut s =
            ScanImageTiff::open(&fixture("plain_u16.tif"), LayoutOverride::default()).unwrap();
        assert!(!s.meta().scanimage);
        assert_eq!(
            (s.meta().channels, s.meta().planes, s.meta().dtype),
            (1, 1, Dtype::U16)
        );
        let mut px = Vec::new();
        let mut n = 0;
        while let Some(info) = s.next_page(&mut px).unwrap() {
            assert_eq!(px[3], info.index as u16 + 3);
            assert_eq!(info.timestamp_s, None);
            n += 1;
        }
        assert_eq!(n, 5);
        let s = ScanImageTiff::open(
            &fixture("plain_u16.tif"),
            LayoutOverride {
                channels: Some(1),
                planes: Some(5),
            },
        )
        .unwrap();
        assert_eq!(s.meta().planes, 5);
    }

    #[test]
    fn a_truncated_stack_reads_to_the_damage_then_says_where() {
        let mut s =
            ScanImageTiff::open(&fixture("si_truncated.tif"), LayoutOverride::default()).unwrap();
        let mut px = Vec::new();
        let mut read = 0;
        let err = loop {
            match s.next_page(&mut px) {
                Ok(Some(_)) => read += 1,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert!((20..24).contains(&read), "{read} pages before the damage");
        if let Some(e) = err {
            let msg = e.to_string();
            assert!(msg.contains("page") && msg.contains("truncated"), "{msg}");
        }
    }

    #[test]
    fn not_a_tiff_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("movie.tif");
        std::fs::write(&p, b"this is not a tiff at all").unwrap();
        let e = ScanImageTiff::open(&p, LayoutOverride::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a readable TIFF"), "{e}");
        let e = ScanImageTiff::open(&tmp.path().join("missing.tif"), LayoutOverride::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot open") && e.contains("missing.tif"),
            "{e}"
        );
    }

    /// 2 channels, 3 planes and a flyback page per volume at 30 frames/s (7.5 volumes/s).
    const SI_2023: &str = "SI.VERSION_MAJOR = 2023
SI.hChannels.channelSave = [1;2]
SI.hRoiManager.scanFrameRate = 30
SI.hRoiManager.scanVolumeRate = 7.5
SI.hStackManager.enable = true
SI.hStackManager.stackMode = 'fast'
SI.hStackManager.actualNumSlices = 3
SI.hStackManager.numSlices = 3
SI.hStackManager.numFramesPerVolume = 3
SI.hStackManager.numFramesPerVolumeWithFlyback = 4
";

    #[test]
    fn a_2023_volume_reads_its_layout_and_rate_and_marks_the_flyback_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("vol.tif");
        let per_volume = 2 * 4;
        write_stack(&p, SI_2023, 3 * per_volume, |k| Some((k / 2) as f64 / 30.0));
        let mut s = ScanImageTiff::open(&p, LayoutOverride::default()).unwrap();
        let m = s.meta().clone();
        assert_eq!((m.channels, m.planes, m.flyback), (2, 3, 1));
        assert_eq!(
            (m.plane_rate.clone(), m.frame_rate_hz),
            (Rate::Hz(7.5), Some(30.0))
        );
        assert!(m.scanimage && m.timestamps);
        let mut px = Vec::new();
        let mut seen = Vec::new();
        while let Some(info) = s.next_page(&mut px).unwrap() {
            seen.push((info.volume, info.plane, info.channel, info.flyback));
        }
        let expected: Vec<_> = (0..3u64)
            .flat_map(|v| (0..4u8).flat_map(move |p| (0..2u8).map(move |c| (v, p, c, p == 3))))
            .collect();
        assert_eq!(seen, expected);
        // `--planes` counts every page of a volume and turns the flyback off.
        let s = ScanImageTiff::open(
            &p,
            LayoutOverride {
                channels: None,
                planes: Some(4),
            },
        )
        .unwrap();
        assert_eq!((s.meta().planes, s.meta().flyback), (4, 0));
    }

    #[test]
    fn a_bad_header_value_is_an_error_naming_it_unless_a_flag_overrides_it() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.tif");
        let bad = SI_2023.replace("actualNumSlices = 3", "actualNumSlices = NaN");
        write_stack(&p, &bad, 8, |_| None);
        let e = ScanImageTiff::open(&p, LayoutOverride::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("bad.tif")
                && e.contains("SI.hStackManager.actualNumSlices = NaN")
                && e.contains("--planes"),
            "{e}"
        );
        let s = ScanImageTiff::open(
            &p,
            LayoutOverride {
                channels: None,
                planes: Some(2),
            },
        )
        .unwrap();
        assert_eq!((s.meta().channels, s.meta().planes), (2, 2));
        // No header, no timestamps: nothing says the rate.
        let plain = tmp.path().join("plain.tif");
        write_stack(&plain, "", 3, |_| None);
        let m = ScanImageTiff::open(&plain, LayoutOverride::default())
            .unwrap()
            .meta()
            .clone();
        assert_eq!(
            (m.plane_rate, m.timestamps, m.scanimage),
            (Rate::Absent, false, false)
        );
    }
}
