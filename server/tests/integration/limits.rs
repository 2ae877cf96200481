//! Transport hardening: who may open `/ws`, and what a handshake must
//! look like.

use server::{config::HttpConfig, ws::upgrade::OriginPolicy};
use tokio::net::TcpStream;

use crate::support::{exchange, handshake_with, header, status, TestServer, HANDSHAKE};

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
