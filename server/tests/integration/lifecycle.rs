//! Clients come and go in every way; the hub forgets them and everyone else
//! keeps chatting. Shutdown says goodbye.

use std::time::Duration;

use futures_util::StreamExt;
use server::{client_id::ClientId, config::ConnectionConfig};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use serde_json::Value;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{connection_config, sqlite_url, unlimited_chat, TestServer};

#[tokio::test]
async fn a_client_that_closes_is_removed_from_the_hub() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut leaving = server.client().await;
    server.wait_for_clients(3).await;

    leaving.socket.close(None).await.unwrap();
    server.wait_for_clients(2).await;
    server.wait_for_tasks(2).await;

    a.say("after close").await;
    b.expect_message("Anonymous", "after close").await;
}

#[tokio::test]
async fn a_client_whose_tcp_connection_drops_is_removed_from_the_hub() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let dropped = server.client().await;
    server.wait_for_clients(3).await;

    // No close frame: just the TCP connection going away.
    let mut tcp = dropped.socket.into_inner();
    match &mut tcp {
        tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream.shutdown().await.unwrap(),
        _ => unreachable!("tests use plain TCP"),
    }
    drop(tcp);
    server.wait_for_clients(2).await;
    server.wait_for_tasks(2).await;

    a.say("after drop").await;
    b.expect_message("Anonymous", "after drop").await;
}

#[tokio::test]
async fn many_clients_coming_and_going_leave_nothing_behind() {
    let server = TestServer::start().await;
    let mut stayer = server.client().await;
    let mut watcher = server.client().await;
    for round in 0..10 {
        let mut visitors = Vec::new();
        for _ in 0..20 {
            visitors.push(server.client().await);
        }
        server.wait_for_clients(22).await;
        stayer.say(&format!("round {round}")).await;
        for visitor in &mut visitors {
            visitor
                .expect_message("Anonymous", &format!("round {round}"))
                .await;
        }
        watcher
            .expect_message("Anonymous", &format!("round {round}"))
            .await;
        drop(visitors);
        server.wait_for_clients(2).await;
        server.wait_for_tasks(2).await;
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_two_ping_intervals() {
    let server = TestServer::start_with(ConnectionConfig {
        ping_interval_secs: 1,
        ..connection_config()
    })
    .await;
    // tungstenite answers pings only while the socket is being read: this
    // client never reads, so it looks dead to the server.
    let silent = server.client().await;
    let mut responsive = server.client().await;
    server.wait_for_clients(2).await;

    let reader = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout_at(deadline, responsive.socket.next()).await
        {}
        responsive
    });
    server.wait_for_clients(1).await;
    let responsive = reader.await.unwrap();
    assert!(
        server.hub.contains(ClientId::from(responsive.id)),
        "the responsive client survived every ping"
    );
    assert!(!server.hub.contains(ClientId::from(silent.id)));
    drop(silent);
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_going_away() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    let (close_a, close_b, ()) =
        tokio::join!(a.expect_close(), b.expect_close(), server.shutdown());
    assert_eq!(close_a.unwrap().code, CloseCode::Away);
    assert_eq!(close_b.unwrap().code, CloseCode::Away);
    let _ = a.socket.close(None).await;
}

#[tokio::test]
async fn shutdown_stores_and_acks_what_it_took_before_saying_goodbye() {
    let data = TempDir::new().unwrap();
    let server = TestServer::builder()
        .chat(unlimited_chat())
        .database_url(&sqlite_url(&data))
        .start()
        .await;
    let store = server.store.clone();
    let mut alice = server.client().await;
    for i in 0..2_000 {
        alice.say_with_id(&format!("m{i}"), &format!("s-{i}")).await;
    }
    // The server is taking them: most are still on their way in.
    assert_eq!(alice.next_json().await["type"], "ack");
    let answers = async {
        let mut acks = 1;
        loop {
            match alice.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == "ack" {
                        acks += 1;
                    }
                }
                Some(Ok(Message::Close(frame))) => return (acks, frame),
                Some(Ok(_)) => {}
                other => panic!("expected frames then a close, got {other:?}"),
            }
        }
    };
    let ((acks, close), ()) = tokio::join!(answers, server.shutdown());
    assert_eq!(close.unwrap().code, CloseCode::Away);
    let stored = store.tail(0, 10_000).await.unwrap().len();
    assert_eq!(
        acks, stored,
        "every message stored was acked before the goodbye, and only those"
    );
}
