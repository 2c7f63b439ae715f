//! Ingest: validate one wire message, put frames into the pool and hand them to the rings.
//!
//! # Policy when something downstream is slow
//! - The **recorder** must see every frame: when its ring is full, ingest waits (and counts
//!   `recorder_waits`); the wait propagates back to the sender through the flow-control acks.
//! - The **imaging stage** may fall behind: when its ring is full the frame is still recorded,
//!   the stage skips it, and the skip is counted and logged with the stream and sequence number.
//! - The **pool** running dry means the recorder is behind; ingest waits for a free slot
//!   (counted as `pool_stalls`) rather than allocating.
//!
//! Nothing here allocates per frame: payload bytes are decoded into a pooled buffer and the
//! handle is cloned into the rings.

use crate::clock::{RigTime, host_monotonic_ns};
use crate::config::Config;
use crate::frames::{EyeBuf, EyeFrame, Frame, FrameBuf, FrameMeta};
use crate::protocol::{Header, Message, ProtocolError, Stream};
use crate::ring::{Pool, RingTx};
use crate::telemetry::{Anomaly, Counters, LatencyHist};
use bytes::Bytes;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Low-rate items for the recorder (everything but two-photon and eye frames and activity).
#[derive(Debug)]
pub enum RecorderItem {
    /// A non-frame input message, as received.
    Input { recv_ns: i64, message: Message },
    Anomaly(Anomaly),
    Flip(crate::sinks::records::FlipRecord),
    Json {
        kind: crate::sinks::records::RecordKind,
        value: serde_json::Value,
    },
}

/// Where ingest hands things on.
pub struct IngestOutputs {
    pub frame_pool: Pool<FrameBuf>,
    pub eye_pool: Pool<EyeBuf>,
    pub to_stage: RingTx<Frame>,
    pub to_recorder: RingTx<Frame>,
    pub eye_to_recorder: RingTx<EyeFrame>,
    pub events: Sender<RecorderItem>,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Frame { seq: u64 },
    EyeFrame { seq: u64 },
    Event(Stream),
    /// The source said it is done (`control` `{"event": "end"}`).
    End,
    Rejected(&'static str),
}

/// Last sequence number per (stream, plane, channel): repeats and reversals are rejected,
/// gaps counted. A bridge's `hello` resets it (a restarted bridge starts again at 0).
struct SeqTracker {
    last: Box<[Option<u64>]>,
}

impl SeqTracker {
    const PER_STREAM: usize = 64 * 4;

    fn new() -> SeqTracker {
        SeqTracker {
            last: vec![None; 16 * Self::PER_STREAM].into_boxed_slice(),
        }
    }

    fn slot(h: &Header) -> usize {
        (h.stream.code() as usize % 16) * Self::PER_STREAM
            + (h.plane as usize % 64) * 4
            + h.channel as usize % 4
    }

    /// `Ok(missing)` to accept (with `missing` skipped before it), `Err(last)` to reject.
    fn check(&mut self, h: &Header) -> Result<Option<(u64, u64)>, u64> {
        let slot = &mut self.last[Self::slot(h)];
        let r = match *slot {
            None => Ok(None),
            Some(last) if h.seq == last + 1 => Ok(None),
            Some(last) if h.seq > last + 1 => Ok(Some((last, h.seq - last - 1))),
            Some(last) => return Err(last),
        };
        *slot = Some(h.seq);
        r
    }

    fn reset(&mut self) {
        self.last.fill(None);
    }
}

pub struct Ingest {
    out: IngestOutputs,
    counters: Arc<Counters>,
    seq: SeqTracker,
    width: u32,
    height: u32,
    planes: u8,
    channels: u8,
    eye_capacity: usize,
    /// Rig time of the newest two-photon frame (read by the renderer's frame-following clock).
    pub latest_frame_t: Arc<AtomicI64>,
    /// Last two-photon sequence handed on (flow-control ack).
    pub acked: Arc<AtomicU64>,
    on_frame: Option<Box<dyn Fn() + Send>>,
    latency: LatencyHist,
}

impl Ingest {
    pub fn new(cfg: &Config, out: IngestOutputs, counters: Arc<Counters>) -> Ingest {
        Ingest {
            eye_capacity: (cfg.eye.width * cfg.eye.height) as usize,
            out,
            counters,
            seq: SeqTracker::new(),
            width: cfg.imaging.width,
            height: cfg.imaging.height,
            planes: cfg.imaging.planes,
            channels: cfg.imaging.channels,
            latest_frame_t: Arc::new(AtomicI64::new(i64::MIN)),
            acked: Arc::new(AtomicU64::new(u64::MAX)),
            on_frame: None,
            latency: LatencyHist::new("ingest"),
        }
    }

    /// Called after each two-photon frame is handed on (wakes the renderer and the publisher).
    pub fn set_on_frame(&mut self, f: impl Fn() + Send + 'static) {
        self.on_frame = Some(Box::new(f));
    }

    /// Handle one multipart message received at host time `recv_ns`.
    pub fn handle(&mut self, frames: &[Bytes], recv_ns: i64) -> Outcome {
        let message = match Message::parse(frames) {
            Ok(m) => m,
            Err(e) => return self.reject_protocol(e, frames),
        };
        let h = message.header;
        if !h.stream.is_input() {
            return self.reject("unknown_stream", format!("{} is an output stream, not an input", h.stream), Some(&h));
        }
        if h.stream == Stream::Control {
            // A hello starts a new numbering; control messages are not sequence-checked.
            let event = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned));
            if event.as_deref() == Some("hello") {
                self.seq.reset();
            }
            let end = event.as_deref() == Some("end");
            self.send_event(RecorderItem::Input { recv_ns, message });
            return if end { Outcome::End } else { Outcome::Event(Stream::Control) };
        }
        if let Err(why) = self.check_shape(&h) {
            return self.reject("shape", why, Some(&h));
        }
        match self.seq.check(&h) {
            Ok(None) => {}
            Ok(Some((after, missing))) => {
                self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                self.counters.missing.fetch_add(missing, Ordering::Relaxed);
                tracing::warn!(stream = %h.stream, plane = h.plane, channel = h.channel, after, seq = h.seq, missing, "sequence gap");
                self.send_event(RecorderItem::Anomaly(Anomaly::Gap {
                    stream: h.stream,
                    plane: h.plane,
                    channel: h.channel,
                    after,
                    seq: h.seq,
                    missing,
                }));
            }
            Err(last) => {
                let what = if h.seq == last { "repeated" } else { "out of order" };
                return self.reject("sequence", format!("{what}: seq {} after {last}", h.seq), Some(&h));
            }
        }
        self.counters.bytes_in.fetch_add(message.payload.len() as u64, Ordering::Relaxed);
        match h.stream {
            Stream::TwoPhoton => self.frame(&h, &message.payload, recv_ns),
            Stream::EyeCamera => self.eye_frame(&h, &message.payload, recv_ns),
            s => {
                let c = if s == Stream::Treadmill { &self.counters.treadmill_in } else { &self.counters.sync_in };
                Counters::inc(c);
                self.send_event(RecorderItem::Input { recv_ns, message });
                Outcome::Event(s)
            }
        }
    }

    fn check_shape(&self, h: &Header) -> Result<(), String> {
        match h.stream {
            Stream::TwoPhoton => {
                if h.ndim != 2 || h.shape[0] != self.height || h.shape[1] != self.width {
                    return Err(format!(
                        "frame shape {:?} (ndim {}) but imaging is [{}, {}] (height, width)",
                        &h.shape[..h.ndim as usize], h.ndim, self.height, self.width
                    ));
                }
                if h.plane >= self.planes || h.channel >= self.channels {
                    return Err(format!(
                        "plane {} channel {} but imaging has {} planes, {} channels",
                        h.plane, h.channel, self.planes, self.channels
                    ));
                }
            }
            Stream::EyeCamera => {
                if h.ndim != 2 || h.elements() > self.eye_capacity || h.elements() == 0 {
                    return Err(format!(
                        "eye frame shape {:?} does not fit the eye camera's {} pixels",
                        &h.shape[..h.ndim as usize], self.eye_capacity
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn frame(&mut self, h: &Header, payload: &[u8], recv_ns: i64) -> Outcome {
        let mut slot = loop {
            if let Some(s) = self.out.frame_pool.try_take() {
                break s;
            }
            Counters::inc(&self.counters.pool_stalls);
            std::thread::sleep(Duration::from_micros(50));
        };
        slot.fill_from_le(FrameMeta::from_header(h, recv_ns), payload);
        let frame = slot.freeze();
        let mut pending = frame.clone();
        while let Err(back) = self.out.to_recorder.try_push(pending) {
            pending = back;
            Counters::inc(&self.counters.recorder_waits);
            std::thread::sleep(Duration::from_micros(50));
        }
        if self.out.to_stage.try_push(frame).is_err() {
            Counters::inc(&self.counters.stage_skips);
            tracing::warn!(stream = %h.stream, seq = h.seq, "imaging stage behind: frame recorded but not processed");
            self.send_event(RecorderItem::Anomaly(Anomaly::StageSkip {
                stream: h.stream,
                seq: h.seq,
            }));
        }
        Counters::inc(&self.counters.frames_in);
        self.latest_frame_t.fetch_max(h.t_ns, Ordering::AcqRel);
        self.acked.store(h.seq, Ordering::Release);
        if let Some(f) = &self.on_frame {
            f();
        }
        self.latency.record_ns(host_monotonic_ns() - recv_ns);
        Outcome::Frame { seq: h.seq }
    }

    fn eye_frame(&mut self, h: &Header, payload: &[u8], recv_ns: i64) -> Outcome {
        let mut slot = loop {
            if let Some(s) = self.out.eye_pool.try_take() {
                break s;
            }
            Counters::inc(&self.counters.pool_stalls);
            std::thread::sleep(Duration::from_micros(50));
        };
        let n = payload.len().min(slot.pixels.len());
        slot.pixels[..n].copy_from_slice(&payload[..n]);
        slot.len = n;
        slot.meta = FrameMeta::from_header(h, recv_ns);
        let mut pending = slot.freeze();
        while let Err(back) = self.out.eye_to_recorder.try_push(pending) {
            pending = back;
            Counters::inc(&self.counters.recorder_waits);
            std::thread::sleep(Duration::from_micros(50));
        }
        Counters::inc(&self.counters.eye_frames_in);
        Outcome::EyeFrame { seq: h.seq }
    }

    fn reject_protocol(&mut self, e: ProtocolError, frames: &[Bytes]) -> Outcome {
        // Name the stream and sequence when the header itself was readable.
        let header = frames.get(1).and_then(|b| Header::decode(b).ok());
        let label = e.label();
        self.reject(label, e.to_string(), header.as_ref())
    }

    fn reject(&mut self, label: &'static str, reason: String, h: Option<&Header>) -> Outcome {
        self.counters.reject(label);
        tracing::warn!(label, stream = ?h.map(|h| h.stream), seq = ?h.map(|h| h.seq), %reason, "message rejected");
        self.send_event(RecorderItem::Anomaly(Anomaly::Rejected {
            reason,
            label: label.to_string(),
            stream: h.map(|h| h.stream),
            seq: h.map(|h| h.seq),
        }));
        Outcome::Rejected(label)
    }

    /// The recorder must see every event: block (briefly) rather than drop.
    fn send_event(&self, item: RecorderItem) {
        if self.out.events.is_full() {
            Counters::inc(&self.counters.recorder_waits);
        }
        if self.out.events.send(item).is_err() {
            tracing::error!("recorder is gone; event not recorded");
        }
    }

    /// Rig time of the newest frame, if any arrived.
    pub fn latest_frame_time(&self) -> Option<RigTime> {
        let t = self.latest_frame_t.load(Ordering::Acquire);
        (t != i64::MIN).then(|| RigTime::from_nanos(t))
    }

    /// Receive-to-handed-on latency of two-photon frames.
    pub fn latency(&self) -> &LatencyHist {
        &self.latency
    }
}
