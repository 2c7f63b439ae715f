//! What the twin sees: the same content as the monitor, over the same projection, at the
//! twin's input resolution (fnn: 144 × 256 grayscale), before gamma and without the
//! photodiode patch — the luminance levels the stimulus asked for.

use crate::content::FrameContent;
use crate::cpu;
use crate::geometry::Projection;
use crate::gpu::{GpuError, GpuRenderer, Output};
use serde::{Deserialize, Serialize};

fn default_width() -> usize {
    256
}
fn default_height() -> usize {
    144
}

/// The twin's input frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinView {
    #[serde(default = "default_width")]
    pub width: usize,
    #[serde(default = "default_height")]
    pub height: usize,
}

impl Default for TwinView {
    fn default() -> Self {
        TwinView {
            width: default_width(),
            height: default_height(),
        }
    }
}

impl TwinView {
    /// The display's projection sampled at the twin's resolution.
    pub fn projection(&self, display: &Projection) -> Projection {
        display.with_resolution(self.width, self.height)
    }

    pub fn pixels(&self) -> usize {
        self.width * self.height
    }
}

/// Renders twin frames on the GPU when one is available, else on the CPU reference.
pub struct TwinRenderer {
    projection: Projection,
    gpu: Option<GpuRenderer>,
    /// Why the GPU is not used, when it is not.
    pub gpu_unavailable: Option<String>,
}

impl TwinRenderer {
    /// `use_gpu = false` forces the CPU; a GPU that fails to start falls back to the CPU with
    /// the reason kept in `gpu_unavailable`.
    pub fn new(view: TwinView, display: &Projection, use_gpu: bool) -> TwinRenderer {
        let projection = view.projection(display);
        let (gpu, gpu_unavailable) = if use_gpu {
            match GpuRenderer::new(view.width, view.height) {
                Ok(g) => (Some(g), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, Some("CPU renderer requested".into()))
        };
        TwinRenderer {
            projection,
            gpu,
            gpu_unavailable,
        }
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Render one twin frame into `out` (height × width u8). A GPU error falls back to the CPU
    /// for this frame and is returned alongside.
    pub fn render(&mut self, content: &FrameContent, out: &mut [u8]) -> Option<GpuError> {
        if let Some(g) = &mut self.gpu {
            match g.render(content, &self.projection, Output::default(), out) {
                Ok(()) => return None,
                Err(e) => {
                    cpu::render_content(content, &self.projection, out);
                    return Some(e);
                }
            }
        }
        cpu::render_content(content, &self.projection, out);
        None
    }
}
