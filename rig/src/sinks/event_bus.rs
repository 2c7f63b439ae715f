//! The event bus: everything the daemon publishes, on one PUB socket.
//!
//! # Bounded by construction
//! zmq.rs has no high-water mark, so the bus bounds memory itself: producers hand messages over
//! a bounded queue (`try_send`; when full the message is dropped from the bus and counted —
//! the session log still has it), per-frame activity comes through a ring of pooled buffers,
//! and zmq.rs's PUB drops for a subscriber whose own queue is full. Two-photon frames are never
//! published. Flow-control acks are state, not events: the newest ack is re-sent on every
//! heartbeat, so a lost ack cannot stall a sender.

use crate::clock::host_monotonic_ns;
use crate::frames::Activity;
use crate::protocol::{Dtype, Header, Message, Stream};
use crate::ring::RingRx;
use crate::telemetry::Counters;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use zeromq::{PubSocket, Socket, SocketSend};

/// A cheap handle for publishing from any thread.
#[derive(Clone)]
pub struct Bus {
    tx: mpsc::Sender<Message>,
    notify: Arc<Notify>,
    counters: Arc<Counters>,
}

impl Bus {
    /// Publish without blocking; a full bus drops the message and counts it.
    pub fn publish(&self, m: Message) {
        if let Err(e) = self.tx.try_send(m) {
            let m = match e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            Counters::inc(&self.counters.bus_drops);
            tracing::debug!(stream = %m.header.stream, seq = m.header.seq, "bus full: message dropped from the bus");
        }
    }

    /// Wake the publisher (after pushing activity into its ring).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// What the publisher task needs besides its socket.
pub struct Publisher {
    pub rx: mpsc::Receiver<Message>,
    pub notify: Arc<Notify>,
    pub activity: RingRx<Activity>,
    pub acked: Arc<AtomicU64>,
    pub latest_frame_t: Arc<AtomicI64>,
    pub counters: Arc<Counters>,
    pub heartbeat: Duration,
    /// Fixed facts every heartbeat repeats (protocol version, flow window, imaging shape).
    pub info: serde_json::Value,
}

pub fn bus(
    capacity: usize,
    counters: Arc<Counters>,
) -> (Bus, mpsc::Receiver<Message>, Arc<Notify>) {
    let (tx, rx) = mpsc::channel(capacity);
    let notify = Arc::new(Notify::new());
    (
        Bus {
            tx,
            notify: Arc::clone(&notify),
            counters,
        },
        rx,
        notify,
    )
}

pub async fn bind_pub(endpoint: &str) -> zeromq::ZmqResult<(PubSocket, String)> {
    crate::sources::zmq_ingest::remove_stale_ipc(endpoint);
    let mut sock = PubSocket::new();
    let bound = sock.bind(endpoint).await?;
    Ok((sock, bound.to_string()))
}

fn activity_message(a: &Activity) -> Message {
    let values = a.values();
    let mut payload = Vec::with_capacity(values.len() * 4);
    for v in values {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut header = Header::new(
        Stream::Activity,
        Dtype::F32,
        &[values.len() as u32],
        a.frame.seq,
        a.frame.t.as_nanos(),
    );
    header.plane = a.frame.plane;
    header.aux = a.frame.seq as i64;
    header.sent_ns = host_monotonic_ns();
    Message {
        header,
        payload: Bytes::from(payload),
    }
}

fn ack_message(seq: u64, t_ns: i64) -> Message {
    let mut header = Header::new(Stream::Ack, Dtype::U8, &[0], seq, t_ns);
    header.aux = Stream::TwoPhoton.code() as i64;
    Message {
        header,
        payload: Bytes::new(),
    }
}

impl Publisher {
    /// Publish until every producer is gone, then send a final `status` with `state: ended`.
    pub async fn run(mut self, mut sock: PubSocket) {
        let mut tick = tokio::time::interval(self.heartbeat);
        let mut last_ack = u64::MAX;
        let mut status_seq = 0u64;
        let mut open = true;
        while open || !self.activity.is_finished() {
            let mut heartbeat = false;
            tokio::select! {
                m = self.rx.recv(), if open => match m {
                    Some(m) => send(&mut sock, m).await,
                    None => open = false,
                },
                _ = self.notify.notified() => {}
                _ = tick.tick() => heartbeat = true,
            }
            while let Some(a) = self.activity.try_pop() {
                send(&mut sock, activity_message(&a)).await;
            }
            let acked = self.acked.load(Ordering::Acquire);
            let t_ns = self.latest_frame_t.load(Ordering::Acquire).max(0);
            if acked != u64::MAX && (acked != last_ack || heartbeat) {
                send(&mut sock, ack_message(acked, t_ns)).await;
                last_ack = acked;
            }
            if heartbeat {
                let status = self.status("running", t_ns);
                send(
                    &mut sock,
                    Message::json(Stream::Status, status_seq, t_ns, &status),
                )
                .await;
                status_seq += 1;
            }
        }
        let t_ns = self.latest_frame_t.load(Ordering::Acquire).max(0);
        let status = self.status("ended", t_ns);
        send(
            &mut sock,
            Message::json(Stream::Status, status_seq, t_ns, &status),
        )
        .await;
        // Let the writer tasks flush the last messages before the socket closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn status(&self, state: &str, t_ns: i64) -> serde_json::Value {
        let mut v = serde_json::json!({
            "state": state,
            "t_s": t_ns as f64 * 1e-9,
            "counters": self.counters.snapshot(),
        });
        if let (Some(v), Some(info)) = (v.as_object_mut(), self.info.as_object()) {
            v.extend(info.clone());
        }
        v
    }
}

async fn send(sock: &mut PubSocket, m: Message) {
    let (stream, seq) = (m.header.stream, m.header.seq);
    if let Err(e) = sock.send(m.into()).await {
        tracing::debug!(%stream, seq, error = %e, "publish failed");
    }
}
