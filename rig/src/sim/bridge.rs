//! The simulated rig's bridge: drives a [`SimMouse`] and speaks the wire protocol to a daemon
//! exactly as a real microscope bridge would (PUSH for data, SUB for what the mouse sees and for
//! flow-control acks).
//!
//! Lock-step: before producing imaging frame k at `t_k` the bridge waits until it has received
//! every display flip before `t_k` (the daemon renders one imaging period ahead), so the mouse is
//! driven by exactly what was shown and a session is deterministic at any speed. In real-time
//! mode it also sleeps until `t_k` on the wall clock.
//!
//! With `[sim.clocks] enabled`, every message is stamped on its device's clock
//! ([`super::clocks`]) and the sync pulses go out as `clock_tick`s, each pulse's rig tick first;
//! the daemon places them back on the rig clock. The lock-step then allows for the mapping's
//! error: it waits for the flips up to `t_k` less the display latency (all the mouse can have
//! seen by `t_k`), not up to `t_k` itself.
//!
//! A mouse with several imaging planes ([`SimMouse::with_planes`]) is scanned as a piezo or
//! resonant volume scan does: acquisition frame k images plane k % N at its own time `t_k`
//! (`header.plane`; `aux` = k, the acquisition frame number), each plane numbered on its own
//! (`seq` = k / N, the volume), with a frame-clock tick per frame as for one plane.

use super::clocks::{SimClocks, Tick};
use super::{SimGeometry, SimMouse};
use crate::vocab::clock::{RigTime, host_monotonic_ns};
use crate::vocab::protocol::{ClockDomain, Dtype, Header, Message, Stream, SyncCode};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use thiserror::Error;
use zeromq::{PushSocket, Socket, SocketRecv, SocketSend, SubSocket};

/// Delay from a flip to the photodiode seeing it on the simulated monitor.
pub const SIM_DISPLAY_LATENCY_NS: i64 = 25_000_000;

#[derive(Debug, Clone)]
pub struct SimRigOptions {
    /// The daemon's PULL endpoint.
    pub ingest: String,
    /// The daemon's PUB endpoint.
    pub publish: String,
    pub duration_s: f64,
    pub realtime: bool,
    /// Two-photon frames in flight before waiting for an ack.
    pub flow_window: u32,
    pub geometry: SimGeometry,
    /// Where to write ground truth at the end.
    pub truth_dir: Option<PathBuf>,
    /// How long to wait for the daemon's flips before carrying on with the last view.
    pub view_timeout: Duration,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SimRigReport {
    pub frames_sent: u64,
    pub eye_frames_sent: u64,
    pub treadmill_sent: u64,
    pub views_shown: u64,
    pub view_timeouts: u64,
    pub flow_waits: u64,
    pub clock_ticks_sent: u64,
}

#[derive(Debug, Error)]
pub enum SimRigError {
    #[error("zeromq: {0}")]
    Zmq(#[from] zeromq::ZmqError),
    #[error("no status heartbeat from the daemon at {0} within 10 s: is it running?")]
    NoDaemon(String),
    #[error("the daemon at {0} refused every send for 10 s")]
    NotConnected(String),
    #[error("writing ground truth: {0}")]
    Truth(#[from] std::io::Error),
    /// The cells could not be driven (a twin that failed to step): the frames would carry no
    /// responses.
    #[error("{0}")]
    Drive(String),
}

struct Link {
    push: PushSocket,
    sub: SubSocket,
    ingest: String,
    pending_views: VecDeque<(i64, Bytes, bool)>,
    newest_view_t: i64,
    acked: Option<u64>,
    /// Next sequence number per (stream, plane, channel), as the protocol numbers messages.
    seq: HashMap<(u16, u8, u8), u64>,
}

impl Link {
    /// Handle one message from the daemon, waiting at most `timeout`. False on timeout.
    async fn pump(&mut self, timeout: Duration) -> bool {
        let Ok(received) = tokio::time::timeout(timeout, self.sub.recv()).await else {
            return false;
        };
        let Ok(msg) = received else { return true };
        let Ok(m) = Message::parse(&msg.into_vec()) else {
            return true;
        };
        match m.header.stream {
            Stream::View => {
                self.newest_view_t = m.header.t_ns;
                self.pending_views
                    .push_back((m.header.t_ns, m.payload, m.header.flags & 1 == 1));
            }
            Stream::Ack => self.acked = Some(m.header.seq),
            _ => {}
        }
        true
    }

    async fn send(&mut self, mut header: Header, payload: Bytes) -> Result<(), SimRigError> {
        let key = (header.stream.code(), header.plane, header.channel);
        let next = self.seq.entry(key).or_insert(0);
        header.seq = *next;
        *next += 1;
        header.sent_ns = host_monotonic_ns();
        let started = Instant::now();
        loop {
            let m = Message {
                header,
                payload: payload.clone(),
            };
            // zmq.rs refuses to send while no peer is connected: retry, bounded.
            match self.push.send(m.into()).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    tracing::debug!(error = %e, "send refused; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => return Err(SimRigError::NotConnected(self.ingest.clone())),
            }
        }
    }
}

/// Run the simulated rig against a daemon until `duration_s` of rig time has been sent.
pub async fn run(mut mouse: SimMouse, opts: SimRigOptions) -> Result<SimRigReport, SimRigError> {
    // The truth of a long session goes to disk as it is made (its memory would grow by
    // ~21 MiB a minute for 1,000 cells); written into place at the end.
    if let Some(dir) = &opts.truth_dir {
        mouse.spill_truth(dir)?;
    }
    let g = &opts.geometry;
    let mut sub = SubSocket::new();
    sub.connect(&opts.publish).await?;
    for topic in [Stream::View, Stream::Ack, Stream::Status] {
        sub.subscribe(topic.topic()).await?;
    }
    // The first heartbeat proves the subscription is live, so no view can be missed.
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(m) = sub.recv().await
                && m.get(0).is_some_and(|t| t.as_ref() == b"status")
            {
                return;
            }
        }
    })
    .await;
    if waited.is_err() {
        return Err(SimRigError::NoDaemon(opts.publish.clone()));
    }
    let mut push = PushSocket::new();
    push.connect(&opts.ingest).await?;
    let mut link = Link {
        push,
        sub,
        ingest: opts.ingest.clone(),
        pending_views: VecDeque::new(),
        newest_view_t: i64::MIN,
        acked: None,
        seq: HashMap::new(),
    };
    let hello = serde_json::json!({"event": "hello", "source": "twinloop sim-rig"});
    link.send(
        Message::json(Stream::Control, 0, 0, &hello).header,
        json_bytes(&hello),
    )
    .await?;

    let frame_ns = (1e9 / g.imaging_rate_hz).round() as i64;
    let eye_ns = (1e9 / g.eye_rate_hz).round() as i64;
    let tread_ns = (1e9 / g.treadmill_rate_hz).round() as i64;
    let n_frames = (opts.duration_s * g.imaging_rate_hz).round() as u64;
    let planes = mouse.planes().max(1) as u64;
    let (mut next_eye, mut next_tread) = (0i64, 0i64);
    let mut pixels = vec![0u16; g.imaging_width * g.imaging_height];
    let mut eye = vec![0u8; g.eye_width * g.eye_height];
    let mut report = SimRigReport::default();
    let start = Instant::now();
    let mut clocks = SimClocks::new(&mouse.config().clocks, mouse.config().seed);
    let mut ticks: Vec<Tick> = Vec::new();
    // Flips the mouse can have seen by t_k; with device clocks the daemon's frame times (and
    // so how far it renders) are the rig time within the clock fit's error.
    let lockstep_slack = if clocks.enabled() {
        SIM_DISPLAY_LATENCY_NS
    } else {
        0
    };

    for k in 0..n_frames {
        let t_k = k as i64 * frame_ns;
        // Lock-step: every flip before t_k must be in hand.
        if k > 0 {
            while link.newest_view_t < t_k - lockstep_slack {
                if !link.pump(opts.view_timeout).await {
                    report.view_timeouts += 1;
                    tracing::warn!(
                        frame = k,
                        "no flips from the daemon: the mouse keeps seeing the last view"
                    );
                    break;
                }
            }
        }
        // Credit-based flow control: at most `flow_window` frames unacknowledged.
        while k > 0 && k.saturating_sub(link.acked.map_or(0, |a| a + 1)) >= opts.flow_window as u64
        {
            report.flow_waits += 1;
            if !link.pump(opts.view_timeout).await {
                tracing::warn!(frame = k, "no ack from the daemon; sending anyway");
                break;
            }
        }
        // A flip reaches the eye (and the photodiode) one display latency after it happens.
        while let Some((t, _, _)) = link.pending_views.front() {
            if *t + SIM_DISPLAY_LATENCY_NS >= t_k {
                break;
            }
            let Some((t, view, onset)) = link.pending_views.pop_front() else {
                break;
            };
            if view.len() == g.view_width * g.view_height {
                mouse.show(&view, RigTime::from_nanos(t + SIM_DISPLAY_LATENCY_NS));
                report.views_shown += 1;
            }
            if onset {
                let t_pd = clocks.stamp(ClockDomain::Photodiode, t + SIM_DISPLAY_LATENCY_NS);
                let mut h = Header::new(Stream::Sync, Dtype::U8, &[0], 0, t_pd);
                h.aux = SyncCode::PhotodiodeRise as i64;
                link.send(h, Bytes::new()).await?;
            }
        }
        // Sync pulses up to t_k, each on the clock that saw it.
        clocks.ticks_until(t_k, &mut ticks);
        for tick in &ticks {
            let mut h = Header::new(Stream::Sync, Dtype::U8, &[0], 0, tick.t_ns);
            h.aux = SyncCode::ClockTick as i64;
            h.channel = tick.domain.code();
            link.send(h, Bytes::new()).await?;
            report.clock_ticks_sent += 1;
        }
        // Behaviour streams up to t_k, in time order.
        while next_eye <= t_k || next_tread <= t_k {
            if next_eye <= next_tread {
                mouse.eye_frame(RigTime::from_nanos(next_eye), &mut eye);
                let mut h = Header::new(
                    Stream::EyeCamera,
                    Dtype::U8,
                    &[g.eye_height as u32, g.eye_width as u32],
                    0,
                    clocks.stamp(ClockDomain::EyeCamera, next_eye),
                );
                h.aux = report.eye_frames_sent as i64;
                link.send(h, Bytes::copy_from_slice(&eye)).await?;
                report.eye_frames_sent += 1;
                next_eye += eye_ns;
            } else {
                let count = mouse.treadmill_count(RigTime::from_nanos(next_tread));
                let t = clocks.stamp(ClockDomain::Treadmill, next_tread);
                let h = Header::new(Stream::Treadmill, Dtype::I64, &[1], 0, t);
                link.send(h, Bytes::copy_from_slice(&count.to_le_bytes()))
                    .await?;
                report.treadmill_sent += 1;
                next_tread += tread_ns;
            }
        }
        if opts.realtime {
            let due = Duration::from_nanos(t_k as u64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        // Volume scan: frame k images plane k % N.
        let plane = (k % planes) as usize;
        mouse.imaging_plane_frame(plane, RigTime::from_nanos(t_k), &mut pixels);
        if let Some(why) = mouse.drive_failure() {
            return Err(SimRigError::Drive(why.to_string()));
        }
        let t_2p = clocks.stamp(ClockDomain::TwoPhoton, t_k);
        let mut h = Header::new(
            Stream::TwoPhoton,
            Dtype::U16,
            &[g.imaging_height as u32, g.imaging_width as u32],
            0,
            t_2p,
        );
        h.plane = plane as u8;
        h.aux = k as i64;
        let mut payload = Vec::with_capacity(pixels.len() * 2);
        for p in &pixels {
            payload.extend_from_slice(&p.to_le_bytes());
        }
        link.send(h, Bytes::from(payload)).await?;
        let mut tick = Header::new(Stream::Sync, Dtype::U8, &[0], 0, t_2p);
        tick.aux = SyncCode::FrameClock as i64;
        link.send(tick, Bytes::new()).await?;
        report.frames_sent += 1;
    }
    let end = serde_json::json!({"event": "end", "frames": report.frames_sent});
    link.send(
        Message::json(Stream::Control, 0, 0, &end).header,
        json_bytes(&end),
    )
    .await?;
    // Give the last messages time to leave before the socket closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(dir) = &opts.truth_dir {
        mouse.write_truth(dir)?;
    }
    Ok(report)
}

fn json_bytes(v: &serde_json::Value) -> Bytes {
    // A `Value` always encodes (its keys are strings): there is no failure to hide.
    Bytes::from(v.to_string().into_bytes())
}
