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

/// The Chromium binary: `$TWINLOOP_CHROMIUM`, or `chromium` /
/// `chromium-browser` on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TWINLOOP_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Runs Chromium headless with `args`, stdout to `out`, killed after `limit`.
fn run_chromium(bin: &Path, profile: &Path, args: &[String], out: &Path, limit: Duration) {
    let stdout = std::fs::File::create(out).expect("stdout file");
    let stderr = std::fs::File::create(out.with_extension("stderr")).expect("stderr file");
    let mut child = std::process::Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn chromium");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            if !status.success() {
                let err = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
                panic!("chromium exited with {status}: {err}");
            }
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Feeds a lively synthetic session until `stop`.
fn feed_synthetic_session(feed: DashFeed, stop: Arc<AtomicBool>) {
    let (w, h) = (512u32, 512u32);
    let disks: Vec<(f32, f32, f32)> = (0..12)
        .map(|i| {
            (
                40.0 + 38.0 * i as f32,
                60.0 + (i * 137 % 400) as f32,
                10.0 + (i % 3) as f32 * 4.0,
            )
        })
        .collect();
    feed.send(DashEvent::Cells {
        centres: disks.iter().map(|&(y, x, _)| (y, x)).collect(),
        radii: disks.iter().map(|&(_, _, r)| r).collect(),
    });
    feed.send(DashEvent::Onset {
        trial: 4242,
        name: "drifting-grating-90deg".into(),
        t_s: 0.0,
    });
    for k in 0..37u64 {
        feed.send(DashEvent::Decision {
            trial: 4243 + k,
            name: format!("natural-image-{}", 100 + k),
            mode: ["adaptive", "random", "test"][(k % 3) as usize].into(),
            score: Some(0.2 + 0.1 * ((k as f64) * 0.7).sin().abs()),
        });
    }
    for k in 1..=30u64 {
        feed.send(DashEvent::Accuracy {
            trials: 50 * k,
            cc_norm: 0.8 * (1.0 - (-(k as f64) / 8.0).exp()),
        });
    }
    for (stage, p50) in [
        ("register", 1.2),
        ("extract", 0.6),
        ("twin", 4.5),
        ("decide", 2.0),
    ] {
        feed.send(DashEvent::Latency {
            stage: stage.into(),
            p50_ms: p50,
            p99_ms: p50 * 3.0,
            histogram: (1..=24)
                .map(|b| {
                    (
                        b as f64 * p50 / 4.0,
                        (1000.0 * (-(b as f64 - 4.0).powi(2) / 8.0).exp()) as u64,
                    )
                })
                .collect(),
        });
    }
    feed.send(DashEvent::Anomaly {
        message: "frame 1041 arrived 48 ms late".into(),
    });
    let mut k = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t_s = start.elapsed().as_secs_f64();
        let activity: Vec<f32> = (0..disks.len())
            .map(|c| (c as f32 * 0.3 + 1.0) * ((t_s as f32) * (1.0 + c as f32 * 0.4)).sin())
            .collect();
        feed.send(DashEvent::Prediction {
            t_s,
            values: (0..disks.len())
                .map(|c| 0.8 * ((t_s as f32 - 0.3) * (1.0 + c as f32 * 0.4)).sin() + 0.1)
                .collect(),
        });
        feed.send(DashEvent::Activity {
            t_s,
            values: activity,
        });
        feed.send(DashEvent::Shifts {
            t_s,
            dy: (t_s as f32 * 2.0).sin(),
            dx: (t_s as f32 * 1.3).cos() * 0.5,
        });
        feed.send(DashEvent::Behaviour {
            t_s,
            pupil_x: 120.0 + 3.0 * (t_s as f32).sin(),
            pupil_y: 80.0 + 2.0 * (t_s as f32 * 0.7).cos(),
            pupil_radius: 20.0 + (t_s as f32 * 0.3).sin(),
            speed_cm_s: (5.0 + 5.0 * (t_s as f32 * 0.5).sin()).max(0.0),
        });
        if k.is_multiple_of(4) {
            feed.send(DashEvent::Frame {
                t_s,
                width: w,
                height: h,
                pixels: disks_frame(w, h, &disks, t_s as f32),
            });
            feed.send(DashEvent::View {
                t_s,
                width: 320,
                height: 180,
                pixels: (0..320 * 180)
                    .map(|i| {
                        (127.0 + 120.0 * ((i % 320) as f32 * 0.1 + t_s as f32 * 3.0).sin()) as u8
                    })
                    .collect(),
                trial: 4242,
            });
            let mut counters = serde_json::Map::new();
            counters.insert("frames".into(), json!(k * 3));
            counters.insert("drops".into(), json!(0));
            counters.insert("late_decisions".into(), json!(1));
            feed.send(DashEvent::Counters(counters));
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(33));
    }
}

#[test]
fn browser_shows_live_values() {
    let Some(bin) = find_chromium() else {
        if std::env::var("TWINLOOP_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1") {
            panic!(
                "TWINLOOP_REQUIRE_BROWSER_TESTS=1 but no chromium binary found (apt-get install chromium)"
            );
        }
        eprintln!(
            "SKIPPED browser_shows_live_values: no chromium binary on PATH (apt-get install chromium)"
        );
        return;
    };
    let dash = Dashboard::start(loopback()).expect("start");
    // stop_after: the page closes its stream after 8 snapshots, so that
    // Chromium's virtual time (which waits for pending fetches) can run out.
    let url = format!("http://{}/?stop_after=8", target(&dash));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (feed, stop) = (dash.feed(), stop.clone());
        std::thread::spawn(move || feed_synthetic_session(feed, stop))
    };
    // A second of data first, so that the traces have some length.
    std::thread::sleep(Duration::from_secs(1));
    let dir = std::env::temp_dir().join(format!("twinloop-dash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let start = Instant::now();
    let dom_path = dir.join("dom.html");
    run_chromium(
        &bin,
        &dir.join("profile-dom"),
        &[
            "--virtual-time-budget=4000".into(),
            "--dump-dom".into(),
            url.clone(),
        ],
        &dom_path,
        Duration::from_secs(30),
    );
    let dom_time = start.elapsed();
    let dom = std::fs::read_to_string(&dom_path).expect("DOM");
    let has = |needle: &str| dom.contains(needle);
    assert!(
        has("id=\"stim-trial\">4242<"),
        "trial not filled in: {}",
        &dom[..dom.len().min(3000)]
    );
    assert!(
        has("id=\"decision-count\">37<"),
        "decision count not filled in"
    );
    assert!(has("id=\"stim-name\">drifting-grating-90deg<"));
    assert!(has("id=\"next-name\">natural-image-100<"));
    assert!(has("data-messages=\""), "no SSE message was handled");
    assert!(has("frame.png?v="), "frame image not requested");
    assert!(has("<polyline"), "no chart was drawn");

    let start = Instant::now();
    let shot = dir.join("shot.png");
    run_chromium(
        &bin,
        &dir.join("profile-shot"),
        &[
            "--virtual-time-budget=4000".into(),
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000".into(),
            url,
        ],
        &dir.join("shot.stdout"),
        Duration::from_secs(30),
    );
    let shot_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    feeder.join().expect("feeder");
    dash.shutdown();

    let bytes = std::fs::read(&shot).expect("screenshot");
    let (info, data) = decode_png(&bytes);
    assert_eq!((info.width, info.height), (1400, 1000));
    let channels = info.color_type.samples();
    let distinct: std::collections::HashSet<&[u8]> = data.chunks_exact(channels).collect();
    assert!(
        distinct.len() > 50,
        "screenshot looks blank: {} distinct colours",
        distinct.len()
    );
    eprintln!(
        "browser_shows_live_values: dump-dom {dom_time:.1?}, screenshot {shot_time:.1?}, {} colours",
        distinct.len()
    );
    if std::env::var_os("TWINLOOP_KEEP_SCREENSHOT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The real daemon serves the dashboard: while a simulated session runs, the snapshot fills
/// with its decisions, activity and views, and (where Chromium exists) the page shows them.
#[test]
fn a_simulated_session_shows_on_the_dashboard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = crate::config::Config::default_sim();
    cfg.session.duration_s = 14.0;
    cfg.session.realtime = true;
    cfg.session.progress = false;
    cfg.session.out_dir = tmp.path().to_path_buf();
    cfg.imaging.extraction = crate::config::Extraction::TruthFootprints;
    cfg.trials.stimulus_s = 1.0;
    cfg.trials.gray_s = 0.5;
    cfg.trials.design.warmup_trials = 2;
    cfg.dashboard.enabled = true;
    cfg.dashboard.bind = format!("127.0.0.1:{port}");
    let session = std::thread::spawn(move || {
        crate::session::run(&cfg, vec!["dashboard-test".into()], Default::default())
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Wait until the session has decided a few trials and activity is flowing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        // The session builds its candidate pool before the dashboard starts listening.
        if std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the dashboard never started");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), get(addr, "/snapshot.json", &[])).await
        });
        if let Ok(r) = r
            && r.status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.text())
            && v["decisions"]["count"].as_u64().unwrap_or(0) >= 3
            && v["stimulus"]["width"].as_u64().is_some()
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard never showed the session"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        snap["counters"]["values"]["frames"].as_u64().unwrap_or(0) > 0,
        "daemon counters: {}",
        snap["counters"]
    );
    let frame = rt.block_on(get(addr, "/frame.png", &[]));
    assert_eq!(frame.status, 200, "a two-photon thumbnail is served");
    // Once the warm-up has placed the readouts, the twin's one-step-ahead prediction is drawn
    // beside each selected cell's activity.
    let snap = loop {
        let r = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), get(addr, "/snapshot.json", &[])).await
        });
        if let Ok(r) = r
            && r.status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.text())
            && v["traces"]["prediction"]["t"]
                .as_array()
                .is_some_and(|t| t.len() >= 10)
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the twin's predictions never reached the dashboard"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The cells' outlines come with the session's `cells` message (here the true footprints).
    assert!(
        snap["frame"]["n_cells"].as_u64().unwrap_or(0) > 0,
        "cell outlines on the thumbnail: {}",
        snap["frame"]
    );
    let predicted = snap["traces"]["prediction"]["values"]
        .as_array()
        .expect("prediction values per selected cell");
    assert_eq!(
        predicted.len(),
        snap["traces"]["activity"]["values"]
            .as_array()
            .map_or(0, Vec::len),
        "a prediction trace for every activity trace"
    );
    assert!(
        predicted
            .iter()
            .flat_map(|c| c.as_array().into_iter().flatten())
            .filter_map(|v| v.as_f64())
            .all(|v| v.is_finite() && v >= 0.0),
        "predicted activity is a finite, non-negative expected value"
    );

    if let Some(bin) = find_chromium() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dom_path = dir.path().join("dom.html");
        run_chromium(
            &bin,
            &dir.path().join("profile"),
            &[
                "--virtual-time-budget=3000".into(),
                "--dump-dom".into(),
                format!("http://{addr}/?stop_after=4"),
            ],
            &dom_path,
            Duration::from_secs(30),
        );
        let dom = std::fs::read_to_string(&dom_path).expect("DOM");
        assert!(
            dom.contains("data-messages=\""),
            "no SSE message reached the page"
        );
        assert!(
            !dom.contains("id=\"decision-count\">0<") && dom.contains("id=\"decision-count\">"),
            "decisions not shown"
        );
    } else if std::env::var("TWINLOOP_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1") {
        panic!("TWINLOOP_REQUIRE_BROWSER_TESTS=1 but no chromium binary found");
    }
    let summary = session
        .join()
        .expect("session thread")
        .expect("the session ran");
    assert!(summary.counters.decisions >= 3);
}
