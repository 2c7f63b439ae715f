//! suite2p-compatible outputs: `suite2p/plane0/{stat,iscell,ops,F,Fneu,spks}.npy`, the files
//! suite2p's GUI and the analysis scripts labs already have read.
//!
//! # Layout
//! - [`value`]: the Python values the files hold ([`PyValue`], [`NdArray`]).
//! - [`pickle`]: a minimal pickle encoder (protocol 3), numpy arrays through numpy's own
//!   reduce path.
//! - [`npy`]: `.npy` files, numeric or pickled object arrays.
//! - this file: [`write_plane`], from one plane's masks, traces and images, into
//!   `suite2p/plane<p>/`.
//!
//! # Fields
//! | file | content |
//! | --- | --- |
//! | `F.npy`, `Fneu.npy` | float32 [ROIs x frames]: mask-weighted cell fluorescence and the neuropil annulus mean, ADU, dark offset not removed (suite2p's units) |
//! | `spks.npy` | float32 [ROIs x frames]: deconvolved activity, as the caller's deconvolution gives it (suite2p's OASIS output is in arbitrary units too) |
//! | `iscell.npy` | float64 [ROIs x 2]: is-cell (0/1, as the caller kept it) and the classifier's probability |
//! | `stat.npy` | object [ROIs] of dicts: `ypix`, `xpix` (int32), `lam` (float32 weights, summing to 1 where suite2p's do not: only ratios matter downstream), `med` ([y, x] medians), `npix`, `npix_soma`, `radius`, `aspect_ratio`, `compact`, `mrs`, `mrs0`, `npix_norm`, `npix_norm_no_crop`, `skew` and `std` (of F - 0.7 Fneu, as suite2p), `overlap` (bool per pixel), `soma_crop` (all true), `neuropil_mask` (int32 flat indices), `footprint`, `iplane`, `inmerge` |
//! | `ops.npy` | object 0-d holding a dict: `Ly`, `Lx`, `nframes`, `fs`, `tau`, `diameter`, `neucoeff`, `meanImg`, `refImg`, `max_proj`, `Vcorr`, `yrange`, `xrange`, `nplanes`, `nchannels`, `functional_chan`, `iplane`, `save_path`, `save_path0`, `badframes`, and when motion is given `yoff`, `xoff`, `corrXY`, `yoff1`, `xoff1`, `nblocks` |
//!
//! Not filled, and why: `stat.footprint` is suite2p's spatial scale of the ROI (0-3, from
//! its multi-scale detection); twinloop detects at one scale, so it is 1.0 for every ROI.
//! `stat.solidity` (area over convex-hull area) is not computed. `ops.meanImgE` (the
//! enhanced mean image), `ops.refImg` when no reference is given (the mean image stands in),
//! `ops.corrXY1` and suite2p's many processing settings (`nimg_init`, `batch_size`,
//! `spatial_scale`, ...) are left out: nothing twinloop ran corresponds to them. Max
//! projection and `Vcorr` cover the whole frame (`yrange`/`xrange` are the full frame).

pub mod npy;
pub mod pickle;
pub mod value;

pub use value::{ArrayData, NdArray, PyValue};

use crate::imaging::cells::classify::features::{shape, skewness};
use crate::imaging::cells::{CellMasks, ProjectionImages};
use std::path::{Path, PathBuf};

/// suite2p's default neuropil coefficient (F - 0.7 Fneu), used for `skew` and `std`.
pub const NEUCOEFF: f64 = 0.7;

/// Why the suite2p files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Suite2pError {
    /// An input's length disagrees with the masks or the frame count.
    #[error("suite2p output: `{field}` has {got} values, expected {expected} ({why})")]
    Length {
        /// The input field of [`Suite2pPlane`].
        field: &'static str,
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
        /// What the expectation comes from.
        why: String,
    },
    /// A file could not be written.
    #[error("suite2p output: cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Motion registration reported per frame.
pub struct Suite2pMotion<'a> {
    /// Rigid shift per frame, px.
    pub yoff: &'a [f32],
    /// Rigid shift per frame, px.
    pub xoff: &'a [f32],
    /// Peak phase correlation per frame.
    pub corr_xy: &'a [f32],
    /// Non-rigid blocks per frame (0 if rigid only).
    pub blocks: usize,
    /// Per-block shifts, frame-major [frames x blocks], px.
    pub yoff1: &'a [f32],
    /// Per-block shifts, frame-major [frames x blocks], px.
    pub xoff1: &'a [f32],
}

/// One plane's results, as the suite2p files need them.
pub struct Suite2pPlane<'a> {
    /// This plane's index (from 0): the folder `suite2p/plane<plane>` and `iplane`.
    pub plane: usize,
    /// Planes in the acquisition (`ops['nplanes']`).
    pub planes: usize,
    /// The ROIs.
    pub masks: &'a CellMasks,
    /// Is-cell probability of each ROI (empty: 1 for all).
    pub probability: &'a [f64],
    /// Whether each ROI is a cell, `iscell.npy`'s first column (empty: every ROI). Given, not
    /// derived from the probability: a detector may keep an ROI below its threshold (a silent
    /// soma) and the file must say what was kept.
    pub is_cell: &'a [bool],
    /// Summary images (`meanImg`, `max_proj`, `Vcorr`).
    pub images: &'a ProjectionImages,
    /// Registration reference image (empty: the mean image stands in).
    pub reference: &'a [f32],
    /// Frames in the traces.
    pub frames: usize,
    /// Cell fluorescence, ROI-major [ROIs x frames], ADU.
    pub f: &'a [f32],
    /// Neuropil fluorescence, ROI-major, ADU.
    pub fneu: &'a [f32],
    /// Deconvolved activity, ROI-major.
    pub spks: &'a [f32],
    /// Frame rate, Hz.
    pub fs_hz: f64,
    /// Indicator decay time, s.
    pub tau_s: f64,
    /// Expected cell diameter, px.
    pub diameter_px: f64,
    /// Registration, if it ran.
    pub motion: Option<Suite2pMotion<'a>>,
}

fn check(field: &'static str, got: usize, expected: usize, why: &str) -> Result<(), Suite2pError> {
    if got == expected {
        Ok(())
    } else {
        Err(Suite2pError::Length {
            field,
            got,
            expected,
            why: why.to_string(),
        })
    }
}

impl Suite2pPlane<'_> {
    fn validate(&self) -> Result<(), Suite2pError> {
        let n = self.masks.len();
        let (h, w) = (self.masks.height(), self.masks.width());
        if self.plane >= self.planes {
            return Err(Suite2pError::Length {
                field: "plane",
                got: self.plane,
                expected: self.planes.saturating_sub(1),
                why: format!(
                    "planes count from 0 and the acquisition has {}",
                    self.planes
                ),
            });
        }
        let traces = n * self.frames;
        let why = format!("{n} ROIs x {} frames", self.frames);
        check("f", self.f.len(), traces, &why)?;
        check("fneu", self.fneu.len(), traces, &why)?;
        check("spks", self.spks.len(), traces, &why)?;
        if !self.probability.is_empty() {
            check("probability", self.probability.len(), n, "one per ROI")?;
        }
        if !self.is_cell.is_empty() {
            check("is_cell", self.is_cell.len(), n, "one per ROI")?;
        }
        let px = format!("{h}x{w} frames");
        check("images", self.images.height * self.images.width, h * w, &px)?;
        if !self.reference.is_empty() {
            check("reference", self.reference.len(), h * w, &px)?;
        }
        if let Some(m) = &self.motion {
            let f = self.frames;
            check("motion.yoff", m.yoff.len(), f, "one per frame")?;
            check("motion.xoff", m.xoff.len(), f, "one per frame")?;
            check("motion.corr_xy", m.corr_xy.len(), f, "one per frame")?;
            check(
                "motion.yoff1",
                m.yoff1.len(),
                f * m.blocks,
                "frames x blocks",
            )?;
            check(
                "motion.xoff1",
                m.xoff1.len(),
                f * m.blocks,
                "frames x blocks",
            )?;
        }
        Ok(())
    }
}

fn f32s(v: &[f32]) -> ArrayData {
    ArrayData::F32(v.to_vec())
}

fn image(h: usize, w: usize, v: Vec<f32>) -> PyValue {
    NdArray::matrix(h, w, ArrayData::F32(v)).into()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// One ROI's `stat` dict.
fn stat_entry(p: &Suite2pPlane, i: usize, owners: &[u16], expected_area: f64) -> PyValue {
    let w = p.masks.width();
    let (pixels, weights) = p.masks.cell(i);
    let roi: Vec<(u32, f32)> = pixels
        .iter()
        .copied()
        .zip(weights.iter().copied())
        .collect();
    let s = shape(&roi, w);
    let ypix: Vec<i32> = pixels.iter().map(|&q| (q as usize / w) as i32).collect();
    let xpix: Vec<i32> = pixels.iter().map(|&q| (q as usize % w) as i32).collect();
    let med = vec![
        PyValue::Float(median(ypix.iter().map(|&v| f64::from(v)).collect())),
        PyValue::Float(median(xpix.iter().map(|&v| f64::from(v)).collect())),
    ];
    let t = p.frames;
    let trace: Vec<f64> = (0..t)
        .map(|k| f64::from(p.f[i * t + k]) - NEUCOEFF * f64::from(p.fneu[i * t + k]))
        .collect();
    let (skew, std) = skewness(&trace);
    let overlap: Vec<bool> = pixels.iter().map(|&q| owners[q as usize] > 1).collect();
    let npix = pixels.len();
    let neuropil: Vec<i32> = p.masks.neuropil(i).iter().map(|&q| q as i32).collect();
    PyValue::Dict(vec![
        ("ypix".into(), NdArray::vector(ArrayData::I32(ypix)).into()),
        ("xpix".into(), NdArray::vector(ArrayData::I32(xpix)).into()),
        ("lam".into(), NdArray::vector(f32s(weights)).into()),
        ("med".into(), PyValue::List(med)),
        ("npix".into(), npix.into()),
        ("npix_soma".into(), npix.into()),
        ("radius".into(), s.radius_px.into()),
        ("aspect_ratio".into(), s.aspect_ratio.into()),
        ("compact".into(), s.compact.into()),
        ("mrs".into(), s.mean_distance_px.into()),
        ("mrs0".into(), s.disc_distance_px.into()),
        ("npix_norm".into(), (npix as f64 / expected_area).into()),
        (
            "npix_norm_no_crop".into(),
            (npix as f64 / expected_area).into(),
        ),
        ("skew".into(), skew.into()),
        ("std".into(), std.into()),
        (
            "overlap".into(),
            NdArray::vector(ArrayData::Bool(overlap)).into(),
        ),
        (
            "soma_crop".into(),
            NdArray::vector(ArrayData::Bool(vec![true; npix])).into(),
        ),
        (
            "neuropil_mask".into(),
            NdArray::vector(ArrayData::I32(neuropil)).into(),
        ),
        ("footprint".into(), 1.0.into()),
        ("iplane".into(), p.plane.into()),
        ("inmerge".into(), 0usize.into()),
    ])
}

/// The `ops` dict.
fn ops(p: &Suite2pPlane, plane_dir: &Path) -> PyValue {
    let (h, w) = (p.masks.height(), p.masks.width());
    let img = p.images;
    let reference = if p.reference.is_empty() {
        img.mean.clone()
    } else {
        p.reference.to_vec()
    };
    let path = plane_dir.display().to_string();
    let root = plane_dir
        .parent()
        .and_then(Path::parent)
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let range = |n: usize| PyValue::List(vec![0usize.into(), n.into()]);
    let mut d: Vec<(String, PyValue)> = vec![
        ("Ly".into(), h.into()),
        ("Lx".into(), w.into()),
        ("nframes".into(), p.frames.into()),
        ("fs".into(), p.fs_hz.into()),
        ("tau".into(), p.tau_s.into()),
        ("diameter".into(), p.diameter_px.into()),
        ("neucoeff".into(), NEUCOEFF.into()),
        ("nplanes".into(), p.planes.into()),
        ("nchannels".into(), 1usize.into()),
        ("functional_chan".into(), 1usize.into()),
        ("iplane".into(), p.plane.into()),
        ("save_path".into(), path.as_str().into()),
        ("save_path0".into(), root.as_str().into()),
        ("yrange".into(), range(h)),
        ("xrange".into(), range(w)),
        ("meanImg".into(), image(h, w, img.mean.clone())),
        ("refImg".into(), image(h, w, reference)),
        (
            "max_proj".into(),
            image(h, w, img.max.iter().map(|&v| f32::from(v)).collect()),
        ),
        ("Vcorr".into(), image(h, w, img.correlation.clone())),
        (
            "badframes".into(),
            NdArray::vector(ArrayData::Bool(vec![false; p.frames])).into(),
        ),
    ];
    if let Some(m) = &p.motion {
        d.push(("yoff".into(), NdArray::vector(f32s(m.yoff)).into()));
        d.push(("xoff".into(), NdArray::vector(f32s(m.xoff)).into()));
        d.push(("corrXY".into(), NdArray::vector(f32s(m.corr_xy)).into()));
        d.push(("nblocks".into(), m.blocks.into()));
        d.push((
            "yoff1".into(),
            NdArray::matrix(p.frames, m.blocks, f32s(m.yoff1)).into(),
        ));
        d.push((
            "xoff1".into(),
            NdArray::matrix(p.frames, m.blocks, f32s(m.xoff1)).into(),
        ));
    }
    PyValue::Dict(d)
}

/// Writes `dir/suite2p/plane<p>/{stat,iscell,ops,F,Fneu,spks}.npy` (see the module docs) and
/// returns the plane folder.
pub fn write_plane(dir: &Path, p: &Suite2pPlane) -> Result<PathBuf, Suite2pError> {
    p.validate()?;
    let plane = dir.join("suite2p").join(format!("plane{}", p.plane));
    std::fs::create_dir_all(&plane).map_err(|source| Suite2pError::Io {
        path: plane.clone(),
        source,
    })?;
    let n = p.masks.len();
    let t = p.frames;
    let (h, w) = (p.masks.height(), p.masks.width());
    let mut owners = vec![0u16; h * w];
    for i in 0..n {
        for &q in p.masks.cell(i).0 {
            owners[q as usize] = owners[q as usize].saturating_add(1);
        }
    }
    let expected_area = std::f64::consts::PI * 0.25 * p.diameter_px * p.diameter_px;
    let stat: Vec<PyValue> = (0..n)
        .map(|i| stat_entry(p, i, &owners, expected_area))
        .collect();
    let iscell: Vec<f64> = (0..n)
        .flat_map(|i| {
            let prob = p.probability.get(i).copied().unwrap_or(1.0);
            let cell = p.is_cell.get(i).copied().unwrap_or(true);
            [if cell { 1.0 } else { 0.0 }, prob]
        })
        .collect();
    let files: [(&str, NdArray); 6] = [
        ("stat.npy", NdArray::vector(ArrayData::Object(stat))),
        ("iscell.npy", NdArray::matrix(n, 2, ArrayData::F64(iscell))),
        (
            "ops.npy",
            NdArray {
                shape: vec![],
                data: ArrayData::Object(vec![ops(p, &plane)]),
            },
        ),
        ("F.npy", NdArray::matrix(n, t, f32s(p.f))),
        ("Fneu.npy", NdArray::matrix(n, t, f32s(p.fneu))),
        ("spks.npy", NdArray::matrix(n, t, f32s(p.spks))),
    ];
    for (name, a) in files {
        let path = plane.join(name);
        std::fs::write(&path, npy::npy_bytes(&a))
            .map_err(|source| Suite2pError::Io { path, source })?;
    }
    Ok(plane)
}
