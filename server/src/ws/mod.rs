//! `GET /ws`: the WebSocket endpoint.
//!
//! - [`upgrade`]: the opening handshake, which hands back the raw socket.
//! - [`connection`]: one task per client, from upgrade to close.
//! - [`frame`]: server frames, framed once and shared by every recipient.

pub mod connection;
pub mod frame;
pub mod upgrade;

use std::{sync::Arc, time::Duration};

use app::protocol::MAX_FRAME_BYTES;
use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;

use crate::{
    client_id::ClientId,
    metrics::Metrics,
    session::{Chat, RateLimit},
    writer::ClientWriter,
};
use connection::{Connection, Joining};
use upgrade::WebSocketUpgrade;

/// What `/ws` needs: the chat its sessions talk to (any [`Chat`]: the
/// transport knows nothing of rooms or the store), how connections are
/// tuned, and the server's life.
pub struct Endpoint<C> {
    pub chat: Arc<C>,
    pub options: Arc<Options>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down; connections then close with 1001.
    pub shutdown: CancellationToken,
    /// The connection tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

// Derived `Clone` would ask `C: Clone`; only the `Arc` is cloned.
impl<C> Clone for Endpoint<C> {
    fn clone(&self) -> Self {
        Self {
            chat: Arc::clone(&self.chat),
            options: Arc::clone(&self.options),
            metrics: Arc::clone(&self.metrics),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

/// How each connection is tuned (from the configuration).
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes read from a socket at a time.
    pub read_buffer: usize,
    /// Bytes that may wait for one client before it is disconnected.
    pub client_buffer_bytes: usize,
    /// How often a quiet client is pinged.
    pub ping_interval: Duration,
    /// How fast one client may send.
    pub rate_limit: RateLimit,
}

/// `GET /ws`, or `GET /ws?resume` for a client that will say who it was in
/// its first frame (see PROTOCOL.md).
pub async fn handler<C>(
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    State(endpoint): State<Endpoint<C>>,
) -> Response
where
    C: Chat<Endpoint = Arc<ClientWriter>>,
{
    let resuming = query
        .as_deref()
        .is_some_and(|query| query.split('&').any(|pair| pair == "resume"));
    // Only what a connection needs is moved into its task: the task lives as
    // long as the connection, and its size is paid once per client.
    let Endpoint {
        chat,
        options,
        metrics,
        shutdown,
        tasks,
    } = endpoint;
    let (response, upgraded) = ws.accept();
    tasks.spawn(async move {
        let upgraded = match upgraded.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(%err, "WebSocket upgrade failed");
                return;
            }
        };
        let id = ClientId::next();
        let span = tracing::info_span!("ws", client = %id);
        let protocol = WebSocketConfig::default()
            .read_buffer_size(options.read_buffer)
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        // The connection counts against the limits until this task ends.
        let slot = upgraded.slot;
        let writer = Arc::new(
            ClientWriter::new(id, upgraded.socket, options.client_buffer_bytes)
                .with_client(slot.client()),
        );
        let joining = Joining {
            chat,
            resuming,
            limit: options.rate_limit,
        };
        let mut connection = Connection::new(writer, upgraded.read_ahead, protocol, metrics);
        connection
            .run(joining, options.ping_interval, shutdown)
            .instrument(span)
            .await;
    });
    response
}
