//! The live dashboard: a small web page that experimenters watch while a
//! mouse is under the microscope.
//!
//! # Layout
//! - this file: the public API: [`DashboardConfig`], [`Dashboard`] (owns the
//!   server thread), [`DashFeed`] (the non-blocking handle the daemon pushes
//!   [`DashEvent`]s into) and [`DashboardError`];
//! - [`state`]: the pure state ([`DashEvent`] in, JSON snapshot and PNG
//!   thumbnails out), with bounded buffers;
//! - `server`: the axum server (routes, token check, Server-Sent Events) and
//!   the task that folds events into the state and publishes snapshots;
//! - `page.html`, `page.js`, `page.css`: the page, inlined into one response
//!   (no external resources: the rig has no internet).
//!
//! # Threads
//! [`Dashboard::start`] binds the socket on the caller's thread (so a bad
//! address fails at once) and spawns one OS thread, `twinloop-dashboard`,
//! running a current-thread tokio runtime with the server and the state task.
//! Nothing else runs on it, so the daemon's own runtime and real-time threads
//! are untouched. [`DashFeed::send`] never blocks: small events go through a
//! bounded channel (dropped and counted when full); frames and views go into
//! latest-only slots (a newer one replaces an unread one). The state task
//! drains the channel as events arrive and, at most every
//! [`PUBLISH_INTERVAL`], takes the slots, renders the snapshot and the PNGs
//! and publishes them on `tokio::sync::watch` channels that every client reads
//! at its own pace: a slow or stalled client only ever misses snapshots.
//!
//! # Routes
//! `/` the page; `/events` the SSE stream (one JSON snapshot per `data:`
//! line, at most 5 per second per client); `/snapshot.json` the latest
//! snapshot; `/frame.png` the frame thumbnail with cell outlines; `/view.png`
//! the stimulus on screen. When a token is configured every route requires
//! `?token=...` or `Authorization: Bearer ...` (401 otherwise).

pub mod bus;
mod listener;
mod server;
pub mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use state::{DashEvent, DashState};

/// How often, at most, a snapshot is published (and so sent to each client).
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);
/// Events buffered between [`DashFeed::send`] and the state task (frames and
/// views are not counted: they have their own latest-only slots). The task
/// drains it continuously; this only absorbs bursts (~15 s of a typical rig's
/// ~250 events/s).
pub const FEED_CAPACITY: usize = 4096;

/// Where and what the dashboard serves.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardConfig {
    /// Address to bind; port 0 picks a free port (see [`Dashboard::local_addr`]).
    /// Anything but a loopback address requires `token`.
    pub bind: SocketAddr,
    /// When set, every request must carry it (`?token=` or `Authorization:
    /// Bearer`). Required for non-loopback binds.
    pub token: Option<String>,
    /// Cells whose traces are shown (at most 8).
    pub traces: usize,
    /// Length of the time traces, in seconds (e.g. 30).
    pub history_s: f64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client whose request headers are not in by then is dropped.
    pub header_timeout: std::time::Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token: None,
            traces: state::MAX_TRACES,
            history_s: 30.0,
            max_connections: 64,
            header_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Why the dashboard could not start (or render).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "the dashboard is bound to {bind}, which is not a loopback address, but no token is set: \
         set a dashboard token (clients then add ?token=...) or bind to 127.0.0.1"
    )]
    TokenRequired { bind: SocketAddr },
    #[error("the dashboard token is empty: set a non-empty token or none (loopback binds only)")]
    EmptyToken,
    #[error("the dashboard token must be printable ASCII without spaces: choose another token")]
    BadToken,
    #[error("the dashboard shows at most {max} cell traces, not {traces}: lower `traces`", max = state::MAX_TRACES)]
    TooManyTraces { traces: usize },
    #[error(
        "the dashboard's history must be between 1 and 3600 s, not {history_s}: fix `history_s`"
    )]
    BadHistory { history_s: f64 },
    #[error(
        "could not bind the dashboard to {bind}: {source} \
         (is another daemon using the port? choose another port, or 0 for any free one)"
    )]
    Bind {
        bind: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the dashboard's server thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("could not encode a dashboard thumbnail as PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// Counts kept by the feed, shared with the server.
#[derive(Debug, Default)]
pub(crate) struct FeedStats {
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) superseded: AtomicU64,
}

/// A latest-only slot for large events (frames, views).
#[derive(Debug, Default)]
pub(crate) struct Slot(Mutex<Option<DashEvent>>);

impl Slot {
    /// Takes the pending event, if any (the consumer side).
    pub(crate) fn take(&self) -> Option<DashEvent> {
        match self.0.lock() {
            Ok(mut guard) => guard.take(),
            // Only an Option swap happens under the lock: poisoning is harmless.
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// The daemon's handle for pushing events: cheap to clone, `Send + Sync`,
/// and [`DashFeed::send`] never blocks.
#[derive(Debug, Clone)]
pub struct DashFeed {
    tx: tokio::sync::mpsc::Sender<DashEvent>,
    frame: Arc<Slot>,
    view: Arc<Slot>,
    stats: Arc<FeedStats>,
}

impl DashFeed {
    /// Hands an event to the dashboard without blocking. Returns `false` when
    /// it was dropped (the buffer is full or the dashboard has stopped); drops
    /// are counted and shown on the page. A frame or view that the dashboard
    /// has not taken yet is replaced by a newer one.
    pub fn send(&self, event: DashEvent) -> bool {
        let slot = match &event {
            DashEvent::Frame { .. } => Some(&self.frame),
            DashEvent::View { .. } => Some(&self.view),
            _ => None,
        };
        let accepted = match slot {
            Some(slot) => {
                let old = match slot.0.try_lock() {
                    Ok(mut guard) => Ok(guard.replace(event)),
                    Err(TryLockError::Poisoned(poisoned)) => {
                        Ok(poisoned.into_inner().replace(event))
                    }
                    // The dashboard is taking the previous one right now.
                    Err(TryLockError::WouldBlock) => Err(()),
                };
                match old {
                    Ok(Some(_old)) => {
                        self.stats.superseded.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Ok(None) => true,
                    Err(()) => false,
                }
            }
            None => self.tx.try_send(event).is_ok(),
        };
        let counter = if accepted {
            &self.stats.sent
        } else {
            &self.stats.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        accepted
    }

    /// Events dropped so far (buffer full or dashboard stopped).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

/// The running dashboard. Dropping it shuts it down like [`Dashboard::shutdown`].
#[derive(Debug)]
pub struct Dashboard {
    addr: SocketAddr,
    feed: DashFeed,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Checks the configuration, binds the socket and spawns the server
    /// thread. Refuses a non-loopback bind without a token.
    pub fn start(cfg: DashboardConfig) -> Result<Dashboard, DashboardError> {
        if let Some(token) = &cfg.token {
            if token.is_empty() {
                return Err(DashboardError::EmptyToken);
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(DashboardError::BadToken);
            }
        } else if !cfg.bind.ip().is_loopback() {
            return Err(DashboardError::TokenRequired { bind: cfg.bind });
        }
        if cfg.traces > state::MAX_TRACES {
            return Err(DashboardError::TooManyTraces { traces: cfg.traces });
        }
        if !(cfg.history_s.is_finite() && (1.0..=3600.0).contains(&cfg.history_s)) {
            return Err(DashboardError::BadHistory {
                history_s: cfg.history_s,
            });
        }
        let bind_err = |source| DashboardError::Bind {
            bind: cfg.bind,
            source,
        };
        let listener = std::net::TcpListener::bind(cfg.bind).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("twinloop-dashboard")
            .build()
            .map_err(DashboardError::Thread)?;

        let (tx, rx) = tokio::sync::mpsc::channel(FEED_CAPACITY);
        let feed = DashFeed {
            tx,
            frame: Arc::default(),
            view: Arc::default(),
            stats: Arc::default(),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let inputs = server::Inputs {
            events: rx,
            frame: feed.frame.clone(),
            view: feed.view.clone(),
            stats: feed.stats.clone(),
        };
        let state = DashState::new(cfg.traces, cfg.history_s);
        let token = cfg.token.clone();
        let limits = server::Limits {
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
        };
        let thread = std::thread::Builder::new()
            .name("twinloop-dashboard".into())
            .spawn(move || {
                server::run(runtime, listener, limits, token, state, inputs, stop_rx);
            })
            .map_err(DashboardError::Thread)?;
        tracing::info!(%addr, token = cfg.token.is_some(), "dashboard serving");
        Ok(Dashboard {
            addr,
            feed,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for pushing events.
    pub fn feed(&self) -> DashFeed {
        self.feed.clone()
    }

    /// Stops serving: open streams end, connections get a short grace
    /// period (2 s) to finish, then the thread is joined.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Err only when the server already exited; joining reports that.
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the dashboard's server thread panicked");
            } else {
                tracing::info!(addr = %self.addr, "dashboard stopped");
            }
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
