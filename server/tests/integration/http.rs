//! The page and its files share the port with `/ws`.

use crate::support::TestServer;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("HTTP response");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_page_is_rendered_on_the_server() {
    let server = TestServer::start().await;
    let (status, body) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    for expected in [
        "<title>Parley</title>",
        r#"<label for="nickname-input">Nickname</label>"#,
        r#"<label for="message-input">Message</label>"#,
        r#"data-connection="connecting""#,
        "Anonymous",
        r#"aria-label="Messages""#,
        "/pkg/parley.js",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in {body}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = TestServer::start().await;
    let (status, _) = get(&server.url("/no/such/page")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ws_without_an_upgrade_is_a_client_error_not_a_crash() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/ws"))
        .await
        .expect("HTTP response");
    assert_eq!(response.status().as_u16(), 426);
    // RFC 6455, 4.4: the answer names the version the server speaks.
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    // The server still serves.
    let (status, _) = get(&server.url("/")).await;
    assert_eq!(status, 200);
}
