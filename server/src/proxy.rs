//! Reverse proxies the server trusts (`--trusted-proxies`), and what their
//! forwarding headers say about a request: the client's address
//! (`X-Forwarded-For`) and the host the client asked for
//! (`X-Forwarded-Host`).
//!
//! Those headers are believed only on a connection whose TCP peer is a
//! trusted proxy; anyone else could write them, so on any other connection
//! they are ignored entirely.

use std::{net::IpAddr, sync::Arc};

use axum::http::{header::HeaderName, HeaderMap};
use ipnet::IpNet;

use crate::limits::AddressSlot;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The addresses and ranges of the proxies whose forwarding headers are
/// believed, parsed from `--trusted-proxies`. Empty: nobody is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts no one: forwarding headers are ignored.
    pub const NONE: Self = Self(Vec::new());

    /// Parses a comma-separated list of IP addresses and CIDR ranges, such
    /// as `127.0.0.1,10.0.0.0/8,fd00::/8`. A range with bits set past its
    /// prefix (`10.0.0.1/8`) is refused rather than widened: it is more
    /// likely a typo for a single address than a wish to trust 16 million.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = if entry.contains('/') {
                let net: IpNet = entry.parse().map_err(|_| {
                    format!(
                        "`{entry}` is not a CIDR range: write it like `10.0.0.0/8` or `fd00::/8`"
                    )
                })?;
                if net.trunc() != net {
                    return Err(format!(
                        "`{entry}` has bits set past its /{} prefix: write `{}` for the range, \
                         or the address alone",
                        net.prefix_len(),
                        net.trunc()
                    ));
                }
                net
            } else {
                let ip: IpAddr = entry.parse().map_err(|_| {
                    format!(
                        "`{entry}` is not an IP address or a CIDR range: write it like \
                         `127.0.0.1`, `::1` or `10.0.0.0/8`"
                    )
                })?;
                IpNet::from(ip)
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 proxy reaching a dual-stack socket is still that proxy.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request from `peer`: `peer` itself unless it is
    /// a trusted proxy. From a trusted proxy, the rightmost address of
    /// `X-Forwarded-For` (all its lines, in order) that is not a trusted
    /// proxy too: each proxy appends the address it was reached from, so
    /// what lies left of the first untrusted one is the client's to invent.
    /// If every address is a trusted proxy, the leftmost. `peer` again if the
    /// header is missing, or malformed where it is read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut leftmost = None;
        let entries = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            // A line that is not ASCII reads as one empty entry: malformed.
            .flat_map(|line| line.to_str().unwrap_or("").rsplit(','));
        for entry in entries {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return peer;
            };
            let ip = ip.to_canonical();
            if !self.contains(ip) {
                return ip;
            }
            leftmost = Some(ip);
        }
        leftmost.unwrap_or(peer)
    }
}

/// The host a browser asked for, for the Origin check: `X-Forwarded-Host`
/// (its first value, set by the proxy the browser reached) on a request a
/// trusted proxy forwarded, if it sent one; otherwise `Host`.
pub fn request_host(headers: &HeaderMap, proxied: bool) -> Option<&str> {
    match headers.get(X_FORWARDED_HOST).filter(|_| proxied) {
        // A header that is not text names no host: refuse rather than guess.
        Some(forwarded) => forwarded.to_str().ok().map(|hosts| {
            hosts
                .split_once(',')
                .map_or(hosts, |(first, _)| first)
                .trim()
        }),
        None => headers
            .get(axum::http::header::HOST)
            .and_then(|host| host.to_str().ok()),
    }
}

/// Put into the extensions of every request that came through a trusted
/// proxy (only `serve` does): its client's place under the per-address cap,
/// for as long as the request is handled. A WebSocket upgrade takes the
/// place along, so it counts as long as the WebSocket is open.
#[derive(Debug, Clone)]
pub struct Proxied {
    pub slot: Arc<AddressSlot>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded_for(lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_static(line));
        }
        headers
    }

    #[test]
    fn addresses_and_ranges_are_parsed_and_matched() {
        let trusted = TrustedProxies::parse(" 127.0.0.1 , 10.0.0.0/8,fd00::/8,::1,").unwrap();
        for inside in ["127.0.0.1", "10.0.0.1", "10.255.255.255", "fd12::1", "::1"] {
            assert!(trusted.contains(ip(inside)), "{inside}");
        }
        for outside in ["127.0.0.2", "11.0.0.1", "192.0.2.1", "fe80::1", "::2"] {
            assert!(!trusted.contains(ip(outside)), "{outside}");
        }
        // An IPv4 proxy reaching a dual-stack socket.
        assert!(trusted.contains(ip("::ffff:10.1.2.3")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::NONE);
        assert!(!TrustedProxies::NONE.contains(ip("127.0.0.1")));
    }

    #[test]
    fn what_is_not_an_address_or_a_range_is_refused_with_the_reason() {
        for (bad, says) in [
            ("localhost", "not an IP address"),
            ("10.0.0", "not an IP address"),
            ("10.0.0.0/33", "not a CIDR range"),
            ("10.0.0.0/", "not a CIDR range"),
            ("*", "not an IP address"),
            ("127.0.0.1:80", "not an IP address"),
            ("10.0.0.1/8", "write `10.0.0.0/8`"),
            ("fd00::1/8", "write `fd00::/8`"),
        ] {
            let err = TrustedProxies::parse(&format!("127.0.0.1,{bad}")).unwrap_err();
            assert!(err.contains(bad) && err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap();
        let proxy = ip("127.0.0.1");
        for (lines, client) in [
            (&["192.0.2.1"][..], "192.0.2.1"),
            // What the client wrote itself, left of its real address, is ignored.
            (&["198.51.100.7, 192.0.2.1"], "192.0.2.1"),
            // Proxies in a chain, each trusted, are skipped.
            (&["192.0.2.1, 10.0.0.2, 10.0.0.3"], "192.0.2.1"),
            (&["198.51.100.7, 192.0.2.1", "10.0.0.2"], "192.0.2.1"),
            (&[" 192.0.2.1 ,10.0.0.2 "], "192.0.2.1"),
            (&["2001:db8::1"], "2001:db8::1"),
            (&["::ffff:192.0.2.1"], "192.0.2.1"),
            // Only trusted proxies: the farthest of them.
            (&["10.0.0.9, 10.0.0.2"], "10.0.0.9"),
            // Garbage left of the client's address is not read.
            (&["not an address, 192.0.2.1"], "192.0.2.1"),
        ] {
            assert_eq!(
                trusted.client(proxy, &forwarded_for(lines)),
                ip(client),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_header_leaves_the_peer() {
        let trusted = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap();
        let proxy = ip("127.0.0.1");
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), proxy);
        for lines in [
            &[""][..],
            &["192.0.2.1, "],
            &["192.0.2.1:4711"],
            &["[2001:db8::1]"],
            &["unknown"],
            &["192.0.2.1, 10.0.0.2, junk"],
            &["192.0.2.1", "junk, 10.0.0.2"],
        ] {
            assert_eq!(
                trusted.client(proxy, &forwarded_for(lines)),
                proxy,
                "{lines:?}"
            );
        }
        let mut not_text = HeaderMap::new();
        not_text.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"192.0.2.\xff").unwrap(),
        );
        assert_eq!(trusted.client(proxy, &not_text), proxy);
    }

    #[test]
    fn from_a_peer_that_is_not_trusted_the_headers_mean_nothing() {
        let peer = ip("192.0.2.50");
        let headers = forwarded_for(&["198.51.100.7"]);
        assert_eq!(TrustedProxies::NONE.client(peer, &headers), peer);
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(trusted.client(peer, &headers), peer);
    }

    #[test]
    fn the_host_is_the_forwarded_one_only_for_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("10.0.0.5:3000"));
        assert_eq!(request_host(&headers, true), Some("10.0.0.5:3000"));
        headers.insert(
            X_FORWARDED_HOST,
            HeaderValue::from_static("chat.example.com, 10.0.0.4"),
        );
        assert_eq!(request_host(&headers, true), Some("chat.example.com"));
        assert_eq!(request_host(&headers, false), Some("10.0.0.5:3000"));
        headers.insert(X_FORWARDED_HOST, HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(request_host(&headers, true), None);
    }
}
