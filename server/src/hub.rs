//! The hub: who is connected, and fan-out of frames to them.
//!
//! Each connection owns an [`Outbox`], a bounded queue of encoded frames. A
//! broadcast is encoded once by the caller and handed to every outbox as a
//! cheap clone of the same bytes, so fan-out costs a reference-count bump per
//! recipient, not a serialization. A client whose outbox is full has fallen
//! too far behind: it is removed from the hub (its connection then closes)
//! instead of letting one slow reader hold up or bloat everyone else.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

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
    clients: Mutex<HashMap<ClientId, Arc<Outbox>>>,
    next_id: AtomicU64,
    queue_capacity: usize,
}

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients whose outbox took the frame.
    pub queued: usize,
    /// Recipients dropped because their outbox was full.
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
    pub fn join(self: &Arc<Self>) -> Membership {
        let id = ClientId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(self.queue_capacity));
        self.lock().insert(id, Arc::clone(&outbox));
        Membership {
            id,
            outbox,
            hub: Arc::clone(self),
        }
    }

    /// Queues `frame` for every client except `from`.
    pub fn broadcast_except(&self, from: ClientId, frame: &Utf8Bytes) -> Fanout {
        let mut fanout = Fanout::default();
        self.lock().retain(|&id, outbox| {
            if id == from {
                return true;
            }
            if outbox.push(frame) {
                fanout.queued += 1;
                true
            } else {
                tracing::warn!(client = %id, "client too slow, disconnecting it");
                fanout.evicted += 1;
                false
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
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientId, Arc<Outbox>>> {
        lock(&self.clients)
    }
}

/// A client's place in the hub; leaving is tied to drop so that no exit path
/// of a connection (close, error, panic, shutdown) can leak an entry.
#[derive(Debug)]
pub struct Membership {
    id: ClientId,
    outbox: Arc<Outbox>,
    hub: Arc<Hub>,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Frames queued for this client.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

/// A bounded queue of encoded frames for one client.
///
/// Cheaper than a channel where it matters: an idle client's queue holds no
/// buffer at all, and the connection takes everything queued in one go, so a
/// burst of broadcasts costs the client one wake-up and one socket write.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct OutboxState {
    frames: VecDeque<Utf8Bytes>,
    /// Set when the client fell behind: nothing more will be queued.
    evicted: bool,
}

impl Outbox {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity,
        }
    }

    /// Queues a frame; `false` (and eviction) if the queue is full.
    fn push(&self, frame: &Utf8Bytes) -> bool {
        let mut state = lock(&self.state);
        if state.frames.len() >= self.capacity {
            state.evicted = true;
            drop(state);
            self.ready.notify_one();
            return false;
        }
        state.frames.push_back(frame.clone());
        let was_empty = state.frames.len() == 1;
        drop(state);
        // A non-empty queue has already been signalled.
        if was_empty {
            self.ready.notify_one();
        }
        true
    }

    /// Waits for frames and takes all of them, oldest first; `None` once the
    /// client was evicted and everything queued before has been taken.
    ///
    /// Cancel-safe: frames stay queued until a call returns them.
    pub async fn next_batch(&self) -> Option<VecDeque<Utf8Bytes>> {
        loop {
            {
                let mut state = lock(&self.state);
                if !state.frames.is_empty() {
                    return Some(std::mem::take(&mut state.frames));
                }
                if state.evicted {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(text: &str) -> Utf8Bytes {
        Utf8Bytes::from(text.to_owned())
    }

    async fn next(membership: &Membership) -> Option<Vec<String>> {
        let batch = tokio::time::timeout(Duration::from_secs(1), membership.outbox().next_batch())
            .await
            .expect("a batch or the end in time")?;
        Some(batch.iter().map(|f| f.as_str().to_owned()).collect())
    }

    fn is_waiting(membership: &Membership) -> bool {
        let waiting = membership.outbox().next_batch();
        futures_util::FutureExt::now_or_never(waiting).is_none()
    }

    #[tokio::test]
    async fn broadcast_reaches_everyone_but_the_sender() {
        let hub = Hub::new(4);
        let alice = hub.join();
        let bob = hub.join();
        let carol = hub.join();

        let fanout = hub.broadcast_except(alice.id(), &frame("hi"));

        assert_eq!(
            fanout,
            Fanout {
                queued: 2,
                evicted: 0
            }
        );
        assert_eq!(next(&bob).await.unwrap(), ["hi"]);
        assert_eq!(next(&carol).await.unwrap(), ["hi"]);
        assert!(is_waiting(&alice));
    }

    #[tokio::test]
    async fn queued_frames_are_taken_in_one_batch_in_order() {
        let hub = Hub::new(8);
        let alice = hub.join();
        let bob = hub.join();
        for text in ["1", "2", "3"] {
            hub.broadcast_except(alice.id(), &frame(text));
        }
        assert_eq!(next(&bob).await.unwrap(), ["1", "2", "3"]);
        assert!(is_waiting(&bob));
    }

    #[tokio::test]
    async fn a_waiting_client_wakes_up_for_a_broadcast() {
        let hub = Hub::new(4);
        let alice = hub.join();
        let bob = Arc::new(hub.join());
        let waiter = {
            let bob = Arc::clone(&bob);
            tokio::spawn(async move { next(&bob).await })
        };
        tokio::task::yield_now().await;
        hub.broadcast_except(alice.id(), &frame("wake"));
        assert_eq!(waiter.await.unwrap().unwrap(), ["wake"]);
    }

    #[tokio::test]
    async fn dropping_a_membership_leaves_the_hub() {
        let hub = Hub::new(4);
        let alice = hub.join();
        let bob = hub.join();
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
        let alice = hub.join();
        let slow = hub.join();
        let fast = hub.join();

        for i in 0..3 {
            let fanout = hub.broadcast_except(alice.id(), &frame(&i.to_string()));
            assert_eq!(fanout.evicted, usize::from(i == 2));
            assert_eq!(next(&fast).await.unwrap(), [i.to_string()]);
        }

        assert_eq!(hub.len(), 2, "the slow client was removed");
        // It still gets what was queued before it fell behind, then the end.
        assert_eq!(next(&slow).await.unwrap(), ["0", "1"]);
        assert_eq!(next(&slow).await, None);
    }
}
