//! A connected client's socket, as the rest of the server writes to it.
//!
//! Fan-out is where a chat server spends its time, so a frame for a client is
//! written straight to that client's socket by whoever handles it (usually
//! the hub's flusher threads), with non-blocking writes of bytes framed once
//! for everyone. No task is woken and nothing is copied per recipient.
//! Frames go through a short queue: whoever queues the first frame into an
//! empty queue sees that it is written out, together with any frames queued
//! behind it in the meantime, so under load one `writev` carries several
//! frames. When a socket's kernel buffer is full, the client's own
//! connection task finishes the writing once there is room; a client that
//! lets the queue fill up has fallen too far behind and is disconnected, so
//! it can't hold up or bloat anyone else.
//!
//! A per-peer lock keeps every frame whole and in order on the wire: writers
//! take turns, and a frame written in part is finished from the queue before
//! anything else goes out.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::{Mutex, MutexGuard},
};

use bytes::{Buf, Bytes};
use tokio::{net::TcpStream, sync::Notify};

use crate::hub::ClientId;

/// Most queued frames handed to the kernel in one `writev`.
const MAX_WRITE_SLICES: usize = 64;

#[derive(Debug)]
pub struct Peer {
    id: ClientId,
    socket: TcpStream,
    state: Mutex<State>,
    /// Signalled when frames start waiting, or when the peer must be closed.
    attention: Notify,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes the socket did not take yet, oldest first; the head may be the
    /// rest of a frame the kernel took in part.
    queue: VecDeque<Bytes>,
    /// Whether the kernel took part of the queue's head: that frame must be
    /// finished before anything else may follow.
    head_started: bool,
    status: Status,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Status {
    #[default]
    Open,
    /// The server sent (or is sending) its close frame: no more data frames.
    Closing,
    /// The queue overflowed: the client is too slow and will be closed.
    Evicted,
    /// Writing failed: the connection is gone.
    Broken,
}

/// What became of a frame handed to [`Peer::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued, and nothing was waiting: the caller must flush.
    First,
    /// Queued behind frames that whoever queued them will write.
    Behind,
    /// The queue was full: the client is evicted, and the frame dropped.
    Evicted,
    /// The connection is closing or gone; the frame was dropped.
    Dropped,
}

/// What became of a frame handed to [`Peer::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The kernel took all of it.
    Written,
    /// It waits in the queue, behind a full socket buffer.
    Queued,
    /// The queue was full: the client is evicted, and the frame dropped.
    Evicted,
    /// The connection is closing or gone; the frame was dropped.
    Dropped,
}

/// Why a peer's connection must stop serving it, from [`Peer::attention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// Its queue overflowed.
    Evicted,
    /// A write failed.
    Broken,
}

impl Peer {
    /// `capacity` (at least 1) is how many frames may wait for the client.
    pub fn new(id: ClientId, socket: TcpStream, capacity: usize) -> Self {
        assert!(capacity > 0, "a client queue needs room for a frame");
        Self {
            id,
            socket,
            state: Mutex::default(),
            attention: Notify::new(),
            capacity,
        }
    }

    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Sends one whole, already framed WebSocket data frame now.
    pub fn send(&self, frame: &Bytes) -> Delivery {
        match self.push(frame) {
            Push::First => self.flush(),
            Push::Behind => Delivery::Queued,
            Push::Evicted => Delivery::Evicted,
            Push::Dropped => Delivery::Dropped,
        }
    }

    /// Queues one whole, already framed WebSocket data frame without writing
    /// it. On [`Push::First`] the caller must see to a [`flush`](Self::flush)
    /// soon: nobody else will. Frames pushed behind it go out with it, in one
    /// write.
    pub fn push(&self, frame: &Bytes) -> Push {
        let mut state = self.lock();
        match state.status {
            Status::Open => {}
            Status::Evicted | Status::Closing | Status::Broken => return Push::Dropped,
        }
        if state.queue.len() >= self.capacity {
            // What waits will never be read now: free it, and let the close
            // frame go out as soon as the socket takes anything.
            let keep = usize::from(state.head_started);
            state.queue.truncate(keep);
            state.status = Status::Evicted;
            drop(state);
            self.attention.notify_one();
            return Push::Evicted;
        }
        state.queue.push_back(frame.clone());
        if state.queue.len() == 1 {
            Push::First
        } else {
            Push::Behind
        }
    }

    /// Writes what is queued, as far as the socket takes it. If it is full,
    /// the connection's task takes over and finishes once there is room.
    pub fn flush(&self) -> Delivery {
        let written = self.write_queued(&mut self.lock());
        match written {
            Ok(true) => Delivery::Written,
            Ok(false) => {
                self.attention.notify_one();
                Delivery::Queued
            }
            Err(_) => {
                self.attention.notify_one();
                Delivery::Dropped
            }
        }
    }

    /// Sends protocol bytes (pongs, close frames) from the connection's own
    /// WebSocket state machine. Unlike [`send`](Self::send) this works while
    /// closing, and it never evicts: the queue is bounded by data frames.
    pub fn send_control(&self, bytes: &[u8]) -> Delivery {
        let state = self.lock();
        if state.status == Status::Broken {
            return Delivery::Dropped;
        }
        self.write_or_queue(state, &Bytes::copy_from_slice(bytes))
    }

    /// From now on data frames are dropped: the close frame must be last.
    pub fn start_closing(&self) {
        let mut state = self.lock();
        if state.status == Status::Open {
            state.status = Status::Closing;
        }
    }

    /// Frames waiting for the client.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Drains the queue whenever the socket can take more, and resolves only
    /// when the connection has to act: the client was evicted, or a write
    /// failed. Cancel-safe: queued bytes stay queued.
    pub async fn attention(&self) -> Trouble {
        loop {
            let flushed = {
                let mut state = self.lock();
                match state.status {
                    Status::Evicted => return Trouble::Evicted,
                    Status::Broken => return Trouble::Broken,
                    Status::Open | Status::Closing => {}
                }
                self.write_queued(&mut state)
            };
            match flushed {
                Ok(true) => self.attention.notified().await,
                // Blocked: wait for room, or for news such as an eviction.
                Ok(false) => tokio::select! {
                    writable = self.socket.writable() => {
                        if writable.is_err() {
                            self.lock().status = Status::Broken;
                        }
                    }
                    () = self.attention.notified() => {}
                },
                Err(_) => return Trouble::Broken,
            }
        }
    }

    /// Writes everything queued, waiting for the socket as needed; used while
    /// closing, whatever the status, to get the close frame out.
    pub async fn drain(&self) -> io::Result<()> {
        loop {
            let flushed = self.write_queued(&mut self.lock())?;
            if flushed {
                return Ok(());
            }
            self.socket.writable().await?;
        }
    }

    /// Writes queued bytes until the queue is empty (`Ok(true)`) or the
    /// socket is full (`Ok(false)`).
    fn write_queued(&self, state: &mut State) -> io::Result<bool> {
        if state.status == Status::Broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        while !state.queue.is_empty() {
            let written = if state.queue.len() == 1 {
                // The usual case, one frame: a plain write.
                self.socket.try_write(&state.queue[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let mut count = 0;
                for (slice, bytes) in slices.iter_mut().zip(&state.queue) {
                    *slice = IoSlice::new(bytes);
                    count += 1;
                }
                self.socket.try_write_vectored(&slices[..count])
            };
            match written {
                Ok(written) => state.consume(written),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => {
                    tracing::debug!(client = %self.id, %err, "write failed");
                    state.status = Status::Broken;
                    return Err(err);
                }
            }
        }
        Ok(true)
    }

    /// Writes `frame` now if nothing is waiting ahead of it, else queues it.
    fn write_or_queue(&self, mut state: MutexGuard<'_, State>, frame: &Bytes) -> Delivery {
        if !state.queue.is_empty() {
            state.queue.push_back(frame.clone());
            return Delivery::Queued;
        }
        match self.socket.try_write(frame) {
            Ok(written) if written == frame.len() => return Delivery::Written,
            Ok(written) => {
                state.queue.push_back(frame.slice(written..));
                state.head_started = true;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                state.queue.push_back(frame.clone());
            }
            Err(err) => {
                tracing::debug!(client = %self.id, %err, "write failed");
                state.status = Status::Broken;
                drop(state);
                self.attention.notify_one();
                return Delivery::Dropped;
            }
        }
        drop(state);
        // The queue just stopped being empty: the connection takes over.
        self.attention.notify_one();
        Delivery::Queued
    }

    /// Only short, non-blocking sections run under this lock, so a poisoned
    /// lock still guards consistent data: keep serving rather than panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Drops the first `written` bytes from the queue.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(head) = self.queue.front_mut() else {
                return;
            };
            if written < head.len() {
                head.advance(written);
                self.head_started = true;
                return;
            }
            written -= head.len();
            self.queue.pop_front();
            self.head_started = false;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::{
        io::AsyncReadExt,
        net::{TcpListener, TcpSocket},
    };

    use super::*;

    /// A server-side socket and the client end of the same connection. The
    /// client's receive buffer is small, so the server's fills up quickly.
    pub(crate) async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    fn peer(socket: TcpStream, capacity: usize) -> Peer {
        Peer::new(ClientId::for_tests(1), socket, capacity)
    }

    /// Frames `0..n` of `size` bytes each, every byte its frame's number.
    fn frames(n: u8, size: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i; size])).collect()
    }

    async fn read_exactly(client: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut received = vec![0; len];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut received))
            .await
            .expect("the bytes arrive in time")
            .unwrap();
        received
    }

    #[tokio::test]
    async fn a_frame_to_a_reading_client_is_written_at_once() {
        let (server, mut client) = socket_pair().await;
        let peer = peer(server, 4);
        assert_eq!(peer.send(&Bytes::from_static(b"hello")), Delivery::Written);
        assert_eq!(peer.queued(), 0);
        assert_eq!(read_exactly(&mut client, 5).await, b"hello");
    }

    #[tokio::test]
    async fn frames_queued_behind_the_first_go_out_with_it_in_one_flush() {
        let (server, mut client) = socket_pair().await;
        let peer = peer(server, 4);
        assert_eq!(peer.push(&Bytes::from_static(b"one,")), Push::First);
        assert_eq!(peer.push(&Bytes::from_static(b"two")), Push::Behind);
        assert_eq!(peer.queued(), 2, "nothing is written before the flush");
        assert_eq!(peer.flush(), Delivery::Written);
        assert_eq!(peer.queued(), 0);
        assert_eq!(read_exactly(&mut client, 7).await, b"one,two");
    }

    #[tokio::test]
    async fn frames_behind_a_full_socket_wait_and_arrive_whole_and_in_order() {
        let (server, mut client) = socket_pair().await;
        let peer = Arc::new(peer(server, 250));
        let frames = frames(250, 40_000);
        let deliveries: Vec<_> = frames.iter().map(|frame| peer.send(frame)).collect();
        assert!(
            deliveries.contains(&Delivery::Queued),
            "10 MB should not fit in the socket buffers"
        );

        let flusher = {
            let peer = Arc::clone(&peer);
            tokio::spawn(async move { peer.attention().await })
        };
        let received = read_exactly(&mut client, 250 * 40_000).await;
        let expected: Vec<u8> = frames.concat();
        assert!(received == expected, "bytes arrived out of order or torn");
        assert_eq!(peer.queued(), 0);
        assert!(!flusher.is_finished(), "nothing went wrong");
        flusher.abort();
    }

    #[tokio::test]
    async fn a_client_that_lets_its_queue_overflow_is_evicted() {
        let (server, _client) = socket_pair().await;
        let peer = peer(server, 2);
        let frame = Bytes::from(vec![b'x'; 64 * 1024]);
        let deliveries: Vec<_> = (0..100).map(|_| peer.send(&frame)).collect();
        let evicted = deliveries
            .iter()
            .position(|delivery| *delivery == Delivery::Evicted)
            .expect("the queue overflowed");
        assert!(deliveries[..evicted].ends_with(&[Delivery::Queued, Delivery::Queued]));
        assert!(deliveries[evicted + 1..]
            .iter()
            .all(|delivery| *delivery == Delivery::Dropped));
        assert!(peer.queued() <= 1, "only a frame already begun is kept");
        let trouble = tokio::time::timeout(Duration::from_secs(1), peer.attention()).await;
        assert_eq!(trouble.unwrap(), Trouble::Evicted);
    }

    #[tokio::test]
    async fn a_connection_waiting_for_room_hears_of_the_eviction_at_once() {
        let (server, _client) = socket_pair().await;
        let peer = Arc::new(peer(server, 2));
        let frame = Bytes::from(vec![b'x'; 64 * 1024]);
        while peer.send(&frame) == Delivery::Written {}
        let waiting = {
            let peer = Arc::clone(&peer);
            tokio::spawn(async move { peer.attention().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "blocked on a full socket");
        while peer.send(&frame) != Delivery::Evicted {}
        let trouble = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(trouble.expect("woken at once").unwrap(), Trouble::Evicted);
    }

    #[tokio::test]
    async fn after_closing_starts_only_protocol_frames_go_out() {
        let (server, mut client) = socket_pair().await;
        let peer = peer(server, 4);
        peer.start_closing();
        assert_eq!(peer.send(&Bytes::from_static(b"data")), Delivery::Dropped);
        assert_eq!(peer.send_control(b"close"), Delivery::Written);
        assert_eq!(read_exactly(&mut client, 5).await, b"close");
    }

    #[tokio::test]
    async fn writing_to_a_vanished_client_breaks_the_peer_not_the_server() {
        let (server, client) = socket_pair().await;
        let peer = peer(server, 4);
        // A zero linger time makes closing reset the connection.
        client.set_zero_linger().unwrap();
        drop(client);
        let frame = Bytes::from_static(b"anyone there?");
        let mut deliveries = Vec::new();
        for _ in 0..100 {
            deliveries.push(peer.send(&frame));
            if deliveries.last() == Some(&Delivery::Dropped) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            deliveries.last(),
            Some(&Delivery::Dropped),
            "{deliveries:?}"
        );
        let trouble = tokio::time::timeout(Duration::from_secs(1), peer.attention()).await;
        assert_eq!(trouble.unwrap(), Trouble::Broken);
    }
}
