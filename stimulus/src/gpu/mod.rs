//! The wgpu renderer: one fullscreen triangle per frame, a WGSL fragment shader per kind of
//! content, rendering offscreen into an `R8Unorm` texture that is read back (rows padded to
//! 256 bytes) — for the twin, for `twinloop render`, and for the tests against [`crate::cpu`].
//!
//! Noise, clips and images travel as an `R32Float` field texture (uploaded only when the
//! field changes), dots as a storage buffer, the gamma LUT as a 256-entry storage buffer.
//! Any wgpu error is caught (never a panic) and returned, so the caller can show gray and go
//! on; no adapter is [`GpuError::NoAdapter`] with what to install.
//!
//! The same pipelines draw into a window's surface for the stimulus monitor
//! ([`crate::window`]).

mod params;
pub mod shaders;

pub use params::{Params, Resolved, resolve};
pub use shaders::ShaderKind;

use crate::content::{Dot, Field, FrameContent};
use crate::gamma::{GammaLut, LUT_LEN};
use crate::geometry::Projection;
use crate::photodiode::PatchFrame;
use crate::spec::MAX_DOTS;
use std::sync::{Arc, Mutex};

/// Why the GPU renderer could not start or render.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter available ({0}); without a GPU, install Mesa's software Vulkan driver \
         (apt-get install mesa-vulkan-drivers libvulkan1) or run with the CPU renderer"
    )]
    NoAdapter(String),
    #[error("GPU device request failed: {0}")]
    Device(String),
    #[error("frame is {got:?} (width, height) but the renderer targets {want:?}")]
    SizeMismatch {
        got: (usize, usize),
        want: (usize, usize),
    },
    #[error("{what} of {got} exceeds the GPU limit {max}")]
    TooLarge {
        what: &'static str,
        got: u64,
        max: u64,
    },
    #[error("GPU error: {0}")]
    Wgpu(String),
    #[error("GPU readback failed: {0}")]
    Readback(String),
}

/// How a frame leaves the renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output<'a> {
    /// Apply this inverse gamma LUT (the monitor's drive levels); `None` = pre-gamma levels
    /// (what the twin sees).
    pub gamma: Option<&'a GammaLut>,
    /// Draw the photodiode patch at this level.
    pub patch: Option<&'a PatchFrame>,
}

/// The adapter a renderer runs on, for logs and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// Request an adapter (any backend wgpu finds; `WGPU_BACKEND=vulkan|gl` narrows it) and a
/// device with the adapter's own limits.
fn device(
    backends: Option<wgpu::Backends>,
) -> Result<(wgpu::Device, wgpu::Queue, AdapterSummary), GpuError> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        ..Default::default()
    }))
    .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
    open_device(&adapter)
}

/// A device with `adapter`'s own limits, and the adapter's summary.
pub(crate) fn open_device(
    adapter: &wgpu::Adapter,
) -> Result<(wgpu::Device, wgpu::Queue, AdapterSummary), GpuError> {
    let info = adapter.get_info();
    let summary = AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info),
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("twinloop-stimulus"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| GpuError::Device(e.to_string()))?;
    Ok((device, queue, summary))
}

/// Bytes per row of a copy, padded to wgpu's 256-byte alignment.
pub fn padded_row(bytes: usize) -> usize {
    let a = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    bytes.div_ceil(a) * a
}

/// An offscreen renderer of a fixed size.
pub struct GpuRenderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    errors: Arc<Mutex<Vec<String>>>,
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::RenderPipeline>,
    params: wgpu::Buffer,
    lut: wgpu::Buffer,
    lut_loaded: Option<Vec<f32>>,
    dots: wgpu::Buffer,
    field: wgpu::Texture,
    field_key: u64,
    bind_group: wgpu::BindGroup,
    /// The offscreen target and its readback buffer (`None` for a renderer that draws into a
    /// window's surface).
    offscreen: Option<(wgpu::Texture, wgpu::Buffer)>,
    width: usize,
    height: usize,
}

const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::R8Unorm;

fn field_texture(device: &wgpu::Device, w: u32, h: u32) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("field"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

impl GpuRenderer {
    /// A renderer for `width` × `height` frames on the first adapter found.
    pub fn new(width: usize, height: usize) -> Result<GpuRenderer, GpuError> {
        GpuRenderer::with_backends(width, height, None)
    }

    /// Like [`new`](Self::new), limited to `backends` (`None`: all, or `WGPU_BACKEND`).
    pub fn with_backends(
        width: usize,
        height: usize,
        backends: Option<wgpu::Backends>,
    ) -> Result<GpuRenderer, GpuError> {
        let (device, queue, adapter) = device(backends)?;
        GpuRenderer::on_device(device, queue, adapter, width, height, None)
    }

    /// A renderer on an open device. `surface_format`: draw into a window's surface of that
    /// format (no offscreen target; see [`draw`](Self::draw)); `None`: offscreen `R8Unorm`
    /// with readback ([`render`](Self::render)). The shaders write gray to every channel, so
    /// any 8-bit unorm colour format shows the same levels.
    pub(crate) fn on_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: AdapterSummary,
        width: usize,
        height: usize,
        surface_format: Option<wgpu::TextureFormat>,
    ) -> Result<GpuRenderer, GpuError> {
        let format = surface_format.unwrap_or(FORMAT);
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let max_dim = device.limits().max_texture_dimension_2d as u64;
        for (what, got) in [
            ("frame width", width as u64),
            ("frame height", height as u64),
        ] {
            if got == 0 || got > max_dim {
                return Err(GpuError::TooLarge {
                    what,
                    got,
                    max: max_dim,
                });
            }
        }
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty,
            count: None,
        };
        let storage = wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: true },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("stimulus"),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(1, storage),
                entry(
                    2,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                ),
                entry(3, storage),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("stimulus"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipelines = ShaderKind::ALL
            .iter()
            .map(|kind| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kind.name()),
                    source: wgpu::ShaderSource::Wgsl(kind.source().into()),
                });
                device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                    label: Some(kind.name()),
                    layout: Some(&pipeline_layout),
                    vertex: wgpu::VertexState {
                        module: &module,
                        entry_point: Some("vs_main"),
                        compilation_options: Default::default(),
                        buffers: &[],
                    },
                    primitive: wgpu::PrimitiveState::default(),
                    depth_stencil: None,
                    multisample: wgpu::MultisampleState::default(),
                    fragment: Some(wgpu::FragmentState {
                        module: &module,
                        entry_point: Some("fs_main"),
                        compilation_options: Default::default(),
                        targets: &[Some(wgpu::ColorTargetState {
                            format,
                            blend: None,
                            write_mask: wgpu::ColorWrites::ALL,
                        })],
                    }),
                    multiview_mask: None,
                    cache: None,
                })
            })
            .collect();
        let buffer = |label, size: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let uniform_usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let storage_usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let params = buffer("params", std::mem::size_of::<Params>(), uniform_usage);
        let lut = buffer("gamma lut", LUT_LEN * 4, storage_usage);
        let dots = buffer("dots", MAX_DOTS as usize * 16, storage_usage);
        let field = field_texture(&device, 1, 1);
        let offscreen = surface_format.is_none().then(|| {
            let target = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("target"),
                size: wgpu::Extent3d {
                    width: width as u32,
                    height: height as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: FORMAT,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            let readback = buffer(
                "readback",
                padded_row(width) * height,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            (target, readback)
        });
        let bind_group = Self::bind_group(&device, &layout, &params, &lut, &field, &dots);
        let mut r = GpuRenderer {
            device,
            queue,
            adapter,
            errors,
            layout,
            pipelines,
            params,
            lut,
            lut_loaded: None,
            dots,
            field,
            field_key: 0,
            bind_group,
            offscreen,
            width,
            height,
        };
        r.take_errors()?;
        r.load_lut(&GammaLut::identity());
        Ok(r)
    }

    fn bind_group(
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        params: &wgpu::Buffer,
        lut: &wgpu::Buffer,
        field: &wgpu::Texture,
        dots: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let view = field.create_view(&wgpu::TextureViewDescriptor::default());
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("stimulus"),
            layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: lut.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: dots.as_entire_binding(),
                },
            ],
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.adapter
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn take_errors(&self) -> Result<(), GpuError> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| GpuError::Wgpu("error sink poisoned".into()))?;
        if v.is_empty() {
            Ok(())
        } else {
            let msg = v.join("; ");
            v.clear();
            Err(GpuError::Wgpu(msg))
        }
    }

    fn load_lut(&mut self, gamma: &GammaLut) {
        if self.lut_loaded.as_deref() == Some(gamma.table()) {
            return;
        }
        self.queue
            .write_buffer(&self.lut, 0, bytemuck::cast_slice(gamma.table()));
        self.lut_loaded = Some(gamma.table().to_vec());
    }

    fn load_field(&mut self, field: &Field) -> Result<(), GpuError> {
        if field.key == self.field_key {
            return Ok(());
        }
        let max = self.device.limits().max_texture_dimension_2d;
        if field.width > max || field.height > max {
            return Err(GpuError::TooLarge {
                what: "field texture side",
                got: field.width.max(field.height) as u64,
                max: max as u64,
            });
        }
        let size = self.field.size();
        if size.width != field.width || size.height != field.height {
            self.field = field_texture(&self.device, field.width, field.height);
            self.bind_group = Self::bind_group(
                &self.device,
                &self.layout,
                &self.params,
                &self.lut,
                &self.field,
                &self.dots,
            );
        }
        self.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.field,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(&field.values),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(field.width * 4),
                rows_per_image: Some(field.height),
            },
            wgpu::Extent3d {
                width: field.width,
                height: field.height,
                depth_or_array_layers: 1,
            },
        );
        self.field_key = field.key;
        Ok(())
    }

    fn load_dots(&mut self, dots: &[Dot]) -> Result<(), GpuError> {
        if dots.len() > MAX_DOTS as usize {
            return Err(GpuError::TooLarge {
                what: "dot count",
                got: dots.len() as u64,
                max: MAX_DOTS as u64,
            });
        }
        if dots.is_empty() {
            return Ok(());
        }
        let packed: Vec<[f32; 4]> = dots
            .iter()
            .map(|d| [d.az_deg as f32, d.el_deg as f32, d.sign as f32, 0.0])
            .collect();
        self.queue
            .write_buffer(&self.dots, 0, bytemuck::cast_slice(&packed));
        Ok(())
    }

    /// Upload what one frame of `content` over `projection` needs (which must match the
    /// renderer's size) and return the pipeline that draws it.
    pub(crate) fn prepare(
        &mut self,
        content: &FrameContent,
        projection: &Projection,
        output: Output,
    ) -> Result<ShaderKind, GpuError> {
        let got = (projection.width(), projection.height());
        if got != (self.width, self.height) {
            return Err(GpuError::SizeMismatch {
                got,
                want: (self.width, self.height),
            });
        }
        let r = resolve(content, projection, output.gamma.is_some(), output.patch);
        if let Some(g) = output.gamma {
            self.load_lut(g);
        }
        if let Some(f) = r.field {
            self.load_field(f)?;
        }
        self.load_dots(r.dots)?;
        self.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&r.params));
        Ok(r.kind)
    }

    /// Record the draw of the prepared frame into `view` (the offscreen target or a surface
    /// texture of the format the renderer was built for).
    pub(crate) fn draw(
        &self,
        enc: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        kind: ShaderKind,
    ) {
        let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("stimulus"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color {
                        r: 0.5,
                        g: 0.5,
                        b: 0.5,
                        a: 1.0,
                    }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&self.pipelines[kind.index()]);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }

    pub(crate) fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub(crate) fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Errors wgpu reported since the last check (validation, out of memory).
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        self.take_errors()
    }

    /// Render one frame of `content` over `projection` (which must match the renderer's size)
    /// and read it back into `out` (row-major u8, width × height).
    pub fn render(
        &mut self,
        content: &FrameContent,
        projection: &Projection,
        output: Output,
        out: &mut [u8],
    ) -> Result<(), GpuError> {
        if out.len() < self.width * self.height {
            return Err(GpuError::SizeMismatch {
                got: (out.len(), 1),
                want: (self.width, self.height),
            });
        }
        let kind = self.prepare(content, projection, output)?;
        let Some((target, readback)) = &self.offscreen else {
            return Err(GpuError::Wgpu(
                "this renderer draws into a window; it has no offscreen target".into(),
            ));
        };
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        self.draw(&mut enc, &view, kind);
        let row = padded_row(self.width);
        enc.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: target,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row as u32),
                    rows_per_image: Some(self.height as u32),
                },
            },
            wgpu::Extent3d {
                width: self.width as u32,
                height: self.height as u32,
                depth_or_array_layers: 1,
            },
        );
        self.queue.submit(Some(enc.finish()));
        self.take_errors()?;
        read_buffer(&self.device, readback, row, 1, self.width, self.height, out)?;
        self.take_errors()
    }
}

/// Map `buffer` (rows of `row` bytes, `bpp` bytes per pixel) and copy the first channel of
/// each of `width` × `height` pixels into `out`.
pub(crate) fn read_buffer(
    device: &wgpu::Device,
    buffer: &wgpu::Buffer,
    row: usize,
    bpp: usize,
    width: usize,
    height: usize,
    out: &mut [u8],
) -> Result<(), GpuError> {
    let slice = buffer.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |res| {
        let _ = tx.send(res);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    rx.recv()
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    {
        let data = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        for (y, dst) in out.chunks_exact_mut(width).take(height).enumerate() {
            let src = &data[y * row..y * row + width * bpp];
            if bpp == 1 {
                dst.copy_from_slice(src);
            } else {
                for (d, px) in dst.iter_mut().zip(src.chunks_exact(bpp)) {
                    *d = px[0];
                }
            }
        }
    }
    buffer.unmap();
    Ok(())
}
