//! A peer that sends a message part far larger than any legal frame is cut off by libzmq before
//! the daemon allocates for it; the daemon keeps running and takes the next peer's frames.

use std::sync::mpsc;
use std::time::Duration;
use twinloop_rig::config::{Config, Extraction, SourceKind};
use twinloop_rig::online::session::{self, Hooks};
use twinloop_rig::vocab::protocol::{Dtype, Header, Message, Stream};

fn frame(seq: u64, h: u32, w: u32) -> Vec<Vec<u8>> {
    let header = Header::new(
        Stream::TwoPhoton,
        Dtype::U16,
        &[h, w],
        seq,
        seq as i64 * 33_333_333,
    );
    let m = Message {
        header,
        payload: vec![7u8; (h * w * 2) as usize].into(),
    };
    m.into_frames().iter().map(|b| b.to_vec()).collect()
}

#[test]
fn an_oversized_message_disconnects_its_peer_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config::default_sim();
    cfg.source.kind = SourceKind::Bridge;
    cfg.imaging.extraction = Extraction::Grid;
    cfg.imaging.width = 64;
    cfg.imaging.height = 64;
    cfg.imaging.grid_block_px = 16;
    cfg.session.duration_s = 100.0;
    cfg.session.realtime = false;
    cfg.session.progress = false;
    cfg.session.out_dir = tmp.path().to_path_buf();
    cfg.source.idle_timeout_s = 3.0;
    // No final twin refit after it (rig/tests/final_refit.rs tests that).
    cfg.twin.final_refit_steps = 0;
    let (tx, rx) = mpsc::channel();
    let hooks = Hooks {
        on_ready: Some(Box::new(
            move |_dir: &std::path::Path, ingest: &str, _pub: &str| {
                let _ = tx.send(ingest.to_string());
            },
        )),
        ..Hooks::default()
    };
    let daemon = std::thread::spawn(move || session::run(&cfg, vec!["hostile".into()], hooks));
    // A hang guard, not a timing: the session builds its candidate pool (the pretrained
    // core) before it binds, which takes seconds on a loaded machine.
    let ingest = rx.recv_timeout(Duration::from_secs(60)).unwrap();

    let ctx = zmq::Context::new();
    // The hostile peer: one 64 MiB part, far over the ~1 MiB the daemon accepts.
    let bad = ctx.socket(zmq::PUSH).unwrap();
    bad.set_linger(1000).unwrap();
    bad.connect(&ingest).unwrap();
    bad.send_multipart(
        [b"two_photon".to_vec(), vec![0u8; 64], vec![0u8; 64 << 20]],
        0,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(bad);

    // A well-behaved peer afterwards is served as usual.
    let good = ctx.socket(zmq::PUSH).unwrap();
    good.set_linger(1000).unwrap();
    good.connect(&ingest).unwrap();
    for seq in 0..20 {
        good.send_multipart(frame(seq, 64, 64), 0).unwrap();
    }
    let end = Message::json(Stream::Control, 0, 0, &serde_json::json!({"event": "end"}));
    good.send_multipart(end.into_frames().iter().map(|b| b.to_vec()), 0)
        .unwrap();
    let summary = daemon.join().unwrap().unwrap();
    assert_eq!(
        summary.counters.frames_in, 20,
        "the daemon survived and took every good frame"
    );
    assert_eq!(summary.counters.frames_processed, 20);
    // Never delivered, so never even parsed: libzmq cut the peer off at the length prefix.
    assert_eq!(summary.counters.rejected_total(), 0);
    assert_eq!(
        summary.ingest_end,
        twinloop_rig::online::sources::zmq_ingest::IngestEnd::SourceEnded
    );
}
