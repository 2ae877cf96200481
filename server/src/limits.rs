//! Caps on open connections, in total and per client address, so that one
//! client (or a flood of them) cannot exhaust the server's file descriptors
//! and memory.

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
    pub fn response(self) -> &'static [u8] {
        match self {
            Self::ServerFull => {
                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  Content-Length: 20\r\n\r\nserver is too busy.\n"
            }
            Self::AddressFull => {
                b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\
                  Retry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
                  Content-Length: 40\r\n\r\ntoo many connections from this address.\n"
            }
        }
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
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= self.inner.max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(&self.inner),
            ip,
        })
    }

    /// How many connections are open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
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
    ip: IpAddr,
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot")
            .field("ip", &self.ip)
            .finish()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.total -= 1;
        if let Some(from_ip) = counts.per_ip.get_mut(&self.ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                // Forget idle addresses, or the map grows with every client.
                counts.per_ip.remove(&self.ip);
            }
        }
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
    fn refusals_are_complete_http_answers() {
        for (refusal, status) in [(Refusal::ServerFull, "503"), (Refusal::AddressFull, "429")] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("\r\nRetry-After: 1"), "{head}");
            assert!(head.contains("\r\nConnection: close"), "{head}");
            let length = format!("\r\nContent-Length: {}", body.len());
            assert!(head.contains(&length), "{head} vs {body:?}");
        }
    }
}
