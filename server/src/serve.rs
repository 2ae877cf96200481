//! Accepting connections and serving HTTP/1.1 on them.
//!
//! This is `axum::serve` done by hand for one reason: a WebSocket upgrade
//! must hand back the `TcpStream` itself (see [`crate::ws::upgrade`]), and
//! axum's server wraps each connection in a private type of hyper-util's.
//! HTTP/2 is not offered: browsers only speak it over TLS, which a reverse
//! proxy in front of Parley terminates.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{accepted::Accepted, limits::Refusal, AppState};

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

/// Serves until `shutdown` resolves, then closes every WebSocket with 1001
/// ("going away") and waits briefly for everything to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let token = state.shutdown.clone();
    let tasks = state.tasks.clone();
    let limits = state.limits.clone();
    let write_timeout = state.http.write_timeout();
    let router = crate::router(state);
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
        match limits.try_acquire(peer.ip()) {
            Ok(slot) => {
                let io = Accepted::new(socket, slot, write_timeout);
                http.spawn(http1_connection(io, router.clone(), token.clone()));
            }
            Err(refusal) => {
                match refusal {
                    Refusal::ServerFull => tracing::warn!(%peer, "{refusal}; connection refused"),
                    Refusal::AddressFull => tracing::debug!(%peer, "{refusal}; connection refused"),
                }
                http.spawn(refuse(socket, refusal));
            }
        }
    }

    drop(listener);
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
async fn http1_connection(io: Accepted, router: Router, shutdown: CancellationToken) {
    // Chat frames are small and latency-sensitive: don't let Nagle hold them.
    if let Err(err) = io.stream().set_nodelay(true) {
        tracing::warn!(%err, "could not set TCP_NODELAY");
    }
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
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
