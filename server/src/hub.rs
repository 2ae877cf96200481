//! The hub: who is connected, and fan-out of frames to them.
//!
//! A broadcast is framed once by the caller and written to every recipient's
//! [`Peer`] as the same shared bytes, by the broadcasting task itself and
//! helper threads (see [`Hub::broadcast_except`]). The hub keeps an immutable snapshot of
//! its members for broadcasts to walk without holding any lock, so writing to
//! thousands of sockets never blocks a client joining or leaving, nor another
//! broadcast. The snapshot is rebuilt lazily, at most once per broadcast, and
//! only after the membership changed.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use bytes::Bytes;
use tokio::{net::TcpStream, sync::Semaphore};

use crate::peer::{Peer, Push};

/// Identifies one connection for its whole life; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(u64);

#[cfg(test)]
impl ClientId {
    pub(crate) fn for_tests(id: u64) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

type Snapshot = Arc<[Arc<Peer>]>;

#[derive(Debug)]
pub struct Hub {
    members: Mutex<HashMap<ClientId, Arc<Peer>>>,
    /// The members as broadcasts see them; `None` after a change.
    snapshot: Mutex<Option<Snapshot>>,
    next_id: AtomicU64,
    queue_capacity: usize,
    /// Helper threads broadcasts may use at once: one per CPU beyond the
    /// broadcasting task's own.
    helpers: Arc<Semaphore>,
}

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients who got the frame (written, or queued to be written).
    pub queued: usize,
    /// Recipients disconnected because too much was waiting for them.
    pub evicted: usize,
}

impl Hub {
    /// `queue_capacity` (at least 1) is how many frames may wait for a client
    /// whose socket is full.
    pub fn new(queue_capacity: usize) -> Arc<Self> {
        assert!(queue_capacity > 0, "a client queue needs room for a frame");
        Arc::new(Self {
            members: Mutex::default(),
            snapshot: Mutex::default(),
            next_id: AtomicU64::new(1),
            queue_capacity,
            helpers: Arc::new(Semaphore::new(helper_threads())),
        })
    }

    /// Registers a new client on `socket`. It stays in the hub until the
    /// returned [`Membership`] is dropped, however its connection ends.
    pub fn join(self: &Arc<Self>, socket: TcpStream) -> Membership {
        let id = ClientId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let peer = Arc::new(Peer::new(id, socket, self.queue_capacity));
        lock(&self.members).insert(id, Arc::clone(&peer));
        *lock(&self.snapshot) = None;
        Membership {
            peer,
            hub: Arc::clone(self),
        }
    }

    /// Sends `frame`, a whole WebSocket frame, to every client except `from`,
    /// and returns once it is written or queued for every one of them.
    ///
    /// First the frame is queued for everyone, which is cheap. Then the task
    /// lets other ready tasks run before it writes: under load, other senders
    /// queue their frames behind this one meanwhile, and each write then
    /// carries several frames, so the cost per frame falls as load rises.
    /// Idle, the yield returns at once.
    ///
    /// Each write is a system call of several microseconds, so the writing
    /// is shared out: the caller and helper threads take chunks of sockets
    /// until none are left. The helpers run on tokio's blocking pool, not as
    /// async tasks: a task spawned from a worker thread waits in that
    /// worker's own slot, where no other worker can take it, until the
    /// caller is done. A helper that starts late finds little or nothing
    /// left; the caller never waits for work it could do itself.
    pub async fn broadcast_except(&self, from: ClientId, frame: &Bytes) -> Fanout {
        let members = self.snapshot();
        let len = members.len();
        // Broadcasts from different senders start at different places, so
        // two of them don't queue for the same peers' locks in step.
        let start = usize::try_from(from.0).unwrap_or_default() % len.max(1);
        let mut fanout = Fanout::default();
        let mut to_flush = Vec::new();
        for index in (start..len).chain(0..start) {
            let peer = &members[index];
            if peer.id() == from {
                continue;
            }
            match peer.push(frame) {
                Push::First => {
                    to_flush.push(index);
                    fanout.queued += 1;
                }
                Push::Behind => fanout.queued += 1,
                Push::Evicted => {
                    tracing::warn!(client = %peer.id(), "client too slow, disconnecting it");
                    fanout.evicted += 1;
                }
                Push::Dropped => {}
            }
        }
        if to_flush.is_empty() {
            return fanout;
        }
        tokio::task::yield_now().await;

        let flush = Arc::new(Flush {
            members,
            to_flush,
            next_chunk: AtomicUsize::new(0),
        });
        let chunks = flush.to_flush.len().div_ceil(CHUNK);
        let helpers: Vec<_> = (1..chunks)
            .map_while(|_| Arc::clone(&self.helpers).try_acquire_owned().ok())
            .map(|permit| {
                let flush = Arc::clone(&flush);
                tokio::task::spawn_blocking(move || {
                    flush.run();
                    drop(permit);
                })
            })
            .collect();
        flush.run();
        for helper in helpers {
            // Waiting keeps one sender's messages in order; a helper only
            // fails if it panicked, which `Flush::drop` covers.
            let _ = helper.await;
        }
        fanout
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        lock(&self.members).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, id: ClientId) {
        lock(&self.members).remove(&id);
        // Dropping the old snapshot here, not at the next broadcast, lets a
        // departed client's socket close now.
        let stale = lock(&self.snapshot).take();
        drop(stale);
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = lock(&self.snapshot);
        if let Some(members) = &*snapshot {
            return Arc::clone(members);
        }
        let members: Snapshot = lock(&self.members).values().cloned().collect();
        *snapshot = Some(Arc::clone(&members));
        members
    }
}

fn helper_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| cpus.get()) - 1
}

/// Sockets a broadcast task claims at a time: small enough to share the
/// work out evenly, big enough that claiming costs nothing next to writing.
const CHUNK: usize = 64;

/// The sockets one broadcast has to write to: those whose queue it found
/// empty. Shared by the tasks writing them.
struct Flush {
    members: Snapshot,
    /// Indices into `members`.
    to_flush: Vec<usize>,
    next_chunk: AtomicUsize,
}

impl Flush {
    /// Claims chunks of sockets and writes to them until none are left.
    fn run(&self) {
        loop {
            let first = self.next_chunk.fetch_add(1, Ordering::Relaxed) * CHUNK;
            let Some(chunk) = self.to_flush.get(first..) else {
                return;
            };
            for &index in chunk.iter().take(CHUNK) {
                self.members[index].flush();
            }
        }
    }
}

impl Drop for Flush {
    /// Frames queued first are written by this broadcast or by no one: if
    /// the broadcasting task is dropped mid-way, finish here.
    fn drop(&mut self) {
        self.run();
    }
}

/// A client's place in the hub; leaving is tied to drop so that no exit path
/// of a connection (close, error, panic, shutdown) can leak an entry.
#[derive(Debug)]
pub struct Membership {
    peer: Arc<Peer>,
    hub: Arc<Hub>,
}

impl Membership {
    pub fn id(&self) -> ClientId {
        self.peer.id()
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// This client's socket.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    /// Leaves the hub before the membership is dropped: a client whose
    /// connection is closing gets no more broadcasts. Dropping it later is
    /// harmless.
    pub fn leave(&self) {
        self.hub.leave(self.peer.id());
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.peer.id());
    }
}

/// The hub's maps are only touched by short, non-blocking sections, so a
/// poisoned lock still holds consistent data: keep serving rather than panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::peer::tests::socket_pair;

    /// A member of `hub` and the client end of its connection.
    async fn join(hub: &Arc<Hub>) -> (Membership, TcpStream) {
        let (server, client) = socket_pair().await;
        (hub.join(server), client)
    }

    async fn receives(client: &mut TcpStream, expected: &[u8]) {
        let mut received = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut received))
            .await
            .expect("the frame arrives in time")
            .unwrap();
        assert_eq!(received, expected);
    }

    fn has_nothing(client: &TcpStream) -> bool {
        let mut buf = [0; 1];
        matches!(client.try_read(&mut buf), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }

    #[tokio::test]
    async fn a_broadcast_reaches_everyone_but_the_sender() {
        let hub = Hub::new(4);
        let (alice, alice_client) = join(&hub).await;
        let (_bob, mut bob_client) = join(&hub).await;
        let (_carol, mut carol_client) = join(&hub).await;

        let fanout = hub
            .broadcast_except(alice.id(), &Bytes::from_static(b"hi"))
            .await;

        assert_eq!(fanout.queued, 2);
        receives(&mut bob_client, b"hi").await;
        receives(&mut carol_client, b"hi").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(has_nothing(&alice_client));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_room_bigger_than_a_chunk_gets_every_frame_once_and_in_order() {
        let hub = Hub::new(16);
        let (sender, _sender_client) = join(&hub).await;
        let mut clients = Vec::new();
        let mut members = Vec::new();
        for _ in 0..3 * CHUNK {
            let (member, client) = join(&hub).await;
            members.push(member);
            clients.push(client);
        }
        for text in [b"one", b"two"] {
            let fanout = hub
                .broadcast_except(sender.id(), &Bytes::from_static(text))
                .await;
            assert_eq!(fanout.queued, 3 * CHUNK);
        }
        for client in &mut clients {
            receives(client, b"onetwo").await;
        }
    }

    #[tokio::test]
    async fn leaving_the_hub_is_seen_by_the_next_broadcast() {
        let hub = Hub::new(4);
        let (alice, _alice_client) = join(&hub).await;
        let (bob, _bob_client) = join(&hub).await;
        let frame = Bytes::from_static(b"x");
        assert_eq!(hub.broadcast_except(alice.id(), &frame).await.queued, 1);
        drop(bob);
        assert_eq!(hub.len(), 1);
        assert_eq!(
            hub.broadcast_except(alice.id(), &frame).await,
            Fanout::default()
        );
        let (_carol, mut carol_client) = join(&hub).await;
        assert_eq!(hub.broadcast_except(alice.id(), &frame).await.queued, 1);
        receives(&mut carol_client, b"x").await;
        drop(alice);
        assert_eq!(hub.len(), 1);
    }

    #[tokio::test]
    async fn a_departed_clients_socket_is_closed_at_once() {
        let hub = Hub::new(4);
        let (alice, _alice_client) = join(&hub).await;
        let (bob, mut bob_client) = join(&hub).await;
        // The broadcast builds the snapshot that still lists bob.
        hub.broadcast_except(alice.id(), &Bytes::from_static(b"x"))
            .await;
        receives(&mut bob_client, b"x").await;
        drop(bob);
        let mut buf = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), bob_client.read(&mut buf)).await;
        assert_eq!(read.expect("closed, not left hanging").unwrap(), 0);
    }
}
