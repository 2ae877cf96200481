use serde_json::json;

use crate::support::{on_both_stores, unlimited_chat, TestServer};

#[tokio::test]
async fn a_message_reaches_every_other_client_and_not_its_sender() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    let mut carol = server.client().await;
    server.wait_for_clients(3).await;

    alice.set_nickname("alice").await;
    alice.say("hello").await;

    bob.expect_message("alice", "hello").await;
    carol.expect_message("alice", "hello").await;

    // Had the server echoed "hello" to alice, it would arrive before this.
    bob.say("hi alice").await;
    alice.expect_message("Anonymous", "hi alice").await;
    carol.expect_message("Anonymous", "hi alice").await;
}

#[tokio::test]
async fn the_default_nickname_is_anonymous() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    a.say("who am I?").await;
    b.expect_message("Anonymous", "who am I?").await;
}

#[tokio::test]
async fn nicknames_and_texts_are_trimmed_and_renames_apply_to_later_messages() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    a.set_nickname("  alice  ").await;
    a.say("  first  ").await;
    b.expect_message("alice", "first").await;

    a.set_nickname("alice2").await;
    a.say("second").await;
    b.expect_message("alice2", "second").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_reach_everyone_in_one_id_order_and_in_order_per_sender() {
    const SENDERS: usize = 4;
    const EACH: usize = 100;
    let server = TestServer::start_unlimited().await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(server.client().await);
    }
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(server.client().await);
    }
    server.wait_for_clients(3 + SENDERS).await;

    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(n, mut sender)| {
            tokio::spawn(async move {
                for i in 0..EACH {
                    sender.say(&format!("{n}:{i}")).await;
                }
                sender
            })
        })
        .collect();
    let mut orders = Vec::new();
    for reader in &mut readers {
        let mut ids = Vec::new();
        let mut next_from = [0; SENDERS];
        while ids.len() < SENDERS * EACH {
            let frame = reader.next_json().await;
            assert_eq!(frame["type"], "message", "{frame}");
            let payload = &frame["payload"];
            ids.push(payload["id"].as_u64().unwrap());
            let (n, i) = payload["text"].as_str().unwrap().split_once(':').unwrap();
            let (n, i): (usize, usize) = (n.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next_from[n], "sender {n}'s messages in order");
            next_from[n] += 1;
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
        orders.push(ids);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "everyone saw the same order"
    );
    for task in sending {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn markup_is_relayed_as_plain_text() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    let xss = "<img src=x onerror=alert(1)>";
    a.send_json(json!({"type": "nickname", "payload": "<b>bold</b>"}))
        .await;
    a.say(xss).await;
    b.expect_message("<b>bold</b>", xss).await;
}

on_both_stores!(two_people_may_give_their_messages_the_same_client_id);
async fn two_people_may_give_their_messages_the_same_client_id(url: String) {
    let server = TestServer::builder()
        .chat(unlimited_chat())
        .database_url(&url)
        .start()
        .await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    let mut carol = server.client().await;
    server.wait_for_clients(3).await;

    alice.say_with_id("from alice", "same").await;
    let from_alice = alice.next_of("ack").await;
    bob.say_with_id("from bob", "same").await;
    let from_bob = bob.next_of("ack").await;
    assert_ne!(
        from_alice["payload"]["id"], from_bob["payload"]["id"],
        "bob's message is his own, not a resend of alice's"
    );
    carol.expect_message("Anonymous", "from alice").await;
    carol.expect_message("Anonymous", "from bob").await;

    // Within one person the id still makes resending safe.
    alice.say_with_id("from alice", "same").await;
    assert_eq!(alice.next_of("ack").await, from_alice);
    bob.say("after the resend").await;
    carol.expect_message("Anonymous", "after the resend").await;
}
