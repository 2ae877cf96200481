//! Transport hardening: what a handshake must look like.

use tokio::net::TcpStream;

use crate::support::{exchange, handshake_with, header, status, TestServer, HANDSHAKE};

async fn answer(server: &TestServer, request: &str) -> (String, String) {
    exchange(TcpStream::connect(server.addr).await.unwrap(), request).await
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
