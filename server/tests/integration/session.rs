//! What the chat means to its users: welcome, ids and acks, presence,
//! unique nicknames, typing and rate limits, through real connections.

use serde_json::{json, Value};
use server::{
    client_id::ClientId,
    config::{ChatConfig, ConnectionConfig},
    session::TypingThrottle,
};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;

use crate::support::{Client, TestServer};

/// Reads presence frames until one mentions `id` in `list` (`joined`,
/// `left` or `renamed`), and returns that entry.
async fn presence_entry(client: &mut Client, list: &str, id: u64) -> Value {
    loop {
        let frame = client.next_of("presence").await;
        let entries = frame["payload"][list].as_array().expect("a list");
        if let Some(entry) = entries.iter().find(|entry| entry["id"] == id) {
            return entry.clone();
        }
    }
}

#[tokio::test]
async fn every_connection_is_welcomed_with_its_id_and_who_is_online() {
    let server = TestServer::start().await;
    let alice = server.client().await;
    assert_eq!(alice.welcome["payload"]["online"], 1);
    assert_eq!(
        alice.welcome["payload"]["people"],
        json!([{"id": alice.id, "nickname": "Anonymous"}])
    );
    let bob = server.client().await;
    assert_ne!(alice.id, bob.id);
    assert_eq!(bob.welcome["payload"]["online"], 2);
    assert_eq!(bob.welcome["payload"]["nickname"], "Anonymous");
    let listed: Vec<_> = bob.welcome["payload"]["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|person| person["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [alice.id, bob.id]);
}

#[tokio::test]
async fn a_message_with_a_client_id_is_acked_to_its_sender_and_relayed_once() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;

    alice
        .say_with_id("hello", "4f9c2a10-0000-4000-8000-000000000001")
        .await;
    let relayed = bob.expect_message("Anonymous", "hello").await;
    assert_eq!(relayed["from"], alice.id);
    assert!(relayed.get("client_id").is_none(), "never shown to others");
    let ack = alice.next_json().await;
    assert_eq!(
        ack,
        json!({"type": "ack", "payload": {"client_id": "4f9c2a10-0000-4000-8000-000000000001",
            "id": relayed["id"], "sent_at": relayed["sent_at"]}})
    );

    // Sent again (its ack was lost, say): acked again, not relayed again.
    alice
        .say_with_id("hello", "4f9c2a10-0000-4000-8000-000000000001")
        .await;
    assert_eq!(alice.next_json().await, ack);
    alice.say("after").await;
    let after = bob.expect_message("Anonymous", "after").await;
    assert!(after["id"].as_u64() > relayed["id"].as_u64());
}

#[tokio::test]
async fn a_refused_message_names_its_client_id() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    alice.say_with_id("   ", "c-1").await;
    let error = alice.next_json().await;
    assert_eq!(error["payload"]["code"], "invalid_message");
    assert_eq!(error["payload"]["client_id"], "c-1");
    alice.say_with_id("hi", "not a valid id").await;
    alice.expect_error("invalid_payload").await;
}

#[tokio::test]
async fn joins_renames_and_leaves_are_announced_to_everyone() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    let joined = presence_entry(&mut alice, "joined", bob.id).await;
    assert_eq!(joined["nickname"], "Anonymous");

    bob.set_nickname("bob").await;
    let renamed = presence_entry(&mut alice, "renamed", bob.id).await;
    assert_eq!(
        renamed,
        json!({"id": bob.id, "previous": "Anonymous", "nickname": "bob"})
    );
    // bob hears of his own rename: it is how a page knows it was accepted.
    let bob_id = bob.id;
    presence_entry(&mut bob, "renamed", bob_id).await;

    bob.socket.close(None).await.unwrap();
    let left = presence_entry(&mut alice, "left", bob_id).await;
    assert_eq!(left["nickname"], "bob");
}

#[tokio::test]
async fn a_nickname_in_use_is_refused_whatever_its_case_or_width() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    // Once bob's join is announced, a rename is announced as a rename.
    presence_entry(&mut alice, "joined", bob.id).await;

    alice.set_nickname("Alice").await;
    let alice_id = alice.id;
    presence_entry(&mut alice, "renamed", alice_id).await;
    for taken in ["Alice", "ALICE", "ａｌｉｃｅ", "Ａlice"] {
        bob.set_nickname(taken).await;
        bob.expect_error("nickname_taken").await;
    }
    bob.say("still anonymous").await;
    alice.expect_message("Anonymous", "still anonymous").await;

    // Everyone may be Anonymous at once.
    alice.set_nickname("anonymous").await;
    alice.say("me too").await;
    bob.expect_message("anonymous", "me too").await;
}

#[tokio::test]
async fn nicknames_that_hide_or_turn_text_are_refused() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    for bad in ["ad\u{200B}min", "\u{202E}nimda", "\u{3164}", "a\u{2066}b"] {
        alice.set_nickname(bad).await;
        alice.expect_error("invalid_nickname").await;
    }
}

#[tokio::test]
async fn typing_reaches_the_others_once_per_interval_and_a_message_follows_it() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    server.wait_for_clients(2).await;

    for _ in 0..5 {
        alice
            .send_json(json!({"type": "typing", "payload": true}))
            .await;
    }
    alice.say("typed").await;
    assert_eq!(
        bob.next_json().await,
        json!({"type": "typing", "payload": {"room": "general", "id": alice.id,
            "nickname": "Anonymous", "active": true}})
    );
    bob.expect_message("Anonymous", "typed").await;

    alice
        .send_json(json!({"type": "typing", "payload": true}))
        .await;
    alice
        .send_json(json!({"type": "typing", "payload": false}))
        .await;
    assert_eq!(bob.next_json().await["payload"]["active"], true);
    assert_eq!(bob.next_json().await["payload"]["active"], false);
    // alice never hears her own typing: her next frame is bob's message.
    bob.say("ok").await;
    alice.expect_message("Anonymous", "ok").await;
}

#[tokio::test]
async fn alternating_typing_and_stopped_reaches_the_room_at_the_typing_rate() {
    let server = TestServer::start().await;
    let mut flooder = server.client().await;
    let mut reader = server.client().await;
    let mut other = server.client().await;
    server.wait_for_clients(3).await;

    let started = std::time::Instant::now();
    for i in 0..1_000 {
        flooder
            .send_json(json!({"type": "typing", "payload": i % 2 == 0}))
            .await;
    }
    // Frames are handled in order: once this one is answered, every typing
    // frame before it has been relayed or dropped. Typing has a budget of
    // its own: the message is not refused.
    flooder.say_with_id("after the flood", "f-1").await;
    assert_eq!(flooder.next_json().await["type"], "ack");
    other.say("done").await;

    let mut typing = Vec::new();
    loop {
        let frame = reader.next_json().await;
        match frame["type"].as_str() {
            Some("typing") => typing.push(frame["payload"]["active"].clone()),
            Some("message") if frame["payload"]["text"] == "after the flood" => {}
            Some("message") => {
                assert_eq!(frame["payload"]["text"], "done", "{frame}");
                break;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    // A burst of "typing" (each with its "stopped"), then one a second.
    let allowed = 2 * (TypingThrottle::BURST as u64 + started.elapsed().as_secs() + 1);
    assert!(
        !typing.is_empty() && typing.len() as u64 <= allowed,
        "{typing:?}"
    );
    assert_eq!(typing[0], json!(true));
}

#[tokio::test]
async fn a_flood_is_cut_to_the_burst_and_the_excess_refused() {
    let server = TestServer::start().await;
    let mut flooder = server.client().await;
    let mut reader = server.client().await;
    let mut other = server.client().await;
    server.wait_for_clients(3).await;

    let burst = ChatConfig::default().rate_limit_burst as usize;
    for i in 0..burst + 10 {
        flooder
            .say_with_id(&format!("flood {i}"), &format!("f{i}"))
            .await;
    }
    let mut refused = 0;
    while refused < 10 {
        let frame = flooder.next_json().await;
        match frame["type"].as_str() {
            Some("ack") => {}
            Some("error") => {
                assert_eq!(frame["payload"]["code"], "rate_limited", "{frame}");
                refused += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    other.say("done").await;
    for i in 0..burst {
        reader
            .expect_message("Anonymous", &format!("flood {i}"))
            .await;
    }
    reader.expect_message("Anonymous", "done").await;
}

#[tokio::test]
async fn a_flooder_cannot_push_a_slow_reader_over_its_budget() {
    let server = TestServer::start_configured(
        ConnectionConfig {
            client_buffer_bytes: 256 * 1024,
            ..ConnectionConfig::default()
        },
        ChatConfig::default(),
    )
    .await;
    // A reader that does not read while the flood lasts, with a small window.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (slow, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws", server.addr),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut slow = Client::welcomed(slow).await;
    let mut flooder = server.client().await;
    server.wait_for_clients(2).await;

    // 1,000 frames of 8 KB: 8 MB, far over the reader's budget, had they
    // all been relayed.
    let text = "🦀".repeat(2000);
    for _ in 0..1000 {
        flooder.say(&text).await;
    }
    flooder.expect_error("rate_limited").await;
    assert!(server.hub.contains(ClientId::from(slow.id)), "not evicted");
    let burst = ChatConfig::default().rate_limit_burst;
    for _ in 0..burst {
        slow.expect_message("Anonymous", &text).await;
    }
    flooder.socket.close(None).await.unwrap();
    let left = presence_entry(&mut slow, "left", flooder.id).await;
    assert_eq!(left["id"], flooder.id);
}
