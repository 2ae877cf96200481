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
}

impl ClientFrame<'_> {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a string payload always serializes")
    }
}

/// A frame from the server, reduced to what the generator acts on.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// A relayed chat message: only its text matters here.
    Message(Cow<'a, str>),
    /// The server refused something we sent.
    Error,
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
}

impl<'a> ServerFrame<'a> {
    /// Parses one text frame, borrowing the message text where it has no
    /// escapes (always, for the generator's own texts).
    pub fn decode(frame: &'a str) -> Result<Self, serde_json::Error> {
        let envelope: Envelope<'a> = serde_json::from_str(frame)?;
        Ok(match &*envelope.kind {
            "message" => {
                let payload = envelope.payload.map_or("null", RawValue::get);
                let message: ChatMessage<'a> = serde_json::from_str(payload)?;
                Self::Message(message.text)
            }
            "error" => Self::Error,
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
    }

    #[test]
    fn server_frames_decode_in_any_key_order() {
        let frame = r#"{"type":"message","payload":{"nickname":"c1","text":"1:2:3"}}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message("1:2:3".into())
        );
        let frame = r#"{"payload":{"text":"a\"b","nickname":"c1","extra":1},"type":"message"}"#;
        assert_eq!(
            ServerFrame::decode(frame).unwrap(),
            ServerFrame::Message("a\"b".into())
        );
    }

    #[test]
    fn errors_and_unknown_types_are_told_apart_from_garbage() {
        let error = r#"{"type":"error","payload":{"code":"invalid_message","message":"no"}}"#;
        assert_eq!(ServerFrame::decode(error).unwrap(), ServerFrame::Error);
        let later = r#"{"type":"presence","payload":{"online":[1,2]}}"#;
        assert_eq!(ServerFrame::decode(later).unwrap(), ServerFrame::Unknown);
        assert!(ServerFrame::decode("not json").is_err());
        assert!(ServerFrame::decode(r#"{"type":"message"}"#).is_err());
        assert!(ServerFrame::decode(r#"{"type":"message","payload":"text"}"#).is_err());
    }
}
