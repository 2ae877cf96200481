//! The id of one connection, known to every layer of the server.

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one connection for the server's life; never reused. Clients
/// see it as their `id` in `welcome`, `from` in messages and in presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(u64);

impl ClientId {
    /// A fresh id, never handed out before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// An id as a client names it (in `from` or `welcome`).
impl From<u64> for ClientId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}
