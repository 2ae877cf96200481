//! Rooms: `/r/<name>` pages, and moving between rooms on one connection.

use serde_json::json;

use crate::{http::get, support::Client, support::TestServer};

/// Moves `client` to `room` and reads up to its `welcome` there; returns
/// the `history` page it got first.
async fn switch(client: &mut Client, room: &str) -> serde_json::Value {
    client
        .send_json(json!({"type": "join", "payload": {"room": room}}))
        .await;
    let history = client.next_json().await;
    assert_eq!(history["type"], "history", "{history}");
    assert_eq!(history["payload"]["room"], room);
    let welcome = client.next_json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["payload"]["room"], room);
    assert_eq!(welcome["payload"]["id"], client.id, "the same person");
    history
}

#[tokio::test]
async fn clients_in_different_rooms_only_hear_their_own_room() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    let mut carol = server.client().await;
    assert_eq!(alice.welcome["payload"]["room"], "general");
    switch(&mut carol, "rust").await;
    let mut dave = server.client().await;
    switch(&mut dave, "rust").await;

    alice.say("in general").await;
    dave.say("in rust").await;
    bob.expect_message("Anonymous", "in general").await;
    let heard = carol.expect_message("Anonymous", "in rust").await;
    assert_eq!(heard["room"], "rust");
    alice.say("general again").await;
    dave.say("rust again").await;
    bob.expect_message("Anonymous", "general again").await;
    carol.expect_message("Anonymous", "rust again").await;
}

#[tokio::test]
async fn a_room_shows_its_own_history_when_you_move_to_it_and_on_its_page() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    switch(&mut alice, "rust").await;
    alice.say_with_id("ferris says hi", "r-1").await;
    alice.next_of("ack").await;
    switch(&mut alice, "general").await;
    alice.say_with_id("general chatter", "g-1").await;
    alice.next_of("ack").await;

    let mut bob = server.client().await;
    let history = switch(&mut bob, "rust").await;
    let texts: Vec<_> = history["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["ferris says hi"]);
    assert_eq!(history["payload"]["beginning"], true);

    let (status, page) = get(&server.url("/r/rust")).await;
    assert_eq!(status, 200);
    assert!(page.contains("ferris says hi"), "{page}");
    assert!(!page.contains("general chatter"));
    let (status, page) = get(&server.url("/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("general chatter"));
    assert!(!page.contains("ferris says hi"));
}

#[tokio::test]
async fn a_path_that_is_not_a_room_is_404_with_the_rules() {
    let server = TestServer::start().await;
    let long = format!("/r/{}", "x".repeat(33));
    for path in [
        "/r/Rust",
        "/r/with%20space",
        "/r/a.b",
        "/r/caf%C3%A9",
        &long,
    ] {
        let (status, body) = get(&server.url(path)).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("a-z, 0-9, - and _"), "{path}: {body}");
    }
    let (status, _) = get(&server.url(&format!("/r/{}", "x".repeat(32)))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn general_has_one_address_the_root() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(server.url("/r/general")).send().await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn a_bad_room_name_is_refused_and_the_client_stays_where_it_was() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    for bad in [json!("Rust"), json!(""), json!("a/b"), json!(7)] {
        alice
            .send_json(json!({"type": "join", "payload": {"room": bad}}))
            .await;
        let expected = if bad.is_string() {
            "invalid_room"
        } else {
            "invalid_payload"
        };
        alice.expect_error(expected).await;
    }
    alice.say("still in general").await;
    bob.expect_message("Anonymous", "still in general").await;
}

#[tokio::test]
async fn a_client_resumes_into_the_room_it_names() {
    let server = TestServer::start().await;
    let mut alice = server.client().await;
    switch(&mut alice, "rust").await;
    alice.say_with_id("one", "c-1").await;
    let after = alice.next_of("ack").await["payload"]["id"].as_u64();
    alice.say_with_id("two", "c-2").await;
    alice.next_of("ack").await;

    let (bob, missed) = server.resume_in("rust", None, after).await;
    let texts: Vec<_> = missed.iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, [json!("two")]);
    assert_eq!(bob.welcome["payload"]["room"], "rust");
}
