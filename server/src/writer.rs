//! One client's outgoing bytes: the per-client socket writer.
//!
//! Fan-out is where a chat server spends its time, so a frame for a client is
//! written straight to that client's socket by whoever handles it (the
//! group commit relaying its batch, or the [flusher pool](crate::flush)),
//! with non-blocking writes of bytes framed once for everyone. No task is
//! woken and nothing is copied per recipient. Frames go through a short queue: whoever queues the first
//! frame into an empty queue sees that it is written out, together with any
//! frames queued behind it in the meantime, so under load one `writev`
//! carries several frames. When a socket's kernel buffer is full, the
//! client's own connection task finishes the writing once there is room.
//!
//! Two invariants a WebSocket library would keep, kept here:
//! - **memory is bounded in bytes**: every queued byte counts against the
//!   client's budget, pongs and other control frames included; a client
//!   over budget is evicted (its connection then closes with 1008) and what
//!   waited for it is freed;
//! - **nothing follows a close frame**: the moment a close frame is queued,
//!   whoever sent it, data frames are refused; the close frame itself is
//!   queued even past the budget, so it is sent once the socket takes bytes.
//!
//! A per-client lock keeps every frame whole and in order on the wire:
//! writers take turns, and a frame written in part is finished from the
//! queue before anything else goes out.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
};

use bytes::{Buf, Bytes};
use tokio::{net::TcpStream, sync::Notify};

use crate::{client_id::ClientId, limits::ClientNet};

/// Most queued frames handed to the kernel in one `writev`.
const MAX_WRITE_SLICES: usize = 64;

#[derive(Debug)]
pub struct ClientWriter {
    /// Who the room knows this client as; see [`ClientWriter::adopt`].
    id: AtomicU64,
    socket: TcpStream,
    state: Mutex<State>,
    /// Signalled when frames start waiting, or when the client must be closed.
    attention: Notify,
    /// Most bytes that may wait for this client.
    budget: usize,
    /// The newest message id this client read from the store while
    /// catching up: relays up to it are not for it (it has them).
    read_through: AtomicU64,
    /// The client's address, as the per-address limits count it.
    client: Option<ClientNet>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes the socket did not take yet, oldest first; the head may be the
    /// rest of a frame the kernel took in part.
    queue: VecDeque<Bytes>,
    /// The sum of the lengths in `queue`.
    queued_bytes: usize,
    /// Whether the kernel took part of the queue's head: that frame must be
    /// finished before anything else may follow.
    head_started: bool,
    status: Status,
    /// A close frame is queued or written: nothing may follow it.
    close_sent: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Status {
    #[default]
    Open,
    /// A close frame went out or is about to: no more data frames.
    Closing,
    /// Over budget: the client is too slow and will be closed.
    Evicted,
    /// Another connection resumed this client's identity: this one will be
    /// closed.
    Displaced,
    /// A write failed: the connection is gone.
    Broken,
}

/// What became of a frame handed to [`ClientWriter::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The socket took it whole.
    Written,
    /// It waits in the client's queue.
    Queued,
    /// It would have put the client over its budget: the client is
    /// disconnected instead.
    Evicted,
    /// The client is closing or gone; the frame was discarded.
    Dropped,
}

/// What became of a frame handed to [`ClientWriter::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The queue was empty: the caller must [`flush`](ClientWriter::flush) it.
    First,
    /// Queued behind others; whoever queued the first will write it.
    Behind,
    /// Over budget: the client is disconnected instead.
    Evicted,
    /// The client is closing or gone; the frame was discarded.
    Dropped,
}

/// Why a client's connection must stop serving it, from
/// [`ClientWriter::attention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// It went over its budget.
    Evicted,
    /// A newer connection took over its identity.
    Displaced,
    /// A write failed.
    Broken,
}

impl ClientWriter {
    /// `budget` (at least 1) is how many bytes may wait for the client.
    pub fn new(id: ClientId, socket: TcpStream, budget: usize) -> Self {
        assert!(budget > 0, "a client needs room for a frame");
        Self {
            id: AtomicU64::new(id.get()),
            socket,
            state: Mutex::default(),
            attention: Notify::new(),
            budget,
            read_through: AtomicU64::new(0),
            client: None,
        }
    }

    /// The client's address (behind a trusted proxy, the one it forwarded),
    /// which keeps its people away only as far as its share allows (see
    /// [`crate::identity`]). Unknown, they count only in the total.
    pub fn with_client(mut self, client: Option<ClientNet>) -> Self {
        self.client = client;
        self
    }

    /// See [`Self::with_client`].
    pub fn client(&self) -> Option<ClientNet> {
        self.client
    }

    /// The client read every message up to `id` from the store: a relay
    /// of one of them must not reach it again.
    pub fn read_through(&self, id: u64) {
        self.read_through.fetch_max(id, Ordering::Relaxed);
    }

    /// Whether the client has the message `id` already (see
    /// [`Self::read_through`]).
    pub fn has(&self, id: u64) -> bool {
        id <= self.read_through.load(Ordering::Relaxed)
    }

    pub fn id(&self) -> ClientId {
        ClientId::from(self.id.load(Ordering::Relaxed))
    }

    /// The room knows this client by `id` from now on: a client that
    /// resumes is the person it was before. Set before the client joins
    /// anyone's broadcasts.
    pub fn adopt(&self, id: ClientId) {
        self.id.store(id.get(), Ordering::Relaxed);
    }

    /// Most bytes that may wait for the client.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// A newer connection took over this client's identity: drop whatever
    /// waits and let the connection close.
    pub fn displace(&self) {
        let state = self.lock();
        if state.status == Status::Open {
            self.retire(state, Status::Displaced);
        }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Sends one whole, already framed WebSocket data frame now.
    pub fn send(&self, frame: &Bytes) -> Delivery {
        let state = self.lock();
        if state.status != Status::Open {
            return Delivery::Dropped;
        }
        if state.queued_bytes + frame.len() > self.budget {
            self.evict(state);
            return Delivery::Evicted;
        }
        // Straight to the socket when nothing waits: the queue allocates only
        // once a frame has to wait, so a client that is only ever answered
        // (most idle ones) never holds one.
        self.write_or_queue(state, frame)
    }

    /// Queues one whole, already framed WebSocket data frame without writing
    /// it. On [`Push::First`] the caller must see to a [`flush`](Self::flush)
    /// soon: nobody else will. Frames pushed behind it go out with it, in one
    /// write.
    pub fn push(&self, frame: &Bytes) -> Push {
        let mut state = self.lock();
        if state.status != Status::Open {
            return Push::Dropped;
        }
        if state.queued_bytes + frame.len() > self.budget {
            self.evict(state);
            return Push::Evicted;
        }
        state.enqueue(frame.clone());
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

    /// Sends protocol bytes (pongs, pings, close frames) from the
    /// connection's own WebSocket state machine, in order with the data.
    /// They count against the budget like data, except a close frame, which
    /// always goes in: it is the last thing the client gets, and the only
    /// way to tell an evicted client why.
    pub fn send_control(&self, bytes: &[u8]) -> Delivery {
        let mut state = self.lock();
        if state.status == Status::Broken || state.close_sent {
            return Delivery::Dropped;
        }
        if carries_close(bytes) {
            state.close_sent = true;
            if state.status == Status::Open {
                state.status = Status::Closing;
            }
        } else if state.queued_bytes + bytes.len() > self.budget {
            self.evict(state);
            return Delivery::Evicted;
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

    /// Bytes waiting for the client.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
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
                    Status::Displaced => return Trouble::Displaced,
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

    /// Marks the client evicted and frees what waits for it, keeping only a
    /// frame the socket took in part (the close frame must follow whole
    /// frames).
    fn evict(&self, state: MutexGuard<'_, State>) {
        self.retire(state, Status::Evicted);
    }

    /// Frees what waits for the client but a frame the socket took in
    /// part, sets `status` and wakes the connection to close.
    fn retire(&self, mut state: MutexGuard<'_, State>, status: Status) {
        let keep = usize::from(state.head_started);
        state.queue.truncate(keep);
        state.queued_bytes = state.queue.iter().map(Bytes::len).sum();
        state.status = status;
        drop(state);
        self.attention.notify_one();
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
                    tracing::debug!(client = %self.id(), %err, "write failed");
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
            state.enqueue(frame.clone());
            return Delivery::Queued;
        }
        match self.socket.try_write(frame) {
            Ok(written) if written == frame.len() => return Delivery::Written,
            Ok(written) => {
                state.enqueue(frame.slice(written..));
                state.head_started = true;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                state.enqueue(frame.clone());
            }
            Err(err) => {
                tracing::debug!(client = %self.id(), %err, "write failed");
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
    fn enqueue(&mut self, bytes: Bytes) {
        self.queued_bytes += bytes.len();
        self.queue.push_back(bytes);
    }

    /// Drops the first `written` bytes from the queue.
    fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written.min(self.queued_bytes);
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

/// Whether `bytes`, one or more whole server frames (unmasked) as
/// tungstenite writes them, include a close frame (opcode 8).
fn carries_close(mut bytes: &[u8]) -> bool {
    while let [first, second, rest @ ..] = bytes {
        if first & 0x0f == 0x8 {
            return true;
        }
        let (len, rest) = match second & 0x7f {
            126 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            127 if rest.len() >= 8 => {
                let len = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                (usize::try_from(len).unwrap_or(usize::MAX), &rest[8..])
            }
            126 | 127 => return false,
            len => (usize::from(len), rest),
        };
        let masked = if second & 0x80 != 0 { 4 } else { 0 };
        bytes = rest.get(len.saturating_add(masked)..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{sync::Arc, time::Duration};

    use futures_util::FutureExt;
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

    fn writer(socket: TcpStream, budget: usize) -> ClientWriter {
        ClientWriter::new(ClientId::from(1), socket, budget)
    }

    /// Frames `0..n` of `size` bytes each, every byte its frame's number.
    fn frames(n: u8, size: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(vec![i; size])).collect()
    }

    /// A server pong frame with a payload of `len` (< 126) bytes.
    fn pong(len: u8) -> Vec<u8> {
        let mut frame = vec![0x8a, len];
        frame.resize(2 + usize::from(len), b'p');
        frame
    }

    const CLOSE: &[u8] = &[0x88, 0x02, 0x03, 0xe8];

    /// Fills the socket's kernel buffers until a frame has to wait.
    fn fill_socket(writer: &ClientWriter) {
        let frame = Bytes::from(vec![b'f'; 16 * 1024]);
        while writer.send(&frame) == Delivery::Written {}
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
        let writer = writer(server, 1024);
        assert_eq!(
            writer.send(&Bytes::from_static(b"hello")),
            Delivery::Written
        );
        assert_eq!(writer.queued_bytes(), 0);
        // Nothing had to wait, so no queue was allocated: what an idle
        // client that was only answered costs.
        assert_eq!(writer.lock().queue.capacity(), 0);
        assert_eq!(read_exactly(&mut client, 5).await, b"hello");
    }

    #[tokio::test]
    async fn frames_queued_behind_the_first_go_out_with_it_in_one_flush() {
        let (server, mut client) = socket_pair().await;
        let writer = writer(server, 1024);
        assert_eq!(writer.push(&Bytes::from_static(b"one,")), Push::First);
        assert_eq!(writer.push(&Bytes::from_static(b"two")), Push::Behind);
        assert_eq!(
            writer.queued_bytes(),
            7,
            "nothing is written before the flush"
        );
        assert_eq!(writer.flush(), Delivery::Written);
        assert_eq!(writer.queued_bytes(), 0);
        assert_eq!(read_exactly(&mut client, 7).await, b"one,two");
    }

    #[tokio::test]
    async fn frames_behind_a_full_socket_wait_and_arrive_whole_and_in_order() {
        let (server, mut client) = socket_pair().await;
        let writer = Arc::new(writer(server, 250 * 40_000));
        let frames = frames(250, 40_000);
        let deliveries: Vec<_> = frames.iter().map(|frame| writer.send(frame)).collect();
        assert!(
            deliveries.contains(&Delivery::Queued),
            "10 MB should not fit in the socket buffers"
        );

        let flusher = {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move { writer.attention().await })
        };
        let received = read_exactly(&mut client, 250 * 40_000).await;
        let expected: Vec<u8> = frames.concat();
        assert!(received == expected, "bytes arrived out of order or torn");
        assert_eq!(writer.queued_bytes(), 0);
        assert!(!flusher.is_finished(), "nothing went wrong");
        flusher.abort();
    }

    #[tokio::test]
    async fn a_client_over_its_byte_budget_is_evicted_and_its_queue_freed() {
        let (server, _client) = socket_pair().await;
        let writer = writer(server, 128 * 1024);
        fill_socket(&writer);
        let frame = Bytes::from(vec![b'x'; 50 * 1024]);
        let mut deliveries = Vec::new();
        while deliveries.last() != Some(&Delivery::Evicted) {
            deliveries.push(writer.send(&frame));
        }
        assert!(
            writer.queued_bytes() <= 16 * 1024,
            "only a frame already begun is kept"
        );
        assert_eq!(writer.send(&frame), Delivery::Dropped);
        let trouble = tokio::time::timeout(Duration::from_secs(1), writer.attention()).await;
        assert_eq!(trouble.unwrap(), Trouble::Evicted);
    }

    #[tokio::test]
    async fn pongs_count_against_the_budget() {
        let (server, _client) = socket_pair().await;
        let writer = writer(server, 64 * 1024);
        fill_socket(&writer);
        let pong = pong(125);
        let mut sent = 0;
        loop {
            match writer.send_control(&pong) {
                Delivery::Queued | Delivery::Written => sent += 1,
                Delivery::Evicted => break,
                Delivery::Dropped => panic!("dropped before eviction"),
            }
            assert!(sent < 1_000, "pongs piled up past the budget");
        }
        assert!(writer.queued_bytes() <= 64 * 1024);
        let trouble = tokio::time::timeout(Duration::from_secs(1), writer.attention()).await;
        assert_eq!(trouble.unwrap(), Trouble::Evicted);
    }

    #[tokio::test]
    async fn a_close_frame_goes_in_past_the_budget_and_nothing_follows_it() {
        let (server, mut client) = socket_pair().await;
        let writer = writer(server, 64 * 1024);
        let frame = Bytes::from(vec![b'd'; 1024]);
        fill_socket(&writer);
        while writer.send(&frame) != Delivery::Evicted {}
        assert_eq!(writer.send_control(CLOSE), Delivery::Queued);
        assert_eq!(writer.send(&frame), Delivery::Dropped);
        assert_eq!(writer.send_control(&pong(0)), Delivery::Dropped);

        // The client reads everything: the close frame comes last, whole.
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        });
        writer.drain().await.unwrap();
        drop(writer);
        let received = reader.await.unwrap();
        assert!(received.ends_with(CLOSE), "the close frame is last");
    }

    #[tokio::test]
    async fn a_close_frame_the_client_started_stops_data_at_once() {
        let (server, mut client) = socket_pair().await;
        let writer = writer(server, 1024);
        // tungstenite may write a pong and its close reply in one go.
        let mut control = pong(3);
        control.extend_from_slice(CLOSE);
        assert_eq!(writer.send_control(&control), Delivery::Written);
        assert_eq!(writer.push(&Bytes::from_static(b"late")), Push::Dropped);
        assert_eq!(read_exactly(&mut client, control.len()).await, control);
    }

    #[tokio::test]
    async fn a_connection_waiting_for_room_hears_of_the_eviction_at_once() {
        let (server, _client) = socket_pair().await;
        let writer = Arc::new(writer(server, 64 * 1024));
        fill_socket(&writer);
        assert!(
            writer.attention().now_or_never().is_none(),
            "blocked on a full socket, nothing to report"
        );
        let waiting = {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move { writer.attention().await })
        };
        let frame = Bytes::from(vec![b'x'; 16 * 1024]);
        while writer.send(&frame) != Delivery::Evicted {}
        let trouble = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(trouble.expect("woken at once").unwrap(), Trouble::Evicted);
    }

    #[tokio::test]
    async fn after_closing_starts_only_protocol_frames_go_out() {
        let (server, mut client) = socket_pair().await;
        let writer = writer(server, 1024);
        writer.start_closing();
        assert_eq!(writer.send(&Bytes::from_static(b"data")), Delivery::Dropped);
        assert_eq!(writer.send_control(CLOSE), Delivery::Written);
        assert_eq!(read_exactly(&mut client, CLOSE.len()).await, CLOSE);
    }

    #[tokio::test]
    async fn writing_to_a_vanished_client_breaks_the_writer_not_the_server() {
        let (server, client) = socket_pair().await;
        let writer = writer(server, 1024);
        // A zero linger time makes closing reset the connection.
        client.set_zero_linger().unwrap();
        drop(client);
        let frame = Bytes::from_static(b"anyone there?");
        let mut deliveries = Vec::new();
        for _ in 0..100 {
            deliveries.push(writer.send(&frame));
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
        let trouble = tokio::time::timeout(Duration::from_secs(1), writer.attention()).await;
        assert_eq!(trouble.unwrap(), Trouble::Broken);
    }

    #[test]
    fn close_frames_are_found_among_control_frames() {
        assert!(carries_close(CLOSE));
        assert!(carries_close(&[pong(125), CLOSE.to_vec()].concat()));
        assert!(!carries_close(&pong(125)));
        assert!(!carries_close(&[pong(0), pong(7)].concat()));
        assert!(!carries_close(&[]));
        // A long frame whose payload happens to hold a close opcode.
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend([0x88; 256]);
        assert!(!carries_close(&long));
        assert!(!carries_close(&[0x81, 127, 0xff]));
    }
}
