//! What travels through the rings: pooled frames and pooled per-frame activity.
//!
//! Both are preallocated once ([`crate::backbone::ring::Pool`]) at the largest size the config allows and
//! reused; `len` says how much of the buffer the current sample uses.

use crate::backbone::durable::Ack;
use crate::backbone::ring::Pooled;
use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{Dtype, Header, Stream};
pub use crate::vocab::registration::FrameRegistration;

/// Where and when a frame came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameMeta {
    pub stream: Stream,
    pub seq: u64,
    /// On the rig clock (mapped from the device's clock when its stream is on one).
    pub t: RigTime,
    /// `t_ns` as the wire carried it (the device's clock, or the rig's).
    pub t_wire_ns: i64,
    /// The clock-fit generation that mapped `t` (0: not mapped; see `sources/clocks.rs`).
    pub clock_gen: u32,
    pub plane: u8,
    pub channel: u8,
    /// Acquisition frame number from the source (`aux` on the wire).
    pub frame_number: i64,
    pub width: u32,
    pub height: u32,
    pub dtype: Dtype,
    /// Host monotonic time when the message was received.
    pub recv_ns: i64,
    /// Sender's monotonic time at send, 0 if unknown.
    pub sent_ns: i64,
    /// Its place in the sender's numbering (two-photon frames from ingest; not logged).
    pub ack: Option<Ack>,
}

impl FrameMeta {
    pub fn from_header(h: &Header, recv_ns: i64) -> FrameMeta {
        FrameMeta {
            stream: h.stream,
            seq: h.seq,
            t: RigTime::from_nanos(h.t_ns),
            t_wire_ns: h.t_ns,
            clock_gen: 0,
            plane: h.plane,
            channel: h.channel,
            frame_number: h.aux,
            width: h.shape[1],
            height: h.shape[0],
            dtype: h.dtype,
            recv_ns,
            sent_ns: h.sent_ns,
            ack: None,
        }
    }

    /// The wire header this frame arrived with (its raw `t_ns`).
    pub fn header(&self) -> Header {
        let mut h = Header::new(
            self.stream,
            self.dtype,
            &[self.height, self.width],
            self.seq,
            self.t_wire_ns,
        );
        h.plane = self.plane;
        h.channel = self.channel;
        h.aux = self.frame_number;
        h.sent_ns = self.sent_ns;
        h
    }
}

/// A two-photon frame (u16 samples; i16 sources keep their bit pattern, see `meta.dtype`).
pub struct FrameBuf {
    pub meta: FrameMeta,
    pub pixels: Box<[u16]>,
    pub len: usize,
}

impl FrameBuf {
    pub fn with_capacity(pixels: usize) -> FrameBuf {
        FrameBuf {
            meta: FrameMeta {
                stream: Stream::TwoPhoton,
                seq: 0,
                t: RigTime::ZERO,
                t_wire_ns: 0,
                clock_gen: 0,
                plane: 0,
                channel: 0,
                frame_number: 0,
                width: 0,
                height: 0,
                dtype: Dtype::U16,
                recv_ns: 0,
                sent_ns: 0,
                ack: None,
            },
            pixels: vec![0u16; pixels].into_boxed_slice(),
            len: 0,
        }
    }

    pub fn pixels(&self) -> &[u16] {
        &self.pixels[..self.len]
    }

    /// Fill from a little-endian payload (the caller checked its length fits).
    pub fn fill_from_le(&mut self, meta: FrameMeta, payload: &[u8]) {
        let n = (payload.len() / 2).min(self.pixels.len());
        for (o, c) in self.pixels[..n].iter_mut().zip(payload.chunks_exact(2)) {
            *o = u16::from_le_bytes([c[0], c[1]]);
        }
        self.len = n;
        self.meta = meta;
    }
}

/// An eye-camera frame (u8).
pub struct EyeBuf {
    pub meta: FrameMeta,
    pub pixels: Box<[u8]>,
    pub len: usize,
}

impl EyeBuf {
    pub fn with_capacity(pixels: usize) -> EyeBuf {
        EyeBuf {
            meta: FrameBuf::with_capacity(0).meta,
            pixels: vec![0u8; pixels].into_boxed_slice(),
            len: 0,
        }
    }

    pub fn pixels(&self) -> &[u8] {
        &self.pixels[..self.len]
    }
}

/// Per-cell activity of one imaging frame.
pub struct ActivityBuf {
    /// The imaging frame it came from.
    pub frame: FrameMeta,
    pub values: Box<[f32]>,
    pub len: usize,
    /// Host monotonic time when the activity was ready.
    pub ready_ns: i64,
    /// How the frame was registered (the imaging pipeline only).
    pub registration: Option<FrameRegistration>,
    /// The traces the activity came from, for the recorder: F, Fneu and dF/F of each cell, one
    /// after the other (`3 * traces_len` values; capacity three times `values`).
    pub traces: Box<[f32]>,
    /// Cells in `traces`; 0 when the extractor has none (footprint means).
    pub traces_len: usize,
}

impl ActivityBuf {
    pub fn with_capacity(cells: usize) -> ActivityBuf {
        ActivityBuf {
            frame: FrameBuf::with_capacity(0).meta,
            values: vec![0f32; cells].into_boxed_slice(),
            len: 0,
            ready_ns: 0,
            registration: None,
            traces: vec![0f32; 3 * cells].into_boxed_slice(),
            traces_len: 0,
        }
    }

    pub fn values(&self) -> &[f32] {
        &self.values[..self.len]
    }

    /// F, Fneu and dF/F, each `traces_len` long (all empty when there are none).
    pub fn traces(&self) -> &[f32] {
        &self.traces[..3 * self.traces_len]
    }
}

pub type Frame = Pooled<FrameBuf>;
pub type EyeFrame = Pooled<EyeBuf>;
pub type Activity = Pooled<ActivityBuf>;
