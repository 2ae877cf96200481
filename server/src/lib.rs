//! Parley's server: the server-rendered page, its static files and the `/ws`
//! chat endpoint, all on one port.
//!
//! - [`config`]: flags and environment variables.
//! - [`hub`]: who is connected, and fan-out to them.
//! - [`ws`]: one WebSocket connection, from upgrade to close.

pub mod config;
pub mod hub;
pub mod ws;

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use app::{shell, App};
use axum::{extract::FromRef, routing::get, serve::ListenerExt, Router};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{services::ServeDir, trace::TraceLayer};

use crate::{config::ConnectionConfig, hub::Hub};

/// How long shutdown waits for open WebSockets to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pending connections the kernel holds before `accept`. tokio's default,
/// 128, drops connections (clients then retry after a second) when many
/// clients arrive at once, as after a server restart.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the listening socket, with a backlog that survives reconnect storms.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Everything a request handler may need, passed explicitly as axum state.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<Hub>,
    pub connection: Arc<ConnectionConfig>,
    /// Cancelled when the server shuts down; connections then close with 1001.
    pub shutdown: CancellationToken,
    /// The connection tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl AppState {
    pub fn new(leptos_options: LeptosOptions, connection: ConnectionConfig) -> Self {
        Self {
            leptos_options,
            hub: Hub::new(connection.client_queue),
            connection: Arc::new(connection),
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
        .route("/ws", get(ws::upgrade))
        .leptos_routes(&state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .fallback_service(static_files)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then closes every WebSocket with 1001
/// ("going away") and waits briefly for them to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let token = state.shutdown.clone();
    let tasks = state.tasks.clone();
    // Chat frames are small and latency-sensitive: don't let Nagle hold them.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await?;
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}
