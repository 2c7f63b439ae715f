//! The ZeroMQ front door: a PULL socket the daemon binds, feeding [`Ingest`].
//!
//! Connection order (see `docs/protocol.md`): the daemon binds PULL (rig data) and PUB (its
//! outputs) before anything else starts; a bridge connects its SUB first, waits for the first
//! `status` heartbeat (so no published message is lost to a subscription still in flight), then
//! connects PUSH and sends `control {"event": "hello"}` followed by its data.

use super::{Ingest, Outcome};
use crate::clock::host_monotonic_ns;
use std::time::Duration;
use tokio::sync::watch;
use zeromq::{PullSocket, Socket, SocketRecv};

/// Why ingest stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestEnd {
    /// The source sent `control {"event": "end"}`.
    SourceEnded,
    /// Nothing arrived for `source.idle_timeout_s`.
    Idle,
    /// The session asked to stop (Ctrl-C).
    Stopped,
    /// Frames covering `session.duration_s` of rig time arrived.
    Duration,
}

/// Bind a PULL socket, removing a stale ipc socket file first (zmq.rs refuses to bind over one).
pub async fn bind_pull(endpoint: &str) -> zeromq::ZmqResult<(PullSocket, String)> {
    remove_stale_ipc(endpoint);
    let mut sock = PullSocket::new();
    let bound = sock.bind(endpoint).await?;
    Ok((sock, bound.to_string()))
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

/// Receive until the source ends, goes idle, or `stop` turns true.
pub async fn run(
    mut sock: PullSocket,
    ingest: &mut Ingest,
    mut stop: watch::Receiver<bool>,
    idle_timeout: Duration,
    duration_ns: i64,
) -> IngestEnd {
    let mut first_t: Option<i64> = None;
    loop {
        let received = tokio::select! {
            r = sock.recv() => r,
            _ = stop.wait_for(|s| *s) => return IngestEnd::Stopped,
            _ = tokio::time::sleep(idle_timeout) => {
                tracing::warn!(idle_s = idle_timeout.as_secs_f64(), "no input: ending ingest");
                return IngestEnd::Idle;
            }
        };
        match received {
            Ok(msg) => {
                let recv_ns = host_monotonic_ns();
                let frames = msg.into_vec();
                if ingest.handle(&frames, recv_ns) == Outcome::End {
                    return IngestEnd::SourceEnded;
                }
                if let Some(t) = ingest.latest_frame_time() {
                    let t0 = *first_t.get_or_insert(t.as_nanos());
                    // The frame at t covers [t, t + period): stop once the session is covered.
                    if t.as_nanos() - t0 >= duration_ns {
                        return IngestEnd::Duration;
                    }
                }
            }
            // A peer dying mid-message yields one error; the socket keeps working.
            Err(e) => {
                tracing::warn!(error = %e, "receive error (a peer may have died mid-message)")
            }
        }
    }
}
