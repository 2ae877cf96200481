//! Behind a trusted reverse proxy (`--trusted-proxies`): the per-address
//! cap, the request and handshake rates and the people kept away count
//! each forwarded client (an IPv6 one by its /64), and the Origin check
//! compares with `X-Forwarded-Host`. From anyone else those headers change
//! nothing.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use server::{config::HttpConfig, identity::AWAY_PER_ADDRESS, proxy::TrustedProxies};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_tungstenite::WebSocketStream;

use crate::support::{
    ask, connect_from, exchange, handshake_with, header, read_head, resume_from, status,
    unlimited_http, TestServer,
};

/// The proxy: trusted in these tests.
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another address of this machine, never trusted.
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn server(trusted: &str, max_connections_per_ip: usize) -> TestServer {
    TestServer::builder()
        .http(HttpConfig {
            trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
            max_connections_per_ip,
            ..unlimited_http()
        })
        .start()
        .await
}

/// A WebSocket handshake from `from` with these headers: the status, and
/// the socket, open if that was 101.
async fn handshake(
    server: &TestServer,
    from: IpAddr,
    headers: &[(&str, &str)],
) -> (u16, TcpStream) {
    let mut socket = connect_from(from, server.addr).await;
    socket
        .write_all(handshake_with(headers).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut socket).await;
    (status(&head), socket)
}

fn forwarded_for(client: &str) -> [(&str, &str); 1] {
    [("X-Forwarded-For", client)]
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_per_address_cap_counts_each_forwarded_client() {
    let server = server("127.0.0.1", 2).await;
    let (first, a1) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    let (second, _a2) = handshake(&server, PROXY, &forwarded_for("198.51.100.9, 192.0.2.1")).await;
    assert_eq!((first, second), (101, 101));
    let (third, _) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    assert_eq!(third, 429, "the client's third WebSocket");
    // Another client of the same proxy: the proxy's own address is not
    // capped (this is its fourth connection, past the cap of 2).
    let (other, _b) = handshake(&server, PROXY, &forwarded_for("192.0.2.2")).await;
    assert_eq!(other, 101);
    server.wait_for_connections(3).await;

    // A WebSocket that closes gives its client's place back.
    drop(a1);
    server.wait_for_connections(2).await;
    let (again, _a3) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    assert_eq!(again, 101);
}

#[tokio::test]
async fn a_refused_request_leaves_the_proxys_connection_open_for_its_other_clients() {
    let server = server("127.0.0.1", 1).await;
    let (status_a, _a) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    assert_eq!(status_a, 101);

    let mut proxy = connect_from(PROXY, server.addr).await;
    for (client, expected) in [("192.0.2.1", 429), ("192.0.2.2", 200), ("192.0.2.1", 429)] {
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {client}\r\n\r\n"
        );
        let (head, _) = ask(&mut proxy, &request).await;
        assert_eq!(status(&head), expected, "{client}: {head}");
        if expected == 429 {
            assert_eq!(header(&head, "retry-after"), Some("1"), "{head}");
        }
    }
}

#[tokio::test]
async fn the_total_cap_still_applies_to_a_trusted_proxy() {
    let server = TestServer::builder()
        .http(HttpConfig {
            trusted_proxies: TrustedProxies::parse("127.0.0.0/8").unwrap(),
            max_connections: 2,
            ..unlimited_http()
        })
        .start()
        .await;
    let (first, _a) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    let (second, _b) = handshake(&server, PROXY, &forwarded_for("192.0.2.2")).await;
    assert_eq!((first, second), (101, 101));
    let (third, _) = handshake(&server, PROXY, &forwarded_for("192.0.2.3")).await;
    assert_eq!(third, 503);
}

#[tokio::test]
async fn from_an_untrusted_peer_x_forwarded_for_changes_nothing() {
    // Nobody trusted, and a proxy trusted that is not this peer.
    for trusted in ["", "127.0.0.1"] {
        let server = server(trusted, 2).await;
        let (first, _a) = handshake(&server, STRANGER, &forwarded_for("192.0.2.1")).await;
        let (second, _b) = handshake(&server, STRANGER, &forwarded_for("192.0.2.2")).await;
        assert_eq!((first, second), (101, 101), "{trusted:?}");
        let (third, _) = handshake(&server, STRANGER, &forwarded_for("192.0.2.3")).await;
        assert_eq!(third, 429, "{trusted:?}: the peer's own address is capped");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_origin_is_checked_against_x_forwarded_host() {
    let server = server("127.0.0.1", 256).await;
    let public = [
        ("Host", "10.0.0.5:3000"),
        ("X-Forwarded-Host", "chat.example.com"),
        ("Origin", "https://chat.example.com"),
    ];
    let internal = [
        ("Host", "10.0.0.5:3000"),
        ("X-Forwarded-Host", "chat.example.com"),
        ("Origin", "http://10.0.0.5:3000"),
    ];
    assert_eq!(handshake(&server, PROXY, &public).await.0, 101);
    assert_eq!(handshake(&server, PROXY, &internal).await.0, 403);
    // The same requests from a peer that is not trusted: Host is the page's.
    assert_eq!(handshake(&server, STRANGER, &public).await.0, 403);
    assert_eq!(handshake(&server, STRANGER, &internal).await.0, 101);
}

#[tokio::test]
async fn without_trust_x_forwarded_host_cannot_smuggle_a_foreign_origin_in() {
    let server = TestServer::start().await;
    let request = handshake_with(&[
        ("Host", "localhost:3000"),
        ("X-Forwarded-Host", "evil.example"),
        ("Origin", "https://evil.example"),
    ]);
    let (head, _) = exchange(TcpStream::connect(server.addr).await.unwrap(), &request).await;
    assert_eq!(status(&head), 403, "{head}");
}

/// A `/ws?resume` client that `client` reached through the proxy, resuming
/// `token` (someone new without one); once welcomed, its socket and the
/// welcome's payload.
async fn resume_through_proxy(
    server: &TestServer,
    client: &str,
    token: Option<&str>,
) -> (WebSocketStream<TcpStream>, Value) {
    resume_from(PROXY, server.addr, Some(client), token).await
}

/// Someone new whom `client` reached through the proxy, dropped once
/// welcomed: their id and token.
async fn drop_through_proxy(server: &TestServer, client: &str) -> (Value, String) {
    let (ws, welcome) = resume_through_proxy(server, client, None).await;
    drop(ws);
    // Gone as far as the server knows: away, or let go.
    server.wait_for_connections(0).await;
    let token = welcome["token"].as_str().unwrap().to_owned();
    (welcome["id"].clone(), token)
}

#[tokio::test]
async fn behind_a_trusted_proxy_addresses_in_one_ipv6_64_share_the_per_address_cap() {
    let server = server("127.0.0.1", 1).await;
    let (first, _a) = handshake(&server, PROXY, &forwarded_for("2001:db8::1")).await;
    assert_eq!(first, 101);
    for same_64 in ["2001:db8::2", "2001:db8:0:0:ffff:ffff:ffff:ffff"] {
        let (status, _) = handshake(&server, PROXY, &forwarded_for(same_64)).await;
        assert_eq!(status, 429, "{same_64}");
    }
    let (next_64, _b) = handshake(&server, PROXY, &forwarded_for("2001:db8:0:1::1")).await;
    assert_eq!(next_64, 101);
    // An IPv4 client the proxy wrote as IPv4-mapped is that IPv4 client.
    let (v4, _c) = handshake(&server, PROXY, &forwarded_for("192.0.2.1")).await;
    assert_eq!(v4, 101);
    let (mapped, _) = handshake(&server, PROXY, &forwarded_for("::ffff:192.0.2.1")).await;
    assert_eq!(mapped, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_rates_count_each_forwarded_client_by_its_64() {
    // Refilled one a second: nothing comes back within the test.
    let server = TestServer::builder()
        .http(HttpConfig {
            trusted_proxies: TrustedProxies::parse("127.0.0.1").unwrap(),
            request_rate_burst: 4,
            request_rate_per_sec: 1,
            handshake_rate_burst: 1,
            handshake_rate_per_sec: 1,
            ..unlimited_http()
        })
        .start()
        .await;
    let (first, _a) = handshake(&server, PROXY, &forwarded_for("2001:db8::1")).await;
    let (second, _) = handshake(&server, PROXY, &forwarded_for("2001:db8::2")).await;
    assert_eq!((first, second), (101, 429), "one handshake for the /64");
    let (other_64, _b) = handshake(&server, PROXY, &forwarded_for("2001:db8:0:1::1")).await;
    assert_eq!(other_64, 101, "another /64 has its own");

    // Two requests of the /64's four are spent: two more, then 429, on a
    // proxy connection that stays open for its other clients.
    let mut proxy = connect_from(PROXY, server.addr).await;
    for (client, expected) in [
        ("2001:db8::3", 200),
        ("2001:db8::4", 200),
        ("2001:db8::5", 429),
        ("2001:db8:0:1::2", 200),
        ("192.0.2.1", 200),
        ("2001:db8::6", 429),
    ] {
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {client}\r\n\r\n"
        );
        let (head, _) = ask(&mut proxy, &request).await;
        assert_eq!(status(&head), expected, "{client}: {head}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_64_keeps_only_its_share_of_people_away() {
    let server = server("127.0.0.1", 256).await;
    let mut dropped = Vec::new();
    for host in 0..=AWAY_PER_ADDRESS {
        dropped.push(drop_through_proxy(&server, &format!("2001:db8::{host:x}")).await);
    }
    let elsewhere = drop_through_proxy(&server, "2001:db8:0:1::1").await;

    // The last one of the /64 was let go at once: their token makes
    // someone new. The others, and the other /64's, are the same people.
    let (last_id, last_token) = dropped.pop().unwrap();
    let (_ws, again) = resume_through_proxy(&server, "2001:db8::1", Some(&last_token)).await;
    assert_ne!(again["id"], last_id);
    for (id, token) in [dropped.swap_remove(0), elsewhere] {
        let (_ws, again) = resume_through_proxy(&server, "192.0.2.1", Some(&token)).await;
        assert_eq!(again["id"], id);
    }
}
