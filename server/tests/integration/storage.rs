//! Messages are durable: stored before anyone hears of them, kept across
//! restarts and crashes, stored once per `client_id`; a failing store is
//! told to the sender and nothing is acked. Each test runs on SQLite and on
//! PostgreSQL (`PARLEY_TEST_POSTGRES_URL`, which CI always sets).

use std::{process::Stdio, time::Duration};

use server::store::Store;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::support::{on_both_stores, Client, TestServer, WAIT};

async fn server_on(url: &str) -> TestServer {
    TestServer::builder().database_url(url).start().await
}

/// Sends a message with an id and returns its ack's payload.
async fn say_acked(client: &mut Client, text: &str, client_id: &str) -> serde_json::Value {
    client.say_with_id(text, client_id).await;
    let ack = client.next_of("ack").await;
    assert_eq!(ack["payload"]["client_id"], client_id, "{ack}");
    ack["payload"].clone()
}

on_both_stores!(a_message_is_stored_before_it_is_acked_or_relayed);
async fn a_message_is_stored_before_it_is_acked_or_relayed(url: String) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;

    let ack = say_acked(&mut alice, "kept", "m-1").await;
    // The moment the ack is here, the message is in the store.
    let stored = server.store.after("general", 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].id, stored[0].text.as_str()),
        (ack["id"].as_u64().unwrap(), "kept")
    );
    assert_eq!(stored[0].sent_at, ack["sent_at"].as_str().unwrap());
    let relayed = bob.expect_message("Anonymous", "kept").await;
    assert_eq!(relayed["id"], ack["id"]);
}

on_both_stores!(after_a_restart_the_history_is_intact_and_ids_continue);
async fn after_a_restart_the_history_is_intact_and_ids_continue(url: String) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            say_acked(&mut alice, &format!("before {i}"), &format!("b{i}")).await["id"]
                .as_u64()
                .unwrap(),
        );
    }
    drop(alice);
    server.shutdown().await;

    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let after = say_acked(&mut alice, "after", "a0").await["id"]
        .as_u64()
        .unwrap();
    assert!(
        after > *ids.last().unwrap(),
        "ids continue: {ids:?} then {after}"
    );
    let texts: Vec<_> = server
        .store
        .latest("general", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|message| message.text)
        .collect();
    assert_eq!(texts, ["before 0", "before 1", "before 2", "after"]);
}

on_both_stores!(the_same_client_id_sent_twice_is_stored_once);
async fn the_same_client_id_sent_twice_is_stored_once(url: String) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let first = say_acked(&mut alice, "once", "dup-1").await;
    let again = say_acked(&mut alice, "once", "dup-1").await;
    assert_eq!(first, again);
    assert_eq!(server.store.after("general", 0, 10).await.unwrap().len(), 1);
}

on_both_stores!(a_failing_store_is_told_to_the_sender_and_nothing_is_acked_or_relayed);
async fn a_failing_store_is_told_to_the_sender_and_nothing_is_acked_or_relayed(url: String) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;

    server.store.close().await;
    alice.say_with_id("lost?", "f-1").await;
    let error = alice.next_json().await;
    assert_eq!(error["type"], "error", "no ack: {error}");
    assert_eq!(error["payload"]["code"], "unavailable");
    assert_eq!(error["payload"]["client_id"], "f-1");
    // The server keeps serving: typing still reaches bob, and it is the
    // first thing he gets (a relayed message would have been queued first).
    alice
        .send_json(serde_json::json!({"type": "typing", "payload": true}))
        .await;
    assert_eq!(bob.next_json().await["type"], "typing");
}

on_both_stores!(a_message_acked_just_before_a_crash_survives_it);
async fn a_message_acked_just_before_a_crash_survives_it(url: String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--log",
            "info",
            "--database-url",
            &url,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, addr)) = line.split_once("listening on http://") {
                return addr.trim().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens in time");

    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let mut alice = Client::welcomed(socket).await;
    let ack = say_acked(&mut alice, "survives", "k-1").await;
    child.start_kill().unwrap();
    tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("killed in time")
        .unwrap();

    let store = Store::open(&url).await.unwrap();
    let stored = store.after("general", 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, ack["id"].as_u64().unwrap());
}

on_both_stores!(with_every_read_taken_pages_and_history_are_refused_and_messages_still_stored);
async fn with_every_read_taken_pages_and_history_are_refused_and_messages_still_stored(
    url: String,
) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;
    // As if a flood of page loads and `history` frames held them all.
    let held = server
        .store
        .reads()
        .acquire_many(server::store::MAX_READS as u32)
        .await
        .unwrap();

    let (status, _) = crate::http::get(&server.url("/")).await;
    assert_eq!(status, 503, "the page says to come back");
    alice
        .send_json(serde_json::json!({"type": "history", "payload": {"before": 100}}))
        .await;
    alice.expect_error("unavailable").await;
    // Writing has its own connection: reads never keep a message out.
    let ack = say_acked(&mut alice, "still stored", "w-1").await;
    let relayed = bob.expect_message("Anonymous", "still stored").await;
    assert_eq!(relayed["id"], ack["id"]);

    drop(held);
    let (status, _) = crate::http::get(&server.url("/")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_wait_for_the_store_is_measured_apart_from_the_fan_out() {
    let server = TestServer::builder().metrics().start().await;
    let mut alice = server.client().await;
    for i in 0..3 {
        say_acked(&mut alice, "timed", &format!("t-{i}")).await;
    }
    let (_, metrics) = crate::http::get(&server.metrics_url("/metrics")).await;
    assert!(crate::http::sample(&metrics, "parley_commit_wait_seconds_count") >= 3.0);
    assert!(crate::http::sample(&metrics, "parley_commit_seconds_count") >= 1.0);
}
