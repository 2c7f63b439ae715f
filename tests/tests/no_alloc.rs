//! The hot path does not touch the heap: over a steady-state window of frames, the threads that
//! carry two-photon frames (ingest, extraction stage, recorder) make zero heap allocations.
//!
//! The pipeline is the session's own ([`Pipeline::build`]); the test runs its threads itself so
//! it can mark the hot ones. A counting global allocator counts only those threads, and only
//! inside the window, so the harness and warm-up (pool creation, first writes) do not count.
//! The ZeroMQ receive itself is outside this window: the socket hands each message over as
//! freshly allocated `Bytes`, which the daemon borrows without copying into new allocations.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use twinloop_e2e::alloc_count::{self, Counting};
use twinloop_rig::backbone::session_log::{LogReader, LogWriter};
use twinloop_rig::config::{Config, Extraction, Policy};
use twinloop_rig::online::session::{Pipeline, PipelineParts};
use twinloop_rig::online::sources::Outcome;
use twinloop_rig::stages::decide::build_selector;
use twinloop_rig::stages::extract::build_extractor;
use twinloop_rig::vocab::protocol::{Dtype, Header, Message, Stream};
use twinloop_rig::vocab::records::RecordKind;
use twinloop_rig::vocab::scan::ScanSlot;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn hot_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            alloc_count::hot(true);
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
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.grid_block_px = 8;
    cfg.imaging.late_after_ms = f64::INFINITY;
    cfg.trials.policy = Policy::Random;
    cfg.session.record_frames = true;
    cfg.rings.frame_pool = 256;
    cfg.rings.stage_ring = 32;
    cfg.rings.recorder_ring = 128;
    let (w, h) = (cfg.imaging.width, cfg.imaging.height);
    let px = (w * h) as usize;
    let log = tmp.path().join("records.log");
    let pipeline = Pipeline::build(
        &cfg,
        PipelineParts {
            writer: LogWriter::create(&log).unwrap(),
            extractor: build_extractor(&cfg.imaging, || Ok(Vec::new()), None).unwrap(),
            scan: ScanSlot::new(cfg.imaging.planes),
            selector: build_selector(&cfg.decide_setup()).unwrap(),
            dashboard: None,
        },
    )
    .unwrap();
    let Pipeline {
        mut ingest,
        publisher,
        shared,
        recorder,
        behaviour,
        stage,
        selector,
        renderer,
    } = pipeline;
    // No renderer (the selector's first decision finds nobody to take it) and no publisher
    // (the bus ring is best effort and fills): dropped now, so their ends of the recorder's
    // channel close and the recorder can finish.
    drop((renderer, publisher));
    let counters = Arc::clone(&shared.counters);
    // The frame path on hot threads; the selector and behaviour stage as in a session.
    let stage_h = hot_thread("extract", move || stage.run());
    let recorder_h = hot_thread("recorder", move || recorder.run());
    let selector_h = std::thread::spawn(move || selector.run());
    let behaviour_h = std::thread::spawn(move || behaviour.run());

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

    alloc_count::hot(true);
    // Guard against a test that cannot fail: the counter sees an allocation in the window.
    alloc_count::window(true);
    drop(std::hint::black_box(vec![1u8; 64]));
    alloc_count::window(false);
    assert_eq!(alloc_count::take(), 1, "the counting allocator counts");
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
            alloc_count::window(true);
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
    alloc_count::window(false);
    alloc_count::hot(false);
    let allocations = alloc_count::allocations();

    drop(ingest);
    stage_h.join().unwrap();
    selector_h.join().unwrap();
    behaviour_h.join().unwrap();
    let report = recorder_h.join().unwrap();
    assert!(report.error.is_none());
    let s = counters.snapshot();
    assert_eq!(
        (s.frames_in, s.frames_processed, s.stage_skips),
        (1300, 1300, 0)
    );
    // Every frame and its activity were logged (besides the behaviour and decision records).
    let mut reader = LogReader::open(&log).unwrap();
    let (mut frames, mut activity, mut buf) = (0, 0, Vec::new());
    while let Some(r) = reader.next_into(&mut buf).unwrap() {
        frames += u64::from(r.kind == RecordKind::Input as u16);
        activity += u64::from(r.kind == RecordKind::Activity as u16);
    }
    assert_eq!((frames, activity), (1300, 1300));
    assert_eq!(
        allocations, 0,
        "heap allocations on the hot path over 1,000 frames"
    );
}
