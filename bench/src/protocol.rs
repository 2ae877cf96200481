//! The few frames of wire protocol v1 (`PROTOCOL.md`) the generator uses.
//!
//! They are defined here rather than taken from the `app` crate so that the
//! generator does not depend on Leptos and makes no assumption beyond the
//! written protocol: it must be able to load any v1 server, not only Parley.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest message text a v1 server relays, in characters.
pub const MESSAGE_MAX_CHARS: usize = 2_000;

/// Largest WebSocket message a v1 server sends or accepts.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame the generator sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ClientFrame<'a> {
    /// `{"type":"nickname","payload":"c7"}`
    Nickname(&'a str),
    /// `{"type":"message","payload":"..."}`
    Message(&'a str),
    /// `{"type":"message","payload":{"text":"...","client_id":"..."}}`: the
    /// sender gets an `ack` (or an `error` naming the `client_id`).
    #[serde(rename = "message")]
    TrackedMessage { text: &'a str, client_id: &'a str },
    /// `{"type":"resume","payload":{"token":null,"after":null,"room":"r"}}`:
    /// the first frame on `/ws?resume`; with no token nor id, it only puts a
    /// new client in `room`.
    Resume {
        token: Option<&'a str>,
        after: Option<u64>,
        room: Option<&'a str>,
    },
}

impl ClientFrame<'_> {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a string payload always serializes")
    }
}

/// A frame from the server, reduced to what the generator acts on.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// A relayed chat message: its text, the id the server gave it, and the
    /// room it was sent in (absent from servers before rooms).
    Message {
        text: Cow<'a, str>,
        id: Option<u64>,
        room: Option<Cow<'a, str>>,
    },
    /// The server took the client in, in `room` (absent from servers before
    /// rooms).
    Welcome { room: Option<Cow<'a, str>> },
    /// Our message with this `client_id` was accepted (stored) as `id`.
    Ack { client_id: Cow<'a, str>, id: u64 },
    /// The server refused something we sent; `client_id` names the message
    /// when the refused frame was a message with one.
    Error {
        code: Cow<'a, str>,
        client_id: Option<Cow<'a, str>>,
    },
    /// A frame type from a later protocol version; clients ignore those.
    Unknown,
}

/// The `{type, payload}` envelope. The payload is kept raw until the type is
/// known, so an unknown type with any payload is not an error.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// The payload of a `message` frame. `nickname` and any fields added by later
/// versions are skipped.
#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(borrow, default)]
    room: Option<Cow<'a, str>>,
}

/// The payload of a `welcome` frame, reduced to its room.
#[derive(Deserialize)]
struct Welcome<'a> {
    #[serde(borrow, default)]
    room: Option<Cow<'a, str>>,
}

/// The payload of an `ack` frame (`sent_at` is skipped).
#[derive(Deserialize)]
struct Ack<'a> {
    #[serde(borrow)]
    client_id: Cow<'a, str>,
    id: u64,
}

/// The payload of an `error` frame (`message` is for people, skipped).
#[derive(Deserialize)]
struct Refusal<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
}

impl<'a> ServerFrame<'a> {
    /// Parses one text frame, borrowing the message text where it has no
    /// escapes (always, for the generator's own texts).
    pub fn decode(frame: &'a str) -> Result<Self, serde_json::Error> {
        let envelope: Envelope<'a> = serde_json::from_str(frame)?;
        let payload = envelope.payload.map_or("null", RawValue::get);
        Ok(match &*envelope.kind {
            "message" => {
                let message: ChatMessage<'a> = serde_json::from_str(payload)?;
                Self::Message {
                    text: message.text,
                    id: message.id,
                    room: message.room,
                }
            }
            "welcome" => {
                let welcome: Welcome<'a> = serde_json::from_str(payload)?;
                Self::Welcome { room: welcome.room }
            }
            "ack" => {
                let ack: Ack<'a> = serde_json::from_str(payload)?;
                Self::Ack {
                    client_id: ack.client_id,
                    id: ack.id,
                }
            }
            "error" => {
                let refusal: Refusal<'a> = serde_json::from_str(payload)?;
                Self::Error {
                    code: refusal.code,
                    client_id: refusal.client_id,
                }
            }
            _ => Self::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_match_the_protocol() {
        assert_eq!(
            ClientFrame::Nickname("c7").encode(),
            r#"{"type":"nickname","payload":"c7"}"#
        );
        assert_eq!(
            ClientFrame::Message("1:2:3").encode(),
            r#"{"type":"message","payload":"1:2:3"}"#
        );
        assert_eq!(
            ClientFrame::TrackedMessage {
                text: "1:2:3",
                client_id: "1-2"
            }
            .encode(),
            r#"{"type":"message","payload":{"text":"1:2:3","client_id":"1-2"}}"#
        );
        assert_eq!(
            ClientFrame::Resume {
                token: None,
                after: None,
                room: Some("bench-3")
            }
            .encode(),
            r#"{"type":"resume","payload":{"token":null,"after":null,"room":"bench-3"}}"#
        );
    }

    #[test]
    fn rooms_are_read_from_messages_and_welcomes() {
        let frame = r#"{"type":"message","payload":{"room":"bench-3","id":42,"sent_at":"x","from":3,"nickname":"c3","text":"1:2:3"}}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message {
                text: "1:2:3".into(),
                id: Some(42),
                room: Some("bench-3".into())
            }
        );
        let welcome = r#"{"type":"welcome","payload":{"room":"bench-3","id":7,"nickname":"Anonymous","online":2,"people":[],"token":"ab"}}"#;
        assert_eq!(
            ServerFrame::decode(welcome).unwrap(),
            ServerFrame::Welcome {
                room: Some("bench-3".into())
            }
        );
        let old = r#"{"type":"welcome","payload":{"id":7,"nickname":"Anonymous","online":2}}"#;
        assert_eq!(
            ServerFrame::decode(old).unwrap(),
            ServerFrame::Welcome { room: None }
        );
    }

    #[test]
    fn acks_and_relayed_ids_are_read() {
        let frame =
            r#"{"type":"message","payload":{"id":42,"sent_at":"x","from":3,"text":"1:2:3"}}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message {
                text: "1:2:3".into(),
                id: Some(42),
                room: None
            }
        );
        let ack = r#"{"type":"ack","payload":{"client_id":"1-2","id":42,"sent_at":"x"}}"#;
        assert_eq!(
            ServerFrame::decode(ack).unwrap(),
            ServerFrame::Ack {
                client_id: "1-2".into(),
                id: 42
            }
        );
        let refused =
            r#"{"type":"error","payload":{"code":"unavailable","message":"no","client_id":"1-2"}}"#;
        assert_eq!(
            ServerFrame::decode(refused).unwrap(),
            ServerFrame::Error {
                code: "unavailable".into(),
                client_id: Some("1-2".into())
            }
        );
        assert!(ServerFrame::decode(r#"{"type":"ack","payload":{"id":1}}"#).is_err());
    }

    #[test]
    fn server_frames_decode_in_any_key_order() {
        let frame = r#"{"type":"message","payload":{"nickname":"c1","text":"1:2:3"}}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message {
                text: "1:2:3".into(),
                id: None,
                room: None
            }
        );
        let frame = r#"{"payload":{"text":"a\"b","nickname":"c1","extra":1},"type":"message"}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message {
                text: "a\"b".into(),
                id: None,
                room: None
            }
        );
    }

    #[test]
    fn errors_and_unknown_types_are_told_apart_from_garbage() {
        let error = r#"{"type":"error","payload":{"code":"invalid_message","message":"no"}}"#;
        assert_eq!(
            ServerFrame::decode(error).unwrap(),
            ServerFrame::Error {
                code: "invalid_message".into(),
                client_id: None
            }
        );
        let later = r#"{"type":"presence","payload":{"online":[1,2]}}"#;
        assert_eq!(ServerFrame::decode(later).unwrap(), ServerFrame::Unknown);
        assert!(ServerFrame::decode("not json").is_err());
        assert!(ServerFrame::decode(r#"{"type":"message"}"#).is_err());
        assert!(ServerFrame::decode(r#"{"type":"message","payload":"text"}"#).is_err());
    }
}
