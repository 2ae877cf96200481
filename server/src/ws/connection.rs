//! One task per WebSocket connection.
//!
//! The task reads and answers the client's frames and relays chat messages
//! through the [`Hub`](crate::hub::Hub). It does not write what others send
//! to its client: they write to the client's [`Peer`] directly, and the task
//! only steps in when the socket was full and frames had to wait. Bad input is
//! answered with an `error` frame and the connection keeps going; only a frame
//! over [`MAX_FRAME_BYTES`](app::protocol::MAX_FRAME_BYTES), a protocol violation, a client too slow to keep
//! up, a dead peer or server shutdown end it.

use std::{
    io::{self, Read, Write},
    sync::Arc,
    time::Duration,
};

use app::protocol::{
    ChatMessage, ClientFrame, ErrorCode, ErrorPayload, MessageText, Nickname, ServerFrame,
};
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
    hub::Membership,
    peer::{Delivery, Peer, Trouble},
};

/// How long a closing connection waits for the peer to finish the close
/// handshake before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Messages handled per wake-up before the task lets others run, so that a
/// client sending non-stop cannot hog a worker thread.
const READ_BUDGET: usize = 32;

pub struct Connection {
    /// tungstenite's protocol state: framing, masking, UTF-8, control frames.
    ws: WebSocket<SocketIo>,
    membership: Membership,
    nickname: Nickname,
}

/// tungstenite's side of the socket: reads come straight from it and never
/// block; writes (pongs, close frames) go through the [`Peer`], which keeps
/// them in order with everything else written to this client.
struct SocketIo(Arc<Peer>);

impl Read for SocketIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.socket().try_read(buf)
    }
}

impl Write for SocketIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.send_control(buf) {
            Delivery::Dropped => Err(io::ErrorKind::BrokenPipe.into()),
            Delivery::Written | Delivery::Queued | Delivery::Evicted => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why the loop stopped; decides the close frame the client gets.
enum End {
    /// The peer closed or vanished: nothing more to say.
    Gone,
    /// We close with this code and reason.
    Close(CloseCode, &'static str),
}

enum Event {
    Readable,
    Ping,
    End(End),
}

impl Connection {
    /// `read_ahead`: bytes the client sent right behind its handshake.
    pub fn new(membership: Membership, read_ahead: Bytes, config: WebSocketConfig) -> Self {
        let io = SocketIo(Arc::clone(membership.peer()));
        // A copy, not `into()`: that would keep hyper's whole read buffer
        // alive as this connection's input buffer.
        let read_ahead = read_ahead.to_vec();
        Self {
            ws: WebSocket::from_partially_read(io, read_ahead, Role::Server, Some(config)),
            membership,
            nickname: Nickname::default(),
        }
    }

    /// The connection's whole life.
    pub async fn run(mut self, ping_interval: Duration, shutdown: CancellationToken) {
        let id = self.membership.id();
        let peer = Arc::clone(self.membership.peer());
        tracing::debug!(client = %id, "connected");

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
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => {}
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
                    tracing::info!(client = %id, "no answer to ping, dropping");
                    break End::Gone;
                }
                Event::End(end) => break end,
            }
            event = tokio::select! {
                ready = peer.socket().readable() => match ready {
                    Ok(()) => Event::Readable,
                    Err(_) => Event::End(End::Gone),
                },
                trouble = peer.attention() => Event::End(match trouble {
                    Trouble::Evicted => End::Close(CloseCode::Policy, "too slow: fell behind the chat"),
                    Trouble::Broken => End::Gone,
                }),
                _ = ping.tick() => Event::Ping,
                () = shutdown.cancelled() => Event::End(End::Close(CloseCode::Away, "server shutting down")),
            };
        };

        if let End::Close(code, reason) = end {
            tracing::debug!(client = %id, %code, reason, "closing");
            // Boxed: the close handshake is rare and its timer is large, and
            // this future's size is paid by every connected client.
            Box::pin(self.close(code, reason)).await;
        }
        tracing::debug!(client = %id, "disconnected");
    }

    /// Handles the messages that have arrived. `Ok(true)` if the budget ran
    /// out with input left to read.
    fn read_available(&mut self) -> Result<bool, End> {
        for _ in 0..READ_BUDGET {
            match self.ws.read() {
                Ok(message) => self.handle(message),
                Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(false)
                }
                Err(err) => return Err(end_for_read_error(err)),
            }
        }
        Ok(true)
    }

    /// Acts on one message from the client, answering bad input in kind.
    fn handle(&mut self, message: Message) {
        let refused = match message {
            Message::Text(text) => match ClientFrame::decode(&text) {
                Ok(ClientFrame::Nickname(raw)) => match Nickname::parse(&raw) {
                    Ok(nickname) => {
                        self.nickname = nickname;
                        return;
                    }
                    Err(err) => err.into(),
                },
                Ok(ClientFrame::Message(raw)) => match MessageText::parse(&raw) {
                    Ok(text) => {
                        self.relay(text);
                        return;
                    }
                    Err(err) => err.into(),
                },
                Err(err) => err.into(),
            },
            Message::Binary(_) => ErrorPayload::new(
                ErrorCode::BinaryNotSupported,
                "binary frames are not supported; send JSON text frames",
            ),
            // tungstenite answers pings and close frames by itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => return,
        };
        tracing::debug!(client = %self.membership.id(), code = %refused.code, "refused a frame");
        let reply = frame::text(&ServerFrame::Error(refused).encode());
        self.membership.peer().send(&reply);
    }

    /// Frames the message once and writes it to every other client.
    fn relay(&self, text: MessageText) {
        let message = ServerFrame::Message(ChatMessage {
            nickname: self.nickname.as_str().to_owned(),
            text: text.into_string(),
        });
        let fanout = self
            .membership
            .hub()
            .broadcast_except(self.membership.id(), &frame::text(&message.encode()));
        tracing::trace!(client = %self.membership.id(), ?fanout, "relayed");
    }

    /// Sends a close frame behind whatever is still queued, then reads until
    /// the peer answers (or a grace period passes): dropping a socket with
    /// unread input makes the kernel reset the connection, and the peer could
    /// lose the close frame.
    async fn close(mut self, code: CloseCode, reason: &'static str) {
        self.membership.leave();
        let peer = Arc::clone(self.membership.peer());
        peer.start_closing();
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.ws.close(Some(frame)).is_err() {
                return;
            }
            loop {
                if peer.drain().await.is_err() {
                    return;
                }
                match self.ws.read() {
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    }
                    // The peer's close arrived, or the connection broke.
                    Err(_) => return,
                }
                if peer.socket().readable().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

/// A frame over the size limit gets close code 1009 and a protocol violation
/// 1002; any other read error means the connection is broken or closed and
/// there is no one left to tell.
fn end_for_read_error(err: tungstenite::Error) -> End {
    match err {
        tungstenite::Error::Capacity(_) => End::Close(CloseCode::Size, "frame larger than 64 KiB"),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
        tungstenite::Error::Protocol(_) => End::Close(CloseCode::Protocol, "protocol violation"),
        tungstenite::Error::Utf8(_) => End::Close(CloseCode::Invalid, "text frame is not UTF-8"),
        _ => End::Gone,
    }
}
