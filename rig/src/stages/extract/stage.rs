//! The extraction stage's thread: frames in, activity out to the recorder, bus and selector.

use super::Footprints;
use crate::clock::host_monotonic_ns;
use crate::frames::{Activity, ActivityBuf, Frame};
use crate::ring::{Pool, RingRx, RingTx, Wakeup};
use crate::sinks::event_bus::Bus;
use crate::sources::RecorderItem;
use crate::telemetry::{Anomaly, Counters, LatencyHist};
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::time::Duration;

pub struct StageOutputs {
    pub pool: Pool<ActivityBuf>,
    /// Must see every frame's activity: the stage waits when it is full.
    pub to_recorder: RingTx<Activity>,
    /// Must see every frame's activity too (replay reproduces decisions from it).
    pub to_selector: RingTx<Activity>,
    /// Best effort: dropped and counted when full.
    pub to_bus: RingTx<Activity>,
    pub bus: Bus,
    pub events: Sender<RecorderItem>,
}

pub struct ExtractStage {
    pub footprints: Footprints,
    pub input: RingRx<Frame>,
    pub wake: Arc<Wakeup>,
    pub out: StageOutputs,
    pub counters: Arc<Counters>,
    pub late_after_ns: i64,
}

/// What the stage measured.
pub struct StageReport {
    /// Frame arrival (host) to activity ready.
    pub stage: LatencyHist,
    /// Compute time alone (ring pop to activity ready).
    pub compute: LatencyHist,
    /// Sender's timestamp to activity ready (when the sender stamps `sent_ns`).
    pub end_to_end: LatencyHist,
}

impl ExtractStage {
    pub fn run(mut self) -> StageReport {
        let _span = tracing::info_span!("stage", name = "extract").entered();
        self.wake.register_current();
        let mut report = StageReport {
            stage: LatencyHist::new("extract (arrival to activity)"),
            compute: LatencyHist::new("extract (compute)"),
            end_to_end: LatencyHist::new("end to end (send to activity)"),
        };
        loop {
            let Some(frame) = self.input.try_pop() else {
                if self.input.is_finished() {
                    break;
                }
                self.wake.wait(Duration::from_millis(5));
                continue;
            };
            let popped = host_monotonic_ns();
            self.process(&frame, popped, &mut report);
        }
        report
    }

    fn process(&mut self, frame: &Frame, popped_ns: i64, report: &mut StageReport) {
        let mut a = loop {
            if let Some(a) = self.out.pool.try_take() {
                break a;
            }
            Counters::inc(&self.counters.pool_stalls);
            std::thread::sleep(Duration::from_micros(50));
        };
        let n = self.footprints.cells().min(a.values.len());
        self.footprints
            .extract(frame.pixels(), frame.meta.dtype, &mut a.values[..n]);
        a.len = n;
        a.frame = frame.meta;
        let ready = host_monotonic_ns();
        a.ready_ns = ready;
        let a = a.freeze();

        push_waiting(&mut self.out.to_recorder, a.clone(), &self.counters);
        push_waiting(&mut self.out.to_selector, a.clone(), &self.counters);
        // The ring wakes the publisher.
        if self.out.to_bus.try_push(a).is_err() {
            Counters::inc(&self.counters.bus_drops);
        }
        Counters::inc(&self.counters.frames_processed);

        let latency = ready - frame.meta.recv_ns;
        report.stage.record_ns(latency);
        report.compute.record_ns(ready - popped_ns);
        if frame.meta.sent_ns > 0 {
            report.end_to_end.record_ns(ready - frame.meta.sent_ns);
        }
        if latency > self.late_after_ns {
            Counters::inc(&self.counters.late_frames);
            let anomaly = Anomaly::Late {
                stream: frame.meta.stream,
                seq: frame.meta.seq,
                latency_us: latency as f64 / 1e3,
            };
            // Best effort: a full recorder queue must not stall the stage for a late notice.
            let _ = self.out.events.try_send(RecorderItem::Anomaly(anomaly));
        }
    }
}

fn push_waiting<T>(tx: &mut RingTx<T>, item: T, counters: &Counters) {
    let mut pending = item;
    while let Err(back) = tx.try_push(pending) {
        pending = back;
        Counters::inc(&counters.recorder_waits);
        std::thread::sleep(Duration::from_micros(20));
    }
}
