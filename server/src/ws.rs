//! `GET /ws`: one task per WebSocket connection.
//!
//! The task reads and answers the client's frames, hands chat messages to the
//! [`Hub`](crate::hub::Hub), and writes whatever the hub has queued for this
//! client. Bad input is answered with an `error` frame and the connection
//! keeps going; only a frame over [`MAX_FRAME_BYTES`], a client too slow to
//! keep up, a dead peer or server shutdown end it.

use std::{sync::Arc, time::Duration};

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
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use crate::{config::ConnectionConfig, hub::Membership, AppState};

/// How long a closing connection waits for the peer to finish the close
/// handshake before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let config = Arc::clone(&state.connection);
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(config.read_buffer)
        .write_buffer_size(config.write_buffer)
        .on_upgrade(move |socket| {
            let (membership, queue) = state.hub.join();
            let connection = Connection {
                socket,
                membership,
                queue,
                nickname: Nickname::default(),
            };
            state
                .tasks
                .track_future(connection.run(config, state.shutdown))
        })
}

struct Connection {
    socket: WebSocket,
    membership: Membership,
    /// Frames the hub queued for this client, already encoded.
    queue: mpsc::Receiver<Utf8Bytes>,
    nickname: Nickname,
}

/// Why the loop stopped; decides the close frame the client gets.
enum End {
    /// The peer closed or vanished: nothing more to say.
    Gone,
    /// We close with this code and reason.
    Close(u16, &'static str),
}

impl Connection {
    async fn run(mut self, config: Arc<ConnectionConfig>, shutdown: CancellationToken) {
        let id = self.membership.id();
        tracing::info!(client = %id, "connected");

        let interval = config.ping_interval();
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard_since_ping = true;

        let end = loop {
            let step = tokio::select! {
                incoming = self.socket.recv() => {
                    heard_since_ping = true;
                    match incoming {
                        Some(Ok(message)) => self.handle(message).await,
                        Some(Err(err)) => Err(end_for_read_error(err)),
                        None => Err(End::Gone),
                    }
                }
                queued = self.queue.recv() => match queued {
                    Some(frame) => self.write_queued(frame).await,
                    None => Err(End::Close(close_code::POLICY, "too slow: fell behind the chat")),
                },
                _ = ping.tick() => {
                    if !heard_since_ping {
                        tracing::info!(client = %id, "no answer to ping, dropping");
                        Err(End::Gone)
                    } else {
                        heard_since_ping = false;
                        self.send(Message::Ping(Default::default())).await
                    }
                }
                () = shutdown.cancelled() => Err(End::Close(close_code::AWAY, "server shutting down")),
            };
            if let Err(end) = step {
                break end;
            }
        };

        if let End::Close(code, reason) = end {
            tracing::info!(client = %id, code, reason, "closing");
            self.close(code, reason).await;
        }
        tracing::info!(client = %id, "disconnected");
    }

    /// Acts on one frame from the client. `Err` ends the connection.
    async fn handle(&mut self, message: Message) -> Result<(), End> {
        match message {
            Message::Text(text) => match ClientFrame::decode(&text) {
                Ok(ClientFrame::Nickname(raw)) => match Nickname::parse(&raw) {
                    Ok(nickname) => {
                        self.nickname = nickname;
                        Ok(())
                    }
                    Err(err) => self.send_error(err.into()).await,
                },
                Ok(ClientFrame::Message(raw)) => match MessageText::parse(&raw) {
                    Ok(text) => {
                        self.relay(text);
                        Ok(())
                    }
                    Err(err) => self.send_error(err.into()).await,
                },
                Err(err) => self.send_error(err.into()).await,
            },
            Message::Binary(_) => {
                let error = ErrorPayload::new(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not supported; send JSON text frames",
                );
                self.send_error(error).await
            }
            // tungstenite answers pings and close frames by itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
        }
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
        tracing::debug!(client = %self.membership.id(), ?fanout, "relayed");
    }

    /// Writes `first` and whatever else is already queued, then flushes once:
    /// under load many frames share one write to the socket.
    async fn write_queued(&mut self, first: Utf8Bytes) -> Result<(), End> {
        let batch_limit = self.queue.max_capacity();
        let mut next = Some(first);
        let mut written = 0;
        while let Some(frame) = next {
            self.socket
                .feed(Message::Text(frame))
                .await
                .map_err(|_| End::Gone)?;
            written += 1;
            next = if written < batch_limit {
                self.queue.try_recv().ok()
            } else {
                None
            };
        }
        self.socket.flush().await.map_err(|_| End::Gone)
    }

    async fn send_error(&mut self, error: ErrorPayload) -> Result<(), End> {
        tracing::debug!(client = %self.membership.id(), code = %error.code, "refused a frame");
        let frame = ServerFrame::Error(error).encode();
        self.send(Message::Text(frame.into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        self.socket.send(message).await.map_err(|_| End::Gone)
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
