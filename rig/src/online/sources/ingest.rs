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

use super::rate_limit::{RateLimit, Verdict};
use super::time_guard::TimeGuard;
use crate::backbone::bus::Bus;
use crate::backbone::durable::{Ack, Durable};
use crate::backbone::frames::{EyeBuf, EyeFrame, Frame, FrameBuf, FrameMeta};
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::{Pool, RingTx};
use crate::backbone::telemetry::{Anomaly, Counters, LatencyHist};
use crate::config::{EyeConfig, ImagingConfig, SourceConfig};
use crate::stages::behaviour::BehaviourInput;
use crate::stages::clocks::{self, ClockSync, ClockUpdate, ClocksConfig};
use crate::vocab::clock::{RigTime, host_monotonic_ns};
use crate::vocab::protocol::{ClockDomain, Header, Message, ProtocolError, Stream, SyncCode};
use bytes::Bytes;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Rejections of one label are warned about and recorded at most this often, ns.
const REPORT_INTERVAL_NS: i64 = 1_000_000_000;

/// The anomaly label of messages that are not twinloop traffic at all (counted in
/// `garbage_messages`, not among the protocol's rejections).
pub const GARBAGE_LABEL: &str = "garbage";

/// A message none of whose parts is a stream's topic or starts with the header's magic: not a
/// bridge's message gone wrong, but something else talking to the port.
fn is_garbage(frames: &[Bytes]) -> bool {
    !frames.iter().any(|f| {
        f.starts_with(&crate::vocab::protocol::MAGIC)
            || Stream::ALL
                .iter()
                .any(|s| f.as_ref() == s.topic().as_bytes())
    })
}

/// Where ingest hands things on.
pub struct IngestOutputs {
    pub frame_pool: Pool<FrameBuf>,
    pub eye_pool: Pool<EyeBuf>,
    pub to_stage: RingTx<Frame>,
    pub to_recorder: RingTx<Frame>,
    pub eye_to_recorder: RingTx<EyeFrame>,
    pub events: Sender<RecorderItem>,
    /// The behaviour stage's feed, when it runs (best effort: full means skipped and counted).
    pub behaviour: Option<BehaviourFeed>,
}

/// What ingest hands the behaviour stage.
pub struct BehaviourFeed {
    pub eye: RingTx<EyeFrame>,
    pub inputs: Sender<BehaviourInput>,
}

impl BehaviourFeed {
    fn send(&self, input: BehaviourInput, counters: &Counters) {
        if self.inputs.try_send(input).is_err() {
            Counters::inc(&counters.behaviour_skips);
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The session is stopping, or the recorder is gone, while this message waited: it was
    /// neither logged nor acked.
    Stopped,
    Frame {
        seq: u64,
    },
    EyeFrame {
        seq: u64,
    },
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
    /// 64 planes x 8 channels (sync uses `channel` for the clock domain, 0..=4).
    const PER_STREAM: usize = 64 * 8;

    fn new() -> SeqTracker {
        SeqTracker {
            last: vec![None; 16 * Self::PER_STREAM].into_boxed_slice(),
        }
    }

    fn slot(h: &Header) -> usize {
        (h.stream.code() as usize % 16) * Self::PER_STREAM
            + (h.plane as usize % 64) * 8
            + h.channel as usize % 8
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
    /// Flow-control ack: the index (from 0, counted since the source's `hello`) of the last
    /// two-photon message handed on, across all planes and channels; `u64::MAX` before any.
    /// What the log has made durable: acks and publications wait for it.
    pub durable: Arc<Durable>,
    /// The current `hello`'s epoch, tagged on every two-photon frame.
    epoch: u32,
    handed_on: u64,
    on_frame: Option<Box<dyn Fn() + Send>>,
    latency: LatencyHist,
    /// Device clocks fitted to the rig's from the sync ticks.
    clocks: ClockSync,
    /// Where clock updates are published (when set).
    bus: Option<Bus>,
    clock_seq: u64,
    /// The current run of frames the stage could not take: first seq and how many. Each is
    /// counted and logged as an anomaly; the warning is once per run, not once per frame.
    stage_skipping: Option<(u64, u64)>,
    /// Refuses samples whose time jumps far from their stream's cadence.
    time_guard: TimeGuard,
    /// The session is stopping: waits for a slot or the recorder give up.
    stop: Option<Arc<AtomicBool>>,
    /// Thins rejection warnings and anomaly records to one per label per second (counted
    /// exactly all the same).
    reports: RateLimit,
}

impl Ingest {
    /// Ingest for frames of `[imaging]`'s and `[eye]`'s sizes, fitting `[clocks]`, with
    /// `[source]`'s bounds.
    pub fn new(
        imaging: &ImagingConfig,
        eye: &EyeConfig,
        clocks: &ClocksConfig,
        source: &SourceConfig,
        out: IngestOutputs,
        counters: Arc<Counters>,
    ) -> Ingest {
        Ingest {
            eye_capacity: (eye.width * eye.height) as usize,
            out,
            counters,
            seq: SeqTracker::new(),
            width: imaging.width,
            height: imaging.height,
            planes: imaging.planes,
            channels: imaging.channels,
            latest_frame_t: Arc::new(AtomicI64::new(i64::MIN)),
            durable: Arc::new(Durable::default()),
            epoch: 0,
            handed_on: 0,
            on_frame: None,
            latency: LatencyHist::new("ingest"),
            reports: RateLimit::new(REPORT_INTERVAL_NS),
            clocks: ClockSync::new(clocks.clone()),
            bus: None,
            clock_seq: 0,
            stage_skipping: None,
            time_guard: TimeGuard::new(source.max_time_jump_s),
            stop: None,
        }
    }

    /// The session's stop flag: a wait for a pool slot or for the recorder gives up once it is
    /// set (the frame is then neither logged nor acked).
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    /// Whether a wait must give up: the session is stopping, or the recorder is gone.
    fn must_stop(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
            || self.out.to_recorder.is_abandoned()
    }

    /// Publish clock-fit updates on the event bus.
    pub fn set_bus(&mut self, bus: Bus) {
        self.bus = Some(bus);
    }

    /// The device clocks' state, for the session summary.
    pub fn clock_summary(&self) -> Vec<clocks::DomainSummary> {
        self.clocks.summary()
    }

    /// Maps a sample's wire time onto the rig clock when its stream is on a device clock:
    /// `(rig_ns, clock_gen)`.
    fn map_to_rig(&mut self, h: &Header) -> (i64, u32) {
        let Some(domain) = self.clocks.config().domain_of(h.stream) else {
            return (h.t_ns, 0);
        };
        let mapped = self.clocks.map(domain, h.t_ns);
        if let Some(samples) = self.clocks.newly_unticked(domain) {
            // Said live, not only in the end summary: every sample so far is off the rig clock.
            tracing::error!(
                domain = domain.name(),
                samples,
                "{} samples of stream {} and no tick of its clock: they cannot be put on the \
                 rig clock. Send sync ticks for this domain, or set [clocks] {} = \"rig\" if \
                 the bridge stamps rig time",
                samples,
                h.stream,
                domain.name()
            );
            self.counters
                .clock_domains_unticked
                .fetch_add(1, Ordering::Relaxed);
            self.send_event(RecorderItem::Anomaly(Anomaly::ClockNoTicks {
                domain,
                samples,
            }));
        }
        mapped
    }

    /// A clock tick: refit, then log, count and publish what changed (after the tick's own
    /// record, so replay meets them in the same order).
    fn clock_tick(&mut self, h: &Header) {
        let Some(domain) = ClockDomain::from_code(h.channel) else {
            tracing::warn!(
                channel = h.channel,
                seq = h.seq,
                "clock tick from an unknown clock domain; recorded, not fitted"
            );
            return;
        };
        let outcome = self.clocks.on_tick(domain, h.t_ns);
        clocks::count(&outcome, &self.counters);
        if outcome.ticking_again {
            tracing::info!(domain = domain.name(), "clock ticks arrive now");
            self.counters
                .clock_domains_unticked
                .fetch_sub(1, Ordering::Relaxed);
        }
        for a in outcome.anomalies {
            tracing::warn!(anomaly = ?a, "clock");
            self.send_event(RecorderItem::Anomaly(a));
        }
        for u in outcome.updates {
            self.clock_update(&u);
        }
    }

    fn clock_update(&mut self, u: &ClockUpdate) {
        let Some(value) = self.counters.json("clock mapping", u) else {
            return;
        };
        if let Some(bus) = &self.bus {
            let mut m = Message::json(
                Stream::Clock,
                self.clock_seq,
                u.mapping.rig_at_ref_ns as i64,
                &value,
            );
            m.header.channel = u.domain.code();
            bus.publish(m);
        }
        self.clock_seq += 1;
        tracing::debug!(domain = u.domain.name(), generation = u.generation, state = ?u.state, drift_ppm = u.mapping.drift_ppm(), "clock mapping");
        self.send_event(RecorderItem::Json {
            kind: crate::vocab::records::RecordKind::Clock,
            value,
        });
    }

    /// Called after each two-photon frame is handed on (wakes the renderer and the publisher).
    pub fn set_on_frame(&mut self, f: impl Fn() + Send + 'static) {
        self.on_frame = Some(Box::new(f));
    }

    /// Handle one multipart message received at host time `recv_ns`.
    pub fn handle(&mut self, frames: &[Bytes], recv_ns: i64) -> Outcome {
        let h = match Message::validate(frames) {
            Ok(h) => h,
            Err(e) => return self.reject_protocol(e, frames),
        };
        let payload = &frames[2];
        let message = || Message {
            header: h,
            payload: payload.clone(),
        };
        if !h.stream.is_input() {
            return self.reject(
                "not_an_input",
                format!("{} is an output stream, not an input", h.stream),
                Some(&h),
            );
        }
        if h.stream == Stream::Control {
            // A hello starts a new numbering; control messages are not sequence-checked.
            let json = serde_json::from_slice::<serde_json::Value>(payload).ok();
            let field = |k: &str| json.as_ref().and_then(|v| v.get(k));
            let event = field("event").and_then(|e| e.as_str()).map(str::to_owned);
            if event.as_deref() == Some("hello") {
                // The bridge's own name for this numbering, echoed in every ack, so a bridge
                // can tell a stale ack (of an earlier hello, still in flight) from its own.
                let hello_epoch = match field("epoch") {
                    None => 0,
                    Some(v) => match v.as_u64() {
                        Some(e) => e,
                        None => {
                            return self.reject(
                                "control",
                                format!(
                                    "hello's \"epoch\" is {v}; it must be an unsigned 64-bit \
                                     integer (any number the bridge picks per hello), or absent"
                                ),
                                Some(&h),
                            );
                        }
                    },
                };
                self.seq.reset();
                self.time_guard.reset();
                self.handed_on = 0;
                self.epoch = self.durable.new_epoch(hello_epoch);
            }
            let end = event.as_deref() == Some("end");
            self.send_event(RecorderItem::Input {
                recv_ns,
                clock_gen: 0,
                message: message(),
            });
            return if end {
                Outcome::End
            } else {
                Outcome::Event(Stream::Control)
            };
        }
        if let Err(why) = self.check_shape(&h) {
            return self.reject("shape", why, Some(&h));
        }
        if let Err(j) = self.time_guard.check(h.stream, h.t_ns) {
            // Never learned and never mapped: the session clock does not move.
            return self.reject(
                "time_jump",
                format!(
                    "t_ns {} is {:.3} s from the stream's last accepted time {} (bound {:.1} s, \
                     [source] max_time_jump_s); a bridge whose clock restarted sends a hello first",
                    j.t_ns,
                    (i128::from(j.t_ns) - i128::from(j.last_ns)) as f64 * 1e-9,
                    j.last_ns,
                    j.bound_ns as f64 * 1e-9
                ),
                Some(&h),
            );
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
                let what = if h.seq == last {
                    "repeated"
                } else {
                    "out of order"
                };
                return self.reject(
                    "sequence",
                    format!("{what}: seq {} after {last}", h.seq),
                    Some(&h),
                );
            }
        }
        self.counters
            .bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        match h.stream {
            Stream::TwoPhoton => self.frame(&h, payload, recv_ns),
            Stream::EyeCamera => self.eye_frame(&h, payload, recv_ns),
            s => {
                let c = if s == Stream::Treadmill {
                    &self.counters.treadmill_in
                } else {
                    &self.counters.sync_in
                };
                Counters::inc(c);
                let (t_ns, clock_gen) = self.map_to_rig(&h);
                if s == Stream::Treadmill
                    && let (Some(feed), Some(count)) = (&self.out.behaviour, read_i64(payload))
                {
                    feed.send(BehaviourInput::Treadmill { t_ns, count }, &self.counters);
                }
                self.send_event(RecorderItem::Input {
                    recv_ns,
                    clock_gen,
                    message: message(),
                });
                if s == Stream::Sync && h.aux == SyncCode::ClockTick as i64 {
                    self.clock_tick(&h);
                }
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
                        &h.shape[..h.ndim as usize],
                        h.ndim,
                        self.height,
                        self.width
                    ));
                }
                if h.plane >= self.planes || h.channel >= self.channels {
                    return Err(format!(
                        "plane {} channel {} but imaging has {} planes, {} channels",
                        h.plane, h.channel, self.planes, self.channels
                    ));
                }
            }
            Stream::EyeCamera
                if h.ndim != 2
                    || !h
                        .elements()
                        .is_some_and(|n| (1..=self.eye_capacity).contains(&n)) =>
            {
                return Err(format!(
                    "eye frame shape {:?} does not fit the eye camera's {} pixels",
                    &h.shape[..h.ndim as usize],
                    self.eye_capacity
                ));
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
            if self.must_stop() {
                return Outcome::Stopped;
            }
            Counters::inc(&self.counters.pool_stalls);
            std::thread::sleep(Duration::from_micros(50));
        };
        let mut meta = FrameMeta::from_header(h, recv_ns);
        let (t_ns, clock_gen) = self.map_to_rig(h);
        meta.t = RigTime::from_nanos(t_ns);
        meta.clock_gen = clock_gen;
        meta.ack = Some(Ack {
            epoch: self.epoch,
            index: self.handed_on,
        });
        slot.fill_from_le(meta, payload);
        let frame = slot.freeze();
        let mut pending = frame.clone();
        while let Err(back) = self.out.to_recorder.try_push(pending) {
            if self.must_stop() {
                return Outcome::Stopped;
            }
            pending = back;
            Counters::inc(&self.counters.recorder_waits);
            std::thread::sleep(Duration::from_micros(50));
        }
        if self.out.to_stage.try_push(frame).is_err() {
            Counters::inc(&self.counters.stage_skips);
            match &mut self.stage_skipping {
                Some((_, n)) => *n += 1,
                None => {
                    tracing::warn!(stream = %h.stream, seq = h.seq, "imaging stage behind: frames from here are recorded but not processed until it catches up");
                    self.stage_skipping = Some((h.seq, 1));
                }
            }
            self.send_event(RecorderItem::Anomaly(Anomaly::StageSkip {
                stream: h.stream,
                seq: h.seq,
            }));
        } else if let Some((first, n)) = self.stage_skipping.take() {
            tracing::warn!(stream = %h.stream, first_skipped = first, skipped = n, "imaging stage caught up");
        }
        Counters::inc(&self.counters.frames_in);
        if let Some(feed) = &self.out.behaviour
            && h.plane == 0
            && h.channel == 0
        {
            let input = BehaviourInput::Frame { seq: h.seq, t_ns };
            feed.send(input, &self.counters);
        }
        self.latest_frame_t.fetch_max(t_ns, Ordering::AcqRel);
        // The ack waits for the recorder to write the frame out (`backbone::durable`).
        self.handed_on += 1;
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
            if self.must_stop() {
                return Outcome::Stopped;
            }
            Counters::inc(&self.counters.pool_stalls);
            std::thread::sleep(Duration::from_micros(50));
        };
        let n = payload.len().min(slot.pixels.len());
        slot.pixels[..n].copy_from_slice(&payload[..n]);
        slot.len = n;
        slot.meta = FrameMeta::from_header(h, recv_ns);
        let (t_ns, clock_gen) = self.map_to_rig(h);
        slot.meta.t = RigTime::from_nanos(t_ns);
        slot.meta.clock_gen = clock_gen;
        let frame = slot.freeze();
        if let Some(feed) = &mut self.out.behaviour
            && feed.eye.try_push(frame.clone()).is_err()
        {
            Counters::inc(&self.counters.behaviour_skips);
        }
        let mut pending = frame;
        while let Err(back) = self.out.eye_to_recorder.try_push(pending) {
            if self.must_stop() {
                return Outcome::Stopped;
            }
            pending = back;
            Counters::inc(&self.counters.recorder_waits);
            std::thread::sleep(Duration::from_micros(50));
        }
        Counters::inc(&self.counters.eye_frames_in);
        Outcome::EyeFrame { seq: h.seq }
    }

    /// A message that broke the protocol. `frames` are the parts kept (at most the protocol's
    /// three: a source that receives more discards the rest and says how many in `e`).
    pub(crate) fn reject_protocol(&mut self, e: ProtocolError, frames: &[Bytes]) -> Outcome {
        if is_garbage(frames) {
            // Not a broken bridge: something else on the port (a scanner, another protocol;
            // libzmq reads raw bytes from a ZMTP 1.0 peer as frames). Counted apart, so that
            // protocol rejections keep meaning a bridge bug.
            Counters::inc(&self.counters.garbage_messages);
            self.report(
                GARBAGE_LABEL,
                format!(
                    "not twinloop traffic ({e}): no part carries the header's magic or a \
                     stream topic; is something other than a bridge connected to the ingest port?"
                ),
                None,
            );
            return Outcome::Rejected(GARBAGE_LABEL);
        }
        // Name the stream and sequence when the header itself was readable.
        let header = frames.get(1).and_then(|b| Header::decode(b).ok());
        let label = e.label();
        self.reject(label, e.to_string(), header.as_ref())
    }

    /// Counts every rejection; warns and records an anomaly for at most one per label per
    /// second, the first of each second saying how many were held back before it
    /// ([`Ingest::summarise_rejections`] reports the rest once a flood stops).
    fn reject(&mut self, label: &'static str, reason: String, h: Option<&Header>) -> Outcome {
        self.counters.reject(label);
        self.report(label, reason, h);
        Outcome::Rejected(label)
    }

    /// Warns and records an anomaly, rate-limited per label (see [`Ingest::reject`]).
    fn report(&mut self, label: &'static str, reason: String, h: Option<&Header>) {
        let held = match self.reports.check(label, host_monotonic_ns()) {
            Verdict::Hold => return,
            Verdict::Report { held } => held,
        };
        tracing::warn!(label, stream = ?h.map(|h| h.stream), seq = ?h.map(|h| h.seq), %reason, held_back = held, "message rejected");
        let reason = if held > 0 {
            format!("{reason} ({held} more `{label}` rejections since the last report, counted)")
        } else {
            reason
        };
        self.send_event(RecorderItem::Anomaly(Anomaly::Rejected {
            reason,
            label: label.to_string(),
            stream: h.map(|h| h.stream),
            seq: h.map(|h| h.seq),
        }));
    }

    /// Reports the rejections held back for a second or more ("N more since"): the source
    /// calls it while idle, so a flood that stops is still accounted for in the log.
    pub fn summarise_rejections(&mut self) {
        for held in self.reports.due(host_monotonic_ns()) {
            let reason = format!(
                "{} more `{}` rejections in the {:.1} s since the last report (counted, not \
                 logged one by one)",
                held.held,
                held.label,
                (host_monotonic_ns() - held.since_ns) as f64 * 1e-9
            );
            tracing::warn!(
                label = held.label,
                held_back = held.held,
                "messages rejected"
            );
            self.send_event(RecorderItem::Anomaly(Anomaly::Rejected {
                reason,
                label: held.label.to_string(),
                stream: None,
                seq: None,
            }));
        }
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

/// The first little-endian i64 of a payload (a treadmill count).
fn read_i64(payload: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests;
