//! The page and its files share the port with `/ws`.

use crate::support::TestServer;

pub(crate) async fn get(url: &str) -> (u16, String) {
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
        "<title>#general · Parley</title>",
        r#"<label for="nickname-input" class="visually-hidden">Nickname</label>"#,
        r#"<label for="message-input" class="visually-hidden">Message</label>"#,
        r#"data-connection="connecting""#,
        "Anonymous",
        r#"aria-label="Messages""#,
        "/pkg/parley.js",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in {body}");
    }
}

#[tokio::test]
async fn the_page_is_rendered_with_the_latest_50_messages_in_it() {
    let server = TestServer::start_unlimited().await;
    let mut alice = server.client().await;
    for i in 0..59 {
        alice
            .say_with_id(&format!("line {i:02}"), &format!("p-{i}"))
            .await;
    }
    alice
        .say_with_id("</script><script>alert(1)</script>", "p-59")
        .await;
    while alice.next_of("ack").await["payload"]["client_id"] != "p-59" {}

    let (status, body) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("line 09"), "older than the latest 50");
    for i in 10..59 {
        // Once in the list, once in the embedded history.
        assert_eq!(
            body.matches(&format!("line {i:02}")).count(),
            2,
            "line {i:02}"
        );
    }
    // As text in the list, and with `<` escaped in the JSON: the message
    // cannot close the script element it is embedded in.
    assert!(body.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(body.contains(r"\u003c/script>\u003cscript>alert(1)\u003c/script>"));
    assert_eq!(body.matches("<script>alert(1)").count(), 0);
    assert!(body.contains(r#"<script type="application/json" id="parley-history">"#));
}

#[tokio::test]
async fn the_page_is_503_while_the_store_cannot_be_read() {
    let server = TestServer::start().await;
    server.store.close().await;
    let (status, body) = get(&server.url("/")).await;
    assert_eq!(status, 503);
    assert!(body.contains("unavailable"), "{body}");
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

#[tokio::test]
async fn healthz_answers_while_the_server_serves() {
    let server = TestServer::start().await;
    let (status, body) = get(&server.url("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

/// The value of the sample `name` (with its labels) in Prometheus text.
pub(crate) fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_connections_messages_errors_and_rate_limits() {
    let server = TestServer::builder().metrics().start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;
    alice.say("counted").await;
    bob.expect_message("Anonymous", "counted").await;
    alice.send_text("{not json").await;
    alice.expect_error("malformed_json").await;
    for _ in 0..30 {
        bob.say("flood").await;
    }
    bob.expect_error("rate_limited").await;

    // Other tests' servers share this process's recorder: counts are at
    // least what this test did.
    let (status, metrics) = get(&server.metrics_url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(sample(&metrics, "parley_connections_open") >= 2.0);
    assert!(sample(&metrics, "parley_messages_relayed_total") >= 1.0);
    assert!(sample(&metrics, "parley_frames_in_total") >= 32.0);
    assert!(sample(&metrics, "parley_frames_out_total") >= 3.0);
    assert!(sample(&metrics, r#"parley_errors_total{code="malformed_json"}"#) >= 1.0);
    assert!(sample(&metrics, r#"parley_errors_total{code="rate_limited"}"#) >= 1.0);
    assert!(sample(&metrics, "parley_rate_limited_total") >= 1.0);
}
