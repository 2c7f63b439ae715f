//! Reading clips and images: `.npy` u8 arrays and PNG frames.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Frames of u8 luminance, `[frames, height, width]`, row 0 at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<u8>,
}

impl Clip {
    pub fn frame(&self, k: usize) -> &[u8] {
        let n = self.height * self.width;
        &self.data[k * n..(k + 1) * n]
    }
}

fn npy_header(path: &Path) -> Result<npyz::NpyFile<BufReader<File>>, String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(f))
        .map_err(|e| format!("{} is not a .npy file: {e}", path.display()))?;
    let dtype = npy.dtype().descr();
    if dtype != "'|u1'" && dtype != "'<u1'" && dtype != "'>u1'" {
        return Err(format!(
            "{} has dtype {dtype}; need uint8 ('|u1')",
            path.display()
        ));
    }
    if npy.order() != npyz::Order::C {
        return Err(format!(
            "{} is Fortran-ordered; need C order",
            path.display()
        ));
    }
    Ok(npy)
}

fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// PNG files in a folder, sorted by name.
fn png_frames(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read folder {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("folder {} holds no .png frames", dir.display()));
    }
    Ok(files)
}

/// Decode one PNG to u8 luminance (gray as is, RGB/RGBA reduced to Rec. 601 luma).
pub fn read_png(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
    let f = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut dec = png::Decoder::new(BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec
        .read_info()
        .map_err(|e| format!("{} is not a readable PNG: {e}", path.display()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{}: image too large", path.display()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: cannot decode: {e}", path.display()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let ch = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(format!(
                "{}: indexed colour was not expanded",
                path.display()
            ));
        }
    };
    let line = info.line_size;
    let mut out = Vec::with_capacity(w * h);
    for r in 0..h {
        let row = &buf[r * line..r * line + w * ch];
        for px in row.chunks_exact(ch) {
            out.push(match ch {
                1 | 2 => px[0],
                _ => (0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64).round()
                    as u8,
            });
        }
    }
    Ok((h, w, out))
}

/// Write u8 luminance `[height, width]` as an 8-bit grayscale PNG.
pub fn write_png(path: &Path, width: usize, height: usize, pixels: &[u8]) -> Result<(), String> {
    let f = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc
        .write_header()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.write_image_data(pixels)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.finish().map_err(|e| format!("{}: {e}", path.display()))
}

/// Shape `(frames, height, width)` of a movie file or folder, checked without reading pixels
/// (a PNG folder checks its first frame).
pub fn probe_movie(path: &Path) -> Result<(usize, usize, usize), String> {
    if path.is_dir() {
        let files = png_frames(path)?;
        let (h, w, _) = read_png(&files[0])?;
        return Ok((files.len(), h, w));
    }
    if !is_npy(path) {
        return Err(format!(
            "{}: a movie is a .npy u8 [T, H, W] file or a folder of .png frames",
            path.display()
        ));
    }
    let npy = npy_header(path)?;
    match npy.shape() {
        &[t, h, w] if t > 0 && h > 0 && w > 0 => Ok((t as usize, h as usize, w as usize)),
        s => Err(format!(
            "{} has shape {s:?}; a movie needs [T, H, W], all > 0",
            path.display()
        )),
    }
}

/// Shape `(height, width)` of an image file.
pub fn probe_image(path: &Path) -> Result<(usize, usize), String> {
    if !is_npy(path) {
        let (h, w, _) = read_png(path)?;
        return Ok((h, w));
    }
    let npy = npy_header(path)?;
    match npy.shape() {
        &[h, w] | &[1, h, w] if h > 0 && w > 0 => Ok((h as usize, w as usize)),
        s => Err(format!(
            "{} has shape {s:?}; an image needs [H, W] or [1, H, W], all > 0",
            path.display()
        )),
    }
}

fn read_npy(path: &Path, frames: usize, h: usize, w: usize) -> Result<Clip, String> {
    let npy = npy_header(path)?;
    let data: Vec<u8> = npy
        .into_vec()
        .map_err(|e| format!("{}: cannot read data: {e}", path.display()))?;
    if data.len() != frames * h * w {
        return Err(format!(
            "{}: {} values for shape {frames}x{h}x{w}",
            path.display(),
            data.len()
        ));
    }
    Ok(Clip {
        frames,
        height: h,
        width: w,
        data,
    })
}

/// Read a whole movie (`.npy` [T, H, W] u8 or a folder of PNG frames of one size).
pub fn load_movie(path: &Path) -> Result<Clip, String> {
    let (t, h, w) = probe_movie(path)?;
    if !path.is_dir() {
        return read_npy(path, t, h, w);
    }
    let mut data = Vec::with_capacity(t * h * w);
    for f in png_frames(path)? {
        let (fh, fw, px) = read_png(&f)?;
        if (fh, fw) != (h, w) {
            return Err(format!(
                "{} is {fw}x{fh}; the clip's first frame is {w}x{h}",
                f.display()
            ));
        }
        data.extend_from_slice(&px);
    }
    Ok(Clip {
        frames: t,
        height: h,
        width: w,
        data,
    })
}

/// Read an image (`.npy` [H, W] or [1, H, W] u8, or a PNG) as a one-frame clip.
pub fn load_image(path: &Path) -> Result<Clip, String> {
    let (h, w) = probe_image(path)?;
    if is_npy(path) {
        return read_npy(path, 1, h, w);
    }
    let (_, _, data) = read_png(path)?;
    Ok(Clip {
        frames: 1,
        height: h,
        width: w,
        data,
    })
}

/// Write u8 frames as a C-order `.npy` of the given shape.
pub fn write_npy_u8(path: &Path, shape: &[u64], data: &[u8]) -> Result<(), String> {
    use npyz::WriterBuilder;
    let f = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(f))
        .begin_nd()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.extend(data.iter().copied())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.finish().map_err(|e| format!("{}: {e}", path.display()))
}
