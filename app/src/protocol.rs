//! Wire protocol v1, shared by the server and the browser client.
//!
//! Every frame is a JSON text frame `{"type": "...", "payload": ...}` in both
//! directions. `PROTOCOL.md` is the human-readable contract; the tests at the
//! bottom of this file pin every frame's exact JSON shape to it.
//!
//! Validation lives here too ([`Nickname::parse`], [`MessageText::parse`]) so
//! that the browser can refuse bad input before it is sent and the server
//! enforces exactly the same rules.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The nickname every connection starts with.
pub const DEFAULT_NICKNAME: &str = "Anonymous";
/// Longest nickname, in characters (Unicode scalar values), after trimming.
pub const NICKNAME_MAX_CHARS: usize = 32;
/// Longest message text, in characters (Unicode scalar values), after trimming.
pub const MESSAGE_MAX_CHARS: usize = 2_000;
/// Largest WebSocket message the server accepts; bigger ones close the
/// connection with close code 1009 ("message too big").
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame sent by a client to the server.
///
/// Payloads are kept as raw strings: whether they are *acceptable* is a
/// separate question answered by [`Nickname::parse`] and
/// [`MessageText::parse`], so that a wrong JSON type and a bad value get
/// different error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `{"type":"nickname","payload":"alice"}`
    Nickname(String),
    /// `{"type":"message","payload":"hello"}`
    Message(String),
}

/// A frame sent by the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A chat message from another client.
    Message(ChatMessage),
    /// Something the client sent was refused; the connection stays usable.
    Error(ErrorPayload),
}

/// The payload of a relayed chat message.
///
/// Later protocol versions may add fields; `nickname` and `text` keep their
/// meaning, and clients ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub nickname: String,
    pub text: String,
}

/// The payload of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    /// An explanation for humans; its wording is not part of the contract.
    pub message: String,
}

/// Machine-readable error codes, serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not valid JSON.
    MalformedJson,
    /// Valid JSON, but not an object with a string `type`.
    InvalidFrame,
    /// The `type` is not one this server understands.
    UnknownType,
    /// The `payload` is missing or of the wrong JSON type.
    InvalidPayload,
    /// A binary WebSocket frame; the protocol is text only.
    BinaryNotSupported,
    /// The nickname breaks the rules of [`Nickname::parse`].
    InvalidNickname,
    /// The message text breaks the rules of [`MessageText::parse`].
    InvalidMessage,
    /// A code from a newer server; lets old clients keep working.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code exactly as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidFrame => "invalid_frame",
            Self::UnknownType => "unknown_type",
            Self::InvalidPayload => "invalid_payload",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::InvalidNickname => "invalid_nickname",
            Self::InvalidMessage => "invalid_message",
            Self::Unknown => "unknown",
        }
    }
}

impl ErrorCode {
    /// Reads a code as it appears on the wire; unknown codes (from a newer
    /// server) become [`ErrorCode::Unknown`].
    pub fn from_wire(code: &str) -> Self {
        [
            Self::MalformedJson,
            Self::InvalidFrame,
            Self::UnknownType,
            Self::InvalidPayload,
            Self::BinaryNotSupported,
            Self::InvalidNickname,
            Self::InvalidMessage,
        ]
        .into_iter()
        .find(|known| known.as_str() == code)
        .unwrap_or(Self::Unknown)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorPayload {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl<E: ProtocolError> From<E> for ErrorPayload {
    fn from(err: E) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

/// An error that a client is told about in an `error` frame.
pub trait ProtocolError: std::error::Error {
    fn code(&self) -> ErrorCode;
}

/// Why a text frame could not be decoded into a [`ClientFrame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("frame must be a JSON object with a string \"type\" and a \"payload\"")]
    InvalidFrame,
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("the payload of a {0:?} frame must be a JSON string")]
    InvalidPayload(&'static str),
}

impl ProtocolError for FrameError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::InvalidFrame => ErrorCode::InvalidFrame,
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::InvalidPayload(_) => ErrorCode::InvalidPayload,
        }
    }
}

/// How much of an unknown `type` is echoed back in the error message.
const ECHO_MAX_CHARS: usize = 64;

impl ClientFrame {
    /// Decodes a text frame, telling apart broken JSON, a wrong envelope, an
    /// unknown type and a payload of the wrong JSON type.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow, default)]
            payload: Option<&'a RawValue>,
        }

        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|err| {
            if err.is_data() {
                FrameError::InvalidFrame
            } else {
                FrameError::MalformedJson(err.to_string())
            }
        })?;
        let string_payload = |kind: &'static str| {
            envelope
                .payload
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .ok_or(FrameError::InvalidPayload(kind))
        };
        match envelope.kind.as_ref() {
            "nickname" => string_payload("nickname").map(Self::Nickname),
            "message" => string_payload("message").map(Self::Message),
            other => Err(FrameError::UnknownType(
                other.chars().take(ECHO_MAX_CHARS).collect(),
            )),
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a ClientFrame always serializes")
    }
}

impl ServerFrame {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a ServerFrame always serializes")
    }

    /// Decodes a frame from the server; `None` for a frame this client does
    /// not understand (a newer server may send more kinds).
    ///
    /// Reads the envelope and then the payload, rather than through the
    /// derived `Deserialize`: serde buffers adjacently tagged enums through a
    /// generic representation whose code is large, and this runs in the
    /// browser, where every kilobyte is downloaded.
    pub fn decode(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow)]
            payload: &'a RawValue,
        }

        let envelope: Envelope<'_> = serde_json::from_str(text).ok()?;
        let payload = envelope.payload.get();
        match envelope.kind.as_ref() {
            "message" => serde_json::from_str(payload).ok().map(Self::Message),
            "error" => serde_json::from_str(payload).ok().map(Self::Error),
            _ => None,
        }
    }
}

/// A validated nickname: trimmed, 1 to [`NICKNAME_MAX_CHARS`] characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NicknameError {
    #[error("nickname must not be blank")]
    Empty,
    #[error("nickname must be at most {NICKNAME_MAX_CHARS} characters")]
    TooLong,
    #[error("nickname must not contain control characters")]
    ControlCharacter,
}

impl ProtocolError for NicknameError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidNickname
    }
}

impl Nickname {
    pub fn parse(raw: &str) -> Result<Self, NicknameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            Err(NicknameError::Empty)
        } else if trimmed.chars().count() > NICKNAME_MAX_CHARS {
            Err(NicknameError::TooLong)
        } else if trimmed.chars().any(char::is_control) {
            Err(NicknameError::ControlCharacter)
        } else {
            Ok(Self(trimmed.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Nickname {
    fn default() -> Self {
        Self(DEFAULT_NICKNAME.to_owned())
    }
}

impl fmt::Display for Nickname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated message text: trimmed, 1 to [`MESSAGE_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageTextError {
    #[error("message must not be blank")]
    Empty,
    #[error("message must be at most {MESSAGE_MAX_CHARS} characters")]
    TooLong,
}

impl ProtocolError for MessageTextError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidMessage
    }
}

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, MessageTextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            Err(MessageTextError::Empty)
        } else if trimmed.chars().count() > MESSAGE_MAX_CHARS {
            Err(MessageTextError::TooLong)
        } else {
            Ok(Self(trimmed.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn json_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn client_frames_have_the_documented_shape() {
        assert_eq!(
            json_of(&ClientFrame::Nickname("alice".into()).encode()),
            json!({"type": "nickname", "payload": "alice"})
        );
        assert_eq!(
            json_of(&ClientFrame::Message("hello".into()).encode()),
            json!({"type": "message", "payload": "hello"})
        );
    }

    #[test]
    fn client_frames_decode_from_the_documented_shape() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"nickname","payload":"alice"}"#),
            Ok(ClientFrame::Nickname("alice".into()))
        );
        assert_eq!(
            ClientFrame::decode(r#"{"payload":"hi \"there\"","type":"message"}"#),
            Ok(ClientFrame::Message("hi \"there\"".into()))
        );
    }

    #[test]
    fn server_message_frame_has_the_documented_shape() {
        let frame = ServerFrame::Message(ChatMessage {
            nickname: "alice".into(),
            text: "hello".into(),
        });
        assert_eq!(
            json_of(&frame.encode()),
            json!({"type": "message", "payload": {"nickname": "alice", "text": "hello"}})
        );
    }

    #[test]
    fn server_error_frame_has_the_documented_shape() {
        let frame = ServerFrame::Error(ErrorPayload::new(ErrorCode::UnknownType, "nope"));
        assert_eq!(
            json_of(&frame.encode()),
            json!({"type": "error", "payload": {"code": "unknown_type", "message": "nope"}})
        );
    }

    #[test]
    fn server_frames_survive_a_round_trip() {
        for frame in [
            ServerFrame::Message(ChatMessage {
                nickname: "al\"ice".into(),
                text: "line\nbreak <b>".into(),
            }),
            ServerFrame::Error(ErrorPayload::new(ErrorCode::InvalidNickname, "no")),
        ] {
            assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
        }
    }

    #[test]
    fn every_error_code_serializes_as_its_wire_name() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::InvalidFrame,
            ErrorCode::UnknownType,
            ErrorCode::InvalidPayload,
            ErrorCode::BinaryNotSupported,
            ErrorCode::InvalidNickname,
            ErrorCode::InvalidMessage,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
        }
        assert_eq!(ErrorCode::from_wire("rate_limited"), ErrorCode::Unknown);
    }

    #[test]
    fn clients_tolerate_newer_servers() {
        let frame = ServerFrame::decode(
            r#"{"type":"message","payload":{"nickname":"a","text":"b","id":7,"sent_at":1}}"#,
        )
        .unwrap();
        assert_eq!(
            ServerFrame::decode(r#"{"type":"presence","payload":[]}"#),
            None
        );
        assert_eq!(ServerFrame::decode("not json"), None);
        assert_eq!(
            frame,
            ServerFrame::Message(ChatMessage {
                nickname: "a".into(),
                text: "b".into()
            })
        );
        let frame = ServerFrame::decode(
            r#"{"type":"error","payload":{"code":"rate_limited","message":"slow down"}}"#,
        )
        .unwrap();
        assert!(matches!(
            frame,
            ServerFrame::Error(ErrorPayload {
                code: ErrorCode::Unknown,
                ..
            })
        ));
    }

    #[test]
    fn broken_json_is_malformed_json() {
        for text in [
            "",
            "{",
            "not json",
            r#"{"type":"message","payload":"x"} trailing"#,
        ] {
            let err = ClientFrame::decode(text).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedJson, "{text:?}");
        }
    }

    #[test]
    fn json_without_a_string_type_is_an_invalid_frame() {
        for text in [
            "[]",
            "42",
            r#""message""#,
            "{}",
            r#"{"payload":"x"}"#,
            r#"{"type":7,"payload":"x"}"#,
        ] {
            assert_eq!(
                ClientFrame::decode(text),
                Err(FrameError::InvalidFrame),
                "{text:?}"
            );
        }
    }

    #[test]
    fn unknown_types_are_named_and_truncated() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"shout","payload":"x"}"#),
            Err(FrameError::UnknownType("shout".into()))
        );
        let long = "x".repeat(1_000);
        let err = ClientFrame::decode(&format!(r#"{{"type":"{long}","payload":1}}"#)).unwrap_err();
        assert_eq!(err, FrameError::UnknownType("x".repeat(ECHO_MAX_CHARS)));
    }

    #[test]
    fn payloads_of_the_wrong_json_type_are_invalid_payloads() {
        for text in [
            r#"{"type":"message","payload":42}"#,
            r#"{"type":"message","payload":null}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"nickname","payload":{"name":"alice"}}"#,
            r#"{"type":"nickname","payload":["alice"]}"#,
        ] {
            assert_eq!(
                ClientFrame::decode(text).unwrap_err().code(),
                ErrorCode::InvalidPayload,
                "{text:?}"
            );
        }
    }

    #[test]
    fn nicknames_are_trimmed_and_bounded() {
        assert_eq!(Nickname::parse("  alice \n").unwrap().as_str(), "alice");
        assert_eq!(Nickname::parse("").unwrap_err(), NicknameError::Empty);
        assert_eq!(Nickname::parse(" \t ").unwrap_err(), NicknameError::Empty);
        let max = "é".repeat(NICKNAME_MAX_CHARS);
        assert_eq!(Nickname::parse(&max).unwrap().as_str(), max);
        assert_eq!(
            Nickname::parse(&"é".repeat(NICKNAME_MAX_CHARS + 1)).unwrap_err(),
            NicknameError::TooLong
        );
        for bad in ["al\u{0}ice", "al\nice", "al\u{7f}ice", "a\u{9b}"] {
            assert_eq!(
                Nickname::parse(bad).unwrap_err(),
                NicknameError::ControlCharacter,
                "{bad:?}"
            );
        }
        assert_eq!(Nickname::default().as_str(), DEFAULT_NICKNAME);
    }

    #[test]
    fn message_texts_are_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hello ").unwrap().as_str(), "hello");
        assert_eq!(
            MessageText::parse("\n\t ").unwrap_err(),
            MessageTextError::Empty
        );
        let max = "😀".repeat(MESSAGE_MAX_CHARS);
        assert_eq!(MessageText::parse(&max).unwrap().into_string(), max);
        assert_eq!(
            MessageText::parse(&"a".repeat(MESSAGE_MAX_CHARS + 1)).unwrap_err(),
            MessageTextError::TooLong
        );
    }

    #[test]
    fn validation_errors_map_to_their_codes() {
        let payload = ErrorPayload::from(NicknameError::TooLong);
        assert_eq!(payload.code, ErrorCode::InvalidNickname);
        assert!(payload.message.contains("32"));
        assert_eq!(
            ErrorPayload::from(MessageTextError::Empty).code,
            ErrorCode::InvalidMessage
        );
    }
}
