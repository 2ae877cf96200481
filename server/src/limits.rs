//! Caps on open connections, in total and per client address, so that one
//! client (or a flood of them) cannot exhaust the server's file descriptors
//! and memory; and on how fast each client address may make requests and
//! WebSocket handshakes ([`RequestRates`]).
//!
//! A client address is a [`ClientNet`]: an IPv4 address, or an IPv6 /64.
//!
//! A connection counts against its peer's address from the moment it is
//! accepted, unless the peer is a trusted reverse proxy (see
//! [`crate::proxy`]): the proxy's connections count only in the total, and
//! each request on them counts against its client's address (an
//! [`AddressSlot`]) once its headers are read, for as long as it is handled
//! or, once upgraded, as long as its WebSocket is open.

mod net;
mod rate;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

pub use net::ClientNet;
pub use rate::{RequestRates, MAX_TRACKED};

/// Counts open connections; [`ConnectionLimits::try_acquire`] hands out a
/// [`ConnectionSlot`] per connection, which gives its place back on drop.
#[derive(Clone)]
pub struct ConnectionLimits {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<ClientNet, usize>,
}

/// Why a connection, or a request, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server is at its connection limit")]
    ServerFull,
    #[error("this address has too many open connections")]
    AddressFull,
    #[error("this address is over its request rate")]
    RequestRate,
    #[error("this address is over its WebSocket handshake rate")]
    HandshakeRate,
}

impl Refusal {
    /// The whole HTTP answer to a refused connection, written before anything
    /// is read: it needs no parsing, and costs no more than the accept did.
    /// It has the headers every response has ([`crate::headers`]).
    pub fn response(self) -> &'static [u8] {
        match self {
            Self::ServerFull => {
                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
                  Content-Length: 20\r\n\r\nserver is too busy.\n"
            }
            Self::AddressFull => {
                b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
                  Content-Length: 40\r\n\r\ntoo many connections from this address.\n"
            }
            Self::RequestRate => {
                b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
                  Content-Length: 37\r\n\r\ntoo many requests from this address.\n"
            }
            Self::HandshakeRate => {
                b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
                  Content-Length: 49\r\n\r\ntoo many WebSocket handshakes from this address.\n"
            }
        }
    }

    /// The body of [`Self::response`].
    pub fn body(self) -> &'static str {
        match self {
            Self::ServerFull => "server is too busy.\n",
            Self::AddressFull => "too many connections from this address.\n",
            Self::RequestRate => "too many requests from this address.\n",
            Self::HandshakeRate => "too many WebSocket handshakes from this address.\n",
        }
    }
}

/// The same answer for a request refused once its headers are read: one
/// over a rate, or one that came through a trusted proxy, whose connection
/// stays open for its other clients. `Retry-After: 1` holds for the rates
/// too: they refill at one token a second at least.
impl axum::response::IntoResponse for Refusal {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header, StatusCode};
        let status = match self {
            Self::ServerFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::AddressFull | Self::RequestRate | Self::HandshakeRate => {
                StatusCode::TOO_MANY_REQUESTS
            }
        };
        let mut response = (
            status,
            [
                (header::RETRY_AFTER, "1"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            self.body(),
        )
            .into_response();
        // Answered before the router, whose layer adds them to the rest.
        crate::headers::add_plain(response.headers_mut());
        response
    }
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                counts: Mutex::default(),
            }),
        }
    }

    /// A place for one more connection from `ip`, if both caps allow it.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let net = ClientNet::from(ip);
        let mut counts = self.inner.lock();
        if counts.total >= self.inner.max_total {
            return Err(Refusal::ServerFull);
        }
        counts.add_address(net, self.inner.max_per_ip)?;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(&self.inner),
            counted: Counted::Peer(net),
        })
    }

    /// A place for one more connection from a trusted proxy, if the total
    /// cap allows it: its requests count against their clients' addresses
    /// ([`Self::try_acquire_address`]), not against the proxy's.
    pub fn try_acquire_proxied(&self) -> Result<ConnectionSlot, Refusal> {
        let mut counts = self.inner.lock();
        if counts.total >= self.inner.max_total {
            return Err(Refusal::ServerFull);
        }
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(&self.inner),
            counted: Counted::Proxied(None),
        })
    }

    /// A place under the per-address cap for one request (or WebSocket)
    /// from `ip` that came through a trusted proxy; the total counts the
    /// proxy's connection already.
    pub fn try_acquire_address(&self, ip: IpAddr) -> Result<AddressSlot, Refusal> {
        let net = ClientNet::from(ip);
        self.inner.lock().add_address(net, self.inner.max_per_ip)?;
        Ok(AddressSlot {
            limits: Arc::clone(&self.inner),
            net,
        })
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
    }
}

impl Counts {
    fn add_address(&mut self, net: ClientNet, max_per_ip: usize) -> Result<(), Refusal> {
        let from_ip = self.per_ip.entry(net).or_default();
        if *from_ip >= max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *from_ip += 1;
        Ok(())
    }

    fn remove_address(&mut self, net: ClientNet) {
        if let Some(from_ip) = self.per_ip.get_mut(&net) {
            *from_ip -= 1;
            if *from_ip == 0 {
                // Forget idle addresses, or the map grows with every client.
                self.per_ip.remove(&net);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are updated in single steps that cannot panic half-way,
        // so a poisoned lock still guards consistent numbers.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One open connection's place under the limits, given back on drop.
pub struct ConnectionSlot {
    limits: Arc<Inner>,
    counted: Counted,
}

/// What a connection counts against, besides the total.
enum Counted {
    /// The address it was accepted from.
    Peer(ClientNet),
    /// Nothing, being a trusted proxy's; once it is a WebSocket, its
    /// client's address.
    Proxied(Option<Arc<AddressSlot>>),
}

impl ConnectionSlot {
    /// Makes a trusted proxy's connection, now a WebSocket, count against
    /// its client's address for as long as it is open. A connection counted
    /// against its peer keeps that.
    pub fn attribute(&mut self, client: Arc<AddressSlot>) {
        if let Counted::Proxied(attributed) = &mut self.counted {
            *attributed = Some(client);
        }
    }

    /// The client address this connection counts against: its peer's, or
    /// once [attributed](Self::attribute), its proxied client's.
    pub fn client(&self) -> Option<ClientNet> {
        match &self.counted {
            Counted::Peer(net) => Some(*net),
            Counted::Proxied(client) => client.as_ref().map(|client| client.net),
        }
    }
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ConnectionSlot");
        match &self.counted {
            Counted::Peer(net) => debug.field("client", net),
            Counted::Proxied(client) => debug.field("proxied_for", &client.as_ref().map(|c| c.net)),
        };
        debug.finish()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.total -= 1;
        if let Counted::Peer(net) = self.counted {
            counts.remove_address(net);
        }
        // A proxied connection's client slot, if any, gives its place back
        // by itself.
    }
}

/// One client's place under the per-address cap, for a request that came
/// through a trusted proxy; given back on drop.
pub struct AddressSlot {
    limits: Arc<Inner>,
    net: ClientNet,
}

impl AddressSlot {
    /// The client address this counts against.
    pub fn client(&self) -> ClientNet {
        self.net
    }
}

impl std::fmt::Debug for AddressSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSlot")
            .field("client", &self.net)
            .finish()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.limits.lock().remove_address(self.net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_per_address_cap_applies_to_each_address_alone() {
        let limits = ConnectionLimits::new(10, 2);
        let a1 = limits.try_acquire(A).unwrap();
        let _a2 = limits.try_acquire(A).unwrap();
        assert_eq!(limits.try_acquire(A).unwrap_err(), Refusal::AddressFull);
        let _b = limits.try_acquire(B).unwrap();
        assert_eq!(limits.open(), 3);
        drop(a1);
        let _a3 = limits.try_acquire(A).unwrap();
    }

    #[test]
    fn the_total_cap_comes_first_and_slots_are_given_back_on_drop() {
        let limits = ConnectionLimits::new(2, 1);
        let a = limits.try_acquire(A).unwrap();
        let b = limits.try_acquire(B).unwrap();
        assert_eq!(limits.try_acquire(A).unwrap_err(), Refusal::ServerFull);
        drop((a, b));
        assert_eq!(limits.open(), 0);
        assert!(limits.inner.lock().per_ip.is_empty());
        let _a = limits.try_acquire(A).unwrap();
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_the_ipv4_address() {
        let limits = ConnectionLimits::new(10, 1);
        let _a = limits.try_acquire(A).unwrap();
        let mapped = match A {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => unreachable!(),
        };
        assert_eq!(
            limits.try_acquire(mapped).unwrap_err(),
            Refusal::AddressFull
        );
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_in_one_ipv6_64_share_its_cap_directly_or_through_a_proxy() {
        let limits = ConnectionLimits::new(10, 2);
        let _direct = limits.try_acquire(ip("2001:db8::1")).unwrap();
        let _proxied = limits.try_acquire_address(ip("2001:db8::ffff:1")).unwrap();
        assert_eq!(
            limits.try_acquire(ip("2001:db8::2")).unwrap_err(),
            Refusal::AddressFull
        );
        assert_eq!(
            limits.try_acquire_address(ip("2001:db8::3")).unwrap_err(),
            Refusal::AddressFull
        );
        let _next_64 = limits.try_acquire(ip("2001:db8:0:1::1")).unwrap();
    }

    #[test]
    fn a_slot_says_whom_it_counts_against() {
        let limits = ConnectionLimits::new(10, 10);
        let direct = limits.try_acquire(ip("2001:db8::1")).unwrap();
        assert_eq!(direct.client(), Some(ClientNet::from(ip("2001:db8::"))));
        let mut proxied = limits.try_acquire_proxied().unwrap();
        assert_eq!(proxied.client(), None);
        proxied.attribute(Arc::new(limits.try_acquire_address(A).unwrap()));
        assert_eq!(proxied.client(), Some(ClientNet::from(A)));
    }

    #[test]
    fn a_proxys_connections_count_in_the_total_and_its_requests_against_their_clients() {
        let limits = ConnectionLimits::new(3, 1);
        // The proxy's own connections are not capped per address...
        let mut first = limits.try_acquire_proxied().unwrap();
        let second = limits.try_acquire_proxied().unwrap();
        assert_eq!(limits.open(), 2);
        assert!(limits.inner.lock().per_ip.is_empty());
        // ...its requests are, each against its client's address.
        let a = Arc::new(limits.try_acquire_address(A).unwrap());
        assert_eq!(
            limits.try_acquire_address(A).unwrap_err(),
            Refusal::AddressFull
        );
        assert_eq!(limits.try_acquire(A).unwrap_err(), Refusal::AddressFull);
        let b = limits.try_acquire_address(B).unwrap();
        drop(b);
        // A WebSocket keeps its client's place for as long as it is open.
        first.attribute(Arc::clone(&a));
        drop(a);
        assert_eq!(
            limits.try_acquire_address(A).unwrap_err(),
            Refusal::AddressFull
        );
        drop(first);
        assert_eq!(limits.open(), 1);
        let _a = limits.try_acquire_address(A).unwrap();
        // The total cap still applies to a proxy.
        let _third = limits.try_acquire_proxied().unwrap();
        let _fourth = limits.try_acquire(B).unwrap();
        assert_eq!(
            limits.try_acquire_proxied().unwrap_err(),
            Refusal::ServerFull
        );
        drop(second);
        assert_eq!(limits.open(), 2);
    }

    #[test]
    fn a_connection_counted_against_its_peer_keeps_that() {
        let limits = ConnectionLimits::new(10, 1);
        let mut direct = limits.try_acquire(A).unwrap();
        direct.attribute(Arc::new(limits.try_acquire_address(B).unwrap()));
        // The client slot was dropped at once: B is free, A is still taken.
        let _b = limits.try_acquire(B).unwrap();
        assert_eq!(limits.try_acquire(A).unwrap_err(), Refusal::AddressFull);
        drop(direct);
        let _a = limits.try_acquire(A).unwrap();
    }

    #[test]
    fn refusals_are_complete_http_answers() {
        for (refusal, status) in [
            (Refusal::ServerFull, "503"),
            (Refusal::AddressFull, "429"),
            (Refusal::RequestRate, "429"),
            (Refusal::HandshakeRate, "429"),
        ] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("\r\nRetry-After: 1"), "{head}");
            assert!(head.contains("\r\nConnection: close"), "{head}");
            // The same headers as every other response.
            let mut expected = axum::http::HeaderMap::new();
            crate::headers::add_plain(&mut expected);
            for (name, value) in &expected {
                let line =
                    format!("\r\n{}: {}", name, value.to_str().unwrap()).to_ascii_lowercase();
                assert!(
                    head.to_ascii_lowercase().contains(&line),
                    "{head} lacks {line}"
                );
            }
            let length = format!("\r\nContent-Length: {}", body.len());
            assert!(head.contains(&length), "{head} vs {body:?}");
            assert_eq!(body, refusal.body());
        }
    }
}
