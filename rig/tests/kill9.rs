//! Nothing acked or published is lost to kill -9: the daemon, fed by a bursty bridge at the
//! limit of its ack window (and, in other runs, by its own simulated rig), is killed at random
//! moments; every two-photon frame it had acked, and every activity it had published, must be
//! in the log that is left.
//!
//! `TWINLOOP_KILL_SOAK` sets the number of kills (50 by default: 35 bridge runs, 15 simulated).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twinloop_rig::backbone::session_log::LogReader;
use twinloop_rig::vocab::protocol::{Dtype, Header, Message, Stream};
use twinloop_rig::vocab::records::{self, RecordKind};

const SIZE: u32 = 64;
const WINDOW: u64 = 32;

fn config(dir: &Path, bridge: bool) -> PathBuf {
    let ep = |name: &str| format!("ipc://{}", dir.join(name).display());
    let text = format!(
        r#"
[session]
name = "kill"
duration_s = 600.0
realtime = {realtime}
out_dir = "{out}"
progress = false
record_frames = true

[source]
kind = "{kind}"
ingest = "{ingest}"
publish = "{publish}"
idle_timeout_s = 30.0
flow_window = {WINDOW}

[imaging]
width = {SIZE}
height = {SIZE}
extraction = "grid"
grid_block_px = 16

[eye]
width = 16
height = 12

[trials]
policy = "random"

[twin]
core = "energy"
"#,
        realtime = !bridge,
        out = dir.join("out").display(),
        kind = if bridge { "bridge" } else { "sim" },
        ingest = ep("in"),
        publish = ep("pub"),
    );
    let path = dir.join("session.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn daemon(cfg: &Path, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_twinloop"))
        .arg("run")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap()
}

fn frame(seq: u64) -> Vec<Vec<u8>> {
    let h = Header::new(
        Stream::TwoPhoton,
        Dtype::U16,
        &[SIZE, SIZE],
        seq,
        seq as i64 * 33_333_333,
    );
    let payload = vec![(seq % 251) as u8; (SIZE * SIZE * 2) as usize];
    Message {
        header: h,
        payload: payload.into(),
    }
    .into_frames()
    .iter()
    .map(|b| b.to_vec())
    .collect()
}

/// What the daemon promised before it died: the highest acked frame and every published
/// activity's frame sequence number.
#[derive(Default)]
struct Promised {
    acked: Option<u64>,
    published: BTreeSet<u64>,
    status_seen: bool,
}

impl Promised {
    fn take(&mut self, sub: &zmq::Socket) {
        while let Ok(parts) = sub.recv_multipart(zmq::DONTWAIT) {
            let Some(h) = parts.get(1).and_then(|b| Header::decode(b).ok()) else {
                continue;
            };
            match h.stream {
                Stream::Ack => self.acked = Some(self.acked.map_or(h.seq, |a| a.max(h.seq))),
                Stream::Activity => {
                    self.published.insert(h.seq);
                }
                Stream::Status => self.status_seen = true,
                _ => {}
            }
        }
    }
}

/// The two-photon frames and activity the killed session's log holds.
fn logged(out: &Path) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (mut frames, mut activity) = (BTreeSet::new(), BTreeSet::new());
    let Some(session) = std::fs::read_dir(out).ok().and_then(|mut d| d.next()) else {
        return (frames, activity);
    };
    let log = session.unwrap().path().join("records.log");
    let Ok(mut reader) = LogReader::open(&log) else {
        return (frames, activity);
    };
    let mut buf = Vec::new();
    while let Ok(Some(info)) = reader.next_into(&mut buf) {
        match RecordKind::from_code(info.kind) {
            Some(RecordKind::Input) => {
                let r = records::decode_input(&buf).unwrap();
                if r.header.stream == Stream::TwoPhoton {
                    frames.insert(r.header.seq);
                }
            }
            Some(RecordKind::Activity) => {
                activity.insert(records::decode_activity(&buf).unwrap().frame_seq);
            }
            _ => {}
        }
    }
    (frames, activity)
}

/// Connects a subscriber and waits for the daemon's first heartbeat (a hang guard: the daemon
/// builds its pipeline before it binds).
fn subscribe(ctx: &zmq::Context, dir: &Path, promised: &mut Promised) -> zmq::Socket {
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.connect(&format!("ipc://{}", dir.join("pub").display()))
        .unwrap();
    let start = Instant::now();
    while !promised.status_seen {
        assert!(start.elapsed() < Duration::from_secs(60), "no heartbeat");
        std::thread::sleep(Duration::from_millis(5));
        promised.take(&sub);
    }
    sub
}

fn bridge_run(rng: &mut ChaCha8Rng, dir: &Path) -> (Promised, Duration) {
    let cfg = config(dir, true);
    let mut child = daemon(&cfg, dir);
    let ctx = zmq::Context::new();
    let mut promised = Promised::default();
    let sub = subscribe(&ctx, dir, &mut promised);
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&format!("ipc://{}", dir.join("in").display()))
        .unwrap();
    let hello = Message::json(
        Stream::Control,
        0,
        0,
        &serde_json::json!({"event": "hello"}),
    );
    push.send_multipart(hello.into_frames().iter().map(|b| b.to_vec()), 0)
        .unwrap();
    let kill_after = Duration::from_millis(rng.random_range(200..2500));
    let start = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < kill_after {
        promised.take(&sub);
        // A burst up to the window's limit, then a pause of random length.
        let limit = promised.acked.map_or(WINDOW, |a| a + 1 + WINDOW);
        while seq < limit {
            push.send_multipart(frame(seq), 0).unwrap();
            seq += 1;
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What was already on its way to the subscriber was published before the kill.
    std::thread::sleep(Duration::from_millis(50));
    promised.take(&sub);
    (promised, kill_after)
}

fn sim_run(rng: &mut ChaCha8Rng, dir: &Path) -> (Promised, Duration) {
    let cfg = config(dir, false);
    let mut child = daemon(&cfg, dir);
    let ctx = zmq::Context::new();
    let mut promised = Promised::default();
    let sub = subscribe(&ctx, dir, &mut promised);
    let kill_after = Duration::from_millis(rng.random_range(200..3000));
    let start = Instant::now();
    while start.elapsed() < kill_after {
        promised.take(&sub);
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    promised.take(&sub);
    (promised, kill_after)
}

#[test]
fn kill_9_loses_no_acked_frame_and_no_published_activity() {
    let kills: usize = std::env::var("TWINLOOP_KILL_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut acked_total, mut published_total, mut bridge_runs) = (0u64, 0usize, 0);
    for k in 0..kills {
        let tmp = tempfile::tempdir().unwrap();
        let bridge = k % 10 < 7;
        let (promised, after) = if bridge {
            bridge_run(&mut rng, tmp.path())
        } else {
            sim_run(&mut rng, tmp.path())
        };
        let (frames, activity) = logged(&tmp.path().join("out"));
        let context = || {
            format!(
                "kill {k} ({} after {after:?}): acked {:?}, {} published, {} frames and {} activity logged; \
                 daemon log:\n{}",
                if bridge { "bridge" } else { "simulator" },
                promised.acked,
                promised.published.len(),
                frames.len(),
                activity.len(),
                std::fs::read_to_string(tmp.path().join("daemon.log")).unwrap_or_default()
            )
        };
        if let Some(acked) = promised.acked {
            let lost: Vec<u64> = (0..=acked).filter(|s| !frames.contains(s)).collect();
            assert!(lost.is_empty(), "acked frames lost {lost:?}: {}", context());
            acked_total += acked + 1;
            bridge_runs += usize::from(bridge);
        }
        let lost: Vec<&u64> = promised.published.difference(&activity).collect();
        assert!(
            lost.is_empty(),
            "published activity lost {lost:?}: {}",
            context()
        );
        published_total += promised.published.len();
    }
    eprintln!(
        "{kills} kills: {acked_total} acked frames over {bridge_runs} bridge runs and \
         {published_total} published activities, none lost"
    );
    // The soak must have tested something: acks and publications did happen.
    if kills >= 10 {
        assert!(acked_total > 0 && published_total > 0);
    }
}
