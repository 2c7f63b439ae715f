//! Tests of the running dashboard: a real server on 127.0.0.1 port 0 (and
//! 0.0.0.0 for the token check), a raw HTTP/1.1 client over a tokio
//! `TcpStream`, and headless Chromium (skipped when no `chromium` binary is
//! found, unless `TWINLOOP_REQUIRE_BROWSER_TESTS=1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::*;

const PANEL_IDS: [&str; 8] = [
    "panel-frame",
    "panel-traces",
    "panel-stimulus",
    "panel-latency",
    "panel-counters",
    "panel-accuracy",
    "panel-decisions",
    "panel-behaviour",
];

fn loopback() -> DashboardConfig {
    DashboardConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: None,
        traces: 8,
        history_s: 30.0,
        ..DashboardConfig::default()
    }
}

/// The loopback address to connect to (the server may be bound to 0.0.0.0).
fn target(dash: &Dashboard) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], dash.local_addr().port()))
}

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn request_text(path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Splits a raw response into status, headers and the rest.
fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// One GET over a fresh connection; the whole response.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let fut = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(request_text(path, headers).as_bytes())
            .await
            .expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of headers");
        let (status, headers) = parse_head(&String::from_utf8_lossy(&raw[..split]));
        let rest = &raw[split + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        HttpResponse {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("GET {path} timed out"))
}

/// A minimal Server-Sent Events reader over chunked HTTP/1.1.
struct SseClient {
    reader: BufReader<TcpStream>,
    chunked: bool,
    pending: String,
}

impl SseClient {
    async fn open(addr: SocketAddr, path: &str) -> SseClient {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
                .await
                .expect("headers in time")
                .expect("read");
            assert!(n > 0, "connection closed in the headers");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let (status, headers) = parse_head(head.trim_end());
        assert_eq!(status, 200, "{head}");
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(
            header("content-type").starts_with("text/event-stream"),
            "{head}"
        );
        SseClient {
            reader,
            chunked: header("transfer-encoding").contains("chunked"),
            pending: String::new(),
        }
    }

    async fn read_more(&mut self) {
        if self.chunked {
            let mut size_line = String::new();
            self.reader
                .read_line(&mut size_line)
                .await
                .expect("chunk size");
            let size = usize::from_str_radix(size_line.trim(), 16).expect("hex chunk size");
            assert!(size > 0, "the stream ended");
            let mut data = vec![0; size + 2];
            self.reader.read_exact(&mut data).await.expect("chunk");
            data.truncate(size);
            self.pending.push_str(&String::from_utf8_lossy(&data));
        } else {
            let mut data = vec![0; 64 * 1024];
            let n = self.reader.read(&mut data).await.expect("read");
            assert!(n > 0, "the stream ended");
            self.pending.push_str(&String::from_utf8_lossy(&data[..n]));
        }
    }

    /// The next `data:` payload, parsed as JSON.
    async fn next_snapshot(&mut self) -> Value {
        let fut = async {
            loop {
                if let Some(end) = self.pending.find("\n\n") {
                    let event: String = self.pending.drain(..end + 2).collect();
                    let data: Vec<&str> = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect();
                    if data.is_empty() {
                        continue; // keep-alive comment
                    }
                    return serde_json::from_str(&data.join("\n")).expect("snapshot is JSON");
                }
                self.read_more().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("a snapshot within 5 s")
    }
}

/// A synthetic two-photon frame: dim noise-free background with bright disks.
fn disks_frame(width: u32, height: u32, disks: &[(f32, f32, f32)], phase: f32) -> Vec<u16> {
    let mut px = vec![0u16; (width * height) as usize];
    for y in 0..height {
        for x in 0..width {
            let mut v = 200.0 + 50.0 * ((x as f32 * 0.05 + phase).sin() + (y as f32 * 0.07).cos());
            for &(cy, cx, r) in disks {
                let d2 = (y as f32 - cy).powi(2) + (x as f32 - cx).powi(2);
                if d2 < r * r {
                    v += 3000.0 * (1.0 - d2 / (r * r));
                }
            }
            px[(y * width + x) as usize] = v as u16;
        }
    }
    px
}

fn decode_png(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    (info, buf)
}

async fn wait_for_ok(addr: SocketAddr, path: &str) -> HttpResponse {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(addr, path, &[]).await;
        if r.status == 200 || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod inception;
mod limits;

#[tokio::test]
async fn page_is_served_with_every_panel() {
    let dash = Dashboard::start(loopback()).expect("start");
    let r = get(target(&dash), "/", &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let page = r.text();
    for id in PANEL_IDS {
        assert!(page.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "<link",
        "<script src",
    ] {
        assert!(
            !page.contains(external),
            "the page loads something external: {external}"
        );
    }
    assert_eq!(get(target(&dash), "/nothing-here", &[]).await.status, 404);
    assert_eq!(
        get(target(&dash), "/frame.png", &[]).await.status,
        404,
        "no frame yet"
    );
    dash.shutdown();
}

#[tokio::test]
async fn events_stream_snapshots_and_new_events_arrive_within_a_second() {
    let dash = Dashboard::start(loopback()).expect("start");
    let feed = dash.feed();
    let mut sse = SseClient::open(target(&dash), "/events").await;
    let first = sse.next_snapshot().await;
    for key in [
        "frame",
        "traces",
        "stimulus",
        "latency",
        "counters",
        "accuracy",
        "decisions",
        "behaviour",
    ] {
        assert!(first.get(key).is_some(), "snapshot lacks {key}: {first}");
    }

    let sent = Instant::now();
    assert!(feed.send(DashEvent::Onset {
        trial: 4242,
        name: "gabor-17".into(),
        t_s: 12.0,
    }));
    loop {
        let snap = sse.next_snapshot().await;
        if snap["stimulus"]["trial"] == json!(4242) {
            assert_eq!(snap["stimulus"]["name"], json!("gabor-17"));
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "the onset did not show up within 1 s"
        );
    }
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );

    // Throttling: however fast events come, at most 5 snapshots per second.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (feed, stop) = (feed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                feed.send(DashEvent::Activity {
                    t_s: 12.0 + k as f64 * 0.002,
                    values: vec![k as f32; 4],
                });
                k += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let window = Instant::now();
    let mut count = 0;
    let mut last_seq = 0;
    while window.elapsed() < Duration::from_secs(2) {
        let snap = sse.next_snapshot().await;
        let seq = snap["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "snapshots go forward");
        last_seq = seq;
        count += 1;
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let elapsed = window.elapsed().as_secs_f64();
    assert!(count >= 3, "only {count} snapshots in {elapsed:.1} s");
    assert!(
        f64::from(count) <= 5.0 * elapsed + 1.0,
        "{count} snapshots in {elapsed:.1} s: more than 5 per second"
    );
    dash.shutdown();
}

#[tokio::test]
async fn frame_png_has_the_thumbnail_size_and_cell_outlines() {
    let dash = Dashboard::start(loopback()).expect("start");
    let feed = dash.feed();
    let (w, h) = (512u32, 400u32);
    let disks = [(100.0, 200.0, 16.0), (300.0, 400.0, 12.0)];
    feed.send(DashEvent::Cells {
        centres: disks.iter().map(|&(y, x, _)| (y, x)).collect(),
        radii: disks.iter().map(|&(_, _, r)| r).collect(),
    });
    feed.send(DashEvent::Frame {
        t_s: 1.0,
        width: w,
        height: h,
        pixels: disks_frame(w, h, &disks, 0.0),
    });
    feed.send(DashEvent::View {
        t_s: 1.0,
        width: 640,
        height: 360,
        pixels: (0..640 * 360).map(|i| (i % 640 / 3) as u8).collect(),
        trial: 3,
    });
    let addr = target(&dash);
    let r = wait_for_ok(addr, "/frame.png").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    let (info, rgb) = decode_png(&r.body);
    assert_eq!((info.width, info.height), (256, 200), "512 x 400 halved");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let at = |y: usize, x: usize| &rgb[(y * 256 + x) * 3..][..3];
    // Cell 0 at (100, 200) r 16 -> thumbnail (49.75, 99.75) r 8: its
    // rightmost outline pixel is (50, 108).
    let on_circle = at(50, 108);
    assert!(
        on_circle[0] != on_circle[1] || on_circle[1] != on_circle[2],
        "outline pixel is gray: {on_circle:?}"
    );
    // Away from cells the frame is gray, and the disks are bright.
    let background = at(5, 5);
    assert!(background[0] == background[1] && background[1] == background[2]);
    let centre = at(50, 100);
    assert!(
        centre[0] > 200 && centre[0] == centre[1],
        "disk centre {centre:?}"
    );

    let r = wait_for_ok(addr, "/view.png").await;
    let (info, _) = decode_png(&r.body);
    assert_eq!(
        (info.width, info.height),
        (214, 120),
        "640 x 360 divided by 3"
    );
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    dash.shutdown();
}

#[tokio::test]
async fn token_is_required_off_loopback() {
    let dash = Dashboard::start(DashboardConfig {
        bind: SocketAddr::from(([0, 0, 0, 0], 0)),
        token: Some("s3cret-T0ken".into()),
        ..loopback()
    })
    .expect("start with a token");
    let addr = target(&dash);
    for path in ["/", "/snapshot.json", "/frame.png", "/events"] {
        let r = get(addr, path, &[]).await;
        assert_eq!(r.status, 401, "{path} without a token");
    }
    assert_eq!(get(addr, "/?token=wrong", &[]).await.status, 401);
    assert_eq!(
        get(addr, "/", &[("Authorization", "Bearer wrong")])
            .await
            .status,
        401
    );
    let r = get(addr, "/?token=s3cret-T0ken", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("panel-frame"));
    let r = get(
        addr,
        "/snapshot.json",
        &[("Authorization", "Bearer s3cret-T0ken")],
    )
    .await;
    assert_eq!(r.status, 200);
    let snap: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert!(snap.get("stimulus").is_some());
    let mut sse = SseClient::open(addr, "/events?token=s3cret-T0ken").await;
    assert!(sse.next_snapshot().await.get("frame").is_some());
    dash.shutdown();
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync_clone::<DashFeed>();
    send::<Dashboard>();
    send::<DashEvent>();
}

#[test]
fn start_refuses_bad_configurations() {
    let open = SocketAddr::from(([0, 0, 0, 0], 0));
    let err = Dashboard::start(DashboardConfig {
        bind: open,
        ..loopback()
    })
    .expect_err("0.0.0.0 without a token");
    assert!(matches!(err, DashboardError::TokenRequired { .. }), "{err}");
    assert!(err.to_string().contains("token"), "{err}");
    let err = Dashboard::start(DashboardConfig {
        bind: open,
        token: Some(String::new()),
        ..loopback()
    })
    .expect_err("empty token");
    assert!(matches!(err, DashboardError::EmptyToken), "{err}");
    let err = Dashboard::start(DashboardConfig {
        traces: 9,
        ..loopback()
    })
    .expect_err("9 traces");
    assert!(
        matches!(err, DashboardError::TooManyTraces { traces: 9 }),
        "{err}"
    );
    let err = Dashboard::start(DashboardConfig {
        history_s: f64::NAN,
        ..loopback()
    })
    .expect_err("NaN history");
    assert!(matches!(err, DashboardError::BadHistory { .. }), "{err}");
    let first = Dashboard::start(loopback()).expect("start");
    let err = Dashboard::start(DashboardConfig {
        bind: first.local_addr(),
        ..loopback()
    })
    .expect_err("port in use");
    assert!(matches!(err, DashboardError::Bind { .. }), "{err}");
    first.shutdown();
}

#[tokio::test]
async fn a_stalled_client_blocks_neither_the_feed_nor_other_clients() {
    let dash = Dashboard::start(loopback()).expect("start");
    let addr = target(&dash);
    let feed = dash.feed();

    // A client with a tiny receive buffer that asks for /events and never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = socket.connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");

    // Big snapshots (400 cells, 8 traced) so that its buffers fill up.
    let cells = 400;
    let make = |k: u64| -> DashEvent {
        let t_s = k as f64 * 0.005;
        match k % 100 {
            0 => DashEvent::Frame {
                t_s,
                width: 256,
                height: 256,
                pixels: vec![(k % 4096) as u16; 256 * 256],
            },
            1 => DashEvent::Decision {
                trial: k,
                name: format!("stim-{k}"),
                mode: "adaptive".into(),
                score: Some(0.1),
            },
            2 => DashEvent::View {
                t_s,
                width: 64,
                height: 64,
                pixels: vec![(k % 256) as u8; 64 * 64],
                trial: k as i64,
            },
            _ => DashEvent::Activity {
                t_s,
                values: (0..cells)
                    .map(|c| ((k + c) % 17) as f32 * (c as f32))
                    .collect(),
            },
        }
    };
    let warmup: Vec<DashEvent> = (0..2_000).map(make).collect();
    for e in warmup {
        feed.send(e);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // 10,000 events from a plain thread, timed (events built beforehand).
    let events: Vec<DashEvent> = (2_000..12_000).map(make).collect();
    let sender = {
        let feed = feed.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let accepted = events.into_iter().filter(|e| feed.send(e.clone())).count();
            (start.elapsed(), accepted)
        })
    };
    let (elapsed, accepted) = sender.join().expect("sender thread");
    assert!(
        elapsed < Duration::from_secs(1),
        "10,000 sends took {elapsed:?}"
    );
    tracing::info!(
        ?elapsed,
        accepted,
        dropped = feed.dropped(),
        "sent 10,000 events"
    );

    // Others are still served, with fresh state.
    // The flood may have filled the buffer: retry until it has room again.
    let onset = DashEvent::Onset {
        trial: 999_999,
        name: "after-the-flood".into(),
        t_s: 100.0,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feed.send(onset.clone()) {
        assert!(Instant::now() < deadline, "the feed never drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = get(addr, "/", &[]).await;
    assert_eq!(r.status, 200);
    let mut sse = SseClient::open(addr, "/events").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let snap = sse.next_snapshot().await;
        // Both streams are counted: the stalled one is still open.
        if snap["stimulus"]["trial"] == json!(999_999) && snap["dashboard"]["clients"] == json!(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new onset never showed up: {} {}",
            snap["stimulus"],
            snap["dashboard"]
        );
    }
    assert_eq!(wait_for_ok(addr, "/frame.png").await.status, 200);

    // Shutdown is prompt even with the stalled connection open.
    let start = Instant::now();
    dash.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        start.elapsed()
    );
    assert!(
        !feed.send(DashEvent::Anomaly {
            message: "late".into()
        }),
        "feed after shutdown"
    );
    drop(stalled);
}

// ---------------------------------------------------------------------------
// Headless Chromium
// ---------------------------------------------------------------------------

/// The dashboard in a real browser (headless Chromium).
mod browser;
