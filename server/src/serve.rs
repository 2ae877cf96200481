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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::AppState;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pending connections the kernel holds before `accept`. tokio's default,
/// 128, drops connections (clients then retry after a second) when many
/// clients arrive at once, as after a server restart.
const LISTEN_BACKLOG: u32 = 1024;

/// A client gets this long to send its request headers; without a limit,
/// a client trickling bytes could hold a connection open for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    let router = crate::router(state);
    // HTTP connections, apart from the WebSocket tasks in `state.tasks`.
    let http = TaskTracker::new();
    tokio::pin!(shutdown);

    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    backoff_after(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        http.spawn(http1_connection(socket, router.clone(), token.clone()));
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
async fn http1_connection(socket: TcpStream, router: Router, shutdown: CancellationToken) {
    // Chat frames are small and latency-sensitive: don't let Nagle hold them.
    if let Err(err) = socket.set_nodelay(true) {
        tracing::warn!(%err, "could not set TCP_NODELAY");
    }
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(socket), TowerToHyperService::new(router))
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
