//! Reconnecting without loss: a client that comes back with its resume
//! token is the same person, gets exactly what it missed from the store,
//! and pages back through older history. Store-dependent tests run on
//! SQLite and on PostgreSQL.

use serde_json::{json, Value};

use server::identity::{digest, TokenKey, TOKEN_HEX_LEN};

use crate::{
    http::{get, sample},
    support::{on_both_stores, unlimited_chat, Client, TestServer, WAIT},
};

/// Sends a message with an id and returns its ack's payload.
async fn say_acked(client: &mut Client, text: &str, client_id: &str) -> Value {
    client.say_with_id(text, client_id).await;
    let ack = client.next_of("ack").await;
    assert_eq!(ack["payload"]["client_id"], client_id, "{ack}");
    ack["payload"].clone()
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message["text"].as_str().unwrap())
        .collect()
}

fn ids(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|message| message["id"].as_u64().unwrap())
        .collect()
}

async fn server_on(url: &str) -> TestServer {
    TestServer::builder()
        .chat(unlimited_chat())
        .database_url(url)
        .start()
        .await
}

on_both_stores!(a_client_that_missed_n_messages_gets_exactly_those_in_order_on_resume);
async fn a_client_that_missed_n_messages_gets_exactly_those_in_order_on_resume(url: String) {
    // With its metrics served, to count what it caught up.
    let server = TestServer::builder()
        .chat(unlimited_chat())
        .database_url(&url)
        .metrics()
        .start()
        .await;
    let mut bob = server.client().await;
    let seen = say_acked(&mut bob, "seen by alice", "s-0").await;
    let (mut alice, caught_up) = server.resume(None, None).await;
    assert!(caught_up.is_empty(), "no `after`, no backlog");
    let token = alice.token();
    alice.set_nickname("alice").await;
    bob.next_of("presence").await;
    drop(alice);

    let mut sent = Vec::new();
    for i in 0..7 {
        sent.push(say_acked(&mut bob, &format!("missed {i}"), &format!("m-{i}")).await);
    }
    let (mut alice, missed) = server
        .resume(Some(&token), Some(seen["id"].as_u64().unwrap()))
        .await;
    assert_eq!(
        texts(&missed),
        (0..7).map(|i| format!("missed {i}")).collect::<Vec<_>>()
    );
    assert_eq!(ids(&missed), ids(&sent), "the same ids, in order");
    assert_eq!(alice.welcome["payload"]["nickname"], "alice");

    // Then live traffic, and nothing from the backlog again.
    bob.say("live").await;
    alice.expect_message("Anonymous", "live").await;

    let (_, metrics) = get(&server.metrics_url("/metrics")).await;
    assert!(sample(&metrics, "parley_caught_up_messages_total") >= 7.0);
    assert!(sample(&metrics, r#"parley_resumes_total{outcome="same"}"#) >= 1.0);
}

on_both_stores!(history_pages_go_back_by_id_to_the_beginning);
async fn history_pages_go_back_by_id_to_the_beginning(url: String) {
    let server = server_on(&url).await;
    let mut alice = server.client().await;
    let mut last = 0;
    for i in 0..120 {
        last = say_acked(&mut alice, &format!("m{i}"), &format!("h-{i}")).await["id"]
            .as_u64()
            .unwrap();
    }
    let mut before = last + 1;
    let mut pages = Vec::new();
    loop {
        alice
            .send_json(json!({"type": "history", "payload": {"before": before}}))
            .await;
        let page = alice.next_of("history").await["payload"].clone();
        let messages = page["messages"].as_array().unwrap().clone();
        pages.push(messages.len());
        if let Some(oldest) = messages.first() {
            before = oldest["id"].as_u64().unwrap();
        }
        let page_ids = ids(&messages);
        assert!(page_ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
        if page["beginning"] == true {
            assert_eq!(messages.first().unwrap()["text"], "m0");
            break;
        }
    }
    assert_eq!(pages, [50, 50, 20]);
}

#[tokio::test]
async fn a_dropped_person_keeps_their_id_and_nickname_reserved_for_their_token() {
    let server = TestServer::start_unlimited().await;
    let mut bob = server.client().await;
    let (mut alice, _) = server.resume(None, None).await;
    let (id, token) = (alice.id, alice.token());
    alice.set_nickname("Alice").await;
    bob.next_of("presence").await;
    drop(alice);
    // Her connection is gone as far as the server knows.
    server.wait_for_clients(1).await;

    // While alice is away her name stays hers, and she is still listed.
    bob.set_nickname("ALICE").await;
    bob.expect_error("nickname_taken").await;
    let carol = server.client().await;
    let people = carol.welcome["payload"]["people"].as_array().unwrap();
    assert!(people.contains(&json!({"id": id, "nickname": "Alice"})));

    let (alice, _) = server.resume(Some(&token), None).await;
    assert_eq!(alice.id, id);
    assert_eq!(alice.welcome["payload"]["nickname"], "Alice");
    assert_eq!(alice.token(), token, "the same token keeps working");
}

#[tokio::test]
async fn a_person_who_stays_away_past_the_grace_period_leaves() {
    let mut chat = unlimited_chat();
    chat.resume_grace_secs = 1;
    let server = TestServer::builder().chat(chat).start().await;
    let mut watcher = server.client().await;
    let (alice, _) = server.resume(None, None).await;
    let id = alice.id;
    let token = alice.token();
    drop(alice);
    loop {
        let presence = watcher.next_of("presence").await;
        if presence["payload"]["left"]
            .as_array()
            .unwrap()
            .iter()
            .any(|person| person["id"] == id)
        {
            break;
        }
    }
    let (again, _) = server.resume(Some(&token), None).await;
    assert_ne!(again.id, id, "someone new: she left");
}

#[tokio::test]
async fn a_token_is_only_ever_sent_to_its_own_connection() {
    let server = TestServer::start_unlimited().await;
    let mut bob = server.client().await;
    let (mut alice, _) = server.resume(None, None).await;
    let token = alice.token();
    alice.set_nickname("alice").await;
    alice
        .send_json(json!({"type": "typing", "payload": true}))
        .await;
    alice.say("hello").await;
    drop(alice);
    let (mut alice, _) = server.resume(Some(&token), None).await;
    alice.say("again").await;
    // Everything bob heard of alice: presence, typing, messages.
    let mut heard = Vec::new();
    loop {
        let frame = bob.next_frame().await;
        heard.push(frame.to_string());
        if frame["payload"]["text"] == "again" {
            break;
        }
    }
    assert!(heard.len() >= 3, "{heard:?}");
    assert!(
        !heard.iter().any(|frame| frame.contains(&token)),
        "{heard:?}"
    );
    let carol = server.client().await;
    assert!(!carol.welcome.to_string().contains(&token));
}

#[tokio::test]
async fn a_token_the_server_did_not_issue_makes_someone_new_with_a_new_token() {
    let server = TestServer::start_unlimited().await;
    // Well formed, but made up (or signed by another database's secret).
    let made_up = TokenKey::new(&[1; 32]).issue();
    let (alice, _) = server.resume(Some(made_up.as_str()), None).await;
    assert_eq!(alice.welcome["payload"]["nickname"], "Anonymous");
    assert_ne!(alice.token(), made_up.as_str(), "never adopted");
    assert_eq!(alice.token().len(), TOKEN_HEX_LEN);
    let (bob, _) = server.resume(Some("not a token"), None).await;
    assert_eq!(bob.token().len(), TOKEN_HEX_LEN);
    assert_ne!(bob.id, alice.id);
    let alice_id = alice.id;
    // The token alice got instead is one the server takes back.
    let token = alice.token();
    drop(alice);
    let (again, _) = server.resume(Some(&token), None).await;
    assert_eq!(again.id, alice_id);
}

on_both_stores!(after_a_restart_a_token_brings_back_its_nickname);
async fn after_a_restart_a_token_brings_back_its_nickname(url: String) {
    let server = server_on(&url).await;
    let (mut alice, _) = server.resume(None, None).await;
    let token = alice.token();
    alice.set_nickname("alice").await;
    // Saved beside the rename, without holding it up: wait until it is.
    let digest = digest(&token);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.store.session(&digest).await.unwrap().as_deref() != Some("alice") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nickname is saved"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(alice);
    server.shutdown().await;

    let server = server_on(&url).await;
    let mut bob = server.client().await;
    let (alice, _) = server.resume(Some(&token), None).await;
    assert_eq!(alice.welcome["payload"]["nickname"], "alice");
    assert_eq!(alice.token(), token);
    // Hers again: nobody else can take it now.
    bob.set_nickname("ALICE").await;
    bob.expect_error("nickname_taken").await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_token_closes_the_first_with_4001() {
    let server = TestServer::start_unlimited().await;
    let (mut first, _) = server.resume(None, None).await;
    let (second, _) = server.resume(Some(&first.token()), None).await;
    assert_eq!(second.id, first.id);
    let close = first.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
}

#[tokio::test]
async fn resume_is_only_understood_as_the_first_frame() {
    let server = TestServer::start_unlimited().await;
    let mut alice = server.client().await;
    alice
        .send_json(json!({"type": "resume", "payload": {"token": null, "after": 0}}))
        .await;
    alice.expect_error("out_of_order").await;

    // On /ws?resume, any other first frame makes someone new, and counts.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?resume", server.addr))
            .await
            .unwrap();
    use futures_util::SinkExt;
    let hello = json!({"type": "message", "payload": {"text": "hi", "client_id": "f-1"}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            hello.to_string(),
        ))
        .await
        .unwrap();
    let mut bob = Client::welcomed(socket).await;
    assert_eq!(bob.next_of("ack").await["payload"]["client_id"], "f-1");
    alice.expect_message("Anonymous", "hi").await;
}
