//! Which web pages may talk to the server in a browser's name: the
//! page's own origin, and those the operator lists (`--allowed-origins`).
//!
//! Browsers send `Origin` with every WebSocket handshake (and with
//! cross-site form posts) but apply no same-origin rule to WebSockets
//! themselves; checking it is what keeps another site from chatting in a
//! visitor's name. Used by the handshake ([`crate::ws::upgrade`]); parsed
//! from the configuration.

/// Which `Origin`s may open a WebSocket, parsed from `--allowed-origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// `*`: no check at all.
    Any,
    /// The page's own origin, and these full origins (lowercase).
    SameOriginOr(Vec<String>),
}

impl OriginPolicy {
    /// Only the page's own origin.
    pub const SAME_ORIGIN: Self = Self::SameOriginOr(Vec::new());

    /// Parses a comma-separated list of origins such as
    /// `https://chat.example.com`, or `*` to allow any.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return Ok(Self::Any);
            }
            let valid = entry.split_once("://").is_some_and(|(scheme, authority)| {
                (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
                    && !authority.is_empty()
                    && !authority.contains(['/', '?', '#', '@', ' '])
            });
            if !valid {
                return Err(format!(
                    "`{entry}` is not an origin: write `https://host` or `https://host:port`, \
                     with no path"
                ));
            }
            allowed.push(entry.to_ascii_lowercase());
        }
        Ok(Self::SameOriginOr(allowed))
    }

    /// Whether a handshake with this `Origin` header, sent to this `Host`,
    /// may proceed. The page's own origin is `http://` or `https://` and the
    /// `Host` (a TLS proxy in front changes the scheme, not the host).
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let Self::SameOriginOr(allowed) = self else {
            return true;
        };
        let same_origin =
            origin
                .split_once("://")
                .zip(host)
                .is_some_and(|((scheme, authority), host)| {
                    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
                        && !host.is_empty()
                        && authority.eq_ignore_ascii_case(host)
                });
        same_origin || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::SAME_ORIGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pages_own_origin_and_listed_ones_are_allowed() {
        let policy =
            OriginPolicy::parse("https://chat.example.com, http://LOCALHOST:8080").unwrap();
        let host = Some("parley.example.org:3000");
        for origin in [
            "http://parley.example.org:3000",
            "https://Parley.Example.org:3000",
            "https://chat.example.com",
            "HTTPS://CHAT.example.com",
            "http://localhost:8080",
        ] {
            assert!(policy.allows(origin, host), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://parley.example.org",
            "http://parley.example.org:3000.evil.example",
            "ftp://parley.example.org:3000",
            "null",
            "",
            "https://chat.example.com:443",
            "http://localhost:8081",
        ] {
            assert!(!policy.allows(origin, host), "{origin}");
        }
        assert!(!policy.allows("http://", Some("")));
        assert!(!OriginPolicy::SAME_ORIGIN.allows("http://a.example", None));
        assert!(OriginPolicy::parse("*").unwrap().allows("null", None));
    }

    #[test]
    fn allowed_origins_are_parsed_strictly() {
        assert_eq!(OriginPolicy::parse("").unwrap(), OriginPolicy::SAME_ORIGIN);
        assert_eq!(OriginPolicy::parse(" * ").unwrap(), OriginPolicy::Any);
        assert_eq!(
            OriginPolicy::parse("https://A.example,http://b.example:81").unwrap(),
            OriginPolicy::SameOriginOr(vec![
                "https://a.example".into(),
                "http://b.example:81".into()
            ])
        );
        for bad in [
            "chat.example.com",
            "https://",
            "https://chat.example.com/",
            "https://chat.example.com/path",
            "ws://chat.example.com",
            "https://user@chat.example.com",
        ] {
            assert!(OriginPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
