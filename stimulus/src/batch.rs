//! Offline rendering of a stimulus or trial list to files (`twinloop render`): the monitor's
//! frames as PNGs and the twin's frames as one `.npy` u8 [T, H, W].
//!
//! ```toml
//! fps = 60.0                       # display rate (default 60)
//! gray_s = 0.5                     # gray before/between/after trials (default 0)
//! [monitor]                        # the display (default: MonitorGeometry::default())
//! width_px = 480
//! height_px = 270
//! width_cm = 52.0
//! height_cm = 29.25
//! distance_cm = 15.0
//! [twin]                           # the twin's input size (default 256 x 144)
//! width = 256
//! height = 144
//! [[trials]]
//! duration_s = 1.0
//! spec = { kind = "grating", direction_deg = 0, sf_cpd = 0.04, tf_hz = 2, contrast = 1 }
//! ```
//! or, for one stimulus, `duration_s = 1.0` and a `[stimulus]` table instead of `[[trials]]`.
//! Optional: `[photodiode]` (draws the patch on the PNGs), `gamma = { table = [...] }`
//! (applies the inverse LUT to the PNGs), `gpu = false` (CPU reference only), a linear
//! `[view]` instead of `[monitor]`.

use crate::content::{FrameContent, Prepared, clip};
use crate::cpu;
use crate::gamma::GammaLut;
use crate::geometry::{MonitorGeometry, Projection};
use crate::gpu::{GpuRenderer, Output};
use crate::photodiode::{PatchFrame, PhotodiodePatch};
use crate::spec::{Showing, StimulusSpec, Trial, TrialList};
use crate::twin::{TwinRenderer, TwinView};
use crate::view::ViewGeometry;
use serde::Deserialize;
use std::io::Write;
use std::path::Path;

fn default_fps() -> f64 {
    60.0
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderFile {
    #[serde(default = "default_fps")]
    pub fps: f64,
    #[serde(default)]
    pub gray_s: f64,
    #[serde(default = "default_true")]
    pub gpu: bool,
    pub monitor: Option<MonitorGeometry>,
    pub view: Option<ViewGeometry>,
    #[serde(default)]
    pub twin: TwinView,
    pub photodiode: Option<PhotodiodePatch>,
    pub gamma: Option<GammaLut>,
    pub trials: Option<Vec<Trial>>,
    pub stimulus: Option<StimulusSpec>,
    pub duration_s: Option<f64>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSummary {
    pub frames: u64,
    pub display_size: (usize, usize),
    pub twin_size: (usize, usize),
    /// "gpu: <adapter>" or "cpu (<why>)".
    pub renderer: String,
    pub seconds: f64,
}

impl RenderFile {
    pub fn parse(text: &str) -> Result<RenderFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The trial list this file describes, checked against the display's field of view.
    pub fn trial_list(&self) -> Result<(TrialList, Projection), String> {
        let projection = match (&self.monitor, &self.view) {
            (Some(_), Some(_)) => return Err("give [monitor] or [view], not both".into()),
            (Some(m), None) => Projection::Monitor(*m),
            (None, Some(v)) => Projection::Linear(*v),
            (None, None) => Projection::Monitor(MonitorGeometry::default()),
        };
        if let Projection::Monitor(m) = &projection {
            m.validate().map_err(|e| e.to_string())?;
        }
        if !(self.fps > 0.0 && self.fps <= 1000.0) {
            return Err(format!("fps = {} must be in (0, 1000]", self.fps));
        }
        let trials = match (&self.trials, &self.stimulus, self.duration_s) {
            (Some(t), None, None) => t.clone(),
            (None, Some(s), Some(d)) => vec![Trial {
                spec: s.clone(),
                duration_s: d,
            }],
            (None, Some(_), None) => return Err("[stimulus] needs duration_s".into()),
            _ => {
                return Err("give either [[trials]] or [stimulus] with duration_s".into());
            }
        };
        let list = TrialList {
            gray_s: self.gray_s,
            trials,
        };
        list.validate(Some(&projection.field_of_view()))
            .map_err(|e| e.to_string())?;
        Ok((list, projection))
    }
}

/// Render every frame of `file` into `out_dir`: `frame_NNNNN.png` (display), `twin.npy`
/// (u8 [T, H, W]) and `frames.csv` (frame, t_s, trial, stimulus_frame, onset).
pub fn render_to_dir(file: &RenderFile, out_dir: &Path) -> Result<RenderSummary, String> {
    let start = std::time::Instant::now();
    let (list, projection) = file.trial_list()?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut prepared = Vec::new();
    for (i, t) in list.trials.iter().enumerate() {
        prepared.push(Prepared::new(&t.spec).map_err(|e| format!("trials[{i}]: {e}"))?);
    }
    let mut gray = Prepared::gray();
    let (w, h) = (projection.width(), projection.height());
    let (mut gpu, renderer) = if file.gpu {
        match GpuRenderer::new(w, h) {
            Ok(g) => {
                let name = format!("gpu: {} ({})", g.adapter().name, g.adapter().backend);
                (Some(g), name)
            }
            Err(e) => (None, format!("cpu ({e})")),
        }
    } else {
        (None, "cpu (gpu = false)".to_string())
    };
    let mut twin = TwinRenderer::new(file.twin, &projection, gpu.is_some());
    let total = list.total_frames(file.fps);
    let mut display = vec![0u8; w * h];
    let mut twin_frame = vec![0u8; file.twin.pixels()];
    let mut twin_all = Vec::with_capacity(total as usize * file.twin.pixels());
    let csv_path = out_dir.join("frames.csv");
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?,
    );
    writeln!(csv, "frame,t_s,trial,stimulus_frame,onset").map_err(|e| e.to_string())?;
    for f in 0..total {
        let showing = list.at_frame(f, file.fps);
        let (content, trial, k): (FrameContent, i64, i64) = match showing {
            Showing::Gray => (gray.frame(0.0), -1, -1),
            Showing::Trial { index, frame } => (
                prepared[index].frame(frame as f64 / file.fps),
                index as i64,
                frame as i64,
            ),
        };
        let patch = file.photodiode.map(|p| PatchFrame {
            patch: p,
            level: p.level(f, (k >= 0).then_some(k as u64)),
        });
        let gamma = file.gamma.as_ref();
        let shown_on_gpu = gpu.as_mut().map(|g| {
            let out = Output {
                gamma,
                patch: patch.as_ref(),
            };
            g.render(&content, &projection, out, &mut display)
        });
        if !matches!(shown_on_gpu, Some(Ok(()))) {
            let identity = GammaLut::identity();
            cpu::render_display(
                &content,
                &projection,
                gamma.unwrap_or(&identity),
                patch.as_ref(),
                &mut display,
            );
        }
        if let Some(Err(e)) = shown_on_gpu {
            return Err(format!("frame {f}: GPU error: {e}"));
        }
        clip::write_png(&out_dir.join(format!("frame_{f:05}.png")), w, h, &display)?;
        if let Some(e) = twin.render(&content, &mut twin_frame) {
            return Err(format!("frame {f}: GPU error (twin view): {e}"));
        }
        twin_all.extend_from_slice(&twin_frame);
        writeln!(
            csv,
            "{f},{:.6},{trial},{k},{}",
            f as f64 / file.fps,
            (k == 0) as u8
        )
        .map_err(|e| e.to_string())?;
    }
    csv.flush().map_err(|e| e.to_string())?;
    let shape = [total, file.twin.height as u64, file.twin.width as u64];
    clip::write_npy_u8(&out_dir.join("twin.npy"), &shape, &twin_all)?;
    Ok(RenderSummary {
        frames: total,
        display_size: (w, h),
        twin_size: (file.twin.width, file.twin.height),
        renderer,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_trial_list_to_pngs_and_npy() {
        let text = r#"
fps = 10.0
gray_s = 0.1
gpu = false
[view]
width = 32
height = 18
azimuth_deg = [-60.0, 60.0]
elevation_deg = [-34.0, 34.0]
[twin]
width = 16
height = 9
[photodiode]
size_px = 4
[[trials]]
duration_s = 0.3
spec = { kind = "grating", direction_deg = 0, sf_cpd = 0.04, tf_hz = 2, contrast = 1 }
"#;
        let file = RenderFile::parse(text).unwrap();
        let dir = std::env::temp_dir().join(format!("twinloop-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = render_to_dir(&file, &dir).unwrap();
        assert_eq!(s.frames, 5);
        assert!(dir.join("frame_00004.png").exists());
        let (h, w, px) = clip::read_png(&dir.join("frame_00001.png")).unwrap();
        assert_eq!((h, w), (18, 32));
        // Frame 1 is the onset: the photodiode patch (bottom-left) is white.
        assert_eq!(px[17 * 32], 255);
        let twin = clip::load_movie(&dir.join("twin.npy")).unwrap();
        assert_eq!((twin.frames, twin.height, twin.width), (5, 9, 16));
        assert!(twin.frame(0).iter().all(|&v| v == cpu::MEAN_GRAY));
        assert!(twin.frame(1).iter().any(|&v| v > 200));
        let csv = std::fs::read_to_string(dir.join("frames.csv")).unwrap();
        assert!(
            csv.lines().nth(2).unwrap().starts_with("1,0.100000,0,0,1"),
            "{csv}"
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = RenderFile::parse("fps = 60\nduration_s = 1\n[stimulus]\nkind = \"gray\"\n[view]\nwidth=4\nheight=4\nazimuth_deg=[0.0,1.0]\nelevation_deg=[0.0,1.0]\n[monitor]\nwidth_px=4\nheight_px=4\nwidth_cm=1\nheight_cm=1\ndistance_cm=1\n")
            .unwrap()
            .trial_list()
            .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = RenderFile::parse("[stimulus]\nkind = \"gray\"\n")
            .unwrap()
            .trial_list()
            .unwrap_err();
        assert!(e.contains("duration_s"), "{e}");
        assert!(RenderFile::parse("fsp = 60\n").unwrap_err().contains("fsp"));
    }
}
