//! Parley's server: the server-rendered page, its static files and the `/ws`
//! chat endpoint, all on one port.
//!
//! Layers, each unaware of the ones above it:
//!
//! - transport: [`serve`] (accepting connections, HTTP/1.1, graceful
//!   shutdown), [`ws`] (the handshake and one read loop per connection),
//!   [`writer`] (one client's outgoing bytes) and [`flush`] (the threads
//!   that write them). It knows the session's [`session::Chat`] trait and
//!   nothing of rooms or the store: this file hands it the hub as a `Chat`
//!   ([`AppState::ws`]) and what to finish before closing ([`serve()`]);
//! - session: [`session`], what a client's frame means (validation, rate
//!   limits, acks, typing), testable without sockets;
//! - rooms: [`hub`] (who gets what, one concept per file: see its map),
//!   over [`room`] (one room's members and fan-out), [`presence`] (who is
//!   online under which nickname) and [`commit`] (messages stored in
//!   batches before anyone hears of them);
//! - store and broker: [`store`] (SQLite or PostgreSQL, with
//!   [`retention`]) and [`broker`] (Redis, to other processes), behind
//!   small interfaces.
//!
//! Beside them: [`config`] (flags and environment variables, read only
//! here and in `main.rs`: the layers get what they need as their own
//! options),
//! [`limits`] (caps on connections and request rates per address),
//! [`proxy`] (what trusted reverse proxies forward), [`origin`] (which
//! pages may open a WebSocket), [`headers`] (the security headers of every
//! response), [`identity`] (resume tokens and the people behind them),
//! [`byte_budget`] (queues bounded in bytes), [`metrics`] (Prometheus, on
//! an address of its own), [`client_id`] (the id every layer knows a
//! client by).

// Rendering the page instantiates its view, one deeply nested type whose
// layout the compiler works out past its default recursion limit (128).
#![recursion_limit = "256"]

mod accepted;
pub mod broker;
pub mod byte_budget;
pub mod client_id;
pub mod cluster;
pub mod commit;
pub mod config;
pub mod flush;
pub mod headers;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod presence;
pub mod proxy;
pub mod retention;
pub mod room;
mod serve;
pub mod session;
pub mod store;
pub mod writer;
pub mod ws;

pub use serve::bind;

use std::sync::{Arc, Mutex, MutexGuard};

use app::protocol::RoomName;
use app::{shell, FirstPage};
use axum::{
    extract::{FromRef, Path, Request, State},
    http::{header, StatusCode},
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Router,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{services::ServeDir, trace::TraceLayer};

use crate::{
    config::{ChatConfig, ConnectionConfig, HttpConfig},
    hub::Hub,
    limits::ConnectionLimits,
    metrics::Metrics,
    origin::OriginPolicy,
    store::Store,
};

/// Everything a request handler may need, passed explicitly as axum state.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: Arc<Hub>,
    /// What `/ws` needs: the hub as the sessions' [`session::Chat`], and
    /// the connections' tuning from the configuration (the transport reads
    /// neither the hub nor the configuration itself).
    pub ws: ws::Endpoint<Hub>,
    pub metrics: Arc<Metrics>,
    /// Where messages are kept.
    pub store: Store,
    pub prometheus: PrometheusHandle,
    pub http: Arc<HttpConfig>,
    /// Which pages may open a WebSocket (the handshake reads only this).
    pub origins: Arc<OriginPolicy>,
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
        chat: ChatConfig,
        http: HttpConfig,
        store: Store,
    ) -> Self {
        let prometheus = metrics::install();
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(
            chat.presence_list_limit,
            chat.presence_interval(),
            chat.resume_grace(),
            Metrics::clone(&metrics),
            store.clone(),
        );
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let ws = ws::Endpoint {
            chat: Arc::clone(&hub),
            options: Arc::new(ws::Options {
                read_buffer: connection.read_buffer,
                client_buffer_bytes: connection.client_buffer_bytes,
                ping_interval: connection.ping_interval(),
                rate_limit: chat.rate_limit(),
            }),
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        };
        Self {
            leptos_options,
            hub,
            ws,
            metrics,
            store,
            prometheus,
            limits: ConnectionLimits::new(http.max_connections, http.max_connections_per_ip),
            origins: Arc::new(http.allowed_origins.clone()),
            http: Arc::new(http),
            shutdown,
            tasks,
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves (see
/// `serve::serve`): at shutdown the hub's messages are stored and acked
/// before the connections close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = Arc::clone(&state.hub);
    let served = serve::Served {
        options: serve::Options {
            trusted_proxies: state.http.trusted_proxies.clone(),
            write_timeout: state.http.write_timeout(),
            request_rate: state.http.request_rate(),
            handshake_rate: state.http.handshake_rate(),
        },
        limits: state.limits.clone(),
        shutdown: state.shutdown.clone(),
        tasks: state.tasks.clone(),
        drain: Box::pin(async move { hub.drain_commits().await }),
        router: router(state),
    };
    serve::serve(listener, served, shutdown).await
}

/// The whole HTTP surface of the page's address: `/ws`, the server-rendered
/// page, and the files `cargo leptos` built into the site root (served
/// precompressed if present), each response with the security headers.
/// Not the metrics: they are for operators, on an address of their own
/// ([`metrics::serve`]).
pub fn router(state: AppState) -> Router {
    // Rendering spawns tasks (the page's router does); an error only says
    // an executor is set already.
    let _ = any_spawner::Executor::init_tokio();
    let options = state.leptos_options.clone();
    let static_files = ServeDir::new(&*options.site_root)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .route("/ws", get(ws::handler::<Hub>))
        .route("/healthz", get(healthz))
        // The page's routes (see app::App): the chat in each room.
        .route("/", get(general))
        .route("/r/{name}", get(room))
        .fallback_service(static_files)
        .layer(middleware::map_response_with_state(
            headers::Policy::for_site(&options),
            headers::add,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `/`: the room `general`.
async fn general(state: State<AppState>, request: Request) -> Response {
    page(state, RoomName::general(), request).await
}

/// `/r/<name>`: any other room, opened by visiting it. A name that is not
/// a room's gets `404` with the rules.
async fn room(state: State<AppState>, Path(name): Path<String>, request: Request) -> Response {
    match RoomName::parse(&name) {
        // One address per room: general's is `/`.
        Ok(room) if room == RoomName::general() => Redirect::permanent("/").into_response(),
        Ok(room) => page(state, room, request).await,
        // The page's own "no such room", with the rule.
        Err(_) => {
            let mut response = render(state.leptos_options.clone(), || (), request).await;
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// The chat page of `room`, rendered with its latest messages in it, so
/// they show before the WebAssembly loads (and without JavaScript). The
/// page embeds them too, so hydration builds exactly the lines the server
/// rendered. `503` if the store cannot be read: a page without its history
/// would look like an empty conversation.
async fn page(State(state): State<AppState>, room: RoomName, request: Request) -> Response {
    let first = match hub::history_page(&state.store, &room, None).await {
        Ok(first) => first,
        Err(error) => {
            tracing::warn!(%error, "could not read the latest messages for the page");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "The message store is unavailable; try again in a moment.\n",
            )
                .into_response();
        }
    };
    let context = move || provide_context(FirstPage(first.clone()));
    render(state.leptos_options.clone(), context, request).await
}

/// Renders the page with `context` provided, and a fresh nonce on the
/// inline scripts Leptos writes, which [`headers::add`] puts in the
/// response's Content-Security-Policy.
async fn render(
    options: LeptosOptions,
    context: impl Fn() + Clone + Send + Sync + 'static,
    request: Request,
) -> Response {
    let nonce = headers::Nonce::new();
    let provide = nonce.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            context();
            provide.provide();
        },
        move || shell(options.clone()),
    );
    let mut response = render(request).await.into_response();
    response.extensions_mut().insert(nonce);
    response
}

/// 200 while the server serves: for load balancers and orchestrators.
/// `degraded` while the other server processes cannot be reached: this one
/// still serves its own clients (and relays from the store), so it should
/// stay in the pool.
async fn healthz(State(hub): State<Arc<Hub>>) -> &'static str {
    if hub.broker_healthy() {
        "ok\n"
    } else {
        "degraded: the broker (Redis) is unreachable\n"
    }
}

/// Shares `state`'s rooms with the other processes on the Redis at `url`.
/// Client ids get this process's number in their high bits, so they are
/// unique across processes.
pub async fn join_cluster(state: &AppState, url: &str) -> Result<(), broker::redis::BrokerError> {
    let node = client_id::join_cluster(url).await;
    let sink: std::sync::Weak<dyn broker::Sink> = Arc::downgrade(&state.hub) as _;
    let redis = broker::RedisBroker::start(url, node, state.store.clone(), sink).await?;
    state.hub.use_broker(broker::Broker::Redis(redis));
    tracing::info!(node, "sharing rooms through Redis");
    Ok(())
}

/// The server's maps are only touched by short, non-blocking sections, so a
/// poisoned lock still holds consistent data: keep serving rather than panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
