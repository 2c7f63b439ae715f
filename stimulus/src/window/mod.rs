//! The stimulus monitor: a fullscreen window (or, for tests, a plain one) with a wgpu surface
//! presented in FIFO mode, so each present waits for vsync; drawn with the same pipelines and
//! uniforms as the offscreen renderer (spherical correction, gamma LUT, photodiode patch).
//!
//! # Design constraints
//! - winit 0.30 on X11, its event loop on the caller's thread (`with_any_thread`): the
//!   [`crate::player::Player`] runs on the daemon's renderer thread, which owns the window, the
//!   surface and the device; window events are pumped without waiting on every frame.
//! - winit allows **one event loop per process**, ever (a second, or a retry after a failure,
//!   is [`WindowError::AlreadyOpened`]); the daemon opens one window per session process.
//! - The surface format must be a plain 8-bit unorm one: an sRGB format would re-encode the
//!   levels after the gamma LUT. FIFO with a frame latency of 1 keeps at most one frame
//!   queued, so the time `show` returns follows the flip by a constant the photodiode
//!   calibration (`twinloop calibrate latency`) measures.
//! - Every failure is a [`WindowError`] naming what to fix; the daemon falls back to the
//!   offscreen display and keeps recording.

pub mod xvfb;

use crate::content::FrameContent;
use crate::gamma::GammaLut;
use crate::geometry::Projection;
use crate::gpu::{AdapterSummary, GpuError, GpuRenderer, Output, padded_row, read_buffer};
use crate::photodiode::PatchFrame;
use crate::player::Display;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::platform::pump_events::EventLoopExtPumpEvents;
use winit::platform::x11::EventLoopBuilderExtX11;
use winit::window::{Fullscreen, Window, WindowId};

/// Which monitor shows the stimulus: its index in the window system's list, or its name
/// (`xrandr --listmonitors`, e.g. `"DP-1"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MonitorChoice {
    Index(usize),
    Name(String),
}

impl std::fmt::Display for MonitorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonitorChoice::Index(i) => write!(f, "{i}"),
            MonitorChoice::Name(n) => write!(f, "{n:?}"),
        }
    }
}

fn default_true() -> bool {
    true
}

/// How the stimulus window opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The monitor (default: the primary one, else the first).
    #[serde(default)]
    pub monitor: Option<MonitorChoice>,
    /// Borderless fullscreen on that monitor; `false`: a plain window of the monitor
    /// geometry's pixel size (for testing on a desktop or under Xvfb).
    #[serde(default = "default_true")]
    pub fullscreen: bool,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            monitor: None,
            fullscreen: true,
        }
    }
}

/// Why the stimulus window could not open or show a frame.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(
        "no window system for the stimulus window ({0}); set DISPLAY to the X server driving \
         the stimulus monitor, or use display.backend = \"offscreen\""
    )]
    NoDisplay(String),
    #[error(
        "a stimulus window was already opened in this process (winit allows one event loop \
         per process); run one session per daemon process"
    )]
    AlreadyOpened,
    #[error("display.window.monitor = {wanted} matches no monitor; available: {available:?}")]
    NoMonitor {
        wanted: MonitorChoice,
        available: Vec<String>,
    },
    #[error("creating the stimulus window: {0}")]
    Window(String),
    #[error("creating a wgpu surface on the stimulus window: {0}")]
    Surface(String),
    #[error(
        "no GPU adapter can present to the stimulus window ({0}); install the monitor's \
         Vulkan/GL driver (or Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)"
    )]
    NoAdapter(String),
    #[error("the surface offers no 8-bit unorm (non-sRGB) format; it offers {0:?}")]
    NoFormat(Vec<String>),
    #[error("the stimulus window was closed")]
    Closed,
    #[error("{0}")]
    Gpu(#[from] GpuError),
}

/// What the window opened on, for logs and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowInfo {
    pub monitor: String,
    pub size: (u32, u32),
    pub format: String,
    pub present_mode: String,
    pub adapter: AdapterSummary,
}

/// The winit side: creates the window when the loop first resumes, watches for close.
struct App {
    attrs: Option<(WindowConfig, (u32, u32))>,
    window: Option<Result<Arc<Window>, WindowError>>,
    monitor_name: String,
    closed: bool,
}

fn monitor_label(i: usize, m: &winit::monitor::MonitorHandle) -> String {
    let size = m.size();
    format!(
        "{i}: {} {}x{}",
        m.name().unwrap_or_else(|| "(unnamed)".into()),
        size.width,
        size.height
    )
}

impl App {
    fn open(&mut self, el: &ActiveEventLoop) -> Result<Arc<Window>, WindowError> {
        let Some((cfg, (w, h))) = self.attrs.take() else {
            return Err(WindowError::Window("window attributes already used".into()));
        };
        let monitors: Vec<_> = el.available_monitors().collect();
        let chosen = match &cfg.monitor {
            None => el.primary_monitor().or_else(|| monitors.first().cloned()),
            Some(MonitorChoice::Index(i)) => monitors.get(*i).cloned(),
            Some(MonitorChoice::Name(n)) => monitors
                .iter()
                .find(|m| m.name().as_deref() == Some(n.as_str()))
                .cloned(),
        };
        let chosen = match (chosen, &cfg.monitor) {
            (Some(m), _) => Some(m),
            (None, None) => None,
            (None, Some(wanted)) => {
                return Err(WindowError::NoMonitor {
                    wanted: wanted.clone(),
                    available: monitors
                        .iter()
                        .enumerate()
                        .map(|(i, m)| monitor_label(i, m))
                        .collect(),
                });
            }
        };
        self.monitor_name = chosen
            .as_ref()
            .and_then(|m| m.name())
            .unwrap_or_else(|| "(default)".into());
        let mut attrs = Window::default_attributes()
            .with_title("twinloop stimulus")
            .with_resizable(false)
            .with_inner_size(PhysicalSize::new(w, h));
        if cfg.fullscreen {
            attrs = attrs.with_fullscreen(Some(Fullscreen::Borderless(chosen)));
        } else if let Some(m) = &chosen {
            attrs = attrs.with_position(m.position());
        }
        let window = el
            .create_window(attrs)
            .map_err(|e| WindowError::Window(e.to_string()))?;
        if cfg.fullscreen {
            window.set_cursor_visible(false);
        }
        Ok(Arc::new(window))
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_none() {
            self.window = Some(self.open(el));
        }
    }

    fn window_event(&mut self, _el: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        if let WindowEvent::CloseRequested | WindowEvent::Destroyed = event {
            self.closed = true;
        }
    }
}

/// The stimulus monitor as a [`Display`]: each `show` draws the frame into the next surface
/// texture and presents it (FIFO: paced by vsync).
pub struct WindowDisplay {
    // Field order is drop order: the surface goes before the window it draws on.
    surface: wgpu::Surface<'static>,
    renderer: GpuRenderer,
    surface_config: wgpu::SurfaceConfiguration,
    projection: Projection,
    gamma: GammaLut,
    app: App,
    event_loop: EventLoop<()>,
    _window: Arc<Window>,
    info: WindowInfo,
    capture_next: bool,
    capture_buffer: Option<wgpu::Buffer>,
    /// The levels of the last captured frame (see [`capture_next`](Self::capture_next)).
    pub captured: Option<Vec<u8>>,
}

const FORMATS: [wgpu::TextureFormat; 2] = [
    wgpu::TextureFormat::Bgra8Unorm,
    wgpu::TextureFormat::Rgba8Unorm,
];

impl WindowDisplay {
    /// Open the window on the caller's thread and set up the surface. `projection` gives the
    /// frame size; when the surface comes out another size (a fullscreen monitor of another
    /// resolution), the projection is resampled to it (same physical geometry) and logged.
    pub fn open(
        projection: Projection,
        gamma: GammaLut,
        config: &WindowConfig,
    ) -> Result<WindowDisplay, WindowError> {
        let mut event_loop = match EventLoop::builder().with_any_thread(true).build() {
            Ok(el) => el,
            Err(winit::error::EventLoopError::RecreationAttempt) => {
                return Err(WindowError::AlreadyOpened);
            }
            Err(e) => return Err(WindowError::NoDisplay(e.to_string())),
        };
        let size = (projection.width() as u32, projection.height() as u32);
        let mut app = App {
            attrs: Some((config.clone(), size)),
            window: None,
            monitor_name: String::new(),
            closed: false,
        };
        // The window is created when the loop first resumes.
        for _ in 0..100 {
            event_loop.pump_app_events(Some(Duration::from_millis(10)), &mut app);
            if app.window.is_some() {
                break;
            }
        }
        let window = match app.window.take() {
            Some(Ok(w)) => w,
            Some(Err(e)) => return Err(e),
            None => return Err(WindowError::Window("the event loop never resumed".into())),
        };
        // Let the window manager map it (and apply fullscreen) before sizing the surface.
        for _ in 0..5 {
            event_loop.pump_app_events(Some(Duration::from_millis(10)), &mut app);
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_with_display_handle_from_env(
                Box::new(event_loop.owned_display_handle()),
            ));
        let surface = instance
            .create_surface(Arc::clone(&window))
            .map_err(|e| WindowError::Surface(e.to_string()))?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: Some(&surface),
            ..Default::default()
        }))
        .map_err(|e| WindowError::NoAdapter(e.to_string()))?;
        let caps = surface.get_capabilities(&adapter);
        let Some(format) = FORMATS.into_iter().find(|f| caps.formats.contains(f)) else {
            return Err(WindowError::NoFormat(
                caps.formats.iter().map(|f| format!("{f:?}")).collect(),
            ));
        };
        let inner = window.inner_size();
        let (w, h) = (inner.width.max(1), inner.height.max(1));
        let projection = if (w, h) != size {
            tracing::warn!(
                configured = ?size,
                surface = ?(w, h),
                "the stimulus window is not the configured size; rendering at the window's \
                 size over the same physical geometry"
            );
            projection.with_resolution(w as usize, h as usize)
        } else {
            projection
        };
        let mut surface_config = surface
            .get_default_config(&adapter, w, h)
            .ok_or_else(|| WindowError::Surface("the adapter cannot present to it".into()))?;
        surface_config.format = format;
        surface_config.present_mode = wgpu::PresentMode::Fifo;
        surface_config.desired_maximum_frame_latency = 1;
        surface_config.alpha_mode = if caps.alpha_modes.contains(&wgpu::CompositeAlphaMode::Opaque)
        {
            wgpu::CompositeAlphaMode::Opaque
        } else {
            wgpu::CompositeAlphaMode::Auto
        };
        let can_copy = caps.usages.contains(wgpu::TextureUsages::COPY_SRC);
        if can_copy {
            surface_config.usage |= wgpu::TextureUsages::COPY_SRC;
        }
        let (device, queue, summary) = crate::gpu::open_device(&adapter)?;
        surface.configure(&device, &surface_config);
        let renderer = GpuRenderer::on_device(
            device,
            queue,
            summary.clone(),
            w as usize,
            h as usize,
            Some(format),
        )?;
        renderer.check()?;
        let capture_buffer = can_copy.then(|| {
            renderer.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("window capture"),
                size: (padded_row(w as usize * 4) * h as usize) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let info = WindowInfo {
            monitor: app.monitor_name.clone(),
            size: (w, h),
            format: format!("{format:?}"),
            present_mode: "Fifo".into(),
            adapter: summary,
        };
        tracing::info!(
            monitor = %info.monitor,
            width = w,
            height = h,
            format = %info.format,
            adapter = %info.adapter.name,
            "stimulus window open"
        );
        Ok(WindowDisplay {
            surface,
            renderer,
            surface_config,
            projection,
            gamma,
            app,
            event_loop,
            _window: window,
            info,
            capture_next: false,
            capture_buffer,
            captured: None,
        })
    }

    pub fn info(&self) -> &WindowInfo {
        &self.info
    }

    /// The projection frames are drawn over (the window's size).
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Copy the next shown frame back into [`captured`](Self::captured) (the first channel of
    /// each pixel: the shaders write gray). False when the surface does not allow copies.
    pub fn capture_next(&mut self) -> bool {
        self.capture_next = self.capture_buffer.is_some();
        self.capture_next
    }

    fn present(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), WindowError> {
        self.event_loop
            .pump_app_events(Some(Duration::ZERO), &mut self.app);
        if self.app.closed {
            return Err(WindowError::Closed);
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t) => t,
            wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            other => {
                // Outdated or lost (a mode change): reconfigure; this frame is missed.
                self.surface
                    .configure(self.renderer.device(), &self.surface_config);
                return Err(WindowError::Surface(format!(
                    "could not acquire a surface texture: {}",
                    surface_status(&other)
                )));
            }
        };
        let out = Output {
            gamma: Some(&self.gamma),
            patch: Some(patch),
        };
        let kind = self.renderer.prepare(content, &self.projection, out)?;
        let view = frame
            .texture
            .create_view(&wgpu::TextureViewDescriptor::default());
        let mut enc =
            self.renderer
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("window frame"),
                });
        self.renderer.draw(&mut enc, &view, kind);
        let capture = self
            .capture_next
            .then_some(())
            .and(self.capture_buffer.as_ref());
        let (w, h) = (self.surface_config.width, self.surface_config.height);
        let row = padded_row(w as usize * 4);
        if let Some(buffer) = capture {
            enc.copy_texture_to_buffer(
                wgpu::TexelCopyTextureInfo {
                    texture: &frame.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row as u32),
                        rows_per_image: Some(h),
                    },
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
        }
        self.renderer.queue().submit(Some(enc.finish()));
        self.renderer.queue().present(frame);
        self.renderer.check()?;
        if let Some(buffer) = capture {
            let mut levels = vec![0u8; w as usize * h as usize];
            read_buffer(
                self.renderer.device(),
                buffer,
                row,
                4,
                w as usize,
                h as usize,
                &mut levels,
            )?;
            self.captured = Some(levels);
            self.capture_next = false;
        }
        Ok(())
    }
}

fn surface_status(s: &wgpu::CurrentSurfaceTexture) -> &'static str {
    match s {
        wgpu::CurrentSurfaceTexture::Success(_) => "success",
        wgpu::CurrentSurfaceTexture::Suboptimal(_) => "suboptimal",
        wgpu::CurrentSurfaceTexture::Timeout => "timeout",
        wgpu::CurrentSurfaceTexture::Occluded => "occluded",
        wgpu::CurrentSurfaceTexture::Outdated => "outdated",
        wgpu::CurrentSurfaceTexture::Lost => "lost",
        wgpu::CurrentSurfaceTexture::Validation => "validation error",
    }
}

impl Display for WindowDisplay {
    fn show(&mut self, content: &FrameContent, patch: &PatchFrame) -> Result<(), String> {
        self.present(content, patch).map_err(|e| e.to_string())
    }
}
