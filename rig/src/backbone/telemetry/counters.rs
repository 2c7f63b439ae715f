//! Counters shared by every thread: plain atomics, so counting never blocks or allocates.

use super::DesignCounts;
use crate::vocab::protocol::{ClockDomain, ProtocolError, Stream};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Something that went wrong without stopping the session; each is counted, logged with its
/// stream and sequence number, and written to the session log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "anomaly", rename_all = "snake_case")]
pub enum Anomaly {
    /// Sequence numbers skipped: `missing` messages between `after` and `seq`.
    Gap {
        stream: Stream,
        plane: u8,
        channel: u8,
        after: u64,
        seq: u64,
        missing: u64,
    },
    /// A message rejected, with its reason (and stream/seq when the header could be read).
    Rejected {
        reason: String,
        label: String,
        stream: Option<Stream>,
        seq: Option<u64>,
    },
    /// The imaging stage's ring was full: this frame was recorded but not processed.
    StageSkip { stream: Stream, seq: u64 },
    /// A frame's activity was published later than the budget.
    Late {
        stream: Stream,
        seq: u64,
        latency_us: f64,
    },
    /// The stimulus queue was empty when a trial was due: gray was shown instead.
    Underrun { display_frame: u64 },
    /// A flip came `missed` vsyncs late: the frame before it stayed up longer.
    MissedVsync { display_frame: u64, missed: u32 },
    /// A stimulus could not be prepared or a frame not shown: gray instead, session goes on.
    StimulusError { display_frame: u64, error: String },
    /// The event bus could not keep up and dropped a message (the log still has it).
    BusDrop { stream: Stream, seq: u64 },
    /// A clock tick that cannot be used (the rig's must increase).
    ClockTickRejected {
        domain: ClockDomain,
        t_ns: i64,
        reason: String,
    },
    /// A device clock jumped by `step_ns` (device ns) at device time `at_dev_ns`: a new segment.
    ClockJump {
        domain: ClockDomain,
        step_ns: f64,
        at_dev_ns: i64,
    },
    /// The newest device ticks stopped matching the fitted line: samples are flagged.
    ClockLost {
        domain: ClockDomain,
        dev_ticks: u64,
        unmatched: u64,
    },
    /// A domain's ticks cannot be matched to the rig's (too few matches): its stream cannot be
    /// aligned; samples keep the provisional line and are flagged.
    ClockUnaligned {
        domain: ClockDomain,
        dev_ticks: u64,
        matched: u64,
    },
    /// A device's ticks stopped while the rig's kept coming: its line is extrapolated.
    ClockTicksStopped {
        domain: ClockDomain,
        dev_ticks: u64,
        rig_ticks_since: u64,
    },
    /// A stream configured on a device clock (`[clocks] <stream> = "device"`) sent this many
    /// samples without one tick of its domain: none of them can be mapped to the rig clock.
    ClockNoTicks { domain: ClockDomain, samples: u64 },
}

/// Every label a rejection is counted under (the protocol document's table lists the same).
pub const REJECT_LABELS: [&str; 16] = [
    "frame_count",
    "header_length",
    "bad_magic",
    "unsupported_version",
    "unknown_stream",
    "unknown_dtype",
    "ndim",
    "topic_mismatch",
    "dtype_not_allowed",
    "payload_size",
    "shape_overflow",
    "sequence",
    "shape",
    "not_an_input",
    "time_jump",
    "control",
];

/// Every counter of a session.
#[derive(Default)]
pub struct Counters {
    pub frames_in: AtomicU64,
    pub eye_frames_in: AtomicU64,
    pub treadmill_in: AtomicU64,
    pub sync_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub gaps: AtomicU64,
    pub missing: AtomicU64,
    pub stage_skips: AtomicU64,
    pub late_frames: AtomicU64,
    pub pool_stalls: AtomicU64,
    pub recorder_waits: AtomicU64,
    pub bus_drops: AtomicU64,
    pub underruns: AtomicU64,
    pub frames_processed: AtomicU64,
    pub records_written: AtomicU64,
    pub flips: AtomicU64,
    pub trials: AtomicU64,
    pub decisions: AtomicU64,
    /// Decisions made at their latest moment, before the trial ahead of them was seen whole
    /// (`[trials] decision_lead_s`).
    pub decisions_before_responses: AtomicU64,
    /// Imaging frames whose behaviour was interpolated, held or missing for some input.
    pub behaviour_filled: AtomicU64,
    /// Eye frames or behaviour inputs the behaviour stage could not take (recorded anyway).
    pub behaviour_skips: AtomicU64,
    /// Device clock fits adopted (one per device tick once fitted).
    pub clock_refits: AtomicU64,
    /// Device clock jumps (new segments).
    pub clock_jumps: AtomicU64,
    /// Clock ticks rejected, domains lost, unaligned or whose ticks stopped.
    pub clock_anomalies: AtomicU64,
    /// Writes to the session log that failed (a full disk, say): recording has stopped.
    pub log_write_errors: AtomicU64,
    /// Records a stage could not hand the recorder without stalling (pupil records, `late`
    /// anomalies): dropped from the log, counted here.
    pub records_dropped: AtomicU64,
    /// Imaging frames the pipeline could not process (registration or deconvolution failed):
    /// no activity for them.
    pub frames_failed: AtomicU64,
    /// Values that could not be encoded as JSON (logged as errors; the record is dropped).
    pub json_errors: AtomicU64,
    /// Device clock domains whose stream is sending samples but no sync ticks (a gauge: it
    /// falls again when a tick comes). Non-zero: samples are not on the rig clock.
    pub clock_domains_unticked: AtomicU64,
    /// Messages on the ingest port that are not twinloop traffic at all (no header magic, no
    /// topic): a port scanner or another protocol, kept apart from the protocol's rejections.
    pub garbage_messages: AtomicU64,
    rejected: [AtomicU64; REJECT_LABELS.len()],
    /// The adaptive design's own counts, copied in by the selector thread after each decision
    /// (a lock, not atomics: one writer, a few times a second).
    design: std::sync::Mutex<DesignCounts>,
}

/// A plain copy of the counters for summaries and status messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    pub frames_in: u64,
    pub eye_frames_in: u64,
    pub treadmill_in: u64,
    pub sync_in: u64,
    pub bytes_in: u64,
    pub gaps: u64,
    pub missing: u64,
    pub stage_skips: u64,
    pub late_frames: u64,
    pub pool_stalls: u64,
    pub recorder_waits: u64,
    pub bus_drops: u64,
    pub underruns: u64,
    pub frames_processed: u64,
    pub records_written: u64,
    pub flips: u64,
    pub trials: u64,
    pub decisions: u64,
    #[serde(default)]
    pub decisions_before_responses: u64,
    pub behaviour_filled: u64,
    pub behaviour_skips: u64,
    #[serde(default)]
    pub clock_refits: u64,
    #[serde(default)]
    pub clock_jumps: u64,
    #[serde(default)]
    pub clock_anomalies: u64,
    #[serde(default)]
    pub log_write_errors: u64,
    #[serde(default)]
    pub records_dropped: u64,
    #[serde(default)]
    pub frames_failed: u64,
    #[serde(default)]
    pub json_errors: u64,
    #[serde(default)]
    pub garbage_messages: u64,
    #[serde(default)]
    pub clock_domains_unticked: u64,
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Late decisions, fallback trials, refit failures... (zero without an adaptive design).
    #[serde(default)]
    pub design: DesignCounts,
}

impl CountersSnapshot {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// `v` as JSON; a failure is an ERROR in the log and a counted `json_errors` (the caller
    /// then drops the record or message), never a silent `null`.
    pub fn json(&self, what: &str, v: &impl serde::Serialize) -> Option<serde_json::Value> {
        match serde_json::to_value(v) {
            Ok(value) => Some(value),
            Err(e) => {
                Self::inc(&self.json_errors);
                tracing::error!(error = %e, "the {what} cannot be encoded as JSON; not recorded");
                None
            }
        }
    }

    /// The designer's counts as of its latest decision.
    pub fn set_design(&self, counts: &DesignCounts) {
        // A poisoned lock only means a panicked reader; the data is plain counts.
        let mut held = self.design.lock().unwrap_or_else(|e| e.into_inner());
        held.clone_from(counts);
    }

    /// Count a rejection under its label (`"sequence"`, `"shape"` and `"not_an_input"` are
    /// the ingest's own).
    pub fn reject(&self, label: &str) {
        if let Some(i) = REJECT_LABELS.iter().position(|l| *l == label) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn reject_protocol(&self, e: &ProtocolError) {
        self.reject(e.label());
    }

    pub fn rejected(&self, label: &str) -> u64 {
        REJECT_LABELS
            .iter()
            .position(|l| *l == label)
            .map_or(0, |i| self.rejected[i].load(Relaxed))
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        CountersSnapshot {
            frames_in: g(&self.frames_in),
            eye_frames_in: g(&self.eye_frames_in),
            treadmill_in: g(&self.treadmill_in),
            sync_in: g(&self.sync_in),
            bytes_in: g(&self.bytes_in),
            gaps: g(&self.gaps),
            missing: g(&self.missing),
            stage_skips: g(&self.stage_skips),
            late_frames: g(&self.late_frames),
            pool_stalls: g(&self.pool_stalls),
            recorder_waits: g(&self.recorder_waits),
            bus_drops: g(&self.bus_drops),
            underruns: g(&self.underruns),
            frames_processed: g(&self.frames_processed),
            records_written: g(&self.records_written),
            flips: g(&self.flips),
            trials: g(&self.trials),
            decisions: g(&self.decisions),
            decisions_before_responses: g(&self.decisions_before_responses),
            behaviour_filled: g(&self.behaviour_filled),
            behaviour_skips: g(&self.behaviour_skips),
            clock_refits: g(&self.clock_refits),
            clock_jumps: g(&self.clock_jumps),
            clock_anomalies: g(&self.clock_anomalies),
            log_write_errors: g(&self.log_write_errors),
            records_dropped: g(&self.records_dropped),
            frames_failed: g(&self.frames_failed),
            json_errors: g(&self.json_errors),
            garbage_messages: g(&self.garbage_messages),
            clock_domains_unticked: g(&self.clock_domains_unticked),
            rejected: REJECT_LABELS
                .iter()
                .zip(&self.rejected)
                .filter(|(_, c)| g(c) > 0)
                .map(|(l, c)| (l.to_string(), g(c)))
                .collect(),
            design: self
                .design
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_error_label_has_a_counter() {
        let c = Counters::default();
        for e in [
            ProtocolError::FrameCount(1),
            ProtocolError::HeaderLength(1),
            ProtocolError::BadMagic([0; 4]),
            ProtocolError::UnsupportedVersion(2),
            ProtocolError::UnknownStream(99),
            ProtocolError::UnknownDtype(99),
            ProtocolError::Ndim(9),
            ProtocolError::ShapeOverflow {
                dtype: crate::vocab::protocol::Dtype::I64,
                shape: [65536; 4],
            },
        ] {
            c.reject_protocol(&e);
            assert_eq!(c.rejected(e.label()), 1, "{}", e.label());
        }
        assert_eq!(c.snapshot().rejected_total(), 8);
    }
}
