//! What the twin learns from and is evaluated on: one animal's recording, aligned per twin frame.
//!
//! One row per twin frame (the imaging frame rate): the stimulus frame on screen at that time at
//! the twin's resolution, the pupil centre (perspective input), pupil radius and running speed
//! (modulation input), and each unit's response (deconvolved activity; NaN where a unit was not
//! observed). `segments` are the spans without gaps, so clips never straddle one; `trials` say
//! which frames showed which stimulus, so repeats can be found for CC_norm.
//!
//! On disk it is a directory the `twin predict` inputs can be read from too:
//! `stimulus.npy` u8 `[T, H, W]`, `perspective.npy` f32 `[T, 2]`, `modulation.npy` f32 `[T, 2]`,
//! `responses.npy` f32 `[T, U]`, and `recording.json` (rate, unit ids, segments, trials).

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cli::{read_npy_f32, read_npy_u8, write_npy_f32};
use crate::error::{ModelError, Result};

/// One presented stimulus: its frames in the recording and a key naming what was shown (equal
/// keys are repeats of the same stimulus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTrial {
    pub start: usize,
    pub frames: usize,
    pub stimulus: String,
}

/// The metadata half of a recording (`recording.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingMeta {
    /// Twin frames per second.
    pub frame_hz: f64,
    /// One id per response column (the session's cell ids).
    pub unit_ids: Vec<u32>,
    /// Gap-free spans of frames, `[start, end)`.
    pub segments: Vec<Range<usize>>,
    pub trials: Vec<RecordedTrial>,
    /// How the behaviour columns were standardised from the raw values, when they were
    /// (`twinloop twin recording` z-scores each per session); absent: as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardisation: Option<BehaviourStandardisation>,
}

/// Per-column mean and s.d. taken off the raw behaviour: stored = (raw - mean) / sd.
/// Perspective: pupil centre x, y (eye-camera px); modulation: pupil radius (eye-camera px),
/// treadmill velocity (cm/s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BehaviourStandardisation {
    pub perspective_mean: [f64; 2],
    pub perspective_sd: [f64; 2],
    pub modulation_mean: [f64; 2],
    pub modulation_sd: [f64; 2],
}

/// One animal's recording, row-major per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub height: usize,
    pub width: usize,
    /// `[T, H, W]` u8, 128 = mean gray.
    pub frames: Vec<u8>,
    /// Pupil centre `[T, 2]`.
    pub perspective: Vec<f32>,
    /// Pupil radius and treadmill velocity `[T, 2]`.
    pub modulation: Vec<f32>,
    /// `[T, U]`, NaN = not observed.
    pub responses: Vec<f32>,
    pub meta: RecordingMeta,
}

fn input_err(what: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Input {
        input: what.to_string(),
        reason: reason.into(),
    }
}

impl Recording {
    /// Frames in the recording.
    pub fn len(&self) -> usize {
        self.frames.len() / (self.height * self.width).max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Response columns.
    pub fn units(&self) -> usize {
        self.meta.unit_ids.len()
    }

    /// Pixels of frame `t`.
    pub fn frame(&self, t: usize) -> &[u8] {
        let p = self.height * self.width;
        &self.frames[t * p..(t + 1) * p]
    }

    /// Responses of frame `t`.
    pub fn response(&self, t: usize) -> &[f32] {
        let u = self.units();
        &self.responses[t * u..(t + 1) * u]
    }

    /// The first `frames` frames (segments cut, trials that do not fit dropped): the same
    /// animal with less data, for data-efficiency curves.
    pub fn head(&self, frames: usize) -> Recording {
        let t = frames.min(self.len());
        let (p, u) = (self.height * self.width, self.units());
        let mut meta = self.meta.clone();
        meta.segments = meta
            .segments
            .iter()
            .filter(|s| s.start < t)
            .map(|s| s.start..s.end.min(t))
            .collect();
        meta.trials.retain(|tr| tr.start + tr.frames <= t);
        Recording {
            height: self.height,
            width: self.width,
            frames: self.frames[..t * p].to_vec(),
            perspective: self.perspective[..t * 2].to_vec(),
            modulation: self.modulation[..t * 2].to_vec(),
            responses: self.responses[..t * u].to_vec(),
            meta,
        }
    }

    /// Checks every array against the frame count and the metadata.
    pub fn validate(&self) -> Result<()> {
        let t = self.len();
        if self.height < 2 || self.width < 2 {
            return Err(input_err("stimulus", "frames must be at least 2x2"));
        }
        if self.frames.len() != t * self.height * self.width {
            return Err(input_err("stimulus", "pixel count is not T x H x W"));
        }
        for (name, len, cols) in [
            ("perspective", self.perspective.len(), 2),
            ("modulation", self.modulation.len(), 2),
            ("responses", self.responses.len(), self.units()),
        ] {
            if len != t * cols {
                return Err(input_err(
                    name,
                    format!("{len} values; need {t} frames x {cols}"),
                ));
            }
        }
        if let Some(i) = self
            .perspective
            .iter()
            .chain(&self.modulation)
            .position(|v| !v.is_finite())
        {
            return Err(input_err(
                "perspective/modulation",
                format!(
                    "non-finite behaviour value at flat index {i}; interpolate or drop the frame"
                ),
            ));
        }
        if !(self.meta.frame_hz.is_finite() && self.meta.frame_hz > 0.0) {
            return Err(input_err("recording.json frame_hz", "must be positive"));
        }
        for s in &self.meta.segments {
            if s.start >= s.end || s.end > t {
                return Err(input_err(
                    "recording.json segments",
                    format!("segment {s:?} is empty or outside the {t} frames"),
                ));
            }
        }
        for tr in &self.meta.trials {
            if tr.start + tr.frames > t {
                return Err(input_err(
                    "recording.json trials",
                    format!("trial at frame {} runs past the {t} frames", tr.start),
                ));
            }
        }
        Ok(())
    }

    /// Writes the recording as a directory (see the module docs).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.validate()?;
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let t = self.len() as u64;
        write_npy_u8(
            &dir.join("stimulus.npy"),
            &[t, self.height as u64, self.width as u64],
            &self.frames,
        )?;
        write_npy_f32(&dir.join("perspective.npy"), &[t, 2], &self.perspective)?;
        write_npy_f32(&dir.join("modulation.npy"), &[t, 2], &self.modulation)?;
        write_npy_f32(
            &dir.join("responses.npy"),
            &[t, self.units() as u64],
            &self.responses,
        )?;
        let path = dir.join("recording.json");
        let text = serde_json::to_string_pretty(&self.meta)
            .map_err(|e| input_err("recording.json", e.to_string()))?;
        std::fs::write(&path, text).map_err(|source| ModelError::Io { path, source })
    }

    /// Reads a recording directory written by [`save`](Self::save) (or by hand with numpy).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("recording.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let meta: RecordingMeta = serde_json::from_str(&text)
            .map_err(|e| input_err(&path.display().to_string(), e.to_string()))?;
        let (shape, frames) = read_npy_u8(&dir.join("stimulus.npy"))?;
        if shape.len() != 3 {
            return Err(input_err(
                "stimulus.npy",
                format!("shape {shape:?}; need [T, H, W]"),
            ));
        }
        let t = shape[0];
        let two = |name: &str| -> Result<Vec<f32>> {
            let (s, d) = read_npy_f32(&dir.join(name))?;
            if s != [t, 2] {
                return Err(input_err(name, format!("shape {s:?}; need [{t}, 2]")));
            }
            Ok(d)
        };
        let perspective = two("perspective.npy")?;
        let modulation = two("modulation.npy")?;
        let (rs, responses) = read_npy_f32(&dir.join("responses.npy"))?;
        let u = meta.unit_ids.len() as u64;
        if rs != [t, u] {
            return Err(input_err(
                "responses.npy",
                format!("shape {rs:?}; need [{t}, {u}] (one column per unit id in recording.json)"),
            ));
        }
        let rec = Self {
            height: shape[1] as usize,
            width: shape[2] as usize,
            frames,
            perspective,
            modulation,
            responses,
            meta,
        };
        rec.validate()?;
        Ok(rec)
    }
}

/// Writes a u8 C-order array.
pub fn write_npy_u8(path: &Path, shape: &[u64], data: &[u8]) -> Result<()> {
    use npyz::WriterBuilder;
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::create(path).map_err(io)?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(std::io::BufWriter::new(f))
        .begin_nd()
        .map_err(io)?;
    w.extend(data.iter().copied()).map_err(io)?;
    w.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Recording {
        let (t, h, w, u) = (6, 3, 4, 2);
        Recording {
            height: h,
            width: w,
            frames: (0..t * h * w).map(|i| (i * 7 % 256) as u8).collect(),
            perspective: (0..t * 2).map(|i| i as f32 * 0.1).collect(),
            modulation: (0..t * 2).map(|i| -(i as f32)).collect(),
            responses: (0..t * u)
                .map(|i| if i == 3 { f32::NAN } else { i as f32 })
                .collect(),
            meta: RecordingMeta {
                frame_hz: 30.0,
                unit_ids: vec![4, 9],
                segments: vec![0..4, 5..6],
                trials: vec![RecordedTrial {
                    start: 1,
                    frames: 3,
                    stimulus: "grating/0".into(),
                }],
                standardisation: None,
            },
        }
    }

    #[test]
    fn round_trips_through_a_directory() {
        let dir = std::env::temp_dir().join(format!("twinloop-rec-{}", std::process::id()));
        let rec = small();
        rec.save(&dir).unwrap();
        let back = Recording::load(&dir).unwrap();
        assert_eq!(back.frames, rec.frames);
        assert_eq!(back.meta, rec.meta);
        assert_eq!(back.perspective, rec.perspective);
        assert!(back.responses[3].is_nan());
        assert_eq!(back.responses[4], 4.0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn head_keeps_the_first_frames_and_what_fits_in_them() {
        let rec = small();
        let h = rec.head(3);
        assert_eq!(h.len(), 3);
        assert_eq!(h.frames, rec.frames[..3 * 12]);
        assert_eq!(h.responses[4], rec.responses[4]);
        assert!(h.responses[3].is_nan() && h.responses.len() == 6);
        assert_eq!(h.meta.segments, vec![0..3]);
        assert!(h.meta.trials.is_empty(), "the trial runs to frame 4");
        h.validate().unwrap();
        assert_eq!(rec.head(4).meta.trials.len(), 1);
    }

    #[test]
    fn bad_shapes_and_nan_behaviour_are_named() {
        let mut rec = small();
        rec.modulation[5] = f32::NAN;
        let e = rec.validate().unwrap_err().to_string();
        assert!(e.contains("non-finite behaviour"), "{e}");
        let mut rec = small();
        rec.responses.pop();
        let e = rec.validate().unwrap_err().to_string();
        assert!(e.contains("responses"), "{e}");
        let mut rec = small();
        rec.meta.segments.push(5..9);
        let e = rec.validate().unwrap_err().to_string();
        assert!(e.contains("segments"), "{e}");
    }
}
