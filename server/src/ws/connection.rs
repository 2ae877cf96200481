//! One task per WebSocket connection: the transport's read loop.
//!
//! The task reads the client's frames with tungstenite, decodes them and
//! hands them to the client's [`Session`], writing back what the session
//! answers. It does not write what others send to its client: they write to
//! the client's [`ClientWriter`] directly, and the task only steps in when
//! the socket was full and bytes had to wait. Bad input is answered with an
//! `error` frame and the connection keeps going; only a frame over
//! [`MAX_FRAME_BYTES`](app::protocol::MAX_FRAME_BYTES), a protocol violation,
//! a client over its byte budget, a dead peer or server shutdown end it.

use std::{
    io::{self, Read, Write},
    sync::Arc,
    time::Duration,
};

use app::protocol::{ClientFrame, ErrorCode, ErrorPayload, Resume, RoomName, ServerFrame};
use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::{
    error::ProtocolError,
    protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocket, WebSocketConfig},
    Message,
};

use super::frame;
use crate::{
    metrics::Metrics,
    session::{Chat, RateLimit, Reply, Session},
    writer::{ClientWriter, Delivery, Trouble},
};

/// How long a closing connection waits for the peer to finish the close
/// handshake before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Messages handled per wake-up before the task lets others run, so that a
/// client sending non-stop cannot hog a worker thread.
const READ_BUDGET: usize = 32;

/// How long a client that announced a `resume` (by connecting to
/// `/ws?resume`) has to send it.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Connection<C: Chat> {
    /// tungstenite's protocol state: framing, masking, UTF-8, control frames.
    ws: WebSocket<SocketIo>,
    writer: Arc<ClientWriter>,
    /// Once the room admitted the client.
    session: Option<Session<C>>,
    metrics: Arc<Metrics>,
}

/// How a connection joins its room.
pub struct Joining<C> {
    pub chat: Arc<C>,
    /// The client connected to `/ws?resume`: its first frame is `resume`.
    pub resuming: bool,
    pub limit: RateLimit,
}

/// tungstenite's side of the socket: reads come straight from it and never
/// block; writes (pongs, close frames) go through the [`ClientWriter`],
/// which keeps them in order with everything else written to this client
/// and counts them against its budget.
struct SocketIo(Arc<ClientWriter>);

impl Read for SocketIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.socket().try_read(buf)
    }
}

impl Write for SocketIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.send_control(buf) {
            Delivery::Dropped => Err(io::ErrorKind::BrokenPipe.into()),
            // An eviction is noticed through `attention`, which closes.
            Delivery::Written | Delivery::Queued | Delivery::Evicted => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why the loop stopped; decides how the connection ends.
enum End {
    /// The peer vanished: nothing more to say.
    Gone,
    /// The peer closed and tungstenite queued the reply: see it out.
    Closed,
    /// We close with this code and reason.
    Close(CloseCode, &'static str),
}

/// How far [`Connection::read_available`] got.
enum Drained {
    /// Everything that had arrived.
    All,
    /// Its budget: more is waiting.
    Budget,
    /// A frame asked to move to this room; the rest waits.
    Switch(RoomName),
}

enum Event {
    Readable,
    Ping,
    End(End),
}

impl<C: Chat<Endpoint = Arc<ClientWriter>>> Connection<C> {
    /// `read_ahead`: bytes the client sent right behind its handshake.
    pub fn new(
        writer: Arc<ClientWriter>,
        read_ahead: Bytes,
        config: WebSocketConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let io = SocketIo(Arc::clone(&writer));
        // A copy, not `into()`: that would keep hyper's whole read buffer
        // alive as this connection's input buffer.
        let read_ahead = read_ahead.to_vec();
        Self {
            ws: WebSocket::from_partially_read(io, read_ahead, Role::Server, Some(config)),
            writer,
            session: None,
            metrics,
        }
    }

    /// The connection's whole life. It borrows the connection, which its
    /// caller owns: the task's future is paid by every connected client,
    /// and an `async fn` taking `self` by value would hold it twice.
    pub async fn run(
        &mut self,
        joining: Joining<C>,
        ping_interval: Duration,
        shutdown: CancellationToken,
    ) {
        let _open = self.metrics.connection();
        let writer = Arc::clone(&self.writer);
        tracing::debug!("connected");

        // Boxed: joining needs its own timers and futures, and the task's
        // size is paid by every connected client for as long as it is
        // connected.
        if let Err(end) = Box::pin(self.join(joining, &shutdown)).await {
            return self.end(end).await;
        }

        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard_since_ping = true;

        // Input that came with the handshake was read already: handle it
        // before waiting for the socket to have more.
        let mut event = Event::Readable;
        let end = loop {
            match event {
                Event::Readable => {
                    heard_since_ping = true;
                    match self.read_available() {
                        Ok(Drained::Budget) => tokio::task::yield_now().await,
                        Ok(Drained::All) => {}
                        // Boxed: switching rooms reads the store, and this
                        // future's size is paid by every connected client.
                        Ok(Drained::Switch(room)) => Box::pin(self.switch(room)).await,
                        Err(end) => break end,
                    }
                }
                Event::Ping if heard_since_ping => {
                    heard_since_ping = false;
                    if self.ws.send(Message::Ping(Bytes::new())).is_err() {
                        break End::Gone;
                    }
                }
                Event::Ping => {
                    tracing::info!("no answer to ping, dropping");
                    break End::Gone;
                }
                Event::End(end) => break end,
            }
            event = tokio::select! {
                ready = writer.socket().readable() => match ready {
                    Ok(()) => Event::Readable,
                    Err(_) => Event::End(End::Gone),
                },
                trouble = writer.attention() => Event::End(match trouble {
                    Trouble::Evicted => {
                        self.metrics.dropped_slow();
                        End::Close(CloseCode::Policy, "too slow: fell behind the chat")
                    }
                    Trouble::Displaced => End::Close(CloseCode::Library(4001), "resumed on another connection"),
                    Trouble::Broken => End::Gone,
                }),
                _ = ping.tick() => Event::Ping,
                () = shutdown.cancelled() => Event::End(End::Close(CloseCode::Away, "server shutting down")),
            };
        };

        self.end(end).await;
    }

    /// Joins the room: a resuming client says who it was before it is
    /// welcomed; any other first frame makes it someone new, and is handled
    /// once it joined.
    async fn join(&mut self, joining: Joining<C>, shutdown: &CancellationToken) -> Result<(), End> {
        let shutting_down = || End::Close(CloseCode::Away, "server shutting down");
        let mut first = None;
        let resume = if joining.resuming {
            let read = tokio::select! {
                read = tokio::time::timeout(RESUME_TIMEOUT, self.first_message()) => read,
                () = shutdown.cancelled() => return Err(shutting_down()),
            };
            match read {
                Ok(Ok(Ok(ClientFrame::Resume(resume)))) => Some(resume),
                Ok(Ok(other)) => {
                    first = Some(other);
                    Some(Resume::default())
                }
                Ok(Err(end)) => return Err(end),
                Err(_) => return Err(End::Close(CloseCode::Policy, "no resume frame in time")),
            }
        } else {
            None
        };
        let join = Session::join(
            joining.chat,
            Arc::clone(&self.writer),
            resume,
            joining.limit,
            std::time::Instant::now(),
        );
        let session = tokio::select! {
            session = join => session.ok_or(End::Gone)?,
            () = shutdown.cancelled() => return Err(shutting_down()),
        };
        tracing::debug!(client = %session.id(), "joined");
        self.session = Some(session);
        if let Some(room) = first.and_then(|first| self.handle_frame(first)) {
            self.switch(room).await;
        }
        Ok(())
    }

    /// Leaves the room and ends the connection as `end` says.
    async fn end(&mut self, end: End) {
        // Boxed: closing is rare and its timer is large, and this future's
        // size is paid by every connected client.
        match end {
            End::Gone => self.leave(),
            End::Closed => Box::pin(self.see_close_out()).await,
            End::Close(code, reason) => {
                tracing::debug!(%code, reason, "closing");
                Box::pin(self.close(code, reason)).await;
            }
        }
        tracing::debug!("disconnected");
    }

    fn leave(&mut self) {
        if let Some(session) = &mut self.session {
            session.leave();
        }
    }

    /// Reads until the client's first data message: a frame, or why it
    /// could not be decoded.
    async fn first_message(&mut self) -> Result<Result<ClientFrame, ErrorPayload>, End> {
        loop {
            match self.ws.read() {
                Ok(message) => {
                    if let Some(frame) = decode(message) {
                        self.metrics.frame_in();
                        return Ok(frame);
                    }
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    if self.writer.socket().readable().await.is_err() {
                        return Err(End::Gone);
                    }
                }
                Err(err) => return Err(end_for_read_error(err)),
            }
        }
    }

    /// Handles the messages that have arrived, up to a budget, or until
    /// one asks to move to another room.
    fn read_available(&mut self) -> Result<Drained, End> {
        for _ in 0..READ_BUDGET {
            match self.ws.read() {
                Ok(message) => {
                    if let Some(room) = self.handle(message) {
                        return Ok(Drained::Switch(room));
                    }
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Drained::All)
                }
                Err(err) => return Err(end_for_read_error(err)),
            }
        }
        Ok(Drained::Budget)
    }

    /// Hands one message from the client to its session and sends back the
    /// session's answer, if any; the room to move to, if it asks to.
    fn handle(&mut self, message: Message) -> Option<RoomName> {
        let frame = decode(message)?;
        self.metrics.frame_in();
        self.handle_frame(frame)
    }

    fn handle_frame(&mut self, frame: Result<ClientFrame, ErrorPayload>) -> Option<RoomName> {
        let session = self.session.as_mut()?;
        match session.handle(frame, std::time::Instant::now()) {
            Reply::Done => None,
            Reply::Send(reply) => {
                self.reply(&reply);
                None
            }
            Reply::Switch(room) => Some(room),
        }
    }

    /// Moves the client to `room`.
    async fn switch(&mut self, room: RoomName) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Some(refused) = session.switch(room).await {
            self.reply(&refused);
        }
    }

    fn reply(&self, reply: &ServerFrame) {
        if let ServerFrame::Error(error) = reply {
            tracing::debug!(code = %error.code, "refused a frame");
            self.metrics.error(error.code);
        }
        self.writer.send(&frame::text(&reply.encode()));
        self.metrics.frames_out(1);
    }

    /// The client closed and tungstenite queued the reply: leave, then give
    /// the reply time to get out even if the socket was full (dropping the
    /// socket now would throw it away).
    async fn see_close_out(&mut self) {
        self.leave();
        let _ = tokio::time::timeout(CLOSE_GRACE, self.writer.drain()).await;
    }

    /// Sends a close frame behind whatever is still queued, then reads until
    /// the peer answers (or a grace period passes): dropping a socket with
    /// unread input makes the kernel reset the connection, and the peer could
    /// lose the close frame.
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        self.leave();
        let writer = Arc::clone(&self.writer);
        writer.start_closing();
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.ws.close(Some(frame)).is_err() {
                return;
            }
            loop {
                if writer.drain().await.is_err() {
                    return;
                }
                match self.ws.read() {
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    }
                    // The peer's close arrived, or the connection broke.
                    Err(_) => return,
                }
                if writer.socket().readable().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// A data message as the session takes it: a frame, or why it could not be
/// decoded; `None` for control messages, which tungstenite answers itself.
fn decode(message: Message) -> Option<Result<ClientFrame, ErrorPayload>> {
    match message {
        Message::Text(text) => Some(ClientFrame::decode(&text).map_err(ErrorPayload::from)),
        Message::Binary(_) => Some(Err(ErrorPayload::new(
            ErrorCode::BinaryNotSupported,
            "binary frames are not supported; send JSON text frames",
        ))),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => None,
    }
}

/// A frame over the size limit gets close code 1009 and a protocol violation
/// 1002; the end of the client's close handshake is seen out; any other read
/// error means the connection is broken and there is no one left to tell.
fn end_for_read_error(err: tungstenite::Error) -> End {
    match err {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => End::Closed,
        tungstenite::Error::Capacity(_) => End::Close(CloseCode::Size, "frame larger than 64 KiB"),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        tungstenite::Error::Protocol(_) => End::Close(CloseCode::Protocol, "protocol violation"),
        tungstenite::Error::Utf8(_) => End::Close(CloseCode::Invalid, "text frame is not UTF-8"),
        _ => End::Gone,
    }
}
#[cfg(test)]
mod tests {
    use super::Connection;
    use crate::hub::Hub;

    /// The size of the future an `async fn` of four arguments returns.
    fn future_size<A, B, C, D, Fut>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// An idle client costs mostly its task, for as long as it stays
    /// connected. `run` borrows the connection: an `async fn` taking its
    /// receiver by value keeps it twice (argument and local), which was
    /// 1,760 bytes here instead of 736.
    #[test]
    fn a_connected_clients_loop_stays_within_a_kibibyte() {
        let run = future_size(Connection::<Hub>::run);
        assert!(run <= 1024, "the connection loop's future is {run} bytes");
    }
}
