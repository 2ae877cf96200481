//! The hub: who is connected, and fan-out of frames to them.
//!
//! Each connection owns a bounded queue of encoded frames. A broadcast is
//! encoded once by the caller and handed to every queue as a cheap clone of
//! the same bytes, so fan-out costs a reference-count bump per recipient, not
//! a serialization. A client whose queue is full has fallen too far behind: it
//! is removed from the hub (its connection then closes) instead of letting one
//! slow reader hold up or bloat everyone else.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

/// Identifies one connection for its whole life; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[derive(Debug)]
pub struct Hub {
    clients: Mutex<HashMap<ClientId, mpsc::Sender<Utf8Bytes>>>,
    next_id: AtomicU64,
    queue_capacity: usize,
}

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients whose queue took the frame.
    pub queued: usize,
    /// Recipients dropped because their queue was full.
    pub evicted: usize,
}

impl Hub {
    /// `queue_capacity` (at least 1) is how many frames may wait for a client.
    pub fn new(queue_capacity: usize) -> Arc<Self> {
        assert!(queue_capacity > 0, "a client queue needs room for a frame");
        Arc::new(Self {
            clients: Mutex::default(),
            next_id: AtomicU64::new(1),
            queue_capacity,
        })
    }

    /// Registers a new client. It stays in the hub until the returned
    /// [`Membership`] is dropped, however its connection ends.
    pub fn join(self: &Arc<Self>) -> (Membership, mpsc::Receiver<Utf8Bytes>) {
        let id = ClientId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        self.lock().insert(id, tx);
        let membership = Membership {
            id,
            hub: Arc::clone(self),
        };
        (membership, rx)
    }

    /// Queues `frame` for every client except `from`.
    pub fn broadcast_except(&self, from: ClientId, frame: &Utf8Bytes) -> Fanout {
        let mut fanout = Fanout::default();
        self.lock().retain(|&id, tx| {
            if id == from {
                return true;
            }
            match tx.try_send(frame.clone()) {
                Ok(()) => {
                    fanout.queued += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(client = %id, "client too slow, disconnecting it");
                    fanout.evicted += 1;
                    false
                }
                // The connection is already gone; its Membership will find
                // nothing left to remove.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        fanout
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, id: ClientId) {
        self.lock().remove(&id);
    }

    /// The map is only touched by short, non-blocking sections, so a poisoned
    /// lock still holds consistent data: keep serving rather than panic.
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientId, mpsc::Sender<Utf8Bytes>>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A client's place in the hub; leaving is tied to drop so that no exit path
/// of a connection (close, error, panic, shutdown) can leak an entry.
#[derive(Debug)]
pub struct Membership {
    id: ClientId,
    hub: Arc<Hub>,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Utf8Bytes {
        Utf8Bytes::from(text.to_owned())
    }

    #[tokio::test]
    async fn broadcast_reaches_everyone_but_the_sender() {
        let hub = Hub::new(4);
        let (alice, mut alice_rx) = hub.join();
        let (_bob, mut bob_rx) = hub.join();
        let (_carol, mut carol_rx) = hub.join();

        let fanout = hub.broadcast_except(alice.id(), &frame("hi"));

        assert_eq!(
            fanout,
            Fanout {
                queued: 2,
                evicted: 0
            }
        );
        assert_eq!(bob_rx.recv().await.unwrap().as_str(), "hi");
        assert_eq!(carol_rx.recv().await.unwrap().as_str(), "hi");
        assert!(alice_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn dropping_a_membership_leaves_the_hub() {
        let hub = Hub::new(4);
        let (alice, _alice_rx) = hub.join();
        let (bob, _bob_rx) = hub.join();
        assert_eq!(hub.len(), 2);
        drop(bob);
        assert_eq!(hub.len(), 1);
        assert_eq!(hub.broadcast_except(alice.id(), &frame("x")).queued, 0);
        drop(alice);
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_evicted_without_blocking_others() {
        let hub = Hub::new(2);
        let (alice, _alice_rx) = hub.join();
        let (_slow, mut slow_rx) = hub.join();
        let (_fast, mut fast_rx) = hub.join();

        for i in 0..3 {
            hub.broadcast_except(alice.id(), &frame(&i.to_string()));
            assert_eq!(fast_rx.recv().await.unwrap().as_str(), i.to_string());
        }

        assert_eq!(hub.len(), 2, "the slow client was removed");
        // It still gets what was queued before it fell behind, then the end.
        assert_eq!(slow_rx.recv().await.unwrap().as_str(), "0");
        assert_eq!(slow_rx.recv().await.unwrap().as_str(), "1");
        assert!(slow_rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_closed_receiver_is_pruned_on_the_next_broadcast() {
        let hub = Hub::new(2);
        let (alice, _alice_rx) = hub.join();
        let (_bob, bob_rx) = hub.join();
        drop(bob_rx);
        let fanout = hub.broadcast_except(alice.id(), &frame("x"));
        assert_eq!(fanout, Fanout::default());
        assert_eq!(hub.len(), 1);
    }
}
