//! What a client may say: nicknames, message texts and message ids, parsed
//! into types that can only hold acceptable values. The page checks its
//! input with these before sending; the server enforces the very same rules.

use std::fmt;

use super::error::{ErrorCode, ProtocolError};

/// The nickname every connection starts with, shared by everyone who has
/// not picked one.
pub const DEFAULT_NICKNAME: &str = "Anonymous";
/// Longest nickname, in characters (Unicode scalar values), after trimming.
pub const NICKNAME_MAX_CHARS: usize = 32;
/// Longest message text, in characters (Unicode scalar values), after trimming.
pub const MESSAGE_MAX_CHARS: usize = 2_000;
/// Most combining marks allowed on one character of a message. Real text
/// needs a few (Vietnamese stacks two); "Zalgo" text stacks hundreds to
/// paint over the lines around it.
pub const MAX_COMBINING_MARKS: usize = 4;
/// Longest `client_id`, in bytes; a UUID takes 36.
pub const CLIENT_ID_MAX_LEN: usize = 64;
/// The room at `/`, and the room of every client that never names one.
pub const GENERAL_ROOM: &str = "general";
/// Longest room name, in bytes (all its characters are ASCII).
pub const ROOM_NAME_MAX_LEN: usize = 32;

/// A validated room name: 1 to [`ROOM_NAME_MAX_LEN`] lowercase ASCII
/// letters, digits, `-` or `_`, so it is its own URL path segment
/// (`/r/<name>`) and cannot pass for another name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a room name is 1 to {ROOM_NAME_MAX_LEN} of a-z, 0-9, - and _")]
pub struct RoomNameError;

impl ProtocolError for RoomNameError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidRoom
    }
}

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, RoomNameError> {
        let allowed =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
        if (1..=ROOM_NAME_MAX_LEN).contains(&raw.len()) && raw.bytes().all(allowed) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RoomNameError)
        }
    }

    /// `general`.
    pub fn general() -> Self {
        Self(GENERAL_ROOM.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room's page: `/` for `general`, `/r/<name>` for the others.
    pub fn path(&self) -> String {
        if self.0 == GENERAL_ROOM {
            "/".to_owned()
        } else {
            format!("/r/{}", self.0)
        }
    }

    /// The room a page path shows: `/` is `general`, `/r/<name>` is
    /// `<name>`; `None` for any other path or an invalid name.
    pub fn from_path(path: &str) -> Option<Self> {
        match path {
            "/" | "" => Some(Self::general()),
            _ => Self::parse(path.strip_prefix("/r/")?).ok(),
        }
    }
}

/// Rooms keyed by name can be looked up with a plain `&str` (a stored
/// message's room), without parsing or allocating.
impl std::borrow::Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Default for RoomName {
    fn default() -> Self {
        Self::general()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated nickname: trimmed, 1 to [`NICKNAME_MAX_CHARS`] characters, no
/// control, invisible or direction-changing characters.
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
    #[error("nickname must not contain invisible or direction-changing characters")]
    InvisibleCharacter,
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
        } else if trimmed.chars().any(is_invisible) {
            Err(NicknameError::InvisibleCharacter)
        } else {
            Ok(Self(trimmed.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared default, `Anonymous`, which many may use at once.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_NICKNAME
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

/// Characters that show nothing, or change the direction of what follows,
/// and so let one nickname pass for another: Unicode's default-ignorable
/// code points (zero-width characters, bidi marks, overrides and isolates,
/// fillers, variation selectors, tags), the Hangul and Braille blanks, and
/// every space but the plain one.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}'
        | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
        || (c.is_whitespace() && c != ' ')
}

/// A validated message text: trimmed, 1 to [`MESSAGE_MAX_CHARS`] characters,
/// at most [`MAX_COMBINING_MARKS`] combining marks on any one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageTextError {
    #[error("message must not be blank")]
    Empty,
    #[error("message must be at most {MESSAGE_MAX_CHARS} characters")]
    TooLong,
    #[error("message stacks more than {MAX_COMBINING_MARKS} combining marks on one character")]
    StackedMarks,
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
            return Err(MessageTextError::Empty);
        }
        if trimmed.chars().count() > MESSAGE_MAX_CHARS {
            return Err(MessageTextError::TooLong);
        }
        let mut run = 0;
        for c in trimmed.chars() {
            run = if is_combining_mark(c) { run + 1 } else { 0 };
            if run > MAX_COMBINING_MARKS {
                return Err(MessageTextError::StackedMarks);
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The generic combining-mark blocks, the ones stacked to draw over other
/// lines. Script-specific marks (Devanagari vowel signs, Hebrew points) are
/// left alone: a whole Unicode table would cost the page kilobytes, and the
/// page clips each message to its own line box anyway.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{0483}'..='\u{0489}' | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// A message id chosen by the client (a UUID, say), so that a message sent
/// twice (a retry after a lost ack) is stored and relayed once: 1 to
/// [`CLIENT_ID_MAX_LEN`] ASCII letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMessageId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client_id must be 1 to {CLIENT_ID_MAX_LEN} ASCII letters, digits, '-' or '_'")]
pub struct ClientMessageIdError;

impl ProtocolError for ClientMessageIdError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidPayload
    }
}

impl ClientMessageId {
    pub fn parse(raw: &str) -> Result<Self, ClientMessageIdError> {
        let valid = (1..=CLIENT_ID_MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid
            .then(|| Self(raw.to_owned()))
            .ok_or(ClientMessageIdError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Nickname::default().is_default());
    }

    #[test]
    fn nicknames_refuse_invisible_and_direction_changing_characters() {
        for bad in [
            "al\u{200B}ice",  // zero-width space
            "al\u{200D}ice",  // zero-width joiner
            "\u{202E}ecila",  // right-to-left override
            "alice\u{2066}",  // left-to-right isolate
            "al\u{200F}ice",  // right-to-left mark
            "\u{3164}",       // Hangul filler, which looks blank
            "\u{3164}alice",  // ... or pads a name
            "al\u{FEFF}ice",  // byte order mark
            "al\u{00AD}ice",  // soft hyphen
            "alice\u{E0041}", // tag character
            "al\u{00A0}ice",  // no-break space
            "a\u{3000}lice",  // ideographic space
            "ali\u{FE0F}ce",  // variation selector
        ] {
            assert_eq!(
                Nickname::parse(bad).unwrap_err(),
                NicknameError::InvisibleCharacter,
                "{bad:?}"
            );
        }
        for good in ["alice bob", "민준", "Ａlice", "José", "אליס", "🦀 crab"] {
            assert!(Nickname::parse(good).is_ok(), "{good:?}");
        }
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
    fn stacked_combining_marks_are_refused_but_accents_pass() {
        // Vietnamese "ệ" written with two combining marks, and a few in a row.
        assert!(MessageText::parse("Tie\u{0323}\u{0302}ng Vie\u{0323}\u{0302}t").is_ok());
        let marks = "\u{0301}".repeat(MAX_COMBINING_MARKS);
        assert!(MessageText::parse(&format!("a{marks} b{marks}")).is_ok());
        let zalgo = format!("a{}", "\u{0336}\u{0301}".repeat(500));
        assert_eq!(
            MessageText::parse(&zalgo).unwrap_err(),
            MessageTextError::StackedMarks
        );
    }

    #[test]
    fn room_names_are_short_lowercase_and_url_safe() {
        for good in ["general", "a", "rust-lang", "room_2", &"x".repeat(32)] {
            assert_eq!(RoomName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "General",
            "with space",
            "é",
            "a/b",
            "../x",
            "a.b",
            "%2e",
            &"x".repeat(33),
        ] {
            assert_eq!(RoomName::parse(bad), Err(RoomNameError), "{bad:?}");
        }
    }

    #[test]
    fn room_paths_round_trip_and_general_is_the_root() {
        assert_eq!(RoomName::general().path(), "/");
        assert_eq!(RoomName::from_path("/"), Some(RoomName::general()));
        let rust = RoomName::parse("rust").unwrap();
        assert_eq!(rust.path(), "/r/rust");
        assert_eq!(RoomName::from_path("/r/rust"), Some(rust));
        for bad in ["/r/", "/r/Rust", "/r/a/b", "/rust", "/x/rust"] {
            assert_eq!(RoomName::from_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        let uuid = "3f2b8c1e-9d4a-4c7b-8e2f-1a6d5c9b0e7f";
        assert_eq!(ClientMessageId::parse(uuid).unwrap().as_str(), uuid);
        for bad in [
            "",
            "has space",
            "quote\"",
            &"x".repeat(CLIENT_ID_MAX_LEN + 1),
            "é",
        ] {
            assert!(ClientMessageId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
