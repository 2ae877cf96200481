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

    /// SHA-256 of the token, in hex: what the store keeps, so that its
    /// contents do not let anyone become the person.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The person in the store's message keys (see
    /// [`crate::store::client_key`]): half the digest, 128 bits, which no
    /// two people share and which leads back to no token.
    pub fn sender(&self) -> String {
        let mut digest = self.digest();
        digest.truncate(32);
        digest
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
    fn a_digest_is_sha256_in_hex() {
        let token = ResumeToken::parse("0123456789abcdef0123456789abcdef").unwrap();
        // `printf %s 0123456789abcdef0123456789abcdef | sha256sum`
        assert_eq!(
            token.digest(),
            "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9"
        );
        assert_ne!(token.digest(), ResumeToken::generate().digest());
    }

    #[test]
    fn anything_else_is_not_a_token() {
        for raw in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert_eq!(ResumeToken::parse(raw), None, "{raw:?}");
        }
    }
}
