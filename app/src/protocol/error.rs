//! Error codes and the `error` frame's payload.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares [`ErrorCode`] with each variant's wire name written exactly once:
/// serialization, parsing and the list of known codes all come from here.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $wire:literal,)*) => {
        /// Machine-readable error codes, as they appear on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code from a newer server; lets old clients keep working.
            Unknown,
        }

        impl ErrorCode {
            /// Every code this version knows, in declaration order.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant,)*];

            /// The code exactly as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Unknown => "unknown",
                }
            }

            /// Reads a code as it appears on the wire; unknown codes (from a
            /// newer server) become [`ErrorCode::Unknown`].
            pub fn from_wire(code: &str) -> Self {
                match code {
                    $($wire => Self::$variant,)*
                    _ => Self::Unknown,
                }
            }
        }
    };
}

error_codes! {
    /// The text frame is not valid JSON.
    MalformedJson => "malformed_json",
    /// Valid JSON, but not an object with a string `type`.
    InvalidFrame => "invalid_frame",
    /// The `type` is not one this server understands.
    UnknownType => "unknown_type",
    /// The `payload` is missing or of the wrong JSON type.
    InvalidPayload => "invalid_payload",
    /// A binary WebSocket frame; the protocol is text only.
    BinaryNotSupported => "binary_not_supported",
    /// The nickname breaks the rules of [`Nickname::parse`](super::Nickname::parse).
    InvalidNickname => "invalid_nickname",
    /// Someone online already uses this nickname (compared case-insensitively
    /// after Unicode NFKC normalisation).
    NicknameTaken => "nickname_taken",
    /// The message text breaks the rules of [`MessageText::parse`](super::MessageText::parse).
    InvalidMessage => "invalid_message",
    /// The client sends faster than its rate limit allows; the frame was
    /// dropped.
    RateLimited => "rate_limited",
    /// The server could not store the message (its database failed or is
    /// falling behind); it was not relayed. Sending it again is safe.
    Unavailable => "unavailable",
    /// A frame that is only valid at another point of the conversation:
    /// `resume` anywhere but first on a `/ws?resume` connection.
    OutOfOrder => "out_of_order",
    /// The room name breaks the rules of [`RoomName::parse`](super::RoomName::parse).
    InvalidRoom => "invalid_room",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_wire(&code))
    }
}

/// The payload of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    /// An explanation for humans; its wording is not part of the contract.
    pub message: String,
    /// The `client_id` of the message this error is about, if it had one,
    /// so the sender can mark that message as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ErrorPayload {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    /// The same error, about the message with this `client_id`.
    pub fn about(mut self, client_id: Option<&str>) -> Self {
        self.client_id = client_id.map(str::to_owned);
        self
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
