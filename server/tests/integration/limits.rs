//! Transport hardening: who may open `/ws`, what a handshake must look
//! like, how many connections are let in, how fast one address may make
//! requests and handshakes, how long a client that stops reading may hold a
//! connection, and how many people one address may keep away.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::{stream, StreamExt};
use server::{config::HttpConfig, origin::OriginPolicy};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::support::{
    ask, connect_from, exchange, handshake_with, header, read_head, resume_from, status,
    unlimited_http, TestServer, HANDSHAKE, WAIT,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another address of this machine, for a second client address.
const LOCALHOST_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A page request the server answers and then closes.
const GET_PAGE: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

async fn answer(server: &TestServer, request: &str) -> (String, String) {
    exchange(TcpStream::connect(server.addr).await.unwrap(), request).await
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_pages_own_is_let_in() {
    let server = TestServer::start().await;
    let (head, body) = answer(
        &server,
        &handshake_with(&[("Origin", "https://evil.example")]),
    )
    .await;
    assert_eq!(status(&head), 403, "{head}");
    assert!(
        header(&head, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{head}"
    );
    assert!(body.contains("origin"), "{body}");
    assert_eq!(server.hub.len(), 0);

    // The page's own origin: the scheme is not the server's to know (a TLS
    // proxy may be in front), the host is compared without regard to case.
    let addr = server.addr.to_string();
    for origin in [format!("http://{addr}"), format!("https://{addr}")] {
        let request = handshake_with(&[("Host", &addr), ("Origin", &origin)]);
        let (head, _) = answer(&server, &request).await;
        assert_eq!(status(&head), 101, "{origin}: {head}");
    }
    let request = handshake_with(&[
        ("Host", "LocalHost:3000"),
        ("Origin", "http://localhost:3000"),
    ]);
    assert_eq!(status(&answer(&server, &request).await.0), 101);
    // No Origin at all: not a browser, so not a cross-site page either.
    assert_eq!(status(&answer(&server, HANDSHAKE).await.0), 101);
}

#[tokio::test]
async fn an_allowed_extra_origin_is_let_in_and_others_are_still_refused() {
    let server = TestServer::builder()
        .http(HttpConfig {
            allowed_origins: OriginPolicy::parse("https://chat.example.com").unwrap(),
            ..unlimited_http()
        })
        .start()
        .await;
    let allowed = handshake_with(&[("Origin", "https://chat.example.com")]);
    assert_eq!(status(&answer(&server, &allowed).await.0), 101);
    let foreign = handshake_with(&[("Origin", "https://chat.example.com.evil.example")]);
    assert_eq!(status(&answer(&server, &foreign).await.0), 403);
}

#[tokio::test]
async fn a_key_that_is_not_16_bytes_of_base64_is_a_bad_request() {
    let server = TestServer::start().await;
    // "abc" is not base64; the other decodes to 15 bytes.
    for key in ["abc", "AAAAAAAAAAAAAAAAAAAA"] {
        let (head, body) = answer(&server, &handshake_with(&[("Sec-WebSocket-Key", key)])).await;
        assert_eq!(status(&head), 400, "{key}: {head}");
        assert!(body.contains("Sec-WebSocket-Key"), "{body}");
    }
    assert_eq!(server.hub.len(), 0);
}

#[tokio::test]
async fn an_http_1_0_upgrade_is_told_to_upgrade() {
    let server = TestServer::start().await;
    let request = HANDSHAKE.replacen("HTTP/1.1", "HTTP/1.0", 1);
    let (head, body) = answer(&server, &request).await;
    assert_eq!(status(&head), 426, "{head}");
    assert_eq!(header(&head, "sec-websocket-version"), Some("13"), "{head}");
    assert!(body.contains("HTTP/1.1"), "{body}");
}

#[tokio::test]
async fn past_the_total_cap_a_connection_gets_503_until_one_closes() {
    let server = TestServer::builder()
        .http(HttpConfig {
            max_connections: 3,
            ..unlimited_http()
        })
        .start()
        .await;
    let mut first = server.client().await;
    let _second = server.client().await;
    let _third = server.client().await;
    server.wait_for_connections(3).await;

    // From another address too: the total cap is for everyone.
    let refused = connect_from(LOCALHOST_2, server.addr).await;
    let (head, body) = exchange(refused, GET_PAGE).await;
    assert_eq!(status(&head), 503, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert!(!body.is_empty());

    first.socket.close(None).await.unwrap();
    server.wait_for_connections(2).await;
    let (head, _) = answer(&server, GET_PAGE).await;
    assert_eq!(status(&head), 200, "{head}");
}

#[tokio::test]
async fn past_the_per_address_cap_a_connection_gets_429_and_other_addresses_are_served() {
    let server = TestServer::builder()
        .http(HttpConfig {
            max_connections_per_ip: 2,
            ..unlimited_http()
        })
        .start()
        .await;
    let _first = server.client().await;
    let _second = server.client().await;
    server.wait_for_connections(2).await;

    let (head, _) = exchange(connect_from(LOCALHOST, server.addr).await, GET_PAGE).await;
    assert_eq!(status(&head), 429, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"), "{head}");

    let (head, _) = exchange(connect_from(LOCALHOST_2, server.addr).await, GET_PAGE).await;
    assert_eq!(status(&head), 200, "{head}");
}

/// A site root holding one file too big for any socket buffer, removed on
/// drop.
struct BigSite {
    root: std::path::PathBuf,
    size: usize,
}

impl BigSite {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("parley-big-site-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // Far more than loopback's socket buffers can hold (4 MiB at most).
        let size = 32 << 20;
        std::fs::write(root.join("big.bin"), vec![b'x'; size]).unwrap();
        Self { root, size }
    }
}

impl Drop for BigSite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_dropped_after_the_write_timeout() {
    let site = BigSite::new();
    let server = TestServer::builder()
        .site_root(site.root.to_str().unwrap())
        .http(HttpConfig {
            http_write_timeout_secs: 1,
            ..unlimited_http()
        })
        .start()
        .await;

    // A small receive window, so the server's writes stall quickly.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stalled).await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(&*site.size.to_string())
    );

    // Not reading any further: the server gives up on its own.
    server.wait_for_connections(0).await;
    let received = tokio::time::timeout(WAIT, async {
        let mut received = 0;
        let mut buf = vec![0; 64 * 1024];
        // What the kernel already holds, then EOF (or a reset).
        while let Ok(n @ 1..) = stalled.read(&mut buf).await {
            received += n;
        }
        received
    })
    .await
    .expect("the connection ends");
    assert!(received < site.size, "the whole file came through");
}

/// A request that keeps its connection open.
const GET_HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

// The rates below refill one a second: nothing comes back within a test.

#[tokio::test]
async fn past_the_handshake_rate_an_address_gets_429_and_another_is_still_served() {
    let server = TestServer::builder()
        .http(HttpConfig {
            handshake_rate_burst: 3,
            handshake_rate_per_sec: 1,
            ..unlimited_http()
        })
        .start()
        .await;
    for _ in 0..3 {
        let (head, _) = answer(&server, HANDSHAKE).await;
        assert_eq!(status(&head), 101, "{head}");
    }
    let (head, body) = answer(&server, HANDSHAKE).await;
    assert_eq!(status(&head), 429, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"), "{head}");
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    assert!(body.contains("handshakes"), "{body}");

    // Only handshakes are over their rate: the page is still served.
    let (head, _) = answer(&server, GET_PAGE).await;
    assert_eq!(status(&head), 200, "{head}");
    // Another address has its own.
    let (head, _) = exchange(connect_from(LOCALHOST_2, server.addr).await, HANDSHAKE).await;
    assert_eq!(status(&head), 101, "{head}");
}

#[tokio::test]
async fn past_the_request_rate_an_address_gets_429_and_another_is_still_served() {
    let server = TestServer::builder()
        .http(HttpConfig {
            request_rate_burst: 5,
            request_rate_per_sec: 1,
            ..unlimited_http()
        })
        .start()
        .await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..5 {
        let (head, body) = ask(&mut socket, GET_HEALTHZ).await;
        assert_eq!((status(&head), &*body), (200, "ok\n"), "{head}");
    }
    // Refused on the same connection, which stays open.
    for _ in 0..2 {
        let (head, body) = ask(&mut socket, GET_HEALTHZ).await;
        assert_eq!(status(&head), 429, "{head}");
        assert_eq!(header(&head, "retry-after"), Some("1"), "{head}");
        assert!(body.contains("too many requests"), "{body}");
    }
    // A handshake is a request too; on a new connection all the same.
    let (head, body) = answer(&server, HANDSHAKE).await;
    assert_eq!(status(&head), 429, "{head}");
    assert!(body.contains("too many requests"), "{body}");

    let (head, _) = exchange(connect_from(LOCALHOST_2, server.addr).await, GET_PAGE).await;
    assert_eq!(status(&head), 200, "{head}");
}

/// Connects from `from` to `/ws?resume` as someone new, and once welcomed
/// drops the connection without a close: the server keeps the person away.
async fn connect_and_drop(from: IpAddr, addr: SocketAddr) {
    let (ws, _) = resume_from(from, addr, None, None).await;
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_and_drop_loop_from_one_address_costs_nobody_elsewhere_their_nickname() {
    let server = TestServer::start().await;
    let (mut victim, _) = server.resume(None, None).await;
    let (id, token) = (victim.id, victim.token());
    let mut watcher = server.client().await;
    victim.set_nickname("victim").await;
    while !watcher
        .next_of("presence")
        .await
        .to_string()
        .contains("victim")
    {}
    drop(watcher);

    // As many people as the away list holds in all (10,000): the loop
    // used to fill it, and anyone who dropped after was let go at once.
    stream::iter(0..10_000)
        .for_each_concurrent(32, |_| connect_and_drop(LOCALHOST_2, server.addr))
        .await;
    // Every one of them is away or gone.
    server.wait_for_connections(1).await;

    drop(victim);
    server.wait_for_connections(0).await;
    let (back, _) = server.resume(Some(&token), None).await;
    assert_eq!(back.id, id, "the same person");
    assert_eq!(back.welcome["payload"]["nickname"], "victim");
}
