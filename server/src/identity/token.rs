//! Resume tokens: what a client shows to be the same person again.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Random bytes in a token: 128 bits, unguessable.
const RANDOM: usize = 16;
/// Bytes of the signature that follow them: 64 bits, which nobody can
/// forge faster than by asking the server 2^63 times.
const TAG: usize = 8;
/// A token's length in hex digits.
pub const TOKEN_HEX_LEN: usize = 2 * (RANDOM + TAG);

/// Issues resume tokens and recognises the ones it issued: the random part
/// signed with the database's secret (HMAC-SHA256), so a token shown after
/// a restart, or to another process of the cluster, is known to be the
/// server's, and a token a client made up is not (it gets a new one).
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl TokenKey {
    /// The key for `secret` (see [`crate::store::Store::secret`]).
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        // Only resume tokens are signed with this key.
        mac.update(b"parley resume token v1\0");
        Self(mac)
    }

    /// A new token, 128 random bits from the operating system and their
    /// signature, as [`TOKEN_HEX_LEN`] lowercase hex digits.
    pub fn issue(&self) -> ResumeToken {
        let mut random = [0; RANDOM];
        // Without an OS random source, no token can be trusted: there is no
        // sensible way to go on.
        getrandom::fill(&mut random).expect("the operating system's random source works");
        let tag = self.tag(&random);
        ResumeToken(hex::encode(random) + &hex::encode(&tag[..TAG]))
    }

    /// The token a client sent, if this key issued it. The signature is
    /// compared in constant time.
    pub fn verify(&self, raw: &str) -> Option<ResumeToken> {
        let lowercase_hex = raw.len() == TOKEN_HEX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lowercase_hex {
            return None;
        }
        let bytes = hex::decode(raw).ok()?;
        let (random, tag) = bytes.split_at(RANDOM);
        let mut mac = self.0.clone();
        mac.update(random);
        mac.verify_truncated_left(tag).ok()?;
        Some(ResumeToken(raw.to_owned()))
    }

    fn tag(&self, random: &[u8]) -> Vec<u8> {
        let mut mac = self.0.clone();
        mac.update(random);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Redacted: whoever holds it can sign tokens.
impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

/// What a client shows to be the same person again: only ever issued by a
/// [`TokenKey`], only ever sent to that person's own connection, and never
/// logged. Holding one is proof enough of being its person.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResumeToken(String);

impl ResumeToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token, in hex: what the store keeps, so that its
    /// contents do not let anyone become the person.
    pub fn digest(&self) -> String {
        digest(&self.0)
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

/// SHA-256 of `token`, in hex (see [`ResumeToken::digest`]).
pub fn digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(token.as_bytes()))
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

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(&[byte; 32])
    }

    #[test]
    fn issued_tokens_are_distinct_and_verify() {
        let key = key(1);
        let a = key.issue();
        let b = key.issue();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_HEX_LEN);
        assert_eq!(key.verify(a.as_str()), Some(a.clone()));
        assert_eq!(format!("{a:?}"), "ResumeToken(…)");
    }

    #[test]
    fn a_token_the_key_did_not_issue_is_refused() {
        let token = key(1).issue();
        assert_eq!(key(2).verify(token.as_str()), None, "another database's");
        let mut forged = token.as_str().to_owned();
        let last = if forged.ends_with('0') { "1" } else { "0" };
        forged.replace_range(TOKEN_HEX_LEN - 1.., last);
        assert_eq!(key(1).verify(&forged), None, "a changed signature");
        let mut other = token.as_str().to_owned();
        other.replace_range(..1, if other.starts_with('0') { "1" } else { "0" });
        assert_eq!(key(1).verify(&other), None, "another random part");
    }

    #[test]
    fn a_digest_is_sha256_in_hex() {
        // `printf %s 0123456789abcdef0123456789abcdef | sha256sum`
        assert_eq!(
            digest("0123456789abcdef0123456789abcdef"),
            "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9"
        );
        let token = key(1).issue();
        assert_eq!(token.digest(), digest(token.as_str()));
        assert_eq!(token.sender(), token.digest()[..32]);
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let key = key(1);
        let upper = key.issue().as_str().to_uppercase();
        for raw in [
            "",
            "abc",
            &"g".repeat(48),
            &upper,
            &"0".repeat(49),
            &"0".repeat(32),
        ] {
            assert_eq!(key.verify(raw), None, "{raw:?}");
        }
    }
}
