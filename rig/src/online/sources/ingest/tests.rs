use super::*;
use crate::backbone::ring::{RingRx, Wakeup, ring};
use crate::config::Config;
use crate::vocab::protocol::{Dtype, Header, SyncCode};

struct Rig {
    ingest: Ingest,
    stage: RingRx<Frame>,
    recorder: RingRx<Frame>,
    events: crossbeam_channel::Receiver<RecorderItem>,
    counters: Arc<Counters>,
}

fn rig(stage_ring: usize) -> Rig {
    let mut cfg = Config::default_sim();
    cfg.imaging.width = 16;
    cfg.imaging.height = 8;
    cfg.eye.width = 8;
    cfg.eye.height = 4;
    let counters = Arc::new(Counters::default());
    let (to_stage, stage) = ring(stage_ring, Wakeup::new());
    let (to_recorder, recorder) = ring(1024, Wakeup::new());
    let (eye_to_recorder, _eye) = ring(1024, Wakeup::new());
    let (events_tx, events) = crossbeam_channel::bounded(1024);
    let out = IngestOutputs {
        frame_pool: Pool::new(2048, || FrameBuf::with_capacity(16 * 8)),
        eye_pool: Pool::new(8, || EyeBuf::with_capacity(32)),
        to_stage,
        to_recorder,
        eye_to_recorder,
        events: events_tx,
        behaviour: None,
    };
    Rig {
        ingest: Ingest::new(
            &cfg.imaging,
            &cfg.eye,
            &cfg.clocks,
            &cfg.source,
            out,
            Arc::clone(&counters),
        ),
        stage,
        recorder,
        events,
        counters,
    }
}

fn frame(seq: u64) -> [Bytes; 3] {
    frame_at(seq, seq as i64 * 33_000_000)
}

fn frame_at(seq: u64, t_ns: i64) -> [Bytes; 3] {
    let h = Header::new(Stream::TwoPhoton, Dtype::U16, &[8, 16], seq, t_ns);
    let payload: Vec<u8> = (0..16 * 8u16)
        .flat_map(|v| (v + seq as u16).to_le_bytes())
        .collect();
    Message {
        header: h,
        payload: Bytes::from(payload),
    }
    .into_frames()
}

fn anomalies(events: &crossbeam_channel::Receiver<RecorderItem>) -> Vec<Anomaly> {
    events
        .try_iter()
        .filter_map(|e| match e {
            RecorderItem::Anomaly(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// Epoch microseconds read as nanoseconds, or an hour's jump: refused under their own
/// label, logged, and the session clock stays where it was.
#[test]
fn a_frame_whose_time_jumps_is_refused_and_never_moves_the_clock() {
    let mut r = rig(64);
    r.ingest.handle(&frame(0), 1);
    r.ingest.handle(&frame(1), 1);
    let before = r.ingest.latest_frame_time();
    for (seq, t) in [(2, 1_700_000_000_000_000), (3, 3_600_000_000_000)] {
        assert_eq!(
            r.ingest.handle(&frame_at(seq, t), 1),
            Outcome::Rejected("time_jump")
        );
    }
    assert_eq!(r.ingest.latest_frame_time(), before);
    assert_eq!(r.counters.snapshot().rejected.get("time_jump"), Some(&2));
    let a = anomalies(&r.events);
    assert!(
        matches!(&a[..], [Anomaly::Rejected { label, reason, .. }, ..]
            if label == "time_jump" && reason.contains("max_time_jump_s")),
        "{a:?}"
    );
    // The stream goes on at its own time; the refused frames are a gap.
    assert_eq!(r.ingest.handle(&frame(4), 1), Outcome::Frame { seq: 4 });
    assert_eq!(r.counters.snapshot().missing, 2);
}

/// Every two-photon frame carries its place in the sender's numbering; a hello starts a
/// new one. Nothing is acked by ingest itself: the recorder acks what it wrote.
#[test]
fn frames_are_tagged_for_their_ack_and_a_hello_starts_a_new_epoch() {
    let mut r = rig(64);
    r.ingest.handle(&frame(0), 1);
    r.ingest.handle(&frame(1), 1);
    let tags: Vec<_> = std::iter::from_fn(|| r.recorder.try_pop().map(|f| f.meta.ack)).collect();
    assert_eq!(
        tags,
        [
            Some(Ack { epoch: 0, index: 0 }),
            Some(Ack { epoch: 0, index: 1 })
        ]
    );
    assert_eq!(r.ingest.durable.acked(), None, "nothing is written yet");
    let hello = Message::json(
        Stream::Control,
        0,
        0,
        &serde_json::json!({"event": "hello"}),
    );
    r.ingest.handle(&hello.into_frames(), 1);
    r.ingest.handle(&frame(0), 1);
    let f = r.recorder.try_pop().unwrap();
    assert_eq!(f.meta.ack, Some(Ack { epoch: 1, index: 0 }));
}

/// A hello's `epoch` is what every ack of its numbering carries; one that is not an unsigned
/// integer is refused under `control`, naming the field, and starts no numbering.
#[test]
fn a_hello_names_the_epoch_its_acks_carry() {
    let mut r = rig(64);
    let hello = |epoch: serde_json::Value| {
        Message::json(
            Stream::Control,
            0,
            0,
            &serde_json::json!({"event": "hello", "epoch": epoch}),
        )
        .into_frames()
    };
    assert_eq!(
        r.ingest.handle(&hello(serde_json::json!(-3)), 1),
        Outcome::Rejected("control")
    );
    assert_eq!(r.counters.rejected("control"), 1);
    r.ingest.handle(&frame(0), 1);
    let f = r.recorder.try_pop().unwrap();
    assert_eq!(
        f.meta.ack,
        Some(Ack { epoch: 0, index: 0 }),
        "no new numbering"
    );
    let big = u64::MAX - 1;
    r.ingest.handle(&hello(serde_json::json!(big)), 1);
    r.ingest.handle(&frame(0), 1);
    let f = r.recorder.try_pop().unwrap();
    let ack = f.meta.ack.unwrap();
    assert_eq!(ack, Ack { epoch: 1, index: 0 });
    r.ingest.durable.frames_logged(ack);
    assert_eq!(
        r.ingest.durable.acked(),
        Some(crate::backbone::durable::Acked {
            hello_epoch: big,
            index: 0
        })
    );
}

/// Bytes that are not twinloop traffic at all (no magic, no topic) are counted apart from the
/// protocol's rejections; a broken bridge message still counts as a rejection.
#[test]
fn garbage_is_counted_apart_from_protocol_errors() {
    let mut r = rig(64);
    let junk = [Bytes::from_static(b"\x16\x03\x01 GET / HTTP/1.1")];
    let out = r
        .ingest
        .reject_protocol(ProtocolError::FrameCount(1), &junk);
    assert_eq!(out, Outcome::Rejected(GARBAGE_LABEL));
    let c = r.counters.snapshot();
    assert_eq!((c.garbage_messages, c.rejected_total()), (1, 0));
    // A bridge's message with a part missing is the bridge's bug: a rejection.
    let [topic, header, _] = frame(0);
    let out = r
        .ingest
        .reject_protocol(ProtocolError::FrameCount(2), &[topic, header]);
    assert_eq!(out, Outcome::Rejected("frame_count"));
    let c = r.counters.snapshot();
    assert_eq!((c.garbage_messages, c.rejected_total()), (1, 1));
}

/// A stream on a device clock whose clock never ticks is said live (an error, an anomaly in
/// the log, the `clock_domains_unticked` gauge behind the status flag) once, after
/// `UNTICKED_AFTER_SAMPLES` samples; its first tick lowers the gauge again.
#[test]
fn a_device_clock_without_ticks_is_flagged_live_and_cleared_by_a_tick() {
    let mut r = rig(4096);
    assert_eq!(
        r.ingest.clocks.config().domain_of(Stream::TwoPhoton),
        Some(ClockDomain::TwoPhoton),
        "the simulator's config puts two-photon frames on their device clock"
    );
    let n = clocks::UNTICKED_AFTER_SAMPLES;
    for seq in 0..n + 50 {
        r.ingest.handle(&frame(seq), 1);
        while r.stage.try_pop().is_some() {}
        while r.recorder.try_pop().is_some() {}
    }
    assert_eq!(r.counters.snapshot().clock_domains_unticked, 1);
    let flagged: Vec<_> = anomalies(&r.events)
        .into_iter()
        .filter(|a| matches!(a, Anomaly::ClockNoTicks { .. }))
        .collect();
    assert_eq!(
        flagged,
        [Anomaly::ClockNoTicks {
            domain: ClockDomain::TwoPhoton,
            samples: n
        }],
        "once, at the threshold"
    );
    let mut tick = Header::new(Stream::Sync, Dtype::U8, &[0], 0, 5_000_000_000);
    tick.aux = SyncCode::ClockTick as i64;
    tick.channel = ClockDomain::TwoPhoton as u8;
    let tick = Message {
        header: tick,
        payload: Bytes::new(),
    };
    r.ingest.handle(&tick.into_frames(), 1);
    assert_eq!(r.counters.snapshot().clock_domains_unticked, 0);
}

/// A frame waiting for a full recorder gives up when the session stops or the recorder is
/// gone: Ctrl-C and a dead recorder cannot hang ingest.
#[test]
fn waits_for_the_recorder_see_stop_and_abandonment() {
    let mut r = rig(64);
    let stop = Arc::new(AtomicBool::new(false));
    r.ingest.set_stop(Arc::clone(&stop));
    let mut seq = 0;
    // Fill the recorder's ring (1024) without draining it.
    while r.ingest.out.to_recorder.len() < 1024 {
        r.ingest.handle(&frame(seq), 1);
        seq += 1;
    }
    stop.store(true, Ordering::Release);
    assert_eq!(r.ingest.handle(&frame(seq), 1), Outcome::Stopped);
    stop.store(false, Ordering::Release);
    drop(r.recorder);
    assert_eq!(r.ingest.handle(&frame(seq + 1), 1), Outcome::Stopped);
}

#[test]
fn frames_reach_stage_and_recorder_with_their_pixels() {
    let mut r = rig(8);
    assert_eq!(r.ingest.handle(&frame(0), 1), Outcome::Frame { seq: 0 });
    let f = r.stage.try_pop().unwrap();
    assert_eq!(f.pixels()[5], 5);
    assert_eq!((f.meta.width, f.meta.height), (16, 8));
    assert_eq!(r.recorder.try_pop().unwrap().meta.seq, 0);
    assert_eq!(r.ingest.latest_frame_time(), Some(RigTime::ZERO));
}

#[test]
fn a_stalled_stage_skips_frames_but_the_recorder_gets_every_one() {
    let mut r = rig(4);
    for seq in 0..100 {
        r.ingest.handle(&frame(seq), 1);
    }
    let recorded: Vec<u64> =
        std::iter::from_fn(|| r.recorder.try_pop().map(|f| f.meta.seq)).collect();
    assert_eq!(
        recorded,
        (0..100).collect::<Vec<_>>(),
        "recorder sees every frame, in order"
    );
    let processed: Vec<u64> =
        std::iter::from_fn(|| r.stage.try_pop().map(|f| f.meta.seq)).collect();
    assert_eq!(
        processed,
        vec![0, 1, 2, 3],
        "the stalled stage holds only what its ring fits"
    );
    assert_eq!(r.counters.stage_skips.load(Ordering::Relaxed), 96);
    let skips = anomalies(&r.events);
    assert_eq!(skips.len(), 96);
    assert_eq!(
        skips[0],
        Anomaly::StageSkip {
            stream: Stream::TwoPhoton,
            seq: 4
        },
        "named by stream and seq"
    );
}

#[test]
fn gaps_are_counted_and_named_repeats_and_reversals_rejected() {
    let mut r = rig(64);
    r.ingest.handle(&frame(0), 1);
    r.ingest.handle(&frame(1), 1);
    assert_eq!(
        r.ingest.handle(&frame(5), 1),
        Outcome::Frame { seq: 5 },
        "a gap is accepted"
    );
    assert_eq!(r.ingest.handle(&frame(5), 1), Outcome::Rejected("sequence"));
    assert_eq!(r.ingest.handle(&frame(3), 1), Outcome::Rejected("sequence"));
    assert_eq!(
        r.ingest.handle(&frame(6), 1),
        Outcome::Frame { seq: 6 },
        "the stream carries on"
    );
    let s = r.counters.snapshot();
    assert_eq!((s.gaps, s.missing, s.frames_in), (1, 3, 4));
    assert_eq!(s.rejected["sequence"], 2);
    let a = anomalies(&r.events);
    assert!(a.contains(&Anomaly::Gap {
        stream: Stream::TwoPhoton,
        plane: 0,
        channel: 0,
        after: 1,
        seq: 5,
        missing: 3
    }));
}

#[test]
fn a_hello_restarts_sequence_numbering() {
    let mut r = rig(64);
    r.ingest.handle(&frame(0), 1);
    r.ingest.handle(&frame(1), 1);
    let hello = Message::json(
        Stream::Control,
        0,
        0,
        &serde_json::json!({"event": "hello"}),
    );
    r.ingest.handle(&hello.into_frames(), 1);
    assert_eq!(r.ingest.handle(&frame(0), 1), Outcome::Frame { seq: 0 });
}

#[test]
fn every_kind_of_bad_input_is_rejected_counted_and_survived() {
    let mut r = rig(64);
    let good = frame(0);
    let with_header = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut h = good[1].to_vec();
        f(&mut h);
        [good[0].clone(), Bytes::from(h), good[2].clone()]
    };
    let wrong_shape = {
        let h = Header::new(Stream::TwoPhoton, Dtype::U16, &[4, 4], 0, 0);
        Message {
            header: h,
            payload: Bytes::from(vec![0u8; 32]),
        }
        .into_frames()
    };
    let bad_plane = {
        let mut h = Header::new(Stream::TwoPhoton, Dtype::U16, &[8, 16], 0, 0);
        h.plane = 3;
        Message {
            header: h,
            payload: Bytes::from(vec![0u8; 256]),
        }
        .into_frames()
    };
    let output_stream = {
        let h = Header::new(Stream::Activity, Dtype::F32, &[1], 0, 0);
        Message {
            header: h,
            payload: Bytes::from(vec![0u8; 4]),
        }
        .into_frames()
    };
    let cases: Vec<(&str, Vec<Bytes>)> = vec![
        (
            "payload_size",
            vec![good[0].clone(), good[1].clone(), Bytes::from(vec![0u8; 7])],
        ),
        ("unsupported_version", with_header(&|h| h[4] = 2).to_vec()),
        (
            "bad_magic",
            vec![
                good[0].clone(),
                Bytes::from(vec![0x5a; 64]),
                good[2].clone(),
            ],
        ),
        (
            "header_length",
            vec![
                good[0].clone(),
                Bytes::from_static(b"garbage"),
                good[2].clone(),
            ],
        ),
        ("unknown_stream", with_header(&|h| h[6] = 99).to_vec()),
        ("frame_count", good[..2].to_vec()),
        ("shape", wrong_shape.to_vec()),
        ("shape", bad_plane.to_vec()),
        ("not_an_input", output_stream.to_vec()),
    ];
    for (label, msg) in &cases {
        assert_eq!(r.ingest.handle(msg, 1), Outcome::Rejected(label), "{label}");
    }
    // The daemon keeps going: a valid frame after all that is accepted.
    assert_eq!(r.ingest.handle(&frame(0), 1), Outcome::Frame { seq: 0 });
    let s = r.counters.snapshot();
    assert_eq!(s.rejected_total(), cases.len() as u64);
    assert_eq!(s.rejected["shape"], 2);
    // Each rejection reaches the log with its reason; readable headers name stream and seq.
    let rejected: Vec<_> = anomalies(&r.events)
        .into_iter()
        .filter_map(|a| match a {
            Anomaly::Rejected {
                label,
                reason,
                stream,
                ..
            } => Some((label, reason, stream)),
            _ => None,
        })
        .collect();
    // The second `shape` came within a second of the first: counted, held back.
    assert_eq!(rejected.len(), cases.len() - 1);
    let (_, reason, stream) = &rejected[6];
    assert!(
        reason.contains("[4, 4]") && reason.contains("[8, 16]"),
        "{reason}"
    );
    assert_eq!(*stream, Some(Stream::TwoPhoton));
}

/// A flood of garbage used to cost one warning and one log record per message (290 MB of
/// stderr and 160 MB of log in 10 s, #16): now each label reports at most once a second,
/// and the counter and the summaries still account for every message.
#[test]
fn a_flood_of_garbage_is_counted_exactly_and_reported_once_a_second() {
    let mut r = rig(64);
    let garbage = [Bytes::from_static(b"x"), Bytes::from_static(b"y")];
    let started = std::time::Instant::now();
    let n = 20_000u64;
    for _ in 0..n {
        assert_eq!(
            r.ingest.handle(&garbage, 1),
            Outcome::Rejected(GARBAGE_LABEL)
        );
    }
    std::thread::sleep(Duration::from_millis(1010));
    r.ingest.summarise_rejections();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(r.counters.snapshot().garbage_messages, n);
    let reasons: Vec<String> = anomalies(&r.events)
        .into_iter()
        .filter_map(|a| match a {
            Anomaly::Rejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    // One report per started second, plus the closing summary.
    assert!(
        reasons.len() as f64 <= seconds.ceil() + 1.0,
        "{} records in {seconds:.1} s",
        reasons.len()
    );
    // Every message is accounted for: reported, or held and summarised as a number.
    let number = |s: &str| s.split_whitespace().next()?.parse::<u64>().ok();
    let (mut reported, mut held) = (0u64, 0u64);
    for r in &reasons {
        if let Some(tail) = r.strip_prefix("not twinloop traffic") {
            reported += 1;
            // The count held back is in the last parenthesis (the first is the protocol error).
            held += tail
                .rsplit_once('(')
                .and_then(|(_, t)| number(t))
                .unwrap_or(0);
        } else {
            held += number(r).expect("a summary starts with its count");
        }
    }
    assert_eq!(reported + held, n, "{reasons:?}");
}

#[test]
fn events_and_end_are_passed_to_the_recorder() {
    let mut r = rig(8);
    let mut tick = Header::new(Stream::Sync, Dtype::U8, &[0], 0, 5);
    tick.aux = SyncCode::FrameClock as i64;
    let tick = Message {
        header: tick,
        payload: Bytes::new(),
    };
    assert_eq!(
        r.ingest.handle(&tick.into_frames(), 1),
        Outcome::Event(Stream::Sync)
    );
    let end = Message::json(Stream::Control, 0, 0, &serde_json::json!({"event": "end"}));
    assert_eq!(r.ingest.handle(&end.into_frames(), 1), Outcome::End);
    let inputs = r
        .events
        .try_iter()
        .filter(|e| matches!(e, RecorderItem::Input { .. }))
        .count();
    assert_eq!(inputs, 2);
}
