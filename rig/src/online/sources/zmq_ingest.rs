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
    loop {
        if stop.load(Ordering::Acquire) {
            return IngestEnd::Stopped;
        }
        match sock.poll(zmq::POLLIN, 50) {
            Ok(0) => {
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
        let parts = match sock.recv_multipart(zmq::DONTWAIT) {
            Ok(parts) => parts,
            Err(zmq::Error::EAGAIN) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "receive error");
                continue;
            }
        };
        last_input = Instant::now();
        let recv_ns = host_monotonic_ns();
        // `Bytes::from(Vec)` takes the buffer libzmq's binding filled; nothing is copied.
        let frames: Vec<Bytes> = parts.into_iter().map(Bytes::from).collect();
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
