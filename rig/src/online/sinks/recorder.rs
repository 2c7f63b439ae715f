//! The recorder: the one thread that writes the session log, seeing every input, every frame's
//! activity, every flip and every decision.
//!
//! Two-photon and eye frames and activity arrive through rings (no allocation); low-rate items
//! through a bounded channel. The log is flushed every `FLUSH_EVERY`, so a SIGKILL loses at
//! most that much, and the reader recovers everything up to the last complete record.

use crate::backbone::durable::{Ack, Durable};
use crate::backbone::frames::{Activity, EyeFrame, Frame};
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::{RingRx, Wakeup};
use crate::backbone::session_log::{LogError, LogStats, LogWriter};
use crate::backbone::telemetry::{Counters, LatencyHist};
use crate::vocab::clock::host_monotonic_ns;
use crate::vocab::records::{
    EndRecord, RecordKind, RegistrationRecord, encode_activity_prefix, encode_input_prefix,
    f32_le_bytes,
};
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const FLUSH_EVERY: Duration = Duration::from_millis(50);

pub struct Recorder {
    writer: LogWriter,
    frames: RingRx<Frame>,
    eye: RingRx<EyeFrame>,
    activity: RingRx<Activity>,
    events: Receiver<RecorderItem>,
    wake: Arc<Wakeup>,
    counters: Arc<Counters>,
    /// Write pixels, not only frame metadata.
    record_frames: bool,
    /// Largest frame in bytes (sizes the scratch buffer once).
    max_frame_bytes: usize,
    /// Every sender of `events` is gone (set when the channel reports it).
    events_closed: bool,
    /// Two-photon and eye frames logged, for the end record.
    frames_logged: u64,
    /// How the session ended, when whoever ends it says (see [`Recorder::with_end_reason`]).
    end_reason: Option<Arc<OnceLock<String>>>,
    /// JSON records are encoded here, reused, so logging them allocates nothing per record.
    json: Vec<u8>,
    /// Raised once frames and activity are written out of the process.
    durable: Arc<Durable>,
    on_written: Option<Arc<Wakeup>>,
    stop_on_error: Option<Arc<AtomicBool>>,
    /// The last frame and activity written since the last flush.
    unflushed_frame: Option<Ack>,
    unflushed_activity: Option<Ack>,
    /// How often the log is synced to the storage device (what survives a power loss).
    fsync_every: Option<Duration>,
}

/// What the recorder reads: every ring and channel that ends in the log.
pub struct RecorderInputs {
    pub frames: RingRx<Frame>,
    pub eye: RingRx<EyeFrame>,
    pub activity: RingRx<Activity>,
    pub events: Receiver<RecorderItem>,
    /// Shared by every ring above, so any of them wakes the recorder.
    pub wake: Arc<Wakeup>,
    /// Where the recorder says what is written out (acks and publications wait for it).
    pub durable: Arc<Durable>,
    /// Woken when the watermarks rise (the publisher's).
    pub on_written: Option<Arc<Wakeup>>,
    /// Set at the first failed write, to end the session (`session.on_log_error = "stop"`).
    pub stop_on_error: Option<Arc<AtomicBool>>,
}

pub struct RecorderReport {
    pub latency: LatencyHist,
    pub stats: LogStats,
    pub error: Option<String>,
}

impl Recorder {
    /// `record_frames`: write pixels, not only frame metadata; `max_frame_bytes` sizes the
    /// scratch buffer once; `fsync_every`: how often to sync the log to the device (`None`:
    /// only at the end).
    pub fn new(
        writer: LogWriter,
        inputs: RecorderInputs,
        counters: Arc<Counters>,
        record_frames: bool,
        max_frame_bytes: usize,
        fsync_every: Option<Duration>,
    ) -> Recorder {
        Recorder {
            writer,
            frames: inputs.frames,
            eye: inputs.eye,
            activity: inputs.activity,
            events: inputs.events,
            wake: inputs.wake,
            counters,
            record_frames,
            max_frame_bytes,
            events_closed: false,
            frames_logged: 0,
            end_reason: None,
            json: Vec::with_capacity(4096),
            durable: inputs.durable,
            on_written: inputs.on_written,
            stop_on_error: inputs.stop_on_error,
            unflushed_frame: None,
            unflushed_activity: None,
            fsync_every,
        }
    }

    /// The session's end, as `reason` holds it when the recorder finishes, goes into the log's
    /// `End` record ("inputs finished" when it is unset).
    pub fn with_end_reason(mut self, reason: Arc<OnceLock<String>>) -> Recorder {
        self.end_reason = Some(reason);
        self
    }

    pub fn run(mut self) -> RecorderReport {
        let _span = tracing::info_span!("stage", name = "recorder").entered();
        self.wake.register_current();
        let mut latency = LatencyHist::new("recorder (arrival to logged)");
        let mut scratch = Vec::with_capacity(self.max_frame_bytes.max(4096));
        let mut error: Option<LogError> = None;
        let mut last_flush = host_monotonic_ns();
        let mut last_sync = last_flush;
        loop {
            let mut busy = false;
            let r = self.drain(&mut scratch, &mut latency, &mut busy);
            if let Err(e) = r {
                self.failed(&mut error, e, "write");
            }
            let now = host_monotonic_ns();
            // Frames and activity are written out at once: an ack or a publication waits for
            // it. Everything else at least every `FLUSH_EVERY`.
            let promised = self.unflushed_frame.is_some() || self.unflushed_activity.is_some();
            if (promised || now - last_flush > FLUSH_EVERY.as_nanos() as i64) && error.is_none() {
                match self.writer.flush() {
                    Ok(()) => self.written_out(),
                    Err(e) => self.failed(&mut error, e, "flush"),
                }
                last_flush = now;
            }
            if let Some(every) = self.fsync_every
                && now - last_sync > every.as_nanos() as i64
                && error.is_none()
            {
                if let Err(e) = self.writer.sync() {
                    self.failed(&mut error, e, "sync");
                }
                last_sync = now;
            }
            if !busy {
                if self.finished() {
                    break;
                }
                self.wake.wait(Duration::from_millis(2));
            }
        }
        if error.is_none() {
            // The last record says the session ended here on purpose; a log without it
            // was cut short (killed, or damaged at its end).
            if let Err(e) = self.append_end() {
                tracing::error!(error = %e, "session log: cannot write the end record");
                error = Some(e);
            }
        }
        let stats = self.writer.stats();
        let (durable, frame, activity) = (
            Arc::clone(&self.durable),
            self.unflushed_frame.take(),
            self.unflushed_activity.take(),
        );
        match self.writer.finish() {
            Ok(_) if error.is_none() => {
                if let Some(a) = frame {
                    durable.frames_logged(a);
                }
                if let Some(a) = activity {
                    durable.activity_logged(a);
                }
            }
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
        RecorderReport {
            latency,
            stats,
            error: error.map(|e| e.to_string()),
        }
    }

    /// The first failed write stops recording: said loudly once (the error names the file),
    /// counted, and the session told to stop when so configured. The recorder keeps draining,
    /// so nothing upstream blocks.
    fn failed(&mut self, error: &mut Option<LogError>, e: LogError, what: &str) {
        if error.is_some() {
            return;
        }
        Counters::inc(&self.counters.log_write_errors);
        let stopping = self.stop_on_error.is_some();
        tracing::error!(error = %e, what, stopping, "session log {what} failed: recording stopped");
        if let Some(stop) = &self.stop_on_error {
            stop.store(true, std::sync::atomic::Ordering::Release);
        }
        *error = Some(e);
    }

    /// Everything appended so far is written out of the process: raise the watermarks.
    fn written_out(&mut self) {
        let (frame, activity) = (self.unflushed_frame.take(), self.unflushed_activity.take());
        if let Some(a) = frame {
            self.durable.frames_logged(a);
        }
        if let Some(a) = activity {
            self.durable.activity_logged(a);
        }
        if (frame.is_some() || activity.is_some())
            && let Some(w) = &self.on_written
        {
            w.wake();
        }
    }

    fn finished(&self) -> bool {
        self.frames.is_finished()
            && self.eye.is_finished()
            && self.activity.is_finished()
            && self.events_closed
    }

    fn drain(
        &mut self,
        scratch: &mut Vec<u8>,
        latency: &mut LatencyHist,
        busy: &mut bool,
    ) -> Result<(), LogError> {
        while let Some(f) = self.frames.try_pop() {
            *busy = true;
            let prefix = encode_input_prefix(
                f.meta.recv_ns,
                self.record_frames,
                f.meta.clock_gen,
                &f.meta.header(),
            );
            scratch.clear();
            if self.record_frames {
                for p in f.pixels() {
                    scratch.extend_from_slice(&p.to_le_bytes());
                }
            }
            self.append(RecordKind::Input, &[&prefix, scratch])?;
            if f.meta.ack.is_some() {
                self.unflushed_frame = f.meta.ack;
            }
            self.frames_logged += 1;
            latency.record_ns(host_monotonic_ns() - f.meta.recv_ns);
        }
        while let Some(f) = self.eye.try_pop() {
            *busy = true;
            let prefix = encode_input_prefix(
                f.meta.recv_ns,
                self.record_frames,
                f.meta.clock_gen,
                &f.meta.header(),
            );
            let pixels: &[u8] = if self.record_frames { f.pixels() } else { &[] };
            self.append(RecordKind::Input, &[&prefix, pixels])?;
            self.frames_logged += 1;
        }
        while let Some(a) = self.activity.try_pop() {
            *busy = true;
            if a.traces_len > 0 {
                let prefix = encode_activity_prefix(
                    a.frame.seq,
                    a.frame.t,
                    a.frame.plane,
                    a.traces_len as u32,
                );
                f32_le_bytes(a.traces(), scratch);
                self.append(RecordKind::Fluorescence, &[&prefix, scratch])?;
            }
            let prefix =
                encode_activity_prefix(a.frame.seq, a.frame.t, a.frame.plane, a.len as u32);
            f32_le_bytes(a.values(), scratch);
            self.append(RecordKind::Activity, &[&prefix, scratch])?;
            if a.frame.ack.is_some() {
                self.unflushed_activity = a.frame.ack;
            }
            if let Some(registration) = a.registration {
                let r = RegistrationRecord {
                    frame_seq: a.frame.seq,
                    t_ns: a.frame.t.as_nanos(),
                    plane: a.frame.plane,
                    registration,
                };
                self.append(RecordKind::Registration, &[&r.encode()])?;
            }
        }
        loop {
            let item = match self.events.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.events_closed = true;
                    break;
                }
            };
            *busy = true;
            match item {
                RecorderItem::Input {
                    recv_ns,
                    clock_gen,
                    message,
                } => {
                    let prefix = encode_input_prefix(recv_ns, true, clock_gen, &message.header);
                    self.append(RecordKind::Input, &[&prefix, &message.payload])?;
                }
                RecorderItem::Flip(f) => self.append(RecordKind::Flip, &[&f.encode()])?,
                RecorderItem::Anomaly(a) => {
                    // Into the reused buffer: an anomaly can come on the frame path (a device
                    // clock without ticks), which allocates nothing.
                    let mut json = std::mem::take(&mut self.json);
                    json.clear();
                    let encoded =
                        serde_json::to_writer(&mut json, &a).map_err(|e| LogError::Encode {
                            path: self.writer.path().to_path_buf(),
                            what: "anomaly record",
                            message: e.to_string(),
                        });
                    let written = encoded.and_then(|()| self.append(RecordKind::Anomaly, &[&json]));
                    self.json = json;
                    written?;
                }
                RecorderItem::Json { kind, value } => {
                    let mut json = std::mem::take(&mut self.json);
                    json.clear();
                    // A `Value` always encodes: its map keys are strings.
                    let _ = serde_json::to_writer(&mut json, &value);
                    let written = self.append(kind, &[&json]);
                    self.json = json;
                    written?;
                }
            }
        }
        Ok(())
    }

    fn append_end(&mut self) -> Result<(), LogError> {
        let end = EndRecord {
            records: self.writer.records_written(),
            frames: self.frames_logged,
            ended: self
                .end_reason
                .as_ref()
                .and_then(|r| r.get().cloned())
                .unwrap_or_else(|| "inputs finished".into()),
        };
        let json = serde_json::to_vec(&end).map_err(|e| LogError::Encode {
            path: self.writer.path().to_path_buf(),
            what: "end record",
            message: e.to_string(),
        })?;
        self.append(RecordKind::End, &[&json])
    }

    fn append(&mut self, kind: RecordKind, parts: &[&[u8]]) -> Result<(), LogError> {
        self.writer.append_parts(kind as u16, parts)?;
        Counters::inc(&self.counters.records_written);
        Ok(())
    }
}
