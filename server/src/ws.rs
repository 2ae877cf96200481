//! `GET /ws`: one task per WebSocket connection.
//!
//! The task reads and answers the client's frames, hands chat messages to the
//! [`Hub`](crate::hub::Hub), and writes whatever the hub has queued for this
//! client. Bad input is answered with an `error` frame and the connection
//! keeps going; only a frame over [`MAX_FRAME_BYTES`], a client too slow to
//! keep up, a dead peer or server shutdown end it.

use std::{collections::VecDeque, time::Duration};

use app::protocol::{
    ChatMessage, ClientFrame, ErrorCode, ErrorPayload, MessageText, Nickname, ServerFrame,
    MAX_FRAME_BYTES,
};
use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use crate::{hub::Membership, AppState};

/// How long a closing connection waits for the peer to finish the close
/// handshake before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Only what a connection needs is moved into its task: the task lives as
    // long as the connection, and its size is paid once per client.
    let AppState {
        hub,
        connection: config,
        shutdown,
        tasks,
        ..
    } = state;
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(config.read_buffer)
        .write_buffer_size(config.write_buffer)
        .on_upgrade(move |socket| {
            let connection = Connection {
                socket,
                membership: hub.join(),
                nickname: Nickname::default(),
            };
            tasks.track_future(connection.run(config.ping_interval(), shutdown))
        })
}

struct Connection {
    socket: WebSocket,
    membership: Membership,
    nickname: Nickname,
}

/// Why the loop stopped; decides the close frame the client gets.
enum End {
    /// The peer closed or vanished: nothing more to say.
    Gone,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

/// What the loop writes next.
enum Outgoing {
    /// A reply to this client: an error frame or a ping.
    One(Message),
    /// Frames the hub queued for this client.
    Batch(VecDeque<Utf8Bytes>),
}

impl Connection {
    /// The connection's whole life. Deciding what to do and writing are
    /// separate steps with a single write in the loop, which keeps this
    /// future, paid once per connected client, small.
    async fn run(mut self, ping_interval: Duration, shutdown: CancellationToken) {
        let id = self.membership.id();
        tracing::debug!(client = %id, "connected");

        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard_since_ping = true;

        let end = loop {
            let next = tokio::select! {
                incoming = self.socket.recv() => {
                    heard_since_ping = true;
                    match incoming {
                        Some(Ok(message)) => Ok(self.handle(message).map(Outgoing::One)),
                        Some(Err(err)) => Err(end_for_read_error(err)),
                        None => Err(End::Gone),
                    }
                }
                batch = self.membership.outbox().next_batch() => match batch {
                    Some(frames) => Ok(Some(Outgoing::Batch(frames))),
                    None => Err(End::Close(close_code::POLICY, "too slow: fell behind the chat")),
                },
                _ = ping.tick() => {
                    if heard_since_ping {
                        heard_since_ping = false;
                        Ok(Some(Outgoing::One(Message::Ping(Default::default()))))
                    } else {
                        tracing::info!(client = %id, "no answer to ping, dropping");
                        Err(End::Gone)
                    }
                }
                () = shutdown.cancelled() => Err(End::Close(close_code::AWAY, "server shutting down")),
            };
            match next {
                Ok(Some(outgoing)) => {
                    if self.write(outgoing).await.is_err() {
                        break End::Gone;
                    }
                }
                Ok(None) => {}
                Err(end) => break end,
            }
        };

        if let End::Close(code, reason) = end {
            tracing::debug!(client = %id, code, reason, "closing");
            // Boxed: the close handshake is rare and its timer is large.
            Box::pin(self.close(code, reason)).await;
        }
        tracing::debug!(client = %id, "disconnected");
    }

    /// Acts on one frame from the client; returns the reply, if any.
    fn handle(&mut self, message: Message) -> Option<Message> {
        let refused = match message {
            Message::Text(text) => match ClientFrame::decode(&text) {
                Ok(ClientFrame::Nickname(raw)) => match Nickname::parse(&raw) {
                    Ok(nickname) => {
                        self.nickname = nickname;
                        return None;
                    }
                    Err(err) => err.into(),
                },
                Ok(ClientFrame::Message(raw)) => match MessageText::parse(&raw) {
                    Ok(text) => {
                        self.relay(text);
                        return None;
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
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return None,
        };
        tracing::debug!(client = %self.membership.id(), code = %refused.code, "refused a frame");
        Some(Message::Text(ServerFrame::Error(refused).encode().into()))
    }

    /// Encodes the message once and queues it for every other client.
    fn relay(&self, text: MessageText) {
        let frame = ServerFrame::Message(ChatMessage {
            nickname: self.nickname.as_str().to_owned(),
            text: text.into_string(),
        });
        let bytes = Utf8Bytes::from(frame.encode());
        let fanout = self
            .membership
            .hub()
            .broadcast_except(self.membership.id(), &bytes);
        tracing::trace!(client = %self.membership.id(), ?fanout, "relayed");
    }

    /// Writes and flushes once: a batch of many frames costs one socket write.
    async fn write(&mut self, outgoing: Outgoing) -> Result<(), axum::Error> {
        match outgoing {
            Outgoing::One(message) => self.socket.feed(message).await?,
            Outgoing::Batch(frames) => {
                for frame in frames {
                    self.socket.feed(Message::Text(frame)).await?;
                }
            }
        }
        self.socket.flush().await
    }

    /// Sends a close frame, then reads until the peer answers (or a grace
    /// period passes): dropping a socket with unread input makes the kernel
    /// reset the connection, and the peer could lose the close frame.
    async fn close(mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.socket.recv().await {}
            }
        })
        .await;
    }
}

/// A frame over the size limit gets close code 1009; any other read error
/// means the connection is broken and there is no one left to tell.
fn end_for_read_error(err: axum::Error) -> End {
    match err.into_inner().downcast::<tungstenite::Error>() {
        Ok(err) if matches!(*err, tungstenite::Error::Capacity(_)) => {
            End::Close(close_code::SIZE, "frame larger than 64 KiB")
        }
        _ => End::Gone,
    }
}
