//! `GET /ws`: the WebSocket endpoint.
//!
//! - [`upgrade`]: the opening handshake, which hands back the raw socket.
//! - [`connection`]: one task per client, from upgrade to close.
//! - [`frame`]: server frames, framed once and shared by every recipient.

pub mod connection;
pub mod frame;
pub mod upgrade;

use std::sync::Arc;

use app::protocol::MAX_FRAME_BYTES;
use axum::{
    extract::{RawQuery, State},
    response::Response,
};
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;

use crate::{client_id::ClientId, writer::ClientWriter, AppState};
use connection::{Connection, Joining};
use upgrade::WebSocketUpgrade;

/// `GET /ws`, or `GET /ws?resume` for a client that will say who it was in
/// its first frame (see PROTOCOL.md).
pub async fn handler(
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    State(state): State<AppState>,
) -> Response {
    let resuming = query
        .as_deref()
        .is_some_and(|query| query.split('&').any(|pair| pair == "resume"));
    // Only what a connection needs is moved into its task: the task lives as
    // long as the connection, and its size is paid once per client.
    let AppState {
        hub,
        connection: config,
        chat,
        shutdown,
        tasks,
        metrics,
        ..
    } = state;
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
            .read_buffer_size(config.read_buffer)
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        // The connection counts against the limits until this task ends.
        let slot = upgraded.slot;
        let writer = Arc::new(
            ClientWriter::new(id, upgraded.socket, config.client_buffer_bytes)
                .with_client(slot.client()),
        );
        let joining = Joining {
            chat: hub,
            resuming,
            limit: chat.rate_limit(),
        };
        let connection = Connection::new(writer, upgraded.read_ahead, protocol, metrics);
        connection
            .run(joining, config.ping_interval(), shutdown)
            .instrument(span)
            .await;
    });
    response
}
