//! The hot path does not touch the heap: over a steady-state window of frames, the threads that
//! carry two-photon frames (ingest, extraction stage, recorder) make zero heap allocations.
//!
//! A counting global allocator counts only threads that opted in, and only inside the window,
//! so the test harness and warm-up (pool creation, first writes) do not count. The ZeroMQ
//! receive itself is outside this window: zmq.rs hands each message over as freshly allocated
//! `Bytes`, which the daemon borrows without copying into new allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use twinloop_rig::config::Config;
use twinloop_rig::frames::{ActivityBuf, EyeBuf, FrameBuf};
use twinloop_rig::protocol::{Dtype, Header, Message, Stream};
use twinloop_rig::ring::{Pool, Wakeup, ring};
use twinloop_rig::sinks::event_bus;
use twinloop_rig::sinks::recorder::Recorder;
use twinloop_rig::sinks::session_log::LogWriter;
use twinloop_rig::sources::{Ingest, IngestOutputs, Outcome};
use twinloop_rig::stages::extract::{ExtractStage, Extractor, Footprints, StageOutputs};
use twinloop_rig::telemetry::Counters;

struct Counting;

static WINDOW: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static HOT: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if WINDOW.load(Ordering::Relaxed) && HOT.try_with(|h| h.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn hot_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            HOT.with(|h| h.set(true));
            f()
        })
        .unwrap()
}

#[test]
fn steady_state_frames_allocate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config::default_sim();
    cfg.imaging.width = 128;
    cfg.imaging.height = 128;
    let (w, h) = (cfg.imaging.width, cfg.imaging.height);
    let px = (w * h) as usize;
    let counters = Arc::new(Counters::default());

    let stage_wake = Wakeup::new();
    let recorder_wake = Wakeup::new();
    let (to_stage, stage_rx) = ring(32, Arc::clone(&stage_wake));
    let (to_recorder, rec_frames) = ring(128, Arc::clone(&recorder_wake));
    let (eye_to_recorder, rec_eye) = ring(8, Arc::clone(&recorder_wake));
    let (act_to_recorder, rec_activity) = ring(128, Arc::clone(&recorder_wake));
    let (act_to_selector, mut sel_rx) = ring(128, Wakeup::new());
    let (act_to_bus, mut bus_rx) = ring(32, Wakeup::new());
    let (thumbnails, _thumbnails_rx) = ring(2, Wakeup::new());
    let (events_tx, events_rx) = crossbeam_channel::bounded(1024);
    let (bus, _bus_inbox) = event_bus::bus(16, Arc::clone(&counters));

    let mut ingest = Ingest::new(
        &cfg,
        IngestOutputs {
            frame_pool: Pool::new(256, || FrameBuf::with_capacity(px)),
            eye_pool: Pool::new(4, || EyeBuf::with_capacity(16)),
            to_stage,
            to_recorder,
            eye_to_recorder,
            events: events_tx.clone(),
            behaviour: None,
        },
        Arc::clone(&counters),
    );
    let footprints = Footprints::grid(w, h, 8);
    let cells = footprints.cells();
    let stage = ExtractStage {
        extractor: Extractor::Footprints(footprints),
        input: stage_rx,
        wake: stage_wake,
        out: StageOutputs {
            pool: Pool::new(512, || ActivityBuf::with_capacity(cells)),
            to_recorder: act_to_recorder,
            to_selector: act_to_selector,
            to_bus: act_to_bus,
            bus,
            events: events_tx.clone(),
            // The dashboard's thumbnail handles ride the hot path too (nobody drains this
            // ring, so it fills and then drops: both must be allocation-free).
            to_dashboard: Some(thumbnails),
        },
        counters: Arc::clone(&counters),
        late_after_ns: i64::MAX,
    };
    let recorder = Recorder {
        writer: LogWriter::create(tmp.path().join("records.log")).unwrap(),
        frames: rec_frames,
        eye: rec_eye,
        activity: rec_activity,
        events: events_rx,
        wake: recorder_wake,
        counters: Arc::clone(&counters),
        record_frames: true,
        max_frame_bytes: px * 2,
        events_closed: false,
    };
    drop(events_tx);
    let stage_h = hot_thread("extract", move || stage.run());
    let recorder_h = hot_thread("recorder", move || recorder.run());
    // Stands in for the selector and the publisher: takes their activity, allocation-free.
    let done = Arc::new(AtomicBool::new(false));
    let drain_done = Arc::clone(&done);
    let drain_h = hot_thread("drain", move || {
        while !drain_done.load(Ordering::Acquire) || !sel_rx.is_finished() {
            while sel_rx.try_pop().is_some() {}
            while bus_rx.try_pop().is_some() {}
            std::thread::sleep(Duration::from_micros(100));
        }
    });

    // Messages as zmq.rs would hand them over, built before the window.
    let messages: Vec<[Bytes; 3]> = (0..1300u64)
        .map(|seq| {
            let header = Header::new(
                Stream::TwoPhoton,
                Dtype::U16,
                &[h, w],
                seq,
                seq as i64 * 33_333_333,
            );
            let payload: Vec<u8> = (0..px)
                .flat_map(|i| ((i as u64 + seq) as u16).to_le_bytes())
                .collect();
            Message {
                header,
                payload: Bytes::from(payload),
            }
            .into_frames()
        })
        .collect();

    HOT.with(|h| h.set(true));
    // Guard against a test that cannot fail: the counter sees an allocation in the window.
    WINDOW.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(vec![1u8; 64]));
    WINDOW.store(false, Ordering::SeqCst);
    assert_eq!(
        ALLOCATIONS.swap(0, Ordering::SeqCst),
        1,
        "the counting allocator counts"
    );
    let settle = |n: u64| {
        while counters.frames_processed.load(Ordering::Acquire) < n
            || counters.records_written.load(Ordering::Acquire) < 2 * n
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for (i, m) in messages.iter().enumerate() {
        if i == 300 {
            settle(300);
            WINDOW.store(true, Ordering::SeqCst);
        }
        assert_eq!(ingest.handle(m, 0), Outcome::Frame { seq: i as u64 });
        // Pace to the stage so it never skips (a skip is logged, and logging allocates).
        while counters.frames_in.load(Ordering::Acquire)
            > counters.frames_processed.load(Ordering::Acquire) + 8
        {
            std::thread::yield_now();
        }
    }
    settle(1300);
    WINDOW.store(false, Ordering::SeqCst);
    HOT.with(|h| h.set(false));
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);

    drop(ingest);
    stage_h.join().unwrap();
    done.store(true, Ordering::Release);
    drain_h.join().unwrap();
    let report = recorder_h.join().unwrap();
    assert!(report.error.is_none());
    let s = counters.snapshot();
    assert_eq!(
        (s.frames_in, s.frames_processed, s.stage_skips),
        (1300, 1300, 0)
    );
    assert_eq!(
        s.records_written, 2600,
        "every frame and its activity were logged"
    );
    assert_eq!(
        allocations, 0,
        "heap allocations on the hot path over 1,000 frames"
    );
}
