//! The ZeroMQ front door: a PULL socket the daemon binds, feeding [`Ingest`].
//!
//! The daemon's own sockets use libzmq (the `zmq` crate) rather than zmq.rs: libzmq enforces a
//! maximum message size (`ZMQ_MAXMSGSIZE`, a peer announcing a larger frame is disconnected
//! instead of making the daemon reserve gigabytes) and high-water marks. Peers may use either
//! (the simulated rig and the benchmarks use zmq.rs; the example bridge uses pyzmq).
//!
//! Connection order (see `docs/protocol.md`): the daemon binds PULL (rig data) and PUB (its
//! outputs) before anything else starts; a bridge connects its SUB first, waits for the first
//! `status` heartbeat (so no published message is lost to a subscription still in flight), then
//! connects PUSH and sends `control {"event": "hello"}` followed by its data.

use super::{Ingest, Outcome};
use crate::vocab::clock::host_monotonic_ns;
use crate::vocab::protocol::ProtocolError;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why ingest stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestEnd {
    /// The source sent `control {"event": "end"}`.
    SourceEnded,
    /// Nothing arrived for `source.idle_timeout_s`.
    Idle,
    /// The session was told to stop (SIGINT, SIGTERM or SIGHUP), or its recorder is gone.
    Stopped,
    /// Frames covering `session.duration_s` of rig time arrived.
    Duration,
}

/// Parts of a protocol message: `[topic][header][payload]`.
const MESSAGE_PARTS: usize = 3;

/// Receives one message part by part into `frames`, keeping at most [`MESSAGE_PARTS`] and
/// discarding the rest unkept (a 400-part message used to cost 400 copies in one
/// `recv_multipart` before it was rejected); returns how many parts the message had.
///
/// libzmq delivers a multipart message whole, so its own queue holds every part until they
/// are read (each at most `ZMQ_MAXMSGSIZE`); what this saves is the daemon's copy of them.
pub(crate) fn recv_capped(
    sock: &zmq::Socket,
    frames: &mut Vec<Bytes>,
) -> Result<usize, zmq::Error> {
    frames.clear();
    // `Bytes::from(Vec)` takes the buffer libzmq's binding filled; nothing is copied.
    frames.push(Bytes::from(sock.recv_bytes(zmq::DONTWAIT)?));
    let mut total = 1;
    while sock.get_rcvmore()? {
        total += 1;
        if frames.len() < MESSAGE_PARTS {
            frames.push(Bytes::from(sock.recv_bytes(0)?));
        } else {
            // Read into nothing: the part is dropped by libzmq, never copied out.
            sock.recv_into(&mut [], 0)?;
        }
    }
    Ok(total)
}

/// Messages a PULL socket queues before TCP back-pressure reaches the sender.
const RCVHWM: i32 = 1000;

/// Bind a PULL socket that refuses message parts over `max_part_bytes`.
pub fn bind_pull(
    ctx: &zmq::Context,
    endpoint: &str,
    max_part_bytes: usize,
) -> Result<(zmq::Socket, String), zmq::Error> {
    remove_stale_ipc(endpoint);
    let sock = ctx.socket(zmq::PULL)?;
    sock.set_maxmsgsize(max_part_bytes as i64)?;
    sock.set_rcvhwm(RCVHWM)?;
    sock.set_linger(0)?;
    sock.bind(endpoint)?;
    let bound = last_endpoint(&sock).unwrap_or_else(|| endpoint.to_string());
    Ok((sock, bound))
}

/// The endpoint a socket actually bound (a `:0` port resolved).
pub(crate) fn last_endpoint(sock: &zmq::Socket) -> Option<String> {
    sock.get_last_endpoint().ok()?.ok()
}

/// Remove a socket file left by a dead daemon, but never a regular file, and never the socket
/// of a daemon that is still listening on it.
pub(crate) fn remove_stale_ipc(endpoint: &str) {
    use std::os::unix::fs::FileTypeExt;
    let Some(path) = endpoint.strip_prefix("ipc://") else {
        return;
    };
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        tracing::info!(path, "removing a stale ipc socket file");
        let _ = std::fs::remove_file(path);
    }
}

/// Receive until the source ends, goes idle, `stop` turns true, or `duration_ns` of rig time
/// has arrived.
pub fn run(
    sock: &zmq::Socket,
    ingest: &mut Ingest,
    stop: &AtomicBool,
    idle_timeout: Duration,
    duration_ns: i64,
) -> IngestEnd {
    let mut first_t: Option<i64> = None;
    let mut last_input = Instant::now();
    let mut frames: Vec<Bytes> = Vec::with_capacity(MESSAGE_PARTS);
    loop {
        if stop.load(Ordering::Acquire) {
            return IngestEnd::Stopped;
        }
        match sock.poll(zmq::POLLIN, 50) {
            Ok(0) => {
                // A quiet moment: say how many rejections were held back, if any.
                ingest.summarise_rejections();
                if last_input.elapsed() >= idle_timeout {
                    tracing::warn!(
                        idle_s = idle_timeout.as_secs_f64(),
                        "no input: ending ingest"
                    );
                    return IngestEnd::Idle;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                continue;
            }
        }
        let total = match recv_capped(sock, &mut frames) {
            Ok(total) => total,
            Err(zmq::Error::EAGAIN) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "receive error");
                continue;
            }
        };
        last_input = Instant::now();
        let recv_ns = host_monotonic_ns();
        if total != MESSAGE_PARTS {
            // Only the first parts were kept; the error carries the true count.
            ingest.reject_protocol(ProtocolError::FrameCount(total), &frames);
            continue;
        }
        match ingest.handle(&frames, recv_ns) {
            Outcome::End => return IngestEnd::SourceEnded,
            Outcome::Stopped => return IngestEnd::Stopped,
            _ => {}
        }
        if let Some(t) = ingest.latest_frame_time() {
            let t0 = *first_t.get_or_insert(t.as_nanos());
            if t.as_nanos() - t0 >= duration_ns {
                return IngestEnd::Duration;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of many parts keeps only the protocol's three and reports the true count; the
    /// next message is read whole, so the stream stays in step.
    #[test]
    fn extra_parts_are_counted_and_discarded_unkept() {
        let ctx = zmq::Context::new();
        let endpoint = "inproc://recv-capped";
        let (pull, _) = bind_pull(&ctx, endpoint, 1 << 20).unwrap();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.connect(endpoint).unwrap();
        let part = vec![7u8; 1024];
        let parts: Vec<&[u8]> = (0..400).map(|_| part.as_slice()).collect();
        push.send_multipart(&parts, 0).unwrap();
        push.send_multipart([b"a".as_slice(), b"b", b"c"], 0)
            .unwrap();
        push.send(b"lonely".as_slice(), 0).unwrap();
        let mut frames = Vec::new();
        let recv = |frames: &mut Vec<Bytes>| loop {
            match recv_capped(&pull, frames) {
                Err(zmq::Error::EAGAIN) => std::thread::yield_now(),
                other => break other.unwrap(),
            }
        };
        assert_eq!(recv(&mut frames), 400);
        assert_eq!(frames.len(), MESSAGE_PARTS);
        assert_eq!(recv(&mut frames), 3);
        assert_eq!(frames, [b"a".as_slice(), b"b", b"c"]);
        assert_eq!(recv(&mut frames), 1);
        assert_eq!(frames, [b"lonely".as_slice()]);
    }
}
