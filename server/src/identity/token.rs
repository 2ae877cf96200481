//! Resume tokens: what a client shows to be the same person again.

use std::fmt;

/// 128 random bits from the operating system, as 32 lowercase hex digits.
/// Unguessable, so holding one is proof enough of being its person; only
/// ever sent to that person's own connection, and never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResumeToken(String);

impl ResumeToken {
    pub fn generate() -> Self {
        let mut bytes = [0; 16];
        // Without an OS random source, no token can be trusted: there is no
        // sensible way to go on.
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        Self(hex::encode(bytes))
    }

    /// A token as a client sent it, if it could be one of ours.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Redacted: a token in a log line would let its reader take over the
/// person it belongs to.
impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_parse_back() {
        let a = ResumeToken::generate();
        let b = ResumeToken::generate();
        assert_ne!(a, b);
        assert_eq!(ResumeToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(format!("{a:?}"), "ResumeToken(…)");
    }

    #[test]
    fn anything_else_is_not_a_token() {
        for raw in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert_eq!(ResumeToken::parse(raw), None, "{raw:?}");
        }
    }
}
