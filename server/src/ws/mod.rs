//! `GET /ws`: the WebSocket endpoint.
//!
//! - [`upgrade`]: the opening handshake, which hands back the raw socket.
//! - [`connection`]: one task per client, from upgrade to close.
//! - [`frame`]: server frames, framed once and shared by every recipient.

pub mod connection;
pub mod frame;
pub mod upgrade;

use app::protocol::MAX_FRAME_BYTES;
use axum::{extract::State, response::Response};
use tungstenite::protocol::WebSocketConfig;

use crate::AppState;
use connection::Connection;
use upgrade::WebSocketUpgrade;

pub async fn handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Only what a connection needs is moved into its task: the task lives as
    // long as the connection, and its size is paid once per client.
    let AppState {
        hub,
        connection: config,
        shutdown,
        tasks,
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
        let protocol = WebSocketConfig::default()
            .read_buffer_size(config.read_buffer)
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        // The connection counts against the limits until this task ends.
        let _slot = upgraded.slot;
        let connection = Connection::new(hub.join(upgraded.socket), upgraded.read_ahead, protocol);
        connection.run(config.ping_interval(), shutdown).await;
    });
    response
}
