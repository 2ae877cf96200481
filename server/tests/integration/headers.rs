//! The security headers of every response, the page's Content-Security-Policy
//! against the scripts it really has, and `/metrics` on its own address only.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::Response;
use sha2::{Digest, Sha256};

use crate::support::{cluster::ServerProcess, TestServer};

/// The directives of `policy`, by name.
fn directive<'a>(policy: &'a str, name: &str) -> Vec<&'a str> {
    policy
        .split(';')
        .map(|directive| directive.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&name))
        .unwrap_or_else(|| panic!("no {name} in {policy}"))[1..]
        .to_vec()
}

/// The `<script>` elements of `html` a browser runs, as (attributes, text):
/// not the JSON data blocks, which are never run (CSP does not apply).
fn executed_scripts(html: &str) -> Vec<(String, String)> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start + "<script".len()..];
        let open = tag.find('>').expect("a complete start tag");
        let (attributes, text) = (&tag[..open], &tag[open + 1..]);
        let close = text.find("</script>").expect("a closed script");
        if !attributes.contains(r#"type="application/json""#) {
            scripts.push((attributes.to_owned(), text[..close].to_owned()));
        }
        rest = &text[close + "</script>".len()..];
    }
    scripts
}

fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

fn assert_plain_headers(response: &Response, what: &str) {
    assert_eq!(
        header(response, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(response, "referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
}

/// The page at `path`: its status, its policy (checked against every
/// script it runs), and its nonce.
async fn page_policy(server: &TestServer, path: &str) -> (u16, String, String) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    let status = response.status().as_u16();
    assert_plain_headers(&response, path);
    let policy = header(&response, "content-security-policy")
        .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"))
        .to_owned();
    let html = response.text().await.unwrap();
    let scripts = directive(&policy, "script-src");
    let nonces: Vec<_> = scripts
        .iter()
        .filter_map(|source| source.strip_prefix("'nonce-")?.strip_suffix('\''))
        .collect();
    let [nonce] = nonces[..] else {
        panic!("one nonce in {policy}");
    };
    let nonce = nonce.to_owned();

    let run = executed_scripts(&html);
    assert!(run.len() >= 3, "the early script and Leptos' own: {run:?}");
    // The early script by its hash, the rest by the nonce: no script the
    // policy does not let in, so none the browser refuses.
    let (early, _) = run
        .iter()
        .find(|(_, text)| text == app::EARLY_SCRIPT)
        .expect("the early script, verbatim");
    assert!(!early.contains("nonce"), "{early}");
    assert!(scripts.contains(&sha256_source(app::EARLY_SCRIPT).as_str()));
    for (attributes, text) in &run {
        if text != app::EARLY_SCRIPT {
            assert!(
                attributes.contains(&format!(r#"nonce="{nonce}""#)),
                "an inline script without the page's nonce: <script{attributes}>{text}"
            );
        }
    }
    (status, policy, nonce)
}

#[tokio::test]
async fn the_page_has_a_policy_that_lets_in_exactly_its_own_scripts() {
    let server = TestServer::start().await;
    let (status, policy, nonce) = page_policy(&server, "/").await;
    assert_eq!(status, 200);
    for (name, sources) in [
        ("default-src", &["'none'"][..]),
        ("connect-src", &["'self'"]),
        ("style-src", &["'self'"]),
        ("img-src", &["'self'", "data:"]),
        ("frame-ancestors", &["'none'"]),
        ("base-uri", &["'none'"]),
        ("form-action", &["'self'"]),
        ("object-src", &["'none'"]),
    ] {
        assert_eq!(directive(&policy, name), sources, "{policy}");
    }
    assert_eq!(
        directive(&policy, "script-src"),
        [
            "'self'",
            &sha256_source(app::EARLY_SCRIPT),
            &format!("'nonce-{nonce}'"),
            "'wasm-unsafe-eval'",
        ],
        "{policy}"
    );

    // A nonce per response: one seen in a page says nothing of the next.
    let (_, _, again) = page_policy(&server, "/").await;
    assert_ne!(nonce, again);
    // Every page: a room's, and "no such room".
    assert_eq!(page_policy(&server, "/r/rust").await.0, 200);
    assert_eq!(page_policy(&server, "/r/Not..A..Room").await.0, 404);
}

#[tokio::test]
async fn every_other_response_is_nosniff_and_no_referrer_without_a_page_policy() {
    let site = tempfile::TempDir::new().unwrap();
    std::fs::write(site.path().join("app.css"), "body { margin: 0 }\n").unwrap();
    let server = TestServer::builder()
        .site_root(site.path().to_str().unwrap())
        .start()
        .await;
    for (path, status) in [
        ("/app.css", 200),
        ("/healthz", 200),
        ("/no/such/file.js", 404),
        // Without an upgrade: an error of the WebSocket endpoint.
        ("/ws", 426),
    ] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_plain_headers(&response, path);
        assert_eq!(header(&response, "content-security-policy"), None, "{path}");
    }
    // The page when the store is down: an error, in plain text.
    server.store.close().await;
    let response = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_plain_headers(&response, "the 503 page");
}

#[tokio::test]
async fn metrics_are_not_on_the_pages_address() {
    for server in [
        TestServer::start().await,
        TestServer::builder().metrics().start().await,
    ] {
        let response = reqwest::get(server.url("/metrics")).await.unwrap();
        assert_eq!(response.status().as_u16(), 404);
        let body = response.text().await.unwrap();
        assert!(!body.contains("parley_"), "{body}");
    }
}

#[tokio::test]
async fn metrics_are_on_their_own_address_and_nothing_else_is() {
    let server = TestServer::builder().metrics().start().await;
    let _client = server.client().await;
    let response = reqwest::get(server.metrics_url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_plain_headers(&response, "/metrics");
    assert!(header(&response, "content-type")
        .unwrap()
        .starts_with("text/plain"));
    let body = response.text().await.unwrap();
    assert!(body.contains("parley_connections_open"), "{body}");
    for path in ["/", "/healthz", "/ws"] {
        let response = reqwest::get(server.metrics_url(path)).await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_binary_serves_metrics_on_the_metrics_address_only_when_given_one() {
    let mut without = ServerProcess::start(&[]).await;
    assert_eq!(without.metrics_addr, None);
    let response = reqwest::get(without.url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(without.stop().await.success());

    let mut with = ServerProcess::start(&[("PARLEY_METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics = with
        .metrics_addr
        .expect("the log says where the metrics are");
    assert_ne!(metrics, with.addr);
    let response = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("parley_connections_open"));
    let response = reqwest::get(with.url("/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    // Shut down with the rest: the process exits, and the port is let go.
    assert!(with.stop().await.success());
    assert!(reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .is_err());
}
