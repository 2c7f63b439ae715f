//! The extraction stage's thread: frames in, activity out to the recorder, bus and selector.

use super::Footprints;
use crate::backbone::bus::Bus;
use crate::backbone::frames::{Activity, ActivityBuf, Frame, FrameMeta};
use crate::backbone::recorder_item::RecorderItem;
use crate::backbone::ring::{Pool, RingRx, RingTx, Wakeup};
use crate::backbone::telemetry::{Anomaly, Counters, LatencyHist};
use crate::stages::imaging::{FrameOutput, OnlinePipeline};
use crate::vocab::clock::host_monotonic_ns;
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
    /// Every [`THUMBNAIL_EVERY`]-th frame's handle, for the dashboard's thumbnail (best
    /// effort: a full ring drops it; no copy on this thread).
    pub to_dashboard: Option<RingTx<Frame>>,
}

/// The dashboard sees one two-photon frame in this many (5 per second at 30 Hz).
pub const THUMBNAIL_EVERY: u64 = 6;

/// How the stage turns frames into activity.
pub enum Extractor {
    /// PLACEHOLDER: weighted means over fixed footprints (simulator truth or a grid).
    Footprints(Footprints),
    /// The imaging pipeline: registration, cells, dF/F, online deconvolution.
    Pipeline(Box<OnlinePipeline>),
}

impl Extractor {
    /// Most values one frame's activity can have.
    pub fn max_cells(&self) -> usize {
        match self {
            Extractor::Footprints(f) => f.cells(),
            Extractor::Pipeline(p) => p.max_cells(),
        }
    }
}

pub struct ExtractStage {
    extractor: Extractor,
    input: RingRx<Frame>,
    wake: Arc<Wakeup>,
    out: StageOutputs,
    counters: Arc<Counters>,
    late_after_ns: i64,
}

/// What the stage measured.
pub struct StageReport {
    /// Frame arrival (host) to activity ready.
    pub stage: LatencyHist,
    /// Compute time alone (ring pop to activity ready).
    pub compute: LatencyHist,
    /// Sender's timestamp to activity ready (when the sender stamps `sent_ns`).
    pub end_to_end: LatencyHist,
    /// Cells per frame at the end (detected cells for the pipeline).
    pub cells: usize,
}

/// The ends of an offline stage's rings (replay, benchmarks): frames in, and the activity the
/// recorder, selector and bus would have had. The caller drains the first two (the stage waits
/// on them); the bus ring drops when full.
pub struct OfflineTaps {
    pub input: RingTx<Frame>,
    pub recorder: RingRx<Activity>,
    pub selector: RingRx<Activity>,
    pub bus: RingRx<Activity>,
}

impl ExtractStage {
    /// A stage popping frames from `input` (whose ring wakes `wake`); a frame whose activity is
    /// ready later than `late_after_ns` after it arrived counts as late.
    pub fn new(
        extractor: Extractor,
        input: RingRx<Frame>,
        wake: Arc<Wakeup>,
        out: StageOutputs,
        counters: Arc<Counters>,
        late_after_ns: i64,
    ) -> ExtractStage {
        ExtractStage {
            extractor,
            input,
            wake,
            out,
            counters,
            late_after_ns,
        }
    }

    /// The extractor (its cells, its pipeline's scan slot), before the stage runs.
    pub fn extractor_mut(&mut self) -> &mut Extractor {
        &mut self.extractor
    }

    /// A stage running `extractor` off the daemon: no live bus subscribers, no recorder, no
    /// dashboard; `capacity` slots per output ring.
    pub fn offline(extractor: Extractor, capacity: usize) -> (ExtractStage, OfflineTaps) {
        let n_cells = extractor.max_cells();
        let counters = Arc::new(Counters::default());
        let wake = Wakeup::new();
        let (input, stage_rx) = crate::backbone::ring::ring(32, Arc::clone(&wake));
        let (to_recorder, recorder) = crate::backbone::ring::ring(capacity, Wakeup::new());
        let (to_selector, selector) = crate::backbone::ring::ring(capacity, Wakeup::new());
        let (to_bus, bus_rx) = crate::backbone::ring::ring(capacity, Wakeup::new());
        let (bus, _inbox) = crate::backbone::bus::bus(16, Arc::clone(&counters));
        // Notes (calibration results) have no log to go to; a full channel drops them.
        let (events, _events_rx) = crossbeam_channel::bounded(16);
        let out = StageOutputs {
            pool: Pool::new(256, || ActivityBuf::with_capacity(n_cells)),
            to_recorder,
            to_selector,
            to_bus,
            bus,
            events,
            to_dashboard: None,
        };
        let stage = ExtractStage::new(extractor, stage_rx, wake, out, counters, i64::MAX);
        let taps = OfflineTaps {
            input,
            recorder,
            selector,
            bus: bus_rx,
        };
        (stage, taps)
    }

    pub fn run(mut self) -> StageReport {
        let _span = tracing::info_span!("stage", name = "extract").entered();
        self.wake.register_current();
        let mut report = StageReport {
            stage: LatencyHist::new("extract (arrival to activity)"),
            compute: LatencyHist::new("extract (compute)"),
            end_to_end: LatencyHist::new("end to end (send to activity)"),
            cells: 0,
        };
        loop {
            let Some(frame) = self.input.try_pop() else {
                let finished = self.input.is_finished();
                if let Extractor::Pipeline(p) = &mut self.extractor {
                    // A calibration that finished while no frame came: send its backlog now.
                    let mut sink = Sink {
                        out: &mut self.out,
                        counters: &self.counters,
                        late_after_ns: self.late_after_ns,
                        report: &mut report,
                        popped_ns: host_monotonic_ns(),
                    };
                    let mut emit = |m: &FrameMeta, o: &FrameOutput<'_>| sink.emit(m, o);
                    if finished {
                        p.finish(&mut emit);
                    } else {
                        p.poll(&mut emit);
                    }
                    record_notes(p, &self.out, &self.counters);
                }
                if finished {
                    break;
                }
                self.wake.wait(Duration::from_millis(5));
                continue;
            };
            let popped = host_monotonic_ns();
            self.process(&frame, popped, &mut report);
        }
        report.cells = match &self.extractor {
            Extractor::Footprints(f) => f.cells(),
            Extractor::Pipeline(p) => p.cells(),
        };
        report
    }

    fn process(&mut self, frame: &Frame, popped_ns: i64, report: &mut StageReport) {
        if let Some(tx) = self.out.to_dashboard.as_mut()
            && frame.meta.seq.is_multiple_of(THUMBNAIL_EVERY)
        {
            let _ = tx.try_push(frame.clone());
        }
        let mut sink = Sink {
            out: &mut self.out,
            counters: &self.counters,
            late_after_ns: self.late_after_ns,
            report,
            popped_ns,
        };
        match &mut self.extractor {
            Extractor::Footprints(f) => {
                let mut a = take_slot(&sink.out.pool, sink.counters);
                let n = f.cells().min(a.values.len());
                f.extract(frame.pixels(), frame.meta.dtype, &mut a.values[..n]);
                a.len = n;
                a.traces_len = 0;
                a.frame = frame.meta;
                a.registration = None;
                sink.send(a);
            }
            Extractor::Pipeline(p) => {
                // Zero, one, or (right after calibration) many frames become ready; each is
                // sent as it comes, so the backlog never holds more than one activity slot.
                let (skipped, failed) = (p.skipped, p.frames_failed());
                p.on_frame(frame, &mut |m: &FrameMeta, o: &FrameOutput<'_>| {
                    sink.emit(m, o)
                });
                if p.skipped > skipped {
                    Counters::inc(&sink.counters.stage_skips);
                }
                sink.counters.frames_failed.fetch_add(
                    p.frames_failed() - failed,
                    std::sync::atomic::Ordering::Relaxed,
                );
                record_notes(p, sink.out, sink.counters);
            }
        }
    }
}

/// Where the stage's activity goes: the stage's outputs and its latency report, borrowed apart
/// from the extractor so the extractor can hand results over as it produces them.
struct Sink<'a> {
    out: &'a mut StageOutputs,
    counters: &'a Counters,
    late_after_ns: i64,
    report: &'a mut StageReport,
    popped_ns: i64,
}

/// The pipeline's notes (calibration results) into the session log. Rare (after calibration)
/// and needed to read the session back, so the stage waits for room rather than drop one; a
/// recorder that is gone (a panic, logged where it happened; or an offline stage, which has
/// no log) is counted.
fn record_notes(p: &mut OnlinePipeline, out: &StageOutputs, counters: &Counters) {
    for value in p.take_notes() {
        let note = RecorderItem::Json {
            kind: crate::vocab::records::RecordKind::Note,
            value,
        };
        if out.events.send(note).is_err() {
            Counters::inc(&counters.records_dropped);
            tracing::debug!("no recorder: a calibration note is not recorded");
        }
    }
}

impl Sink<'_> {
    fn emit(&mut self, meta: &FrameMeta, output: &FrameOutput<'_>) {
        let mut a = take_slot(&self.out.pool, self.counters);
        let n = output.spikes.len().min(a.values.len());
        a.values[..n].copy_from_slice(&output.spikes[..n]);
        a.len = n;
        // F, Fneu, dF/F back to back, for the recorder (the slot holds 3x the cells).
        let t = n
            .min(output.f.len())
            .min(output.fneu.len())
            .min(output.dff.len());
        for (k, trace) in [output.f, output.fneu, output.dff].into_iter().enumerate() {
            a.traces[k * t..(k + 1) * t].copy_from_slice(&trace[..t]);
        }
        a.traces_len = t;
        a.frame = *meta;
        a.registration = Some(*output.registration);
        self.send(a);
    }

    fn send(&mut self, mut a: crate::backbone::ring::PoolWriter<ActivityBuf>) {
        let ready = host_monotonic_ns();
        a.ready_ns = ready;
        let meta = a.frame;
        let a = a.freeze();
        push_waiting(&mut self.out.to_recorder, a.clone(), self.counters);
        push_waiting(&mut self.out.to_selector, a.clone(), self.counters);
        // The ring wakes the publisher.
        if self.out.to_bus.try_push(a).is_err() {
            Counters::inc(&self.counters.bus_drops);
        }
        Counters::inc(&self.counters.frames_processed);

        let latency = ready - meta.recv_ns;
        self.report.stage.record_ns(latency);
        self.report.compute.record_ns(ready - self.popped_ns);
        if meta.sent_ns > 0 {
            self.report.end_to_end.record_ns(ready - meta.sent_ns);
        }
        if latency > self.late_after_ns {
            Counters::inc(&self.counters.late_frames);
            let anomaly = Anomaly::Late {
                stream: meta.stream,
                seq: meta.seq,
                latency_us: latency as f64 / 1e3,
            };
            // Best effort: a full recorder queue must not stall the stage for a late notice;
            // one dropped is counted (`late_frames` still counts every late frame).
            if self
                .out
                .events
                .try_send(RecorderItem::Anomaly(anomaly))
                .is_err()
            {
                Counters::inc(&self.counters.records_dropped);
            }
        }
    }
}

fn take_slot(
    pool: &Pool<ActivityBuf>,
    counters: &Counters,
) -> crate::backbone::ring::PoolWriter<ActivityBuf> {
    loop {
        if let Some(a) = pool.try_take() {
            return a;
        }
        Counters::inc(&counters.pool_stalls);
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn push_waiting<T>(tx: &mut RingTx<T>, item: T, counters: &Counters) {
    let mut pending = item;
    while let Err(back) = tx.try_push(pending) {
        if tx.is_abandoned() {
            return;
        }
        pending = back;
        Counters::inc(&counters.recorder_waits);
        std::thread::sleep(Duration::from_micros(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::frames::FrameBuf;
    use crate::backbone::ring::ring;
    use crate::vocab::protocol::{Dtype, Header, Stream};

    /// `late` notices that found the recorder's queue full used to vanish (#16): each one is
    /// counted, and `late_frames` still counts every late frame.
    #[test]
    fn late_notices_dropped_for_a_full_recorder_are_counted() {
        let (w, h) = (16u32, 8u32);
        let extractor = Extractor::Footprints(Footprints::grid(w, h, 4));
        let n_cells = extractor.max_cells();
        let counters = Arc::new(Counters::default());
        let wake = Wakeup::new();
        let (mut input, stage_rx) = ring(32, Arc::clone(&wake));
        let (to_recorder, mut recorder) = ring(64, Wakeup::new());
        let (to_selector, mut selector) = ring(64, Wakeup::new());
        let (to_bus, _bus_rx) = ring(64, Wakeup::new());
        let (bus, _inbox) = crate::backbone::bus::bus(16, Arc::clone(&counters));
        // The recorder's queue holds one item and is full already.
        let (events, events_rx) = crossbeam_channel::bounded(1);
        events
            .send(RecorderItem::Anomaly(Anomaly::Underrun {
                display_frame: 0,
            }))
            .unwrap();
        let out = StageOutputs {
            pool: Pool::new(64, || ActivityBuf::with_capacity(n_cells)),
            to_recorder,
            to_selector,
            to_bus,
            bus,
            events,
            to_dashboard: None,
        };
        // A budget of -1 ns: every frame is late.
        let stage = ExtractStage::new(extractor, stage_rx, wake, out, Arc::clone(&counters), -1);
        let frames = Pool::new(8, || FrameBuf::with_capacity((w * h) as usize));
        let n = 5u64;
        for seq in 0..n {
            let header = Header::new(Stream::TwoPhoton, Dtype::U16, &[h, w], seq, 0);
            let mut slot = frames.try_take().unwrap();
            slot.fill_from_le(
                FrameMeta::from_header(&header, host_monotonic_ns()),
                &vec![0u8; (2 * w * h) as usize],
            );
            assert!(input.try_push(slot.freeze()).is_ok());
        }
        drop(input);
        let thread = std::thread::spawn(move || stage.run());
        let mut got = 0;
        while got < n {
            while recorder.try_pop().is_some() {
                got += 1;
            }
            while selector.try_pop().is_some() {}
            std::thread::yield_now();
        }
        thread.join().unwrap();
        let s = counters.snapshot();
        assert_eq!((s.late_frames, s.records_dropped), (n, n));
        assert_eq!(events_rx.len(), 1, "only the item that filled the queue");
    }
}
