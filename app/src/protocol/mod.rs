//! Wire protocol v1, shared by the server and the browser client.
//!
//! Every frame is a JSON text frame `{"type": "...", "payload": ...}` in both
//! directions. `PROTOCOL.md` is the human-readable contract; the tests at the
//! bottom of this file pin every frame's exact JSON shape to it.
//!
//! Frames are plain serde types, encoded and decoded with serde_json on both
//! sides: the browser calls [`ServerFrame::decode`] and
//! [`ClientFrame::encode`], the server the other two, so the code the tests
//! cover is the code that runs.
//!
//! - this file: the frames, how they are encoded and decoded;
//! - `text`: what a client may say (nicknames, message texts, ids), so the
//!   browser refuses bad input before sending with the rules the server
//!   enforces;
//! - `error`: error codes and the `error` payload.

mod error;
mod text;

use serde::{de::value::MapDeserializer, Deserialize, Serialize};
use serde_json::value::RawValue;

pub use error::{ErrorCode, ErrorPayload, ProtocolError};
pub use text::{
    ClientMessageId, ClientMessageIdError, MessageText, MessageTextError, Nickname, NicknameError,
    RoomName, RoomNameError, CLIENT_ID_MAX_LEN, DEFAULT_NICKNAME, GENERAL_ROOM,
    MAX_COMBINING_MARKS, MESSAGE_MAX_CHARS, NICKNAME_MAX_CHARS, ROOM_NAME_MAX_LEN,
};

/// Largest WebSocket message the server accepts; bigger ones close the
/// connection with close code 1009 ("message too big").
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame sent by a client to the server.
///
/// Payloads are kept raw: whether they are *acceptable* is a separate
/// question answered by [`Nickname::parse`], [`MessageText::parse`] and
/// [`ClientMessageId::parse`], so that a wrong JSON type and a bad value get
/// different error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `{"type":"nickname","payload":"alice"}`
    Nickname(String),
    /// `{"type":"message","payload":"hello"}`, or with an id for an ack:
    /// `{"type":"message","payload":{"text":"hello","client_id":"…"}}`
    Message(OutgoingMessage),
    /// `{"type":"typing","payload":true}`: the user is typing (`false`: stopped).
    Typing(bool),
    /// `{"type":"resume","payload":{"token":"…","after":41}}`: the first
    /// frame on a `/ws?resume` connection: who this client was, and the last
    /// message id it has.
    Resume(Resume),
    /// `{"type":"history","payload":{"before":120}}`: the page of messages
    /// of the client's room just older than id `before`.
    History { before: u64 },
    /// `{"type":"join","payload":{"room":"rust"}}`: leave this room for
    /// that one, on the same connection.
    Join { room: String },
}

/// The payload of `resume`; each field may be `null` or absent.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resume {
    /// The token from an earlier `welcome`: the same identity back.
    pub token: Option<String>,
    /// Every stored message with a greater id is sent before live traffic.
    pub after: Option<u64>,
    /// The room to be in (`after` is an id of that room); `None` is
    /// `general`.
    pub room: Option<String>,
}

/// A chat message as its sender sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MessagePayload", into = "MessagePayload")]
pub struct OutgoingMessage {
    pub text: String,
    /// Chosen by the client; asks for an `ack` and makes resending safe.
    pub client_id: Option<String>,
}

/// `message`'s payload as it is on the wire: a bare string is the v1 form,
/// kept for clients that never ask for an ack.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum MessagePayload {
    Text(String),
    Object {
        text: String,
        #[serde(default)]
        client_id: Option<String>,
    },
}

impl From<MessagePayload> for OutgoingMessage {
    fn from(payload: MessagePayload) -> Self {
        match payload {
            MessagePayload::Text(text) => Self::plain(text),
            MessagePayload::Object { text, client_id } => Self { text, client_id },
        }
    }
}

impl From<OutgoingMessage> for MessagePayload {
    fn from(OutgoingMessage { text, client_id }: OutgoingMessage) -> Self {
        match client_id {
            None => Self::Text(text),
            client_id => Self::Object { text, client_id },
        }
    }
}

impl OutgoingMessage {
    /// The v1 form: no id, no ack.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            client_id: None,
        }
    }
}

/// A frame sent by the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame on every connection: who you are, who is here.
    Welcome(Welcome),
    /// A chat message from another client.
    Message(ChatMessage),
    /// Your message with this `client_id` was accepted.
    Ack(Ack),
    /// Who came, left or changed name since the last `presence` frame.
    Presence(Presence),
    /// Someone else is typing.
    Typing(Typing),
    /// Something the client sent was refused; the connection stays usable.
    Error(ErrorPayload),
    /// Stored messages older than those the client has, answering `history`
    /// (and embedded in the server-rendered page as its first page).
    History(HistoryPage),
    /// The busiest rooms and how many people are online in each.
    Rooms(RoomList),
}

/// Someone online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Their connection's id, unique for the server's life.
    pub id: u64,
    pub nickname: String,
}

/// The payload of `welcome`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The room the client is now in; everything it sends goes there.
    #[serde(default = "general")]
    pub room: String,
    /// This connection's id, as others see it in `from` and in presence.
    pub id: u64,
    pub nickname: String,
    /// How many people are online, this connection included.
    pub online: u64,
    /// Who they are, this connection included. Complete when its length is
    /// `online`; empty in rooms too big to list.
    pub people: Vec<Person>,
    /// Sent back in `resume` after a drop or a reload to be this person
    /// again. Secret: never shown to anyone else.
    pub token: String,
}

/// Without the token: whoever reads a log line with it could become the
/// person it stands for.
impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume")
            .field("token", &self.token.as_ref().map(|_| Redacted))
            .field("after", &self.after)
            .field("room", &self.room)
            .finish()
    }
}

/// Without the token, as [`Resume`]'s.
impl std::fmt::Debug for Welcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welcome")
            .field("room", &self.room)
            .field("id", &self.id)
            .field("nickname", &self.nickname)
            .field("online", &self.online)
            .field("people", &self.people)
            .field("token", &Redacted)
            .finish()
    }
}

/// Stands for a secret in `Debug` output.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

/// The payload of `history`: stored messages, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    #[serde(default = "general")]
    pub room: String,
    pub messages: Vec<ChatMessage>,
    /// Nothing older is stored: this page starts the conversation.
    pub beginning: bool,
}

/// The payload of a relayed chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room it was sent in.
    #[serde(default = "general")]
    pub room: String,
    /// Assigned by the server: unique, and strictly increasing in the
    /// order messages are sent, across all rooms.
    pub id: u64,
    /// When the server accepted it: RFC 3339, UTC.
    pub sent_at: String,
    /// The sender's connection id.
    pub from: u64,
    /// The sender's nickname when it sent the message.
    pub nickname: String,
    pub text: String,
}

/// The payload of `ack`: the message with `client_id` is now `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub client_id: String,
    pub id: u64,
    pub sent_at: String,
}

/// The payload of `presence`: changes since the previous one, coalesced
/// over a short interval (a join and a rename in one interval are one join
/// under the new name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    #[serde(default = "general")]
    pub room: String,
    /// How many people are online in the room now.
    pub online: u64,
    pub joined: Vec<Person>,
    pub left: Vec<Person>,
    pub renamed: Vec<Rename>,
    /// Everyone online, replacing what the client knew: sent when a room
    /// too big to list in detail has become small enough again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<Person>>,
}

/// Someone changed nickname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    pub id: u64,
    pub previous: String,
    pub nickname: String,
}

/// The payload of `typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    #[serde(default = "general")]
    pub room: String,
    pub id: u64,
    pub nickname: String,
    /// `false`: they stopped (cleared their draft) without sending.
    pub active: bool,
}

/// The payload of `rooms`: the rooms with people online, busiest first
/// (at most [`ROOM_LIST_MAX`]), and always `general`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<RoomCount>,
}

/// Most rooms a `rooms` frame lists.
pub const ROOM_LIST_MAX: usize = 20;

/// A room and how many people are online in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCount {
    pub name: String,
    pub online: u64,
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
    #[error("the payload of a {kind:?} frame must be {expected}")]
    InvalidPayload {
        kind: &'static str,
        expected: &'static str,
    },
}

impl ProtocolError for FrameError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::InvalidFrame => ErrorCode::InvalidFrame,
            Self::UnknownType(_) => ErrorCode::UnknownType,
            Self::InvalidPayload { .. } => ErrorCode::InvalidPayload,
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
            kind: &'a RawValue,
            #[serde(borrow, default)]
            payload: Option<&'a RawValue>,
        }

        // Well-formed JSON first, then an object: serde would also read a
        // struct from an array (`["message", "hi"]`), which no frame is.
        let json: &RawValue =
            serde_json::from_str(text).map_err(|err| FrameError::MalformedJson(err.to_string()))?;
        if !json.get().starts_with('{') {
            return Err(FrameError::InvalidFrame);
        }
        let envelope: Envelope<'_> =
            serde_json::from_str(json.get()).map_err(|_| FrameError::InvalidFrame)?;
        let kind: String =
            serde_json::from_str(envelope.kind.get()).map_err(|_| FrameError::InvalidFrame)?;
        let (kind, expected) = match kind.as_str() {
            "nickname" => ("nickname", "a JSON string"),
            "message" => (
                "message",
                r#"a JSON string or {"text": string, "client_id": string}"#,
            ),
            "typing" => ("typing", "true or false"),
            "resume" => (
                "resume",
                r#"{"token": string or null, "after": id or null, "room": string or null}"#,
            ),
            "history" => ("history", r#"{"before": id}"#),
            "join" => ("join", r#"{"room": string}"#),
            other => {
                return Err(FrameError::UnknownType(
                    other.chars().take(ECHO_MAX_CHARS).collect(),
                ))
            }
        };
        let invalid = || FrameError::InvalidPayload { kind, expected };
        // The derived decoder, fed the two members just read rather than the
        // whole text again.
        let members = [
            ("type", envelope.kind),
            ("payload", envelope.payload.ok_or_else(invalid)?),
        ];
        Self::deserialize(MapDeserializer::<_, serde_json::Error>::new(
            members.into_iter(),
        ))
        .map_err(|_| invalid())
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
    /// not understand (a newer server may send more kinds). Fields it does
    /// not know are ignored.
    ///
    /// Reads the envelope, then the payload as the type its `type` names.
    /// The derived decoder of an adjacently tagged enum would do the same,
    /// but it also carries a second decoder for every payload (for a
    /// `payload` that comes before `type`, buffered in serde's `Content`),
    /// which is a sixth of the browser's wasm. The envelope here takes the
    /// members in any order too; a test checks both decoders agree.
    pub fn decode(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Welcome,
            Message,
            Ack,
            Presence,
            Typing,
            Error,
            History,
            Rooms,
        }

        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(rename = "type")]
            kind: Kind,
            #[serde(borrow)]
            payload: &'a RawValue,
        }

        fn payload<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
            serde_json::from_str(raw.get()).ok()
        }

        let Envelope { kind, payload: raw } = serde_json::from_str(text).ok()?;
        Some(match kind {
            Kind::Welcome => Self::Welcome(payload(raw)?),
            Kind::Message => Self::Message(payload(raw)?),
            Kind::Ack => Self::Ack(payload(raw)?),
            Kind::Presence => Self::Presence(payload(raw)?),
            Kind::Typing => Self::Typing(payload(raw)?),
            Kind::Error => Self::Error(payload(raw)?),
            Kind::History => Self::History(payload(raw)?),
            Kind::Rooms => Self::Rooms(payload(raw)?),
        })
    }
}

/// The room of a frame without one: a server from before rooms only had
/// `general`.
fn general() -> String {
    GENERAL_ROOM.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn json_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn alice() -> Person {
        Person {
            id: 7,
            nickname: "alice".into(),
        }
    }

    fn message() -> ChatMessage {
        ChatMessage {
            room: "general".into(),
            id: 42,
            sent_at: "2026-11-25T14:03:07.250Z".into(),
            from: 7,
            nickname: "alice".into(),
            text: "hello".into(),
        }
    }

    #[test]
    fn client_frames_have_the_documented_shape() {
        let cases = [
            (
                ClientFrame::Nickname("alice".into()),
                json!({"type": "nickname", "payload": "alice"}),
            ),
            (
                ClientFrame::Message(OutgoingMessage::plain("hello")),
                json!({"type": "message", "payload": "hello"}),
            ),
            (
                ClientFrame::Message(OutgoingMessage {
                    text: "hello".into(),
                    client_id: Some("c-1".into()),
                }),
                json!({"type": "message", "payload": {"text": "hello", "client_id": "c-1"}}),
            ),
            (
                ClientFrame::Typing(true),
                json!({"type": "typing", "payload": true}),
            ),
            (
                ClientFrame::Resume(Resume {
                    token: Some("9f86d081884c7d65".into()),
                    after: Some(41),
                    room: Some("rust".into()),
                }),
                json!({"type": "resume", "payload": {"token": "9f86d081884c7d65", "after": 41,
                    "room": "rust"}}),
            ),
            (
                ClientFrame::Resume(Resume::default()),
                json!({"type": "resume", "payload": {"token": null, "after": null, "room": null}}),
            ),
            (
                ClientFrame::Join {
                    room: "rust".into(),
                },
                json!({"type": "join", "payload": {"room": "rust"}}),
            ),
            (
                ClientFrame::History { before: 120 },
                json!({"type": "history", "payload": {"before": 120}}),
            ),
        ];
        for (frame, shape) in cases {
            assert_eq!(json_of(&frame.encode()), shape);
            assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn client_frames_decode_in_any_key_order_and_ignore_unknown_fields() {
        assert_eq!(
            ClientFrame::decode(r#"{"payload":"hi \"there\"","type":"message"}"#),
            Ok(ClientFrame::Message(OutgoingMessage::plain("hi \"there\"")))
        );
        assert_eq!(
            ClientFrame::decode(
                r#"{"type":"message","payload":{"client_id":null,"text":"x","mood":1}}"#
            ),
            Ok(ClientFrame::Message(OutgoingMessage::plain("x")))
        );
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let cases = [
            (
                ServerFrame::Welcome(Welcome {
                    room: "general".into(),
                    id: 7,
                    nickname: "Anonymous".into(),
                    online: 1,
                    people: vec![Person {
                        id: 7,
                        nickname: "Anonymous".into(),
                    }],
                    token: "9f86d081884c7d65".into(),
                }),
                json!({"type": "welcome", "payload": {"room": "general", "id": 7,
                    "nickname": "Anonymous",
                    "online": 1, "people": [{"id": 7, "nickname": "Anonymous"}],
                    "token": "9f86d081884c7d65"}}),
            ),
            (
                ServerFrame::History(HistoryPage {
                    room: "general".into(),
                    messages: vec![message()],
                    beginning: true,
                }),
                json!({"type": "history", "payload": {"room": "general",
                    "messages": [{"room": "general", "id": 42,
                    "sent_at": "2026-11-25T14:03:07.250Z", "from": 7,
                    "nickname": "alice", "text": "hello"}], "beginning": true}}),
            ),
            (
                ServerFrame::Message(message()),
                json!({"type": "message", "payload": {"room": "general", "id": 42,
                    "sent_at": "2026-11-25T14:03:07.250Z", "from": 7,
                    "nickname": "alice", "text": "hello"}}),
            ),
            (
                ServerFrame::Ack(Ack {
                    client_id: "c-1".into(),
                    id: 42,
                    sent_at: "2026-11-25T14:03:07.250Z".into(),
                }),
                json!({"type": "ack", "payload": {"client_id": "c-1", "id": 42,
                    "sent_at": "2026-11-25T14:03:07.250Z"}}),
            ),
            (
                ServerFrame::Presence(Presence {
                    room: "general".into(),
                    online: 2,
                    joined: vec![alice()],
                    left: vec![Person {
                        id: 3,
                        nickname: "bob".into(),
                    }],
                    renamed: vec![Rename {
                        id: 5,
                        previous: "Anonymous".into(),
                        nickname: "carol".into(),
                    }],
                    people: None,
                }),
                json!({"type": "presence", "payload": {"room": "general", "online": 2,
                    "joined": [{"id": 7, "nickname": "alice"}],
                    "left": [{"id": 3, "nickname": "bob"}],
                    "renamed": [{"id": 5, "previous": "Anonymous", "nickname": "carol"}]}}),
            ),
            (
                ServerFrame::Typing(Typing {
                    room: "rust".into(),
                    id: 7,
                    nickname: "alice".into(),
                    active: true,
                }),
                json!({"type": "typing", "payload": {"room": "rust", "id": 7,
                    "nickname": "alice", "active": true}}),
            ),
            (
                ServerFrame::Rooms(RoomList {
                    rooms: vec![RoomCount {
                        name: "general".into(),
                        online: 3,
                    }],
                }),
                json!({"type": "rooms", "payload": {"rooms": [{"name": "general", "online": 3}]}}),
            ),
            (
                ServerFrame::Error(ErrorPayload::new(ErrorCode::UnknownType, "nope")),
                json!({"type": "error", "payload": {"code": "unknown_type", "message": "nope"}}),
            ),
            (
                ServerFrame::Error(
                    ErrorPayload::new(ErrorCode::RateLimited, "slow down").about(Some("c-1")),
                ),
                json!({"type": "error", "payload": {"code": "rate_limited",
                    "message": "slow down", "client_id": "c-1"}}),
            ),
        ];
        for (frame, shape) in cases {
            assert_eq!(json_of(&frame.encode()), shape);
            assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
        }
    }

    #[test]
    fn frames_from_a_server_without_rooms_are_in_general() {
        let frame = r#"{"type":"message","payload":{"id":1,"sent_at":"t","from":2,
            "nickname":"a","text":"b"}}"#;
        let Some(ServerFrame::Message(message)) = ServerFrame::decode(frame) else {
            panic!("not understood");
        };
        assert_eq!(message.room, GENERAL_ROOM);
    }

    #[test]
    fn a_presence_reset_carries_everyone() {
        let frame = ServerFrame::Presence(Presence {
            online: 1,
            people: Some(vec![alice()]),
            ..Presence::default()
        });
        assert_eq!(
            json_of(&frame.encode())["payload"]["people"],
            json!([{"id": 7, "nickname": "alice"}])
        );
        assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
    }

    #[test]
    fn text_survives_a_round_trip_untouched() {
        let frame = ServerFrame::Message(ChatMessage {
            nickname: "al\"ice".into(),
            text: "line\nbreak <b> \u{202E} 😀".into(),
            ..message()
        });
        assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
    }

    #[test]
    fn every_error_code_serializes_as_its_wire_name() {
        for &code in ErrorCode::KNOWN {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
        }
        assert_eq!(ErrorCode::KNOWN.len(), 12);
        assert_eq!(ErrorCode::from_wire("from_the_future"), ErrorCode::Unknown);
    }

    #[test]
    fn clients_tolerate_newer_servers() {
        let frame = ServerFrame::decode(
            r#"{"type":"message","payload":{"id":1,"sent_at":"t","from":2,"nickname":"a","text":"b","mood":"x"}}"#,
        );
        assert!(matches!(frame, Some(ServerFrame::Message(m)) if m.text == "b"));
        let frame = ServerFrame::decode(
            r#"{"v":2,"payload":{"online":1,"joined":[],"left":[],"renamed":[],"people":null},"type":"presence"}"#,
        );
        assert!(matches!(frame, Some(ServerFrame::Presence(p)) if p.people.is_none()));
        assert_eq!(
            ServerFrame::decode(r#"{"type":"reaction","payload":[]}"#),
            None
        );
        assert_eq!(ServerFrame::decode("not json"), None);
        let frame = ServerFrame::decode(
            r#"{"type":"error","payload":{"code":"too_spicy","message":"calm down"}}"#,
        );
        assert!(matches!(
            frame,
            Some(ServerFrame::Error(ErrorPayload {
                code: ErrorCode::Unknown,
                ..
            }))
        ));
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let secret = "0123456789abcdef0123456789abcdef";
        let resume = ClientFrame::Resume(Resume {
            token: Some(secret.into()),
            after: Some(4),
            room: None,
        });
        let welcome = ServerFrame::Welcome(Welcome {
            room: "general".into(),
            id: 1,
            nickname: "alice".into(),
            online: 1,
            people: vec![alice()],
            token: secret.into(),
        });
        for shown in [format!("{resume:?}"), format!("{welcome:#?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("token"), "{shown}");
        }
        assert!(format!("{resume:?}").contains("after: Some(4)"));
    }

    #[test]
    fn server_frames_decode_in_any_key_order() {
        let frame = ServerFrame::Ack(Ack {
            client_id: "c-1".into(),
            id: 9,
            sent_at: "2026-11-25T14:03:07Z".into(),
        });
        assert_eq!(
            ServerFrame::decode(
                r#"{"payload":{"sent_at":"2026-11-25T14:03:07Z","id":9,"client_id":"c-1"},"type":"ack"}"#
            ),
            Some(frame)
        );
    }

    #[test]
    fn server_frames_missing_a_field_are_not_understood() {
        for text in [
            r#"{"type":"message","payload":{"nickname":"a","text":"b"}}"#,
            r#"{"type":"message","payload":"hello"}"#,
            r#"{"type":"ack","payload":{"client_id":"c","id":-1,"sent_at":"t"}}"#,
            r#"{"type":"welcome","payload":{"id":1,"nickname":"a","online":1}}"#,
            r#"{"type":"welcome","payload":{"id":1,"nickname":"a","online":1,"people":[]}}"#,
            r#"{"type":"history","payload":{"messages":[{"id":1}],"beginning":true}}"#,
            r#"{"type":"history","payload":{"messages":[]}}"#,
            r#"{"type":"presence","payload":{"online":1,"joined":[{"id":1}],"left":[],"renamed":[]}}"#,
            r#"{"payload":{}}"#,
        ] {
            assert_eq!(ServerFrame::decode(text), None, "{text}");
        }
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
            "[1,2,3]",
            r#"["message","hi"]"#,
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
            r#"{"type":"message","payload":{"client_id":"c"}}"#,
            r#"{"type":"message","payload":{"text":"x","client_id":7}}"#,
            r#"{"type":"nickname","payload":{"name":"alice"}}"#,
            r#"{"type":"nickname","payload":["alice"]}"#,
            r#"{"type":"typing","payload":"yes"}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"resume","payload":{"token":7}}"#,
            r#"{"type":"resume","payload":{"after":-1}}"#,
            r#"{"type":"resume"}"#,
            r#"{"type":"history","payload":{}}"#,
            r#"{"type":"history","payload":{"before":"7"}}"#,
        ] {
            assert_eq!(
                ClientFrame::decode(text).unwrap_err().code(),
                ErrorCode::InvalidPayload,
                "{text:?}"
            );
        }
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
        assert_eq!(
            ErrorPayload::from(ClientMessageIdError).code,
            ErrorCode::InvalidPayload
        );
    }
}

/// No input makes a decoder panic: whatever a client (or a server) sends,
/// the answer is a value or a typed refusal.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// JSON-shaped text around the frame types, so inputs get past the
    /// parser and into the per-type code, not only random bytes.
    fn framelike() -> impl Strategy<Value = String> {
        let kind = prop_oneof![
            prop::sample::select(vec![
                "nickname", "message", "typing", "welcome", "ack", "presence", "error", "resume",
                "history", "join", "rooms",
            ])
            .prop_map(str::to_owned),
            ".*",
        ];
        let value = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            ".*".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("[]".to_owned()),
            Just(r#"[{"id":1,"nickname":"a"}]"#.to_owned()),
        ];
        let fields = proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "text",
                    "client_id",
                    "id",
                    "nickname",
                    "online",
                    "people",
                    "joined",
                    "left",
                    "renamed",
                    "sent_at",
                    "from",
                    "code",
                    "message",
                    "active",
                    "previous",
                    "token",
                    "after",
                    "before",
                    "messages",
                    "beginning",
                    "room",
                    "rooms",
                    "name",
                ]),
                value.clone(),
            ),
            0..6,
        );
        (
            kind,
            prop_oneof![
                value,
                fields.prop_map(|fields| {
                    let body: Vec<_> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", body.join(","))
                })
            ],
        )
            .prop_map(|(kind, payload)| {
                format!(
                    r#"{{"type":{},"payload":{payload}}}"#,
                    serde_json::to_string(&kind).unwrap()
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn client_frame_decoding_never_panics(text in prop_oneof![framelike(), ".*"]) {
            if let Ok(frame) = ClientFrame::decode(&text) {
                prop_assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
            }
        }

        #[test]
        fn server_frame_decoding_never_panics(text in prop_oneof![framelike(), ".*"]) {
            if let Some(frame) = ServerFrame::decode(&text) {
                prop_assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
            }
        }

        /// `decode` reads the envelope itself (see why there); it accepts
        /// exactly what the derived decoder accepts, as the same frame.
        #[test]
        fn server_frame_decode_agrees_with_the_derived_decoder(
            text in prop_oneof![framelike(), ".*"],
        ) {
            prop_assert_eq!(
                ServerFrame::decode(&text),
                serde_json::from_str::<ServerFrame>(&text).ok()
            );
        }

        #[test]
        fn validation_never_panics_and_what_passes_is_clean(raw in ".*") {
            if let Ok(nickname) = Nickname::parse(&raw) {
                prop_assert_eq!(Nickname::parse(nickname.as_str()), Ok(nickname.clone()));
                prop_assert!(!nickname.as_str().chars().any(char::is_control));
            }
            if let Ok(text) = MessageText::parse(&raw) {
                prop_assert!(text.as_str().chars().count() <= MESSAGE_MAX_CHARS);
            }
            let _ = ClientMessageId::parse(&raw);
        }
    }
}

/// Every frame type, both directions: what one side encodes, the other
/// decodes to the very same value.
#[cfg(test)]
mod round_trip {
    use proptest::{collection::vec, option, prelude::*};

    use super::*;

    /// Any text, and often the characters that break hand-written codecs:
    /// quotes, backslashes, markup that would end a `<script>`, control
    /// characters (the line separators JavaScript once refused included),
    /// emoji sequences, direction marks and overrides, a byte order mark.
    fn any_text() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            "\"",
            "\\",
            "\\u0041",
            "</script>",
            "<!--",
            "\u{0}",
            "\n",
            "\r",
            "\u{1b}",
            "\u{7f}",
            "\u{2028}",
            "\u{2029}",
            "😀",
            "👩‍👩‍👧",
            "\u{200F}",
            "\u{202E}",
            "\u{FEFF}",
            "a",
            " ",
        ]);
        prop_oneof![
            "(?s).{0,24}",
            vec(tricky, 0..8).prop_map(|parts| parts.concat()),
        ]
    }

    /// Ids and counts over the whole u64 range, not only up to JavaScript's
    /// `Number.MAX_SAFE_INTEGER`: the browser decodes with serde_json, which
    /// reads integers digit by digit into a u64 rather than through a double,
    /// so nothing is rounded on either side. The edges are drawn often.
    fn id() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            Just(0),
            Just(9_007_199_254_740_991),
            Just(9_007_199_254_740_993),
            Just(u64::MAX),
        ]
    }

    prop_compose! {
        fn person()(id in id(), nickname in any_text()) -> Person {
            Person { id, nickname }
        }
    }

    prop_compose! {
        fn chat_message()(
            room in any_text(),
            id in id(),
            sent_at in any_text(),
            from in id(),
            nickname in any_text(),
            text in any_text(),
        ) -> ChatMessage {
            ChatMessage { room, id, sent_at, from, nickname, text }
        }
    }

    prop_compose! {
        fn welcome()(
            room in any_text(),
            id in id(),
            nickname in any_text(),
            online in id(),
            people in vec(person(), 0..4),
            token in any_text(),
        ) -> Welcome {
            Welcome { room, id, nickname, online, people, token }
        }
    }

    prop_compose! {
        fn presence()(
            room in any_text(),
            online in id(),
            joined in vec(person(), 0..3),
            left in vec(person(), 0..3),
            renamed in vec(
                (id(), any_text(), any_text())
                    .prop_map(|(id, previous, nickname)| Rename { id, previous, nickname }),
                0..3,
            ),
            people in option::of(vec(person(), 0..3)),
        ) -> Presence {
            Presence { room, online, joined, left, renamed, people }
        }
    }

    prop_compose! {
        fn error_payload()(
            code in prop::sample::select(
                ErrorCode::KNOWN.iter().copied().chain([ErrorCode::Unknown]).collect::<Vec<_>>(),
            ),
            message in any_text(),
            client_id in option::of(any_text()),
        ) -> ErrorPayload {
            ErrorPayload { code, message, client_id }
        }
    }

    /// One arm per [`ServerFrame`] variant.
    fn server_frame() -> impl Strategy<Value = ServerFrame> {
        prop_oneof![
            welcome().prop_map(ServerFrame::Welcome),
            chat_message().prop_map(ServerFrame::Message),
            (any_text(), id(), any_text()).prop_map(|(client_id, id, sent_at)| ServerFrame::Ack(
                Ack {
                    client_id,
                    id,
                    sent_at
                }
            )),
            presence().prop_map(ServerFrame::Presence),
            (any_text(), id(), any_text(), any::<bool>()).prop_map(
                |(room, id, nickname, active)| ServerFrame::Typing(Typing {
                    room,
                    id,
                    nickname,
                    active
                })
            ),
            error_payload().prop_map(ServerFrame::Error),
            (any_text(), vec(chat_message(), 0..4), any::<bool>()).prop_map(
                |(room, messages, beginning)| ServerFrame::History(HistoryPage {
                    room,
                    messages,
                    beginning
                })
            ),
            vec((any_text(), id()), 0..4).prop_map(|rooms| ServerFrame::Rooms(RoomList {
                rooms: rooms
                    .into_iter()
                    .map(|(name, online)| RoomCount { name, online })
                    .collect()
            })),
        ]
    }

    /// One arm per [`ClientFrame`] variant; each optional field is drawn
    /// both absent and present.
    fn client_frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            any_text().prop_map(ClientFrame::Nickname),
            (any_text(), option::of(any_text())).prop_map(|(text, client_id)| {
                ClientFrame::Message(OutgoingMessage { text, client_id })
            }),
            any::<bool>().prop_map(ClientFrame::Typing),
            (
                option::of(any_text()),
                option::of(id()),
                option::of(any_text())
            )
                .prop_map(|(token, after, room)| ClientFrame::Resume(Resume {
                    token,
                    after,
                    room
                })),
            id().prop_map(|before| ClientFrame::History { before }),
            any_text().prop_map(|room| ClientFrame::Join { room }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn every_server_frame_round_trips(frame in server_frame()) {
            prop_assert_eq!(ServerFrame::decode(&frame.encode()), Some(frame));
        }

        #[test]
        fn every_client_frame_round_trips(frame in client_frame()) {
            prop_assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
        }
    }
}
