//! What every client does once connected: read and sort the server's frames,
//! and close politely at the end.

use std::{fmt, ops::AddAssign, time::Duration};

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::{
    connect::Ws,
    protocol::ServerFrame,
    stamp::{Clock, Stamp},
};

/// How long a client waits for the server to answer its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What went wrong on established connections, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// `error` frames: the server refused something a client sent.
    pub error_frames: u64,
    /// Connections that the server closed, or that ended, before the run did.
    pub closed: u64,
    /// Failed reads and writes.
    pub transport: u64,
    /// Frames that are not protocol v1, and messages that are not ours.
    pub malformed: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.error_frames + self.closed + self.transport + self.malformed
    }
}

impl AddAssign for Errors {
    fn add_assign(&mut self, other: Self) {
        self.error_frames += other.error_frames;
        self.closed += other.closed;
        self.transport += other.transport;
        self.malformed += other.malformed;
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.total())?;
        if self.total() > 0 {
            write!(
                f,
                " ({} error frames, {} closed, {} transport, {} malformed)",
                self.error_frames, self.closed, self.transport, self.malformed
            )?;
        }
        Ok(())
    }
}

/// A frame from the server that the modes act on, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A relayed load-test message, with the id the server gave it and the
    /// room it names.
    Message {
        stamp: Stamp,
        id: Option<u64>,
        room: Option<&'a str>,
    },
    /// One of our messages was accepted as `id`.
    Ack { client_id: &'a str, id: u64 },
    /// The server refused something we sent (also counted in
    /// [`Errors::error_frames`]).
    Refused {
        code: &'a str,
        client_id: Option<&'a str>,
    },
}

/// Reads frames until `stop` is cancelled or the connection ends, handing
/// each load-test message to `on_message` with the time it arrived (Unix
/// nanoseconds from `clock`).
///
/// Works on a whole connection or on the read half of a split one. Reading
/// is also what answers the server's pings (tungstenite does it), so a
/// client must keep reading even when it expects nothing.
pub async fn receive<S>(
    stream: &mut S,
    stop: &CancellationToken,
    clock: &Clock,
    mut on_message: impl FnMut(Stamp, u64),
) -> Errors
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    receive_events(stream, stop, clock, |event, received| {
        if let Event::Message { stamp, .. } = event {
            on_message(stamp, received);
        }
    })
    .await
}

/// [`receive`], handing on acks and refusals too.
pub async fn receive_events<S>(
    stream: &mut S,
    stop: &CancellationToken,
    clock: &Clock,
    mut on_event: impl FnMut(Event<'_>, u64),
) -> Errors
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut errors = Errors::default();
    loop {
        let frame = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            frame = stream.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                let received = clock.now();
                match ServerFrame::decode(&text) {
                    Ok(ServerFrame::Message { text, id, room }) => match Stamp::parse(&text) {
                        Some(stamp) => on_event(
                            Event::Message {
                                stamp,
                                id,
                                room: room.as_deref(),
                            },
                            received,
                        ),
                        None => errors.malformed += 1,
                    },
                    Ok(ServerFrame::Ack { client_id, id }) => on_event(
                        Event::Ack {
                            client_id: &client_id,
                            id,
                        },
                        received,
                    ),
                    Ok(ServerFrame::Error { code, client_id }) => {
                        errors.error_frames += 1;
                        on_event(
                            Event::Refused {
                                code: &code,
                                client_id: client_id.as_deref(),
                            },
                            received,
                        );
                    }
                    Ok(ServerFrame::Welcome { .. } | ServerFrame::Unknown) => {}
                    Err(_) => errors.malformed += 1,
                }
            }
            // The protocol is text only.
            Some(Ok(Message::Binary(_))) => errors.malformed += 1,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => {
                errors.closed += 1;
                break;
            }
            Some(Err(_)) => {
                errors.transport += 1;
                break;
            }
        }
    }
    errors
}

/// Sends a close frame and reads until the server's answer (or a grace
/// period passes), so that neither side sees a reset connection.
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}
