//! The dashboard's server side: the state task (folds [`DashEvent`]s into
//! [`DashState`] and publishes snapshots and PNGs on watch channels at most
//! every [`PUBLISH_INTERVAL`]), the axum routes, the token check and the
//! Server-Sent Events stream. Runs on the dashboard's own thread (see
//! [`super`] for the thread model).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, watch};

use super::listener::CappedListener;
use super::state::{DashEvent, DashState};
use super::{FeedStats, PUBLISH_INTERVAL, Slot};

/// Connections get this long to finish after shutdown is asked for.
pub(super) const GRACE: Duration = Duration::from_secs(2);
/// Per-client minimum gap between two SSE snapshots (at most 5 per second).
const CLIENT_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Concurrent `/events` clients served; more get 503.
const MAX_STREAM_CLIENTS: usize = 16;
/// Events applied per wake-up before the task yields (keeps the server responsive).
const BATCH: usize = 1024;
/// A snapshot is published at least this often, even when nothing changed,
/// so that the page can tell a quiet rig from a dead connection.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Feed-drop warnings are logged at most this often.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The page: HTML with the CSS and JS inlined, so it is one request (which
/// also keeps `?token=` handling in one place).
fn page() -> String {
    include_str!("page.html")
        .replace("/*PAGE_CSS*/", include_str!("page.css"))
        .replace("//PAGE_JS", include_str!("page.js"))
}

/// What the state task reads from the feed.
pub(super) struct Inputs {
    pub(super) events: mpsc::Receiver<DashEvent>,
    pub(super) frame: Arc<Slot>,
    pub(super) view: Arc<Slot>,
    pub(super) stats: Arc<FeedStats>,
}

/// What the handlers read.
struct Shared {
    token: Option<String>,
    page: String,
    snapshot: watch::Receiver<Arc<String>>,
    frame_png: watch::Receiver<Option<Bytes>>,
    view_png: watch::Receiver<Option<Bytes>>,
    inception_png: watch::Receiver<Arc<InceptionPngs>>,
    stream_clients: AtomicUsize,
}

/// The Inception tile's images by `(round, stimulus)`.
type InceptionPngs = std::collections::BTreeMap<(u32, usize), Bytes>;

/// How many clients are served at once, and how long one may take over its headers.
pub(super) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Runs the server and the state task until `stop` turns true (or its sender
/// is dropped). Blocks the calling thread; errors are logged.
pub(super) fn run(
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    limits: Limits,
    token: Option<String>,
    state: DashState,
    inputs: Inputs,
    mut stop: watch::Receiver<bool>,
) {
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => CappedListener::new(l, limits.max_connections, limits.header_timeout),
            Err(e) => {
                tracing::error!(error = %e, "dashboard: could not use the bound socket; not serving");
                return;
            }
        };
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(String::from("{}")));
        let (frame_tx, frame_rx) = watch::channel(None);
        let (view_tx, view_rx) = watch::channel(None);
        let (inception_tx, inception_rx) = watch::channel(Arc::new(InceptionPngs::new()));
        let shared = Arc::new(Shared {
            token,
            page: page(),
            snapshot: snapshot_rx,
            frame_png: frame_rx,
            view_png: view_rx,
            inception_png: inception_rx,
            stream_clients: AtomicUsize::new(0),
        });
        let mut publisher = Publisher {
            snapshot: snapshot_tx,
            frame_png: frame_tx,
            view_png: view_tx,
            inception_png: inception_tx,
            shared: shared.clone(),
            seq: 0,
            frame_version: None,
            view_version: None,
            inception_version: 0,
        };
        // Clients never see an empty snapshot.
        publisher.publish(&state, &inputs.stats, Instant::now());
        let state_task = tokio::spawn(state_task(state, inputs, publisher, stop.clone()));

        let app = router(shared);
        let mut stop_serving = stop.clone();
        let server = tokio::spawn(async move {
            let signal = async move {
                // Err: the Dashboard was dropped; stop as well.
                let _ = stop_serving.wait_for(|&s| s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(error = %e, "dashboard server failed");
            }
        });

        let _ = stop.wait_for(|&s| s).await;
        // The state task ends, dropping the snapshot sender, which ends every
        // SSE stream; connections then have GRACE to finish.
        if let Err(e) = state_task.await {
            tracing::error!(error = %e, "dashboard state task failed");
        }
        if tokio::time::timeout(GRACE, server).await.is_err() {
            tracing::warn!("dashboard: some connections did not close in time; dropping them");
        }
    });
    // Drops whatever is left (stalled connections) without waiting.
    runtime.shutdown_background();
}

/// The sending halves of what the handlers read.
struct Publisher {
    snapshot: watch::Sender<Arc<String>>,
    frame_png: watch::Sender<Option<Bytes>>,
    view_png: watch::Sender<Option<Bytes>>,
    inception_png: watch::Sender<Arc<InceptionPngs>>,
    shared: Arc<Shared>,
    seq: u64,
    frame_version: Option<(u64, u64, u64)>,
    view_version: Option<u64>,
    inception_version: u64,
}

impl Publisher {
    /// Renders and publishes the snapshot, and the PNGs when they changed.
    fn publish(&mut self, state: &DashState, stats: &FeedStats, started: Instant) {
        self.seq += 1;
        if self.frame_version != Some(state.frame_version()) {
            self.frame_version = Some(state.frame_version());
            publish_png("frame", state.frame_png(), &self.frame_png);
        }
        if self.view_version != Some(state.view_version()) {
            self.view_version = Some(state.view_version());
            publish_png("view", state.view_png(), &self.view_png);
        }
        if self.inception_version != state.inception_version() {
            self.inception_version = state.inception_version();
            match state.inception_pngs() {
                Ok(pngs) => {
                    let pngs = pngs.into_iter().map(|(k, p)| (k, Bytes::from(p))).collect();
                    self.inception_png.send_replace(Arc::new(pngs));
                }
                Err(e) => tracing::warn!(error = %e, "dashboard: inception images not updated"),
            }
        }
        let mut snapshot = state.snapshot();
        if let Some(obj) = snapshot.as_object_mut() {
            obj.insert("seq".into(), self.seq.into());
            obj.insert(
                "dashboard".into(),
                serde_json::json!({
                    "uptime_s": started.elapsed().as_secs(),
                    "sent": stats.sent.load(Ordering::Relaxed),
                    "dropped": stats.dropped.load(Ordering::Relaxed),
                    "superseded": stats.superseded.load(Ordering::Relaxed),
                    "clients": self.shared.stream_clients.load(Ordering::Relaxed),
                }),
            );
        }
        match serde_json::to_string(&snapshot) {
            Ok(text) => {
                self.snapshot.send_replace(Arc::new(text));
            }
            Err(e) => tracing::error!(error = %e, "dashboard: could not serialise the snapshot"),
        }
    }
}

async fn state_task(
    mut state: DashState,
    mut inputs: Inputs,
    mut publisher: Publisher,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut last_publish = Instant::now();
    let mut open = true;
    let mut dropped_warned = 0u64;
    let mut last_warn: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|&s| s) => break,
            event = inputs.events.recv(), if open => match event {
                Some(event) => {
                    state.apply(event);
                    for _ in 0..BATCH {
                        match inputs.events.try_recv() {
                            Ok(event) => state.apply(event),
                            Err(_) => break,
                        }
                    }
                    dirty = true;
                }
                None => open = false,
            },
            _ = tick.tick() => {
                for slot in [&inputs.frame, &inputs.view] {
                    if let Some(event) = slot.take() {
                        state.apply(event);
                        dirty = true;
                    }
                }
                let dropped = inputs.stats.dropped.load(Ordering::Relaxed);
                if dropped > dropped_warned && last_warn.is_none_or(|t| t.elapsed() >= DROP_WARN_INTERVAL) {
                    tracing::warn!(dropped, "dashboard feed full: events dropped (the page shows the count)");
                    dropped_warned = dropped;
                    last_warn = Some(Instant::now());
                }
                if !dirty && last_publish.elapsed() < HEARTBEAT {
                    continue;
                }
                dirty = false;
                last_publish = Instant::now();
                publisher.publish(&state, &inputs.stats, started);
            }
        }
    }
}

fn publish_png(
    what: &str,
    png: Result<Option<Vec<u8>>, super::DashboardError>,
    tx: &watch::Sender<Option<Bytes>>,
) {
    match png {
        Ok(png) => {
            tx.send_replace(png.map(Bytes::from));
        }
        Err(e) => tracing::warn!(error = %e, what, "dashboard: thumbnail not updated"),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page_handler))
        .route("/index.html", get(page_handler))
        .route("/events", get(events_handler))
        .route("/snapshot.json", get(snapshot_handler))
        .route("/frame.png", get(frame_handler))
        .route("/view.png", get(view_handler))
        .route("/inception.png", get(inception_handler))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .with_state(shared)
}

/// Refuses requests without the configured token (when one is configured).
async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &shared.token {
        let from_query = request.uri().query().and_then(query_token);
        let from_header = bearer(request.headers());
        let ok = [from_query, from_header]
            .into_iter()
            .flatten()
            .any(|given| constant_time_eq(given.as_bytes(), token.as_bytes()));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "401: this dashboard needs its token: add ?token=... to the address \
                 or send Authorization: Bearer ...\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The `token` query parameter, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| percent_decode(v))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn no_store<R: IntoResponse>(r: R) -> Response {
    let mut response = r.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page_handler(State(shared): State<Arc<Shared>>) -> Response {
    no_store(Html(shared.page.clone()))
}

async fn snapshot_handler(State(shared): State<Arc<Shared>>) -> Response {
    let text = shared.snapshot.borrow().clone();
    no_store((
        [(header::CONTENT_TYPE, "application/json")],
        text.as_str().to_owned(),
    ))
}

fn png_response(png: Option<Bytes>, what: &str) -> Response {
    match png {
        Some(bytes) => no_store(([(header::CONTENT_TYPE, "image/png")], bytes)),
        None => no_store((StatusCode::NOT_FOUND, format!("no {what} yet\n"))),
    }
}

async fn frame_handler(State(shared): State<Arc<Shared>>) -> Response {
    png_response(shared.frame_png.borrow().clone(), "frame")
}

async fn view_handler(State(shared): State<Arc<Shared>>) -> Response {
    png_response(shared.view_png.borrow().clone(), "view")
}

/// `/inception.png?round=R&stimulus=I`: one of the Inception tile's images.
async fn inception_handler(State(shared): State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    let param = |name: &str| {
        uri.query()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let (Some(round), Some(stimulus)) = (param("round"), param("stimulus")) else {
        return no_store((
            StatusCode::BAD_REQUEST,
            "400: /inception.png needs ?round=R&stimulus=I (numbers, as the snapshot's \
             inception rounds give them)\n",
        ));
    };
    let png = u32::try_from(round)
        .ok()
        .and_then(|r| shared.inception_png.borrow().get(&(r, stimulus)).cloned());
    png_response(png, "such inception image")
}

/// Decrements the stream-client count when a stream ends.
struct ClientGuard(Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stream_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One SSE stream: the current snapshot at once, then the latest one after
/// each change, at least [`CLIENT_MIN_INTERVAL`] apart. Snapshots published
/// while the client is slow are skipped, never queued.
async fn events_handler(State(shared): State<Arc<Shared>>) -> Response {
    let previous = shared.stream_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(shared.clone());
    if previous >= MAX_STREAM_CLIENTS {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("503: at most {MAX_STREAM_CLIENTS} live dashboards at once; close one\n"),
        )
            .into_response();
    }
    let rx = shared.snapshot.clone();
    let stream = futures::stream::unfold(
        (rx, guard, None::<tokio::time::Instant>),
        |(mut rx, guard, last)| async move {
            if let Some(last) = last {
                // Err: the dashboard is shutting down; end the stream.
                rx.changed().await.ok()?;
                tokio::time::sleep_until(last + CLIENT_MIN_INTERVAL).await;
            }
            let text = rx.borrow_and_update().clone();
            let event = Event::default().data(text.as_str());
            Some((
                Ok::<_, Infallible>(event),
                (rx, guard, Some(tokio::time::Instant::now())),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_query_and_header() {
        assert_eq!(query_token("a=1&token=ab%2Bc%3D&b"), Some("ab+c=".into()));
        assert_eq!(query_token("a=1"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(bearer(&headers), Some("s3cret".into()));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn page_inlines_its_script_and_style() {
        let page = page();
        assert!(!page.contains("/*PAGE_CSS*/") && !page.contains("//PAGE_JS"));
        assert!(page.contains("EventSource"));
    }
}
