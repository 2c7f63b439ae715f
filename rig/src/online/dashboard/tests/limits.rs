//! Hostile clients (#16): holding many connections must not take the daemon's descriptors, and
//! a silent client must give its slot back.

use super::*;

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Four slots: four silent clients fill them, 96 more wait in the backlog without a
/// descriptor of the daemon's; once the silent ones time out, a real request is served.
#[tokio::test]
async fn connections_are_capped_and_silent_clients_dropped() {
    let dash = Dashboard::start(DashboardConfig {
        max_connections: 4,
        header_timeout: Duration::from_millis(300),
        ..loopback()
    })
    .expect("start");
    let addr = target(&dash);
    let before = open_fds();
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Our 100 client sockets, plus at most the 4 the server accepted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = open_fds() - before;
    assert!(grown <= 100 + 4, "{grown} descriptors for 100 clients");
    // The first silent clients are dropped after the header timeout: they read end of file.
    let mut first = silent.remove(0);
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut byte))
        .await
        .expect("a silent client is dropped, not held")
        .unwrap_or(0);
    assert_eq!(n, 0, "dropped without a response");
    drop(silent);
    // With the silent ones gone, the dashboard still serves.
    let r = get(addr, "/snapshot.json", &[]).await;
    assert_eq!(r.status, 200);
}

/// A client that sends its headers in time is served, even slowly in pieces.
#[tokio::test]
async fn a_slow_but_complete_request_is_served() {
    let dash = Dashboard::start(DashboardConfig {
        max_connections: 2,
        header_timeout: Duration::from_secs(5),
        ..loopback()
    })
    .expect("start");
    let mut s = TcpStream::connect(target(&dash)).await.expect("connect");
    for piece in [
        "GET /snapshot.json HTTP/1.1\r\n",
        "Host: x\r\n",
        "Connection: close\r\n\r\n",
    ] {
        s.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("served")
        .unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}
