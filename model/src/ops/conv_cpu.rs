//! CPU fast path of [`crate::layers::Conv`]: im2col into reused buffers, then one `gemm` call
//! per (group, temporal tap), bias fused, split over candle's own CPU thread pool.
//!
//! Why: candle 0.11's CPU conv2d reached 7–17 GFLOP/s here (per-group chunk + cat, a fresh
//! im2col of the whole concatenated history every frame, and rayon threads competing with
//! candle's spinning barrier pool on 2 cores). Here each frame's im2col is computed once and
//! kept for the T frames that read it, 1x1 convs read their input in place, and the work is
//! split by output rows over the same barrier pool candle's element-wise ops use, each thread
//! running single-threaded gemm (no second pool to fight over the cores).
//!
//! Forward only, no autograd: `Conv::step` takes this path only when nothing needs a gradient
//! (see there), and the candle path stays the reference it is tested against.

use std::cell::Cell;

thread_local! {
    /// Set while this thread runs one ensemble stream of several in parallel.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's convolutions single-threaded (the caller parallelises above).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let out = f();
    SERIAL.with(|s| s.set(before));
    out
}

/// Whether this thread's ops must stay single-threaded (see [`serial`]).
pub(crate) fn is_serial() -> bool {
    SERIAL.with(Cell::get)
}

/// Runs `work(tid, threads)` for `tid` in `0..threads`, with `threads` at most `max_split` and
/// at most candle's barrier pool (caller included); just `work(0, 1)` inline when this thread
/// is [`serial`] or one thread suffices. Every fast path splits its work this way.
pub(crate) fn split_over_pool(max_split: usize, work: impl Fn(usize, usize) + Sync) {
    let pool = candle_core::utils::barrier_pool();
    let threads = if is_serial() {
        1
    } else {
        (pool.n_workers() + 1).min(max_split).max(1)
    };
    if threads == 1 {
        work(0, 1);
    } else {
        pool.execute(|tid| {
            if tid < threads {
                work(tid, threads);
            }
        });
    }
}

/// How many threads to run ensemble streams on: candle's CPU thread count on the CPU (and not
/// already inside a parallel stream), else 1.
pub fn stream_threads(dev: &candle_core::Device) -> usize {
    if dev.is_cpu() && !SERIAL.with(Cell::get) {
        candle_core::utils::get_num_threads().max(1)
    } else {
        1
    }
}

/// Shape of one convolution's input and kernel (one image).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Input channels (all groups).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Square kernel size.
    pub kernel: usize,
    pub stride: usize,
    /// Spatial padding on every side.
    pub pad: usize,
    /// Replicate (clamp) padding instead of zeros.
    pub replicate: bool,
}

impl Geometry {
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.pad - self.kernel) / self.stride + 1
    }
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.pad - self.kernel) / self.stride + 1
    }
    /// im2col rows: (channel, ky, kx).
    pub fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }
    /// im2col columns: output pixels.
    pub fn cols(&self) -> usize {
        self.out_height() * self.out_width()
    }
    /// A 1x1, stride-1, unpadded conv reads its input as the im2col matrix itself.
    pub fn is_identity(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0
    }
}

/// Writes output rows `oy0..oy1` of one image's im2col matrix: `col[r * cols + p]`, with
/// `r = (c * k + ky) * k + kx`, `p = oy * out_width + ox`.
///
/// # Safety
/// `col` must be valid for writes of `rows * cols` elements; only the columns of rows
/// `oy0..oy1` are written, so threads with disjoint row ranges may share it.
pub(crate) unsafe fn im2col_rows(x: &[f32], g: &Geometry, col: *mut f32, oy0: usize, oy1: usize) {
    let (h, w, k, s, p) = (g.height, g.width, g.kernel, g.stride, g.pad as isize);
    let (ow, cols) = (g.out_width(), g.cols());
    for c in 0..g.channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (c * k + ky) * k + kx;
                for oy in oy0..oy1 {
                    let iy = (oy * s) as isize + ky as isize - p;
                    // SAFETY: r < rows, oy * ow + ow <= cols (caller's contract).
                    let dst =
                        unsafe { std::slice::from_raw_parts_mut(col.add(r * cols + oy * ow), ow) };
                    let row = if (0..h as isize).contains(&iy) {
                        Some(&plane[iy as usize * w..iy as usize * w + w])
                    } else if g.replicate {
                        let iy = iy.clamp(0, h as isize - 1) as usize;
                        Some(&plane[iy * w..iy * w + w])
                    } else {
                        None
                    };
                    let Some(row) = row else {
                        dst.fill(0.0);
                        continue;
                    };
                    let x0 = kx as isize - p;
                    if s == 1 && x0 >= 0 && x0 as usize + ow <= w {
                        dst.copy_from_slice(&row[x0 as usize..x0 as usize + ow]);
                        continue;
                    }
                    for (ox, d) in dst.iter_mut().enumerate() {
                        let ix = (ox * s) as isize + x0;
                        *d = if (0..w as isize).contains(&ix) {
                            row[ix as usize]
                        } else if g.replicate {
                            row[ix.clamp(0, w as isize - 1) as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// A raw pointer that may cross into the pool's threads; each thread writes a disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: used only for disjoint writes (row ranges per thread), joined before use.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Through a method, so closures capture the whole (Sync) wrapper, not the raw field.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// One grouped, temporal convolution over kept im2col frames.
pub struct ConvGemm<'a> {
    pub geom: Geometry,
    /// Batch size (images per frame).
    pub batch: usize,
    pub out_channels: usize,
    pub groups: usize,
    /// `[O, T * (C / groups) * k * k]` row-major, per group tap-major (oldest tap first).
    pub kernel: &'a [f32],
    /// `[O]`.
    pub bias: Option<&'a [f32]>,
}

impl ConvGemm<'_> {
    /// `taps[t]` is tap `t`'s im2col matrix `[N, rows, cols]` (oldest first), or its input
    /// `[N, C, H, W]` when the geometry is the identity. Taps listed in `fill` are written
    /// (im2col of `fill_from[i]` into `taps[fill[i]]`) before they are read. Returns
    /// `[N, O, out_h, out_w]`.
    pub fn run(&self, taps: &[*const f32], fill: &[(usize, &[f32])]) -> Vec<f32> {
        let g = &self.geom;
        let (rows, cols, oh, ow) = (g.rows(), g.cols(), g.out_height(), g.out_width());
        let t_n = taps.len();
        let o = self.out_channels;
        let (og, kg) = (o / self.groups, rows / self.groups);
        let krow = t_n * kg;
        let mut out = vec![0f32; self.batch * o * cols];
        let dst = SharedMut(out.as_mut_ptr());
        let taps: Vec<SharedMut> = taps.iter().map(|&p| SharedMut(p as *mut f32)).collect();
        let in_len = g.channels * g.height * g.width;
        split_over_pool(oh, |tid, threads| {
            let oy0 = oh * tid / threads;
            let oy1 = oh * (tid + 1) / threads;
            if oy0 == oy1 {
                return;
            }
            let (p0, len) = (oy0 * ow, (oy1 - oy0) * ow);
            for n in 0..self.batch {
                for &(t, src) in fill {
                    // SAFETY: the tap buffer holds N * rows * cols; this thread writes rows
                    // oy0..oy1 of image n only.
                    unsafe {
                        im2col_rows(
                            &src[n * in_len..(n + 1) * in_len],
                            g,
                            taps[t].ptr().add(n * rows * cols),
                            oy0,
                            oy1,
                        )
                    };
                }
                let dst_n = unsafe { dst.ptr().add(n * o * cols) };
                if let Some(b) = self.bias {
                    for (c, &bv) in b.iter().enumerate() {
                        // SAFETY: row c, columns p0..p0+len of image n: this thread's part.
                        unsafe { std::slice::from_raw_parts_mut(dst_n.add(c * cols + p0), len) }
                            .fill(bv);
                    }
                }
                for grp in 0..self.groups {
                    for (t, tap) in taps.iter().enumerate() {
                        let read_dst = self.bias.is_some() || t > 0;
                        // SAFETY: all pointers stay inside their buffers: dst rows grp*og..,
                        // kernel rows grp*og.. columns t*kg.., tap rows grp*kg.. of image n;
                        // columns p0..p0+len belong to this thread alone.
                        unsafe {
                            gemm::gemm(
                                og,
                                len,
                                kg,
                                dst_n.add(grp * og * cols + p0),
                                1,
                                cols as isize,
                                read_dst,
                                self.kernel.as_ptr().add(grp * og * krow + t * kg),
                                1,
                                krow as isize,
                                tap.ptr().add(n * rows * cols + grp * kg * cols + p0),
                                1,
                                cols as isize,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            )
                        };
                    }
                }
            }
        });
        out
    }
}
