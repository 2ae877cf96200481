//! Accepting connections and serving HTTP/1.1 on them.
//!
//! This is `axum::serve` done by hand for one reason: a WebSocket upgrade
//! must hand back the `TcpStream` itself (see [`crate::ws::upgrade`]), and
//! axum's server wraps each connection in a private type of hyper-util's.
//! HTTP/2 is not offered: browsers only speak it over TLS, which a reverse
//! proxy in front of Parley terminates.
//!
//! A connection counts against its peer's address from accept on, except a
//! trusted proxy's: each request on it counts against its client's address
//! once its headers are read. Every request counts against its client's
//! request rate, and a WebSocket handshake against its handshake rate too
//! (see [`Gate`]).

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::Request,
    http::header,
    response::{IntoResponse, Response},
    Router,
};
use futures_util::future::{self, Either, Ready};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::{TowerToHyperService, TowerToHyperServiceFuture},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    accepted::Accepted,
    limits::{ClientNet, ConnectionLimits, Refusal, RequestRates},
    proxy::{Proxied, TrustedProxies},
    session::RateLimit,
};

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pending connections the kernel holds before `accept`. tokio's default,
/// 128, drops connections (clients then retry after a second) when many
/// clients arrive at once, as after a server restart.
const LISTEN_BACKLOG: u32 = 1024;

/// A client gets this long to send its request headers; without a limit,
/// a client trickling bytes could hold a connection open for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a refused connection may take to receive its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// What a refused client may send before we stop reading it (see [`refuse`]).
const REFUSAL_DRAIN_BYTES: usize = 16 * 1024;

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

/// How connections are accepted and limited (from the configuration).
#[derive(Debug, Clone)]
pub struct Options {
    /// Proxies whose forwarded client addresses are believed.
    pub trusted_proxies: TrustedProxies,
    /// How long a client may take to read a response.
    pub write_timeout: Duration,
    /// Requests one client address may make.
    pub request_rate: RateLimit,
    /// WebSocket handshakes one client address may make.
    pub handshake_rate: RateLimit,
}

/// What [`serve`] serves: the application's router and what it needs to
/// know of the application (built by the crate root from its state).
pub struct Served {
    pub router: Router,
    pub options: Options,
    /// Every open connection holds a slot here, from accept to close.
    pub limits: ConnectionLimits,
    /// Cancelled to close the WebSockets with 1001.
    pub shutdown: CancellationToken,
    /// The WebSocket tasks, waited for at shutdown.
    pub tasks: TaskTracker,
    /// Awaited once accepting stops and before the WebSockets are told to
    /// go: what must finish while clients can still hear of it (messages
    /// being stored, so their acks go out).
    pub drain: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Serves until `shutdown` resolves; then stops accepting, awaits
/// [`Served::drain`], closes every WebSocket with 1001 ("going away") and
/// waits briefly for everything to finish.
pub async fn serve(
    listener: TcpListener,
    served: Served,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let Served {
        router,
        options,
        limits,
        shutdown: token,
        tasks,
        drain,
    } = served;
    let rates = Arc::new(RequestRates::new(
        options.request_rate,
        options.handshake_rate,
    ));
    let write_timeout = options.write_timeout;
    let proxies = Arc::new(options.trusted_proxies);
    // HTTP connections, apart from the WebSocket tasks in `state.tasks`.
    let http = TaskTracker::new();
    tokio::pin!(shutdown);

    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    backoff_after(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let from_proxy = proxies.contains(peer.ip());
        let slot = if from_proxy {
            limits.try_acquire_proxied()
        } else {
            limits.try_acquire(peer.ip())
        };
        match slot {
            Ok(slot) => {
                let io = Accepted::new(socket, slot, write_timeout);
                let service = Gate {
                    router: TowerToHyperService::new(router.clone()),
                    peer: peer.ip(),
                    from_proxy,
                    proxies: Arc::clone(&proxies),
                    limits: limits.clone(),
                    rates: Arc::clone(&rates),
                };
                http.spawn(http1_connection(io, service, token.clone()));
            }
            Err(refusal) => {
                match refusal {
                    Refusal::ServerFull => tracing::warn!(%peer, "{refusal}; connection refused"),
                    _ => tracing::debug!(%peer, "{refusal}; connection refused"),
                }
                http.spawn(refuse(socket, refusal));
            }
        }
    }

    drop(listener);
    // Messages already taken are stored and acked before the connections
    // are told to go: a client then knows which of its messages to resend.
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("some messages were not stored in time");
    }
    token.cancel();
    tasks.close();
    http.close();
    let finished = async {
        http.wait().await;
        tasks.wait().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, finished)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}

/// Serves one HTTP/1.1 connection, which may become a WebSocket. On
/// shutdown, a request in progress is finished; an idle connection closes.
async fn http1_connection<S>(io: Accepted, service: S, shutdown: CancellationToken)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // Chat frames are small and latency-sensitive: don't let Nagle hold them.
    if let Err(err) = io.stream().set_nodelay(true) {
        tracing::warn!(%err, "could not set TCP_NODELAY");
    }
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "HTTP connection ended with an error");
    }
}

/// The router behind the per-address checks of each request: it counts
/// against its client's request rate, and a WebSocket handshake against the
/// handshake rate too. On a connection from a trusted proxy the client is
/// the one `X-Forwarded-For` names, and each request counts against its
/// per-address connection cap as well, as long as it is handled (see
/// [`Proxied`]). A request past any of them is answered `429` and the
/// connection stays open: a proxy's is shared by its other clients, and a
/// client's own costs less kept than opened again.
struct Gate {
    router: TowerToHyperService<Router>,
    peer: IpAddr,
    from_proxy: bool,
    proxies: Arc<TrustedProxies>,
    limits: ConnectionLimits,
    rates: Arc<RequestRates>,
}

impl hyper::service::Service<Request<Incoming>> for Gate {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Response, Infallible>>,
        TowerToHyperServiceFuture<Router, Request<Incoming>>,
    >;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let client = if self.from_proxy {
            self.proxies.client(self.peer, request.headers())
        } else {
            self.peer
        };
        // Any upgrade counts as a handshake: only `Upgrade: websocket` to
        // `/ws` can succeed, and the router alone need know that path.
        let handshake = request.headers().contains_key(header::UPGRADE);
        let admitted = self
            .rates
            .check(ClientNet::from(client), handshake)
            .and_then(|()| {
                if self.from_proxy {
                    let slot = self.limits.try_acquire_address(client)?;
                    request.extensions_mut().insert(Proxied {
                        slot: Arc::new(slot),
                    });
                }
                Ok(())
            });
        match admitted {
            Ok(()) => Either::Right(self.router.call(request)),
            Err(refusal) => {
                tracing::debug!(%client, peer = %self.peer, "{refusal}; request refused");
                Either::Left(future::ready(Ok(refusal.into_response())))
            }
        }
    }
}

/// Answers a connection over the limits and closes it, without parsing
/// anything: the answer is the same whatever was asked.
async fn refuse(mut socket: TcpStream, refusal: Refusal) {
    let answer = async {
        socket.write_all(refusal.response()).await?;
        socket.shutdown().await?;
        // Closing with the request still unread would make the kernel reset
        // the connection, and the client could lose the answer before reading
        // it: read what it sends until it closes too, for a moment at most.
        let mut sink = [0; 1024];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN_BYTES {
            match socket.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    };
    if let Ok(Err(err)) = tokio::time::timeout(REFUSAL_LINGER, answer).await {
        tracing::debug!(%err, "could not answer a refused connection");
    }
}

/// Accept errors are mostly transient (a connection reset before we took
/// it) or resource exhaustion (out of file descriptors); the latter clears
/// only as connections close, so wait a moment rather than spin.
async fn backoff_after(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%err, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
