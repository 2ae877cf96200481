//! The hub: who is connected, and fan-out of frames to them.
//!
//! A broadcast is framed once by the caller and queued for every recipient's
//! [`Peer`] as the same shared bytes; flusher threads on tokio's blocking
//! pool, at most one per CPU, write the queues out (see
//! [`Hub::broadcast_except`]). Flushers run on the blocking pool because
//! writing to a room is several milliseconds of system calls: done on the
//! async workers, it would hold up every other client's input. The hub
//! keeps an immutable snapshot of its members for broadcasts to walk without
//! holding any lock, so a broadcast never blocks a client joining or leaving,
//! nor another broadcast. The snapshot is rebuilt lazily, at most once per
//! broadcast, and only after the membership changed.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use bytes::Bytes;
use tokio::net::TcpStream;

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
    /// Broadcasts queued for writing, oldest first.
    flushes: Mutex<VecDeque<Arc<Flush>>>,
    /// Flusher threads running, and how many may.
    flushers: AtomicUsize,
    max_flushers: usize,
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
            flushes: Mutex::default(),
            flushers: AtomicUsize::new(0),
            max_flushers: std::thread::available_parallelism().map_or(1, |cpus| cpus.get()),
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

    /// Sends `frame`, a whole WebSocket frame, to every client except `from`.
    ///
    /// The frame is queued for everyone here, which is cheap; the writing is
    /// handed to the hub's flusher threads, and the caller does not wait for
    /// it. While the flushers are busy, later broadcasts queue behind frames
    /// not yet written, and each write then carries several frames: the cost
    /// per frame falls as load rises, and the workers that read clients'
    /// input are never held up by writing. Each client's queue is in order,
    /// so one sender's messages never overtake each other.
    pub fn broadcast_except(self: &Arc<Self>, from: ClientId, frame: &Bytes) -> Fanout {
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
        if !to_flush.is_empty() {
            let chunks = to_flush.len().div_ceil(CHUNK);
            lock(&self.flushes).push_back(Arc::new(Flush {
                members,
                to_flush,
                next_chunk: AtomicUsize::new(0),
            }));
            // One flusher per broadcast keeps the others free for the next
            // ones; a huge room gets every flusher at once.
            let wanted = if chunks >= SHARED_FLUSH_CHUNKS {
                self.max_flushers
            } else {
                1
            };
            for _ in 0..wanted {
                self.start_flusher();
            }
        }
        fanout
    }

    /// Starts one more flusher thread if fewer than one per CPU run.
    fn start_flusher(self: &Arc<Self>) {
        if self.claim_flusher() {
            let hub = Arc::clone(self);
            tokio::task::spawn_blocking(move || hub.flush_until_idle());
        }
    }

    /// Counts one more running flusher, unless there are enough already.
    fn claim_flusher(&self) -> bool {
        self.flushers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < self.max_flushers).then_some(running + 1)
            })
            .is_ok()
    }

    /// A flusher thread: writes queued broadcasts, oldest first, sharing
    /// each with the other flushers chunk by chunk, until none are left.
    fn flush_until_idle(self: Arc<Self>) {
        loop {
            let job = lock(&self.flushes).front().cloned();
            if let Some(job) = job {
                if !job.run_chunk() {
                    let mut flushes = lock(&self.flushes);
                    if flushes
                        .front()
                        .is_some_and(|front| Arc::ptr_eq(front, &job))
                    {
                        flushes.pop_front();
                    }
                }
                continue;
            }
            self.flushers.fetch_sub(1, Ordering::AcqRel);
            // A broadcast queued after the look above, while this thread
            // still counted as running, started no flusher: take it on.
            if lock(&self.flushes).is_empty() || !self.claim_flusher() {
                return;
            }
        }
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

/// Sockets a broadcast task claims at a time: small enough to share the
/// work out evenly, big enough that claiming costs nothing next to writing.
const CHUNK: usize = 64;

/// Broadcasts to this many chunks or more (2,048 sockets) start every
/// flusher at once.
const SHARED_FLUSH_CHUNKS: usize = 32;

/// The sockets one broadcast has to write to: those whose queue it found
/// empty. Shared by the tasks writing them.
#[derive(Debug)]
struct Flush {
    members: Snapshot,
    /// Indices into `members`.
    to_flush: Vec<usize>,
    next_chunk: AtomicUsize,
}

impl Flush {
    /// Claims chunks of sockets and writes to them until none are left.
    fn run(&self) {
        while self.run_chunk() {}
    }

    /// Claims a chunk of sockets and writes to them; `false` if none was left.
    fn run_chunk(&self) -> bool {
        let first = self.next_chunk.fetch_add(1, Ordering::Relaxed) * CHUNK;
        let Some(chunk) = self.to_flush.get(first..) else {
            return false;
        };
        for &index in chunk.iter().take(CHUNK) {
            self.members[index].flush();
        }
        true
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

    pub fn hub(&self) -> &Arc<Hub> {
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

        let fanout = hub.broadcast_except(alice.id(), &Bytes::from_static(b"hi"));

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
        // Broadcasts in quick succession, so later ones queue behind frames
        // the flushers have not written yet.
        let mut expected = Vec::new();
        for i in 0..12 {
            let text = format!("<{i}>");
            expected.extend_from_slice(text.as_bytes());
            let fanout = hub.broadcast_except(sender.id(), &Bytes::from(text));
            assert_eq!(fanout.queued, 3 * CHUNK);
        }
        for client in &mut clients {
            receives(client, &expected).await;
        }
    }

    #[tokio::test]
    async fn a_huge_room_is_written_by_every_flusher_and_reaches_everyone() {
        let hub = Hub::new(4);
        let (sender, _sender_client) = join(&hub).await;
        let mut clients = Vec::new();
        let mut members = Vec::new();
        for _ in 0..SHARED_FLUSH_CHUNKS * CHUNK {
            let (member, client) = join(&hub).await;
            members.push(member);
            clients.push(client);
        }
        hub.broadcast_except(sender.id(), &Bytes::from_static(b"all"));
        for client in &mut clients {
            receives(client, b"all").await;
        }
    }

    #[tokio::test]
    async fn leaving_the_hub_is_seen_by_the_next_broadcast() {
        let hub = Hub::new(4);
        let (alice, _alice_client) = join(&hub).await;
        let (bob, _bob_client) = join(&hub).await;
        let frame = Bytes::from_static(b"x");
        assert_eq!(hub.broadcast_except(alice.id(), &frame).queued, 1);
        drop(bob);
        assert_eq!(hub.len(), 1);
        assert_eq!(hub.broadcast_except(alice.id(), &frame), Fanout::default());
        let (_carol, mut carol_client) = join(&hub).await;
        assert_eq!(hub.broadcast_except(alice.id(), &frame).queued, 1);
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
        hub.broadcast_except(alice.id(), &Bytes::from_static(b"x"));
        receives(&mut bob_client, b"x").await;
        drop(bob);
        let mut buf = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), bob_client.read(&mut buf)).await;
        assert_eq!(read.expect("closed, not left hanging").unwrap(), 0);
    }
}
