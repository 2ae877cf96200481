use serde_json::json;

use crate::support::TestServer;

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

#[tokio::test]
async fn messages_from_many_clients_all_arrive_in_order_per_sender() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    for i in 0..200 {
        a.say(&format!("message {i}")).await;
    }
    for i in 0..200 {
        b.expect_message("Anonymous", &format!("message {i}")).await;
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
