//! The recorder: the one thread that writes the session log, seeing every input, every frame's
//! activity, every flip and every decision.
//!
//! Two-photon and eye frames and activity arrive through rings (no allocation); low-rate items
//! through a bounded channel. The log is flushed every `FLUSH_EVERY`, so a SIGKILL loses at
//! most that much, and the reader recovers everything up to the last complete record.

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
}

/// What the recorder reads: every ring and channel that ends in the log.
pub struct RecorderInputs {
    pub frames: RingRx<Frame>,
    pub eye: RingRx<EyeFrame>,
    pub activity: RingRx<Activity>,
    pub events: Receiver<RecorderItem>,
    /// Shared by every ring above, so any of them wakes the recorder.
    pub wake: Arc<Wakeup>,
}

pub struct RecorderReport {
    pub latency: LatencyHist,
    pub stats: LogStats,
    pub error: Option<String>,
}

impl Recorder {
    /// `record_frames`: write pixels, not only frame metadata; `max_frame_bytes` sizes the
    /// scratch buffer once.
    pub fn new(
        writer: LogWriter,
        inputs: RecorderInputs,
        counters: Arc<Counters>,
        record_frames: bool,
        max_frame_bytes: usize,
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
        loop {
            let mut busy = false;
            let r = self.drain(&mut scratch, &mut latency, &mut busy);
            if let Err(e) = r {
                // Recording stopped: say so loudly once, keep draining so nothing upstream blocks.
                if error.is_none() {
                    tracing::error!(error = %e, "session log write failed: recording stopped");
                }
                error.get_or_insert(e);
            }
            let now = host_monotonic_ns();
            if now - last_flush > FLUSH_EVERY.as_nanos() as i64 {
                if let Err(e) = self.writer.flush() {
                    error.get_or_insert(e);
                }
                last_flush = now;
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
        let sync = self.writer.finish();
        if let Err(e) = sync {
            error.get_or_insert(e);
        }
        RecorderReport {
            latency,
            stats,
            error: error.map(|e| e.to_string()),
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
                    let json = serde_json::to_vec(&a).unwrap_or_default();
                    self.append(RecordKind::Anomaly, &[&json])?;
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
