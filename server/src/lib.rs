//! Parley's server: the server-rendered page, its static files and the `/ws`
//! chat endpoint, all on one port.
//!
//! - [`config`]: flags and environment variables.
//! - [`serve`]: accepting connections, HTTP/1.1, graceful shutdown.
//! - [`ws`]: the `/ws` endpoint: handshake, one task per connection.
//! - [`hub`]: who is connected, and fan-out to them.
//! - [`peer`]: one client's socket, written to directly by the fan-out.
//! - [`limits`]: caps on open connections.

mod accepted;
pub mod config;
pub mod hub;
pub mod limits;
pub mod peer;
mod serve;
pub mod ws;

pub use serve::{bind, serve};

use std::sync::Arc;

use app::{shell, App};
use axum::{extract::FromRef, routing::get, Router};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{services::ServeDir, trace::TraceLayer};

use crate::{
    config::{ConnectionConfig, HttpConfig},
    hub::Hub,
    limits::ConnectionLimits,
};

/// Everything a request handler may need, passed explicitly as axum state.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<Hub>,
    pub connection: Arc<ConnectionConfig>,
    pub http: Arc<HttpConfig>,
    /// Every open connection holds a slot here, from accept to close.
    pub limits: ConnectionLimits,
    /// Cancelled when the server shuts down; connections then close with 1001.
    pub shutdown: CancellationToken,
    /// The connection tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl AppState {
    pub fn new(
        leptos_options: LeptosOptions,
        connection: ConnectionConfig,
        http: HttpConfig,
    ) -> Self {
        Self {
            leptos_options,
            hub: Hub::new(connection.client_queue),
            connection: Arc::new(connection),
            limits: ConnectionLimits::new(http.max_connections, http.max_connections_per_ip),
            http: Arc::new(http),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

/// The whole HTTP surface: `/ws`, the server-rendered page, and the files
/// `cargo leptos` built into the site root (served precompressed if present).
pub fn router(state: AppState) -> Router {
    let options = state.leptos_options.clone();
    let static_files = ServeDir::new(&*options.site_root)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .route("/ws", get(ws::handler))
        .leptos_routes(&state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .fallback_service(static_files)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
