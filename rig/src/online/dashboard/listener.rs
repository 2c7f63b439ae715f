//! The dashboard's front door, bounded: at most `max_connections` served at once, and a client
//! that has not finished its request headers within `header_timeout` is dropped.
//!
//! Holding 1,100 idle connections once took every file descriptor the daemon had (its session
//! then failed to bind or lost its calibration save). Here a connection beyond the cap is not
//! accepted: it waits in the kernel's listen backlog, costing the daemon no descriptor, until a
//! served one closes. A silent or slow client (slowloris) gives its slot back after the timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A listener that holds a permit per open connection.
pub(super) struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    header_timeout: Duration,
}

impl CappedListener {
    pub(super) fn new(
        inner: TcpListener,
        max_connections: usize,
        header_timeout: Duration,
    ) -> CappedListener {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            header_timeout,
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = Bounded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Bounded, SocketAddr) {
        // Wait for a free slot before accepting: the next client stays in the backlog.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the dashboard never closes its semaphore");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Bounded::new(stream, permit, self.header_timeout), addr);
                }
                Err(e) => {
                    // Out of descriptors (another part of the process) or a connection reset
                    // before it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "dashboard: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One served connection: its permit goes back when it is dropped; reads fail with
/// `TimedOut` if the first request's headers (up to the blank line) are not in by the deadline.
pub(super) struct Bounded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the headers end; `None` after.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes of `\r\n\r\n` matched so far.
    matched: usize,
}

impl Bounded {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, timeout: Duration) -> Bounded {
        Bounded {
            stream,
            _permit: permit,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            matched: 0,
        }
    }

    /// Follows the bytes read for the end of the headers.
    fn scan(&mut self, bytes: &[u8]) {
        const END: &[u8] = b"\r\n\r\n";
        for &b in bytes {
            self.matched = match (b == END[self.matched], b == END[0]) {
                (true, _) => self.matched + 1,
                (false, true) => 1,
                (false, false) => 0,
            };
            if self.matched == END.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if self.deadline.is_some() {
                    let new = buf.filled()[before..].to_vec();
                    self.scan(&new);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request headers not received in time",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end of the headers is found wherever the reads split it.
    #[tokio::test]
    async fn the_end_of_the_headers_is_found_across_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(server).unwrap();
        let permit = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        let mut b = Bounded::new(stream, permit, Duration::from_secs(60));
        for chunk in [&b"GET / HTTP/1.1\r\nHost: x\r"[..], b"\n\r", b"\n"] {
            assert!(b.deadline.is_some());
            b.scan(chunk);
        }
        assert!(b.deadline.is_none(), "\\r\\n\\r\\n split over reads");
    }
}
