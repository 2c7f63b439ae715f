//! The event bus: everything the daemon publishes, on one PUB socket (libzmq).
//!
//! # Bounded by construction
//! Producers hand messages over a bounded channel (`try_send`; when full the message is dropped
//! from the bus and counted — the session log still has it); per-frame activity comes through a
//! ring of pooled buffers; libzmq's PUB drops for a subscriber past its high-water mark
//! (`SNDHWM`). Two-photon frames are never published. Flow-control acks are state, not events:
//! the newest ack is re-sent on every heartbeat, so a lost ack cannot stall a sender.

use crate::backbone::bus::BusInbox;
use crate::backbone::durable::{Acked, Durable};
use crate::backbone::frames::Activity;
use crate::backbone::ring::RingRx;
use crate::backbone::telemetry::Counters;
use crate::vocab::clock::host_monotonic_ns;
use crate::vocab::protocol::{Dtype, Header, Message, Stream};
use bytes::Bytes;
use crossbeam_channel::TryRecvError;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Activity held for the log at most; beyond it the oldest is dropped from the bus.
const HELD_ACTIVITY: usize = 64;

/// Messages queued per subscriber before libzmq drops for it.
const SNDHWM: i32 = 10_000;

/// What the publisher thread needs besides its socket.
pub struct Publisher {
    pub inbox: BusInbox,
    /// Activity of every processed frame; its ring must wake `inbox.wake`.
    pub activity: RingRx<Activity>,
    /// What the log has made durable: acks and activity wait for it.
    pub durable: Arc<Durable>,
    pub latest_frame_t: Arc<AtomicI64>,
    pub counters: Arc<Counters>,
    pub heartbeat: Duration,
    /// Fixed facts every heartbeat repeats (protocol version, flow window, imaging shape).
    pub info: serde_json::Value,
    /// The live dashboard, when one is served: it sees everything published.
    pub dashboard: Option<crate::online::dashboard::bus::DashBridge>,
}

/// Bind the PUB socket; subscribers' messages over `max_part_bytes` disconnect them.
pub fn bind_pub(
    ctx: &zmq::Context,
    endpoint: &str,
    max_part_bytes: usize,
) -> Result<(zmq::Socket, String), zmq::Error> {
    crate::online::sources::zmq_ingest::remove_stale_ipc(endpoint);
    let sock = ctx.socket(zmq::PUB)?;
    sock.set_maxmsgsize(max_part_bytes as i64)?;
    sock.set_sndhwm(SNDHWM)?;
    // Pending messages may delay closing by at most this long.
    sock.set_linger(200)?;
    sock.bind(endpoint)?;
    let bound = crate::online::sources::zmq_ingest::last_endpoint(&sock)
        .unwrap_or_else(|| endpoint.to_string());
    Ok((sock, bound))
}

fn activity_message(a: &Activity) -> Message {
    let mut m = Message::cell_values(
        Stream::Activity,
        a.frame.plane,
        a.frame.seq,
        a.frame.t.as_nanos(),
        a.values(),
    );
    m.header.sent_ns = host_monotonic_ns();
    m
}

/// The frame's motion correction, published next to its activity (JSON, see
/// [`RegistrationRecord`](crate::vocab::records::RegistrationRecord)).
fn registration_message(a: &Activity, counters: &Counters) -> Option<Message> {
    let r = crate::vocab::records::RegistrationRecord {
        frame_seq: a.frame.seq,
        t_ns: a.frame.t.as_nanos(),
        plane: a.frame.plane,
        registration: a.registration?,
    };
    let value = counters.json("registration record", &r)?;
    let mut m = Message::json(Stream::Registration, a.frame.seq, r.t_ns, &value);
    m.header.plane = a.frame.plane;
    m.header.aux = a.frame.seq as i64;
    m.header.sent_ns = host_monotonic_ns();
    Some(m)
}

/// An ack: `seq` is the frame's index since the `hello`, the payload that hello's epoch.
fn ack_message(acked: Acked, t_ns: i64) -> Message {
    let mut header = Header::new(Stream::Ack, Dtype::U64, &[1], acked.index, t_ns);
    header.aux = Stream::TwoPhoton.code() as i64;
    Message {
        header,
        payload: Bytes::copy_from_slice(&acked.hello_epoch.to_le_bytes()),
    }
}

impl Publisher {
    /// Publish until every producer is gone, then send a final `status` with `state: ended`.
    pub fn run(mut self, sock: zmq::Socket) {
        let _span = tracing::info_span!("stage", name = "publisher").entered();
        self.inbox.wake.register_current();
        let mut next_heartbeat = Instant::now();
        let mut last_ack: Option<Acked> = None;
        // Activity waiting for its record to be written out before it is published.
        let mut held: VecDeque<Activity> = VecDeque::with_capacity(HELD_ACTIVITY);
        let mut status_seq = 0u64;
        let mut open = true;
        // Once every producer is gone, held activity waits this long for the log at most.
        let mut give_up: Option<Instant> = None;
        while open || !self.activity.is_finished() || !held.is_empty() {
            if !open && self.activity.is_finished() {
                let at = *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
                if Instant::now() >= at {
                    // The log stopped (its error is in the summary): not published, counted.
                    for _ in held.drain(..) {
                        Counters::inc(&self.counters.bus_drops);
                    }
                    break;
                }
            }
            let mut busy = false;
            loop {
                match self.inbox.rx.try_recv() {
                    Ok(m) => {
                        if let Some(d) = self.dashboard.as_mut() {
                            d.on_message(&m);
                        }
                        send(&sock, m);
                        busy = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            while let Some(a) = self.activity.try_pop() {
                if held.len() == HELD_ACTIVITY {
                    // The log is not keeping up (or has stopped): the oldest is dropped from
                    // the bus, as a full bus would (the log has it, or says why not).
                    if let Some(old) = held.pop_front() {
                        Counters::inc(&self.counters.bus_drops);
                        tracing::debug!(
                            seq = old.frame.seq,
                            "activity dropped from the bus: the log is behind"
                        );
                    }
                }
                held.push_back(a);
                busy = true;
            }
            // In order, and only what the log already holds: the front waits, so does the rest.
            while let Some(a) = held.front() {
                if !a
                    .frame
                    .ack
                    .is_none_or(|ack| self.durable.activity_is_logged(ack))
                {
                    break;
                }
                if let Some(a) = held.pop_front() {
                    self.publish_activity(&sock, &a);
                }
            }
            if let Some(d) = self.dashboard.as_mut() {
                d.poll();
            }
            let heartbeat = Instant::now() >= next_heartbeat;
            let acked = self.durable.acked();
            let t_ns = self.latest_frame_t.load(Ordering::Acquire).max(0);
            if let Some(acked) = acked
                && (Some(acked) != last_ack || heartbeat)
            {
                send(&sock, ack_message(acked, t_ns));
                last_ack = Some(acked);
            }
            if heartbeat {
                let status = self.status("running", t_ns);
                let m = Message::json(Stream::Status, status_seq, t_ns, &status);
                if let Some(d) = self.dashboard.as_mut() {
                    d.on_message(&m);
                }
                send(&sock, m);
                status_seq += 1;
                next_heartbeat += self.heartbeat;
            }
            if !busy {
                let until = next_heartbeat.saturating_duration_since(Instant::now());
                self.inbox.wake.wait(until.min(Duration::from_millis(20)));
            }
        }
        let t_ns = self.latest_frame_t.load(Ordering::Acquire).max(0);
        let status = self.status("ended", t_ns);
        send(
            &sock,
            Message::json(Stream::Status, status_seq, t_ns, &status),
        );
        // Closing lingers (`set_linger`) so the last messages leave before the socket goes.
        drop(sock);
    }

    fn publish_activity(&mut self, sock: &zmq::Socket, a: &Activity) {
        send(sock, activity_message(a));
        if let Some(m) = registration_message(a, &self.counters) {
            if let Some(d) = self.dashboard.as_mut() {
                d.on_message(&m);
            }
            send(sock, m);
        }
        if let Some(d) = self.dashboard.as_mut() {
            d.on_activity(a);
        }
    }

    fn status(&self, state: &str, t_ns: i64) -> serde_json::Value {
        let counters = self.counters.snapshot();
        let mut v = serde_json::json!({
            "state": state,
            "t_s": t_ns as f64 * 1e-9,
            // False once a write to the session log failed: nothing more is recorded.
            "recording": counters.log_write_errors == 0,
            // False while a stream on a device clock sends samples and its clock no ticks.
            "clocks_ticking": counters.clock_domains_unticked == 0,
            "counters": counters,
        });
        if let (Some(v), Some(info)) = (v.as_object_mut(), self.info.as_object()) {
            v.extend(info.clone());
        }
        v
    }
}

fn send(sock: &zmq::Socket, m: Message) {
    let (stream, seq) = (m.header.stream, m.header.seq);
    let [topic, header, payload] = m.into_frames();
    // PUB never blocks: past a subscriber's high-water mark libzmq drops for that subscriber.
    let parts: [&[u8]; 3] = [&topic, &header, &payload];
    if let Err(e) = sock.send_multipart(parts, zmq::DONTWAIT) {
        tracing::debug!(%stream, seq, error = %e, "publish failed");
    }
}
