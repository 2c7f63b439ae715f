//! `twinloop twin predict` as a library function the binary can wire.
//!
//! Inputs are `.npy` files: stimulus u8 `[T, H, W]` (fnn divides by 255), pupil centre
//! `[T, 2]`, and pupil radius + treadmill velocity `[T, 2]` (f32 or f64, already standardised
//! as the twin was trained). Output: responses f32 `[T, units]` `.npy`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::TwinConfig;
use crate::device::{DevicePreference, select_device};
use crate::error::{ModelError, Result};
use crate::network::Twin;

/// Arguments of `twin predict`.
#[derive(Debug, Clone)]
pub struct PredictArgs {
    /// Weight file (safetensors, fnn names; see `scripts/convert_fnn.py`).
    pub weights: PathBuf,
    /// Config JSON (`TwinConfig`); `None` means fnn's released network with the units in the file.
    pub config: Option<PathBuf>,
    pub stimulus: PathBuf,
    pub pupil_center: PathBuf,
    pub behaviour: PathBuf,
    pub out: PathBuf,
    pub device: DevicePreference,
}

/// What a prediction run did.
#[derive(Debug, Clone)]
pub struct PredictSummary {
    pub frames: usize,
    pub units: usize,
    pub seconds: f64,
}

fn io_err(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn input_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Input {
        input: path.display().to_string(),
        reason: reason.into(),
    }
}

fn open_npy(path: &Path) -> Result<npyz::NpyFile<BufReader<File>>> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(f)).map_err(|e| io_err(path, e))?;
    if npy.order() != npyz::Order::C {
        return Err(input_err(path, "Fortran order; need C order"));
    }
    Ok(npy)
}

/// Reads a u8 array and its shape.
pub fn read_npy_u8(path: &Path) -> Result<(Vec<u64>, Vec<u8>)> {
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    let descr = npy.dtype().descr();
    if !descr.contains("u1") {
        return Err(input_err(path, format!("dtype {descr}; need uint8")));
    }
    let data = npy.into_vec::<u8>().map_err(|e| io_err(path, e))?;
    Ok((shape, data))
}

/// Reads an f32 or f64 array as f32, with its shape.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<u64>, Vec<f32>)> {
    let npy = open_npy(path)?;
    let shape = npy.shape().to_vec();
    let descr = npy.dtype().descr();
    let data = if descr.contains("f8") {
        npy.into_vec::<f64>()
            .map_err(|e| io_err(path, e))?
            .into_iter()
            .map(|v| v as f32)
            .collect()
    } else if descr.contains("f4") {
        npy.into_vec::<f32>().map_err(|e| io_err(path, e))?
    } else {
        return Err(input_err(
            path,
            format!("dtype {descr}; need float32 or float64"),
        ));
    };
    Ok((shape, data))
}

/// Writes an f32 C-order array.
pub fn write_npy_f32(path: &Path, shape: &[u64], data: &[f32]) -> Result<()> {
    use npyz::WriterBuilder;
    let f = File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(f))
        .begin_nd()
        .map_err(|e| io_err(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| io_err(path, e))?;
    w.finish().map_err(|e| io_err(path, e))
}

fn two_columns(path: &Path, frames: usize) -> Result<Vec<f32>> {
    let (shape, data) = read_npy_f32(path)?;
    if shape != [frames as u64, 2] {
        return Err(input_err(
            path,
            format!("shape {shape:?}; need [{frames}, 2]"),
        ));
    }
    // A NaN would silently poison the recurrent state of every later frame.
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(input_err(
            path,
            format!(
                "non-finite value at frame {}, column {}; interpolate or drop that frame",
                i / 2,
                i % 2
            ),
        ));
    }
    Ok(data)
}

/// A twin from a safetensors file and a config JSON (`None`: fnn's released network with the
/// unit count found in the file), every tensor checked.
pub fn load_twin(weights: &Path, config: Option<&Path>, dev: &candle_core::Device) -> Result<Twin> {
    let w = crate::weights::Weights::load(weights)?;
    let cfg = twin_config(&w, config)?;
    Twin::new(cfg, &w, dev)
}

/// The config `config` names, else fnn's released network sized to the units in `weights`.
pub fn twin_config(weights: &crate::weights::Weights, config: Option<&Path>) -> Result<TwinConfig> {
    Ok(match config {
        Some(p) => TwinConfig::from_json(&std::fs::read_to_string(p).map_err(|e| io_err(p, e))?)?,
        None => TwinConfig {
            units: crate::readout::count_units(weights, "readout.position.mu")?,
            ..TwinConfig::default()
        },
    })
}

/// Runs the twin over a clip, streaming frame by frame, and writes `[T, units]` responses.
pub fn predict(args: &PredictArgs) -> Result<PredictSummary> {
    let weights = crate::weights::Weights::load(&args.weights)?;
    let cfg = twin_config(&weights, args.config.as_deref())?;
    let (shape, frames) = read_npy_u8(&args.stimulus)?;
    let (h, w) = (cfg.stimulus_height as u64, cfg.stimulus_width as u64);
    if shape.len() != 3 || shape[1] != h || shape[2] != w {
        return Err(input_err(
            &args.stimulus,
            format!("shape {shape:?}; need [T, {h}, {w}]"),
        ));
    }
    let t = shape[0] as usize;
    let pupil = two_columns(&args.pupil_center, t)?;
    let behaviour = two_columns(&args.behaviour, t)?;
    let dev = select_device(args.device);
    let mut twin = Twin::new(cfg, &weights, &dev)?;
    let units = twin.config().units;
    let plane = (h * w) as usize;
    let start = Instant::now();
    let mut out = Vec::with_capacity(t * units);
    for i in 0..t {
        let r = twin.step_u8(
            &frames[i * plane..(i + 1) * plane],
            &pupil[2 * i..2 * i + 2],
            &behaviour[2 * i..2 * i + 2],
        )?;
        out.extend(r);
    }
    let seconds = start.elapsed().as_secs_f64();
    write_npy_f32(&args.out, &[t as u64, units as u64], &out)?;
    tracing::info!(frames = t, units, seconds, "twin predict done");
    Ok(PredictSummary {
        frames: t,
        units,
        seconds,
    })
}
