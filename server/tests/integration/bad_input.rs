//! Every kind of bad input gets an `error` frame with its own code, and the
//! connection keeps working; only an oversized frame ends a connection, and
//! only that one.

use app::protocol::{MAX_FRAME_BYTES, MESSAGE_MAX_CHARS, NICKNAME_MAX_CHARS};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::support::{Client, TestServer};

/// After an error the sender can still chat, and `peer` sees only that.
async fn still_chatting(sender: &mut Client, peer: &mut Client, text: &str) {
    sender.say(text).await;
    peer.expect_message("Anonymous", text).await;
}

#[tokio::test]
async fn each_malformed_frame_gets_its_own_error_code() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    let cases = [
        ("{not json", "malformed_json"),
        ("", "malformed_json"),
        ("[1,2,3]", "invalid_frame"),
        (r#"{"payload":"no type"}"#, "invalid_frame"),
        (r#"{"type":"shout","payload":"hi"}"#, "unknown_type"),
        (r#"{"type":"message","payload":42}"#, "invalid_payload"),
        (r#"{"type":"message"}"#, "invalid_payload"),
        (
            r#"{"type":"nickname","payload":{"name":"x"}}"#,
            "invalid_payload",
        ),
    ];
    for (i, (text, code)) in cases.into_iter().enumerate() {
        a.send_text(text).await;
        a.expect_error(code).await;
        still_chatting(&mut a, &mut b, &format!("still here {i}")).await;
    }
}

#[tokio::test]
async fn a_binary_frame_is_refused_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    a.socket
        .send(Message::binary(
            b"{\"type\":\"message\",\"payload\":\"x\"}".to_vec(),
        ))
        .await
        .unwrap();
    a.expect_error("binary_not_supported").await;
    still_chatting(&mut a, &mut b, "after binary").await;
}

#[tokio::test]
async fn an_invalid_nickname_is_refused_and_the_old_one_stays() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    a.set_nickname("alice").await;
    let too_long = "n".repeat(NICKNAME_MAX_CHARS + 1);
    for bad in ["", "   ", too_long.as_str(), "new\nline", "nul\u{0}"] {
        a.set_nickname(bad).await;
        a.expect_error("invalid_nickname").await;
    }
    a.say("still alice").await;
    b.expect_message("alice", "still alice").await;

    let longest = "n".repeat(NICKNAME_MAX_CHARS);
    a.set_nickname(&longest).await;
    a.say("longest").await;
    b.expect_message(&longest, "longest").await;
}

#[tokio::test]
async fn an_invalid_message_is_refused_and_nothing_is_relayed() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(2).await;

    let too_long = "m".repeat(MESSAGE_MAX_CHARS + 1);
    for bad in ["", " \n\t ", too_long.as_str()] {
        a.say(bad).await;
        a.expect_error("invalid_message").await;
    }
    // b's next frame is the valid message: none of the bad ones got through.
    let longest = "m".repeat(MESSAGE_MAX_CHARS);
    still_chatting(&mut a, &mut b, &longest).await;
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_only_that_connection_with_1009() {
    let server = TestServer::start().await;
    let mut big = server.client().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.wait_for_clients(3).await;

    let payload = "x".repeat(MAX_FRAME_BYTES);
    big.send_json(json!({"type": "message", "payload": payload}))
        .await;
    let close = big.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Size);
    server.wait_for_clients(2).await;
    server.wait_for_tasks(2).await;

    still_chatting(&mut a, &mut b, "unaffected").await;
}

#[tokio::test]
async fn a_frame_just_under_the_limit_is_judged_on_its_content() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    server.wait_for_clients(1).await;

    // 64 KiB of JSON is far over the 2,000 character limit: refused, not closed.
    let filler = "y".repeat(MAX_FRAME_BYTES - 40);
    a.say(&filler).await;
    a.expect_error("invalid_message").await;
    a.say("ok").await;
    assert_eq!(server.hub.len(), 1);
}
