//! Caps on open connections, in total and per client address, so that one
//! client (or a flood of them) cannot exhaust the server's file descriptors
//! and memory.
//!
//! A connection counts against its peer's address from the moment it is
//! accepted, unless the peer is a trusted reverse proxy (see
//! [`crate::proxy`]): the proxy's connections count only in the total, and
//! each request on them counts against its client's address (an
//! [`AddressSlot`]) once its headers are read, for as long as it is handled
//! or, once upgraded, as long as its WebSocket is open.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

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
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server is at its connection limit")]
    ServerFull,
    #[error("this address has too many open connections")]
    AddressFull,
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
        }
    }

    /// The body of [`Self::response`].
    pub fn body(self) -> &'static str {
        match self {
            Self::ServerFull => "server is too busy.\n",
            Self::AddressFull => "too many connections from this address.\n",
        }
    }
}

/// The same answer for a request that came through a trusted proxy, which
/// is refused once its headers are read: the connection is the proxy's, and
/// stays open for its other clients.
impl axum::response::IntoResponse for Refusal {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header, StatusCode};
        let status = match self {
            Self::ServerFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::AddressFull => StatusCode::TOO_MANY_REQUESTS,
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
        // An IPv4 client reaching a dual-stack socket is still that client.
        let ip = ip.to_canonical();
        let mut counts = self.inner.lock();
        if counts.total >= self.inner.max_total {
            return Err(Refusal::ServerFull);
        }
        counts.add_address(ip, self.inner.max_per_ip)?;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(&self.inner),
            counted: Counted::Peer(ip),
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
        let ip = ip.to_canonical();
        self.inner.lock().add_address(ip, self.inner.max_per_ip)?;
        Ok(AddressSlot {
            limits: Arc::clone(&self.inner),
            ip,
        })
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
    }
}

impl Counts {
    fn add_address(&mut self, ip: IpAddr, max_per_ip: usize) -> Result<(), Refusal> {
        let from_ip = self.per_ip.entry(ip).or_default();
        if *from_ip >= max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *from_ip += 1;
        Ok(())
    }

    fn remove_address(&mut self, ip: IpAddr) {
        if let Some(from_ip) = self.per_ip.get_mut(&ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                // Forget idle addresses, or the map grows with every client.
                self.per_ip.remove(&ip);
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
    Peer(IpAddr),
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
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ConnectionSlot");
        match &self.counted {
            Counted::Peer(ip) => debug.field("ip", ip),
            Counted::Proxied(client) => debug.field("proxied_for", &client.as_ref().map(|c| c.ip)),
        };
        debug.finish()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.total -= 1;
        if let Counted::Peer(ip) = self.counted {
            counts.remove_address(ip);
        }
        // A proxied connection's client slot, if any, gives its place back
        // by itself.
    }
}

/// One client's place under the per-address cap, for a request that came
/// through a trusted proxy; given back on drop.
pub struct AddressSlot {
    limits: Arc<Inner>,
    ip: IpAddr,
}

impl std::fmt::Debug for AddressSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSlot").field("ip", &self.ip).finish()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.limits.lock().remove_address(self.ip);
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
        for (refusal, status) in [(Refusal::ServerFull, "503"), (Refusal::AddressFull, "429")] {
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
